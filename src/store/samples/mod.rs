//! The sample store: the head's chunks and the series index, a time-series store in files as
//! Prometheus keeps its own. [`SampleStore`] is its handle; its owner is the checkpointer.
//!
//! - `chunks`: blocks of many series' chunks, written once per checkpoint, read back by time
//!   when the head is rebuilt, deleted whole by retention; their index in sled.
//! - `segments`: the append-only files holding the blocks' bytes.
//! - `series_index` and `symbols`: fingerprint → label set, in batch files whose strings are
//!   symbol ids; the symbol table in sled.
//! - `open_chunks`: the snapshot of every series' open chunk, replaced at each checkpoint.
//! - `read`: what a query reads: the stored series a selector matches, their samples in a
//!   time range.
//! - `import`: chunks written by `postflight import`, visible all at once when it commits.

mod chunks;
mod import;
mod open_chunks;
mod read;
mod segments;
mod series_index;
mod symbols;

pub use chunks::{BLOCK_MAX_BYTES, BLOCK_MAX_CHUNKS, ChunkRef, StoredChunk};
#[cfg(test)]
pub(super) use chunks::{SERIES_REFRESH_MS, split_block_key};
pub use import::Import;
pub use open_chunks::{OPEN_SHARDS, OpenChunk};
pub use read::{ReadStopped, StoredSeries};
pub use segments::{SEGMENT_MAX_BYTES, SEGMENT_MAX_SPAN_MS};

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tracing::info;

use super::StoreError;
use super::open::OpenFailure;
use super::shared::Shared;
use segments::Segments;
use series_index::SeriesIndex;

/// Handle to the sample store: cheap to clone, every clone the same files.
#[derive(Clone)]
pub struct SampleStore {
    shared: Arc<Shared>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SampleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleStore")
            .field("segments", &self.inner.segments.dir())
            .finish_non_exhaustive()
    }
}

/// The sample store's sled trees.
pub(super) struct Trees {
    /// Label names and values of the series index, in batches (see the `symbols` module).
    symbols: sled::Tree,
    /// Where each block of chunks is in the segment files (see the `chunks` module).
    blocks: sled::Tree,
}

impl Trees {
    pub(super) fn open(db: &sled::Db) -> Result<Trees, sled::Error> {
        Ok(Trees {
            symbols: db.open_tree("symbols")?,
            blocks: db.open_tree("chunk_blocks")?,
        })
    }
}

struct Inner {
    trees: Trees,
    /// Series in the index, readable without taking the index's lock.
    series_count: AtomicU64,
    /// The series index and the symbol table. The lock serializes every index decision: "is
    /// this series still referenced" between [`SampleStore::put_chunks`] and pruning (so that
    /// a prune never removes the index entry of a chunk being written), batches and symbols'
    /// reference counts.
    index: Mutex<SeriesIndex>,
    /// The segment files holding the blocks of chunks.
    segments: Segments,
}

impl SampleStore {
    /// Loads the series index and opens the segment directory, deleting the segments no index
    /// entry refers to (left by a crash).
    pub(super) fn open(shared: Arc<Shared>, trees: Trees) -> Result<SampleStore, OpenFailure> {
        let (index, skipped) =
            SeriesIndex::load(&trees.symbols, shared.path.join(series_index::DIR_NAME))
                .map_err(OpenFailure::store)?;
        for (tree, error) in &skipped {
            shared.skip(tree, error);
        }
        // Index entries per segment. An error here must stop the open: the segments not counted
        // would be taken for orphans and deleted.
        let mut live: HashMap<u64, u64> = HashMap::new();
        for v in trees.blocks.iter().values() {
            if let Ok((loc, _)) = chunks::decode_block_ref(&v.map_err(OpenFailure::sled)?) {
                *live.entry(loc.segment).or_insert(0) += 1;
            }
        }
        let segment_dir = shared.path.join(segments::DIR_NAME);
        let (segments, orphans) = Segments::open(segment_dir.clone(), live).map_err(|source| {
            OpenFailure::Fatal(StoreError::File {
                op: "opening the segment files",
                path: segment_dir,
                source,
            })
        })?;
        if orphans > 0 {
            info!(
                files = orphans,
                "deleted segment files no index entry refers to (left by a crash)"
            );
        }
        Ok(SampleStore {
            shared,
            inner: Arc::new(Inner {
                trees,
                series_count: AtomicU64::new(index.len() as u64),
                index: Mutex::new(index),
                segments,
            }),
        })
    }

    /// Makes every chunk stored so far durable, and advances the store's witness: the stop
    /// checkpoint's last step (index entries otherwise ride sled's periodic flush).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.check_writable("flushing")?;
        self.shared.flush_durable("flushing")
    }

    /// Whether the series index holds series `fp` (for tests).
    #[cfg(test)]
    pub(super) fn is_indexed(&self, fp: u64) -> bool {
        self.lock_index().get(fp).is_some()
    }

    /// Caps the sample time one segment file spans (see [`SEGMENT_MAX_SPAN_MS`]).
    pub(super) fn set_max_span(&self, ms: i64) {
        self.inner.segments.set_max_span(ms);
    }
}
