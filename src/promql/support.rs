//! The supported subset of PromQL, checked before evaluation so that configuration validation
//! can name the first unsupported function or feature.

use promql_parser::parser::Expr;
use promql_parser::parser::token::{T_LIMIT_RATIO, T_LIMITK};

/// Functions the engine evaluates. Everything else the parser knows (`info`, experimental
/// functions such as `histogram_quantiles` or `mad_over_time`) is refused.
pub(crate) const SUPPORTED_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "absent",
    "absent_over_time",
    "timestamp",
    "time",
    "vector",
    "scalar",
    "abs",
    "ceil",
    "floor",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "label_replace",
    "label_join",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
    "histogram_quantile",
    "histogram_fraction",
    // Native-histogram functions: over float samples they return nothing, as in Prometheus.
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
    "minute",
    "hour",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "deg",
    "rad",
    "pi",
    "double_exponential_smoothing",
];

/// Checks that every function and feature of `expr` is supported. The error names the first
/// one that is not, e.g. `function "holt_winters" is not supported`.
pub fn check_supported(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::Aggregate(a) => {
            let op = a.op.id();
            if op == T_LIMITK || op == T_LIMIT_RATIO {
                return Err(format!("aggregation \"{}\" is not supported", a.op));
            }
            if let Some(p) = &a.param {
                check_supported(p)?;
            }
            check_supported(&a.expr)
        }
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier
                && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
            {
                return Err("fill modifiers are not supported".into());
            }
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Subquery(s) => check_supported(&s.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => selector(vs),
        Expr::MatrixSelector(ms) => selector(&ms.vs),
        Expr::Call(c) => {
            if !SUPPORTED_FUNCTIONS.contains(&c.func.name) {
                return Err(format!("function \"{}\" is not supported", c.func.name));
            }
            c.args.args.iter().try_for_each(|a| check_supported(a))
        }
        Expr::Extension(_) => Err("extension expressions are not supported".into()),
    }
}

fn selector(vs: &promql_parser::parser::VectorSelector) -> Result<(), String> {
    if vs.matchers.or_matchers.is_empty() {
        Ok(())
    } else {
        Err("\"or\" inside label matchers is not supported".into())
    }
}

#[cfg(test)]
mod tests;
