//! The embedded store: every byte postflight keeps on disk goes through it, in three parts
//! with one owner each.
//!
//! - [`StateStore`] (`state`): the small transactional state in sled, every write durable
//!   before it returns: the rules engine's alert state and transitions, the dispatcher's
//!   notification log, outbox and silences, the gate engine's deployments.
//! - [`SampleStore`] (`samples`): the head's chunks and the series index, in append-only
//!   segment files and batch files with their index in sled; written by the checkpointer
//!   ([`checkpoint`]), read back when the head is rebuilt.
//! - [`ProbeLog`] (`probes`): every probe result, journaled every half second and kept in
//!   hourly files, and the [`Uptime`] counts per probe and hour (`uptime`) kept beside them
//!   in sled.
//!
//! [`Store::open`] returns the three handles in one [`Store`], which the daemon keeps for what
//! spans them: the flush on stop, retention ([`Store::prune_step`]), the write check and the
//! size on disk. The handles share one sled database (and its lock on the directory), the
//! switch that fails every write for tests, and the count of skipped records.
//!
//! What is fsynced before what, what a SIGKILL loses at each point, how each file is checked
//! on open and what a full disk does: `docs/storage.md`.
//!
//! Times in keys are big-endian with the sign bit flipped, so a range scan walks in time order.
//! Every value and file starts with a format byte; a reader that meets a format it does not
//! know skips the record and counts it ([`Store::skipped_records`]) instead of failing or
//! panicking.
//!
//! A durable write blocks its thread for the fsync (around a millisecond on an SSD, far more
//! on a loaded spinning disk): callers on the async runtime go through
//! `tokio::task::spawn_blocking`. Every handle is cheap to clone into the task.

pub mod checkpoint;
pub mod codec;
mod error;
mod open;
mod probes;
mod prune;
pub mod query;
mod samples;
mod shared;
mod state;
mod uptime;
mod witness;

pub use error::StoreError;
pub use open::FORMAT_VERSION;
pub use probes::{HISTORY_MAX_SPAN_MS, LOG_MAX_BYTES, PROBE_JOURNAL_EVERY, ProbeLog, ProbeRecord};
pub use prune::{PRUNE_STEP, PruneCursor, PruneStats};
pub use samples::{
    BLOCK_MAX_BYTES, BLOCK_MAX_CHUNKS, ChunkRef, Import, OPEN_SHARDS, OpenChunk, ReadStopped,
    SEGMENT_MAX_BYTES, SEGMENT_MAX_SPAN_MS, SampleStore, StoredChunk, StoredSeries,
};
pub use state::{AlertTransition, JsonBatch, Kind, StateStore};
pub use uptime::{Counts, DAY_MS, GRACE_MS, HOUR_MS, HOURS_KEPT, LastRuns, MIN_KEPT_MS, Uptime};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shared::Shared;

/// Tuning of the store; the defaults suit a small monitoring host.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bytes of sled's page cache. Small on purpose: the in-memory head serves the hot data,
    /// and the store is written far more than it is read.
    pub cache_capacity: u64,
    /// How often sled flushes buffered (bulk) writes, in milliseconds: the window of bulk data
    /// that SIGKILL or power loss can lose.
    pub flush_every_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_capacity: 1024 * 1024,
            flush_every_ms: 1_000,
        }
    }
}

/// The result of [`Store::open`].
#[derive(Debug)]
pub struct Opened {
    /// The open store.
    pub store: Store,
    /// Set when the store at the path was corrupt: where it was moved before a fresh, empty
    /// store was created. The caller logs an error and raises a StoreCorrupted alert.
    pub recovered_from_corruption: Option<PathBuf>,
}

/// The open store: its three parts' handles, for the daemon to hand out, and what spans them.
/// Cloning is cheap and every clone is the same store.
#[derive(Clone)]
pub struct Store {
    /// The small transactional state (alert state and transitions, notification log, outbox,
    /// silences, deployments).
    pub state: StateStore,
    /// The head's chunks and the series index.
    pub samples: SampleStore,
    /// The probe results.
    pub probes: ProbeLog,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path` with default options; see [`Store::open_with`].
    pub fn open(path: &Path) -> Result<Opened, StoreError> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens or creates the store in directory `path`.
    ///
    /// A path that is not a directory or cannot be created, or a store locked by another
    /// process, is an error. A corrupt store is moved to `<path>.corrupt-<unix seconds>` and a
    /// fresh one is opened (see [`Opened::recovered_from_corruption`]).
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Opened, StoreError> {
        open::open(path, options)
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Writes every buffered record to disk and fsyncs. Called on SIGTERM so that a clean
    /// stop loses nothing; blocks for the fsync (use `spawn_blocking` from async code).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.check_writable("flushing")?;
        self.probes.write_probe_results(None)?;
        self.shared.flush_durable("flushing")
    }

    /// Tells the store its retention, so that a segment file and a probe history file span at
    /// most an eighth of it (and never more than [`SEGMENT_MAX_SPAN_MS`] and
    /// [`HISTORY_MAX_SPAN_MS`]): the store then holds at most about retention × 9/8 plus one
    /// prune interval of samples and results.
    pub fn set_retention(&self, retention: std::time::Duration) {
        let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.samples.set_max_span(ms / 8);
        self.probes.set_max_span(ms / 8);
        self.probes.set_uptime_retention(ms);
    }

    /// Bytes the store occupies on disk: every file in its directory, sled's (log, blobs,
    /// config, snapshots), the segments, the series index, the open-chunk snapshot and the
    /// probe history. (sled's own `size_on_disk` counts only its log and blobs.)
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        shared::dir_size(&self.shared.path).map_err(|source| StoreError::File {
            op: "measuring size on disk",
            path: self.shared.path.clone(),
            source,
        })
    }

    /// Whether the store takes writes: one durable write of `value` under the `meta` key
    /// `key`, and no bulk write (probe results, chunks) that failed and has not succeeded
    /// since. The daemon's store watch calls it every 15 s.
    pub fn write_check(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.state.meta_put_durable(key, value)?;
        match self.shared.bulk_failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records skipped since open because they did not decode (each is logged as a warning
    /// where it is met).
    pub fn skipped_records(&self) -> u64 {
        self.shared.skipped()
    }

    /// Makes every later write fail with a "storage full" [`StoreError::Io`] (or succeed again),
    /// so that the daemon's disk-full path can be tested end to end. Not for production use.
    #[doc(hidden)]
    pub fn fail_writes(&self, fail: bool) {
        self.shared.fail_writes(fail);
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A fresh store in a temp dir; keep the dir alive as long as the store.
    pub fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let opened = Store::open(&dir.path().join("db")).expect("open store");
        assert!(opened.recovered_from_corruption.is_none());
        (dir, opened.store)
    }

    /// Closes the store and opens it again.
    pub fn reopen(store: Store) -> Store {
        let path = store.path().to_owned();
        drop(store);
        let opened = Store::open(&path).expect("reopen store");
        assert!(opened.recovered_from_corruption.is_none());
        opened.store
    }

    /// Writes a raw value into a tree, bypassing the encoders (to plant bad records).
    pub fn put_raw(store: &Store, tree: &str, key: &[u8], value: &[u8]) {
        let t = store.shared.db.open_tree(tree).expect("tree");
        t.insert(key, value).expect("insert");
    }

    /// Removes a raw key from a tree (to plant the effects of a crash).
    pub fn remove_raw(store: &Store, tree: &str, key: &[u8]) {
        let t = store.shared.db.open_tree(tree).expect("tree");
        t.remove(key).expect("remove");
    }

    /// Every key of a tree, raw.
    pub fn raw_keys(store: &Store, tree: &str) -> Vec<Vec<u8>> {
        let t = store.shared.db.open_tree(tree).expect("tree");
        t.iter().keys().map(|k| k.expect("key").to_vec()).collect()
    }

    /// The files of the store's subdirectory `dir` ending in `.ext`, in name order.
    fn files(store: &Store, dir: &str, ext: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(store.path().join(dir))
            .expect("store subdirectory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        files.sort();
        files
    }

    /// The series index's batch files, in name order.
    pub fn batch_files(store: &Store) -> Vec<PathBuf> {
        files(store, "series", "sidx")
    }

    /// The segment files, oldest first.
    pub fn segment_files(store: &Store) -> Vec<PathBuf> {
        files(store, "segments", "seg")
    }
}

#[cfg(test)]
mod tests;
