//! Retention: deleting probe results, alert transitions and chunk blocks older than a cutoff, in
//! bounded steps; then the segment files, series index entries and symbols nothing refers to
//! any more.
//!
//! Deletions are single-key removes (sled's atomic batches take a store-wide write lock, which
//! would stall the head's writers for the whole batch). A [`PruneCursor`] remembers where the
//! previous step stopped, so an async caller can run one step of ~1,000 deletions at a time on
//! a blocking thread and yield between steps without rescanning what it already pruned.

use crate::series::Timestamp;

use super::{Store, StoreError};

/// What a prune deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Probe history deleted: one probe's results in one history file (about an hour of
    /// them) count once and go with their file when its newest result is older than the
    /// cutoff.
    pub probes: u64,
    /// Probe history files deleted.
    pub history_files: u64,
    /// Alert transitions deleted.
    pub transitions: u64,
    /// Chunks deleted (in blocks).
    pub chunks: u64,
    /// Blocks of chunks deleted.
    pub blocks: u64,
    /// Series index entries deleted because none of their chunks can be left.
    pub series: u64,
    /// Segment files deleted because none of their blocks is left.
    pub segments: u64,
    /// Symbols (label names and values) deleted because no series uses them any more.
    pub symbols: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Sealed probe history files (see the `history_files` module).
    HistoryFiles,
    Transitions,
    /// Blocks of chunks.
    Blocks,
    /// Series index entries no chunk can refer to any more (see the `chunks` module doc):
    /// the ones whose chunks this prune or an earlier one deleted, and any left behind by a
    /// crash between indexing a series and writing its first block; then the batches that
    /// held them, and the ones holding entries superseded since (see `series_index`).
    Series,
    /// Symbols no series index entry uses any more (after the series phase: see the
    /// `symbols` module doc).
    Symbols,
    Done,
}

/// Progress of one prune; pass the same cursor to [`Store::prune_step`] until it returns
/// `false`.
#[derive(Clone, Debug)]
pub struct PruneCursor {
    /// Records strictly older than this (chunks and blocks: whose max time is) are deleted.
    before: Timestamp,
    phase: Phase,
    /// Where the phase goes on: the key to continue from in the alert transitions, a mark that
    /// the series were dropped in the series phase.
    resume: Vec<u8>,
    stats: PruneStats,
}

impl PruneCursor {
    /// A prune of everything older than `before` (ms), starting from the beginning.
    pub fn new(before: Timestamp) -> Self {
        PruneCursor {
            before,
            phase: Phase::HistoryFiles,
            resume: Vec::new(),
            stats: PruneStats::default(),
        }
    }

    /// What was deleted so far.
    pub fn stats(&self) -> PruneStats {
        self.stats
    }

    /// True once every tree has been pruned.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn next_phase(&mut self) {
        self.phase = match self.phase {
            Phase::HistoryFiles => Phase::Transitions,
            Phase::Transitions => Phase::Blocks,
            Phase::Blocks => Phase::Series,
            Phase::Series => Phase::Symbols,
            Phase::Symbols | Phase::Done => Phase::Done,
        };
        self.resume.clear();
    }
}

/// Steps of [`Store::prune`]: small enough that a step takes milliseconds.
pub const PRUNE_STEP: usize = 1_000;

impl Store {
    /// Deletes everything older than `before` (ms): probe results and transitions by time,
    /// blocks of chunks by max time (and the segment files left without blocks), series no
    /// chunk can refer to any more, and symbols no series uses. Runs [`Store::prune_step`]s of
    /// [`PRUNE_STEP`] deletions, yielding the thread between them; call it from a blocking
    /// thread, or drive `prune_step` yourself to yield to the async runtime.
    pub fn prune(&self, before: Timestamp) -> Result<PruneStats, StoreError> {
        let mut cursor = PruneCursor::new(before);
        while self.prune_step(&mut cursor, PRUNE_STEP)? {
            std::thread::yield_now();
        }
        Ok(cursor.stats())
    }

    /// Deletes at most `max_deletes` old records (a block of chunks counts as one), or checks
    /// at most that many series index entries, continuing from `cursor`; returns whether more
    /// work remains.
    pub fn prune_step(
        &self,
        cursor: &mut PruneCursor,
        max_deletes: usize,
    ) -> Result<bool, StoreError> {
        self.shared.check_writable("pruning old records")?;
        let mut budget = max_deletes.max(1);
        while budget > 0 {
            match cursor.phase {
                Phase::HistoryFiles => {
                    let (files, regions, more) = self.probes.prune_files(cursor.before, budget)?;
                    cursor.stats.history_files += files;
                    cursor.stats.probes += regions;
                    budget = budget.saturating_sub((files as usize).max(1));
                    if !more {
                        cursor.next_phase();
                    }
                }
                Phase::Transitions => {
                    let (deleted, finished) = self.state.prune_transitions(
                        cursor.before,
                        &mut cursor.resume,
                        &mut budget,
                    )?;
                    cursor.stats.transitions += deleted;
                    if finished {
                        cursor.next_phase();
                    }
                }
                Phase::Blocks => {
                    let done = self.samples.prune_blocks(cursor.before, budget)?;
                    cursor.stats.blocks += done.blocks;
                    cursor.stats.chunks += done.chunks;
                    cursor.stats.segments += done.segments;
                    // A block always costs budget, deleted or not, so that a step ends.
                    budget = budget.saturating_sub((done.blocks as usize).max(1));
                    if !done.more {
                        cursor.next_phase();
                    }
                }
                Phase::Series => budget = self.prune_series(cursor, budget)?,
                Phase::Symbols => {
                    let (removed, more) = self.samples.collect_symbols(budget)?;
                    cursor.stats.symbols += removed;
                    budget = budget.saturating_sub((removed as usize).max(1));
                    if !more {
                        cursor.next_phase();
                    }
                }
                Phase::Done => return Ok(false),
            }
        }
        Ok(!cursor.is_done())
    }

    /// The series phase: first drops every unreferenced series from the index (in memory, at
    /// once), then rewrites up to `budget` of the batches that held them; returns the budget
    /// left.
    fn prune_series(&self, cursor: &mut PruneCursor, budget: usize) -> Result<usize, StoreError> {
        if cursor.resume.is_empty() {
            cursor.stats.series += self.samples.drop_unreferenced_series(cursor.before);
            // Marks the drop as done for the steps that follow.
            cursor.resume.push(1);
        }
        let (rewritten, more) = self.samples.rewrite_series_batches(budget)?;
        // Once the rewrites are done, small batches are merged; the merged ones are then
        // dirty and rewritten (deleted) in the next steps of this phase.
        if !more && self.samples.merge_series_batches()? == 0 {
            cursor.next_phase();
        }
        // A rewrite always costs budget, so that a step ends.
        Ok(budget.saturating_sub(rewritten.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::{ChunkRef, SERIES_REFRESH_MS, split_block_key};
    use super::super::test_util::*;
    use super::super::{AlertTransition, ProbeRecord};
    use super::*;
    use crate::series::Labels;

    fn probe(name: &str, t: i64) -> ProbeRecord {
        ProbeRecord {
            probe: name.into(),
            t,
            success: true,
            duration_seconds: 0.1,
            status: Some(200),
            reason: String::new(),
        }
    }

    fn transition(t: i64) -> AlertTransition {
        AlertTransition {
            t,
            alertname: "A".into(),
            labels: Labels::new([("alertname", "A")]),
            from: "pending".into(),
            to: "firing".into(),
            value: 1.0,
        }
    }

    fn fill(store: &Store) {
        for t in 0..10 {
            for name in ["a", "b", "c"] {
                store.probes.append_probe(&probe(name, t * 100)).unwrap();
            }
            // One history file each time, so that the prune below is exact to the result (a
            // file goes whole when its newest result is older than the cutoff).
            store.probes.write_probe_results(None).unwrap();
            store.probes.roll();
        }
        for t in 0..10 {
            store
                .state
                .append_alert_transition_durable(&transition(t * 100))
                .unwrap();
        }
        let old = Labels::new([("job", "old")]);
        let mixed = Labels::new([("job", "mixed")]);
        let chunk = |labels, min_t, max_t| ChunkRef {
            labels,
            min_t,
            max_t,
            count: 2,
            bytes: &[1],
        };
        // Three checkpoints: blocks with max times 300, 500 and 900.
        store
            .samples
            .put_chunks(&[chunk(&old, 0, 100), chunk(&mixed, 0, 300)])
            .unwrap();
        store
            .samples
            .put_chunks(&[chunk(&old, 200, 499), chunk(&mixed, 400, 500)])
            .unwrap();
        store
            .samples
            .put_chunks(&[chunk(&mixed, 600, 900)])
            .unwrap();
    }

    const FILLED_PRUNED_AT_500: PruneStats = PruneStats {
        probes: 15,
        history_files: 5,
        transitions: 5,
        chunks: 2,
        blocks: 1,
        // Both series have chunks left, and their entries are kept a day past them anyway.
        series: 0,
        // The blocks' segment still holds two.
        segments: 0,
        symbols: 0,
    };

    #[test]
    fn prune_removes_exactly_the_old_records() {
        let (_dir, store) = temp_store();
        fill(&store);
        let store = reopen(store);
        assert_eq!(store.samples.series_count(), 2);
        let stats = store.prune(500).unwrap();
        // Whole blocks go: the block with max time 500 stays, with old's chunk ending at 499.
        assert_eq!(stats, FILLED_PRUNED_AT_500);
        for name in ["a", "b", "c"] {
            let ts: Vec<i64> = store
                .probes
                .probe_history(name, i64::MIN, i64::MAX, 100)
                .unwrap()
                .iter()
                .map(|r| r.t)
                .collect();
            assert_eq!(ts, [500, 600, 700, 800, 900], "record at the cutoff stays");
        }
        let ts: Vec<i64> = store
            .state
            .alert_history("A", i64::MIN, i64::MAX, 100)
            .unwrap()
            .iter()
            .map(|r| r.t)
            .collect();
        assert_eq!(ts, [500, 600, 700, 800, 900]);
        let mut chunks: Vec<(String, i64)> = store
            .samples
            .chunks_since(i64::MIN)
            .map(|c| c.map(|c| (c.labels.to_string(), c.max_t)).unwrap())
            .collect();
        chunks.sort();
        assert_eq!(
            chunks,
            [
                (r#"{job="mixed"}"#.to_string(), 500),
                (r#"{job="mixed"}"#.to_string(), 900),
                (r#"{job="old"}"#.to_string(), 499),
            ]
        );
        assert_eq!(raw_keys(&store, "chunk_blocks").len(), 2);
        assert_eq!(store.samples.series_count(), 2);
        assert_eq!(
            store.prune(500).unwrap(),
            PruneStats::default(),
            "a second prune finds nothing"
        );
        assert_eq!(store.skipped_records(), 0);
    }

    #[test]
    fn small_steps_reach_the_same_result() {
        let (_dir, store) = temp_store();
        fill(&store);
        let store = reopen(store);
        let mut cursor = PruneCursor::new(500);
        let mut steps = 0;
        while store.prune_step(&mut cursor, 2).unwrap() {
            steps += 1;
            assert!(steps < 100, "prune does not terminate");
        }
        assert!(
            steps >= 6,
            "{steps} steps for 11 deletions (5 history files, 5 transitions, a block), at most \
             2 a step"
        );
        assert_eq!(cursor.stats(), FILLED_PRUNED_AT_500);
    }

    #[test]
    fn series_go_once_no_chunk_can_refer_to_them() {
        let (_dir, store) = temp_store();
        let r = SERIES_REFRESH_MS;
        let [kept, gone, orphan] =
            ["kept", "gone", "orphan"].map(|job| Labels::new([("job", job)]));
        // (Times in whole seconds: the index keeps referenced-until times so, rounded up.)
        store.samples.put_chunk(&kept, 0, 1_000, 1, &[1]).unwrap();
        store.samples.put_chunk(&gone, 0, 1_000, 1, &[1]).unwrap();
        // A day later: `kept` gets a new chunk, which refreshes its index entry.
        store
            .samples
            .put_chunk(&kept, r + 1_500, r + 2_000, 1, &[1])
            .unwrap();
        // As if the process died between indexing a series and indexing its block: the
        // block's entry (the newest sequence number) is gone.
        store.samples.put_chunk(&orphan, 0, 1_000, 1, &[1]).unwrap();
        let orphan_block = raw_keys(&store, "chunk_blocks")
            .into_iter()
            .max_by_key(|k| split_block_key(k).unwrap().1)
            .unwrap();
        remove_raw(&store, "chunk_blocks", &orphan_block);
        let store = reopen(store);
        assert_eq!(store.samples.series_count(), 3);
        let stats = store.prune(1_001 + r).unwrap();
        assert_eq!(
            stats,
            PruneStats {
                chunks: 2,
                blocks: 2,
                series: 2,
                // The first two blocks' segment (the third block, a day later, started
                // another), and the values of the two series gone (`job` is still used).
                segments: 1,
                symbols: 2,
                ..PruneStats::default()
            }
        );
        // One batch of symbols left: `job` and `kept`.
        assert_eq!(raw_keys(&store, "symbols").len(), 1);
        assert_eq!(store.samples.series_count(), 1);
        assert!(store.samples.is_indexed(kept.fingerprint()));
        let chunks: Vec<(Labels, i64)> = store
            .samples
            .chunks_since(i64::MIN)
            .map(|c| c.map(|c| (c.labels, c.max_t)).unwrap())
            .collect();
        assert_eq!(chunks, [(kept.clone(), r + 2_000)]);
    }

    #[test]
    fn a_chunk_written_after_pruning_its_series_reindexes_it() {
        let (_dir, store) = temp_store();
        let l = Labels::new([("job", "x")]);
        let later = 2_000 + SERIES_REFRESH_MS; // the index keeps whole seconds, rounded up
        store.samples.put_chunk(&l, 0, 100, 1, &[1]).unwrap();
        store.prune(later).unwrap();
        assert_eq!(store.samples.series_count(), 0);
        store
            .samples
            .put_chunk(&l, later, later + 100, 1, &[2])
            .unwrap();
        assert_eq!(store.samples.series_count(), 1);
        assert_eq!(store.samples.chunks_since(0).count(), 1);
    }
}
