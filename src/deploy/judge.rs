//! The judgement, as pure functions of the frozen gate, the baselines, the observed values and
//! the counters so far: no clock, no store, no PromQL. The engine feeds them; the unit tests
//! below pin the semantics documented in [`super`].

use serde::{Deserialize, Serialize};

use crate::config::{GateConfig, RelativeBound};

/// The verdict of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The watch is still running.
    Watching,
    /// The watch ended without a failure and with enough data.
    Pass,
    /// A check failed `consecutive_failures` evaluations in a row, or a probe failed.
    Fail,
    /// Too little data to judge.
    Inconclusive,
    /// A newer deployment of the job replaced this one before its watch ended: recorded,
    /// never notified.
    Superseded,
}

impl Verdict {
    /// The name used in the API, labels and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Watching => "watching",
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Superseded => "superseded",
        }
    }
}

/// The state of one check after its latest evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    /// Not evaluated yet (warmup).
    Pending,
    /// Within its bounds.
    Pass,
    /// Outside its bounds.
    Fail,
    /// Could not be judged: guard or expression empty, NaN, several series, no baseline.
    NoData,
}

impl CheckState {
    /// Every state, for the `gate_check_state` metric.
    pub const ALL: [CheckState; 4] = [
        CheckState::Pending,
        CheckState::Pass,
        CheckState::Fail,
        CheckState::NoData,
    ];

    /// The name used in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Pending => "pending",
            CheckState::Pass => "pass",
            CheckState::Fail => "fail",
            CheckState::NoData => "nodata",
        }
    }
}

/// A bound relative to the baseline, as stored with a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relative {
    /// `"10%"`: at most this fraction above the baseline.
    Percent(f64),
    /// `"+0.002"`: at most this much above the baseline.
    Delta(f64),
}

impl Relative {
    fn bound(self) -> RelativeBound {
        match self {
            Relative::Percent(p) => RelativeBound::Percent(p),
            Relative::Delta(d) => RelativeBound::Delta(d),
        }
    }

    /// As written in the config: `"+10%"`, `"+0.002"`.
    fn describe(self) -> String {
        match self {
            Relative::Percent(p) => format!("+{}%", fmt_num(p * 100.0)),
            Relative::Delta(d) => format!("+{}", fmt_num(d)),
        }
    }
}

impl From<RelativeBound> for Relative {
    fn from(r: RelativeBound) -> Self {
        match r {
            RelativeBound::Percent(p) => Relative::Percent(p),
            RelativeBound::Delta(d) => Relative::Delta(d),
        }
    }
}

/// One check as it was configured when the deployment was recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// Name shown in verdicts.
    pub name: String,
    /// The PromQL expression, as written.
    pub expr: String,
    /// The guard, as written.
    #[serde(default)]
    pub guard: Option<String>,
    /// Absolute upper bound.
    #[serde(default)]
    pub max: Option<f64>,
    /// Absolute lower bound.
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound relative to the baseline.
    #[serde(default)]
    pub max_increase: Option<Relative>,
}

/// The gate as it was when the deployment was recorded: a reload does not change how a
/// running watch is judged, and a restart judges it the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateSnapshot {
    /// Length of the watch, ms.
    pub watch_ms: i64,
    /// Length of the baseline window, ms.
    pub baseline_ms: i64,
    /// No evaluation before this much time after the start, ms.
    pub warmup_ms: i64,
    /// Time between evaluations, ms.
    pub interval_ms: i64,
    /// Failing evaluations in a row that fail the verdict.
    pub consecutive_failures: u32,
    /// Receivers told of the verdict.
    pub notify: Vec<String>,
    /// The checks.
    pub checks: Vec<CheckSpec>,
}

impl GateSnapshot {
    /// Freezes a configured gate.
    pub fn of(g: &GateConfig) -> Self {
        let ms =
            |d: crate::config::ConfigDuration| d.get().as_millis().min(i64::MAX as u128) as i64;
        GateSnapshot {
            watch_ms: ms(g.watch),
            baseline_ms: ms(g.baseline),
            warmup_ms: ms(g.warmup),
            // Validation refuses a zero interval; 1 ms keeps the schedule finite regardless.
            interval_ms: ms(g.interval).max(1),
            consecutive_failures: g.consecutive_failures.max(1),
            notify: g.notify.clone(),
            checks: g
                .check
                .iter()
                .map(|c| CheckSpec {
                    name: c.name.clone(),
                    expr: c.expr.source.clone(),
                    guard: c.guard.as_ref().map(|g| g.source.clone()),
                    max: c.max,
                    min: c.min,
                    max_increase: c.max_increase.map(Relative::from),
                })
                .collect(),
        }
    }

    /// The time of the first evaluation: the first multiple of `interval` after the start that
    /// is not inside the warmup.
    pub fn first_eval_ms(&self, start_ms: i64) -> i64 {
        let k = (self.warmup_ms + self.interval_ms - 1) / self.interval_ms;
        start_ms + k.max(1) * self.interval_ms
    }

    /// Evaluations a full watch makes.
    pub fn planned_evaluations(&self, start_ms: i64) -> u32 {
        let first = self.first_eval_ms(start_ms);
        let end = start_ms + self.watch_ms;
        if first > end {
            0
        } else {
            ((end - first) / self.interval_ms + 1) as u32
        }
    }
}

/// What evaluating a check at one instant gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// One number.
    Value(f64),
    /// No number, and why.
    NoData(String),
}

/// A check's state with its baseline and counters, stored with the deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// The check's name.
    pub name: String,
    /// State after the latest evaluation.
    pub state: CheckState,
    /// Latest value (`None` when there was none).
    pub value: Option<f64>,
    /// Average of the expression over the baseline window; `None` without data.
    pub baseline: Option<f64>,
    /// Instants of the baseline window that gave a value.
    pub baseline_points: u32,
    /// Why the latest state.
    pub reason: String,
    /// Passing evaluations.
    pub passes: u32,
    /// Failing evaluations.
    pub failures: u32,
    /// Evaluations without data.
    pub nodata: u32,
    /// Current run of failing evaluations (NoData neither extends nor breaks it).
    pub streak: u32,
    /// Each evaluation's time, value and state, oldest first (the newest [`MAX_HISTORY`]), so
    /// the dashboard can draw the check over the watch.
    #[serde(default)]
    pub history: Vec<EvalPoint>,
}

/// Most evaluations a check keeps in its history: a day of 60 s evaluations.
pub const MAX_HISTORY: usize = 1440;

/// One evaluation of a check, as kept in [`CheckRecord::history`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// The evaluation instant, ms since the epoch.
    pub t: i64,
    /// The value judged (`None` without data).
    pub value: Option<f64>,
    /// The check's state at that evaluation.
    pub state: CheckState,
}

impl CheckRecord {
    /// A check not evaluated yet, with its baseline.
    pub fn new(name: &str, baseline: Option<f64>, baseline_points: u32) -> Self {
        CheckRecord {
            name: name.to_string(),
            state: CheckState::Pending,
            value: None,
            baseline,
            baseline_points,
            reason: "not evaluated yet".into(),
            passes: 0,
            failures: 0,
            nodata: 0,
            streak: 0,
            history: Vec::new(),
        }
    }

    /// Appends the latest evaluation (made at `t` ms) to the history, dropping the oldest
    /// beyond [`MAX_HISTORY`].
    pub fn remember(&mut self, t: i64) {
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(EvalPoint {
            t,
            value: self.value,
            state: self.state,
        });
    }
}

/// The bounds in force for a check given its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Smallest accepted value.
    pub lower: Option<f64>,
    /// Largest accepted value: the smaller of `max` and the baseline-relative bound.
    pub upper: Option<f64>,
    /// The check has a relative bound but no baseline.
    pub missing_baseline: bool,
}

/// The bounds of `spec` given `baseline`.
pub fn bounds(spec: &CheckSpec, baseline: Option<f64>) -> Bounds {
    let relative = spec
        .max_increase
        .and_then(|r| baseline.map(|b| r.bound().bound(b)));
    let upper = match (spec.max, relative) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Bounds {
        lower: spec.min,
        upper,
        missing_baseline: spec.max_increase.is_some() && baseline.is_none(),
    }
}

/// The bounds in words: `">= 0, <= 0.0011 (baseline 0.001 +10%)"`.
pub fn describe_bounds(spec: &CheckSpec, baseline: Option<f64>) -> String {
    let mut parts = Vec::new();
    if let Some(l) = spec.min {
        parts.push(format!(">= {}", fmt_num(l)));
    }
    let relative = spec
        .max_increase
        .and_then(|r| baseline.map(|b| (r, b, r.bound().bound(b))));
    match (spec.max, relative) {
        (max, Some((r, b, rb))) if max.is_none_or(|m| rb < m) => parts.push(format!(
            "<= {} (baseline {} {})",
            fmt_num(rb),
            fmt_num(b),
            r.describe()
        )),
        (Some(m), _) => parts.push(format!("<= {}", fmt_num(m))),
        (None, _) => {}
    }
    if let Some(r) = spec.max_increase
        && baseline.is_none()
    {
        parts.push(format!("baseline {} (no baseline)", r.describe()));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// Judges one observation of one check: Pass, Fail or NoData with the reason in words.
/// An absolute bound that is crossed fails even when the baseline is missing; a relative bound
/// without a baseline makes the check NoData rather than passing silently.
pub fn judge_check(
    spec: &CheckSpec,
    baseline: Option<f64>,
    obs: &Observation,
) -> (CheckState, Option<f64>, String) {
    let v = match obs {
        Observation::NoData(reason) => return (CheckState::NoData, None, reason.clone()),
        Observation::Value(v) if v.is_nan() => {
            return (
                CheckState::NoData,
                None,
                "the value is NaN (0/0: e.g. no requests)".into(),
            );
        }
        Observation::Value(v) => *v,
    };
    if let Some(max) = spec.max
        && v > max
    {
        return (
            CheckState::Fail,
            Some(v),
            format!("{} is above max {}", fmt_num(v), fmt_num(max)),
        );
    }
    if let Some(min) = spec.min
        && v < min
    {
        return (
            CheckState::Fail,
            Some(v),
            format!("{} is below min {}", fmt_num(v), fmt_num(min)),
        );
    }
    if let Some(r) = spec.max_increase {
        let Some(b) = baseline else {
            return (
                CheckState::NoData,
                Some(v),
                format!(
                    "no baseline: the expression gave no value before the deployment, so max_increase {} cannot be judged",
                    r.describe()
                ),
            );
        };
        let bound = r.bound().bound(b);
        if v > bound {
            return (
                CheckState::Fail,
                Some(v),
                format!(
                    "{} is above baseline {} {} = {}",
                    fmt_num(v),
                    fmt_num(b),
                    r.describe(),
                    fmt_num(bound)
                ),
            );
        }
    }
    (CheckState::Pass, Some(v), "within bounds".into())
}

/// Folds one evaluation (one observation per check, in order) into the counters. Returns the
/// reason of a `fail` verdict when a check has now failed `consecutive_failures` evaluations in
/// a row.
pub fn evaluate(
    gate: &GateSnapshot,
    checks: &mut [CheckRecord],
    evaluations: &mut u32,
    observations: &[Observation],
) -> Option<String> {
    *evaluations += 1;
    let mut failed = None;
    for ((spec, rec), obs) in gate.checks.iter().zip(checks.iter_mut()).zip(observations) {
        let (state, value, reason) = judge_check(spec, rec.baseline, obs);
        rec.state = state;
        rec.value = value;
        rec.reason = reason;
        match state {
            CheckState::Pass => {
                rec.passes += 1;
                rec.streak = 0;
            }
            CheckState::Fail => {
                rec.failures += 1;
                rec.streak += 1;
            }
            CheckState::NoData | CheckState::Pending => rec.nodata += 1,
        }
        if failed.is_none() && state == CheckState::Fail && rec.streak >= gate.consecutive_failures
        {
            failed = Some(format!(
                "check {} failed {} evaluations in a row: {}",
                rec.name, rec.streak, rec.reason
            ));
        }
    }
    failed
}

/// The verdict at the end of the watch when no check failed: `inconclusive` when nothing was
/// evaluated or when some check had no data in more than half of the evaluations, else `pass`.
pub fn conclude(checks: &[CheckRecord], evaluations: u32) -> (Verdict, String) {
    if evaluations == 0 {
        return (
            Verdict::Inconclusive,
            "no evaluation took place during the watch".into(),
        );
    }
    let blind: Vec<String> = checks
        .iter()
        .filter(|c| u64::from(c.nodata) * 2 > u64::from(evaluations))
        .map(|c| format!("{} ({} of {})", c.name, c.nodata, evaluations))
        .collect();
    if !blind.is_empty() {
        return (
            Verdict::Inconclusive,
            format!(
                "no data in more than half of the evaluations for {}",
                blind.join(", ")
            ),
        );
    }
    (
        Verdict::Pass,
        format!("every check held for {evaluations} evaluations"),
    )
}

/// A number for people: up to six significant digits, no trailing zeros, no float noise
/// (`0.005500000000000001` is shown as `0.0055`).
pub fn fmt_num(v: f64) -> String {
    if let Some(s) = crate::template::gofmt::non_finite(v) {
        return s.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-5..15).contains(&mag) {
        let s = format!("{v:.5e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = trim_zeros(m);
        return format!("{m}e{e}");
    }
    let decimals = (5 - mag).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests;
