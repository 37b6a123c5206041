//! Batch appends with Prometheus' staleness, for every writer that delivers a whole page at a
//! time: scrape targets and the rules engine's `ALERTS`.
//!
//! Each source keeps a scrape cache, like Prometheus' `scrapeCache`: the exposed series text
//! (as the parser hands it out) maps to its series, so an unchanged page appends without
//! hashing label sets, building [`Labels`] or allocating. The cache is keyed by a 64-bit
//! SipHash of that text under a key drawn at random when the [`Ingest`] is made, not by the
//! text itself (which would cost ~120 bytes a series): two texts of one target would have to
//! collide under a secret key, and a hostile target cannot aim for it. The cache also
//! remembers which series the source exposed last time, so a series that disappears gets a
//! stale marker at the next scrape ([`STALE_NAN`]), and [`Ingest::mark_target_stale`] does the
//! same for every series of a target that went down.

pub mod metadata;

use std::collections::hash_map::RandomState;
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::series::hash::FastMap;
use crate::series::head::{AppendOutcome, Head, MemSeries};
use crate::series::labels::LabelStr;
use crate::series::{Label, Labels, STALE_NAN, Timestamp};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Scrapes a cached series may be missing from its target's page before its cache entry is
/// dropped (Prometheus keeps them a little while too, so a flapping series is cheap).
const CACHE_KEEP_SCRAPES: u32 = 10;

/// What a committed scrape did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// Samples stored.
    pub appended: usize,
    /// Samples dropped as out of order or duplicate timestamp with another value.
    pub out_of_order: usize,
    /// Series this target had not exposed before (new in the head or in its cache).
    pub series_added: usize,
    /// Stale markers written for series the target stopped exposing.
    pub stale_markers: usize,
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
    /// The metric names of the last committed page, marked as arrivals at each commit; found
    /// again only when the page's series change.
    names: Vec<LabelStr>,
}

impl TargetCache {
    fn heap_bytes(&self) -> usize {
        self.entries.heap_bytes()
            + self.pending.capacity() * size_of::<(Arc<MemSeries>, Timestamp, f64)>()
            + self.names.capacity() * size_of::<LabelStr>()
    }
}

/// Adds the metric name of `series` to `names` unless it is there. `prev` is the `__name__`
/// pair of the previous series: a page lists each family's series together, and interned
/// pairs compare by address, so most series cost one pointer comparison.
fn add_name<'s>(names: &mut Vec<LabelStr>, prev: &mut Option<&'s Label>, series: &'s MemSeries) {
    let Some(l) = series.labels().metric_name_label() else {
        return;
    };
    if prev.is_some_and(|p| Label::ptr_eq(p, l)) {
        return;
    }
    *prev = Some(l);
    if !names.iter().any(|n| n == l.value()) {
        names.push(l.value().clone());
    }
}

/// The head's batch writers: one scrape cache per source, lent to its appender while a page
/// is appended. `Send + Sync`; share it as `Arc<Ingest>`.
pub struct Ingest {
    head: Arc<Head>,
    /// Scrape caches by source key; an appender borrows its source's cache while it runs.
    caches: Mutex<FastMap<String, TargetCache>>,
    /// SipHash with a random key, for cache keys.
    keys: RandomState,
    /// Heap bytes of the caches at rest, kept up to date as each is given back.
    bytes: AtomicUsize,
    /// Each source's metric metadata (`# TYPE`, `# HELP`, `# UNIT`), for the API.
    metadata: Arc<metadata::Metadata>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

impl Ingest {
    /// Batch writers into `head`, with no cache yet.
    pub fn new(head: Arc<Head>) -> Self {
        Ingest {
            head,
            caches: Mutex::default(),
            keys: RandomState::new(),
            bytes: AtomicUsize::new(0),
            metadata: Arc::default(),
        }
    }

    /// Each source's metric metadata: written by the scrape loops, read by the API.
    pub fn metadata(&self) -> &Arc<metadata::Metadata> {
        &self.metadata
    }

    /// The head written to.
    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// Heap bytes held by the scrape caches (exposed series text → series).
    pub fn cache_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The cache key of an exposed series text.
    fn cache_key(&self, text: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.keys, text)
    }

    /// Borrows a source's cache (a new one if it has none).
    fn take(&self, target: &str) -> Option<TargetCache> {
        let cache = lock(&self.caches).remove(target)?;
        self.bytes.fetch_sub(cache.heap_bytes(), Ordering::Relaxed);
        Some(cache)
    }

    /// Gives a source's cache back, without the entries of series that truncation removed
    /// from the head (so their strings can go).
    fn give(&self, target: String, mut cache: TargetCache) {
        cache.entries.retain(|e| !e.series.is_removed());
        self.bytes.fetch_add(cache.heap_bytes(), Ordering::Relaxed);
        lock(&self.caches).insert(target, cache);
    }
    /// Starts appending one scrape of `target` (any stable key, e.g. `job/instance`) taken at
    /// `t`. `target_labels` (job, instance, configured labels) are handed to the label builder
    /// of each new series, which adds them.
    ///
    /// Nothing is visible until [`Appender::commit`]. One appender per target at a
    /// time: a second concurrent one for the same target would start from an empty cache.
    pub fn appender(&self, target: &str, target_labels: &Labels, t: Timestamp) -> Appender<'_> {
        let mut cache = self.take(target).unwrap_or_default();
        // Sized by the last page; freed at commit (kept, it would hold 24 bytes a series of
        // every target between scrapes).
        cache.pending.reserve_exact(cache.entries.len());
        Appender {
            ingest: self,
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
        let Some(mut cache) = self.take(target) else {
            return 0;
        };
        let n = self.stale_previous(&mut cache, t);
        // Nothing was exposed "last time" any more.
        cache.iter = next_scrape(cache.iter);
        self.give(target.to_owned(), cache);
        n
    }

    /// Marks the target stale at `t` and forgets its scrape cache and metadata (target removed from the
    /// config).
    pub fn remove_target(&self, target: &str, t: Timestamp) -> usize {
        let n = self.mark_target_stale(target, t);
        if let Some(cache) = self.take(target) {
            drop(cache);
        }
        self.metadata.remove(target);
        n
    }

    /// Stale markers at `t` for entries on the last committed page.
    fn stale_previous(&self, cache: &mut TargetCache, t: Timestamp) -> usize {
        let mut n = 0;
        let (mut names, mut prev) = (Vec::new(), None);
        for e in cache.entries.values() {
            if e.last_seen == cache.iter
                && e.track_staleness()
                && !e.series.is_removed()
                && self.head.append_to(&e.series, t, STALE_NAN) == AppendOutcome::Appended
            {
                n += 1;
                add_name(&mut names, &mut prev, &e.series);
            }
        }
        // A rule over these series sees them end: it runs now, not a tick later.
        cache.names.clear();
        self.head.arrivals().mark(&names);
        n
    }
}

/// Appends one page of one source; see [`Ingest::appender`].
///
/// Dropping it without [`commit`](Self::commit) is [`rollback`](Self::rollback).
pub struct Appender<'h> {
    ingest: &'h Ingest,
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

impl Appender<'_> {
    /// Adds a sample of the series identified by `key` (any text stable across scrapes, e.g.
    /// the exposed series text); `labels` builds its full label set on a cache miss, from the
    /// source's labels.
    pub fn add_keyed(
        &mut self,
        key: &str,
        timestamp_ms: Option<Timestamp>,
        value: f64,
        labels: impl FnOnce(&Labels) -> Labels,
    ) {
        let Some(cache) = self.cache.as_mut() else {
            return;
        };
        let iter = next_scrape(cache.iter);
        let t = timestamp_ms.unwrap_or(self.t);
        let key = self.ingest.cache_key(key);
        let series = match cache.entries.get_mut(key) {
            Some(e) if !e.series.is_removed() => {
                if e.last_seen != cache.iter && e.pending_seen() != iter {
                    self.series_added += 1;
                }
                e.pending = CacheEntry::seen(iter, timestamp_ms.is_some());
                e.series.clone()
            }
            _ => {
                let series = self.ingest.head.series(&labels(&self.target_labels));
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
    pub fn commit(mut self) -> Commit {
        let mut out = Commit {
            series_added: self.series_added,
            ..Commit::default()
        };
        let Some(mut cache) = self.cache.take() else {
            return out;
        };
        let pending = std::mem::take(&mut cache.pending);
        for (series, t, v) in &pending {
            match self.ingest.head.append_to(series, *t, *v) {
                AppendOutcome::Appended => out.appended += 1,
                AppendOutcome::OutOfOrder => out.out_of_order += 1,
                AppendOutcome::Duplicate => {}
            }
        }
        cache.entries.merge();
        let prev = cache.iter;
        let cur = next_scrape(prev);
        let (mut gone, mut gone_prev) = (Vec::new(), None);
        for e in cache.entries.values_mut() {
            if e.pending_seen() == cur {
                e.last_seen = cur;
            } else if e.last_seen == prev
                && e.track_staleness()
                && self.ingest.head.append_to(&e.series, self.t, STALE_NAN)
                    == AppendOutcome::Appended
            {
                out.stale_markers += 1;
                add_name(&mut gone, &mut gone_prev, &e.series);
            }
        }
        if out.series_added > 0 || out.stale_markers > 0 || cache.names.is_empty() {
            let (mut names, mut prev) = (std::mem::take(&mut cache.names), None);
            names.clear();
            for (series, _, _) in &pending {
                add_name(&mut names, &mut prev, series);
            }
            names.shrink_to_fit();
            cache.names = names;
        }
        drop(pending);
        let arrivals = self.ingest.head.arrivals();
        arrivals.mark(cache.names.iter().chain(&gone));
        cache
            .entries
            .retain(|e| (cur.wrapping_sub(e.last_seen) & !UNTRACKED) <= CACHE_KEEP_SCRAPES);
        cache.iter = cur;
        self.ingest.give(std::mem::take(&mut self.target), cache);
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
        let n = self.ingest.stale_previous(&mut cache, self.t);
        // This attempt uses up a number, so the last page no longer counts as "previous".
        cache.iter = next_scrape(cache.iter);
        cache.entries.retain(|e| e.last_seen != NEVER);
        cache.entries.merge();
        self.ingest.give(std::mem::take(&mut self.target), cache);
        n
    }
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        self.rollback_inner();
    }
}

#[cfg(test)]
mod tests;
