//! Imports: many [`SampleStore::put_chunks`] calls that become visible at once.
//!
//! An import writes its chunks' blocks to the segment files and its new series to the series
//! index as a checkpoint does, but keeps the blocks' index entries in memory; [`Import::commit`]
//! inserts them all in one atomic sled batch and flushes. Until then no reader sees a block of
//! the import: an import that fails, is dropped or is killed half-way leaves segment bytes no
//! index entry refers to (deleted at the next open) and possibly series index entries without
//! chunks (pruned like any other), and no sample.

use super::super::StoreError;
use super::SampleStore;
use super::chunks::StagedBlock;
use crate::store::ChunkRef;

/// An import in progress: see the module doc. Dropping it without [`Import::commit`] abandons
/// every chunk written through it.
pub struct Import {
    store: SampleStore,
    /// Index entries of the blocks written so far.
    staged: Vec<StagedBlock>,
}

impl std::fmt::Debug for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Import")
            .field("blocks", &self.staged.len())
            .finish_non_exhaustive()
    }
}

impl SampleStore {
    /// Starts an import (see [`Import`]).
    pub fn import(&self) -> Import {
        Import {
            store: self.clone(),
            staged: Vec::new(),
        }
    }
}

impl Import {
    /// Writes a batch of chunks as [`SampleStore::put_chunks`] does, invisible until
    /// [`Import::commit`]. The blocks are on disk when it returns.
    pub fn put_chunks(&mut self, chunks: &[ChunkRef<'_>]) -> Result<(), StoreError> {
        self.store.put_chunks_inner(chunks, Some(&mut self.staged))
    }

    /// Blocks written so far.
    pub fn blocks(&self) -> usize {
        self.staged.len()
    }

    /// Makes every chunk written through the import visible at once, and durable.
    pub fn commit(mut self) -> Result<(), StoreError> {
        const OP: &str = "committing an import";
        self.store.shared.check_writable(OP)?;
        let mut batch = sled::Batch::default();
        for b in &self.staged {
            batch.insert(&b.key[..], b.value.as_slice());
        }
        self.store
            .inner
            .trees
            .blocks
            .apply_batch(batch)
            .map_err(StoreError::engine(OP))?;
        // Committed: the blocks are indexed now, whatever the flush says.
        self.staged.clear();
        self.store.shared.mark_index_unflushed();
        self.store.shared.flush_durable(OP)
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        // Blocks never indexed: their segments must not wait for index entries that will not
        // come (the next open deletes segments nothing refers to).
        for b in &self.staged {
            self.store.inner.segments.release(b.segment);
        }
    }
}

#[cfg(test)]
mod tests;
