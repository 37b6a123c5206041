//! The symbol table: every label name and value the series index uses, stored once.
//!
//! Tree `symbols`: id (u32 BE) → format byte [`SYMBOL_V1`] · UTF-8 bytes. A series index entry
//! holds pairs of ids instead of strings (see [`super::chunks`]): `job`, `__name__` and most
//! values repeat across thousands of series, and the index is the largest part of the store
//! that sled still holds. The table is loaded at open and kept in memory (the head holds the
//! same strings anyway, and label sets read back share the table's allocations).
//!
//! For each symbol the table counts the series index entries' references to it (rebuilt from
//! the index at open) so that retention can drop the symbols no series uses any more
//! ([`Symbols::collect`]).
//!
//! # Crash safety
//!
//! sled recovers a prefix of its log. A symbol is inserted before the first series entry that
//! uses it and removed after the last series entry that used it was removed, so every prefix
//! holds the symbols of the series entries it holds. The same argument allows a new symbol to
//! take the id of one removed before a restart (new ids are the largest one loaded plus one):
//! no entry in any prefix that holds the new symbol can still refer to the old one.

use std::collections::HashMap;
use std::sync::Arc;

use super::StoreError;
use super::codec::DecodeError;

/// Format byte of symbol values.
const SYMBOL_V1: u8 = 1;

/// One symbol in memory.
struct Entry {
    /// The string.
    s: Arc<str>,
    /// Series index references to it (a series using it as a name and a value counts twice).
    refs: u64,
}

/// The symbol table in memory; its owner keeps the `symbols` tree in step.
#[derive(Default)]
pub(super) struct Symbols {
    by_id: HashMap<u32, Entry>,
    by_str: HashMap<Arc<str>, u32>,
    /// The next id to hand out.
    next: u32,
}

impl Symbols {
    /// Loads the `symbols` tree; returns the table and the records that did not decode
    /// (skipped: series entries using them will not decode either, and are skipped in turn).
    pub(super) fn load(tree: &sled::Tree) -> Result<(Symbols, Vec<DecodeError>), sled::Error> {
        let mut symbols = Symbols::default();
        let mut bad = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            // Ids of damaged records are not handed out again either: a series entry may
            // still refer to one, and must then fail to decode, not read another string.
            if let Ok(id) = <[u8; 4]>::try_from(&*k) {
                symbols.next = symbols.next.max(u32::from_be_bytes(id).saturating_add(1));
            }
            match decode(&k, &v) {
                Ok((id, s)) => {
                    let s: Arc<str> = s.into();
                    symbols.by_str.entry(s.clone()).or_insert(id);
                    symbols.by_id.insert(id, Entry { s, refs: 0 });
                }
                Err(e) => bad.push(e),
            }
        }
        Ok((symbols, bad))
    }

    /// The string of symbol `id`.
    pub(super) fn get(&self, id: u32) -> Option<&Arc<str>> {
        self.by_id.get(&id).map(|e| &e.s)
    }

    /// The id of `s`, inserting it into `tree` first if it is new. The caller must count the
    /// references it writes with [`Symbols::retain`], or the symbol is collected.
    pub(super) fn intern(&mut self, tree: &sled::Tree, s: &Arc<str>) -> Result<u32, StoreError> {
        const OP: &str = "writing the symbol table";
        if let Some(id) = self.by_str.get(s) {
            return Ok(*id);
        }
        let id = self.next;
        let Some(next) = id.checked_add(1) else {
            return Err(StoreError::InvalidRecord {
                reason: "the symbol table is full (2^32 label names and values)".into(),
            });
        };
        let mut value = Vec::with_capacity(1 + s.len());
        value.push(SYMBOL_V1);
        value.extend_from_slice(s.as_bytes());
        tree.insert(id.to_be_bytes(), value)
            .map_err(StoreError::engine(OP))?;
        self.next = next;
        self.by_str.insert(s.clone(), id);
        self.by_id.insert(
            id,
            Entry {
                s: s.clone(),
                refs: 0,
            },
        );
        Ok(id)
    }

    /// Counts references to `ids` written to the series index.
    pub(super) fn retain(&mut self, ids: &[u32]) {
        for id in ids {
            if let Some(e) = self.by_id.get_mut(id) {
                e.refs += 1;
            }
        }
    }

    /// Counts references to `ids` removed from the series index.
    pub(super) fn release(&mut self, ids: &[u32]) {
        for id in ids {
            if let Some(e) = self.by_id.get_mut(id) {
                e.refs = e.refs.saturating_sub(1);
            }
        }
    }

    /// Removes up to `budget` symbols that no series entry refers to, from `tree` and from
    /// memory; returns how many it removed and whether more are left. Call only after the
    /// series entries were removed (see the module doc).
    pub(super) fn collect(
        &mut self,
        tree: &sled::Tree,
        budget: usize,
    ) -> Result<(u64, bool), StoreError> {
        const OP: &str = "pruning the symbol table";
        let unused: Vec<u32> = self
            .by_id
            .iter()
            .filter(|(_, e)| e.refs == 0)
            .map(|(id, _)| *id)
            .take(budget.saturating_add(1))
            .collect();
        let more = unused.len() > budget;
        let mut removed = 0;
        for id in unused.into_iter().take(budget) {
            tree.remove(id.to_be_bytes())
                .map_err(StoreError::engine(OP))?;
            if let Some(e) = self.by_id.remove(&id)
                && self.by_str.get(&e.s) == Some(&id)
            {
                self.by_str.remove(&e.s);
            }
            removed += 1;
        }
        Ok((removed, more))
    }

    /// Symbols in memory (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// References to the symbol of string `s` (for tests).
    #[cfg(test)]
    pub(super) fn refs(&self, s: &str) -> Option<u64> {
        self.by_str
            .get(s)
            .and_then(|id| self.by_id.get(id))
            .map(|e| e.refs)
    }
}

/// A symbol record's id and string.
fn decode<'a>(key: &[u8], value: &'a [u8]) -> Result<(u32, &'a str), DecodeError> {
    let id: [u8; 4] = key.try_into().map_err(|_| DecodeError::OutOfRange)?;
    match value.split_first() {
        Some((&SYMBOL_V1, s)) => Ok((
            u32::from_be_bytes(id),
            std::str::from_utf8(s).map_err(|_| DecodeError::Utf8)?,
        )),
        Some((other, _)) => Err(DecodeError::UnknownFormat(*other)),
        None => Err(DecodeError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_interned_counted_and_collected() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("symbols").unwrap();
        let (mut syms, bad) = Symbols::load(&tree).unwrap();
        assert!(bad.is_empty());
        let (job, api, up): (Arc<str>, Arc<str>, Arc<str>) =
            ("job".into(), "api".into(), "up".into());
        let a = syms.intern(&tree, &job).unwrap();
        let b = syms.intern(&tree, &api).unwrap();
        assert_eq!(syms.intern(&tree, &job).unwrap(), a, "interned once");
        let c = syms.intern(&tree, &up).unwrap();
        syms.retain(&[a, b, a, c]);
        syms.release(&[a, c]);
        assert_eq!(syms.refs("job"), Some(1));
        assert_eq!(syms.collect(&tree, 10).unwrap(), (1, false));
        assert_eq!(syms.get(c), None);
        assert_eq!(syms.get(a).map(|s| &**s), Some("job"));

        // A bad record is reported, the rest loads; ids continue after the largest.
        tree.insert(9u32.to_be_bytes(), &[7, b'x']).unwrap();
        tree.insert([1, 2], &[SYMBOL_V1, b'y']).unwrap();
        tree.insert(10u32.to_be_bytes(), &[SYMBOL_V1, 0xff])
            .unwrap();
        let (mut again, bad) = Symbols::load(&tree).unwrap();
        assert_eq!(
            bad,
            [
                DecodeError::UnknownFormat(7),
                DecodeError::Utf8,
                DecodeError::OutOfRange
            ]
        );
        assert_eq!(again.len(), 2);
        assert_eq!(again.get(b).map(|s| &**s), Some("api"));
        assert_eq!(again.intern(&tree, &up).unwrap(), 11);
    }

    #[test]
    fn collection_is_budgeted() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("symbols").unwrap();
        let mut syms = Symbols::default();
        for i in 0..5 {
            syms.intern(&tree, &Arc::from(i.to_string())).unwrap();
        }
        assert_eq!(syms.collect(&tree, 2).unwrap(), (2, true));
        assert_eq!(syms.collect(&tree, 2).unwrap(), (2, true));
        assert_eq!(syms.collect(&tree, 2).unwrap(), (1, false));
        assert_eq!(tree.len(), 0);
    }
}
