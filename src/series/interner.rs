//! Label strings and pairs, interned: one [`LabelStr`] per distinct name or value.

use std::mem::size_of;

use super::hash::{FastHasher, FastSet};
use super::labels::LabelStr;
use super::{Label, Labels};
use std::hash::Hasher;

/// Interner of label strings and label pairs: one [`LabelStr`] per distinct label name or
/// value, and one shared [`Label`] per distinct pair, built from those strings (the index and
/// the matchers compare the strings by address).
#[derive(Default)]
pub(super) struct Interner {
    pub(super) set: FastSet<LabelStr>,
    pub(super) pairs: hashbrown::HashTable<Label>,
}

/// The hash that keys the interned label pairs.
pub(super) fn pair_hash(name: &str, value: &str) -> u64 {
    let mut h = FastHasher::default();
    h.write(name.as_bytes());
    h.write_u8(0xff);
    h.write(value.as_bytes());
    h.finish()
}

impl Interner {
    pub(super) fn intern(&mut self, s: &str) -> LabelStr {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a = LabelStr::from(s);
        self.set.insert(a.clone());
        a
    }

    pub(super) fn intern_label(&mut self, l: &Label) -> Label {
        let (name, value): (&str, &str) = (l.name(), l.value());
        let h = pair_hash(name, value);
        if let Some(p) = self
            .pairs
            .find(h, |p| **p.name() == *name && **p.value() == *value)
        {
            return p.clone();
        }
        let p = Label::new(self.intern(name), self.intern(value));
        self.pairs
            .insert_unique(h, p.clone(), |p| pair_hash(p.name(), p.value()));
        p
    }

    pub(super) fn intern_labels(&mut self, labels: &Labels) -> Labels {
        Labels::from_sorted(labels.iter().map(|l| self.intern_label(l)).collect())
    }

    /// Drops pairs and strings no series uses any more.
    pub(super) fn gc(&mut self) {
        self.pairs.retain(|p| p.strong_count() > 1);
        self.set
            .retain(|a| LabelStr::strong_count(a).is_none_or(|n| n > 1));
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.set.capacity() * (size_of::<LabelStr>() + 1)
            + self
                .set
                .iter()
                .map(|s| s.len() + 2 * size_of::<usize>())
                .sum::<usize>()
            + self.pairs.capacity() * (size_of::<Label>() + 1)
            + self.pairs.len() * 4 * size_of::<usize>()
    }
}
