//! One recording rule (Prometheus' `rules/recording.go`): its expression's result, renamed to
//! the rule's metric name and with the rule's labels, becomes series in the head.

use std::collections::HashSet;

use crate::config::RuleConfig;
use crate::series::{Labels, METRIC_NAME};

/// A recording rule.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    /// The metric name it writes.
    pub name: String,
    /// The expression.
    pub expr: promql_parser::parser::Expr,
    /// The expression as written.
    pub expr_source: String,
    /// Labels set on every series it writes (replacing the result's own).
    labels: Vec<(String, String)>,
    /// Its source key in the ingest: the series it wrote at its last evaluation, for their
    /// stale markers when they disappear. Changes when the rule does.
    pub key: String,
}

impl RecordingRule {
    /// The rule of `c`, in the group `group` of `file`.
    pub fn from_config(c: &RuleConfig, file: &str, group: &str) -> Self {
        let labels: Vec<(String, String)> = c
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        RecordingRule {
            name: c.record.clone(),
            expr: c.expr.expr.clone(),
            expr_source: c.expr.source.clone(),
            key: format!(
                "__record__\u{0}{file}\u{0}{group}\u{0}{}\u{0}{}\u{0}{labels:?}",
                c.record, c.expr.source
            ),
            labels,
        }
    }

    /// The series and values one evaluation writes, from the expression's result: the metric
    /// name is the rule's, the rule's labels replace the result's. Fails as Prometheus does
    /// when two results get the same labels or when there are more than `limit` (0 for no
    /// limit).
    pub fn output(
        &self,
        result: Vec<(Labels, f64)>,
        limit: u64,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let mut seen = HashSet::with_capacity(result.len());
        let mut out = Vec::with_capacity(result.len());
        for (l, v) in result {
            let mut l = l.with(METRIC_NAME, self.name.as_str());
            for (k, val) in &self.labels {
                l = l.with(k.as_str(), val.as_str());
            }
            if !seen.insert(l.fingerprint()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            out.push((l, v));
        }
        if limit > 0 && out.len() as u64 > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
