//! Turning a check's PromQL into one number (or a reason why not), at an instant and averaged
//! over the baseline window.

use crate::promql::{Engine, Expr, Value};
use crate::series::SeriesSource;

use super::judge::{CheckSpec, Observation};

/// Most instants evaluated for one baseline: a 7-day baseline at a 30 s interval would be 20,160
/// evaluations; past this cap the step grows instead.
pub const MAX_BASELINE_STEPS: i64 = 480;

/// A check with its expressions parsed.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The expression, or why it does not parse (possible only for a deployment stored by
    /// another version).
    pub expr: Result<Expr, String>,
    /// The guard, if any.
    pub guard: Option<Result<Expr, String>>,
}

impl Compiled {
    /// Parses the stored sources of a check.
    pub fn parse(spec: &CheckSpec) -> Self {
        Compiled {
            expr: crate::promql::parse(&spec.expr),
            guard: spec.guard.as_deref().map(crate::promql::parse),
        }
    }
}

/// The check at `t_ms`: its single value, or NoData with the reason (guard empty, expression
/// empty, several series, an evaluation error). NaN is passed on as a value; the judgement
/// turns it into NoData.
pub fn observe(engine: &Engine, src: &dyn SeriesSource, c: &Compiled, t_ms: i64) -> Observation {
    if let Some(guard) = &c.guard {
        let guard = match guard {
            Ok(g) => g,
            Err(e) => return Observation::NoData(format!("the guard does not parse: {e}")),
        };
        match engine.instant(src, guard, t_ms) {
            Ok(Value::Vector(v)) if v.is_empty() => {
                return Observation::NoData("the guard is empty (not enough traffic)".into());
            }
            Ok(_) => {}
            Err(e) => return Observation::NoData(format!("the guard failed: {e}")),
        }
    }
    let expr = match &c.expr {
        Ok(e) => e,
        Err(e) => return Observation::NoData(format!("the expression does not parse: {e}")),
    };
    match engine.instant(src, expr, t_ms) {
        Ok(Value::Scalar { v, .. }) => Observation::Value(v),
        Ok(Value::Vector(v)) => match v.as_slice() {
            [] => Observation::NoData("the expression returned no series".into()),
            [one] => Observation::Value(one.v),
            many => Observation::NoData(format!(
                "the expression returned {} series; a check needs exactly one (aggregate it, e.g. with sum or max)",
                many.len()
            )),
        },
        Ok(_) => Observation::NoData("the expression does not give a number".into()),
        Err(e) => Observation::NoData(format!("the expression failed: {e}")),
    }
}

/// The baseline of a check: the average of its non-NaN single values at instants `step_ms`
/// apart across `(start_ms - window_ms, start_ms]`, with the number of instants that gave one.
/// Instants where the guard is empty are left out, like in the watch.
pub fn baseline(
    engine: &Engine,
    src: &dyn SeriesSource,
    c: &Compiled,
    start_ms: i64,
    window_ms: i64,
    step_ms: i64,
) -> (Option<f64>, u32) {
    if window_ms <= 0 {
        return (None, 0);
    }
    let step = step_ms
        .max(1)
        .max((window_ms + MAX_BASELINE_STEPS - 1) / MAX_BASELINE_STEPS);
    let (mut sum, mut n) = (0.0, 0u32);
    let mut t = start_ms;
    while t > start_ms - window_ms {
        if let Observation::Value(v) = observe(engine, src, c, t)
            && v.is_finite()
        {
            sum += v;
            n += 1;
        }
        t -= step;
    }
    if n == 0 {
        (None, 0)
    } else {
        (Some(sum / f64::from(n)), n)
    }
}

#[cfg(test)]
mod tests;
