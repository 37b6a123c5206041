//! The series index: fingerprint → label set and referenced-until time, for every series with
//! chunks in the store.
//!
//! # Layout
//!
//! One file per *batch* of entries, the series that one
//! [`Store::put_chunks`](super::Store::put_chunks) call indexed or refreshed:
//! `series/<seq>.sidx`, where `seq` is the batch sequence number (16 hex digits, from sled's
//! id counter, so later batches sort later). File: magic `pfsb` · batch · CRC-32 of the batch
//! (u32 BE). Batch: format byte [`SERIES_BATCH_V1`] · count · per entry: fingerprint (u64 BE) ·
//! referenced-until time (zigzag varint) · label count · per label: name id, value id (varints; see the `symbols` module).
//!
//! An entry takes ~25 bytes where a key of its own with the strings inline would take ~90, and
//! sled 0.34 costs ~170 bytes of disk per key in a tree that grows by random inserts. Batches
//! are files rather than sled values because sled keeps a large value it has written in memory
//! for good (its cache evicts a page only after enough other accesses to the same one of its
//! 256 shards, and the index's few pages see almost none); in files a batch costs memory only
//! while it is read or written.
//!
//! Series that come and go (a pod's) leave a small batch per checkpoint; once more than
//! [`MAX_SMALL_BATCHES`] hold fewer than [`SMALL_BATCH`] current entries, prune merges them into
//! one ([`SeriesIndex::merge_small`]).
//!
//! # In memory
//!
//! Batches cannot be read by fingerprint, so the index lives in memory: fingerprint → batch,
//! referenced-until time (in whole seconds, rounded up) and 16 bits of a second hash of the
//! label set (20 bytes a series, in a vector sorted by fingerprint: [`FpMap`]),
//! rebuilt at open by reading every batch; a later batch's entry replaces an earlier one's.
//! Writes check against memory (no read per chunk); the labels themselves are read from
//! the batches only when the head is loaded at start. The second hash stands in for the stored
//! labels in the fingerprint-collision check: two label sets would need to share a 64-bit
//! fingerprint and 16 bits of the second hash to be mistaken for one another (one chance in
//! 65,536 that a collision the fingerprint alone would let through goes unnoticed; a
//! fingerprint collision itself is one in ~10^10 for a million series).
//!
//! An entry superseded by a later batch (a refresh, a merge) or dropped by retention stays in
//! its batch until the next prune rewrites the batch without it (or deletes it once none of its
//! entries is current): until then a restart still reads it, and the later batch wins, or
//! retention drops it again. Symbols are counted per stored entry, stale ones included, so none
//! is removed while a stored entry uses it.
//!
//! # Crash safety
//!
//! A batch file is written whole or not at all (a temporary file, synced, renamed, the
//! directory synced); a damaged one is skipped and counted, and deleted at the next prune. The
//! symbols a batch uses are flushed to sled before its file is written, and the file is written
//! before the blocks that refer to its series, so a crash can leave entries without chunks
//! (pruned later) but never chunks without labels, nor entries without symbols. A batch's
//! symbols are released only once its rewrite or deletion is synced, so the symbol collection
//! that follows never leaves a batch naming a removed symbol.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::hash::Hasher;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::super::StoreError;
use super::super::codec::{DecodeError, Decoder, Encoder};
use super::super::shared::sync_dir;
use super::symbols::Symbols;
use crate::series::{Label, Labels, Timestamp};

/// Format byte of series batches.
const SERIES_BATCH_V1: u8 = 1;
/// The directory of the batch files, in the store's.
pub(super) const DIR_NAME: &str = "series";
/// A batch file's name: sequence number (16 hex digits) and this.
const BATCH_SUFFIX: &str = ".sidx";
const TMP_SUFFIX: &str = ".tmp";
/// A batch file starts with this; the batch follows, then its CRC-32 (u32 BE).
const BATCH_MAGIC: &[u8; 4] = b"pfsb";
/// Referenced-until that no block can be covered by: an entry holding it is refreshed at its
/// series' next write and dropped at the next prune. It packs to 0 in memory ([`Packed`]).
pub(super) const UNREFERENCED: Timestamp = Timestamp::MIN;
/// A batch with fewer current entries than this is small (see [`SeriesIndex::merge_small`]).
const SMALL_BATCH: u32 = 1_024;
/// Small batches are merged once there are more than this many.
const MAX_SMALL_BATCHES: usize = 16;
/// Batches merged at most in one step.
const MERGE_MAX: usize = 256;

/// Batch numbers are below this: the slot keeps a batch in the low 48 bits of a word and 16
/// bits of the check hash in the high ones (sled hands out ids one by one from 0, and jumps by
/// a million after a crash: 2^48 is out of reach).
pub(super) const MAX_BATCH: u64 = 1 << 48;

/// Where a series' current entry is, and what the writers need to know without reading it
/// (kept in 20 bytes with the fingerprint, see [`Packed`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Slot {
    /// The batch holding the current entry (low 48 bits) and the high 16 bits of
    /// [`check_hash`] of the label set.
    batch_check: u64,
    /// See the `chunks` module doc; [`UNREFERENCED`] when no block refers to the series.
    pub(super) referenced_until: Timestamp,
}

impl Slot {
    fn new(batch: u64, referenced_until: Timestamp, labels: &Labels) -> Slot {
        debug_assert!(batch < MAX_BATCH);
        Slot {
            batch_check: (batch & (MAX_BATCH - 1)) | (check_hash(labels) & !(MAX_BATCH - 1)),
            referenced_until,
        }
    }

    /// The batch holding the current entry.
    pub(super) fn batch(&self) -> u64 {
        self.batch_check & (MAX_BATCH - 1)
    }

    /// The same slot in another batch.
    fn moved_to(self, batch: u64) -> Slot {
        Slot {
            batch_check: (batch & (MAX_BATCH - 1)) | (self.batch_check & !(MAX_BATCH - 1)),
            ..self
        }
    }
}

/// One entry to write.
pub(super) struct NewEntry<'a> {
    pub(super) fp: u64,
    pub(super) labels: &'a Labels,
    pub(super) referenced_until: Timestamp,
}

/// One entry of a decoded batch.
struct BatchEntry {
    fp: u64,
    referenced_until: Timestamp,
    /// Name and value ids, alternating.
    ids: Vec<u32>,
}

/// Fingerprint → slot, as a vector sorted by fingerprint: 20 bytes an entry ([`Packed`]) and
/// no slack to speak of, where a hash map takes 64 on average (hashbrown doubles its buckets,
/// of 33 bytes each). Lookups are binary searches;
/// entries arrive in batches ([`FpMap::upsert`]) and are merged in one pass from the back.
#[derive(Default)]
struct FpMap(Vec<Packed>);

/// An [`FpMap`] entry: the fingerprint, the slot's batch and check hash, and its
/// referenced-until time in whole seconds, rounded up (0: [`UNREFERENCED`]); 20 bytes where
/// `(u64, Slot)` takes 24. Rounding up keeps the
/// invariant of the `chunks` module doc: the time only ever reads later than the one written,
/// so an entry outlives its blocks by up to a second more, never less; and a time read back
/// from a batch file rounds to the same value again.
#[derive(Clone, Copy, Default)]
#[repr(C, packed(4))]
struct Packed {
    fp: u64,
    batch_check: u64,
    referenced_s: u32,
}

const _: () = assert!(std::mem::size_of::<Packed>() == 20);

impl Packed {
    fn new(fp: u64, slot: Slot) -> Packed {
        let ms = slot.referenced_until;
        let referenced_s = if ms == UNREFERENCED {
            0
        } else {
            let s = ms / 1_000 + i64::from(ms % 1_000 > 0);
            u32::try_from(s.max(1)).unwrap_or(u32::MAX)
        };
        Packed {
            fp,
            batch_check: slot.batch_check,
            referenced_s,
        }
    }

    fn fp(&self) -> u64 {
        self.fp
    }

    fn slot(&self) -> Slot {
        let s = self.referenced_s;
        Slot {
            batch_check: self.batch_check,
            referenced_until: if s == 0 {
                UNREFERENCED
            } else {
                i64::from(s) * 1_000
            },
        }
    }
}

impl FpMap {
    fn position(&self, fp: u64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&fp, Packed::fp)
    }

    fn get(&self, fp: u64) -> Option<Slot> {
        self.position(fp).ok().map(|i| self.0[i].slot())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter(&self) -> impl Iterator<Item = (u64, Slot)> + '_ {
        self.0.iter().map(|e| (e.fp(), e.slot()))
    }

    /// Sets every entry of `new`, a later one winning over an earlier one with the same
    /// fingerprint; returns the slots that were replaced (by `new` or within it).
    fn upsert(&mut self, mut new: Vec<(u64, Slot)>) -> Vec<Slot> {
        let mut replaced = Vec::new();
        // Stable: entries of one fingerprint keep their order, and the last one stays.
        new.sort_by_key(|e| e.0);
        let mut added: Vec<Packed> = Vec::with_capacity(new.len());
        for (fp, slot) in new {
            let e = Packed::new(fp, slot);
            if let Some(last) = added.last_mut().filter(|l| l.fp() == fp) {
                replaced.push(std::mem::replace(last, e).slot());
            } else if let Ok(i) = self.position(fp) {
                replaced.push(std::mem::replace(&mut self.0[i], e).slot());
            } else {
                added.push(e);
            }
        }
        if added.is_empty() {
            return replaced;
        }
        // Merge from the back into the grown vector: no second copy of the index. Growth by
        // an eighth keeps the slack small and the reallocations few.
        let (n, k) = (self.0.len(), added.len());
        self.0.reserve_exact(k.max(n / 8));
        self.0.resize(n + k, Packed::default());
        let (mut i, mut j) = (n, k);
        for w in (0..n + k).rev() {
            if j == 0 {
                break;
            }
            if i > 0 && self.0[i - 1].fp() > added[j - 1].fp() {
                self.0[w] = self.0[i - 1];
                i -= 1;
            } else {
                self.0[w] = added[j - 1];
                j -= 1;
            }
        }
        replaced
    }

    /// Removes the entries of `fps` (sorted); returns their slots.
    fn remove_sorted(&mut self, fps: &[u64]) -> Vec<Slot> {
        let mut removed = Vec::new();
        self.0.retain(|e| {
            let gone = fps.binary_search(&e.fp()).is_ok();
            if gone {
                removed.push(e.slot());
            }
            !gone
        });
        removed
    }
}

/// The series index and the symbol table in memory.
#[derive(Default)]
pub(super) struct SeriesIndex {
    /// Where the batch files are.
    dir: PathBuf,
    pub(super) symbols: Symbols,
    series: FpMap,
    /// Batch → number of current entries in it.
    batches: HashMap<u64, u32>,
    /// Batches holding entries that are no longer current, to rewrite at the next prune.
    dirty: BTreeSet<u64>,
    /// Symbols were written to sled and not flushed since (a write failed in between).
    symbols_unflushed: bool,
}

/// What loading found that did not decode: (tree, error), each skipped.
pub(super) type Skipped = Vec<(&'static str, DecodeError)>;

impl SeriesIndex {
    /// Loads the symbols and every batch file in `dir` (created if missing).
    pub(super) fn load(
        symbols: &sled::Tree,
        dir: PathBuf,
    ) -> Result<(SeriesIndex, Skipped), StoreError> {
        const OP: &str = "reading the series index";
        let (symbols, bad_symbols) = Symbols::load(symbols).map_err(StoreError::engine(OP))?;
        let mut skipped: Skipped = bad_symbols.into_iter().map(|e| ("symbols", e)).collect();
        std::fs::create_dir_all(&dir).map_err(StoreError::file(OP, &dir))?;
        // Batch → its bytes or why they cannot be read, in sequence order.
        let mut found: BTreeMap<u64, Result<Vec<u8>, DecodeError>> = BTreeMap::new();
        for seq in list_batch_files(&dir).map_err(StoreError::file(OP, &dir))? {
            let path = batch_path(&dir, seq);
            if let Some(bytes) = read_batch_file(&path).map_err(StoreError::file(OP, &path))? {
                found.insert(seq, bytes);
            }
        }
        let mut index = SeriesIndex {
            dir,
            symbols,
            ..SeriesIndex::default()
        };
        let mut loaded: Vec<(u64, Slot)> = Vec::new();
        for (batch, bytes) in found {
            let bytes = bytes.and_then(|b| {
                if batch < MAX_BATCH {
                    Ok(b)
                } else {
                    Err(DecodeError::OutOfRange)
                }
            });
            let entries = match bytes.and_then(|b| decode_batch(&b)) {
                Ok(e) => e,
                Err(e) => {
                    // Deleted at the next prune: nothing current is in it.
                    skipped.push((DIR_NAME, e));
                    index.dirty.insert(batch);
                    continue;
                }
            };
            for e in entries {
                index.symbols.retain(&e.ids);
                match index.labels_from_ids(e.fp, &e.ids) {
                    Ok(labels) => {
                        loaded.push((e.fp, Slot::new(batch, e.referenced_until, &labels)))
                    }
                    Err(err) => {
                        skipped.push((DIR_NAME, err));
                        index.dirty.insert(batch);
                    }
                }
            }
        }
        index.set(loaded);
        Ok((index, skipped))
    }

    /// Makes each entry's batch the home of its series' current entry (a later entry of a
    /// series winning over an earlier one).
    fn set(&mut self, entries: Vec<(u64, Slot)>) {
        for (_, slot) in &entries {
            *self.batches.entry(slot.batch()).or_insert(0) += 1;
        }
        for old in self.series.upsert(entries) {
            self.leave(old.batch());
        }
    }

    /// One current entry left `batch`.
    fn leave(&mut self, batch: u64) {
        if let Some(n) = self.batches.get_mut(&batch) {
            *n = n.saturating_sub(1);
        }
        self.dirty.insert(batch);
    }

    /// The slot of series `fp`.
    pub(super) fn get(&self, fp: u64) -> Option<Slot> {
        self.series.get(fp)
    }

    /// Series in the index.
    pub(super) fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether `labels` are the ones indexed under their fingerprint's `slot` (see the module
    /// doc).
    pub(super) fn same_labels(slot: &Slot, labels: &Labels) -> bool {
        slot.batch_check & !(MAX_BATCH - 1) == check_hash(labels) & !(MAX_BATCH - 1)
    }

    /// Writes `entries` as batch `seq`, after any symbols they need (flushed first, so that
    /// a crash never keeps an entry without its symbols); then they are current.
    pub(super) fn write(
        &mut self,
        symbols: &sled::Tree,
        db: &sled::Db,
        seq: u64,
        entries: &[NewEntry<'_>],
    ) -> Result<(), StoreError> {
        const OP: &str = "writing the series index";
        check_batch(seq)?;
        let mut e = Encoder::with_format(SERIES_BATCH_V1);
        e.uvarint(entries.len() as u64);
        // Every entry's ids in one vector: the first checkpoint indexes every series at once,
        // and a vector per entry would be tens of thousands of small allocations.
        let mut ids: Vec<u32> = Vec::new();
        for entry in entries {
            let first = ids.len();
            for l in entry.labels.iter() {
                for s in [&l.name(), &l.value()] {
                    match self.symbols.id_or_new(s) {
                        Ok(id) => ids.push(id),
                        Err(err) => {
                            self.symbols.rollback();
                            return Err(err);
                        }
                    }
                }
            }
            e.u64_be(entry.fp)
                .ivarint(entry.referenced_until)
                .uvarint(entry.labels.len() as u64);
            for id in &ids[first..] {
                e.uvarint(u64::from(*id));
            }
        }
        // Symbols first, durable: a crash must never keep an entry without its symbols.
        self.symbols_unflushed |= self.symbols.commit(symbols)?;
        if self.symbols_unflushed {
            db.flush().map_err(StoreError::engine(OP))?;
            self.symbols_unflushed = false;
        }
        write_batch_file(&self.dir, seq, &e.finish())
            .map_err(StoreError::file(OP, &batch_path(&self.dir, seq)))?;
        self.symbols.retain(&ids);
        self.set(
            entries
                .iter()
                .map(|entry| {
                    let slot = Slot::new(seq, entry.referenced_until, entry.labels);
                    (entry.fp, slot)
                })
                .collect(),
        );
        Ok(())
    }

    /// The label sets of series `fps`, read from their batches. A series missing from the index
    /// is absent from the answer; one whose entry does not decode maps to the error.
    pub(super) fn labels(
        &self,
        fps: impl IntoIterator<Item = u64>,
    ) -> Result<HashMap<u64, Result<Labels, DecodeError>>, StoreError> {
        let mut by_batch: HashMap<u64, HashSet<u64>> = HashMap::new();
        for fp in fps {
            if let Some(slot) = self.series.get(fp) {
                by_batch.entry(slot.batch()).or_default().insert(fp);
            }
        }
        let mut out = HashMap::new();
        for (batch, wanted) in by_batch {
            let entries = match self.read_batch(batch, "reading the series index")? {
                Some(Ok(entries)) => entries,
                Some(Err(e)) => {
                    out.extend(wanted.into_iter().map(|fp| (fp, Err(e))));
                    continue;
                }
                None => {
                    out.extend(
                        wanted
                            .into_iter()
                            .map(|fp| (fp, Err(DecodeError::Truncated))),
                    );
                    continue;
                }
            };
            for e in entries {
                if wanted.contains(&e.fp) {
                    out.insert(e.fp, self.labels_from_ids(e.fp, &e.ids));
                }
            }
        }
        Ok(out)
    }

    /// Every series whose labels match all `matchers`, as (fingerprint, referenced-until time,
    /// labels), read from the batch files. Matchers are run on symbol ids: a regex once per
    /// distinct value of its label, a label set built only for a series that matches. Entries
    /// that do not decode are skipped (they were counted at open).
    pub(super) fn matching(
        &self,
        matchers: &[promql_parser::label::Matcher],
    ) -> Result<Vec<(u64, Timestamp, Labels)>, StoreError> {
        const OP: &str = "reading the series index";
        // Per matcher: its label's name id (none: the label is on no stored series) and what
        // it said of each value id met so far.
        let mut compiled: Vec<(Option<u32>, HashMap<u32, bool>)> = matchers
            .iter()
            .map(|m| (self.symbols.id(&m.name), HashMap::new()))
            .collect();
        let mut out = Vec::new();
        let mut batches: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(b, _)| *b)
            .collect();
        batches.sort_unstable();
        for batch in batches {
            let Some(Ok(entries)) = self.read_batch(batch, OP)? else {
                continue;
            };
            'entry: for e in entries {
                let Some(slot) = self.series.get(e.fp).filter(|s| s.batch() == batch) else {
                    continue;
                };
                for (m, (name, seen)) in matchers.iter().zip(compiled.iter_mut()) {
                    let value = name.and_then(|name| {
                        e.ids
                            .chunks_exact(2)
                            .find(|pair| pair[0] == name)
                            .map(|pair| pair[1])
                    });
                    let ok = match value {
                        None => m.is_match(""),
                        Some(id) => *seen
                            .entry(id)
                            .or_insert_with(|| self.symbols.get(id).is_some_and(|v| m.is_match(v))),
                    };
                    if !ok {
                        continue 'entry;
                    }
                }
                if let Ok(labels) = self.labels_from_ids(e.fp, &e.ids) {
                    out.push((e.fp, slot.referenced_until, labels));
                }
            }
        }
        Ok(out)
    }

    /// Drops from memory every series whose entry no block can refer to any more (see the
    /// `chunks` module doc); their batches are rewritten by [`SeriesIndex::rewrite_dirty`].
    /// Returns how many.
    pub(super) fn drop_unreferenced(
        &mut self,
        blocks_pruned_before: Timestamp,
        refresh_ms: i64,
    ) -> u64 {
        let mut gone: Vec<u64> = self
            .series
            .iter()
            .filter(|(_, s)| {
                s.referenced_until == UNREFERENCED
                    || s.referenced_until.saturating_add(refresh_ms) < blocks_pruned_before
            })
            .map(|(fp, _)| fp)
            .collect();
        gone.sort_unstable();
        let removed = self.series.remove_sorted(&gone);
        let dropped = removed.len() as u64;
        for old in removed {
            self.leave(old.batch());
        }
        dropped
    }

    /// Rewrites up to `budget` batches holding entries that are no longer current, without
    /// them (or deletes those left with none); returns how many it rewrote and whether more
    /// are waiting. The directory is synced before a symbol is released, so that no batch
    /// file naming a symbol can come back after the symbol is collected.
    pub(super) fn rewrite_dirty(&mut self, budget: usize) -> Result<(usize, bool), StoreError> {
        const OP: &str = "pruning the series index";
        let todo: Vec<u64> = self.dirty.iter().take(budget.max(1)).copied().collect();
        let mut released = Vec::new();
        for &batch in &todo {
            let path = batch_path(&self.dir, batch);
            // Holds current entries, so it decoded at open or was written since; if it
            // stopped decoding, leave it alone.
            let entries = self.read_batch(batch, OP)?;
            if self.batches.get(&batch).copied().unwrap_or(0) == 0 {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(StoreError::file(OP, &path)(e));
                    }
                    _ => {}
                }
                released.extend(entries.and_then(Result::ok).unwrap_or_default());
                self.batches.remove(&batch);
            } else if let Some(Ok(entries)) = entries {
                let (keep, gone): (Vec<BatchEntry>, Vec<BatchEntry>) = entries
                    .into_iter()
                    .partition(|e| self.series.get(e.fp).is_some_and(|s| s.batch() == batch));
                write_batch_file(&self.dir, batch, &encode_batch(&keep))
                    .map_err(StoreError::file(OP, &path))?;
                released.extend(gone);
            }
            self.dirty.remove(&batch);
        }
        if !todo.is_empty() {
            sync_dir(&self.dir).map_err(StoreError::file(OP, &self.dir))?;
        }
        for e in released {
            self.symbols.release(&e.ids);
        }
        Ok((todo.len(), !self.dirty.is_empty()))
    }

    /// Whether enough small batches (each a file) have piled up for
    /// [`SeriesIndex::merge_small`] to merge them: series that come and go (a pod's) leave a
    /// small batch per checkpoint.
    pub(super) fn wants_merge(&self) -> bool {
        self.small_batches().len() > MAX_SMALL_BATCHES
    }

    fn small_batches(&self) -> Vec<u64> {
        let mut small: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, n)| (1..SMALL_BATCH).contains(*n))
            .map(|(b, _)| *b)
            .collect();
        small.sort_unstable();
        small
    }

    /// Writes the current entries of up to [`MERGE_MAX`] small batches as one new batch `seq`;
    /// the old ones are then dirty, deleted by [`SeriesIndex::rewrite_dirty`] (a crash in
    /// between leaves both, and the later batch wins at open). Returns how many it merged.
    pub(super) fn merge_small(&mut self, seq: u64) -> Result<usize, StoreError> {
        const OP: &str = "merging series index batches";
        let small = self.small_batches();
        if small.len() <= MAX_SMALL_BATCHES {
            return Ok(0);
        }
        check_batch(seq)?;
        let small = &small[..small.len().min(MERGE_MAX)];
        let mut merged = Vec::new();
        for &batch in small {
            if let Some(Ok(entries)) = self.read_batch(batch, OP)? {
                merged.extend(
                    entries
                        .into_iter()
                        .filter(|e| self.series.get(e.fp).is_some_and(|s| s.batch() == batch)),
                );
            }
        }
        write_batch_file(&self.dir, seq, &encode_batch(&merged))
            .map_err(StoreError::file(OP, &batch_path(&self.dir, seq)))?;
        let mut slots = Vec::with_capacity(merged.len());
        for e in &merged {
            self.symbols.retain(&e.ids);
            if let Some(old) = self.series.get(e.fp) {
                slots.push((e.fp, old.moved_to(seq)));
            }
        }
        self.set(slots);
        Ok(small.len())
    }

    /// Batch `batch` decoded: `None` when its file is missing, the error when it is damaged.
    fn read_batch(
        &self,
        batch: u64,
        op: &'static str,
    ) -> Result<Option<Result<Vec<BatchEntry>, DecodeError>>, StoreError> {
        let path = batch_path(&self.dir, batch);
        let bytes = read_batch_file(&path).map_err(StoreError::file(op, &path))?;
        Ok(bytes.map(|b| b.and_then(|b| decode_batch(&b))))
    }

    /// A label set from alternating name and value ids; it must be canonical and hash to `fp`,
    /// so that a damaged entry or symbol never passes for another series' labels.
    fn labels_from_ids(&self, fp: u64, ids: &[u32]) -> Result<Labels, DecodeError> {
        let mut v: Vec<Label> = Vec::with_capacity(ids.len() / 2);
        for pair in ids.chunks(2) {
            let [name, value] = pair else {
                return Err(DecodeError::Truncated);
            };
            let symbol = |id: &u32| {
                self.symbols
                    .get(*id)
                    .cloned()
                    .ok_or(DecodeError::OutOfRange)
            };
            let (name, value) = (symbol(name)?, symbol(value)?);
            if value.is_empty() || v.last().is_some_and(|prev| *prev.name() >= name) {
                return Err(DecodeError::BadLabels);
            }
            v.push(Label::new(name, value));
        }
        let labels = Labels::from_sorted(v);
        if labels.fingerprint() != fp {
            return Err(DecodeError::BadLabels);
        }
        Ok(labels)
    }

    /// Symbols no stored entry uses (see [`Symbols::collect`]).
    pub(super) fn collect_symbols(
        &mut self,
        symbols: &sled::Tree,
        budget: usize,
    ) -> Result<(u64, bool), StoreError> {
        self.symbols.collect(symbols, budget)
    }

    /// Makes the entry of series `fp` look as if it held `other` labels under the same
    /// fingerprint, as a collision would (for tests).
    #[cfg(test)]
    pub(super) fn plant_collision(&mut self, fp: u64, other: &Labels) {
        let slot = self.series.get(fp).expect("indexed");
        let planted = Slot::new(slot.batch(), slot.referenced_until, other);
        self.series.upsert(vec![(fp, planted)]);
    }

    /// Batches waiting to be rewritten (for tests).
    #[cfg(test)]
    pub(super) fn dirty_batches(&self) -> usize {
        self.dirty.len()
    }
}

/// Refuses a batch number a slot cannot hold (see [`MAX_BATCH`]).
fn check_batch(seq: u64) -> Result<(), StoreError> {
    if seq < MAX_BATCH {
        Ok(())
    } else {
        Err(StoreError::InvalidRecord {
            reason: format!("series index batch number {seq} is out of range"),
        })
    }
}

/// Where batch `seq` lives in `dir`.
fn batch_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}{BATCH_SUFFIX}"))
}

/// Writes batch `seq` (the bytes of [`encode_batch`]) as its file, replacing any earlier one:
/// through a temporary file, synced and renamed, the directory synced, so that the file is
/// whole or absent after a crash.
fn write_batch_file(dir: &Path, seq: u64, batch: &[u8]) -> io::Result<()> {
    let path = batch_path(dir, seq);
    let tmp = dir.join(format!("{seq:016x}{BATCH_SUFFIX}{TMP_SUFFIX}"));
    let written = (|| {
        let mut file = File::create(&tmp)?;
        let mut bytes = Vec::with_capacity(BATCH_MAGIC.len() + batch.len() + 4);
        bytes.extend_from_slice(BATCH_MAGIC);
        bytes.extend_from_slice(batch);
        bytes.extend_from_slice(&crc32fast::hash(batch).to_be_bytes());
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The batch bytes of file `path`; [`DecodeError`] when the file is damaged (`Ok(None)` when
/// it does not exist).
fn read_batch_file(path: &Path) -> io::Result<Option<Result<Vec<u8>, DecodeError>>> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(body) = bytes
        .strip_prefix(BATCH_MAGIC.as_slice())
        .filter(|b| b.len() >= 4)
    else {
        return Ok(Some(Err(DecodeError::Truncated)));
    };
    let (batch, crc) = body.split_at(body.len() - 4);
    if crc32fast::hash(batch).to_be_bytes() != *crc {
        return Ok(Some(Err(DecodeError::Checksum)));
    }
    let len = batch.len();
    bytes.drain(..BATCH_MAGIC.len());
    bytes.truncate(len);
    Ok(Some(Ok(bytes)))
}

/// The batches in `dir`, in sequence order; temporary files a crash left are deleted.
fn list_batch_files(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(TMP_SUFFIX) {
            std::fs::remove_file(entry.path())?;
        } else if let Some(seq) = name
            .strip_suffix(BATCH_SUFFIX)
            .filter(|hex| hex.len() == 16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// A second hash of a label set, independent of its fingerprint (see the module doc). Never
/// stored: computed at open and at writes by the same build, so it need not be stable across
/// versions.
fn check_hash(labels: &Labels) -> u64 {
    let mut h = DefaultHasher::new();
    for l in labels.iter() {
        h.write(l.name().as_bytes());
        h.write_u8(0xff);
        h.write(l.value().as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

fn encode_batch(entries: &[BatchEntry]) -> Vec<u8> {
    let mut e = Encoder::with_format(SERIES_BATCH_V1);
    e.uvarint(entries.len() as u64);
    for entry in entries {
        e.u64_be(entry.fp)
            .ivarint(entry.referenced_until)
            .uvarint((entry.ids.len() / 2) as u64);
        for id in &entry.ids {
            e.uvarint(u64::from(*id));
        }
    }
    e.finish()
}

fn decode_batch(value: &[u8]) -> Result<Vec<BatchEntry>, DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    if format != SERIES_BATCH_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let n = d.uvarint()?;
    // Fingerprint, time and label count: 10 bytes at least per entry.
    if n > (d.remaining() / 10) as u64 {
        return Err(DecodeError::Truncated);
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let fp = d.u64_be()?;
        let referenced_until = d.ivarint()?;
        let labels = d.uvarint()?;
        if labels > (d.remaining() / 2) as u64 {
            return Err(DecodeError::Truncated);
        }
        let mut ids = Vec::with_capacity(2 * labels as usize);
        for _ in 0..2 * labels {
            ids.push(d.u32varint()?);
        }
        out.push(BatchEntry {
            fp,
            referenced_until,
            ids,
        });
    }
    d.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests;
