//! The checkpointer: the head → store flow. The samples of each series go to the sample store
//! in chunks of [`Head::chunk_samples`] (checked every 30 s), every sample not stored yet on a
//! clean stop, and on start the head gets back the window that rules and gate baselines need.
//!
//! A series' open chunk in the head holds its whole window, stored samples first (see
//! [`crate::series::head::OPEN_CHUNK_LIMIT`]); once a stored chunk's worth of its samples is
//! not stored, the checkpoint re-encodes those into a chunk of their own for the store. Each
//! series remembers how far it is stored ([`MemSeries::persisted_until`]), and truncation trims
//! only stored samples; chunks loaded at start count as stored and are not written again.
//!
//! Each checkpoint hands its chunks to the store in batches ([`SampleStore::put_chunks`]),
//! which the store keeps as blocks of many series: one stored record per checkpoint rather
//! than one per chunk. The open chunks go to the store's snapshot as they are, stored samples
//! included: the loader skips samples a series already has. A chunk written again after a
//! failed write starts where the first copy did and runs longer: the loader keeps the longest
//! copy of chunks that start at the same time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::StoreError;
use super::samples::{BLOCK_MAX_BYTES, ChunkRef, OPEN_SHARDS, OpenChunk, SampleStore};
use crate::clock::Clock;
use crate::liveness::Heartbeat;
use crate::series::head::{Head, MemSeries, unstored_samples};
use crate::series::{Labels, Timestamp};
use crate::telemetry::Telemetry;

/// A series' stored chunks as (min_t, max_t, bytes), in time order.
type StoredChunks = Vec<(Timestamp, Timestamp, Vec<u8>)>;

/// Calls `each` with every series that has stored chunks since `min_t`, and its chunks as
/// (min_t, max_t, bytes) in time order: the store hands out a series' chunks one after the
/// other. A chunk that cannot be read is logged and skipped.
fn for_each_stored_series(
    store: &SampleStore,
    min_t: Timestamp,
    mut each: impl FnMut(Labels, StoredChunks),
) {
    let mut current: Option<(Labels, StoredChunks)> = None;
    for c in store.chunks_since(min_t) {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "a stored chunk could not be read");
                continue;
            }
        };
        match &mut current {
            Some((l, v)) if *l == c.labels => v.push((c.min_t, c.max_t, c.bytes)),
            _ => {
                if let Some((l, v)) = current.take() {
                    each(l, v);
                }
                current = Some((c.labels, vec![(c.min_t, c.max_t, c.bytes)]));
            }
        }
    }
    if let Some((l, v)) = current {
        each(l, v);
    }
}

/// What [`load_head`] brought back.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Series loaded.
    pub series: usize,
    /// Samples loaded.
    pub samples: usize,
}

/// Loads the chunks of the last `window` into the head.
pub fn load_head(head: &Head, store: &SampleStore, now_ms: Timestamp, window: Duration) -> Loaded {
    let min_t = now_ms - window.as_millis() as i64;
    head.mark_complete_since(min_t);
    let mut loaded = Loaded::default();
    for_each_stored_series(store, min_t, |labels, chunks| {
        // Keep the longest copy of chunks with the same start; drop true overlaps.
        let mut kept: StoredChunks = Vec::new();
        for c in chunks {
            match kept.last_mut() {
                Some(last) if last.0 == c.0 => {
                    if c.1 >= last.1 {
                        *last = c;
                    }
                }
                Some(last) if c.0 <= last.1 => {}
                _ => kept.push(c),
            }
        }
        match head.load_series(&labels, kept.iter().map(|c| c.2.as_slice())) {
            Ok(n) => {
                loaded.series += 1;
                loaded.samples += n;
                // Chunks that came from the store are not written again.
                if let Some(last) = kept.last() {
                    head.series(&labels).set_persisted_until(last.1);
                }
            }
            Err(e) => warn!(series = %labels, error = %e, "stored chunks not loaded"),
        }
    });
    // Then the open chunks of the last checkpoint: what a crash left outside closed chunks.
    // After a clean stop they are older copies of stored chunks and are refused as overlaps.
    match store.open_chunks() {
        Ok(open) => {
            for (labels, bytes) in open {
                if let Ok(n) = head.load_series(&labels, [bytes.as_slice()]) {
                    loaded.samples += n;
                }
            }
        }
        Err(e) => warn!(error = %e, "open chunks of the last checkpoint not loaded"),
    }
    loaded
}

/// Widens the head from `from` to `to` of history (a reload that added a long-range rule or
/// gate): each series gets the stored samples before its first one in the head, so the new
/// rule sees the same history a restart would have loaded. Returns the samples added.
pub fn backfill_head(
    head: &Head,
    store: &SampleStore,
    now_ms: Timestamp,
    from: Duration,
    to: Duration,
) -> usize {
    if to <= from {
        return 0;
    }
    let min_t = now_ms - to.as_millis() as i64;
    let mut added = 0;
    for_each_stored_series(store, min_t, |labels, chunks| {
        let mut samples: Vec<crate::series::Sample> = Vec::new();
        for (_, _, bytes) in chunks {
            match crate::series::chunk::Chunk::from_bytes(&bytes) {
                Ok(chunk) => samples.extend(chunk.iter().filter(|x| x.t >= min_t)),
                Err(e) => {
                    warn!(series = %labels, error = %e, "a stored chunk could not be decoded")
                }
            }
        }
        samples.sort_by_key(|x| x.t);
        samples.dedup_by_key(|x| x.t);
        added += head.backfill(&labels, &samples);
    });
    added
}

/// Writes chunks to the store and trims the head to its window.
pub struct Checkpointer {
    /// The head.
    pub head: Arc<Head>,
    /// Where the chunks go.
    pub samples: SampleStore,
    /// The config in force: the head keeps [`head_window`] of it in memory, so a reload that
    /// adds a long-range rule or gate widens the window at the next checkpoint.
    pub config: crate::config::Current,
    /// Time between checkpoints.
    pub every: Duration,
    /// Wall time.
    pub clock: Clock,
    /// Metrics.
    pub telemetry: Arc<Telemetry>,
    /// Liveness.
    pub heartbeat: Heartbeat,
}

impl Checkpointer {
    /// Every 30 s: store newly closed chunks, drop what is older than the window. On
    /// `shutdown`: store every chunk, open ones included.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.every.max(Duration::from_millis(500)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tick.tick() => false,
            };
            let head = self.head.clone();
            let store = self.samples.clone();
            let window = head_window(&self.config.get());
            let now = self.clock.now_ms();
            let r = tokio::task::spawn_blocking(move || {
                // Truncation drops what is older than the window: an open chunk that stopped
                // before it (a series gone from its target) is stored as if closed first.
                let cutoff = now - window.as_millis() as i64;
                let written = checkpoint(&head, &store, stopping, cutoff);
                // Trim closed chunks only once all are stored (`Head::truncate_and_trim`).
                // The statistics come from the same walk over every series (milliseconds, off
                // the runtime's worker too).
                let st = match stopping {
                    false => head.truncate_with_stats(cutoff, written.is_ok()),
                    true => head.stats(),
                };
                (written, st)
            })
            .await;
            let r = r.map(|(written, st)| {
                self.telemetry.head_series.set(st.series as i64);
                self.telemetry.head_bytes.set(st.bytes as i64);
                self.telemetry.head_chunks.set(st.chunks as i64);
                self.telemetry.head_samples.set(st.samples as i64);
                self.telemetry.head_chunk_bytes.set(st.chunk_bytes as i64);
                written
            });
            match r {
                Ok(Ok(n)) => {
                    if stopping {
                        info!(chunks = n, "head written to the store");
                    }
                }
                Ok(Err(e)) => {
                    self.telemetry
                        .store_write_failures
                        .with_label_values(&["chunks"])
                        .inc();
                    self.telemetry.store_up.set(0);
                    error!(error = %e, "cannot write samples to the store; the head keeps them in memory");
                }
                Err(e) => error!(error = %e, "checkpoint task failed"),
            }
            self.heartbeat.beat();
            if stopping {
                return;
            }
        }
    }
}

/// Chunk bytes a checkpoint gathers before handing them to the store in one
/// [`SampleStore::put_chunks`]: one block's worth, so the copy a checkpoint holds stays small
/// even on stop, when every open chunk is written.
const CHECKPOINT_BATCH_BYTES: usize = BLOCK_MAX_BYTES;

/// A chunk copied out of the head (the head's locks are not held while the store writes);
/// its bytes are a range of the batch's one buffer.
struct Copied {
    series: Arc<MemSeries>,
    min_t: Timestamp,
    max_t: Timestamp,
    count: u32,
    bytes: std::ops::Range<usize>,
}

/// One checkpoint: stores the samples not stored yet of every closed chunk, and of every
/// open chunk that has a stored chunk's worth of them (when `all`, of every open chunk), and
/// records in each series how far it is stored ([`MemSeries::set_persisted_until`]). An open
/// chunk whose last sample is before `idle_before` is stored too: its series stopped, and the
/// truncation after the checkpoint drops it from the head.
/// Chunks go to the store in batches, each one block of many series. The [`Checkpointer`]
/// runs it every 30 s and on stop (`all`, followed by a flush); public for the store-size
/// benchmark.
pub fn checkpoint(
    head: &Head,
    store: &SampleStore,
    all: bool,
    idle_before: Timestamp,
) -> Result<usize, StoreError> {
    let mut written = 0;
    let mut err = None;
    let mut batch: Vec<Copied> = Vec::new();
    // The batch's chunk bytes in one buffer, not a vector each: the first cut copies a chunk
    // of every series (tens of thousands of small regions, in the size classes of the open
    // chunks that grow meanwhile, which would leave those scattered over half-empty slabs).
    let mut batch_bytes: Vec<u8> = Vec::new();
    let mut write = |batch: &mut Vec<Copied>, bytes: &mut Vec<u8>| {
        let refs: Vec<ChunkRef<'_>> = batch
            .iter()
            .map(|c| ChunkRef {
                labels: c.series.labels(),
                min_t: c.min_t,
                max_t: c.max_t,
                count: c.count,
                bytes: &bytes[c.bytes.clone()],
            })
            .collect();
        store.put_chunks(&refs)?;
        written += refs.len();
        drop(refs);
        for c in batch.drain(..) {
            c.series.set_persisted_until(c.max_t);
        }
        bytes.clear();
        Ok::<_, StoreError>(())
    };
    // One snapshot of the series and their fingerprints for the whole checkpoint: the walk
    // below and the open-chunk shards after it each visit a series once, without sorting the
    // index or hashing label sets again.
    let series = head.all_series();
    let per_chunk = head.chunk_samples();
    let fps: Vec<u64> = series.iter().map(|s| s.labels().fingerprint()).collect();
    for s in &series {
        if err.is_some() {
            break;
        }
        s.with_chunks(|chunks| {
            let done = s.persisted_until();
            let idle = chunks.last().is_some_and(|c| c.last_t() < idle_before);
            let last = chunks.len() - 1;
            for (i, c) in chunks.iter().enumerate() {
                // Closed chunks whole; the open one once a stored chunk's worth of its samples
                // is not stored (or on stop, or when its series stopped).
                let due = i < last || all || idle || unstored_samples(c, done) >= per_chunk;
                if !due || c.is_empty() || c.last_t() <= done {
                    continue;
                }
                // The samples after `done`: the open chunk starts with stored ones.
                let fresh;
                let part = if c.first_t() > done {
                    c
                } else {
                    fresh = c.since(done.saturating_add(1));
                    &fresh
                };
                let at = batch_bytes.len();
                batch_bytes.extend_from_slice(part.as_bytes());
                batch.push(Copied {
                    series: s.clone(),
                    min_t: part.first_t(),
                    max_t: part.last_t(),
                    count: part.len() as u32,
                    bytes: at..batch_bytes.len(),
                });
            }
            // Written from inside the walk (the store never calls back into the head), so that a
            // stop checkpoint does not copy every open chunk at once.
            if batch_bytes.len() >= CHECKPOINT_BATCH_BYTES
                && let Err(e) = write(&mut batch, &mut batch_bytes)
            {
                err = Some(e);
            }
        });
    }
    if let Some(e) = err {
        return Err(e);
    }
    write(&mut batch, &mut batch_bytes)?;
    drop(batch_bytes);
    // The open chunks as a snapshot, so a crash loses one checkpoint interval at most; one
    // shard at a time, so only an eighth of them is ever copied at once. On a clean stop every
    // chunk was stored above and the snapshot is emptied.
    let shards = OPEN_SHARDS;
    // The chunks' bytes of a shard go into one buffer, not one small allocation each: tens of
    // thousands of short-lived regions every 30 s, in the size classes of the open chunks
    // that grow meanwhile, would leave those scattered over half-empty slabs.
    let mut bytes: Vec<u8> = Vec::new();
    for shard in 0..shards {
        // Fingerprints spread evenly over the shards: room for an eighth of the series and a
        // margin, so the vector is not regrown (and briefly held twice) for every shard.
        let mut open: Vec<(Labels, u64, std::ops::Range<usize>, bool)> = match all {
            true => Vec::new(),
            false => Vec::with_capacity(series.len() / shards + series.len() / (4 * shards) + 16),
        };
        // The previous shard's buffer, reused (shards are alike in size).
        bytes.clear();
        if !all {
            for (s, &fp) in series.iter().zip(&fps) {
                if fp as usize % shards != shard {
                    continue;
                }
                s.with_chunks(|chunks| {
                    let current = chunks
                        .last()
                        .filter(|c| !c.is_empty() && c.last_t() >= idle_before);
                    if let Some(c) = current {
                        let at = bytes.len();
                        bytes.extend_from_slice(c.as_bytes());
                        open.push((
                            s.labels().clone(),
                            fp,
                            at..bytes.len(),
                            s.persisted_until() != i64::MIN,
                        ));
                    }
                });
            }
        }
        let refs: Vec<OpenChunk<'_>> = open
            .iter()
            .map(|(l, fp, b, i)| OpenChunk {
                labels: l,
                fingerprint: *fp,
                indexed: *i,
                bytes: &bytes[b.clone()],
            })
            .collect();
        store.put_open_chunks(shard, &refs)?;
    }
    if all {
        store.flush()?;
    }
    Ok(written)
}

/// How far back an expression reads: its longest range plus offset (subqueries included),
/// without the lookback.
pub fn reach(e: &promql_parser::parser::Expr) -> Duration {
    use promql_parser::parser::{Expr, Offset};
    let off = |o: &Option<Offset>| match o {
        Some(Offset::Pos(d)) => *d,
        _ => Duration::ZERO,
    };
    match e {
        Expr::MatrixSelector(m) => m.range + off(&m.vs.offset),
        Expr::VectorSelector(v) => off(&v.offset),
        Expr::Subquery(s) => s.range + off(&s.offset) + reach(&s.expr),
        Expr::Aggregate(a) => reach(&a.expr).max(a.param.as_deref().map_or(Duration::ZERO, reach)),
        Expr::Unary(u) => reach(&u.expr),
        Expr::Binary(b) => reach(&b.lhs).max(reach(&b.rhs)),
        Expr::Paren(p) => reach(&p.expr),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .map(|a| reach(a))
            .max()
            .unwrap_or(Duration::ZERO),
        _ => Duration::ZERO,
    }
}

/// How much history the head must hold for this config: the longest rule range plus the
/// 5-minute lookback, and for gates baseline + watch + the longest check range; never less
/// than `[storage] head_window` (15 minutes by default). Gate windows are what make it long:
/// without gates the head stays small.
pub fn head_window(c: &crate::config::Config) -> Duration {
    let lookback = Duration::from_secs(300);
    let mut w = c.storage.head_window.get();
    for r in c.all_rules() {
        w = w.max(reach(&r.expr.expr) + lookback + Duration::from_secs(60));
    }
    for g in &c.gates {
        let checks = g
            .check
            .iter()
            .map(|k| {
                reach(&k.expr.expr).max(k.guard.as_ref().map_or(Duration::ZERO, |e| reach(&e.expr)))
            })
            .max()
            .unwrap_or(Duration::ZERO);
        w = w.max(g.baseline.get() + g.watch.get() + checks + lookback + Duration::from_secs(60));
    }
    w
}

#[cfg(test)]
mod tests;
