//! The evaluator: the step grid, the internal value shapes, selectors, subqueries and the final
//! conversion into a [`Value`].
//!
//! Like Prometheus, every expression is evaluated over all steps of the query at once: an instant
//! vector becomes a set of series with one point per step at which it has a value. Range arguments
//! (`x[5m]`, subqueries) are kept as raw samples and windowed per step by the function that uses
//! them, so a selector is read from the source exactly once per query, over the smallest time
//! window that covers every step.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::Matcher;
use promql_parser::parser::{
    AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector,
};

use super::{EvalError, Value, VectorSample, aggr, binop, functions};
use crate::series::Labels;
use crate::series::{METRIC_NAME, Sample, SeriesSamples, SeriesSource, Timestamp, is_stale_nan};

/// Query-wide settings shared by every (sub)evaluator.
pub(crate) struct Ctx<'a> {
    /// Where samples come from.
    pub src: &'a dyn SeriesSource,
    /// Lookback delta in ms.
    pub lookback: i64,
    /// Default subquery step in ms.
    pub subquery_step: i64,
    /// The query's start, for `@ start()`.
    pub query_start: i64,
    /// The query's end, for `@ end()`.
    pub query_end: i64,
    /// Range-function results shared within a rule-evaluation round.
    pub memo: Option<&'a super::RoundMemo>,
    /// The query's sample limit and deadline, when it has them.
    pub limits: Option<&'a super::QueryLimits>,
}

impl Ctx<'_> {
    /// Stops the evaluation once the query is over its limits.
    pub fn check(&self) -> Result<(), EvalError> {
        self.limits.map_or(Ok(()), super::QueryLimits::check)
    }

    /// Counts `n` points the evaluation holds against the sample limit.
    pub fn charge(&self, n: usize) -> Result<(), EvalError> {
        match self.limits {
            Some(l) => {
                l.charge(n);
                l.check()
            }
            None => Ok(()),
        }
    }
}

/// The evaluation steps: `start, start+step, …, end` (inclusive).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    /// A single step at `t`.
    pub fn instant(t: i64) -> Grid {
        Grid {
            start: t,
            end: t,
            step: 1,
        }
    }

    /// Number of steps (0 when `end < start`).
    pub fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step + 1) as usize
        }
    }

    /// Timestamp of step `i`.
    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Step index of a timestamp that lies on the grid.
    pub fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }

    /// True for a one-step (instant) evaluation, where Prometheus keeps results in evaluation
    /// order instead of collecting them into series.
    pub fn is_instant(&self) -> bool {
        self.start == self.end
    }
}

/// A series inside the evaluator: for instant vectors one point per step (at the step time), for
/// range values the raw samples.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub labels: Labels,
    pub points: Vec<Sample>,
    /// Prometheus' `DropName`: remove `__name__` when the result is returned.
    pub drop_name: bool,
}

/// Internal values.
#[derive(Clone)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    /// An instant vector over the steps.
    Vector(Vec<Series>),
    /// A range vector (only as the result of an instant query).
    Matrix(Vec<Series>),
    /// A string literal.
    Str(String),
}

/// The static type of an expression, as the parser defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StaticType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl StaticType {
    /// The name Prometheus uses in messages.
    pub fn documented(self) -> &'static str {
        match self {
            StaticType::Scalar => "scalar",
            StaticType::Vector => "instant vector",
            StaticType::Matrix => "range vector",
            StaticType::String => "string",
        }
    }
}

/// The static type of `e`.
pub(crate) fn static_type(e: &Expr) -> StaticType {
    use promql_parser::parser::value::ValueType;
    match e.value_type() {
        ValueType::Scalar => StaticType::Scalar,
        ValueType::Vector => StaticType::Vector,
        ValueType::Matrix => StaticType::Matrix,
        ValueType::String => StaticType::String,
    }
}

/// Removes any number of parentheses around an expression.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Milliseconds of an offset modifier (0 when absent).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => dur_ms(d),
        Some(Offset::Neg(d)) => -dur_ms(d),
    }
}

/// A duration in ms.
pub(crate) fn dur_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

/// A range argument: raw samples of each series plus the window geometry.
pub(crate) struct RangeArg {
    pub series: Vec<Series>,
    /// Window length in ms.
    pub range: i64,
    pub offset: i64,
    /// Fixed evaluation time from `@`, if any.
    pub at: Option<i64>,
}

impl RangeArg {
    /// End of the window evaluated at step time `ts`; the window is `(end - range, end]`.
    pub fn window_end(&self, ts: i64) -> i64 {
        self.at.unwrap_or(ts) - self.offset
    }
}

/// Evaluates expressions over one grid.
pub(crate) struct Evaluator<'a> {
    pub ctx: &'a Ctx<'a>,
    pub grid: Grid,
}

impl<'a> Evaluator<'a> {
    pub fn new(ctx: &'a Ctx<'a>, grid: Grid) -> Self {
        Evaluator { ctx, grid }
    }

    /// Evaluates `expr` over the grid.
    pub fn eval(&self, expr: &Expr) -> Result<Val, EvalError> {
        self.ctx.check()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; self.grid.len()])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut ss) => {
                    for s in &mut ss {
                        s.drop_name = true;
                        s.points.iter_mut().for_each(|p| p.v = -p.v);
                    }
                    Ok(Val::Vector(ss))
                }
                _ => Err(EvalError::InvalidQuery(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                        .into(),
                )),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.vector_selector(vs, false)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                if !self.grid.is_instant() {
                    let what = match expr {
                        Expr::MatrixSelector(_) => "matrix selector",
                        _ => "subquery",
                    };
                    return Err(EvalError::InvalidQuery(format!(
                        "cannot do range evaluation of {what}"
                    )));
                }
                let ra = self.range_arg(expr)?;
                Ok(Val::Matrix(window_series(ra, self.grid.start)))
            }
            Expr::Call(c) => functions::call(self, c),
            Expr::Aggregate(a) => self.shared(expr, || aggr::eval(self, a)),
            Expr::Binary(b) => binop::eval(self, b),
            Expr::Extension(_) => Err(EvalError::Unsupported(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates `expr` with `eval`, or takes its value from the round's memo: at one instant,
    /// an expression's value depends on nothing but the data, so the same aggregation in
    /// another rule of the round (the warning and the critical threshold of one alert) is not
    /// computed twice. Aggregations only: their results are small, and they hold the work.
    fn shared(
        &self,
        expr: &Expr,
        eval: impl FnOnce() -> Result<Val, EvalError>,
    ) -> Result<Val, EvalError> {
        let Some(memo) = self.ctx.memo.filter(|_| self.grid.is_instant()) else {
            return eval();
        };
        let key = (self.grid.start, expr.to_string());
        if let Some(v) = memo.value(&key) {
            return Ok(v);
        }
        let v = eval()?;
        memo.put_value(key, &v);
        Ok(v)
    }

    /// Evaluates an expression that must be an instant vector.
    pub fn eval_vector(&self, expr: &Expr) -> Result<Vec<Series>, EvalError> {
        match self.eval(expr)? {
            Val::Vector(v) => Ok(v),
            _ => Err(wrong_type("instant vector", expr)),
        }
    }

    /// Evaluates an expression that must be a scalar: one value per step.
    pub fn eval_scalar(&self, expr: &Expr) -> Result<Vec<f64>, EvalError> {
        match self.eval(expr)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(wrong_type("scalar", expr)),
        }
    }

    /// Resolves an `@` modifier to ms.
    pub fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.ctx.query_start),
            Some(AtModifier::End) => Some(self.ctx.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(*t)),
        }
    }

    /// Evaluates an instant selector. With `timestamps`, each point's value is the timestamp (in
    /// seconds) of the sample it came from, for `timestamp(selector)`.
    pub fn vector_selector(
        &self,
        vs: &VectorSelector,
        timestamps: bool,
    ) -> Result<Vec<Series>, EvalError> {
        let n = self.grid.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let matchers = selector_matchers(vs)?;
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let lookback = self.ctx.lookback;
        let (first_ref, last_ref) = match at {
            Some(a) => (a - offset, a - offset),
            None => (self.grid.start - offset, self.grid.end - offset),
        };
        // Left-open lookback: a sample exactly `lookback` old is out, hence the +1.
        let selected = self
            .ctx
            .src
            .select(&matchers, first_ref - lookback + 1, last_ref);
        self.ctx.check()?;
        let mut out = Vec::with_capacity(selected.len());
        for s in selected {
            let samples = &s.samples;
            let mut points = Vec::new();
            let pick = |j: usize, r: i64| -> Option<Sample> {
                if j == 0 {
                    return None;
                }
                let smp = samples[j - 1];
                if smp.t <= r - lookback || is_stale_nan(smp.v) {
                    return None;
                }
                Some(smp)
            };
            let value = |smp: Sample| {
                if timestamps {
                    smp.t as f64 / 1000.0
                } else {
                    smp.v
                }
            };
            if at.is_some() {
                let r = first_ref;
                let j = samples.partition_point(|x| x.t <= r);
                if let Some(smp) = pick(j, r) {
                    points.reserve(n);
                    for i in 0..n {
                        points.push(Sample {
                            t: self.grid.ts(i),
                            v: value(smp),
                        });
                    }
                }
            } else {
                let mut j = 0;
                for i in 0..n {
                    let ts = self.grid.ts(i);
                    let r = ts - offset;
                    while j < samples.len() && samples[j].t <= r {
                        j += 1;
                    }
                    if let Some(smp) = pick(j, r) {
                        points.push(Sample {
                            t: ts,
                            v: value(smp),
                        });
                    }
                }
            }
            if !points.is_empty() {
                self.ctx.charge(points.len())?;
                out.push(Series {
                    labels: s.labels,
                    points,
                    drop_name: false,
                });
            }
        }
        Ok(out)
    }

    /// Selects the raw samples of a range selector for every step of the grid.
    fn matrix_selector(&self, ms: &MatrixSelector) -> Result<RangeArg, EvalError> {
        let vs = &ms.vs;
        let matchers = selector_matchers(vs)?;
        self.range_frame(&ms.range, &vs.offset, &vs.at, |ra| {
            let first_end = ra.window_end(self.grid.start);
            let last_end = ra.window_end(self.grid.end);
            let selected = self
                .ctx
                .src
                .select(&matchers, first_end - ra.range + 1, last_end);
            self.ctx.check()?;
            Ok(selected
                .into_iter()
                .filter_map(|mut s| {
                    // Stale markers only end a series for the lookback; inside a range they are
                    // simply not samples.
                    s.samples.retain(|x| !is_stale_nan(x.v));
                    (!s.samples.is_empty()).then_some(Series {
                        labels: s.labels,
                        points: s.samples,
                        drop_name: false,
                    })
                })
                .collect())
        })
    }

    /// Evaluates a subquery: the inner expression over its own grid, aligned to multiples of its
    /// step, covering every window the outer steps need.
    fn subquery(&self, sq: &SubqueryExpr) -> Result<RangeArg, EvalError> {
        let step = match &sq.step {
            Some(d) if dur_ms(d) > 0 => dur_ms(d),
            _ => self.ctx.subquery_step,
        };
        self.range_frame(&sq.range, &sq.offset, &sq.at, |ra| {
            let (outer_start, outer_end) = match ra.at {
                Some(a) => (a, a),
                None => (self.grid.start, self.grid.end),
            };
            let base = outer_start - ra.offset - ra.range;
            // Integer division truncates toward zero, as in Go; the first step is the first
            // multiple of `step` strictly after `base`.
            let mut start = step * (base / step);
            if start <= base {
                start += step;
            }
            let inner = Evaluator::new(
                self.ctx,
                Grid {
                    start,
                    end: outer_end - ra.offset,
                    step,
                },
            );
            inner.eval_vector(&sq.expr)
        })
    }

    /// The window of a range argument (length, offset, `@`) with the series `select` finds for
    /// it. An empty grid has no windows, so nothing is selected.
    fn range_frame(
        &self,
        range: &Duration,
        offset: &Option<Offset>,
        at: &Option<AtModifier>,
        select: impl FnOnce(&RangeArg) -> Result<Vec<Series>, EvalError>,
    ) -> Result<RangeArg, EvalError> {
        let mut ra = RangeArg {
            series: Vec::new(),
            range: dur_ms(range),
            offset: offset_ms(offset),
            at: self.at_ms(at),
        };
        if self.grid.len() > 0 {
            ra.series = select(&ra)?;
        }
        Ok(ra)
    }

    /// Evaluates a range argument of a function: a range selector or a subquery.
    pub fn range_arg(&self, e: &Expr) -> Result<RangeArg, EvalError> {
        match unparen(e) {
            Expr::MatrixSelector(ms) => self.matrix_selector(ms),
            Expr::Subquery(sq) => self.subquery(sq),
            other => Err(wrong_type("range vector", other)),
        }
    }
}

/// The error for an expression of another type than the one wanted: one wording for every check.
fn wrong_type(want: &str, got: &Expr) -> EvalError {
    EvalError::InvalidQuery(format!(
        "expected {want}, got {}",
        static_type(got).documented()
    ))
}

/// The samples of each series inside the window at `ts`, for a range value returned as such.
fn window_series(ra: RangeArg, ts: i64) -> Vec<Series> {
    let end = ra.window_end(ts);
    let start = end - ra.range;
    ra.series
        .into_iter()
        .filter_map(|mut s| {
            s.points.retain(|p| p.t > start && p.t <= end);
            (!s.points.is_empty()).then_some(s)
        })
        .collect()
}

/// The matchers of a selector, with the metric name written before the braces added as an
/// equality matcher (the parser keeps it separately).
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, EvalError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(EvalError::Unsupported(
            "\"or\" inside label matchers is not supported".into(),
        ));
    }
    let mut m = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        m.push(Matcher::new(
            promql_parser::label::MatchOp::Equal,
            METRIC_NAME,
            name,
        ));
    }
    Ok(m)
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Collects the per-step output of an operation into series. For an instant evaluation the
/// samples are kept in the order produced (Prometheus does not sort instant vectors); over
/// several steps they are collected per label set, and two samples with the same labels at one
/// step are an error, as in Prometheus' `rangeEval`.
pub(crate) struct Collector {
    instant: bool,
    series: Vec<Series>,
    index: HashMap<Labels, usize>,
}

impl Collector {
    pub fn new(grid: &Grid) -> Self {
        Collector {
            instant: grid.is_instant(),
            series: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds one output sample at step time `t`.
    pub fn push(
        &mut self,
        labels: &Labels,
        drop_name: bool,
        t: Timestamp,
        v: f64,
    ) -> Result<(), EvalError> {
        if !self.instant {
            if let Some(&i) = self.index.get(labels) {
                let s = &mut self.series[i];
                if s.points.last().is_some_and(|p| p.t == t) {
                    return Err(EvalError::DuplicateLabelset);
                }
                s.points.push(Sample { t, v });
                return Ok(());
            }
            self.index.insert(labels.clone(), self.series.len());
        }
        self.series.push(Series {
            labels: labels.clone(),
            points: vec![Sample { t, v }],
            drop_name,
        });
        Ok(())
    }

    pub fn finish(self) -> Vec<Series> {
        self.series
    }
}

/// Walks the steps of an instant vector: yields, for each step, the indices and values of the
/// series that have a point there.
pub(crate) struct StepCursor {
    pos: Vec<usize>,
}

impl StepCursor {
    pub fn new(n: usize) -> Self {
        StepCursor { pos: vec![0; n] }
    }

    /// Fills `out` with `(series index, value)` for step time `ts`.
    pub fn gather(&mut self, series: &[Series], ts: i64, out: &mut Vec<(usize, f64)>) {
        out.clear();
        for (i, s) in series.iter().enumerate() {
            let p = &mut self.pos[i];
            if let Some(pt) = s.points.get(*p)
                && pt.t == ts
            {
                out.push((i, pt.v));
                *p += 1;
            }
        }
    }
}

/// Drops `__name__` from series marked for it (delayed name removal).
fn drop_names(series: &mut [Series]) {
    for s in series {
        if s.drop_name {
            s.labels = s.labels.without_metric_name();
            s.drop_name = false;
        }
    }
}

/// Merges series that ended up with the same labels; overlapping samples are an error. Prometheus'
/// `Matrix.MergeSeriesWithSameLabelset`, used after `label_replace`/`label_join` and when names
/// are dropped from a range result.
pub(crate) fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>, EvalError> {
    if series.len() < 2 {
        return Ok(series);
    }
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    let mut merged = false;
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                let dst = &mut out[i];
                dst.points.extend(s.points);
                merged = true;
                dst.drop_name |= s.drop_name;
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    if merged {
        for s in &mut out {
            s.points.sort_by_key(|p| p.t);
            if s.points.windows(2).any(|w| w[0].t == w[1].t) {
                return Err(EvalError::DuplicateLabelset);
            }
        }
    }
    Ok(out)
}

fn to_series_samples(s: Series) -> SeriesSamples {
    SeriesSamples {
        labels: s.labels,
        samples: s.points,
    }
}

/// Turns the evaluator's value for an instant query into the public shape, dropping names.
pub(crate) fn finish_instant(val: Val, t: i64) -> Result<Value, EvalError> {
    match val {
        Val::Scalar(v) => Ok(Value::Scalar {
            t,
            v: v.first().copied().unwrap_or(f64::NAN),
        }),
        Val::Str(s) => Ok(Value::String { t, v: s }),
        Val::Vector(mut ss) => {
            drop_names(&mut ss);
            if ss.len() > 1 {
                let mut seen = std::collections::HashSet::with_capacity(ss.len());
                if !ss.iter().all(|s| seen.insert(&s.labels)) {
                    return Err(EvalError::DuplicateLabelset);
                }
            }
            Ok(Value::Vector(
                ss.into_iter()
                    .filter_map(|s| {
                        let v = s.points.first()?.v;
                        Some(VectorSample {
                            labels: s.labels,
                            t,
                            v,
                        })
                    })
                    .collect(),
            ))
        }
        Val::Matrix(ss) => into_matrix(ss),
    }
}

/// Turns the evaluator's value for a range query into a matrix sorted by labels.
pub(crate) fn finish_range(val: Val, grid: &Grid) -> Result<Value, EvalError> {
    let ss = match val {
        Val::Scalar(v) => return Ok(scalar_to_matrix(v, grid)),
        Val::Str(_) | Val::Matrix(_) => {
            return Err(EvalError::InvalidQuery(
                "range query must be a scalar or instant vector".into(),
            ));
        }
        Val::Vector(ss) => ss,
    };
    into_matrix(ss)
}

/// The public matrix of a query's result: names dropped, series that then share labels
/// merged, sorted by labels.
fn into_matrix(mut ss: Vec<Series>) -> Result<Value, EvalError> {
    drop_names(&mut ss);
    let mut ss = merge_same_labels(ss)?;
    ss.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Value::Matrix(
        ss.into_iter().map(to_series_samples).collect(),
    ))
}

/// A range query over a scalar expression: one label-less series with every step.
fn scalar_to_matrix(v: Vec<f64>, grid: &Grid) -> Value {
    Value::Matrix(vec![SeriesSamples {
        labels: Labels::empty(),
        samples: v
            .into_iter()
            .enumerate()
            .map(|(i, v)| Sample { t: grid.ts(i), v })
            .collect(),
    }])
}
