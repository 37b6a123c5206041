//! Sample chunks: the head's compressed chunks, kept so that the head can be rebuilt on start.
//!
//! The store does not look inside a chunk: the head's encoder owns that format. It keeps the
//! bytes with the chunk's series, time span and sample count, and a series index from
//! fingerprint to label set.
//!
//! # Blocks
//!
//! Chunks are stored in *blocks*: one sled value holds the chunks of many series written by the
//! same [`Store::put_chunks`] call (one checkpoint), up to [`BLOCK_MAX_BYTES`] or
//! [`BLOCK_MAX_CHUNKS`] per block. One key per ~1,500 chunks instead of one per chunk removes
//! sled's per-key cost and makes a restart read a few hundred values instead of every chunk
//! (`chunks_since` ~2× faster, checkpoints ~1.4× in the benchmark) and the store 25–45%
//! smaller (2.8–3.7 instead of 4.4–4.9 bytes per sample). What remains is sled's log-structured
//! space amplification (leaves holding the values are rewritten as keys arrive, and the old
//! copies stay on disk for a while): roughly twice the live bytes, with small or large values
//! alike (see `bench/RESULTS-store.md`).
//!
//! - Key: block max time ([`time_key`]) · sequence number (from sled's id counter), both
//!   bit-inverted so that the newest block sorts first, and two blocks with the same max time
//!   do not collide. Newest first because sled splits a full leaf by keeping the left half in
//!   place (with the whole old leaf still on disk until it is rewritten) and moving the right
//!   half to a new page: with ascending keys every leaf left behind keeps a dead copy of its
//!   upper half for good; with descending keys the leaf that keeps growing is the one rewritten.
//!   (Single benchmark runs: 3.3–3.7 bytes per sample against 3.8; within sled's run-to-run
//!   noise, see `bench/RESULTS-store.md`, but never worse.)
//!   Retention deletes whole blocks whose max time is older than the cutoff.
//! - Value: format byte · chunk count · per chunk: fingerprint (u64 BE), block max time − max
//!   time, max time − min time, sample count (varints), chunk bytes (length-prefixed).
//!
//! A block is one sled insert, so a crash leaves either all of it or none of it. The series
//! index is written before the blocks that refer to it, so a crash can leave an index entry
//! without chunks (pruned later) but never chunks without labels.
//!
//! Chunks written by earlier versions, one record per chunk (tree `chunks`, key fingerprint ·
//! max time), are still read and pruned; nothing writes them any more.
//!
//! # When a series index entry can go
//!
//! Blocks are not indexed by series, so "does any block still hold a chunk of this series" has
//! no cheap answer. Instead each index entry records a time *referenced until* `r`, with the
//! invariant: every block holding a chunk of the series has a max time ≤ `r` +
//! [`SERIES_REFRESH_MS`]. [`Store::put_chunks`] sets `r` to the batch's newest max time when
//! the series is new or when that time is past `r` + [`SERIES_REFRESH_MS`], which keeps the
//! invariant while rewriting an entry at most once a day per series (a rewrite per chunk
//! would bring back the per-key cost that blocks remove). Pruning with cutoff `before` deletes
//! blocks with max time < `before` first, then entries with `r` + [`SERIES_REFRESH_MS`] <
//! `before`: by the invariant none of their blocks is left. The price is that an index entry
//! outlives its last chunk by up to a day, which costs a few dozen bytes.

use std::collections::{HashMap, HashSet};
use std::ops::Bound::{Excluded, Unbounded};

use crate::series::{Labels, Timestamp};

use super::codec::{DecodeError, Decoder, Encoder, time_from_key, time_key};
use super::{Store, StoreError};

/// Format byte of the per-chunk records of earlier versions (tree `chunks`).
const CHUNK_V1: u8 = 1;
/// Format byte of block values.
const BLOCK_V1: u8 = 1;
/// Format byte of series index values holding only the label set (earlier versions).
const SERIES_V1: u8 = 1;
/// Format byte of series index values: referenced-until time, then the label set.
const SERIES_V2: u8 = 2;

/// A block is closed once its encoded chunks reach this size: large enough that sled's
/// per-key cost vanishes, small enough that reading one block back (a single sled value) or
/// rewriting the leaf that holds it stays cheap. A checkpoint of 59,000 series every 30 s
/// writes ~250 KiB; only the stop checkpoint (every open chunk) needs several blocks.
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

/// A chunk to store, borrowed from its owner (see [`Store::put_chunks`]).
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

/// A series index entry.
pub(super) struct SeriesEntry {
    pub(super) labels: Labels,
    /// See the module doc; `None` for entries of earlier versions, which no block refers to.
    referenced_until: Option<Timestamp>,
}

/// Key of a per-chunk record of earlier versions (only tests write them now).
#[cfg(test)]
pub(super) fn chunk_key(fp: u64, max_t: Timestamp) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&fp.to_be_bytes());
    k[8..].copy_from_slice(&time_key(max_t));
    k
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
fn split_block_key(key: &[u8]) -> Result<(Timestamp, u64), DecodeError> {
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

/// The number of chunks a block says it holds, without decoding them (for prune statistics).
fn block_len(value: &[u8]) -> Option<u64> {
    let (format, mut d) = Decoder::with_format(value).ok()?;
    (format == BLOCK_V1).then(|| d.uvarint().ok()).flatten()
}

fn decode_legacy_chunk(key: &[u8], value: &[u8]) -> Result<(u64, Pending), DecodeError> {
    let (fp, t) = match (key.get(..8), key.get(8..)) {
        (Some(fp), Some(t)) if key.len() == 16 => (fp, t),
        _ => return Err(DecodeError::OutOfRange),
    };
    let fp = u64::from_be_bytes(fp.try_into().map_err(|_| DecodeError::OutOfRange)?);
    let max_t = time_from_key(t.try_into().map_err(|_| DecodeError::OutOfRange)?);
    let (format, mut d) = Decoder::with_format(value)?;
    if format != CHUNK_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let span = i64::try_from(d.uvarint()?).map_err(|_| DecodeError::OutOfRange)?;
    let min_t = max_t.checked_sub(span).ok_or(DecodeError::OutOfRange)?;
    let count = d.u32varint()?;
    let bytes = d.rest().to_vec();
    Ok((
        fp,
        Pending {
            order: (0, 0),
            min_t,
            max_t,
            count,
            bytes,
        },
    ))
}

fn encode_series(labels: &Labels, referenced_until: Timestamp) -> Vec<u8> {
    let mut e = Encoder::with_format(SERIES_V2);
    e.ivarint(referenced_until).labels(labels);
    e.finish()
}

pub(super) fn decode_series(value: &[u8]) -> Result<SeriesEntry, DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    let referenced_until = match format {
        SERIES_V1 => None,
        SERIES_V2 => Some(d.ivarint()?),
        other => return Err(DecodeError::UnknownFormat(other)),
    };
    let labels = d.labels()?;
    d.finish()?;
    Ok(SeriesEntry {
        labels,
        referenced_until,
    })
}

/// A chunk read back, waiting to be handed out with its series.
struct Pending {
    /// Which copy is newer when a series has two chunks with the same max time: (block
    /// sequence number, position in the block); (0, 0) for per-chunk records of earlier
    /// versions, older than any block.
    order: (u64, u32),
    min_t: Timestamp,
    max_t: Timestamp,
    count: u32,
    bytes: Vec<u8>,
}

impl Store {
    /// Stores one chunk: [`Store::put_chunks`] with a batch of one. A block per chunk costs
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
    /// [`BLOCK_MAX_CHUNKS`] allow, and indexes series seen for the first time. Bulk write:
    /// durable within the periodic flush (see the module doc). A chunk of the same series and
    /// `max_t` as one stored before replaces it (the newer copy wins when reading).
    ///
    /// Nothing is written when a chunk's span is inverted or a fingerprint collides; a failure
    /// half-way can leave index entries without chunks, which prune removes.
    pub fn put_chunks(&self, chunks: &[ChunkRef<'_>]) -> Result<(), StoreError> {
        const OP: &str = "writing chunks";
        self.check_writable(OP)?;
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
        // Held across the index checks and the block inserts: see `Inner::series_lock`.
        // A poisoned lock only means another writer panicked; the index itself is consistent.
        let _guard = self
            .inner
            .series_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut seen = HashSet::with_capacity(chunks.len());
        for c in chunks {
            let fp = c.labels.fingerprint();
            if seen.insert(fp) {
                self.index_series(fp, c.labels, newest, OP)?;
            }
        }
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
            let seq = self
                .inner
                .db
                .generate_id()
                .map_err(StoreError::engine(OP))?;
            self.inner
                .trees
                .blocks
                .insert(block_key(max_t, seq), encode_block(max_t, block))
                .map_err(StoreError::engine(OP))?;
        }
        Ok(())
    }

    /// Makes sure the index holds `labels` under `fp` with a referenced-until time that covers
    /// a block with max time `newest` (see the module doc). Called under `series_lock`.
    fn index_series(
        &self,
        fp: u64,
        labels: &Labels,
        newest: Timestamp,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let series = &self.inner.trees.series;
        let stored = series
            .get(fp.to_be_bytes())
            .map_err(StoreError::engine(op))?;
        let is_new = stored.is_none();
        if let Some(stored) = stored {
            match decode_series(&stored) {
                Ok(entry) if entry.labels != *labels => {
                    return Err(StoreError::FingerprintCollision {
                        fp,
                        stored: entry.labels.to_string(),
                        new: labels.to_string(),
                    });
                }
                Ok(SeriesEntry {
                    referenced_until: Some(r),
                    ..
                }) if newest <= r.saturating_add(SERIES_REFRESH_MS) => return Ok(()),
                Ok(_) => {}
                // A damaged index entry is replaced by the labels we know are right.
                Err(e) => self.skip("series", &e),
            }
        }
        series
            .insert(fp.to_be_bytes(), encode_series(labels, newest))
            .map_err(StoreError::engine(op))?;
        if is_new {
            self.inner
                .series_count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
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
        for kv in trees.blocks.range(..=last_block_key(min_t)) {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => {
                    // The iterator cannot go on past an engine error.
                    errors.push(StoreError::engine("reading chunk blocks")(e));
                    break;
                }
            };
            let decoded = split_block_key(&k)
                .and_then(|(max_t, seq)| decode_block(max_t, &v).map(|chunks| (seq, chunks)));
            let (seq, chunks) = match decoded {
                Ok(d) => d,
                Err(e) => {
                    self.skip("chunk_blocks", &e);
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
        for kv in trees.chunks.iter() {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => {
                    errors.push(StoreError::engine("reading chunks")(e));
                    break;
                }
            };
            match decode_legacy_chunk(&k, &v) {
                Ok((_, c)) if c.max_t < min_t => {}
                Ok((fp, c)) => by_series.entry(fp).or_default().push(c),
                Err(e) => self.skip("chunks", &e),
            }
        }
        let mut fps: Vec<u64> = by_series.keys().copied().collect();
        fps.sort_unstable();
        let store = self.clone();
        errors
            .into_iter()
            .map(Err)
            .chain(fps.into_iter().flat_map(move |fp| {
                let mut chunks = by_series.remove(&fp).unwrap_or_default();
                let labels = match store.inner.trees.series.get(fp.to_be_bytes()) {
                    Ok(Some(v)) => match decode_series(&v) {
                        Ok(entry) => entry.labels,
                        Err(e) => {
                            store.skip("series", &e);
                            return Vec::new();
                        }
                    },
                    Ok(None) => {
                        store.skip("chunk_blocks", &"chunks of a series missing from the index");
                        return Vec::new();
                    }
                    Err(e) => return vec![Err(StoreError::engine("reading the series index")(e))],
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
        self.inner
            .series_count
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Deletes up to `budget` blocks whose max time is before `before`, oldest first; returns
    /// (blocks, chunks) deleted and whether any such block is left.
    pub(super) fn prune_blocks(
        &self,
        before: Timestamp,
        budget: usize,
    ) -> Result<(u64, u64, bool), StoreError> {
        const OP: &str = "pruning chunk blocks";
        let tree = &self.inner.trees.blocks;
        let (mut blocks, mut chunks) = (0, 0);
        let older = (Excluded(last_block_key(before)), Unbounded);
        for kv in tree.range(older).rev().take(budget) {
            let (k, v) = kv.map_err(StoreError::engine(OP))?;
            if tree.remove(&k).map_err(StoreError::engine(OP))?.is_some() {
                blocks += 1;
                chunks += block_len(&v).unwrap_or(0);
            }
        }
        let more = tree
            .range(older)
            .next()
            .transpose()
            .map_err(StoreError::engine(OP))?
            .is_some();
        Ok((blocks, chunks, more))
    }

    /// Removes the index entry `fp` if no chunk can refer to it any more (see the module doc);
    /// returns whether it did. `blocks_pruned_before` is the cutoff of a prune whose block
    /// phase is complete.
    pub(super) fn drop_series_if_unreferenced(
        &self,
        fp: &[u8],
        blocks_pruned_before: Timestamp,
    ) -> Result<bool, StoreError> {
        const OP: &str = "pruning the series index";
        let trees = &self.inner.trees;
        // See `Inner::series_lock`: no chunk of this series can be written between the check
        // and the removal.
        let _guard = self
            .inner
            .series_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(value) = trees.series.get(fp).map_err(StoreError::engine(OP))? else {
            return Ok(false);
        };
        // An entry that does not decode labels nothing; put_chunks rewrites it if its series
        // comes back.
        let in_blocks = decode_series(&value).is_ok_and(|e| {
            e.referenced_until
                .is_some_and(|r| r.saturating_add(SERIES_REFRESH_MS) >= blocks_pruned_before)
        });
        if in_blocks || trees.chunks.scan_prefix(fp).next().is_some() {
            return Ok(false);
        }
        let removed = trees
            .series
            .remove(fp)
            .map_err(StoreError::engine(OP))?
            .is_some();
        if removed {
            // Saturating: the count is only a gauge and must never wrap.
            let _ = self.inner.series_count.fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |n| Some(n.saturating_sub(1)),
            );
        }
        Ok(removed)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::test_util::*;
    use super::*;

    fn labels(job: &str) -> Labels {
        Labels::new([("__name__", "up"), ("job", job)])
    }

    /// Encodes a per-chunk record as earlier versions wrote it.
    pub(in super::super) fn legacy_chunk(
        min_t: Timestamp,
        max_t: Timestamp,
        count: u32,
        bytes: &[u8],
    ) -> Vec<u8> {
        let mut e = Encoder::with_format(CHUNK_V1);
        e.uvarint(max_t.abs_diff(min_t))
            .uvarint(u64::from(count))
            .raw_tail(bytes);
        e.finish()
    }

    /// Indexes a series as earlier versions did (labels only).
    pub(in super::super) fn legacy_series(store: &Store, labels: &Labels) {
        let mut e = Encoder::with_format(SERIES_V1);
        e.labels(labels);
        put_raw(
            store,
            "series",
            &labels.fingerprint().to_be_bytes(),
            &e.finish(),
        );
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
        assert_eq!(block_len(&value), Some(3));
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
        // Three checkpoints, each a block mixing series, and one old-format record.
        store
            .put_chunks(&[chunk(&b, 0, 90, &1), chunk(&a, 0, 100, &2)])
            .unwrap();
        store
            .put_chunks(&[
                chunk(&c, 100, 150, &3),
                chunk(&a, 101, 200, &4),
                chunk(&b, 91, 190, &5),
            ])
            .unwrap();
        store
            .put_chunks(&[chunk(&a, 201, 300, &6), chunk(&b, 191, 290, &7)])
            .unwrap();
        legacy_series(&store, &c);
        put_raw(
            &store,
            "chunks",
            &chunk_key(c.fingerprint(), 50),
            &legacy_chunk(0, 50, 1, &[8]),
        );
        assert_eq!(raw_keys(&store, "chunk_blocks").len(), 3);

        let got: Vec<(Labels, i64, u8)> = store
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
        assert_eq!(store.series_count(), 3);

        // A block is read if its max time is recent enough, and only its recent chunks kept.
        let recent: Vec<(Labels, i64)> = store
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
        store.put_chunk(&a, 0, 100, 2, &[1]).unwrap();
        store.put_chunk(&a, 0, 100, 3, &[1, 2]).unwrap();
        let all: Vec<StoredChunk> = store.chunks_since(0).map(Result::unwrap).collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].count, 3);
        assert_eq!(store.series_count(), 1);
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
        store.put_chunks(&chunks).unwrap();
        let blocks = raw_keys(&store, "chunk_blocks").len();
        assert!((3..=4).contains(&blocks), "{blocks} blocks");
        let back: Vec<StoredChunk> = store.chunks_since(0).map(Result::unwrap).collect();
        assert_eq!(back.len(), 40);
        assert!(back.iter().all(|c| c.bytes == bytes));
    }

    #[test]
    fn bad_blocks_and_series_are_skipped_and_counted() {
        let (_dir, store) = temp_store();
        let (a, b) = (labels("a"), labels("b"));
        store.put_chunk(&a, 0, 100, 2, &[1]).unwrap();
        // A block of an unknown format, a truncated one, a key of the wrong shape.
        put_raw(&store, "chunk_blocks", &block_key(150, 1_000), &[42, 0, 0]);
        let good = encode_block(
            200,
            &[ChunkRef {
                labels: &a,
                min_t: 150,
                max_t: 200,
                count: 1,
                bytes: &[2],
            }],
        );
        put_raw(
            &store,
            "chunk_blocks",
            &block_key(200, 1_001),
            &good[..good.len() - 1],
        );
        put_raw(&store, "chunk_blocks", &block_key(300, 5)[..15], &good);
        // A block whose series is not in the index, and an index entry that does not decode.
        let orphan = encode_block(
            200,
            &[ChunkRef {
                labels: &b,
                min_t: 0,
                max_t: 200,
                count: 1,
                bytes: &[],
            }],
        );
        put_raw(&store, "chunk_blocks", &block_key(200, 1_002), &orphan);
        put_raw(&store, "series", &7u64.to_be_bytes(), &[SERIES_V2, 5]);
        put_raw(
            &store,
            "chunks",
            &chunk_key(7, 200),
            &legacy_chunk(0, 200, 1, &[]),
        );
        // And an old-format record that does not decode.
        put_raw(&store, "chunks", &chunk_key(a.fingerprint(), 250), &[42]);
        let all: Vec<StoredChunk> = store.chunks_since(0).map(Result::unwrap).collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].bytes, [1]);
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
            store.put_chunks(&[ok, bad]),
            Err(StoreError::InvalidRecord { .. })
        ));
        assert_eq!(store.series_count(), 0);
        assert_eq!(store.chunks_since(i64::MIN).count(), 0);
        store.put_chunks(&[]).unwrap();
    }

    #[test]
    fn index_entries_are_refreshed_only_when_stale() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        let referenced = |store: &Store| {
            let v = store
                .inner
                .trees
                .series
                .get(a.fingerprint().to_be_bytes())
                .unwrap()
                .unwrap();
            decode_series(&v).unwrap().referenced_until
        };
        legacy_series(&store, &a);
        assert_eq!(referenced(&store), None);
        store.put_chunk(&a, 0, 1_000, 1, &[]).unwrap();
        assert_eq!(referenced(&store), Some(1_000), "old entries are upgraded");
        store
            .put_chunk(&a, 0, 1_000 + SERIES_REFRESH_MS, 1, &[])
            .unwrap();
        assert_eq!(referenced(&store), Some(1_000));
        store
            .put_chunk(&a, 0, 1_001 + SERIES_REFRESH_MS, 1, &[])
            .unwrap();
        assert_eq!(referenced(&store), Some(1_001 + SERIES_REFRESH_MS));
    }
}
