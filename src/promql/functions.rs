//! PromQL functions (`functions.go`): range-vector functions windowed per step, instant-vector
//! functions mapped over series, and the few that reshape series (`label_replace`, `absent`,
//! `histogram_quantile`, `histogram_fraction`, `sort*`).

use std::collections::HashMap;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr, MatrixSelector};

use super::EvalError;
use super::eval::{
    Collector, Evaluator, RangeArg, Series, StepCursor, Val, dur_ms, merge_same_labels, offset_ms,
    selector_matchers, unparen,
};
use super::quantile::{
    Bucket, bucket_fraction, bucket_quantile, go_max, go_min, kahan_inc, quantile,
};
use super::{MemoWindow, RoundMemo};
use crate::series::{Labels, METRIC_NAME, Sample, is_stale_nan};

/// Dispatches a function call.
pub(crate) fn call(ev: &Evaluator<'_>, c: &Call) -> Result<Val, EvalError> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| unparen(a)).collect();
    if let Some(m) = memo_call(ev, c)
        && let Some(out) = eval_range_memo(ev, &m)?
    {
        return Ok(Val::Vector(out));
    }
    if let Some(f) = range_function(name) {
        return eval_range_function(ev, name, f, &args);
    }
    match name {
        "time" => Ok(Val::Scalar(
            (0..ev.grid.len())
                .map(|i| ev.grid.ts(i) as f64 / 1000.0)
                .collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; ev.grid.len()])),
        "vector" => {
            let v = ev.eval_scalar(args[0])?;
            let points = v
                .into_iter()
                .enumerate()
                .map(|(i, v)| Sample {
                    t: ev.grid.ts(i),
                    v,
                })
                .collect();
            Ok(Val::Vector(vec![Series {
                labels: Labels::empty(),
                points,
                drop_name: false,
            }]))
        }
        "scalar" => {
            let input = ev.eval_vector(args[0])?;
            let mut out = vec![f64::NAN; ev.grid.len()];
            let mut found = vec![0u32; ev.grid.len()];
            for s in &input {
                for p in &s.points {
                    let i = ev.grid.index(p.t);
                    found[i] += 1;
                    out[i] = p.v;
                }
            }
            for (o, n) in out.iter_mut().zip(found) {
                if n != 1 {
                    *o = f64::NAN;
                }
            }
            Ok(Val::Scalar(out))
        }
        "timestamp" => {
            let series = if let Expr::VectorSelector(vs) = args[0] {
                ev.vector_selector(vs, true)?
            } else {
                let mut s = ev.eval_vector(args[0])?;
                for x in &mut s {
                    x.points.iter_mut().for_each(|p| p.v = p.t as f64 / 1000.0);
                }
                s
            };
            Ok(Val::Vector(mark_dropped(series)))
        }
        "absent" => absent(ev, args[0]),
        "label_replace" => label_replace(ev, &args),
        "label_join" => label_join(ev, &args),
        "sort" | "sort_desc" => {
            let mut s = ev.eval_vector(args[0])?;
            if ev.grid.is_instant() {
                let desc = name == "sort_desc";
                s.sort_by(|a, b| cmp_for_sort(a.points[0].v, b.points[0].v, desc));
            }
            Ok(Val::Vector(s))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut s = ev.eval_vector(args[0])?;
            let names = args[1..]
                .iter()
                .map(|a| string_arg(a))
                .collect::<Result<Vec<_>, _>>()?;
            if ev.grid.is_instant() {
                let desc = name == "sort_by_label_desc";
                s.sort_by(|a, b| {
                    let o = cmp_by_labels(&a.labels, &b.labels, &names);
                    if desc { o.reverse() } else { o }
                });
            }
            Ok(Val::Vector(s))
        }
        "histogram_quantile" => histogram_quantile(ev, &args),
        "histogram_fraction" => histogram_fraction(ev, &args),
        // These read native histograms only; Prometheus skips float samples, so over the float
        // series postflight stores the result is always empty. The argument is still evaluated
        // so that its errors surface as they do in Prometheus.
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            ev.eval_vector(args[0])?;
            Ok(Val::Vector(Vec::new()))
        }
        "round" => {
            let to_nearest = match args.get(1) {
                Some(a) => ev.eval_scalar(a)?,
                None => vec![1.0; ev.grid.len()],
            };
            let input = ev.eval_vector(args[0])?;
            map_points(ev, input, |i, v| {
                let inv = 1.0 / to_nearest[i];
                Some((v * inv + 0.5).floor() / inv)
            })
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let input = ev.eval_vector(args[0])?;
            let n = ev.grid.len();
            let (lo, hi) = match name {
                "clamp" => (ev.eval_scalar(args[1])?, ev.eval_scalar(args[2])?),
                "clamp_min" => (ev.eval_scalar(args[1])?, vec![f64::INFINITY; n]),
                _ => (vec![f64::NEG_INFINITY; n], ev.eval_scalar(args[1])?),
            };
            map_points(ev, input, |i, v| {
                if hi[i] < lo[i] {
                    None
                } else {
                    Some(go_max(lo[i], go_min(hi[i], v)))
                }
            })
        }
        "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let f = date_function(name);
            if args.is_empty() {
                let points = (0..ev.grid.len())
                    .map(|i| {
                        let ts = ev.grid.ts(i);
                        Sample {
                            t: ts,
                            v: f(ts.div_euclid(1000)),
                        }
                    })
                    .collect();
                return Ok(Val::Vector(vec![Series {
                    labels: Labels::empty(),
                    points,
                    drop_name: false,
                }]));
            }
            let input = ev.eval_vector(args[0])?;
            map_points(ev, input, |_, v| Some(f(go_f64_to_i64(v))))
        }
        _ => match simple_function(name) {
            Some(f) => {
                let input = ev.eval_vector(args[0])?;
                map_points(ev, input, |_, v| Some(f(v)))
            }
            None => Err(EvalError::Unsupported(format!(
                "function \"{name}\" is not supported"
            ))),
        },
    }
}

/// Applies `f(step index, value)` to every point; `None` drops the point. Marks the name for
/// removal, as every such Prometheus function does.
fn map_points(
    ev: &Evaluator<'_>,
    input: Vec<Series>,
    f: impl Fn(usize, f64) -> Option<f64>,
) -> Result<Val, EvalError> {
    let mut out = Vec::with_capacity(input.len());
    for mut s in input {
        s.points.retain_mut(|p| match f(ev.grid.index(p.t), p.v) {
            Some(v) => {
                p.v = v;
                true
            }
            None => false,
        });
        if !s.points.is_empty() {
            s.drop_name = true;
            out.push(s);
        }
    }
    Ok(Val::Vector(out))
}

fn mark_dropped(mut s: Vec<Series>) -> Vec<Series> {
    s.iter_mut().for_each(|x| x.drop_name = true);
    s
}

/// A string literal argument.
pub(crate) fn string_arg(e: &Expr) -> Result<String, EvalError> {
    match unparen(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(EvalError::BadArgument("expected string literal".into())),
    }
}

fn simple_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Go's `int64(f)` conversion for the date functions: truncation, with the amd64 result for
/// values that do not fit (NaN and out of range give `i64::MIN`).
fn go_f64_to_i64(v: f64) -> i64 {
    if v.is_nan() || !(i64::MIN as f64..i64::MAX as f64).contains(&v) {
        i64::MIN
    } else {
        v.trunc() as i64
    }
}

/// Civil date from days since the epoch (Howard Hinnant's algorithm), proleptic Gregorian, UTC.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_function(name: &str) -> fn(i64) -> f64 {
    match name {
        "minute" => |s| (s.rem_euclid(3600) / 60) as f64,
        "hour" => |s| (s.rem_euclid(86_400) / 3600) as f64,
        "day_of_week" => |s| ((s.div_euclid(86_400) + 4).rem_euclid(7)) as f64,
        "day_of_month" => |s| civil(s.div_euclid(86_400)).2 as f64,
        "month" => |s| civil(s.div_euclid(86_400)).1 as f64,
        "year" => |s| civil(s.div_euclid(86_400)).0 as f64,
        "day_of_year" => |s| {
            let days = s.div_euclid(86_400);
            let (y, _, _) = civil(days);
            // Days since 1 January of the same year.
            let jan1 = days_from_civil(y, 1, 1);
            (days - jan1 + 1) as f64
        },
        _ => |s| {
            let (y, m, _) = civil(s.div_euclid(86_400));
            let d = match m {
                1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
                4 | 6 | 9 | 11 => 30,
                _ if is_leap(y) => 29,
                _ => 28,
            };
            d as f64
        },
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Ordering of `sort` (ascending) and `sort_desc`; NaN sorts last in both.
fn cmp_for_sort(a: f64, b: f64, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => {
            let o = a.partial_cmp(&b).unwrap_or(Equal);
            if desc { o.reverse() } else { o }
        }
    }
}

fn cmp_by_labels(a: &Labels, b: &Labels, names: &[String]) -> std::cmp::Ordering {
    for n in names {
        let (x, y) = (a.get(n).unwrap_or(""), b.get(n).unwrap_or(""));
        if x == y {
            continue;
        }
        return if natsort_less(x, y) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        };
    }
    a.cmp(b)
}

/// `facette/natsort.Compare`: chunks of digits compare as numbers, the rest as strings.
fn natsort_less(a: &str, b: &str) -> bool {
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                if start < i {
                    out.push(&s[start..i]);
                }
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (i, x) in ca.iter().enumerate() {
        if i >= cb.len() {
            return false;
        }
        let y = cb[i];
        let last = |i: usize| -> Option<bool> {
            if i == ca.len() - 1 {
                Some(true)
            } else if i == cb.len() - 1 {
                Some(false)
            } else {
                None
            }
        };
        match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(xi), Ok(yi)) => {
                if xi == yi {
                    if let Some(r) = last(i) {
                        return r;
                    }
                    continue;
                }
                return xi < yi;
            }
            _ => {
                if *x == y {
                    if let Some(r) = last(i) {
                        return r;
                    }
                    continue;
                }
                return *x < y;
            }
        }
    }
    false
}

/// The labels `absent`/`absent_over_time` give their result: the equality matchers of a plain
/// selector, except names matched more than once.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unparen(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut has: HashMap<&str, bool> = HashMap::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        let seen = has.get(m.name.as_str()).copied().unwrap_or(false);
        if m.op == MatchOp::Equal && !seen {
            pairs.retain(|(n, _)| n != &m.name);
            pairs.push((m.name.clone(), m.value.clone()));
            has.insert(&m.name, true);
        } else {
            pairs.retain(|(n, _)| n != &m.name);
        }
    }
    Labels::new(pairs)
}

fn absent(ev: &Evaluator<'_>, arg: &Expr) -> Result<Val, EvalError> {
    let input = ev.eval_vector(arg)?;
    Ok(absent_series(ev, &input, arg, false))
}

/// What `absent` and `absent_over_time` return: one series, valued 1 at every step where `input`
/// has no point, labelled from the selector `arg`; an empty vector when every step has one.
fn absent_series(ev: &Evaluator<'_>, input: &[Series], arg: &Expr, drop_name: bool) -> Val {
    let n = ev.grid.len();
    let mut present = vec![false; n];
    for s in input {
        for p in &s.points {
            present[ev.grid.index(p.t)] = true;
        }
    }
    let points: Vec<Sample> = (0..n)
        .filter(|&i| !present[i])
        .map(|i| Sample {
            t: ev.grid.ts(i),
            v: 1.0,
        })
        .collect();
    if points.is_empty() {
        return Val::Vector(Vec::new());
    }
    Val::Vector(vec![Series {
        labels: absent_labels(arg),
        points,
        drop_name,
    }])
}

/// A valid label name in Prometheus' UTF-8 mode: any non-empty string.
fn valid_label_name(s: &str) -> bool {
    !s.is_empty()
}

fn label_replace(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Val, EvalError> {
    let dst = string_arg(args[1])?;
    let repl = string_arg(args[2])?;
    let src = string_arg(args[3])?;
    let regex_str = string_arg(args[4])?;
    let regex = regex::Regex::new(&format!("^(?s:{regex_str})$")).map_err(|_| {
        EvalError::BadArgument(format!(
            "invalid regular expression in label_replace(): {regex_str}"
        ))
    })?;
    if !valid_label_name(&dst) {
        return Err(EvalError::BadArgument(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut input = ev.eval_vector(args[0])?;
    let dst: crate::series::labels::LabelStr = dst.into();
    let mut buf = String::new();
    for s in &mut input {
        let src_val = s.labels.get(&src).unwrap_or("");
        if let Some(caps) = regex.captures(src_val) {
            buf.clear();
            caps.expand(&repl, &mut buf);
            s.labels = s.labels.with(dst.clone(), buf.as_str());
            if &*dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
    }
    Ok(Val::Vector(merge_same_labels(input)?))
}

fn label_join(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Val, EvalError> {
    let dst = string_arg(args[1])?;
    let sep = string_arg(args[2])?;
    let mut srcs = Vec::with_capacity(args.len().saturating_sub(3));
    for a in &args[3..] {
        let s = string_arg(a)?;
        if !valid_label_name(&s) {
            return Err(EvalError::BadArgument(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !valid_label_name(&dst) {
        return Err(EvalError::BadArgument(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut input = ev.eval_vector(args[0])?;
    let dst: crate::series::labels::LabelStr = dst.into();
    for s in &mut input {
        let joined = srcs
            .iter()
            .map(|n| s.labels.get(n).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&sep);
        s.labels = s.labels.with(dst.clone(), joined);
        if &*dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    Ok(Val::Vector(merge_same_labels(input)?))
}

/// Parses a bucket bound like Go's `strconv.ParseFloat` for the values seen in `le` labels.
fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => return Some(f64::INFINITY),
        "-Inf" | "-inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    s.parse::<f64>().ok()
}

fn histogram_quantile(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Val, EvalError> {
    let q = ev.eval_scalar(args[0])?;
    let input = ev.eval_vector(args[1])?;
    classic_histograms(ev, &input, |i, bs| bucket_quantile(q[i], bs))
}

/// `histogram_fraction(lower, upper, v)` over classic histograms (`BucketFraction`).
fn histogram_fraction(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Val, EvalError> {
    let lower = ev.eval_scalar(args[0])?;
    let upper = ev.eval_scalar(args[1])?;
    let input = ev.eval_vector(args[2])?;
    classic_histograms(ev, &input, |i, bs| bucket_fraction(lower[i], upper[i], bs))
}

/// Groups the `le` series of `input` into classic histograms the way Prometheus'
/// `resetHistograms` does (by all labels but `le`; a series without a parsable `le` is ignored)
/// and calls `f(step index, buckets)` for every histogram present at a step. The results drop
/// `__name__` and `le`.
fn classic_histograms(
    ev: &Evaluator<'_>,
    input: &[Series],
    mut f: impl FnMut(usize, &mut Vec<Bucket>) -> f64,
) -> Result<Val, EvalError> {
    // Per input series, once: its bucket bound and the histogram (labels without `le`) it
    // belongs to.
    let mut groups: Vec<Labels> = Vec::new();
    let mut group_of: HashMap<Labels, usize> = HashMap::new();
    let mut member: Vec<Option<(usize, f64)>> = Vec::with_capacity(input.len());
    for s in input {
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            member.push(None);
            continue;
        };
        let key = s.labels.without(&["le"]);
        let g = *group_of.entry(key.clone()).or_insert_with(|| {
            groups.push(key);
            groups.len() - 1
        });
        member.push(Some((g, le)));
    }
    let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); groups.len()];
    let mut cursor = StepCursor::new(input.len());
    let mut step = Vec::new();
    let mut out = Collector::new(&ev.grid);
    for i in 0..ev.grid.len() {
        let ts = ev.grid.ts(i);
        cursor.gather(input, ts, &mut step);
        buckets.iter_mut().for_each(Vec::clear);
        for &(si, v) in &step {
            if let Some((g, upper)) = member[si] {
                buckets[g].push(Bucket { upper, count: v });
            }
        }
        for (g, bs) in buckets.iter_mut().enumerate() {
            if bs.is_empty() {
                continue;
            }
            let v = f(i, bs);
            out.push(&groups[g], true, ts, v)?;
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// Context a range function sees for one window.
pub(crate) struct Window<'a> {
    /// The samples in `(start, end]`, stale markers removed.
    pub samples: &'a [Sample],
    /// The step time (Prometheus' `enh.Ts`).
    pub ts: i64,
    pub start: i64,
    pub end: i64,
    /// The selector's range in ms.
    pub range: i64,
    /// Scalar arguments at this step, in argument order.
    pub scalars: &'a [f64],
}

type RangeFn = fn(&Window<'_>) -> Result<Option<f64>, EvalError>;

fn range_function(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => |w| Ok(extrapolated_rate(w, true, true)),
        "increase" => |w| Ok(extrapolated_rate(w, true, false)),
        "delta" => |w| Ok(extrapolated_rate(w, false, false)),
        "irate" => |w| Ok(instant_value(w.samples, true)),
        "idelta" => |w| Ok(instant_value(w.samples, false)),
        "deriv" => |w| {
            if w.samples.len() < 2 {
                return Ok(None);
            }
            Ok(Some(linear_regression(w.samples, w.samples[0].t).0))
        },
        "predict_linear" => |w| {
            if w.samples.len() < 2 {
                return Ok(None);
            }
            let (slope, intercept) = linear_regression(w.samples, w.ts);
            Ok(Some(slope * w.scalars[0] + intercept))
        },
        "resets" => |w| {
            Ok(Some(
                w.samples.windows(2).filter(|p| p[1].v < p[0].v).count() as f64,
            ))
        },
        "changes" => |w| {
            Ok(Some(
                w.samples
                    .windows(2)
                    .filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()))
                    .count() as f64,
            ))
        },
        "avg_over_time" => |w| Ok(Some(avg_over_time(w.samples))),
        "sum_over_time" => |w| {
            let (mut sum, mut c) = (0.0, 0.0);
            for p in w.samples {
                (sum, c) = kahan_inc(p.v, sum, c);
            }
            Ok(Some(if sum.is_infinite() { sum } else { sum + c }))
        },
        "count_over_time" => |w| Ok(Some(w.samples.len() as f64)),
        "min_over_time" => |w| Ok(Some(compare_over_time(w.samples, |cur, m| cur < m))),
        "max_over_time" => |w| Ok(Some(compare_over_time(w.samples, |cur, m| cur > m))),
        "last_over_time" => |w| Ok(w.samples.last().map(|p| p.v)),
        "first_over_time" => |w| Ok(w.samples.first().map(|p| p.v)),
        "present_over_time" => |_| Ok(Some(1.0)),
        "absent_over_time" => |_| Ok(Some(1.0)),
        "quantile_over_time" => |w| {
            let mut v: Vec<f64> = w.samples.iter().map(|p| p.v).collect();
            Ok(Some(quantile(w.scalars[0], &mut v)))
        },
        "stddev_over_time" => |w| Ok(Some(variance_over_time(w.samples).sqrt())),
        "stdvar_over_time" => |w| Ok(Some(variance_over_time(w.samples))),
        "double_exponential_smoothing" => double_exponential_smoothing,
        _ => return None,
    })
}

/// A call a rule round evaluates through its memo (see [`RoundMemo`]): a range function (not
/// `absent_over_time`) whose only argument is a range selector, at one instant, inside a round.
struct MemoCall<'a, 'e> {
    memo: &'a RoundMemo,
    f: RangeFn,
    ms: &'e MatrixSelector,
    /// Whether the results lose their name (all but `first_over_time` and `last_over_time`).
    drop_name: bool,
}

/// `c` as a [`MemoCall`], if it is one.
fn memo_call<'a, 'e>(ev: &Evaluator<'a>, c: &'e Call) -> Option<MemoCall<'a, 'e>> {
    let memo = ev.ctx.memo?;
    let name = c.func.name;
    let f = range_function(name)?;
    let ([arg], true, false) = (
        &c.args.args[..],
        ev.grid.is_instant(),
        name == "absent_over_time",
    ) else {
        return None;
    };
    let Expr::MatrixSelector(ms) = unparen(arg) else {
        return None;
    };
    Some(MemoCall {
        memo,
        f,
        ms,
        drop_name: !(name == "last_over_time" || name == "first_over_time"),
    })
}

/// A [`MemoCall`]'s results: series whose result the round already has are not read again.
/// `None` when the source cannot say which series is which.
fn eval_range_memo(
    ev: &Evaluator<'_>,
    m: &MemoCall<'_, '_>,
) -> Result<Option<Vec<Series>>, EvalError> {
    let ts = ev.grid.start;
    let mut out = Vec::new();
    let supported = range_memo_each(ev, m, &mut |_, labels, v| {
        out.push(Series {
            labels: labels.clone(),
            points: vec![Sample { t: ts, v }],
            drop_name: m.drop_name,
        })
    })?;
    if !supported {
        return Ok(None);
    }
    // In the order a selection returns them.
    out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Some(out))
}

/// The values of `e`, if it is a [`MemoCall`], one series at a time in the source's order,
/// without a vector of them: `sum by (job) (rate(x[5m]))` over 30,000 series aggregates as
/// the values come (see `aggr::eval`). `each(series id, labels, value, drop_name)`;
/// `Ok(false)` when `e` is not such a call or the source cannot stream, and nothing was called.
pub(crate) fn range_values_each(
    ev: &Evaluator<'_>,
    e: &Expr,
    each: &mut dyn FnMut(u64, &Labels, f64, bool),
) -> Result<bool, EvalError> {
    let Expr::Call(c) = unparen(e) else {
        return Ok(false);
    };
    let Some(m) = memo_call(ev, c) else {
        return Ok(false);
    };
    range_memo_each(ev, &m, &mut |id, labels, v| {
        each(id, labels, v, m.drop_name)
    })
}

/// Calls `each(series id, labels, value)` for every series of the call's selector on which its function
/// gives a value at the grid's instant, in the source's order, through the round's memo;
/// `false` when the source cannot stream (nothing was called).
fn range_memo_each(
    ev: &Evaluator<'_>,
    m: &MemoCall<'_, '_>,
    each: &mut dyn FnMut(u64, &Labels, f64),
) -> Result<bool, EvalError> {
    let MemoCall { memo, f, ms, .. } = *m;
    let vs = &ms.vs;
    let matchers = selector_matchers(vs)?;
    let range = dur_ms(&ms.range);
    let offset = offset_ms(&vs.offset);
    let at = ev.at_ms(&vs.at);
    let ts = ev.grid.start;
    let end = at.unwrap_or(ts) - offset;
    let start = end - range;
    let window = memo.window(MemoWindow {
        f: f as usize,
        range,
        offset,
        at,
        ts,
    });
    let mut failed = None;
    let mut live = Vec::new();
    // What `skip` found, handed to `each` (called next for the same series): one lookup.
    let found = std::cell::Cell::new(None);
    let supported = ev.ctx.src.select_each(
        &matchers,
        start + 1,
        end,
        &mut |id| {
            found.set(memo.get(window, id));
            found.get().is_some()
        },
        &mut |id, labels, samples| {
            if failed.is_some() {
                return;
            }
            let v = match found.take() {
                Some(v) => v,
                None => {
                    // As in `matrix_selector`: inside a range, stale markers are not samples.
                    let samples = match samples.iter().any(|x| is_stale_nan(x.v)) {
                        true => {
                            live.clear();
                            live.extend(samples.iter().filter(|x| !is_stale_nan(x.v)));
                            &live[..]
                        }
                        false => samples,
                    };
                    let w = Window {
                        samples,
                        ts,
                        start,
                        end,
                        range,
                        scalars: &[],
                    };
                    let v = match samples.is_empty() {
                        true => None,
                        false => match f(&w) {
                            Ok(v) => v,
                            Err(e) => {
                                failed = Some(e);
                                return;
                            }
                        },
                    };
                    memo.put(window, id, v);
                    v
                }
            };
            if let Some(v) = v {
                each(id, labels, v);
            }
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(supported)
}

fn eval_range_function(
    ev: &Evaluator<'_>,
    name: &str,
    f: RangeFn,
    args: &[&Expr],
) -> Result<Val, EvalError> {
    // The range argument is the only one of matrix type; all others are scalars.
    let range_idx = args
        .iter()
        .position(|a| matches!(a, Expr::MatrixSelector(_) | Expr::Subquery(_)))
        .ok_or_else(|| {
            EvalError::InvalidQuery(format!("{name}() expects a range vector argument"))
        })?;
    let mut scalar_args = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != range_idx {
            scalar_args.push(ev.eval_scalar(a)?);
        }
    }
    let keep_name = name == "last_over_time" || name == "first_over_time";
    let n = ev.grid.len();
    let ra: RangeArg = ev.range_arg(args[range_idx])?;
    let mut scalars = vec![0.0; scalar_args.len()];
    let mut out = Vec::with_capacity(ra.series.len());
    let RangeArg {
        series,
        range,
        offset,
        at,
    } = ra;
    let window_end = |ts: i64| at.unwrap_or(ts) - offset;
    for s in series {
        // A range query over many series spends its time here: stop at the deadline.
        ev.ctx.check()?;
        let samples = &s.points;
        let (mut lo, mut hi) = (0usize, 0usize);
        let mut points = Vec::new();
        for i in 0..n {
            let ts = ev.grid.ts(i);
            let end = window_end(ts);
            let start = end - range;
            // Windows move forward with the steps (or stay put under `@`), so two cursors
            // suffice: no search and no copy per step.
            if at.is_none() || i == 0 {
                while hi < samples.len() && samples[hi].t <= end {
                    hi += 1;
                }
                while lo < hi && samples[lo].t <= start {
                    lo += 1;
                }
            }
            if lo >= hi {
                continue;
            }
            for (j, sa) in scalar_args.iter().enumerate() {
                scalars[j] = sa[i];
            }
            let w = Window {
                samples: &samples[lo..hi],
                ts,
                start,
                end,
                range,
                scalars: &scalars,
            };
            if let Some(v) = f(&w)? {
                points.push(Sample { t: ts, v });
            }
        }
        if !points.is_empty() {
            ev.ctx.charge(points.len())?;
            out.push(Series {
                // The selected series is owned here: move its labels instead of copying them.
                labels: s.labels,
                points,
                // `last_over_time`/`first_over_time` keep the name unless the subquery inside already dropped it.
                drop_name: !keep_name || s.drop_name,
            });
        }
    }
    if name == "absent_over_time" {
        return Ok(absent_series(ev, &out, args[range_idx], true));
    }
    Ok(Val::Vector(out))
}

/// `extrapolatedRate` for floats (Prometheus 3): the increase between the first and last sample,
/// corrected for counter resets, extrapolated towards the window edges when the samples come
/// close enough to them.
fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let first = s[0];
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        for p in s.windows(2) {
            if p[1].v < p[0].v {
                result += p[0].v;
            }
        }
    }
    let mut duration_to_start = (first.t - w.start) as f64 / 1000.0;
    let mut duration_to_end = (w.end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let avg_between = sampled_interval / (s.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = avg_between / 2.0;
    }
    if is_counter {
        let mut duration_to_zero = duration_to_start;
        if result > 0.0 && first.v >= 0.0 {
            duration_to_zero = sampled_interval * (first.v / result);
        }
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = avg_between / 2.0;
    }
    let mut factor = 1.0;
    if sampled_interval != 0.0 {
        factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    }
    if is_rate {
        factor /= w.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate`/`idelta`: from the last two samples.
fn instant_value(s: &[Sample], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (prev, last) = (s[s.len() - 2], s[s.len() - 1]);
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    let mut v = last.v;
    // A counter reset: the last value is the increase since the reset. NaN compares false, so a
    // NaN counter gives the (NaN) difference like Prometheus.
    if !is_rate || last.v >= prev.v || last.v.is_nan() || prev.v.is_nan() {
        v = last.v - prev.v;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares slope and intercept at `intercept_time` (`linearRegression`).
fn linear_regression(s: &[Sample], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn avg_over_time(s: &[Sample]) -> f64 {
    let (mut sum, mut count) = (s[0].v, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, p) in s[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (new_sum, new_c) = kahan_inc(p.v, sum, c);
            if !new_sum.is_infinite() {
                (sum, c) = (new_sum, new_c);
                continue;
            }
            // The running sum would overflow: continue with an incremental mean.
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(p.v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn compare_over_time(s: &[Sample], better: fn(f64, f64) -> bool) -> f64 {
    let mut m = s[0].v;
    for p in s {
        if better(p.v, m) || m.is_nan() {
            m = p.v;
        }
    }
    m
}

fn variance_over_time(s: &[Sample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn double_exponential_smoothing(w: &Window<'_>) -> Result<Option<f64>, EvalError> {
    let (sf, tf) = (w.scalars[0], w.scalars[1]);
    if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
        return Err(EvalError::BadArgument(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
        return Err(EvalError::BadArgument(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    let s = w.samples;
    if s.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, s[0].v);
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Ok(Some(s1))
}

#[cfg(test)]
mod tests;
