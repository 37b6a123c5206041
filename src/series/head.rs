//! The head: every series in memory, compressed, indexed, and shared by writers and readers.
//!
//! - **Series identity.** A series is its [`Labels`]. The head keeps one [`MemSeries`] per label
//!   set, found by a 64-bit hash of the labels (collisions are resolved by comparing labels).
//!   Label names and values are interned, so the thousands of series of a target share one
//!   [`LabelStr`] for `job`, for `instance`, for each metric name.
//! - **Samples** live in Gorilla [`Chunk`]s. A series normally has one, open for appends and
//!   holding its whole window: truncation re-encodes it without its oldest samples once they
//!   are stored and expired, and the checkpoint cuts the samples not stored yet into chunks of
//!   [`Head::chunk_samples`] (120 by default: 20 minutes at 10 s) for the store. Only a window
//!   longer than [`OPEN_CHUNK_LIMIT`] stored chunks takes more than one chunk in memory.
//!   Out-of-order samples are dropped and counted.
//! - **Index.** An inverted index `label name → value → series` (sorted by series id) answers
//!   `up{job="x"}` by intersecting two posting lists instead of scanning every series; regex
//!   matchers are run over the distinct values of their label, not over the series.
//! - **Scrapes.** [`Head::scrape_appender`] gives a batch appender per target that keeps a
//!   scrape cache, like Prometheus' `scrapeCache`: the exposed series text (as the parser hands
//!   it out) maps to its series, so an unchanged page appends without hashing label sets,
//!   building [`Labels`] or allocating. The cache is keyed by a 64-bit SipHash of that text
//!   under a key drawn at random when the head is made, not by the text itself (which would
//!   cost ~120 bytes a series): two texts of one target would have to collide under a secret
//!   key, about 10⁻¹⁴ for a page of 600 series, and a hostile target cannot aim for it. The cache also remembers which series the target
//!   exposed last time, so a series that disappears gets a stale marker at the next scrape
//!   ([`crate::series::STALE_NAN`]), and [`Head::mark_target_stale`] does the same for every
//!   series of a target that went down.
//!
//! # Locking
//!
//! One `RwLock` guards the index (taken for writing only to add or remove a series), one
//! `Mutex` each series' chunks, one `Mutex` the map of scrape caches (taken briefly to lend a
//! target's cache to its appender). No lock is held while another is taken, except the index
//! read lock around series-lock-free lookups, so there is no lock order to get wrong.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::size_of;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use promql_parser::label::{MatchOp, Matcher};

use super::chunk::{Chunk, ChunkError};
use super::labels::LabelStr;
use super::{
    Label, Labels, METRIC_NAME, STALE_NAN, Sample, SeriesSamples, SeriesSource, Timestamp,
    is_stale_nan,
};
use crate::scrape::parse::SampleRef;

/// Samples per stored chunk: 20 minutes of 10 s scrapes, as in Prometheus.
pub const DEFAULT_CHUNK_SAMPLES: usize = 120;

/// The open chunk takes this many stored chunks' worth of samples before a new one is cut. The
/// head's window (15 minutes by default) and the samples not stored yet (up to a stored chunk's
/// worth) fit in one chunk, so a series normally holds one chunk: no second chunk's fixed cost
/// (48 bytes and its own allocation) for each of tens of thousands of series. A window much
/// longer than a stored chunk (deployment gates) is held in several, so that a range read
/// decodes at most this many chunks' worth of samples before its range.
pub const OPEN_CHUNK_LIMIT: usize = 4;

/// Scrapes a cached series may be missing from its target's page before its cache entry is
/// dropped (Prometheus keeps them a little while too, so a flapping series is cheap).
const CACHE_KEEP_SCRAPES: u32 = 10;

/// A series' number, unique for the life of the head, increasing in creation order.
pub type SeriesId = u64;

/// FxHash (rustc's hasher): a multiply and a rotate per word. Fast on the short keys here
/// (label text, series text, precomputed hashes); not DoS-resistant, which is acceptable for
/// keys that come from configured targets.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const FX_K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(FX_K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Mix the high bits down: hashbrown indexes with the low bits.
        self.0 ^ (self.0 >> 32)
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// The hash that keys the series map.
fn labels_hash(labels: &Labels) -> u64 {
    let mut h = FastHasher::default();
    for l in labels.iter() {
        h.write(l.name().as_bytes());
        h.write_u8(0xff);
        h.write(l.value().as_bytes());
        h.write_u8(0xfe);
    }
    h.finish()
}

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
    /// The part of `bytes` held by the targets' scrape caches (exposed series text → series).
    pub scrape_cache_bytes: usize,
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

/// What a committed scrape did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrapeCommit {
    /// Samples stored.
    pub appended: usize,
    /// Samples dropped as out of order or duplicate timestamp with another value.
    pub out_of_order: usize,
    /// Series this target had not exposed before (new in the head or in its cache).
    pub series_added: usize,
    /// Stale markers written for series the target stopped exposing.
    pub stale_markers: usize,
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
    id: SeriesId,
    /// The label set, with interned strings.
    labels: Labels,
    /// The chunks; the last one is open for appends.
    data: Mutex<SeriesChunks>,
    /// Time of the series' last sample already in the store ([`NOT_STORED`] when none): the
    /// checkpoint writes only later samples, and truncation trims only earlier ones.
    /// [`REMOVED`] (set under the data lock) once truncation removed the series: holders of a
    /// stale `Arc` (scrape caches, the probe sink) must look the series up again. One word for
    /// both, so that the series with its inline chunk still fits jemalloc's 96-byte class;
    /// kept here rather than in a map by fingerprint beside the head, it goes when the series
    /// goes.
    persisted: AtomicI64,
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
    fn is_removed(&self) -> bool {
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

/// Interner of label strings and label pairs: one [`LabelStr`] per distinct label name or
/// value, and one shared [`Label`] per distinct pair, built from those strings (the index and
/// the matchers compare the strings by address).
#[derive(Default)]
struct Interner {
    set: FastSet<LabelStr>,
    pairs: hashbrown::HashTable<Label>,
}

/// The hash that keys the interned label pairs.
fn pair_hash(name: &str, value: &str) -> u64 {
    let mut h = FastHasher::default();
    h.write(name.as_bytes());
    h.write_u8(0xff);
    h.write(value.as_bytes());
    h.finish()
}

impl Interner {
    fn intern(&mut self, s: &str) -> LabelStr {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a = LabelStr::from(s);
        self.set.insert(a.clone());
        a
    }

    fn intern_label(&mut self, l: &Label) -> Label {
        let (name, value): (&str, &str) = (l.name(), l.value());
        let h = pair_hash(name, value);
        if let Some(p) = self
            .pairs
            .find(h, |p| **p.name() == *name && **p.value() == *value)
        {
            return p.clone();
        }
        let p = Label::new(self.intern(name), self.intern(value));
        self.pairs
            .insert_unique(h, p.clone(), |p| pair_hash(p.name(), p.value()));
        p
    }

    fn intern_labels(&mut self, labels: &Labels) -> Labels {
        Labels::from_sorted(labels.iter().map(|l| self.intern_label(l)).collect())
    }

    /// Drops pairs and strings no series uses any more.
    fn gc(&mut self) {
        self.pairs.retain(|p| p.strong_count() > 1);
        self.set
            .retain(|a| LabelStr::strong_count(a).is_none_or(|n| n > 1));
    }

    fn heap_bytes(&self) -> usize {
        self.set.capacity() * (size_of::<LabelStr>() + 1)
            + self
                .set
                .iter()
                .map(|s| s.len() + 2 * size_of::<usize>())
                .sum::<usize>()
            + self.pairs.capacity() * (size_of::<Label>() + 1)
            + self.pairs.len() * 4 * size_of::<usize>()
    }
}

/// The label names with posting lists: the metric name, which nearly every selector pins, and
/// the target's `job` and `instance`, which scoped rules and gate checks pin
/// (`x{job="api"}`, `x{instance="a"}`) to a small part of a metric's series. Every other label
/// (`le`, `status`, `method`, `probe`, …) is only counted by value: a matcher on it filters the
/// candidates of an indexed one, which [`Head::for_each_match`] does by pointer comparisons
/// anyway. A posting entry costs 8 bytes a series and label; the watch job's 67,000 series
/// carry 5.5 labels each, and this keeps 3 of them.
fn has_postings(name: &str) -> bool {
    matches!(name, "__name__" | "job" | "instance")
}

/// One label value: the series having it, sorted by id (for a name with postings, see
/// [`has_postings`]; empty otherwise), and how many series have it.
#[derive(Default)]
struct Posting {
    series: Vec<Arc<MemSeries>>,
    count: usize,
}

/// The values of one label name.
type Postings = FastMap<LabelStr, Posting>;

/// Series lookup and the inverted index.
#[derive(Default)]
struct Index {
    /// Every series but the newest, sorted by the hash of its labels ([`labels_hash`],
    /// recomputed from the labels when compared): 8 bytes a series. A hash table of series
    /// pointers kept at most 7/8 full held the watch job's 65,600 series in 131,072 slots of 9
    /// bytes (1.2 MB against 0.5); lookups by labels are rare (a series' first sample, and
    /// series whose holder has no cached pointer), so a binary search does. A series that
    /// truncation removed may stay until [`Index::remove_removed`], beside a live one with the
    /// same labels; lookups skip it.
    sorted: Vec<Arc<MemSeries>>,
    /// Series added since the last merge into `sorted` (see [`Index::insert`]).
    fresh: hashbrown::HashTable<Arc<MemSeries>>,
    /// Label name → value → series having it (see [`has_postings`]). Every name and value
    /// any series has is here, so matchers resolve to interned pointers.
    postings: FastMap<LabelStr, Postings>,
}

/// Fresh series are merged into [`Index::sorted`] once they are this many, or an eighth of it.
const MERGE_AT: usize = 256;

impl Index {
    fn lookup(&self, hash: u64, labels: &Labels) -> Option<&Arc<MemSeries>> {
        let live = |s: &&Arc<MemSeries>| s.labels == *labels && !s.is_removed();
        let from = self
            .sorted
            .partition_point(|s| labels_hash(&s.labels) < hash);
        self.sorted[from..]
            .iter()
            .take_while(|s| labels_hash(&s.labels) == hash)
            .find(live)
            .or_else(|| self.fresh.find(hash, |s| live(&s)))
    }

    /// Adds `s`, whose labels hash to `hash` ([`labels_hash`]; not kept in the series, where
    /// it would cost 8 bytes and a jemalloc size class). It goes into the small table of fresh
    /// series, which is merged into the sorted vector when it has grown by an eighth: a
    /// target's first scrape adds hundreds of series, and inserting each into the vector
    /// would move the whole of it every time.
    fn insert(&mut self, s: Arc<MemSeries>, hash: u64) {
        for l in s.labels.iter() {
            let posting = self
                .postings
                .entry(l.name().clone())
                .or_default()
                .entry(l.value().clone())
                .or_default();
            posting.count += 1;
            if !has_postings(l.name()) {
                continue;
            }
            let list = &mut posting.series;
            // Grow by an eighth, not double: posting lists stop growing once the targets'
            // pages are known, and doubling would leave them a quarter empty on average (a
            // metric name's list of the watch job holds 30,000 series in 32,768 slots when
            // doubled).
            if list.len() == list.capacity() {
                list.reserve_exact((list.len() / 8).max(4));
            }
            list.push(s.clone());
        }
        self.fresh
            .insert_unique(hash, s, |e| labels_hash(&e.labels));
        if self.fresh.len() >= MERGE_AT.max(self.sorted.len() / 8) {
            self.merge();
        }
    }

    /// Moves the fresh series into the sorted vector (one pass; the new vector exactly sized).
    fn merge(&mut self) {
        let mut fresh: Vec<(u64, Arc<MemSeries>)> = std::mem::take(&mut self.fresh)
            .into_iter()
            .map(|s| (labels_hash(&s.labels), s))
            .collect();
        fresh.sort_unstable_by_key(|(h, _)| *h);
        let mut merged = Vec::with_capacity(self.sorted.len() + fresh.len());
        let mut fresh = fresh.into_iter().peekable();
        for s in std::mem::take(&mut self.sorted) {
            let h = labels_hash(&s.labels);
            while let Some((_, f)) = fresh.next_if(|(fh, _)| *fh < h) {
                merged.push(f);
            }
            merged.push(s);
        }
        merged.extend(fresh.map(|(_, f)| f));
        self.sorted = merged;
    }

    /// Drops every series marked removed ([`MemSeries::is_removed`]) from the lookup, and
    /// `gone` (those series) from the postings.
    fn remove_removed(&mut self, gone: &[Arc<MemSeries>]) {
        self.sorted.retain(|s| !s.is_removed());
        self.fresh.retain(|s| !s.is_removed());
        for s in gone {
            self.remove_postings(s);
        }
    }

    fn remove_postings(&mut self, s: &Arc<MemSeries>) {
        for l in s.labels.iter() {
            if let Some(values) = self.postings.get_mut(l.name()) {
                if let Some(posting) = values.get_mut(l.value()) {
                    posting.series.retain(|e| !Arc::ptr_eq(e, s));
                    posting.count = posting.count.saturating_sub(1);
                    if posting.count == 0 {
                        values.remove(l.value());
                    }
                }
                if values.is_empty() {
                    self.postings.remove(l.name());
                }
            }
        }
    }

    fn all(&self) -> Vec<Arc<MemSeries>> {
        let mut v: Vec<Arc<MemSeries>> = self.each().cloned().collect();
        v.sort_unstable_by_key(|s| s.id);
        v
    }

    /// Every series in table order, borrowed: for walks that need no order and no snapshot
    /// (statistics, truncation), without the 66,000 reference-count increments, sort and
    /// decrements of [`Index::all`].
    fn each(&self) -> impl Iterator<Item = &Arc<MemSeries>> {
        self.sorted.iter().chain(self.fresh.iter())
    }

    fn len(&self) -> usize {
        self.sorted.len() + self.fresh.len()
    }

    /// Series that may match all `matchers` (a superset: the caller checks every matcher on
    /// each), from the posting lists of the matchers that cannot match an absent label. `None`
    /// means no matcher restricts: every series.
    ///
    /// With an equality matcher on a name with postings, the shortest such list is the answer,
    /// borrowed: a selector `x{job="a",instance="b"}` is answered by the few hundred series of its
    /// target instead of intersecting (and reference-counting) the tens of thousands that
    /// share its metric name. Only without one are the lists of regex matches merged. A
    /// matcher on a label without postings restricts only when no series has a value it
    /// accepts (then nothing matches).
    fn candidates<'s>(&'s self, matchers: &[Matcher]) -> Option<Candidates<'s>> {
        let mut best: Option<&'s [Arc<MemSeries>]> = None;
        for m in matchers {
            if m.op != MatchOp::Equal || m.is_match("") {
                continue;
            }
            let posting = self
                .postings
                .get(m.name.as_str())
                .and_then(|values| values.get(m.value.as_str()));
            let list = match posting {
                None => &[][..],
                Some(_) if !has_postings(&m.name) => continue,
                Some(p) => p.series.as_slice(),
            };
            if best.is_none_or(|b| list.len() < b.len()) {
                best = Some(list);
            }
        }
        if let Some(list) = best {
            return Some(Candidates::Borrowed(list));
        }
        let mut acc: Option<Vec<Arc<MemSeries>>> = None;
        for m in matchers {
            if m.is_match("") {
                continue;
            }
            let Some(values) = self.postings.get(m.name.as_str()) else {
                return Some(Candidates::Owned(Vec::new()));
            };
            if !has_postings(&m.name) {
                if values.keys().any(|v| m.is_match(v)) {
                    continue;
                }
                return Some(Candidates::Owned(Vec::new()));
            }
            let mut list: Vec<Arc<MemSeries>> = values
                .iter()
                .filter(|(value, _)| m.is_match(value))
                .flat_map(|(_, p)| p.series.iter().cloned())
                .collect();
            list.sort_unstable_by_key(|s| s.id);
            acc = Some(match acc {
                None => list,
                Some(prev) => intersect(&prev, &list),
            });
            if acc.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        acc.map(Candidates::Owned)
    }

    fn heap_bytes(&self) -> usize {
        let arc = size_of::<Arc<MemSeries>>();
        let mut b = self.sorted.capacity() * arc + self.fresh.capacity() * (arc + 1);
        let entry = size_of::<LabelStr>() + size_of::<Posting>() + 1;
        b += self.postings.capacity() * (size_of::<LabelStr>() + size_of::<FastMap<(), ()>>() + 1);
        for values in self.postings.values() {
            b += values.capacity() * entry;
            b += values
                .values()
                .map(|p| p.series.capacity() * arc)
                .sum::<usize>();
        }
        b
    }
}

/// The series a selection has to look at: a posting list of the index (borrowed under its read
/// lock) or a list built for the query.
enum Candidates<'s> {
    Borrowed(&'s [Arc<MemSeries>]),
    Owned(Vec<Arc<MemSeries>>),
}

impl Candidates<'_> {
    fn as_slice(&self) -> &[Arc<MemSeries>] {
        match self {
            Candidates::Borrowed(s) => s,
            Candidates::Owned(v) => v,
        }
    }
}

/// Merge-intersection of two id-sorted lists.
fn intersect(a: &[Arc<MemSeries>], b: &[Arc<MemSeries>]) -> Vec<Arc<MemSeries>> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].id.cmp(&b[j].id) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// One cached series of a target: 16 bytes, so that a target's cache of 590 series takes
/// 24 KiB of hash table, not 32.
struct CacheEntry {
    series: Arc<MemSeries>,
    /// The committed scrape number that last exposed it ([`NEVER`] until its first commit).
    /// Scrape numbers are 31 bits: a target scraped every second reaches 2^31 in 68 years.
    last_seen: u32,
    /// The scrape attempt that last exposed it (becomes `last_seen` on commit), with
    /// [`UNTRACKED`] set for a sample with an explicit timestamp: Prometheus does not mark
    /// those stale.
    pending: u32,
}

impl CacheEntry {
    /// The scrape attempt that last exposed the series.
    #[inline]
    fn pending_seen(&self) -> u32 {
        self.pending & !UNTRACKED
    }

    /// False for samples with an explicit timestamp.
    #[inline]
    fn track_staleness(&self) -> bool {
        self.pending & UNTRACKED == 0
    }

    /// Records that scrape attempt `iter` exposed the series, with or without a timestamp.
    #[inline]
    fn seen(iter: u32, explicit_timestamp: bool) -> u32 {
        match explicit_timestamp {
            true => iter | UNTRACKED,
            false => iter,
        }
    }
}

/// `last_seen` of a cache entry created by a scrape not yet committed.
const NEVER: u32 = u32::MAX;
/// Flag bit of [`CacheEntry::pending`].
const UNTRACKED: u32 = 1 << 31;

/// The scrape number after `iter`, in 31 bits.
#[inline]
fn next_scrape(iter: u32) -> u32 {
    (iter + 1) & !UNTRACKED
}

/// A target's cached series by key: a vector sorted by key, exactly as long as the page, and
/// a hash table only for the series a scrape in progress meets for the first time (merged in
/// at commit). A hash table of 590 entries has 1,024 slots (25 KiB); the vector takes 14 KiB,
/// and a lookup is a binary search in it.
#[derive(Default)]
struct CacheEntries {
    /// Sorted by key.
    sorted: Vec<(u64, CacheEntry)>,
    /// Added since the last merge.
    fresh: FastMap<u64, CacheEntry>,
}

impl CacheEntries {
    fn get_mut(&mut self, key: u64) -> Option<&mut CacheEntry> {
        match self.sorted.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => self.sorted.get_mut(i).map(|(_, e)| e),
            Err(_) => self.fresh.get_mut(&key),
        }
    }

    /// Adds or replaces the entry of `key`.
    fn insert(&mut self, key: u64, e: CacheEntry) {
        match self.get_mut(key) {
            Some(old) => *old = e,
            None => {
                self.fresh.insert(key, e);
            }
        }
    }

    /// Moves the fresh entries into the sorted vector, growing it exactly.
    fn merge(&mut self) {
        if self.fresh.is_empty() {
            return;
        }
        self.sorted.reserve_exact(self.fresh.len());
        self.sorted.extend(std::mem::take(&mut self.fresh));
        self.sorted.sort_unstable_by_key(|(k, _)| *k);
    }

    fn len(&self) -> usize {
        self.sorted.len() + self.fresh.len()
    }

    fn values(&self) -> impl Iterator<Item = &CacheEntry> {
        self.sorted
            .iter()
            .map(|(_, e)| e)
            .chain(self.fresh.values())
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut CacheEntry> {
        self.sorted
            .iter_mut()
            .map(|(_, e)| e)
            .chain(self.fresh.values_mut())
    }

    /// Keeps the entries for which `keep` is true; the vector shrinks once it is less than
    /// half full.
    fn retain(&mut self, mut keep: impl FnMut(&CacheEntry) -> bool) {
        self.sorted.retain(|(_, e)| keep(e));
        self.fresh.retain(|_, e| keep(e));
        if self.sorted.len() < self.sorted.capacity() / 2 {
            self.sorted.shrink_to_fit();
        }
    }

    fn heap_bytes(&self) -> usize {
        self.sorted.capacity() * size_of::<(u64, CacheEntry)>()
            + self.fresh.capacity() * (size_of::<u64>() + size_of::<CacheEntry>() + 1)
    }
}

/// A target's scrape cache (Prometheus' `scrapeCache`).
#[derive(Default)]
struct TargetCache {
    /// Keyed hash of the exposed series text ([`Head::cache_key`]) → its series.
    entries: CacheEntries,
    /// Committed scrapes so far; entries with `last_seen == iter` were on the last page.
    iter: u32,
    /// Samples of the scrape in progress, applied on commit.
    pending: Vec<(Arc<MemSeries>, Timestamp, f64)>,
}

impl TargetCache {
    fn heap_bytes(&self) -> usize {
        self.entries.heap_bytes()
            + self.pending.capacity() * size_of::<(Arc<MemSeries>, Timestamp, f64)>()
    }
}

/// The in-memory series store. `Send + Sync`; share it as `Arc<Head>`.
pub struct Head {
    /// Series lookup and postings.
    index: RwLock<Index>,
    /// Label strings shared by all series.
    interner: Mutex<Interner>,
    /// Scrape caches by target key; an appender borrows its target's cache while it runs.
    targets: Mutex<FastMap<String, TargetCache>>,
    /// Next series id.
    next_id: AtomicU64,
    /// Samples per stored chunk.
    chunk_samples: usize,
    /// Out-of-order samples dropped since start.
    out_of_order: AtomicU64,
    /// Stale markers written since start.
    stale_markers: AtomicU64,
    /// SipHash with a random key, for scrape-cache keys.
    cache_keys: std::collections::hash_map::RandomState,
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
            targets: Mutex::default(),
            next_id: AtomicU64::new(1),
            chunk_samples: n.clamp(1, usize::from(u16::MAX)),
            out_of_order: AtomicU64::new(0),
            stale_markers: AtomicU64::new(0),
            cache_keys: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The scrape-cache key of an exposed series text.
    fn cache_key(&self, text: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.cache_keys, text)
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
    /// other single writers; scrapes use [`Head::scrape_appender`].
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
    fn append_to(&self, s: &Arc<MemSeries>, t: Timestamp, v: f64) -> AppendOutcome {
        let outcome = {
            let mut chunks = lock(&s.data);
            if !s.is_removed() {
                Some(append_chunks(&mut chunks, t, v, self.chunk_samples))
            } else {
                None
            }
        };
        let outcome = match outcome {
            Some(o) => o,
            None => {
                let fresh = self.series(&s.labels);
                append_chunks(&mut lock(&fresh.data), t, v, self.chunk_samples)
            }
        };
        if outcome == AppendOutcome::OutOfOrder {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
        } else if outcome == AppendOutcome::Appended && is_stale_nan(v) {
            self.stale_markers.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    /// Starts appending one scrape of `target` (any stable key, e.g. `job/instance`) taken at
    /// `t`. `target_labels` (job, instance, configured labels) are added to every series and
    /// win over exposed labels of the same name, which are kept as `exported_<name>`
    /// (Prometheus' `honor_labels: false`).
    ///
    /// Nothing is visible until [`ScrapeAppender::commit`]. One appender per target at a
    /// time: a second concurrent one for the same target would start from an empty cache.
    pub fn scrape_appender(
        &self,
        target: &str,
        target_labels: &Labels,
        t: Timestamp,
    ) -> ScrapeAppender<'_> {
        let mut cache = lock(&self.targets).remove(target).unwrap_or_default();
        // Sized by the last page; freed at commit (kept, it would hold 24 bytes a series of
        // every target between scrapes).
        cache.pending.reserve_exact(cache.entries.len());
        ScrapeAppender {
            head: self,
            target: target.to_owned(),
            target_labels: target_labels.clone(),
            t,
            cache: Some(cache),
            series_added: 0,
        }
    }

    /// The target is down or gone: every series it exposed on its last successful scrape
    /// gets a stale marker at `t`, so queries stop seeing them at once instead of after the
    /// 5 minute lookback. Returns the number of markers written. The cache is kept so the
    /// target is cheap to resume.
    pub fn mark_target_stale(&self, target: &str, t: Timestamp) -> usize {
        let Some(mut cache) = lock(&self.targets).remove(target) else {
            return 0;
        };
        let n = self.stale_previous(&mut cache, t);
        // Nothing was exposed "last time" any more.
        cache.iter = next_scrape(cache.iter);
        lock(&self.targets).insert(target.to_owned(), cache);
        n
    }

    /// Marks the target stale at `t` and forgets its scrape cache (target removed from the
    /// config).
    pub fn remove_target(&self, target: &str, t: Timestamp) -> usize {
        let n = self.mark_target_stale(target, t);
        lock(&self.targets).remove(target);
        n
    }

    /// Stale markers at `t` for entries on the last committed page.
    fn stale_previous(&self, cache: &mut TargetCache, t: Timestamp) -> usize {
        let mut n = 0;
        for e in cache.entries.values() {
            if e.last_seen == cache.iter
                && e.track_staleness()
                && self.append_to(&e.series, t, STALE_NAN) == AppendOutcome::Appended
            {
                n += 1;
            }
        }
        n
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
            // Scrape caches may still hold removed series; drop those entries so the strings
            // can go.
            for cache in lock(&self.targets).values_mut() {
                cache.entries.retain(|e| !e.series.is_removed());
            }
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
        st.scrape_cache_bytes = lock(&self.targets)
            .values()
            .map(TargetCache::heap_bytes)
            .sum::<usize>();
        st.bytes += st.scrape_cache_bytes;
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

/// A label matcher resolved against the index, so that checking a series is pointer
/// comparisons: every label name and value of a series is an interned [`LabelStr`] shared with
/// the posting lists, so "has one of the values this matcher accepts" is "its value's pointer
/// is in this set", whatever the matcher (a regex runs once per distinct value, not per series).
struct InternedMatcher {
    /// The address of the interned label name (only compared, never dereferenced), or `None`
    /// when no series has the label.
    name: Option<*const u8>,
    /// Addresses of the interned values the matcher accepts.
    values: FastSet<usize>,
    /// Whether a series without the label matches (the matcher accepts "").
    absent: bool,
}

impl InternedMatcher {
    #[inline]
    fn matches(&self, labels: &Labels) -> bool {
        let Some(name) = self.name else {
            return self.absent;
        };
        match labels.iter().find(|l| l.name().as_ptr() == name) {
            Some(l) => self.values.contains(&(l.value().as_ptr() as usize)),
            None => self.absent,
        }
    }
}

impl Index {
    fn intern_matcher(&self, m: &Matcher) -> InternedMatcher {
        let absent = m.is_match("");
        match self.postings.get_key_value(m.name.as_str()) {
            None => InternedMatcher {
                name: None,
                values: FastSet::default(),
                absent,
            },
            Some((name, values)) => {
                let accepted = values.keys().filter(|v| match m.op {
                    MatchOp::Equal => ***v == *m.value,
                    _ => m.is_match(v),
                });
                InternedMatcher {
                    name: Some(name.as_ptr()),
                    values: accepted.map(|v| v.as_ptr() as usize).collect(),
                    absent,
                }
            }
        }
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

/// Appends one scrape of one target; see [`Head::scrape_appender`].
///
/// Dropping it without [`commit`](Self::commit) is [`rollback`](Self::rollback).
pub struct ScrapeAppender<'h> {
    head: &'h Head,
    /// Key of the target's scrape cache.
    target: String,
    /// Labels added to every series of the target.
    target_labels: Labels,
    /// The scrape's timestamp, used for samples without one and for stale markers.
    t: Timestamp,
    /// The target's cache, lent by the head until commit or rollback.
    cache: Option<TargetCache>,
    /// Series first seen by this target in this scrape.
    series_added: usize,
}

impl ScrapeAppender<'_> {
    /// Adds a parsed sample: the sample's own timestamp if it has one (`honor_timestamps`),
    /// else the scrape's. On an unchanged page this is a hash lookup of the exposed series
    /// text and a push: no label set is built, nothing is allocated.
    pub fn add(&mut self, s: &SampleRef<'_>) {
        // Moved out for the closure's sake and back: a move, no allocation.
        let target_labels = std::mem::take(&mut self.target_labels);
        self.add_keyed(s.series, s.timestamp_ms, s.value, || {
            exposed_labels(s, &target_labels)
        });
        self.target_labels = target_labels;
    }

    /// Adds a sample of the series identified by `key` (any text stable across scrapes, e.g.
    /// the exposed series text); `labels` builds its full label set on a cache miss.
    pub fn add_keyed(
        &mut self,
        key: &str,
        timestamp_ms: Option<Timestamp>,
        value: f64,
        labels: impl FnOnce() -> Labels,
    ) {
        let Some(cache) = self.cache.as_mut() else {
            return;
        };
        let iter = next_scrape(cache.iter);
        let t = timestamp_ms.unwrap_or(self.t);
        let key = self.head.cache_key(key);
        let series = match cache.entries.get_mut(key) {
            Some(e) if !e.series.is_removed() => {
                if e.last_seen != cache.iter && e.pending_seen() != iter {
                    self.series_added += 1;
                }
                e.pending = CacheEntry::seen(iter, timestamp_ms.is_some());
                e.series.clone()
            }
            _ => {
                let series = self.head.series(&labels());
                self.series_added += 1;
                cache.entries.insert(
                    key,
                    CacheEntry {
                        series: series.clone(),
                        last_seen: NEVER,
                        pending: CacheEntry::seen(iter, timestamp_ms.is_some()),
                    },
                );
                series
            }
        };
        cache.pending.push((series, t, value));
    }

    /// Makes the scrape visible: appends its samples and writes stale markers, at the
    /// scrape's timestamp, for series the previous page had and this one lacks.
    pub fn commit(mut self) -> ScrapeCommit {
        let mut out = ScrapeCommit {
            series_added: self.series_added,
            ..ScrapeCommit::default()
        };
        let Some(mut cache) = self.cache.take() else {
            return out;
        };
        for (series, t, v) in std::mem::take(&mut cache.pending) {
            match self.head.append_to(&series, t, v) {
                AppendOutcome::Appended => out.appended += 1,
                AppendOutcome::OutOfOrder => out.out_of_order += 1,
                AppendOutcome::Duplicate => {}
            }
        }
        cache.entries.merge();
        let prev = cache.iter;
        let cur = next_scrape(prev);
        for e in cache.entries.values_mut() {
            if e.pending_seen() == cur {
                e.last_seen = cur;
            } else if e.last_seen == prev
                && e.track_staleness()
                && self.head.append_to(&e.series, self.t, STALE_NAN) == AppendOutcome::Appended
            {
                out.stale_markers += 1;
            }
        }
        cache
            .entries
            .retain(|e| (cur.wrapping_sub(e.last_seen) & !UNTRACKED) <= CACHE_KEEP_SCRAPES);
        cache.iter = cur;
        lock(&self.head.targets).insert(std::mem::take(&mut self.target), cache);
        out
    }

    /// The scrape failed (unreachable target, parse error, limit exceeded): nothing of it is
    /// stored, and as in Prometheus (which appends an empty page then) every series of the
    /// last successful scrape is marked stale at this scrape's timestamp. Returns the number
    /// of stale markers.
    pub fn rollback(mut self) -> usize {
        self.rollback_inner()
    }

    fn rollback_inner(&mut self) -> usize {
        let Some(mut cache) = self.cache.take() else {
            return 0;
        };
        cache.pending = Vec::new();
        let n = self.head.stale_previous(&mut cache, self.t);
        // This attempt uses up a number, so the last page no longer counts as "previous".
        cache.iter = next_scrape(cache.iter);
        cache.entries.retain(|e| e.last_seen != NEVER);
        cache.entries.merge();
        lock(&self.head.targets).insert(std::mem::take(&mut self.target), cache);
        n
    }
}

impl Drop for ScrapeAppender<'_> {
    fn drop(&mut self) {
        self.rollback_inner();
    }
}

/// The label set of an exposed sample: `__name__`, the exposed labels (empty values dropped,
/// escapes resolved), and the target's labels, which win over exposed ones of the same name;
/// those are kept as `exported_<name>` like Prometheus does.
fn exposed_labels(s: &SampleRef<'_>, target_labels: &Labels) -> Labels {
    let mut v: Vec<(String, String)> = Vec::with_capacity(s.labels.len() + target_labels.len() + 1);
    v.push((METRIC_NAME.to_owned(), s.name.to_owned()));
    for (name, value) in s.labels.iter() {
        if value.is_empty() {
            continue;
        }
        let mut name = name.to_owned();
        while target_labels.get(&name).is_some() {
            name.insert_str(0, "exported_");
        }
        v.push((name, value.into_owned()));
    }
    for l in target_labels.iter() {
        v.push((l.name().to_string(), l.value().to_string()));
    }
    Labels::new(v)
}

#[cfg(test)]
mod tests;
