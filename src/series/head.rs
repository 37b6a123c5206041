//! The head: every series in memory, compressed, indexed, and shared by writers and readers.
//!
//! - **Series identity.** A series is its [`Labels`]. The head keeps one [`MemSeries`] per label
//!   set, found by a 64-bit hash of the labels (collisions are resolved by comparing labels).
//!   Label names and values are interned, so the thousands of series of a target share one
//!   [`LabelStr`](super::labels::LabelStr) for `job`, for `instance`, for each metric name.
//! - **Samples** live in Gorilla [`Chunk`]s. A series normally has one, open for appends and
//!   holding its whole window: truncation re-encodes it without its oldest samples once they
//!   are stored and expired, and the checkpoint cuts the samples not stored yet into chunks of
//!   [`Head::chunk_samples`] (120 by default: 20 minutes at 10 s) for the store. Only a window
//!   longer than [`OPEN_CHUNK_LIMIT`] stored chunks takes more than one chunk in memory.
//!   Out-of-order samples are dropped and counted.
//! - **Index.** An inverted index `label name → value → series` (sorted by series id) answers
//!   `up{job="x"}` by intersecting two posting lists instead of scanning every series; regex
//!   matchers are run over the distinct values of their label, not over the series.
//! - **Writers** append one sample at a time ([`Head::append`], or [`Head::append_to`] with a
//!   series found earlier); batch writers with staleness tracking (scrapes, `ALERTS`) go
//!   through the scrape layer's appender, which keeps their caches.
//!
//! # Locking
//!
//! One `RwLock` guards the index (taken for writing only to add or remove a series), one
//! `Mutex` the interner, one `Mutex` each series' chunks. No lock is held while another is taken, except the index
//! read lock around series-lock-free lookups, so there is no lock order to get wrong.

use std::mem::size_of;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use promql_parser::label::Matcher;

use super::arrivals::Arrivals;
use super::chunk::{Chunk, ChunkError};
use super::hash::labels_hash;
use super::index::Index;
use super::index::InternedMatcher;
use super::interner::Interner;
use super::{Label, Labels, Sample, SeriesSamples, SeriesSource, Timestamp, is_stale_nan};

/// Samples per stored chunk: 20 minutes of 10 s scrapes, as in Prometheus.
pub const DEFAULT_CHUNK_SAMPLES: usize = 120;

/// The open chunk takes this many stored chunks' worth of samples before a new one is cut. The
/// head's window (15 minutes by default) and the samples not stored yet (up to a stored chunk's
/// worth) fit in one chunk, so a series normally holds one chunk: no second chunk's fixed cost
/// (48 bytes and its own allocation) for each of tens of thousands of series. A window much
/// longer than a stored chunk (deployment gates) is held in several, so that a range read
/// decodes at most this many chunks' worth of samples before its range.
pub const OPEN_CHUNK_LIMIT: usize = 4;

/// A series' number, unique for the life of the head, increasing in creation order.
pub type SeriesId = u64;
/// Locks a mutex, recovering from poisoning: a panic elsewhere while holding a series lock
/// leaves its chunks decodable (the count is written last), so serving on beats dying.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}

/// What happened to one appended sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored.
    Appended,
    /// Older than the series' last sample, or at its timestamp with another value: dropped
    /// and counted (Prometheus' out-of-order and duplicate-timestamp errors).
    OutOfOrder,
    /// Same timestamp and value as the last sample: ignored silently, as Prometheus does.
    Duplicate,
}

/// Why [`Head::load_series`] refused chunks.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A chunk's bytes are not a chunk.
    #[error("chunk {index} of {labels}: {source}")]
    Chunk {
        /// The series.
        labels: Labels,
        /// Position of the chunk in the call.
        index: usize,
        /// What the decoder said.
        #[source]
        source: ChunkError,
    },
}

/// Size and counters of the head, for `/metrics` and capacity planning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadStats {
    /// Series in memory.
    pub series: usize,
    /// Samples in memory, stale markers included.
    pub samples: usize,
    /// Chunks in memory.
    pub chunks: usize,
    /// Encoded chunk bytes (their allocations, capacity included).
    pub chunk_bytes: usize,
    /// Estimated heap bytes of the whole head: series, chunks, index, interned strings and
    /// scrape caches (container capacities included, allocator overhead not).
    pub bytes: usize,
    /// Samples dropped as out of order since start.
    pub out_of_order: u64,
    /// Stale markers written since start.
    pub stale_markers: u64,
}

impl HeadStats {
    /// Counts one series with its chunks.
    fn add_series(&mut self, s: &MemSeries, chunks: &SeriesChunks) {
        self.series += 1;
        self.chunks += chunks.len();
        self.samples += chunks.iter().map(Chunk::len).sum::<usize>();
        self.chunk_bytes += chunks.iter().map(Chunk::heap_bytes).sum::<usize>();
        self.bytes += s.heap_bytes(chunks);
    }
}

/// A series' chunks, oldest first; the last one is open for appends. The usual single chunk
/// (see [`OPEN_CHUNK_LIMIT`]) sits inline in the series instead of in a vector of its own: 48
/// bytes and an allocation less per series, and the series still takes one 96-byte region.
/// Reads see a slice either way.
enum SeriesChunks {
    One(Chunk),
    /// No chunk (a new series), or more than one.
    Many(Vec<Chunk>),
}

impl SeriesChunks {
    const fn new() -> Self {
        SeriesChunks::Many(Vec::new())
    }

    /// Adds a chunk after the others.
    fn push(&mut self, c: Chunk) {
        *self = match std::mem::replace(self, SeriesChunks::new()) {
            SeriesChunks::One(first) => SeriesChunks::Many(vec![first, c]),
            SeriesChunks::Many(v) if v.is_empty() => SeriesChunks::One(c),
            SeriesChunks::Many(mut v) => {
                // A series holds a handful of chunks: exact growth, no 4-slot first allocation.
                v.reserve_exact(1);
                v.push(c);
                SeriesChunks::Many(v)
            }
        };
    }

    /// Keeps the chunks for which `keep` is true, giving back the room of the others.
    fn retain(&mut self, mut keep: impl FnMut(&Chunk) -> bool) {
        match self {
            SeriesChunks::One(c) => {
                if !keep(c) {
                    *self = SeriesChunks::new();
                }
            }
            SeriesChunks::Many(v) => {
                let before = v.len();
                v.retain(|c| keep(c));
                if v.len() == 1 {
                    if let Some(c) = v.pop() {
                        *self = SeriesChunks::One(c);
                    }
                } else if v.len() < before {
                    v.shrink_to_fit();
                }
            }
        }
    }

    /// Heap bytes of the chunk list itself (not of the chunks' bytes).
    fn list_bytes(&self) -> usize {
        match self {
            SeriesChunks::One(_) => 0,
            SeriesChunks::Many(v) => v.capacity() * size_of::<Chunk>(),
        }
    }
}

impl std::ops::Deref for SeriesChunks {
    type Target = [Chunk];

    fn deref(&self) -> &[Chunk] {
        match self {
            SeriesChunks::One(c) => std::slice::from_ref(c),
            SeriesChunks::Many(v) => v,
        }
    }
}

impl std::ops::DerefMut for SeriesChunks {
    fn deref_mut(&mut self) -> &mut [Chunk] {
        match self {
            SeriesChunks::One(c) => std::slice::from_mut(c),
            SeriesChunks::Many(v) => v,
        }
    }
}

/// One series in memory.
pub struct MemSeries {
    /// Creation order; posting lists are sorted by it.
    pub(super) id: SeriesId,
    /// The label set, with interned strings.
    pub(super) labels: Labels,
    /// The chunks; the last one is open for appends.
    data: Mutex<SeriesChunks>,
    /// Time of the series' last sample already in the store ([`NOT_STORED`] when none): the
    /// checkpoint writes only later samples, and truncation trims only earlier ones.
    /// [`REMOVED`] (set under the data lock) once truncation removed the series: holders of a
    /// stale `Arc` (scrape caches, the probe sink) must look the series up again. One word for
    /// both, so that the series with its inline chunk still fits jemalloc's 96-byte class;
    /// kept here rather than in a map by fingerprint beside the head, it goes when the series
    /// goes.
    pub(super) persisted: AtomicI64,
}

/// [`MemSeries::persisted`] of a series with nothing in the store.
const NOT_STORED: Timestamp = i64::MIN;
/// [`MemSeries::persisted`] of a series that truncation removed (never moves back: updates
/// take the maximum).
const REMOVED: Timestamp = i64::MAX;

impl MemSeries {
    /// The series' labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The series' id.
    pub fn id(&self) -> SeriesId {
        self.id
    }

    /// Max time of the series' last chunk in the store, `i64::MIN` when none is.
    pub fn persisted_until(&self) -> Timestamp {
        match self.persisted.load(Ordering::Acquire) {
            REMOVED => NOT_STORED,
            t => t,
        }
    }

    /// Records that the series' chunks up to `t` are in the store (never moves back).
    pub fn set_persisted_until(&self, t: Timestamp) {
        self.persisted
            .fetch_max(t.min(REMOVED - 1), Ordering::AcqRel);
    }

    /// True once truncation removed the series from the head.
    #[inline]
    pub fn is_removed(&self) -> bool {
        self.persisted.load(Ordering::Acquire) == REMOVED
    }

    /// Marks the series removed (under its data lock).
    fn mark_removed(&self) {
        self.persisted.store(REMOVED, Ordering::Release);
    }

    /// Calls `f` with the series' chunks (the last one may still be open) unless it has none
    /// or truncation removed it; `f` runs under the series' lock, so it must not call back
    /// into the head.
    pub fn with_chunks(&self, f: impl FnOnce(&[Chunk])) {
        let chunks = lock(&self.data);
        if !chunks.is_empty() && !self.is_removed() {
            f(&chunks);
        }
    }

    fn heap_bytes(&self, chunks: &SeriesChunks) -> usize {
        size_of::<MemSeries>()
            + 2 * size_of::<usize>() // Arc counters
            + 2 * size_of::<usize>() // the label set's reference count and length
            + self.labels.len() * size_of::<Label>()
            + chunks.list_bytes()
            + chunks.iter().map(Chunk::heap_bytes).sum::<usize>()
    }
}

/// Appends to a series' chunks. A new chunk is cut only when the open one holds
/// [`OPEN_CHUNK_LIMIT`] chunks' worth of samples (`per_chunk` each): the open chunk normally
/// holds the whole window, trimmed from the front once its oldest samples are stored and expired.
fn append_chunks(
    chunks: &mut SeriesChunks,
    t: Timestamp,
    v: f64,
    per_chunk: usize,
) -> AppendOutcome {
    if let Some(last) = chunks.last().and_then(Chunk::last_sample) {
        if t < last.t {
            return AppendOutcome::OutOfOrder;
        }
        if t == last.t {
            return if v.to_bits() == last.v.to_bits() {
                AppendOutcome::Duplicate
            } else {
                AppendOutcome::OutOfOrder
            };
        }
    }
    let limit = per_chunk
        .saturating_mul(OPEN_CHUNK_LIMIT)
        .min(usize::from(u16::MAX));
    if chunks.last().is_none_or(|c| c.len() >= limit) {
        if let Some(c) = chunks.last_mut() {
            c.shrink_to_fit();
        }
        chunks.push(Chunk::new());
    }
    match chunks.last_mut().map(|c| c.append(t, v)) {
        Some(Ok(())) => AppendOutcome::Appended,
        // Unreachable: the order was checked above and the chunk has room; treat as dropped.
        _ => AppendOutcome::OutOfOrder,
    }
}

/// How many of `c`'s samples are after `stored_until` (the series' [`MemSeries::persisted_until`]),
/// estimated from its time span like [`expired_samples`].
pub(crate) fn unstored_samples(c: &Chunk, stored_until: Timestamp) -> usize {
    if c.is_empty() || c.last_t() <= stored_until {
        return 0;
    }
    if c.first_t() > stored_until {
        return c.len();
    }
    let span = (c.last_t() as i128 - c.first_t() as i128).max(1);
    let fresh = c.last_t() as i128 - stored_until as i128;
    usize::try_from(c.len() as i128 * fresh / span).unwrap_or(0)
}

/// How many of `c`'s samples are before `min_t`, estimated from its time span (samples are
/// evenly spaced in a scraped series; exactness does not matter, only the order of magnitude).
fn expired_samples(c: &Chunk, min_t: Timestamp) -> usize {
    if c.is_empty() || c.first_t() >= min_t {
        return 0;
    }
    let span = (c.last_t() as i128 - c.first_t() as i128).max(1);
    let gone = (min_t as i128 - c.first_t() as i128).min(span);
    usize::try_from(c.len() as i128 * gone / span).unwrap_or(0)
}

/// The in-memory series store. `Send + Sync`; share it as `Arc<Head>`.
pub struct Head {
    /// Series lookup and postings.
    index: RwLock<Index>,
    /// Label strings shared by all series.
    interner: Mutex<Interner>,
    /// Next series id.
    next_id: AtomicU64,
    /// Samples per stored chunk.
    chunk_samples: usize,
    /// Out-of-order samples dropped since start.
    out_of_order: AtomicU64,
    /// Stale markers written since start.
    stale_markers: AtomicU64,
    /// Metric names landed since the rules engine last looked, marked per batch by the writers.
    arrivals: Arrivals,
    /// The head holds every sample at or after this time that reached it (see
    /// [`Head::complete_since`]).
    complete_since: AtomicI64,
    /// Told of every appended sample (remote write); see [`Head::set_tap`].
    tap: RwLock<Option<Arc<dyn AppendTap>>>,
    /// Whether `tap` is set, read without the lock on every append.
    tapped: std::sync::atomic::AtomicBool,
}

/// A listener told of every sample the head takes, in append order (so in time order within a
/// series): remote write queues them. It runs on the appending thread after the series' lock
/// is released, so it must be quick and must not append to the head.
pub trait AppendTap: Send + Sync {
    /// `series` took the sample `(t, v)`.
    fn appended(&self, series: &Arc<MemSeries>, t: Timestamp, v: f64);
}

impl Default for Head {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("series", &read(&self.index).len())
            .finish_non_exhaustive()
    }
}

impl Head {
    /// An empty head with [`DEFAULT_CHUNK_SAMPLES`] samples per chunk.
    pub fn new() -> Self {
        Self::with_chunk_samples(DEFAULT_CHUNK_SAMPLES)
    }

    /// An empty head storing chunks of `n` samples (at least 1).
    pub fn with_chunk_samples(n: usize) -> Self {
        Head {
            index: RwLock::default(),
            interner: Mutex::default(),
            next_id: AtomicU64::new(1),
            chunk_samples: n.clamp(1, usize::from(u16::MAX)),
            out_of_order: AtomicU64::new(0),
            stale_markers: AtomicU64::new(0),
            arrivals: Arrivals::default(),
            tap: RwLock::new(None),
            tapped: std::sync::atomic::AtomicBool::new(false),
            complete_since: AtomicI64::new(Timestamp::MAX),
        }
    }

    /// The time from which the head holds every sample of every series (that reached it):
    /// a query for a range that starts there needs nothing from the store. `Timestamp::MAX`
    /// (nothing is known to be whole) until the head is loaded from the store
    /// ([`Head::mark_complete_since`]); every truncation moves it to its cutoff, never back.
    pub fn complete_since(&self) -> Timestamp {
        self.complete_since.load(Ordering::Relaxed)
    }

    /// Records that the head was loaded with every stored sample from `t` on.
    pub fn mark_complete_since(&self, t: Timestamp) {
        self.complete_since.store(t, Ordering::Relaxed);
    }

    /// The metric names that writers landed samples of: each writer marks a batch (a page, a
    /// probe run) once it is appended, so that the rules that read them run next.
    pub fn arrivals(&self) -> &Arrivals {
        &self.arrivals
    }

    /// Samples per stored chunk.
    pub fn chunk_samples(&self) -> usize {
        self.chunk_samples
    }

    /// The series with these labels, created if new.
    pub fn series(&self, labels: &Labels) -> Arc<MemSeries> {
        let hash = labels_hash(labels);
        if let Some(s) = read(&self.index).lookup(hash, labels) {
            return s.clone();
        }
        let mut index = write(&self.index);
        if let Some(s) = index.lookup(hash, labels) {
            return s.clone();
        }
        let labels = lock(&self.interner).intern_labels(labels);
        let s = Arc::new(MemSeries {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            labels,
            data: Mutex::new(SeriesChunks::new()),
            persisted: AtomicI64::new(NOT_STORED),
        });
        index.insert(s.clone(), hash);
        s
    }

    /// Appends one sample to the series `labels` (created if new). For probes, rules and
    /// other single writers; whole pages go through the ingest appender.
    pub fn append(&self, labels: &Labels, t: Timestamp, v: f64) -> AppendOutcome {
        let s = self.series(labels);
        self.append_to(&s, t, v)
    }

    /// Appends one sample to a series found earlier with [`Head::series`], for a writer that
    /// keeps its series (the probe sink): no label set is hashed or compared. If truncation
    /// removed the series meanwhile, `s` is replaced by its successor.
    pub fn append_series(&self, s: &mut Arc<MemSeries>, t: Timestamp, v: f64) -> AppendOutcome {
        if s.is_removed() {
            *s = self.series(&s.labels);
        }
        self.append_to(s, t, v)
    }

    /// Appends to a series found earlier, looking it up again if truncation removed it.
    pub fn append_to(&self, s: &Arc<MemSeries>, t: Timestamp, v: f64) -> AppendOutcome {
        let outcome = {
            let mut chunks = lock(&s.data);
            if !s.is_removed() {
                Some(append_chunks(&mut chunks, t, v, self.chunk_samples))
            } else {
                None
            }
        };
        let (outcome, fresh) = match outcome {
            Some(o) => (o, None),
            None => {
                let fresh = self.series(&s.labels);
                let o = append_chunks(&mut lock(&fresh.data), t, v, self.chunk_samples);
                (o, Some(fresh))
            }
        };
        if outcome == AppendOutcome::OutOfOrder {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
        } else if outcome == AppendOutcome::Appended {
            if is_stale_nan(v) {
                self.stale_markers.fetch_add(1, Ordering::Relaxed);
            }
            // One relaxed load per sample when nothing listens (no remote write).
            if self.tapped.load(Ordering::Relaxed)
                && let Some(tap) = read(&self.tap).as_ref()
            {
                tap.appended(fresh.as_ref().unwrap_or(s), t, v);
            }
        }
        outcome
    }

    /// Sets (or, with `None`, removes) the listener told of every sample appended from now on.
    pub fn set_tap(&self, tap: Option<Arc<dyn AppendTap>>) {
        let mut slot = write(&self.tap);
        self.tapped.store(tap.is_some(), Ordering::Relaxed);
        *slot = tap;
    }

    /// Drops chunks whose samples are all older than `min_t`, and series left without
    /// samples. Returns the number of series removed.
    pub fn truncate(&self, min_t: Timestamp) -> usize {
        self.truncate_inner(min_t, false, None)
    }

    /// [`Head::truncate`], and trims chunks holding a quarter chunk of samples older than
    /// `min_t` and stored ([`MemSeries::persisted_until`]). Only after a checkpoint that stored
    /// what it meant to: the checkpointer calls plain `truncate` after one that failed.
    pub fn truncate_and_trim(&self, min_t: Timestamp) -> usize {
        self.truncate_inner(min_t, true, None)
    }

    /// [`Head::truncate_and_trim`] (or, when not `trim`, [`Head::truncate`]), then
    /// [`Head::stats`] from the same walk: the checkpoint's two walks over every series in
    /// one, each series locked once.
    pub fn truncate_with_stats(&self, min_t: Timestamp, trim: bool) -> HeadStats {
        let mut st = HeadStats::default();
        self.truncate_inner(min_t, trim, Some(&mut st));
        st
    }

    fn truncate_inner(
        &self,
        min_t: Timestamp,
        trim: bool,
        mut stats: Option<&mut HeadStats>,
    ) -> usize {
        // Samples older than the cutoff may be gone from here on.
        self.complete_since.fetch_max(min_t, Ordering::Relaxed);
        // Under the index's read lock (appends to existing series go on; a new series waits
        // for the walk, milliseconds).
        let index = read(&self.index);
        let mut gone = Vec::new();
        // A chunk is re-encoded without its expired, stored samples once they are a quarter
        // of a stored chunk: the head holds its window plus at most a quarter chunk (and the
        // samples not stored yet) instead of plus a whole chunk.
        let trim_at = if trim {
            (self.chunk_samples / 4).max(1)
        } else {
            usize::MAX
        };
        for s in index.each() {
            if s.is_removed() {
                continue;
            }
            let mut chunks = lock(&s.data);
            chunks.retain(|c| c.last_t() >= min_t && !c.is_empty());
            // Only stored samples go: the open chunk holds samples not stored yet too.
            let cutoff = min_t.min(s.persisted_until().saturating_add(1));
            for c in chunks.iter_mut() {
                if expired_samples(c, cutoff) >= trim_at {
                    // Re-encoding leaves the appender state of the samples kept: the open
                    // chunk goes on taking samples.
                    *c = c.since(cutoff);
                }
            }
            if chunks.is_empty() {
                s.mark_removed();
                gone.push(s.clone());
            } else if let Some(st) = stats.as_deref_mut() {
                st.add_series(s, &chunks);
            }
        }
        drop(index);
        let n = gone.len();
        if n > 0 {
            write(&self.index).remove_removed(&gone);
            drop(gone);
            lock(&self.interner).gc();
        }
        if let Some(st) = stats {
            self.finish_stats(st);
        }
        n
    }

    /// Calls `f` with every series that has samples and its chunks (the last one may still be
    /// open), in creation order. For the store to persist the head; `f` runs under the
    /// series' lock, so it must not call back into the head.
    pub fn for_each_series(&self, mut f: impl FnMut(&Labels, &[Chunk])) {
        for s in self.all_series() {
            s.with_chunks(|chunks| f(&s.labels, chunks));
        }
    }

    /// Every series, in creation order: a snapshot for walks that visit the head more than
    /// once (the checkpoint), read with [`MemSeries::with_chunks`].
    pub fn all_series(&self) -> Vec<Arc<MemSeries>> {
        read(&self.index).all()
    }

    /// Puts `older` samples (in time order) in front of what the series `labels` holds: the
    /// samples before its first one are kept, the rest dropped. For a window that grew on
    /// reload, so that a new long-range rule or gate sees the history the store still has.
    /// Returns the number of samples added.
    pub fn backfill(&self, labels: &Labels, older: &[Sample]) -> usize {
        let s = self.series(labels);
        let mut data = lock(&s.data);
        let first = data
            .iter()
            .find(|c| !c.is_empty())
            .map_or(Timestamp::MAX, Chunk::first_t);
        let cut = older.partition_point(|x| x.t < first);
        if cut == 0 {
            return 0;
        }
        let held: Vec<Sample> = data.iter().flat_map(|c| c.iter()).collect();
        let mut rebuilt = SeriesChunks::new();
        let mut added = 0;
        for (i, x) in older[..cut].iter().chain(&held).enumerate() {
            let ok = append_chunks(&mut rebuilt, x.t, x.v, self.chunk_samples);
            if i < cut && ok == AppendOutcome::Appended {
                added += 1;
            }
        }
        *data = rebuilt;
        added
    }

    /// Loads persisted chunks (bytes from [`Chunk::as_bytes`], oldest first) into the series
    /// `labels`, after any samples it already has: samples at or before the series' last one
    /// are skipped (the open chunk of a checkpoint starts with samples already stored). For
    /// restart recovery; returns the number of samples loaded. The samples join the series'
    /// open chunk, as if they had just been appended.
    pub fn load_series<B: AsRef<[u8]>>(
        &self,
        labels: &Labels,
        chunks: impl IntoIterator<Item = B>,
    ) -> Result<usize, LoadError> {
        let decoded = chunks
            .into_iter()
            .enumerate()
            .map(|(index, b)| {
                Chunk::from_bytes(b.as_ref()).map_err(|source| LoadError::Chunk {
                    labels: labels.clone(),
                    index,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let s = self.series(labels);
        let mut data = lock(&s.data);
        let mut loaded = 0;
        for c in &decoded {
            let last_t = data.last().and_then(Chunk::last_sample).map(|s| s.t);
            for x in c.iter().filter(|x| last_t.is_none_or(|l| x.t > l)) {
                if append_chunks(&mut data, x.t, x.v, self.chunk_samples) == AppendOutcome::Appended
                {
                    loaded += 1;
                }
            }
        }
        Ok(loaded)
    }

    /// Counts and estimated memory. Walks every series: meant for a metrics scrape or a
    /// benchmark, not a hot path.
    pub fn stats(&self) -> HeadStats {
        let mut st = HeadStats::default();
        {
            let index = read(&self.index);
            for s in index.each() {
                st.add_series(s, &lock(&s.data));
            }
        }
        self.finish_stats(&mut st);
        st
    }

    /// Completes stats whose series a walk has added: the index, the interned strings, the
    /// scrape caches and the counters (the index's lock is not held by the caller).
    fn finish_stats(&self, st: &mut HeadStats) {
        st.out_of_order = self.out_of_order.load(Ordering::Relaxed);
        st.stale_markers = self.stale_markers.load(Ordering::Relaxed);
        st.bytes += read(&self.index).heap_bytes();
        st.bytes += lock(&self.interner).heap_bytes();
    }
}

impl Head {
    /// Calls `each` for every series matching `matchers`, under the index read lock (appends
    /// to existing series go on; only a new series or truncation waits for it).
    fn for_each_match(&self, matchers: &[Matcher], mut each: impl FnMut(&MemSeries)) {
        let index = read(&self.index);
        let all;
        let candidates = index.candidates(matchers);
        let list = match &candidates {
            Some(c) => c.as_slice(),
            None => {
                all = index.all();
                &all[..]
            }
        };
        let compiled: Vec<InternedMatcher> =
            matchers.iter().map(|m| index.intern_matcher(m)).collect();
        for s in list {
            if compiled.iter().all(|m| m.matches(&s.labels)) {
                each(s);
            }
        }
    }
}

impl SeriesSource for Head {
    fn series_labels(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels> {
        let mut out = Vec::new();
        self.for_each_match(matchers, |s| {
            // Chunk bounds are fields: no sample is decoded.
            let overlaps = lock(&s.data)
                .iter()
                .any(|c| !c.is_empty() && c.first_t() <= maxt && c.last_t() >= mint);
            if overlaps {
                out.push(s.labels.clone());
            }
        });
        out.sort_unstable();
        out
    }

    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        let mut out = Vec::new();
        self.for_each_match(matchers, |s| {
            let mut samples = Vec::new();
            samples_in(&lock(&s.data), mint, maxt, &mut samples);
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: s.labels.clone(),
                    samples,
                });
            }
        });
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    fn select_each(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        skip: &mut dyn FnMut(u64) -> bool,
        each: &mut dyn FnMut(u64, &Labels, &[Sample]),
    ) -> bool {
        // One buffer for every series, kept by the thread between calls: the samples are lent
        // to `each`, not handed over, so a selection allocates nothing per series.
        thread_local! {
            static SCRATCH: std::cell::Cell<Vec<Sample>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut samples = SCRATCH.take();
        self.for_each_match(matchers, |s| {
            if skip(s.id) {
                each(s.id, &s.labels, &[]);
                return;
            }
            samples.clear();
            samples_in(&lock(&s.data), mint, maxt, &mut samples);
            if !samples.is_empty() {
                each(s.id, &s.labels, &samples);
            }
        });
        samples.clear();
        SCRATCH.set(samples);
        true
    }
}

/// The samples of `chunks` in `[mint, maxt]`. Chunks outside the interval are not decoded, and
/// decoding stops at the first sample after `maxt`.
fn samples_in(chunks: &[Chunk], mint: Timestamp, maxt: Timestamp, out: &mut Vec<Sample>) {
    // The last time first: it is a field, so a chunk wholly before the range is skipped without
    // touching its bytes (where the count and the first time are).
    let overlapping = |c: &&Chunk| c.last_t() >= mint && c.first_t() <= maxt && !c.is_empty();
    // The samples in range, estimated from each chunk's time span (an open chunk holds the
    // head's whole window, of which a range read usually wants a few minutes): one
    // allocation, rarely regrown.
    let in_range = |c: &Chunk| {
        let span = (c.last_t() as i128 - c.first_t() as i128).max(1);
        let from = c.first_t().max(mint) as i128;
        let to = c.last_t().min(maxt) as i128;
        usize::try_from(c.len() as i128 * (to - from).max(0) / span).unwrap_or(0) + 2
    };
    out.reserve(chunks.iter().filter(overlapping).map(in_range).sum());
    for c in chunks {
        if c.is_empty() || c.last_t() < mint {
            continue;
        }
        if c.first_t() > maxt {
            break;
        }
        let mut it = c.iter();
        while let Some(x) = it.next() {
            if x.t > maxt {
                return;
            }
            if x.t >= mint {
                out.push(x);
            }
            // The samples repeating this one: skipped by arithmetic up to the range.
            if !it.repeated() {
                continue;
            }
            let repeats = it.take_repeats();
            if repeats == 0 {
                continue;
            }
            let delta = it.delta();
            // The first repeat at or after `mint` (only a corrupt chunk, or one wrapping
            // around i64, has a delta that is not positive: those go one by one).
            let first = match mint.checked_sub(x.t) {
                Some(gap) if delta > 0 && gap > 0 => {
                    (gap / delta + i64::from(gap % delta != 0)).clamp(1, i64::from(repeats) + 1)
                }
                _ => 1,
            };
            for i in first..=i64::from(repeats) {
                let t = x.t.wrapping_add(delta.wrapping_mul(i));
                if t > maxt {
                    return;
                }
                if t >= mint {
                    out.push(Sample { t, v: x.v });
                }
            }
        }
    }
}

/// What the head's and the ingest's tests compare.
#[cfg(test)]
impl Head {
    /// Every sample of the series `matchers` select, as (labels, [(t, value bits)]): bits, so
    /// that NaNs and stale markers compare too.
    pub(crate) fn samples_of(&self, matchers: &[Matcher]) -> Vec<(String, Vec<(i64, u64)>)> {
        self.select(matchers, i64::MIN, i64::MAX)
            .into_iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
