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
//! - Value: format byte `BLOCK_REF_V2` · segment id · record offset · block length · chunk
//!   count · time span (varints). The chunk count spares retention a read of the file to report
//!   how many chunks it deleted; the span (block max time − the oldest chunk's min time) lets a
//!   query skip a block that starts after its range without reading it. Values of the first
//!   format (`BLOCK_REF_V1`, no span) are still read: their blocks are read by every query
//!   that reaches their max time.
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
/// Format byte of block index values that also hold the block's time span (max time − the
/// oldest chunk's min time), so that a query skips blocks wholly after its range unread.
const BLOCK_REF_V2: u8 = 3;

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
pub(super) fn last_block_key(t: Timestamp) -> [u8; 16] {
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
pub(super) struct BlockChunk<'a> {
    pub(super) fp: u64,
    pub(super) min_t: Timestamp,
    pub(super) max_t: Timestamp,
    pub(super) count: u32,
    pub(super) bytes: &'a [u8],
}

/// Decodes a whole block; any error rejects the whole block (its framing is lost from there,
/// and a block is one record: it is skipped and counted once).
pub(super) fn decode_block(
    max_t: Timestamp,
    value: &[u8],
) -> Result<Vec<BlockChunk<'_>>, DecodeError> {
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

/// A block index value: where the block is, how many chunks it holds and the time it spans
/// back from its max time.
fn encode_block_ref(loc: BlockLoc, chunks: u64, span: u64) -> Vec<u8> {
    let mut e = Encoder::with_format(BLOCK_REF_V2);
    e.uvarint(loc.segment)
        .uvarint(loc.offset)
        .uvarint(u64::from(loc.len))
        .uvarint(chunks)
        .uvarint(span);
    e.finish()
}

/// The location and chunk count in a block index value written by [`encode_block_ref`].
pub(super) fn decode_block_ref(value: &[u8]) -> Result<(BlockLoc, u64), DecodeError> {
    decode_block_ref_span(value).map(|(loc, chunks, _)| (loc, chunks))
}

/// The location, chunk count and time span of a block index value; the span is unknown
/// (`None`) in values of the first format.
pub(super) fn decode_block_ref_span(
    value: &[u8],
) -> Result<(BlockLoc, u64, Option<u64>), DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    if format != BLOCK_REF_V1 && format != BLOCK_REF_V2 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let loc = BlockLoc {
        segment: d.uvarint()?,
        offset: d.uvarint()?,
        len: d.u32varint()?,
    };
    let chunks = d.uvarint()?;
    let span = match format {
        BLOCK_REF_V2 => Some(d.uvarint()?),
        _ => None,
    };
    d.finish()?;
    Ok((loc, chunks, span))
}

/// A block written by an import whose index entry waits for the import's commit.
pub(super) struct StagedBlock {
    /// The block's key in `chunk_blocks`.
    pub(super) key: [u8; 16],
    /// Its index entry.
    pub(super) value: Vec<u8>,
    /// The segment holding it.
    pub(super) segment: u64,
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
        let r = self.put_chunks_inner(chunks, None);
        self.shared.note_bulk(Bulk::Chunks, r)
    }

    /// Writes `chunks` as [`SampleStore::put_chunks`] does; with `staged`, the blocks' index
    /// entries go there instead of into the index (an import commits them at its end).
    pub(super) fn put_chunks_inner(
        &self,
        chunks: &[ChunkRef<'_>],
        mut staged: Option<&mut Vec<StagedBlock>>,
    ) -> Result<(), StoreError> {
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
        // (key, chunk count, time span) of each block, and the blocks' bytes.
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
            let min_t = block.iter().map(|c| c.min_t).min().unwrap_or(max_t);
            let seq = self.shared.generate_id(OP)?;
            keys.push((
                block_key(max_t, seq),
                block.len() as u64,
                max_t.abs_diff(min_t),
            ));
            blocks.push(encode_block(max_t, block));
        }
        let mut new_id = || self.shared.generate_id("creating a segment");
        let locs = self.inner.segments.append(newest, &blocks, &mut new_id)?;
        self.shared.mark_index_unflushed();
        for ((key, n, span), loc) in keys.into_iter().zip(locs) {
            match staged.as_deref_mut() {
                Some(staged) => staged.push(StagedBlock {
                    key,
                    value: encode_block_ref(loc, n, span),
                    segment: loc.segment,
                }),
                None => {
                    self.inner
                        .trees
                        .blocks
                        .insert(key, encode_block_ref(loc, n, span))
                        .map_err(StoreError::engine(OP))?;
                }
            }
        }
        Ok(())
    }

    /// The time span (min, max) of every stored chunk of the series `fps`, by fingerprint, in
    /// no particular order. Reads every block: for an import, which must not write samples
    /// over stored ones, not for the daemon.
    pub fn chunk_spans(
        &self,
        fps: &HashSet<u64>,
    ) -> Result<HashMap<u64, Vec<(Timestamp, Timestamp)>>, StoreError> {
        let mut spans: HashMap<u64, Vec<(Timestamp, Timestamp)>> = HashMap::new();
        let mut reader = self.inner.segments.reader();
        for kv in self.inner.trees.blocks.iter() {
            let (k, v) = kv.map_err(StoreError::engine("reading chunk blocks"))?;
            let Ok((max_t, _)) = split_block_key(&k) else {
                continue;
            };
            let Ok((loc, _)) = decode_block_ref(&v) else {
                continue;
            };
            let Ok(record) = reader.read(loc) else {
                continue;
            };
            let Ok(chunks) = decode_block(max_t, record.block()) else {
                continue;
            };
            for c in chunks.into_iter().filter(|c| fps.contains(&c.fp)) {
                spans.entry(c.fp).or_default().push((c.min_t, c.max_t));
            }
        }
        Ok(spans)
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
mod tests;
