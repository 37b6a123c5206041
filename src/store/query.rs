//! The head and the stored chunks as one [`SeriesSource`]: what the query API reads, over
//! the whole retention.
//!
//! A selector's samples come from wherever they are. The head holds every sample from
//! [`Head::complete_since`] on (the start of its window); the store is read only for the part
//! of a range before it, and only for the series the selector matches in the store's series
//! index, which also finds series gone from the head. A series in both has its two lists
//! merged by time, a sample present in both once (the head's copy). Stale markers are stored
//! like any sample, so staleness and the lookback work across the boundary as within the head.
//!
//! Every sample loaded is counted against the query's [`QueryLimits`]; the read stops once
//! they are exceeded and the evaluator then stops with the limit's error.

use std::collections::HashMap;

use promql_parser::label::Matcher;
use tracing::warn;

use super::SampleStore;
use crate::promql::QueryLimits;
use crate::series::head::Head;
use crate::series::{Labels, Sample, SeriesSamples, SeriesSource, Timestamp};

/// The head and the sample store, read as one for one query.
pub struct QuerySource<'a> {
    head: &'a Head,
    store: &'a SampleStore,
    limits: &'a QueryLimits,
}

impl<'a> QuerySource<'a> {
    /// A source over `head` and `store` that counts what it loads against `limits`.
    pub fn new(head: &'a Head, store: &'a SampleStore, limits: &'a QueryLimits) -> Self {
        QuerySource {
            head,
            store,
            limits,
        }
    }

    /// The end of the part of `[mint, maxt]` that only the store can answer, if any.
    fn store_until(&self, mint: Timestamp, maxt: Timestamp) -> Option<Timestamp> {
        let since = self.head.complete_since();
        (mint < since).then(|| maxt.min(since.saturating_sub(1)))
    }
}

/// `a` and `b` (each in time order) merged in time order; of two samples at one time, `b`'s.
fn merge(a: Vec<Sample>, b: Vec<Sample>) -> Vec<Sample> {
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].t.cmp(&b[j].t) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Equal => i += 1,
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl SeriesSource for QuerySource<'_> {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        let mut out = self.head.select(matchers, mint, maxt);
        if !self
            .limits
            .charge(out.iter().map(|s| s.samples.len()).sum())
        {
            return Vec::new();
        }
        let Some(until) = self.store_until(mint, maxt) else {
            return out;
        };
        let stored = match self.store.series_matching(matchers) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "a query could not read the series index");
                return out;
            }
        };
        let mut wanted: Vec<(u64, Labels)> = stored
            .into_iter()
            .filter(|s| s.until >= mint)
            .map(|s| (s.fp, s.labels))
            .collect();
        if wanted.is_empty() {
            return out;
        }
        wanted.sort_unstable_by_key(|w| w.0);
        let fps: Vec<u64> = wanted.iter().map(|w| w.0).collect();
        let limits = self.limits;
        let Ok(mut read) = self
            .store
            .samples_of(&fps, mint, until, &mut |n| limits.charge(n))
        else {
            return Vec::new();
        };
        let in_head: HashMap<u64, usize> = out
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.fingerprint(), i))
            .collect();
        for (fp, labels) in wanted {
            let Some(samples) = read.remove(&fp) else {
                continue;
            };
            match in_head.get(&fp) {
                Some(&i) => {
                    let head = std::mem::take(&mut out[i].samples);
                    out[i].samples = merge(samples, head);
                }
                None => out.push(SeriesSamples { labels, samples }),
            }
        }
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    fn series_labels(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels> {
        let mut out = self.head.series_labels(matchers, mint, maxt);
        if self.store_until(mint, maxt).is_some() {
            match self.store.series_matching(matchers) {
                Ok(stored) => out.extend(
                    stored
                        .into_iter()
                        .filter(|s| s.until >= mint)
                        .map(|s| s.labels),
                ),
                Err(e) => warn!(error = %e, "a query could not read the series index"),
            }
            out.sort_unstable();
            out.dedup();
        }
        out
    }
}

#[cfg(test)]
mod tests;
