//! PromQL evaluation with Prometheus 3.x semantics.
//!
//! Rules, gates and the `/api/v1/query` endpoint hand an expression and a time to [`Engine`], which
//! reads samples through [`SeriesSource`] and answers with a [`Value`]. The engine follows the
//! Prometheus evaluator closely (`promql/engine.go`, `functions.go`, `quantile.go`): every
//! expression is evaluated over a grid of steps (one step for an instant query), range windows and
//! the lookback window are left-open, a stale marker ends a series, and `__name__` is removed the
//! way Prometheus does with delayed name removal (the mode its own test suite runs in): functions
//! and arithmetic mark a series, and the name is dropped once, when the result is returned.
//!
//! Layout: `eval` holds the evaluator and selectors, `functions` the function table, `aggr` the
//! aggregation operators, `binop` the operators, `quantile` the quantile helpers, `support` the
//! list of supported features and `json` the Prometheus HTTP API encoding.

mod aggr;
mod binop;
mod eval;
mod functions;
mod json;
mod limits;
mod quantile;
mod support;

use std::fmt;

pub use eval::selector_matchers;
pub use json::{ApiJson, format_value, metric_json, value_to_api_json};
pub use limits::QueryLimits;
pub use promql_parser::parser::Expr;
pub use support::check_supported;

use crate::series::{Labels, SeriesSamples, SeriesSource};

/// Parses a PromQL expression (a thin wrapper over `promql_parser::parser::parse`, so callers need
/// not depend on the parser crate).
pub fn parse(expr: &str) -> Result<Expr, String> {
    promql_parser::parser::parse(expr)
}

/// Work shared by the expressions of one rule-evaluation round, all evaluated at one time
/// over one source with one engine.
///
/// Alert rules repeat themselves: a warning and a critical threshold on the same error ratio,
/// a job-wide rule next to per-target ones, `rate(x{status=~"5.."}[5m])` over a subset of
/// `rate(x[5m])`. At one instant an expression's value depends only on the data, so the memo
/// keeps two things for the rest of the round:
///
/// - the result of a range function over one series (`rate`, `increase`, `*_over_time`, …,
///   plain range selectors without scalar arguments), keyed by function, window and series:
///   another selector that matches the series does not decode it again;
/// - the value of a whole aggregation, keyed by its text: the second rule with the same
///   `sum by (job) (rate(…[5m]))` takes the few resulting series.
///
/// Every expression therefore sees a series as it was when the round first read it, as if the
/// round were one snapshot. One memo per round, dropped at its end; its size is one entry per
/// (series, function, window) plus the aggregations' (small) results.
#[derive(Default)]
pub struct RoundMemo {
    /// The windows seen this round (function, range, offset, `@`, time); a result is keyed by
    /// the window's position here and the series, which keeps the table small.
    windows: std::cell::RefCell<Vec<MemoWindow>>,
    results: std::cell::RefCell<SeriesResults>,
    /// Values of whole aggregations by evaluation time and expression text (see
    /// `Evaluator::shared`).
    values: std::cell::RefCell<std::collections::HashMap<(i64, String), eval::Val>>,
    /// Label orders of streamed selections, carried from round to round (see [`LabelOrders`]).
    orders: std::cell::RefCell<LabelOrders>,
}

/// The label order of the selections a round aggregates, kept from one round to the next.
///
/// An aggregation over a range function (`sum by (job) (rate(x[5m]))`) adds its values in the
/// order of the series' labels, as the general path does (its selection is sorted by labels),
/// so both give the same sum to the bit and list their groups in the same order. The source
/// streams series in its own order (the head's: by series id), and sorting every label set
/// every round would dominate a round's cost. A selection that yields the same
/// series in the same order as last round has the same label order, so the permutation is
/// remembered under a 128-bit hash of the id sequence (and its length): 4 bytes a series,
/// dropped when a round does not use it.
#[derive(Default)]
pub struct LabelOrders {
    /// Permutations (positions in the source's order, in label order) and whether this round
    /// used them, by [`IdsHash`].
    by_ids: std::collections::HashMap<(u64, u64, usize), (Order, bool), OrderHasher>,
}

/// Positions in the source's order, listed in label order.
type Order = std::sync::Arc<[u32]>;
type OrderHasher = std::hash::BuildHasherDefault<crate::series::hash::FastHasher>;

/// A running hash of a sequence of series ids, two independent 64-bit halves.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IdsHash(u64, u64, usize);

impl IdsHash {
    pub(crate) fn add(&mut self, id: u64) {
        // FxHash's step and a multiply-xorshift with another constant: an accidental match of
        // both over two different sequences of one length is about 2^-128.
        self.0 = (self.0.rotate_left(5) ^ id).wrapping_mul(0x517c_c1b7_2722_0a95);
        let x =
            (self.1 ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        self.1 = x ^ (x >> 31);
        self.2 += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.2
    }
}

impl LabelOrders {
    /// Starts a round: everything is unused until a selection asks for it.
    fn start_round(&mut self) {
        self.by_ids.retain(|_, (_, used)| std::mem::take(used));
    }

    fn get(&mut self, ids: IdsHash) -> Option<Order> {
        let (order, used) = self.by_ids.get_mut(&(ids.0, ids.1, ids.2))?;
        *used = true;
        Some(order.clone())
    }

    fn put(&mut self, ids: IdsHash, order: Order) {
        self.by_ids.insert((ids.0, ids.1, ids.2), (order, true));
    }

    /// Drops the orders no round used since the last sweep, for a caller whose rounds
    /// evaluate some of the rules each ([`RoundMemo::with_kept_orders`]).
    pub fn sweep(&mut self) {
        self.start_round();
    }

    /// Remembered selections.
    pub fn len(&self) -> usize {
        self.by_ids.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_ids.is_empty()
    }
}

/// Range-function results by [`memo_key`] (series and window number), as the value's bits or
/// [`NO_VALUE`]: 16 bytes an entry, half of `(u64, u32) → Option<f64>`, for a table that holds
/// every range result of a round.
type SeriesResults = std::collections::HashMap<
    u64,
    u64,
    std::hash::BuildHasherDefault<crate::series::hash::FastHasher>,
>;

/// Bits standing for "the function gave no value": a NaN payload that no parsed or computed
/// sample carries. A result with these very bits is not remembered (see [`RoundMemo::put`]),
/// so the two can never be confused.
const NO_VALUE: u64 = 0x7ff4_f00d_0000_0001;

/// Series ids below 2^48 and the first 2^16 windows of a round share one key; others are not
/// remembered (a head would need 2^48 series, a round 65,536 distinct windows).
fn memo_key(series: u64, window: u32) -> Option<u64> {
    (series < 1 << 48 && window < 1 << 16).then(|| series << 16 | u64::from(window))
}

/// What a memoised result depends on, besides the series' samples.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoWindow {
    /// The range function, by address (two functions with one address compute the same).
    pub f: usize,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
    pub ts: i64,
}

impl RoundMemo {
    /// A memo with room for `n` results (the previous round's count is a good guess: growing
    /// a large table step by step costs more than the lookups it serves).
    pub fn with_capacity(n: usize) -> Self {
        RoundMemo {
            windows: Default::default(),
            values: Default::default(),
            orders: Default::default(),
            results: std::cell::RefCell::new(std::collections::HashMap::with_capacity_and_hasher(
                n,
                Default::default(),
            )),
        }
    }

    /// The number of `w` in this memo.
    pub(crate) fn window(&self, w: MemoWindow) -> u32 {
        let mut windows = self.windows.borrow_mut();
        match windows.iter().position(|x| *x == w) {
            Some(i) => i as u32,
            None => {
                windows.push(w);
                (windows.len() - 1) as u32
            }
        }
    }

    /// The result for `series` in window number `window`, if known (`Some(None)`: no value).
    pub(crate) fn get(&self, window: u32, series: u64) -> Option<Option<f64>> {
        let bits = *self.results.borrow().get(&memo_key(series, window)?)?;
        Some((bits != NO_VALUE).then(|| f64::from_bits(bits)))
    }

    pub(crate) fn put(&self, window: u32, series: u64, v: Option<f64>) {
        let bits = v.map_or(NO_VALUE, f64::to_bits);
        if let Some(key) = memo_key(series, window)
            && (v.is_none() || bits != NO_VALUE)
        {
            self.results.borrow_mut().insert(key, bits);
        }
    }

    /// Carries the label orders of the previous round into this one: those the previous round
    /// did not use are dropped here.
    pub fn with_orders(self, mut orders: LabelOrders) -> Self {
        orders.start_round();
        *self.orders.borrow_mut() = orders;
        self
    }

    /// Carries label orders into a round of some of the rules: those it does not use stay for
    /// the rules that did not run (see [`LabelOrders::sweep`]).
    pub fn with_kept_orders(self, orders: LabelOrders) -> Self {
        *self.orders.borrow_mut() = orders;
        self
    }

    /// The label orders, for the next round.
    pub fn take_orders(&self) -> LabelOrders {
        std::mem::take(&mut *self.orders.borrow_mut())
    }

    pub(crate) fn order(&self, ids: IdsHash) -> Option<Order> {
        self.orders.borrow_mut().get(ids)
    }

    pub(crate) fn put_order(&self, ids: IdsHash, order: Order) {
        self.orders.borrow_mut().put(ids, order);
    }

    pub(crate) fn value(&self, key: &(i64, String)) -> Option<eval::Val> {
        self.values.borrow().get(key).cloned()
    }

    pub(crate) fn put_value(&self, key: (i64, String), v: &eval::Val) {
        self.values.borrow_mut().insert(key, v.clone());
    }

    /// Remembered results.
    pub fn len(&self) -> usize {
        self.results.borrow().len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The evaluation engine. Cheap to copy; holds only settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Engine {
    /// How far back an instant selector looks for the latest sample (Prometheus
    /// `--query.lookback-delta`, 5m by default). The window is left-open: a sample exactly this
    /// old is not found.
    pub lookback_delta_ms: i64,
    /// The step of a subquery written without one (`x[1h:]`). Prometheus uses the global
    /// evaluation interval; 1m is its default.
    pub subquery_step_ms: i64,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            lookback_delta_ms: 5 * 60 * 1000,
            subquery_step_ms: 60 * 1000,
        }
    }
}

impl Engine {
    /// Evaluates `expr` at one instant. A vector result carries `t_ms` as every sample's time.
    pub fn instant(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        t_ms: i64,
    ) -> Result<Value, EvalError> {
        self.instant_with(src, expr, t_ms, None, None)
    }

    /// [`instant`](Self::instant) within `limits`: the evaluation stops with
    /// [`EvalError::TooManySamples`] or [`EvalError::Timeout`] once they are exceeded (`src`
    /// counts what it loads against the same limits).
    pub fn instant_limited(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        t_ms: i64,
        limits: &QueryLimits,
    ) -> Result<Value, EvalError> {
        self.instant_with(src, expr, t_ms, None, Some(limits))
    }

    /// [`instant`](Self::instant) inside a rule-evaluation round: range-function results over
    /// single series are shared with the round's other expressions through `memo` (see
    /// [`RoundMemo`]; every expression of one memo must be evaluated at the same `t_ms` for
    /// it to help, and it is correct whatever the times).
    pub fn instant_in_round(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        t_ms: i64,
        memo: &RoundMemo,
    ) -> Result<Value, EvalError> {
        self.instant_with(src, expr, t_ms, Some(memo), None)
    }

    fn instant_with(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        t_ms: i64,
        memo: Option<&RoundMemo>,
        limits: Option<&QueryLimits>,
    ) -> Result<Value, EvalError> {
        let ctx = eval::Ctx {
            src,
            lookback: self.lookback_delta_ms,
            subquery_step: self.subquery_step_ms.max(1),
            query_start: t_ms,
            query_end: t_ms,
            memo,
            limits,
        };
        let ev = eval::Evaluator::new(&ctx, eval::Grid::instant(t_ms));
        let val = ev.eval(expr)?;
        eval::finish_instant(val, t_ms)
    }

    /// Evaluates `expr` at every step from `start_ms` to `end_ms` (inclusive); the result is always
    /// a [`Value::Matrix`] sorted by labels, as in Prometheus' `query_range`.
    pub fn range(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Value, EvalError> {
        self.range_with(src, expr, start_ms, end_ms, step_ms, None)
    }

    /// [`range`](Self::range) within `limits` (see [`Engine::instant_limited`]).
    pub fn range_limited(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        (start_ms, end_ms, step_ms): (i64, i64, i64),
        limits: &QueryLimits,
    ) -> Result<Value, EvalError> {
        self.range_with(src, expr, start_ms, end_ms, step_ms, Some(limits))
    }

    fn range_with(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        limits: Option<&QueryLimits>,
    ) -> Result<Value, EvalError> {
        if step_ms <= 0 {
            return Err(EvalError::InvalidQuery(
                "zero or negative query resolution step widths are not accepted".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(EvalError::InvalidQuery(
                "end timestamp must not be before start time".into(),
            ));
        }
        let kind = eval::static_type(expr);
        if kind != eval::StaticType::Vector && kind != eval::StaticType::Scalar {
            return Err(EvalError::InvalidQuery(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                kind.documented()
            )));
        }
        let ctx = eval::Ctx {
            src,
            lookback: self.lookback_delta_ms,
            subquery_step: self.subquery_step_ms.max(1),
            query_start: start_ms,
            query_end: end_ms,
            memo: None,
            limits,
        };
        let grid = eval::Grid {
            start: start_ms,
            end: end_ms,
            step: step_ms,
        };
        let ev = eval::Evaluator::new(&ctx, grid);
        let val = ev.eval(expr)?;
        eval::finish_range(val, &grid)
    }
}

/// The result of an evaluation, shaped like Prometheus' API result types.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A single number at time `t` (ms).
    Scalar {
        /// Evaluation time in ms.
        t: i64,
        /// The value.
        v: f64,
    },
    /// A string literal at time `t` (ms).
    String {
        /// Evaluation time in ms.
        t: i64,
        /// The string.
        v: String,
    },
    /// An instant vector: one sample per series.
    Vector(Vec<VectorSample>),
    /// A range vector or the result of a range query: several samples per series.
    Matrix(Vec<SeriesSamples>),
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    /// The series' labels (without `__name__` where the expression dropped it).
    pub labels: Labels,
    /// The evaluation time in ms.
    pub t: i64,
    /// The value.
    pub v: f64,
}

/// Why an evaluation failed. Messages follow Prometheus' wording so that users searching for
/// them find the Prometheus documentation and issues.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// Two series of a result would carry the same labels (after `__name__` was dropped, or
    /// produced by `label_replace`/`label_join`).
    #[error("vector cannot contain metrics with the same labelset")]
    DuplicateLabelset,
    /// The "one" side of a vector match has several series with the same matching labels.
    #[error(
        "found duplicate series for the match group {group} on the {side} hand-side of the operation: [{first}, {second}];many-to-many matching not allowed: matching labels must be unique on one side"
    )]
    ManyToMany {
        /// The matching labels, in Prometheus' notation.
        group: String,
        /// `left` or `right`.
        side: &'static str,
        /// The first series found.
        first: String,
        /// The duplicate.
        second: String,
    },
    /// One-to-one matching found several series on the left for one on the right.
    #[error(
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    )]
    ManyToOneNotExplicit,
    /// Many-to-one matching would produce two results with the same labels.
    #[error("multiple matches for labels: grouping labels must ensure unique matches")]
    GroupingNotUnique,
    /// A function or operator got an argument it cannot use (bad regex, label name, factor…).
    #[error("{0}")]
    BadArgument(String),
    /// The query as a whole cannot be evaluated (wrong type for a range query, bad step).
    #[error("{0}")]
    InvalidQuery(String),
    /// The expression uses a function or feature outside the supported set.
    #[error("{0}")]
    Unsupported(String),
    /// The query loaded more samples than its limit (Prometheus' `ErrTooManySamples`).
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The query ran past its deadline (Prometheus' `ErrQueryTimeout`).
    #[error("query timed out in expression evaluation")]
    Timeout,
}

/// Formats labels the way Prometheus' `labels.Labels.String()` does: `{__name__="x", a="b"}`.
/// Used in error messages that users compare with Prometheus'.
pub(crate) struct GoLabels<'a>(pub &'a Labels);

impl fmt::Display for GoLabels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name(), &**l.value())?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests;
