//! Sample chunks: the head's compressed chunks, kept so that the head can be rebuilt on start.
//!
//! The store does not look inside a chunk: the head's encoder owns that format. It keeps the
//! bytes with the chunk's series, time span and sample count, and a series index from
//! fingerprint to label set.
//!
//! # Blocks
//!
//! Chunks are stored in *blocks*: one block holds the chunks of many series written by the
//! same [`SampleStore::put_chunks`] call (one checkpoint), up to [`BLOCK_MAX_BYTES`] or
//! [`BLOCK_MAX_CHUNKS`] per block. One block per ~1,500 chunks instead of one record per chunk
//! removes the per-record cost and makes a restart read a few hundred blocks instead of every
//! chunk.
//!
//! A block's bytes go to an append-only segment file (see the `segments` module); sled keeps
//! only an index entry per block in tree `chunk_blocks`. sled 0.34's log-structured tree keeps
//! roughly twice the bytes of its values on disk; in files a block costs its own size plus an
//! 8-byte record header.
//!
//! - Key: block max time ([`time_key`]) · sequence number (from sled's id counter), both
//!   bit-inverted so that the newest block sorts first, and two blocks with the same max time
//!   do not collide. Retention deletes whole blocks whose max time is older than the cutoff.
//! - Value: format byte `BLOCK_REF_V1` · segment id · record offset · block length · chunk
//!   count (varints). The chunk count spares retention a read of the file to report how many
//!   chunks it deleted.
//! - Block (in a segment record): format byte · chunk count · per chunk: fingerprint (u64 BE),
//!   block max time − max time, max time − min time, sample count (varints), chunk bytes
//!   (length-prefixed).
//!
//! [`SampleStore::put_chunks`] appends the blocks to the current segment and `fdatasync`s it before it
//! inserts their index entries, so an index entry never points at bytes that are not on disk.
//! The index entries ride sled's periodic flush like any bulk write, or the flush that
//! [`SampleStore::put_open_chunks`] makes before it replaces a snapshot: a crash can lose the entries
//! of the last second's blocks, whose bytes are then garbage in their segment (a segment with
//! no entry left is deleted at the next open). The series index is written
//! before the blocks that refer to it, so a crash can leave an index entry without chunks
//! (pruned later) but never chunks without labels.
//!
//! The series index (fingerprint → labels and the time *referenced until*, below) is the
//! `series_index` module's.
//!
//! # When a series index entry can go
//!
//! Blocks are not indexed by series, so "does any block still hold a chunk of this series" has
//! no cheap answer. Instead each index entry records a time *referenced until* `r`, with the
//! invariant: every block holding a chunk of the series has a max time ≤ `r` +
//! [`SERIES_REFRESH_MS`]. [`SampleStore::put_chunks`] sets `r` to the batch's newest max time when
//! the series is new or when that time is past `r` + [`SERIES_REFRESH_MS`], which keeps the
//! invariant while rewriting an entry at most once a day per series (a rewrite per chunk
//! would bring back the per-key cost that blocks remove). Pruning with cutoff `before` deletes
//! blocks with max time < `before` first, then entries with `r` + [`SERIES_REFRESH_MS`] <
//! `before`: by the invariant none of their blocks is left. The price is that an index entry
//! outlives its last chunk by up to a day, which costs a few dozen bytes.

use std::collections::{HashMap, HashSet};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::atomic::Ordering;

use crate::series::{Labels, Timestamp};

use super::super::StoreError;
use super::super::codec::{DecodeError, Decoder, Encoder, time_from_key, time_key};
use super::super::shared::Bulk;
use super::SampleStore;
use super::segments::BlockLoc;
use super::series_index::{NewEntry, SeriesIndex, UNREFERENCED};

/// Format byte of blocks (in segment records).
const BLOCK_V1: u8 = 1;
/// Format byte of block index values: where the block is in a segment file.
const BLOCK_REF_V1: u8 = 2;

/// A block is closed once its encoded chunks reach this size: large enough that the per-block
/// costs (an index entry, a record header) vanish, small enough that a checkpoint copies little
/// at a time. A regular checkpoint fits in one block; only the stop checkpoint (every open
/// chunk) needs several.
pub const BLOCK_MAX_BYTES: usize = 1 << 20;
/// A block holds at most this many chunks, whatever their size.
pub const BLOCK_MAX_CHUNKS: usize = 16_384;
/// How stale a series index entry's referenced-until time may get before a write refreshes
/// it; also how long an entry outlives its last chunk (see the module doc).
pub const SERIES_REFRESH_MS: i64 = 24 * 3_600 * 1_000;

/// Smallest encoding of a chunk in a block: fingerprint and four one-byte varints.
const MIN_BLOCK_CHUNK: usize = 8 + 4;

/// One stored chunk with its series' labels.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredChunk {
    /// The series the chunk belongs to.
    pub labels: Labels,
    /// Time of the chunk's first sample, in ms.
    pub min_t: Timestamp,
    /// Time of the chunk's last sample, in ms; a chunk of the same series written again with
    /// the same max time replaces the earlier copy.
    pub max_t: Timestamp,
    /// Number of samples in the chunk.
    pub count: u32,
    /// The encoded samples, as the head's encoder produced them.
    pub bytes: Vec<u8>,
}

/// A chunk to store, borrowed from its owner (see [`SampleStore::put_chunks`]).
#[derive(Clone, Copy, Debug)]
pub struct ChunkRef<'a> {
    /// The series the chunk belongs to.
    pub labels: &'a Labels,
    /// Time of the chunk's first sample, in ms.
    pub min_t: Timestamp,
    /// Time of the chunk's last sample, in ms.
    pub max_t: Timestamp,
    /// Number of samples in the chunk.
    pub count: u32,
    /// The encoded samples.
    pub bytes: &'a [u8],
}

fn block_key(max_t: Timestamp, seq: u64) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&(!u64::from_be_bytes(time_key(max_t))).to_be_bytes());
    k[8..].copy_from_slice(&(!seq).to_be_bytes());
    k
}

/// The last possible block key with max time `t`: every block with a max time at or after
/// `t` sorts at or before it, every older one after it.
fn last_block_key(t: Timestamp) -> [u8; 16] {
    block_key(t, 0)
}

/// A block key's max time and sequence number.
pub(in crate::store) fn split_block_key(key: &[u8]) -> Result<(Timestamp, u64), DecodeError> {
    let (t, seq) = match (key.get(..8), key.get(8..)) {
        (Some(t), Some(seq)) if key.len() == 16 => (t, seq),
        _ => return Err(DecodeError::OutOfRange),
    };
    let t: [u8; 8] = t.try_into().map_err(|_| DecodeError::OutOfRange)?;
    let seq: [u8; 8] = seq.try_into().map_err(|_| DecodeError::OutOfRange)?;
    let t = (!u64::from_be_bytes(t)).to_be_bytes();
    Ok((time_from_key(t), !u64::from_be_bytes(seq)))
}

/// Bytes a chunk takes in a block, at most (varints counted at their longest).
fn block_chunk_len(c: &ChunkRef<'_>) -> usize {
    8 + 10 + 10 + 5 + 10 + c.bytes.len()
}

fn encode_block(max_t: Timestamp, chunks: &[ChunkRef<'_>]) -> Vec<u8> {
    let mut e = Encoder::with_format(BLOCK_V1);
    e.uvarint(chunks.len() as u64);
    for c in chunks {
        // Offsets, not times: within a checkpoint they take one to three bytes instead of six.
        e.u64_be(c.labels.fingerprint())
            .uvarint(max_t.abs_diff(c.max_t))
            .uvarint(c.max_t.abs_diff(c.min_t))
            .uvarint(u64::from(c.count))
            .bytes(c.bytes);
    }
    e.finish()
}

/// One chunk of a decoded block, borrowing the block's bytes.
#[derive(Debug, PartialEq)]
struct BlockChunk<'a> {
    fp: u64,
    min_t: Timestamp,
    max_t: Timestamp,
    count: u32,
    bytes: &'a [u8],
}

/// Decodes a whole block; any error rejects the whole block (its framing is lost from there,
/// and a block is one record: it is skipped and counted once).
fn decode_block(max_t: Timestamp, value: &[u8]) -> Result<Vec<BlockChunk<'_>>, DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    if format != BLOCK_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let n = d.uvarint()?;
    // Bounds the allocation by the value's size.
    if n > (d.remaining() / MIN_BLOCK_CHUNK) as u64 {
        return Err(DecodeError::Truncated);
    }
    let mut chunks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let fp = d.u64_be()?;
        // In i128: offsets are up to u64::MAX apart (abs_diff of two i64).
        let back = i128::from(d.uvarint()?);
        let c_max = i64::try_from(i128::from(max_t) - back).map_err(|_| DecodeError::OutOfRange)?;
        let span = i128::from(d.uvarint()?);
        let c_min = i64::try_from(i128::from(c_max) - span).map_err(|_| DecodeError::OutOfRange)?;
        let count = d.u32varint()?;
        let bytes = d.bytes()?;
        chunks.push(BlockChunk {
            fp,
            min_t: c_min,
            max_t: c_max,
            count,
            bytes,
        });
    }
    d.finish()?;
    Ok(chunks)
}

/// A block index value: where the block is and how many chunks it holds.
fn encode_block_ref(loc: BlockLoc, chunks: u64) -> Vec<u8> {
    let mut e = Encoder::with_format(BLOCK_REF_V1);
    e.uvarint(loc.segment)
        .uvarint(loc.offset)
        .uvarint(u64::from(loc.len))
        .uvarint(chunks);
    e.finish()
}

/// The location and chunk count in a block index value written by [`encode_block_ref`].
pub(super) fn decode_block_ref(value: &[u8]) -> Result<(BlockLoc, u64), DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    if format != BLOCK_REF_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let loc = BlockLoc {
        segment: d.uvarint()?,
        offset: d.uvarint()?,
        len: d.u32varint()?,
    };
    let chunks = d.uvarint()?;
    d.finish()?;
    Ok((loc, chunks))
}

/// A chunk read back, waiting to be handed out with its series.
struct Pending {
    /// Which copy is newer when a series has two chunks with the same max time: (block
    /// sequence number, position in the block).
    order: (u64, u32),
    min_t: Timestamp,
    max_t: Timestamp,
    count: u32,
    bytes: Vec<u8>,
}

/// What one step of [`SampleStore::prune_blocks`] did.
#[derive(Debug, Default)]
pub(in crate::store) struct BlockPrune {
    /// Blocks whose index entry was deleted.
    pub(in crate::store) blocks: u64,
    /// Chunks in them.
    pub(in crate::store) chunks: u64,
    /// Segment files deleted.
    pub(in crate::store) segments: u64,
    /// Whether blocks older than the cutoff are left.
    pub(in crate::store) more: bool,
}

impl SampleStore {
    /// Stores one chunk: [`SampleStore::put_chunks`] with a batch of one. A block per chunk costs
    /// what blocks are there to save; the checkpointer writes whole batches.
    pub fn put_chunk(
        &self,
        labels: &Labels,
        min_t: Timestamp,
        max_t: Timestamp,
        count: u32,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.put_chunks(&[ChunkRef {
            labels,
            min_t,
            max_t,
            count,
            bytes,
        }])
    }

    /// Stores a batch of chunks, of any series, in as few blocks as [`BLOCK_MAX_BYTES`] and
    /// [`BLOCK_MAX_CHUNKS`] allow, and indexes series seen for the first time. The blocks are
    /// on disk (fsynced) when it returns; their index entries ride the periodic flush like any
    /// bulk write (see the module doc). A chunk of the same series and `max_t` as one stored
    /// before replaces it (the newer copy wins when reading).
    ///
    /// Nothing is written when a chunk's span is inverted or a fingerprint collides; a failure
    /// half-way can leave index entries without chunks, which prune removes, or blocks without
    /// index entries, which the next open deletes.
    pub fn put_chunks(&self, chunks: &[ChunkRef<'_>]) -> Result<(), StoreError> {
        let r = self.put_chunks_inner(chunks);
        self.shared.note_bulk(Bulk::Chunks, r)
    }

    fn put_chunks_inner(&self, chunks: &[ChunkRef<'_>]) -> Result<(), StoreError> {
        const OP: &str = "writing chunks";
        self.shared.check_writable(OP)?;
        let Some(newest) = chunks.iter().map(|c| c.max_t).max() else {
            return Ok(());
        };
        if let Some(c) = chunks.iter().find(|c| c.min_t > c.max_t) {
            return Err(StoreError::InvalidRecord {
                reason: format!(
                    "chunk min time {} is after its max time {}",
                    c.min_t, c.max_t
                ),
            });
        }
        // Held across the index checks and the block inserts: see `Inner::index`.
        let mut index = self.lock_index();
        self.index_series(&mut index, chunks, newest, OP)?;
        // (key, chunk count) of each block, and the blocks' bytes.
        let mut keys = Vec::new();
        let mut blocks = Vec::new();
        let mut rest = chunks;
        while !rest.is_empty() {
            let mut n = 0;
            let mut size = 0;
            for c in rest.iter().take(BLOCK_MAX_CHUNKS) {
                let len = block_chunk_len(c);
                // A chunk larger than a block on its own still gets a block.
                if n > 0 && size + len > BLOCK_MAX_BYTES {
                    break;
                }
                size += len;
                n += 1;
            }
            let (block, tail) = rest.split_at(n);
            rest = tail;
            let max_t = block.iter().map(|c| c.max_t).max().unwrap_or(newest);
            let seq = self.shared.generate_id(OP)?;
            keys.push((block_key(max_t, seq), block.len() as u64));
            blocks.push(encode_block(max_t, block));
        }
        let mut new_id = || self.shared.generate_id("creating a segment");
        let locs = self.inner.segments.append(newest, &blocks, &mut new_id)?;
        self.shared.mark_index_unflushed();
        for ((key, n), loc) in keys.into_iter().zip(locs) {
            self.inner
                .trees
                .blocks
                .insert(key, encode_block_ref(loc, n))
                .map_err(StoreError::engine(OP))?;
        }
        Ok(())
    }

    /// Makes sure the index holds the labels of every series in `chunks` with a referenced-until
    /// time that covers a block with max time `newest` (see the module doc): one batch for the
    /// series that are new or whose entry is stale. Checks every series first, so that nothing
    /// is written when a fingerprint collides. Called with the index locked.
    fn index_series(
        &self,
        index: &mut SeriesIndex,
        chunks: &[ChunkRef<'_>],
        newest: Timestamp,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let mut seen = HashSet::with_capacity(chunks.len());
        let mut entries = Vec::new();
        for c in chunks {
            let fp = c.labels.fingerprint();
            if !seen.insert(fp) {
                continue;
            }
            match index.get(fp) {
                Some(slot) if !SeriesIndex::same_labels(&slot, c.labels) => {
                    let stored = index
                        .labels([fp])?
                        .remove(&fp)
                        .and_then(Result::ok)
                        .map_or_else(|| "(unreadable)".to_string(), |l| l.to_string());
                    return Err(StoreError::FingerprintCollision {
                        fp,
                        stored,
                        new: c.labels.to_string(),
                    });
                }
                Some(slot)
                    if slot.referenced_until != UNREFERENCED
                        && newest <= slot.referenced_until.saturating_add(SERIES_REFRESH_MS) => {}
                _ => entries.push(NewEntry {
                    fp,
                    labels: c.labels,
                    referenced_until: newest,
                }),
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let seq = self.shared.generate_id(op)?;
        self.shared.mark_index_unflushed();
        let written = index.write(&self.inner.trees.symbols, &self.shared.db, seq, &entries);
        self.inner
            .series_count
            .store(index.len() as u64, Ordering::Relaxed);
        written
    }

    /// Locks the series index and the symbol table (see `Inner::index`).
    pub(super) fn lock_index(&self) -> std::sync::MutexGuard<'_, SeriesIndex> {
        // A poisoned lock only means another writer panicked between two steps, each of which
        // leaves memory and the trees consistent (at worst a batch or a symbol kept longer).
        self.inner.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every stored chunk with `max_t >= min_t` (that is, holding samples at or after `min_t`
    /// when chunks are contiguous), series by series (in fingerprint order) and in time order
    /// within a series. For rebuilding the head on start; blocks and chunks that do not decode
    /// are skipped and counted, and so are chunks whose series is missing from the index.
    ///
    /// Blocks mix series, so this reads every block with a max time at or after `min_t` first
    /// and regroups their chunks in memory: it holds all chunks of the window at once, about
    /// the size of what the head will hold after loading them (the chunk bytes plus ~60 bytes
    /// per chunk). Call it with the head's window, not for the whole retention.
    pub fn chunks_since(
        &self,
        min_t: Timestamp,
    ) -> impl Iterator<Item = Result<StoredChunk, StoreError>> + Send + 'static {
        let mut errors = Vec::new();
        let mut by_series: HashMap<u64, Vec<Pending>> = HashMap::new();
        let trees = &self.inner.trees;
        let mut reader = self.inner.segments.reader();
        for kv in trees.blocks.range(..=last_block_key(min_t)) {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => {
                    // The iterator cannot go on past an engine error.
                    errors.push(StoreError::engine("reading chunk blocks")(e));
                    break;
                }
            };
            let (max_t, seq) = match split_block_key(&k) {
                Ok(d) => d,
                Err(e) => {
                    self.shared.skip("chunk_blocks", &e);
                    continue;
                }
            };
            let record = match decode_block_ref(&v) {
                Ok((loc, _)) => match reader.read(loc) {
                    Ok(r) => r,
                    Err(e) => {
                        self.shared.skip("chunk_blocks", &e);
                        continue;
                    }
                },
                Err(e) => {
                    self.shared.skip("chunk_blocks", &e);
                    continue;
                }
            };
            let chunks = match decode_block(max_t, record.block()) {
                Ok(d) => d,
                Err(e) => {
                    self.shared.skip("chunk_blocks", &e);
                    continue;
                }
            };
            for (pos, c) in chunks.into_iter().enumerate() {
                if c.max_t < min_t {
                    continue;
                }
                by_series.entry(c.fp).or_default().push(Pending {
                    order: (seq, pos as u32),
                    min_t: c.min_t,
                    max_t: c.max_t,
                    count: c.count,
                    bytes: c.bytes.to_vec(),
                });
            }
        }
        let mut fps: Vec<u64> = by_series.keys().copied().collect();
        fps.sort_unstable();
        let mut labels = match self.lock_index().labels(fps.iter().copied()) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                HashMap::new()
            }
        };
        let shared = self.shared.clone();
        errors
            .into_iter()
            .map(Err)
            .chain(fps.into_iter().flat_map(move |fp| {
                let mut chunks = by_series.remove(&fp).unwrap_or_default();
                let labels = match labels.remove(&fp) {
                    Some(Ok(labels)) => labels,
                    Some(Err(e)) => {
                        shared.skip("series", &e);
                        return Vec::new();
                    }
                    None => {
                        shared.skip("chunk_blocks", &"chunks of a series missing from the index");
                        return Vec::new();
                    }
                };
                chunks.sort_unstable_by_key(|c| (c.max_t, c.order));
                // Of copies with the same max time, the last one (newest) wins.
                let mut out: Vec<Result<StoredChunk, StoreError>> =
                    Vec::with_capacity(chunks.len());
                let mut chunks = chunks.into_iter().peekable();
                while let Some(c) = chunks.next() {
                    if chunks.peek().is_some_and(|next| next.max_t == c.max_t) {
                        continue;
                    }
                    out.push(Ok(StoredChunk {
                        labels: labels.clone(),
                        min_t: c.min_t,
                        max_t: c.max_t,
                        count: c.count,
                        bytes: c.bytes,
                    }));
                }
                out
            }))
    }

    /// Number of series in the index (series with chunks, and for up to a day those whose
    /// chunks were all pruned; see the module doc).
    pub fn series_count(&self) -> u64 {
        self.inner.series_count.load(Ordering::Relaxed)
    }

    /// Deletes up to `budget` blocks whose max time is before `before`, oldest first, then the
    /// segments none of whose blocks is left (after a flush: see `segments`).
    pub(in crate::store) fn prune_blocks(
        &self,
        before: Timestamp,
        budget: usize,
    ) -> Result<BlockPrune, StoreError> {
        const OP: &str = "pruning chunk blocks";
        let tree = &self.inner.trees.blocks;
        let mut done = BlockPrune::default();
        let older = (Excluded(last_block_key(before)), Unbounded);
        for kv in tree.range(older).rev().take(budget) {
            let (k, _) = kv.map_err(StoreError::engine(OP))?;
            let Some(v) = tree.remove(&k).map_err(StoreError::engine(OP))? else {
                continue;
            };
            done.blocks += 1;
            if let Ok((loc, n)) = decode_block_ref(&v) {
                self.inner.segments.release(loc.segment);
                done.chunks += n;
            }
        }
        done.more = tree
            .range(older)
            .next()
            .transpose()
            .map_err(StoreError::engine(OP))?
            .is_some();
        let doomed = self.inner.segments.take_doomed();
        if !doomed.is_empty() {
            if let Err(e) = self.shared.db.flush() {
                self.inner.segments.restore_doomed(&doomed);
                return Err(StoreError::engine(OP)(e));
            }
            done.segments = self.inner.segments.delete(&doomed)?;
        }
        Ok(done)
    }

    /// Drops from the index every series no chunk can refer to any more (see the module doc):
    /// blocks older than `blocks_pruned_before` are gone. Returns how many; their batches are
    /// rewritten by [`SampleStore::rewrite_series_batches`].
    pub(in crate::store) fn drop_unreferenced_series(
        &self,
        blocks_pruned_before: Timestamp,
    ) -> u64 {
        // See `Inner::index`: no chunk of these series can be written between the check and the
        // removal.
        let mut index = self.lock_index();
        let dropped = index.drop_unreferenced(blocks_pruned_before, SERIES_REFRESH_MS);
        self.inner
            .series_count
            .store(index.len() as u64, Ordering::Relaxed);
        dropped
    }

    /// Rewrites up to `budget` series index batches holding entries that are no longer current;
    /// returns how many and whether more are waiting.
    pub(in crate::store) fn rewrite_series_batches(
        &self,
        budget: usize,
    ) -> Result<(usize, bool), StoreError> {
        self.lock_index().rewrite_dirty(budget)
    }

    /// Merges small series index batches when enough have piled up (see the `series_index`
    /// module); how many it merged.
    pub(in crate::store) fn merge_series_batches(&self) -> Result<usize, StoreError> {
        let mut index = self.lock_index();
        if !index.wants_merge() {
            return Ok(0);
        }
        let seq = self.shared.generate_id("merging series index batches")?;
        index.merge_small(seq)
    }

    /// Removes symbols no stored series entry uses any more, up to `budget` batches of them;
    /// returns how many symbols and whether more are left. Run after the series phase of a
    /// prune.
    pub(in crate::store) fn collect_symbols(
        &self,
        budget: usize,
    ) -> Result<(u64, bool), StoreError> {
        self.lock_index()
            .collect_symbols(&self.inner.trees.symbols, budget)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::Store;
    use super::super::super::test_util::*;
    use super::super::segments::SEGMENT_MAX_SPAN_MS;
    use super::*;

    fn labels(job: &str) -> Labels {
        Labels::new([("__name__", "up"), ("job", job)])
    }

    /// (series, max time, first byte) of every chunk read back.
    fn read_back(store: &Store) -> Vec<(String, i64, u8)> {
        store
            .samples
            .chunks_since(i64::MIN)
            .map(|c| {
                let c = c.unwrap();
                (c.labels.to_string(), c.max_t, c.bytes[0])
            })
            .collect()
    }

    /// Three checkpoints of two series, one block each, in one segment.
    fn three_blocks(store: &Store) {
        let (a, b) = (labels("a"), labels("b"));
        for (i, t) in [100, 200, 300].into_iter().enumerate() {
            let byte = [i as u8 + 1; 40];
            store
                .samples
                .put_chunks(&[
                    ChunkRef {
                        labels: &a,
                        min_t: t - 99,
                        max_t: t,
                        count: 10,
                        bytes: &byte,
                    },
                    ChunkRef {
                        labels: &b,
                        min_t: t - 99,
                        max_t: t,
                        count: 10,
                        bytes: &byte,
                    },
                ])
                .unwrap();
        }
    }

    fn want(blocks: &[(i64, u8)]) -> Vec<(String, i64, u8)> {
        let mut v = Vec::new();
        for l in [labels("a"), labels("b")] {
            for (t, byte) in blocks {
                v.push((l.to_string(), *t, *byte));
            }
        }
        v.sort_by_key(|(l, t, _)| {
            let fp = if *l == labels("a").to_string() {
                labels("a").fingerprint()
            } else {
                labels("b").fingerprint()
            };
            (fp, *t)
        });
        v
    }

    #[test]
    fn blocks_go_to_segments_and_survive_a_reopen() {
        let (_dir, store) = temp_store();
        three_blocks(&store);
        let files = segment_files(&store);
        assert_eq!(files.len(), 1);
        // The blocks' bytes are in the file, not in sled: every index value is a few bytes.
        let len = std::fs::metadata(&files[0]).unwrap().len();
        assert!(len > 3 * 2 * 40, "{len} bytes");
        for v in store.samples.inner.trees.blocks.iter().values() {
            let v = v.unwrap();
            assert_eq!(v[0], BLOCK_REF_V1);
            assert!(v.len() < 16, "{} bytes", v.len());
        }
        let all = want(&[(100, 1), (200, 2), (300, 3)]);
        assert_eq!(read_back(&store), all);
        // size_on_disk counts the segment.
        assert!(store.size_on_disk().unwrap() >= len);

        let store = reopen(store);
        assert_eq!(read_back(&store), all);
        assert_eq!(store.skipped_records(), 0);
        assert_eq!(
            segment_files(&store),
            files,
            "nothing written, no new segment"
        );
    }

    #[test]
    fn a_reopened_store_appends_to_a_new_segment() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
        let store = reopen(store);
        store.samples.put_chunk(&a, 101, 200, 1, &[2]).unwrap();
        store.samples.put_chunk(&a, 201, 300, 1, &[3]).unwrap();
        let files = segment_files(&store);
        assert_eq!(files.len(), 2, "one per open");
        let first = std::fs::read(&files[0]).unwrap();
        let second = std::fs::read(&files[1]).unwrap();
        assert!(second.len() > first.len(), "the second holds two blocks");
        assert_eq!(
            read_back(&store),
            [
                (a.to_string(), 100, 1),
                (a.to_string(), 200, 2),
                (a.to_string(), 300, 3)
            ]
        );
    }

    #[test]
    fn a_torn_tail_loses_only_the_torn_block() {
        let (_dir, store) = temp_store();
        three_blocks(&store);
        let file = segment_files(&store).remove(0);
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        let len = f.metadata().unwrap().len();
        // Into the middle of the last record.
        f.set_len(len - 30).unwrap();
        drop(f);
        assert_eq!(read_back(&store), want(&[(100, 1), (200, 2)]));
        assert_eq!(store.skipped_records(), 1, "one block, counted once");

        // After a restart the torn file is never appended to again.
        let store = reopen(store);
        let a = labels("a");
        store.samples.put_chunk(&a, 301, 400, 1, &[4]).unwrap();
        assert_eq!(segment_files(&store).len(), 2);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), len - 30);
        let got = read_back(&store);
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got.contains(&(a.to_string(), 400, 4)));
        assert_eq!(store.skipped_records(), 1);
    }

    #[test]
    fn a_flipped_byte_fails_the_crc_and_only_that_block() {
        let (_dir, store) = temp_store();
        three_blocks(&store);
        let file = segment_files(&store).remove(0);
        let mut bytes = std::fs::read(&file).unwrap();
        // Chunk bytes of the second block: its 40-byte runs of 2s.
        let at = bytes
            .windows(40)
            .position(|w| w.iter().all(|b| *b == 2))
            .unwrap();
        bytes[at + 5] ^= 0x10;
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(read_back(&store), want(&[(100, 1), (300, 3)]));
        assert_eq!(store.skipped_records(), 1);
    }

    #[test]
    fn a_missing_segment_skips_its_blocks() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
        store.samples.put_chunk(&a, 101, 200, 1, &[2]).unwrap();
        let store = reopen(store);
        store.samples.put_chunk(&a, 201, 300, 1, &[3]).unwrap();
        let files = segment_files(&store);
        std::fs::remove_file(&files[0]).unwrap();
        assert_eq!(read_back(&store), [(a.to_string(), 300, 3)]);
        assert_eq!(store.skipped_records(), 2, "each block of the missing file");
        // A restart is no refusal either: the index entries stay until retention.
        let store = reopen(store);
        assert_eq!(read_back(&store), [(a.to_string(), 300, 3)]);
    }

    #[test]
    fn prune_deletes_segments_without_blocks() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        let hour = SEGMENT_MAX_SPAN_MS;
        store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
        store.samples.put_chunk(&a, 101, 200, 1, &[2]).unwrap();
        // More than a span later: a second segment.
        store
            .samples
            .put_chunk(&a, 201, 300 + hour, 1, &[3])
            .unwrap();
        let files = segment_files(&store);
        assert_eq!(files.len(), 2);
        let segment_bytes = |store: &Store| {
            super::super::super::shared::dir_size(store.samples.inner.segments.dir()).unwrap()
        };
        let before = segment_bytes(&store);
        // The first block only: its segment still holds the second.
        assert_eq!(store.prune(101).unwrap().segments, 0);
        assert!(files[0].exists());
        let stats = store.prune(201).unwrap();
        assert_eq!((stats.blocks, stats.segments), (1, 1));
        assert!(!files[0].exists());
        assert!(segment_bytes(&store) < before);
        // The current segment stays while it is appended to, even with no block left...
        assert_eq!(store.prune(i64::MAX).unwrap().segments, 0);
        assert!(files[1].exists());
        assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
        assert_eq!(store.skipped_records(), 0);
        // ...and goes at the next open, with no index entry left.
        let store = reopen(store);
        assert!(segment_files(&store).is_empty());
    }

    #[test]
    fn open_deletes_segments_no_index_entry_refers_to() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
        let store = reopen(store);
        store.samples.put_chunk(&a, 101, 200, 1, &[2]).unwrap();
        store.samples.put_chunk(&a, 201, 300, 1, &[3]).unwrap();
        let files = segment_files(&store);
        assert_eq!(files.len(), 2);
        // As if the process died before sled flushed the second segment's index entries.
        for key in raw_keys(&store, "chunk_blocks") {
            let v = store.samples.inner.trees.blocks.get(&key).unwrap().unwrap();
            if decode_block_ref(&v).unwrap().0.segment
                != store.samples.inner.segments.current().unwrap()
            {
                continue;
            }
            remove_raw(&store, "chunk_blocks", &key);
        }
        // And a segment torn while it was being created, and a snapshot's temporary file.
        let dir = store.samples.inner.segments.dir().to_owned();
        std::fs::write(dir.join("00000000ffffffff.seg"), b"pf").unwrap();
        std::fs::write(dir.join("open-3.snap.tmp"), b"partial").unwrap();
        let store = reopen(store);
        assert_eq!(segment_files(&store), [files[0].clone()]);
        assert!(!dir.join("open-3.snap.tmp").exists());
        assert_eq!(read_back(&store), [(a.to_string(), 100, 1)]);
        assert_eq!(store.skipped_records(), 0);
    }

    #[test]
    fn the_series_index_is_written_in_batches_of_symbol_ids() {
        let (_dir, store) = temp_store();
        let series: Vec<Labels> = (0..100).map(|i| labels(&format!("job-{i}"))).collect();
        // Two checkpoints: the first 50 series, then all 100.
        let chunks = |n: usize, t: i64| -> Vec<ChunkRef<'_>> {
            series[..n]
                .iter()
                .map(|l| ChunkRef {
                    labels: l,
                    min_t: t - 10,
                    max_t: t,
                    count: 1,
                    bytes: &[1],
                })
                .collect()
        };
        store.samples.put_chunks(&chunks(50, 100)).unwrap();
        store.samples.put_chunks(&chunks(100, 200)).unwrap();
        // One batch of entries and one of symbols per write that indexed new series.
        assert_eq!(batch_files(&store).len(), 2);
        assert_eq!(raw_keys(&store, "symbols").len(), 2);
        let index = store.samples.lock_index();
        // __name__, up, job and a hundred job names.
        assert_eq!(index.symbols.len(), 103);
        assert_eq!(index.symbols.refs("job"), Some(100));
        drop(index);
        let batches: u64 = batch_files(&store)
            .iter()
            .map(|f| f.metadata().unwrap().len())
            .sum();
        assert!(batches < 100 * 16, "{batches} bytes for 100 entries");
        // The index and the symbols' counts come back at open.
        let store = reopen(store);
        assert_eq!(store.samples.series_count(), 100);
        assert_eq!(store.samples.lock_index().symbols.refs("job"), Some(100));
        let got: HashSet<String> = store
            .samples
            .chunks_since(i64::MIN)
            .map(|c| c.unwrap().labels.to_string())
            .collect();
        assert_eq!(got.len(), 100);
        assert!(got.contains(r#"up{job="job-7"}"#), "{got:?}");
        assert_eq!(store.skipped_records(), 0);
    }

    #[test]
    fn a_fingerprint_collision_is_refused_and_names_the_stored_labels() {
        let (_dir, store) = temp_store();
        let (a, b) = (labels("a"), labels("b"));
        store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
        // The index now says another label set (b's) is stored under a's fingerprint, as when
        // two label sets share one: a's next chunk is refused.
        store
            .samples
            .lock_index()
            .plant_collision(a.fingerprint(), &b);
        match store.samples.put_chunk(&a, 0, 200, 1, &[2]) {
            Err(StoreError::FingerprintCollision { fp, stored, new }) => {
                assert_eq!(fp, a.fingerprint());
                // What is stored is read back from the batch file.
                assert_eq!((stored, new), (a.to_string(), a.to_string()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read_back(&store), vec![(a.to_string(), 100, 1)]);
    }

    #[test]
    fn small_batches_are_merged_at_prune() {
        let (_dir, store) = temp_store();
        // Series that come and go: one new series per checkpoint, a file each.
        let series: Vec<Labels> = (0..40).map(|i| labels(&format!("pod-{i}"))).collect();
        for (i, l) in series.iter().enumerate() {
            store
                .samples
                .put_chunk(l, 0, 100 + i as i64, 1, &[i as u8])
                .unwrap();
        }
        assert_eq!(batch_files(&store).len(), 40);
        let want = read_back(&store);
        store.prune(i64::MIN + 1).unwrap();
        assert_eq!(batch_files(&store).len(), 1, "merged into one");
        assert_eq!(read_back(&store), want);
        assert_eq!(store.samples.lock_index().symbols.refs("job"), Some(40));
        // A few more stay apart until they pile up again.
        for (i, l) in series.iter().take(5).enumerate() {
            let l = labels(&format!("{}-again", l.get("job").unwrap()));
            store
                .samples
                .put_chunk(&l, 0, 200 + i as i64, 1, &[0])
                .unwrap();
        }
        store.prune(i64::MIN + 1).unwrap();
        assert_eq!(batch_files(&store).len(), 6);
        let store = reopen(store);
        assert_eq!(store.samples.series_count(), 45);
        assert_eq!(read_back(&store).len(), 45);
        assert_eq!(store.samples.lock_index().symbols.refs("job"), Some(45));
        assert_eq!(store.skipped_records(), 0);
    }

    #[test]
    fn a_damaged_batch_file_loses_its_series_and_nothing_else() {
        let (_dir, store) = temp_store();
        let (a, b) = (labels("a"), labels("b"));
        store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
        store.samples.put_chunk(&b, 0, 100, 1, &[2]).unwrap();
        let files = batch_files(&store);
        assert_eq!(files.len(), 2);
        let mut bytes = std::fs::read(&files[0]).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 0x40;
        std::fs::write(&files[0], &bytes).unwrap();
        // A temporary file a crash left behind is deleted.
        let tmp = files[0].with_extension("sidx.tmp");
        std::fs::write(&tmp, b"half").unwrap();
        let store = reopen(store);
        assert!(!tmp.exists());
        assert_eq!(store.skipped_records(), 1);
        assert_eq!(store.samples.series_count(), 1);
        let got: Vec<String> = read_back(&store).into_iter().map(|c| c.0).collect();
        assert_eq!(got, vec![b.to_string()], "a's chunk has no labels: skipped");
        // The next prune deletes the damaged batch; b's stays.
        store.prune(i64::MIN + 1).unwrap();
        assert_eq!(batch_files(&store), files[1..]);
        // Cut short, the file is as damaged.
        std::fs::write(&files[1], &std::fs::read(&files[1]).unwrap()[..6]).unwrap();
        let store = reopen(store);
        assert_eq!(store.samples.series_count(), 0);
    }

    #[test]
    fn a_symbol_mixup_reads_as_a_damaged_entry() {
        let (_dir, store) = temp_store();
        let (a, b) = (labels("a"), labels("b"));
        store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
        store.samples.put_chunk(&b, 0, 100, 1, &[2]).unwrap();
        // Swap the strings "a" and "b", the last symbol of each batch: both entries now
        // resolve to the other's label set, whose fingerprint is not theirs.
        let batches: Vec<(Vec<u8>, Vec<u8>)> = store
            .samples
            .inner
            .trees
            .symbols
            .iter()
            .map(|kv| kv.unwrap())
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(batches.len(), 2);
        for (k, mut v) in batches {
            let last = v.len() - 1;
            v[last] = if v[last] == b'a' { b'b' } else { b'a' };
            put_raw(&store, "symbols", &k, &v);
        }
        let store = reopen(store);
        assert_eq!(store.skipped_records(), 2, "two entries, at open");
        assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
        assert_eq!(store.skipped_records(), 4, "and their chunks");
        // A write puts a right entry back.
        store.samples.put_chunk(&a, 101, 200, 1, &[3]).unwrap();
        let back: Vec<(Labels, i64)> = store
            .samples
            .chunks_since(i64::MIN)
            .map(|c| c.map(|c| (c.labels, c.max_t)).unwrap())
            .collect();
        assert_eq!(back, [(a.clone(), 100), (a.clone(), 200)]);
    }

    #[test]
    fn blocks_round_trip() {
        let (a, b) = (labels("a"), labels("b"));
        let chunks = [
            ChunkRef {
                labels: &a,
                min_t: 0,
                max_t: 1_190_000,
                count: 120,
                bytes: &[1, 2, 3],
            },
            ChunkRef {
                labels: &b,
                min_t: -50,
                max_t: -10,
                count: 5,
                bytes: &[],
            },
            ChunkRef {
                labels: &a,
                min_t: i64::MIN,
                max_t: i64::MIN,
                count: u32::MAX,
                bytes: &[0xff; 300],
            },
        ];
        let value = encode_block(1_200_000, &chunks);
        let back = decode_block(1_200_000, &value).unwrap();
        let want: Vec<BlockChunk<'_>> = chunks
            .iter()
            .map(|c| BlockChunk {
                fp: c.labels.fingerprint(),
                min_t: c.min_t,
                max_t: c.max_t,
                count: c.count,
                bytes: c.bytes,
            })
            .collect();
        assert_eq!(back, want);
        // 303 chunk bytes and 3 fingerprints; the rest is varints, two of them 10 bytes long
        // for the i64::MIN chunk.
        assert!(value.len() <= 303 + 3 * 8 + 35, "{} bytes", value.len());
        let key = block_key(1_200_000, 7);
        assert_eq!(split_block_key(&key), Ok((1_200_000, 7)));
    }

    #[test]
    fn bad_blocks_fail_to_decode_without_panicking() {
        let a = labels("a");
        let chunk = ChunkRef {
            labels: &a,
            min_t: 0,
            max_t: 100,
            count: 2,
            bytes: &[1, 2, 3, 4],
        };
        let value = encode_block(100, &[chunk, chunk]);
        for n in 0..value.len() {
            assert!(
                decode_block(100, &value[..n]).is_err(),
                "prefix of {n} bytes"
            );
        }
        let mut extra = value.clone();
        extra.push(0);
        assert_eq!(decode_block(100, &extra), Err(DecodeError::Trailing));
        let mut other = value.clone();
        other[0] = 9;
        assert_eq!(
            decode_block(100, &other),
            Err(DecodeError::UnknownFormat(9))
        );
        // A huge chunk count is refused before allocating.
        assert_eq!(
            decode_block(100, &[BLOCK_V1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(DecodeError::Truncated)
        );
        // A max time offset past i64::MIN.
        assert!(decode_block(i64::MIN, &value).is_err());
        assert!(split_block_key(&[0; 15]).is_err());
        for seed in 0u64..300 {
            let bytes: Vec<u8> = (0..(seed % 64))
                .map(|i| (seed.wrapping_mul(131).wrapping_add(i * 29) % 256) as u8)
                .collect();
            let _ = decode_block(seed as i64, &bytes);
        }
    }

    #[test]
    fn chunks_since_regroups_blocks_by_series_in_time_order() {
        let (_dir, store) = temp_store();
        let (a, b, c) = (labels("a"), labels("b"), labels("c"));
        let chunk = |labels, min_t, max_t, byte| ChunkRef {
            labels,
            min_t,
            max_t,
            count: 1,
            bytes: std::slice::from_ref(byte),
        };
        // Three checkpoints, each a block mixing series, and a fourth holding an older chunk.
        store
            .samples
            .put_chunks(&[chunk(&b, 0, 90, &1), chunk(&a, 0, 100, &2)])
            .unwrap();
        store
            .samples
            .put_chunks(&[
                chunk(&c, 100, 150, &3),
                chunk(&a, 101, 200, &4),
                chunk(&b, 91, 190, &5),
            ])
            .unwrap();
        store
            .samples
            .put_chunks(&[chunk(&a, 201, 300, &6), chunk(&b, 191, 290, &7)])
            .unwrap();
        store.samples.put_chunks(&[chunk(&c, 0, 50, &8)]).unwrap();
        assert_eq!(raw_keys(&store, "chunk_blocks").len(), 4);
        let store = reopen(store);

        let got: Vec<(Labels, i64, u8)> = store
            .samples
            .chunks_since(i64::MIN)
            .map(|r| r.map(|c| (c.labels, c.max_t, c.bytes[0])).unwrap())
            .collect();
        let mut want = vec![
            (a.clone(), 100, 2),
            (a.clone(), 200, 4),
            (a.clone(), 300, 6),
            (b.clone(), 90, 1),
            (b.clone(), 190, 5),
            (b.clone(), 290, 7),
            (c.clone(), 50, 8),
            (c.clone(), 150, 3),
        ];
        // Series come in fingerprint order, each one's chunks together and in time order.
        want.sort_by_key(|(l, t, _)| (l.fingerprint(), *t));
        assert_eq!(got, want);
        assert_eq!(store.samples.series_count(), 3);

        // A block is read if its max time is recent enough, and only its recent chunks kept.
        let recent: Vec<(Labels, i64)> = store
            .samples
            .chunks_since(190)
            .map(|r| r.map(|c| (c.labels, c.max_t)).unwrap())
            .collect();
        assert_eq!(recent.len(), 4, "{recent:?}");
        assert!(
            recent.contains(&(b.clone(), 190)),
            "max_t == min_t is included"
        );
        assert!(!recent.contains(&(c.clone(), 150)));
        assert_eq!(store.skipped_records(), 0);
    }

    #[test]
    fn rewriting_a_chunk_replaces_it() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        store.samples.put_chunk(&a, 0, 100, 2, &[1]).unwrap();
        store.samples.put_chunk(&a, 0, 100, 3, &[1, 2]).unwrap();
        let all: Vec<StoredChunk> = store.samples.chunks_since(0).map(Result::unwrap).collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].count, 3);
        assert_eq!(store.samples.series_count(), 1);
    }

    #[test]
    fn large_batches_are_split_into_blocks() {
        let (_dir, store) = temp_store();
        let series: Vec<Labels> = (0..40).map(|i| labels(&i.to_string())).collect();
        let bytes = vec![7u8; BLOCK_MAX_BYTES / 16];
        let chunks: Vec<ChunkRef<'_>> = series
            .iter()
            .map(|l| ChunkRef {
                labels: l,
                min_t: 0,
                max_t: 100,
                count: 120,
                bytes: &bytes,
            })
            .collect();
        store.samples.put_chunks(&chunks).unwrap();
        let blocks = raw_keys(&store, "chunk_blocks").len();
        assert!((3..=4).contains(&blocks), "{blocks} blocks");
        let back: Vec<StoredChunk> = store.samples.chunks_since(0).map(Result::unwrap).collect();
        assert_eq!(back.len(), 40);
        assert!(back.iter().all(|c| c.bytes == bytes));
    }

    #[test]
    fn bad_blocks_and_series_are_skipped_and_counted() {
        let (_dir, store) = temp_store();
        let (a, b, c) = (labels("a"), labels("b"), labels("c"));
        store.samples.put_chunk(&a, 0, 100, 2, &[1]).unwrap();
        store.samples.put_chunk(&b, 0, 200, 1, &[2]).unwrap();
        store.samples.put_chunk(&c, 0, 200, 1, &[3]).unwrap();
        // A block index entry of an unknown format, a truncated one, a key of the wrong shape.
        put_raw(&store, "chunk_blocks", &block_key(150, 1_000), &[42, 0, 0]);
        let loc = BlockLoc {
            segment: 1,
            offset: 5,
            len: 3,
        };
        let good = encode_block_ref(loc, 1);
        put_raw(
            &store,
            "chunk_blocks",
            &block_key(200, 1_001),
            &good[..good.len() - 1],
        );
        put_raw(&store, "chunk_blocks", &block_key(300, 5)[..15], &good);
        // A series whose index batch is gone, and one whose batch does not decode.
        let files = batch_files(&store);
        assert_eq!(files.len(), 3);
        std::fs::remove_file(&files[1]).unwrap();
        let mut bytes = std::fs::read(&files[2]).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 0x40;
        std::fs::write(&files[2], &bytes).unwrap();
        // The batch that does not decode is skipped at open.
        let store = reopen(store);
        assert_eq!(store.skipped_records(), 1);
        let all: Vec<StoredChunk> = store.samples.chunks_since(0).map(Result::unwrap).collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].bytes, [1]);
        // Three bad blocks, and the chunks of the two series missing from the index.
        assert_eq!(store.skipped_records(), 6);
    }

    #[test]
    fn invalid_span_is_refused() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        let ok = ChunkRef {
            labels: &a,
            min_t: 0,
            max_t: 5,
            count: 1,
            bytes: &[],
        };
        let bad = ChunkRef { min_t: 10, ..ok };
        assert!(matches!(
            store.samples.put_chunks(&[ok, bad]),
            Err(StoreError::InvalidRecord { .. })
        ));
        assert_eq!(store.samples.series_count(), 0);
        assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
        store.samples.put_chunks(&[]).unwrap();
    }

    #[test]
    fn index_entries_are_refreshed_only_when_stale() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        let fp = a.fingerprint();
        let referenced = |store: &Store| {
            store
                .samples
                .lock_index()
                .get(fp)
                .map(|s| s.referenced_until)
        };
        store.samples.put_chunk(&a, 0, 1_000, 1, &[]).unwrap();
        assert_eq!(referenced(&store), Some(1_000));
        store
            .samples
            .put_chunk(&a, 0, 1_000 + SERIES_REFRESH_MS, 1, &[])
            .unwrap();
        assert_eq!(referenced(&store), Some(1_000));
        assert_eq!(batch_files(&store).len(), 1);
        store
            .samples
            .put_chunk(&a, 0, 1_001 + SERIES_REFRESH_MS, 1, &[])
            .unwrap();
        // Kept in whole seconds, rounded up: never earlier than written.
        assert_eq!(referenced(&store), Some(2_000 + SERIES_REFRESH_MS));
        assert_eq!(batch_files(&store).len(), 2);
        // Superseded entries go at the next prune: their batches are deleted.
        assert_eq!(store.samples.lock_index().dirty_batches(), 1);
        store.prune(i64::MIN + 1).unwrap();
        assert_eq!(batch_files(&store).len(), 1);
        let store = reopen(store);
        assert_eq!(referenced(&store), Some(2_000 + SERIES_REFRESH_MS));
    }
}
