//! Series: label sets, samples, and the in-memory head that rules, gates and the API read.
//!
//! Everything the daemon observes (scraped samples, probe results, ALERTS) is appended here as a
//! float sample of a labelled series; the PromQL engine reads it back through [`SeriesSource`].

pub mod arrivals;
pub mod chunk;
pub mod hash;
pub mod head;
mod index;
mod interner;
pub mod labels;

pub use labels::{Label, Labels, METRIC_NAME};

/// Milliseconds since the Unix epoch, as in Prometheus' TSDB.
pub type Timestamp = i64;

/// One float sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When the sample was taken, in ms since the epoch.
    pub t: Timestamp,
    /// The value; [`STALE_NAN`] marks the series stale from `t` on.
    pub v: f64,
}

/// Prometheus' staleness marker: a NaN with a payload no arithmetic produces
/// (`value.StaleNaN` = 0x7ff0000000000002). The head stores it like any sample; the engine stops
/// the lookback at it.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float.
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// True when `v` is the staleness marker (not any NaN).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A series with some of its samples, as returned by a selection.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels, `__name__` included.
    pub labels: Labels,
    /// Samples in increasing time order, stale markers included.
    pub samples: Vec<Sample>,
}

/// What the PromQL engine needs from storage: the head implements it, tests implement it over a
/// vector. A real boundary: the engine never sees how samples are kept.
pub trait SeriesSource: Send + Sync {
    /// Every series whose labels match all `matchers`, with its samples whose timestamps lie in
    /// the closed interval `[mint, maxt]`, in time order. Series with no sample in the interval
    /// may be left out.
    fn select(
        &self,
        matchers: &[promql_parser::label::Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<SeriesSamples>;

    /// Like [`select`](Self::select), for a caller that may already know the result for some
    /// series and wants the rest one at a time: `skip(id)` is asked for every matching series
    /// before its samples are read, with an id that names the series for as long as it lives;
    /// then `each(id, labels, samples)` is called for it, with no samples when `skip` said
    /// yes, and otherwise only when it has samples in `[mint, maxt]`. The order is the
    /// source's, not sorted. Sources without stable ids return `false` without calling
    /// anything, and the caller selects normally.
    fn select_each(
        &self,
        matchers: &[promql_parser::label::Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        skip: &mut dyn FnMut(u64) -> bool,
        each: &mut dyn FnMut(u64, &Labels, &[Sample]),
    ) -> bool {
        let _ = (matchers, mint, maxt, skip, each);
        false
    }

    /// The labels of every series matching `matchers` with a sample in `[mint, maxt]`, in label
    /// order: what `/api/v1/series` and the label endpoints list. Sources that can answer
    /// without reading samples override it.
    fn series_labels(
        &self,
        matchers: &[promql_parser::label::Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<Labels> {
        let mut out: Vec<Labels> = self
            .select(matchers, mint, maxt)
            .into_iter()
            .map(|s| s.labels)
            .collect();
        out.sort_unstable();
        out
    }
}

/// Tolerance of [`align_timestamp`]: Prometheus' `--scrape.timestamp-tolerance` default.
const TIMESTAMP_TOLERANCE_MS: i64 = 2;

/// The timestamp of a scrape, aligned as Prometheus aligns scrapes: a scrape that starts within
/// min(2 ms, 1 % of the interval) of the schedule (`aligned`, advanced by whole intervals) is
/// stamped with the scheduled time. Timer jitter of a millisecond would otherwise cost every
/// sample a 16-bit delta-of-delta instead of 1 bit in its chunk (5x the chunk bytes of a page
/// whose values do not change).
pub fn align_timestamp(aligned: &mut Option<i64>, now_ms: i64, interval_ms: i64) -> i64 {
    align_timestamp_within(
        aligned,
        now_ms,
        interval_ms,
        TIMESTAMP_TOLERANCE_MS.min(interval_ms / 100),
    )
}

/// The timestamp of a probe run: as [`align_timestamp`], with a tolerance of 1 % of the
/// interval (100 ms at 10 s). A probe run starts after its task is spawned and a concurrency
/// permit is free, so on a busy host it starts more than 2 ms after its schedule point far
/// more often than a scrape does, and every such run cost its seven series a 9-bit or longer
/// timestamp (and the next run another). blackbox_exporter's results are no closer to the
/// truth: Prometheus stamps them with the scrape's start, and the probe runs after it.
pub fn align_probe_timestamp(aligned: &mut Option<i64>, now_ms: i64, interval_ms: i64) -> i64 {
    align_timestamp_within(aligned, now_ms, interval_ms, interval_ms / 100)
}

fn align_timestamp_within(
    aligned: &mut Option<i64>,
    now_ms: i64,
    interval_ms: i64,
    tolerance_ms: i64,
) -> i64 {
    let Some(a) = *aligned else {
        *aligned = Some(now_ms);
        return now_ms;
    };
    if interval_ms <= 0 {
        return now_ms;
    }
    if now_ms < a {
        // The wall clock stepped back: re-anchor the schedule on it.
        *aligned = Some(now_ms);
        return now_ms;
    }
    // The nearest point of the schedule; missed ticks move it on by whole intervals, as in
    // Prometheus' loop. A millisecond early counts too: wall time is truncated to the ms.
    let scheduled = a + (now_ms - a + interval_ms / 2) / interval_ms * interval_ms;
    if (now_ms - scheduled).abs() <= tolerance_ms {
        *aligned = Some(scheduled);
        scheduled
    } else {
        now_ms
    }
}

#[cfg(test)]
mod tests;
