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
    /// Hours of uptime counts deleted (kept at least 91 days, see [`super::Uptime`]).
    pub uptime_hours: u64,
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
    /// Uptime counts, kept longer than the results (see [`super::Uptime`]).
    Uptime,
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
            Phase::HistoryFiles => Phase::Uptime,
            Phase::Uptime => Phase::Transitions,
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
                Phase::Uptime => {
                    let (deleted, more) = self.probes.prune_uptime(cursor.before, budget)?;
                    cursor.stats.uptime_hours += deleted;
                    budget = budget.saturating_sub((deleted as usize).max(1));
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
mod tests;
