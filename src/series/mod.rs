//! Series: label sets, samples, and the in-memory head that rules, gates and the API read.
//!
//! Everything the daemon observes (scraped samples, probe results, ALERTS) is appended here as a
//! float sample of a labelled series; the PromQL engine reads it back through [`SeriesSource`].

pub mod chunk;
pub mod head;
pub mod labels;
pub mod persist;

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
}
