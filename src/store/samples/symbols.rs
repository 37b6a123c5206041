//! The symbol table: every label name and value the series index uses, stored once.
//!
//! A series index entry holds pairs of symbol ids instead of strings (see the `series_index`
//! module): `job`, `__name__` and most values repeat across thousands of series. The table is
//! loaded at open and kept in memory; label sets read back share its allocations.
//!
//! Tree `symbols`: one value per *batch* of symbols, the new symbols of one write. Key: the
//! batch's first id (u32 BE). Value: format byte [`SYMBOLS_V1`] · count · per symbol: id − key
//! (varint) · string (length-prefixed). Batches rather than a key per symbol because sled
//! 0.34 costs ~170 bytes of disk per key in a tree that grows by random inserts, several
//! times the ~16 bytes of a symbol.
//!
//! For each symbol the table counts the references of the series entries *stored* in sled
//! (stale copies included, until they are rewritten away), rebuilt at open, so that retention
//! can drop the symbols nothing uses any more ([`Symbols::collect`]): a batch left with no
//! living symbol is deleted, one with some is rewritten without the others.
//!
//! # Crash safety
//!
//! sled recovers a prefix of its log. Symbols are written (one insert per batch) before the
//! series entries that use them, and removed only once no stored series entry refers to them,
//! so every prefix holds the symbols of the series entries it holds. The same argument allows
//! a new symbol to take the id of one removed before a restart (new ids are the largest one
//! found at open plus one): no entry in a prefix holding the new symbol can refer to the old.

use crate::series::labels::LabelStr;
use std::collections::HashMap;

use super::super::StoreError;
use super::super::codec::{DecodeError, Decoder, Encoder};

/// Format byte of symbol batches.
const SYMBOLS_V1: u8 = 1;

/// One symbol in memory.
struct Entry {
    /// The string.
    s: LabelStr,
    /// References from stored series entries (a series using it as a name and a value counts
    /// twice).
    refs: u32,
    /// Key of the batch that stores it.
    batch: u32,
}

/// The symbol table in memory; its owner keeps the `symbols` tree in step.
#[derive(Default)]
pub(super) struct Symbols {
    by_id: HashMap<u32, Entry>,
    by_str: HashMap<LabelStr, u32>,
    /// The next id to hand out.
    next: u32,
    /// Ids handed out by [`Symbols::id_or_new`] and not yet written by [`Symbols::commit`].
    pending: Vec<u32>,
}

impl Symbols {
    /// Loads the `symbols` tree; returns the table and the batches that did not decode
    /// (skipped: series entries using their symbols will not decode either, and are skipped in
    /// turn).
    pub(super) fn load(tree: &sled::Tree) -> Result<(Symbols, Vec<DecodeError>), sled::Error> {
        let mut symbols = Symbols::default();
        let mut bad = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            match decode_batch(&k, &v) {
                Ok((batch, entries)) => {
                    for (id, s) in entries {
                        // Ids of damaged batches are not handed out again either: a series
                        // entry may refer to one, and must fail to decode, not read another
                        // string. Ids of a good batch are above its key.
                        symbols.next = symbols.next.max(id.saturating_add(1));
                        let s: LabelStr = s.into();
                        symbols.by_str.entry(s.clone()).or_insert(id);
                        symbols.by_id.insert(id, Entry { s, refs: 0, batch });
                    }
                }
                Err(e) => {
                    if let Ok(key) = <[u8; 4]>::try_from(&*k) {
                        symbols.next = symbols.next.max(u32::from_be_bytes(key).saturating_add(1));
                    }
                    bad.push(e);
                }
            }
        }
        Ok((symbols, bad))
    }

    /// The string of symbol `id`.
    pub(super) fn get(&self, id: u32) -> Option<&LabelStr> {
        self.by_id.get(&id).map(|e| &e.s)
    }

    /// The id of `s`, allocating a new one if it is new. New ids must be written with
    /// [`Symbols::commit`] before any series entry using them, or given back with
    /// [`Symbols::rollback`].
    pub(super) fn id_or_new(&mut self, s: &LabelStr) -> Result<u32, StoreError> {
        if let Some(id) = self.by_str.get(s) {
            return Ok(*id);
        }
        let id = self.next;
        let Some(next) = id.checked_add(1) else {
            return Err(StoreError::InvalidRecord {
                reason: "the symbol table is full (2^32 label names and values)".into(),
            });
        };
        self.next = next;
        self.by_str.insert(s.clone(), id);
        self.by_id.insert(
            id,
            Entry {
                s: s.clone(),
                refs: 0,
                batch: id,
            },
        );
        self.pending.push(id);
        Ok(id)
    }

    /// Writes the symbols allocated since the last commit as one batch; whether there were
    /// any. On failure they are forgotten (see [`Symbols::rollback`]).
    pub(super) fn commit(&mut self, tree: &sled::Tree) -> Result<bool, StoreError> {
        let Some(&first) = self.pending.first() else {
            return Ok(false);
        };
        let value = self.encode_batch(first, &self.pending);
        if let Err(e) = tree.insert(first.to_be_bytes(), value) {
            self.rollback();
            return Err(StoreError::engine("writing the symbol table")(e));
        }
        for id in std::mem::take(&mut self.pending) {
            if let Some(e) = self.by_id.get_mut(&id) {
                e.batch = first;
            }
        }
        Ok(true)
    }

    /// Forgets the symbols allocated since the last commit: nothing on disk knows them.
    pub(super) fn rollback(&mut self) {
        for id in std::mem::take(&mut self.pending) {
            if let Some(e) = self.by_id.remove(&id) {
                self.by_str.remove(&e.s);
            }
        }
    }

    /// Counts references to `ids` from a series entry written to sled.
    pub(super) fn retain(&mut self, ids: &[u32]) {
        for id in ids {
            if let Some(e) = self.by_id.get_mut(id) {
                e.refs = e.refs.saturating_add(1);
            }
        }
    }

    /// Counts references to `ids` from a series entry removed from sled.
    pub(super) fn release(&mut self, ids: &[u32]) {
        for id in ids {
            if let Some(e) = self.by_id.get_mut(id) {
                e.refs = e.refs.saturating_sub(1);
            }
        }
    }

    /// Removes the symbols no stored series entry refers to, rewriting or deleting up to
    /// `budget` batches; returns how many symbols went and whether more batches hold unused
    /// ones.
    pub(super) fn collect(
        &mut self,
        tree: &sled::Tree,
        budget: usize,
    ) -> Result<(u64, bool), StoreError> {
        const OP: &str = "pruning the symbol table";
        // Batch → (unused, used) ids.
        let mut batches: HashMap<u32, (Vec<u32>, Vec<u32>)> = HashMap::new();
        for (id, e) in &self.by_id {
            if self.pending.contains(id) {
                continue;
            }
            let b = batches.entry(e.batch).or_default();
            if e.refs == 0 { &mut b.0 } else { &mut b.1 }.push(*id);
        }
        let mut doomed: Vec<(u32, Vec<u32>, Vec<u32>)> = batches
            .into_iter()
            .filter(|(_, (unused, _))| !unused.is_empty())
            .map(|(batch, (unused, used))| (batch, unused, used))
            .collect();
        doomed.sort_unstable_by_key(|d| d.0);
        let more = doomed.len() > budget;
        let mut removed = 0;
        for (batch, unused, mut used) in doomed.into_iter().take(budget.max(1)) {
            if used.is_empty() {
                tree.remove(batch.to_be_bytes())
                    .map_err(StoreError::engine(OP))?;
            } else {
                used.sort_unstable();
                tree.insert(batch.to_be_bytes(), self.encode_batch(batch, &used))
                    .map_err(StoreError::engine(OP))?;
            }
            for id in unused {
                if let Some(e) = self.by_id.remove(&id)
                    && self.by_str.get(&e.s) == Some(&id)
                {
                    self.by_str.remove(&e.s);
                }
                removed += 1;
            }
        }
        Ok((removed, more))
    }

    /// The value of batch `key` holding `ids` (sorted, all at or above `key`).
    fn encode_batch(&self, key: u32, ids: &[u32]) -> Vec<u8> {
        let mut e = Encoder::with_format(SYMBOLS_V1);
        e.uvarint(ids.len() as u64);
        for id in ids {
            e.uvarint(u64::from(id.saturating_sub(key)))
                .str(self.get(*id).map_or("", |s| s));
        }
        e.finish()
    }

    /// The id of string `s`, if it is a symbol.
    pub(super) fn id(&self, s: &str) -> Option<u32> {
        self.by_str.get(s).copied()
    }

    /// Symbols in memory (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// References to the symbol of string `s` (for tests).
    #[cfg(test)]
    pub(super) fn refs(&self, s: &str) -> Option<u32> {
        self.by_str
            .get(s)
            .and_then(|id| self.by_id.get(id))
            .map(|e| e.refs)
    }
}

/// A decoded symbol batch: its key and its (id, string) pairs.
type Batch<'a> = (u32, Vec<(u32, &'a str)>);

/// A symbol batch's key and its (id, string) pairs.
fn decode_batch<'a>(key: &[u8], value: &'a [u8]) -> Result<Batch<'a>, DecodeError> {
    let key: [u8; 4] = key.try_into().map_err(|_| DecodeError::OutOfRange)?;
    let key = u32::from_be_bytes(key);
    let (format, mut d) = Decoder::with_format(value)?;
    if format != SYMBOLS_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let n = d.uvarint()?;
    // An id offset and a length at least per symbol: bounds the allocation.
    if n > (d.remaining() / 2) as u64 {
        return Err(DecodeError::Truncated);
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let id = u32::try_from(d.uvarint()?)
            .ok()
            .and_then(|off| key.checked_add(off))
            .ok_or(DecodeError::OutOfRange)?;
        out.push((id, d.str()?));
    }
    d.finish()?;
    Ok((key, out))
}

#[cfg(test)]
mod tests;
