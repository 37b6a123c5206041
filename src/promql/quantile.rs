//! Numeric helpers with Prometheus' exact behaviour: quantiles over values and classic histogram
//! buckets, Kahan summation, and Go's `math.Max`/`math.Min` NaN rules (which differ from Rust's
//! `f64::max`, that ignores NaN).

use std::cmp::Ordering;

/// Relative deltas between classic buckets below this are float noise and ignored
/// (`smallDeltaTolerance` in Prometheus).
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// One classic histogram bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    pub upper: f64,
    pub count: f64,
}

/// Neumaier-compensated addition (`kahansum.Inc`): returns the new sum and compensation.
#[inline]
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Go's `math.Max`: +Inf wins over NaN, NaN wins over everything else, +0 over -0.
#[inline]
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    go_extreme(x, y, Ordering::Greater)
}

/// Go's `math.Min`: -Inf wins over NaN, NaN wins over everything else, -0 over +0.
#[inline]
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    go_extreme(x, y, Ordering::Less)
}

/// `math.Max` (`toward` is `Greater`) or `math.Min` (`Less`): one body for both, so their NaN
/// and infinity rules cannot drift apart. `total_cmp` orders -0 below +0, as Go does here.
#[inline]
fn go_extreme(x: f64, y: f64, toward: Ordering) -> f64 {
    let inf = if toward == Ordering::Greater {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    };
    if x == inf || y == inf {
        return inf;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x.total_cmp(&y) == toward { x } else { y }
}

/// Prometheus' `almost.Equal`: equal within a relative `epsilon` (NaN equals NaN).
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// `quantile` over plain values (the `quantile` aggregation and `quantile_over_time`): sorts
/// `values` (NaN first, like Prometheus' `vectorByValueHeap`) and interpolates between the two
/// neighbouring ranks.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// `histogram_quantile` over classic buckets (`BucketQuantile`). Sorts and fixes `buckets` in
/// place. Returns NaN without a `+Inf` bucket, with fewer than two buckets or no observations.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if !sort_and_coalesce(buckets) {
        return f64::NAN;
    }
    ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // sort.Search over all but the +Inf bucket: the first bucket whose count reaches the rank.
    let search = &buckets[..buckets.len() - 1];
    let b = search.partition_point(|x| x.count < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].upper;
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return buckets[0].upper;
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    start + (end - start) * (rank / count)
}

/// `histogram_fraction` over classic buckets (`BucketFraction`): the estimated share of
/// observations in `(lower, upper]`, interpolating linearly inside the buckets the bounds fall in.
/// Sorts and merges `buckets` in place. The first bucket starts at 0 when its upper bound is
/// positive (at -Inf otherwise); nothing is interpolated inside a bucket with an infinite bound.
/// NaN without a `+Inf` bucket, without observations or with a NaN bound; 0 when
/// `lower >= upper`. Unlike `bucket_quantile`, the counts are not made monotonic, as in Prometheus.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if !sort_and_coalesce(buckets) {
        return f64::NAN;
    }
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // The cumulative count below the current bucket, and the ranks of the two bounds once found.
    let mut rank = 0.0;
    let (mut lower_rank, mut upper_rank) = (None, None);
    let mut lower_bound = if buckets[0].upper <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper;
        }
        let upper_bound = b.upper;
        // Classic counts are cumulative: the bucket holds `b.count - rank` observations. A -Inf
        // lower bound cannot be interpolated (Inf/Inf): the whole bucket counts.
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.count
            } else {
                rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if lower_rank.is_none() && lower_bound >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && lower_bound >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        if lower_rank.is_none() && lower_bound < lower && upper_bound > lower {
            lower_rank = Some(interpolate(lower));
        }
        if upper_rank.is_none() && lower_bound < upper && upper_bound > upper {
            upper_rank = Some(interpolate(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank = b.count;
    }
    // A bound above every bucket (or a rank past the total through float noise) is the total.
    // (A NaN rank stays NaN, as in Go.)
    let cap = |r: Option<f64>| match r {
        Some(r) if r > count => count,
        Some(r) => r,
        None => count,
    };
    (cap(upper_rank) - cap(lower_rank)) / count
}

/// Sorts `buckets` by upper bound and merges those with the same bound. False, leaving the
/// buckets unmerged, when there is no `+Inf` bucket: both classic-bucket functions are NaN then.
fn sort_and_coalesce(buckets: &mut Vec<Bucket>) -> bool {
    buckets.sort_by(|a, b| a.upper.partial_cmp(&b.upper).unwrap_or(Ordering::Equal));
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return false;
    }
    coalesce(buckets);
    true
}

/// Merges buckets with the same upper bound (input sorted).
fn coalesce(buckets: &mut Vec<Bucket>) {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

/// Ignores float noise between neighbouring buckets and removes decreases
/// (`ensureMonotonicAndIgnoreSmallDeltas`).
fn ensure_monotonic(buckets: &mut [Bucket]) {
    let Some(first) = buckets.first() else {
        return;
    };
    let mut prev = first.count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            continue;
        }
        prev = curr;
    }
}

#[cfg(test)]
mod tests;
