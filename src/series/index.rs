//! The head's index: series by label hash, and posting lists `label name → value → series`.

use std::mem::size_of;
use std::sync::Arc;

use promql_parser::label::{MatchOp, Matcher};

use super::Labels;
use super::hash::labels_hash;
use super::hash::{FastMap, FastSet};
use super::head::MemSeries;
use super::labels::LabelStr;

/// The label names with posting lists: the metric name, which nearly every selector pins, and
/// the target's `job` and `instance`, which scoped rules and gate checks pin
/// (`x{job="api"}`, `x{instance="a"}`) to a small part of a metric's series. Every other label
/// (`le`, `status`, `method`, `probe`, …) is only counted by value: a matcher on it filters the
/// candidates of an indexed one, which [`Head::for_each_match`] does by pointer comparisons
/// anyway. A posting entry costs 8 bytes a series and label, so only the labels selectors pin
/// get one.
pub(super) fn has_postings(name: &str) -> bool {
    matches!(name, "__name__" | "job" | "instance")
}

/// One label value: the series having it, sorted by id (for a name with postings, see
/// [`has_postings`]; empty otherwise), and how many series have it.
#[derive(Default)]
pub(super) struct Posting {
    pub(super) series: Vec<Arc<MemSeries>>,
    pub(super) count: usize,
}

/// The values of one label name.
pub(super) type Postings = FastMap<LabelStr, Posting>;

/// Series lookup and the inverted index.
#[derive(Default)]
pub(super) struct Index {
    /// Every series but the newest, sorted by the hash of its labels ([`labels_hash`],
    /// recomputed from the labels when compared): 8 bytes a series, less than half of a hash
    /// table's. Lookups by labels are rare (a series' first sample, and series whose holder has
    /// no cached pointer), so a binary search does. A series that
    /// truncation removed may stay until [`Index::remove_removed`], beside a live one with the
    /// same labels; lookups skip it.
    pub(super) sorted: Vec<Arc<MemSeries>>,
    /// Series added since the last merge into `sorted` (see [`Index::insert`]).
    pub(super) fresh: hashbrown::HashTable<Arc<MemSeries>>,
    /// Label name → value → series having it (see [`has_postings`]). Every name and value
    /// any series has is here, so matchers resolve to interned pointers.
    pub(super) postings: FastMap<LabelStr, Postings>,
}

/// Fresh series are merged into [`Index::sorted`] once they are this many, or an eighth of it.
pub(super) const MERGE_AT: usize = 256;

impl Index {
    pub(super) fn lookup(&self, hash: u64, labels: &Labels) -> Option<&Arc<MemSeries>> {
        let live = |s: &&Arc<MemSeries>| s.labels == *labels && !s.is_removed();
        let from = self
            .sorted
            .partition_point(|s| labels_hash(&s.labels) < hash);
        self.sorted[from..]
            .iter()
            .take_while(|s| labels_hash(&s.labels) == hash)
            .find(live)
            .or_else(|| self.fresh.find(hash, |s| live(&s)))
    }

    /// Adds `s`, whose labels hash to `hash` ([`labels_hash`]; not kept in the series, where
    /// it would cost 8 bytes and a jemalloc size class). It goes into the small table of fresh
    /// series, which is merged into the sorted vector when it has grown by an eighth: a
    /// target's first scrape adds hundreds of series, and inserting each into the vector
    /// would move the whole of it every time.
    pub(super) fn insert(&mut self, s: Arc<MemSeries>, hash: u64) {
        for l in s.labels.iter() {
            let posting = self
                .postings
                .entry(l.name().clone())
                .or_default()
                .entry(l.value().clone())
                .or_default();
            posting.count += 1;
            if !has_postings(l.name()) {
                continue;
            }
            let list = &mut posting.series;
            // Grow by an eighth, not double: posting lists stop growing once the targets'
            // pages are known, and doubling would leave them a quarter empty on average.
            if list.len() == list.capacity() {
                list.reserve_exact((list.len() / 8).max(4));
            }
            list.push(s.clone());
        }
        self.fresh
            .insert_unique(hash, s, |e| labels_hash(&e.labels));
        if self.fresh.len() >= MERGE_AT.max(self.sorted.len() / 8) {
            self.merge();
        }
    }

    /// Moves the fresh series into the sorted vector (one pass; the new vector exactly sized).
    pub(super) fn merge(&mut self) {
        let mut fresh: Vec<(u64, Arc<MemSeries>)> = std::mem::take(&mut self.fresh)
            .into_iter()
            .map(|s| (labels_hash(&s.labels), s))
            .collect();
        fresh.sort_unstable_by_key(|(h, _)| *h);
        let mut merged = Vec::with_capacity(self.sorted.len() + fresh.len());
        let mut fresh = fresh.into_iter().peekable();
        for s in std::mem::take(&mut self.sorted) {
            let h = labels_hash(&s.labels);
            while let Some((_, f)) = fresh.next_if(|(fh, _)| *fh < h) {
                merged.push(f);
            }
            merged.push(s);
        }
        merged.extend(fresh.map(|(_, f)| f));
        self.sorted = merged;
    }

    /// Drops every series marked removed ([`MemSeries::is_removed`]) from the lookup, and
    /// `gone` (those series) from the postings.
    pub(super) fn remove_removed(&mut self, gone: &[Arc<MemSeries>]) {
        self.sorted.retain(|s| !s.is_removed());
        self.fresh.retain(|s| !s.is_removed());
        for s in gone {
            self.remove_postings(s);
        }
    }

    pub(super) fn remove_postings(&mut self, s: &Arc<MemSeries>) {
        for l in s.labels.iter() {
            if let Some(values) = self.postings.get_mut(l.name()) {
                if let Some(posting) = values.get_mut(l.value()) {
                    posting.series.retain(|e| !Arc::ptr_eq(e, s));
                    posting.count = posting.count.saturating_sub(1);
                    if posting.count == 0 {
                        values.remove(l.value());
                    }
                }
                if values.is_empty() {
                    self.postings.remove(l.name());
                }
            }
        }
    }

    pub(super) fn all(&self) -> Vec<Arc<MemSeries>> {
        let mut v: Vec<Arc<MemSeries>> = self.each().cloned().collect();
        v.sort_unstable_by_key(|s| s.id);
        v
    }

    /// Every series in table order, borrowed: for walks that need no order and no snapshot
    /// (statistics, truncation), without the 66,000 reference-count increments, sort and
    /// decrements of [`Index::all`].
    pub(super) fn each(&self) -> impl Iterator<Item = &Arc<MemSeries>> {
        self.sorted.iter().chain(self.fresh.iter())
    }

    pub(super) fn len(&self) -> usize {
        self.sorted.len() + self.fresh.len()
    }

    /// Series that may match all `matchers` (a superset: the caller checks every matcher on
    /// each), from the posting lists of the matchers that cannot match an absent label. `None`
    /// means no matcher restricts: every series.
    ///
    /// With an equality matcher on a name with postings, the shortest such list is the answer,
    /// borrowed: a selector `x{job="a",instance="b"}` is answered by the few hundred series of its
    /// target instead of intersecting (and reference-counting) the tens of thousands that
    /// share its metric name. Only without one are the lists of regex matches merged. A
    /// matcher on a label without postings restricts only when no series has a value it
    /// accepts (then nothing matches).
    pub(super) fn candidates<'s>(&'s self, matchers: &[Matcher]) -> Option<Candidates<'s>> {
        let mut best: Option<&'s [Arc<MemSeries>]> = None;
        for m in matchers {
            if m.op != MatchOp::Equal || m.is_match("") {
                continue;
            }
            let posting = self
                .postings
                .get(m.name.as_str())
                .and_then(|values| values.get(m.value.as_str()));
            let list = match posting {
                None => &[][..],
                Some(_) if !has_postings(&m.name) => continue,
                Some(p) => p.series.as_slice(),
            };
            if best.is_none_or(|b| list.len() < b.len()) {
                best = Some(list);
            }
        }
        if let Some(list) = best {
            return Some(Candidates::Borrowed(list));
        }
        let mut acc: Option<Vec<Arc<MemSeries>>> = None;
        for m in matchers {
            if m.is_match("") {
                continue;
            }
            let Some(values) = self.postings.get(m.name.as_str()) else {
                return Some(Candidates::Owned(Vec::new()));
            };
            if !has_postings(&m.name) {
                if values.keys().any(|v| m.is_match(v)) {
                    continue;
                }
                return Some(Candidates::Owned(Vec::new()));
            }
            let mut list: Vec<Arc<MemSeries>> = values
                .iter()
                .filter(|(value, _)| m.is_match(value))
                .flat_map(|(_, p)| p.series.iter().cloned())
                .collect();
            list.sort_unstable_by_key(|s| s.id);
            acc = Some(match acc {
                None => list,
                Some(prev) => intersect(&prev, &list),
            });
            if acc.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        acc.map(Candidates::Owned)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        let arc = size_of::<Arc<MemSeries>>();
        let mut b = self.sorted.capacity() * arc + self.fresh.capacity() * (arc + 1);
        let entry = size_of::<LabelStr>() + size_of::<Posting>() + 1;
        b += self.postings.capacity() * (size_of::<LabelStr>() + size_of::<FastMap<(), ()>>() + 1);
        for values in self.postings.values() {
            b += values.capacity() * entry;
            b += values
                .values()
                .map(|p| p.series.capacity() * arc)
                .sum::<usize>();
        }
        b
    }
}

/// The series a selection has to look at: a posting list of the index (borrowed under its read
/// lock) or a list built for the query.
pub(super) enum Candidates<'s> {
    Borrowed(&'s [Arc<MemSeries>]),
    Owned(Vec<Arc<MemSeries>>),
}

impl Candidates<'_> {
    pub(super) fn as_slice(&self) -> &[Arc<MemSeries>] {
        match self {
            Candidates::Borrowed(s) => s,
            Candidates::Owned(v) => v,
        }
    }
}

/// Merge-intersection of two id-sorted lists.
pub(super) fn intersect(a: &[Arc<MemSeries>], b: &[Arc<MemSeries>]) -> Vec<Arc<MemSeries>> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].id.cmp(&b[j].id) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// A label matcher resolved against the index, so that checking a series is pointer
/// comparisons: every label name and value of a series is an interned [`LabelStr`] shared with
/// the posting lists, so "has one of the values this matcher accepts" is "its value's pointer
/// is in this set", whatever the matcher (a regex runs once per distinct value, not per series).
pub(super) struct InternedMatcher {
    /// The address of the interned label name (only compared, never dereferenced), or `None`
    /// when no series has the label.
    pub(super) name: Option<*const u8>,
    /// Addresses of the interned values the matcher accepts.
    pub(super) values: FastSet<usize>,
    /// Whether a series without the label matches (the matcher accepts "").
    pub(super) absent: bool,
}

impl InternedMatcher {
    #[inline]
    pub(super) fn matches(&self, labels: &Labels) -> bool {
        let Some(name) = self.name else {
            return self.absent;
        };
        match labels.iter().find(|l| l.name().as_ptr() == name) {
            Some(l) => self.values.contains(&(l.value().as_ptr() as usize)),
            None => self.absent,
        }
    }
}

impl Index {
    pub(super) fn intern_matcher(&self, m: &Matcher) -> InternedMatcher {
        let absent = m.is_match("");
        match self.postings.get_key_value(m.name.as_str()) {
            None => InternedMatcher {
                name: None,
                values: FastSet::default(),
                absent,
            },
            Some((name, values)) => {
                let accepted = values.keys().filter(|v| match m.op {
                    MatchOp::Equal => ***v == *m.value,
                    _ => m.is_match(v),
                });
                InternedMatcher {
                    name: Some(name.as_ptr()),
                    values: accepted.map(|v| v.as_ptr() as usize).collect(),
                    absent,
                }
            }
        }
    }
}
