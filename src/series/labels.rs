//! Label sets: the identity of a series and of an alert.
//!
//! A [`Labels`] is a list of name/value pairs sorted by name, with no empty values (an empty value
//! means "label absent", as in Prometheus). A [`Label`] is one pointer to a shared name/value
//! pair of [`LabelStr`]s (8 bytes a label), so that the head can intern both the strings and
//! the pairs: the thousands of series of one target share one `job="…"` pair, one
//! `instance="…"`, one `__name__="…"` per family.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use triomphe::ThinArc;

/// A shared, immutable label name or value: one pointer wide (the length lives with the
/// reference count and the bytes), cloned by a reference-count increment.
pub type LabelStr = arcstr::ArcStr;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair: one pointer to a shared name/value pair, so a label set of six labels is
/// 64 bytes instead of 112 (the head interns the pairs, which the series of a job share).
/// Equality and order are by content, with a pointer check first: label
/// sets of stored series usually share their pairs and strings and compare without reading the
/// strings (sorting a selection by labels is on the rule-evaluation path).
#[derive(Clone)]
pub struct Label(Arc<LabelPair>);

impl Eq for Label {}

const _: () = assert!(std::mem::size_of::<Label>() == 8);

/// The name and value of a [`Label`].
struct LabelPair {
    name: LabelStr,
    value: LabelStr,
}

/// Compares two label strings, by pointer first.
#[inline]
fn cmp_str(a: &LabelStr, b: &LabelStr) -> std::cmp::Ordering {
    if LabelStr::ptr_eq(a, b) {
        std::cmp::Ordering::Equal
    } else {
        (**a).cmp(&**b)
    }
}

#[inline]
fn eq_str(a: &LabelStr, b: &LabelStr) -> bool {
    LabelStr::ptr_eq(a, b) || **a == **b
}

impl Label {
    /// A label from its name and value.
    pub fn new(name: impl Into<LabelStr>, value: impl Into<LabelStr>) -> Label {
        Label(Arc::new(LabelPair {
            name: name.into(),
            value: value.into(),
        }))
    }

    /// Label name, e.g. `job`.
    #[inline]
    pub fn name(&self) -> &LabelStr {
        &self.0.name
    }

    /// Label value, never empty inside a [`Labels`].
    #[inline]
    pub fn value(&self) -> &LabelStr {
        &self.0.value
    }

    /// True when both are the same shared pair.
    #[inline]
    pub fn ptr_eq(a: &Label, b: &Label) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// How many label sets (and interners) hold this pair.
    pub(crate) fn strong_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl PartialEq for Label {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        Label::ptr_eq(self, other)
            || (eq_str(self.name(), other.name()) && eq_str(self.value(), other.value()))
    }
}

// By content, as equality is (equal pointers mean equal content).
impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        self.value().hash(state);
    }
}

impl Ord for Label {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Label::ptr_eq(self, other) {
            return std::cmp::Ordering::Equal;
        }
        cmp_str(self.name(), other.name()).then_with(|| cmp_str(self.value(), other.value()))
    }
}

impl PartialOrd for Label {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A sorted set of labels, shared: a clone is one reference-count increment, so a selection
/// hands out the stored series' label sets without copying them (the rule-evaluation path
/// clones hundreds of thousands per round). One pointer wide: the length lives in the
/// allocation with the reference count (`triomphe::ThinArc`; std's `Arc<[Label]>` is a
/// pointer and a length), which keeps a head series with its open chunk in jemalloc's 96-byte
/// class. Equality, order and hashing are by content, with a pointer check first; the empty
/// set is always `None`, so equal sets compare equal whatever way they were built.
#[derive(Clone, Default)]
pub struct Labels(Option<ThinArc<(), Label>>);

const _: () = assert!(std::mem::size_of::<Labels>() == 8);

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        self.ptr_eq(other) || self.as_slice() == other.as_slice()
    }
}

impl Eq for Labels {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> std::cmp::Ordering {
        if self.ptr_eq(other) {
            return std::cmp::Ordering::Equal;
        }
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl Labels {
    /// The empty label set.
    pub const fn empty() -> Self {
        Labels(None)
    }

    /// Wraps a sorted, checked vector; an empty one becomes `None`.
    fn from_vec(v: Vec<Label>) -> Self {
        match v.is_empty() {
            true => Labels(None),
            false => Labels(Some(ThinArc::from_header_and_iter((), v.into_iter()))),
        }
    }

    /// Builds a label set from pairs in any order. Empty values are dropped; of duplicate names
    /// the last one wins.
    pub fn new<N, V, I>(pairs: I) -> Self
    where
        N: Into<LabelStr>,
        V: Into<LabelStr>,
        I: IntoIterator<Item = (N, V)>,
    {
        let mut v: Vec<Label> = Vec::new();
        for (n, val) in pairs {
            let (name, value) = (n.into(), val.into());
            if let Some(existing) = v.iter_mut().find(|l| *l.name() == name) {
                *existing = Label::new(name, value);
            } else {
                v.push(Label::new(name, value));
            }
        }
        v.retain(|l| !l.value().is_empty());
        v.sort_by(|a, b| a.name().cmp(b.name()));
        Labels::from_vec(v)
    }

    /// Builds from labels already sorted by name with unique names and non-empty values
    /// (checked in debug builds). Used on hot paths where the caller guarantees the order.
    pub fn from_sorted(v: Vec<Label>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].name() < w[1].name()));
        debug_assert!(v.iter().all(|l| !l.value().is_empty()));
        Labels::from_vec(v)
    }

    /// The labels as a slice, sorted by name.
    #[inline]
    pub fn as_slice(&self) -> &[Label] {
        self.0.as_ref().map_or(&[], |a| &a.slice)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let v = self.as_slice();
        v.binary_search_by(|l| (**l.name()).cmp(name))
            .ok()
            .map(|i| &**v[i].value())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The `__name__` pair, if present: interned, the series of one family share it.
    pub fn metric_name_label(&self) -> Option<&Label> {
        let v = self.as_slice();
        v.binary_search_by(|l| (**l.name()).cmp(METRIC_NAME))
            .ok()
            .map(|i| &v[i])
    }

    /// Iterates over the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.as_slice().iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// True when both are the same shared set (a cheap check before comparing contents).
    pub fn ptr_eq(&self, other: &Labels) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::ptr::eq(a.ptr(), b.ptr()),
            (None, None) => true,
            _ => false,
        }
    }

    /// The labels as a vector, sorted by name.
    pub fn into_vec(self) -> Vec<Label> {
        self.as_slice().to_vec()
    }

    /// A copy with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: impl Into<LabelStr>, value: impl Into<LabelStr>) -> Labels {
        let (name, value): (LabelStr, LabelStr) = (name.into(), value.into());
        let mut v = self.as_slice().to_vec();
        match v.binary_search_by(|l| l.name().cmp(&name)) {
            Ok(i) if value.is_empty() => {
                v.remove(i);
            }
            Ok(i) => v[i] = Label::new(name, value),
            Err(_) if value.is_empty() => {}
            Err(i) => v.insert(i, Label::new(name, value)),
        }
        Labels::from_vec(v)
    }

    /// A copy without the named labels (the same set, shared, when none of them is there).
    pub fn without(&self, names: &[&str]) -> Labels {
        if !self.iter().any(|l| names.contains(&&**l.name())) {
            return self.clone();
        }
        Labels::from_vec(
            self.iter()
                .filter(|l| !names.contains(&&**l.name()))
                .cloned()
                .collect(),
        )
    }

    /// A copy keeping only the named labels (the same set, shared, when it has no other).
    pub fn keep_only(&self, names: &[&str]) -> Labels {
        if self.iter().all(|l| names.contains(&&**l.name())) {
            return self.clone();
        }
        Labels::from_vec(
            self.iter()
                .filter(|l| names.contains(&&**l.name()))
                .cloned()
                .collect(),
        )
    }

    /// A copy without `__name__`.
    pub fn without_metric_name(&self) -> Labels {
        self.without(&[METRIC_NAME])
    }

    /// A stable 64-bit fingerprint of the label set (FNV-1a over names and values with
    /// separators). Stable across processes and versions: it names alerts in the store and in
    /// notifications, so it must never change for the same labels.
    pub fn fingerprint(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(PRIME);
            }
        };
        for l in self.iter() {
            feed(l.name().as_bytes());
            feed(&[0xff]);
            feed(l.value().as_bytes());
            feed(&[0xfe]);
        }
        h
    }
}

impl fmt::Display for Labels {
    /// Prometheus' notation: `name{a="1", b="2"}`; a set without a name prints as `{a="1"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.metric_name() {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.iter().filter(|l| &**l.name() != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}=\"", l.name())?;
            for c in l.value().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.name(), self.value())
    }
}

/// Hashes only the content, so `Labels` can key a `HashMap` built with any hasher.
pub fn hash_labels<H: Hasher>(labels: &Labels, state: &mut H) {
    labels.hash(state)
}

impl serde::Serialize for Labels {
    /// As a JSON object `{"name": "value", ...}`, sorted by name.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.len()))?;
        for l in self.iter() {
            m.serialize_entry(&**l.name(), &**l.value())?;
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(Labels::new(m))
    }
}

#[cfg(test)]
mod tests;
