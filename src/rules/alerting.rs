//! One alerting rule and the alerts it holds, with Prometheus' state machine
//! (`rules/alerting.go`): inactive → pending → firing after `for`; a pending alert that clears
//! is dropped silently; a firing alert that clears resolves (after `keep_firing_for`) and is
//! kept for 15 minutes so the resolution is delivered.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alert::{Alert, AlertState};
use crate::config::RuleConfig;
use crate::series::Labels;
use crate::template::{Template, TemplateData};

/// How long a resolved alert is kept (and re-sent) after it resolves, as in Prometheus.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// A state change of one alert, for the history and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The alert's labels.
    pub labels: Labels,
    /// `inactive`, `pending` or `firing`.
    pub from: &'static str,
    /// `pending`, `firing`, `resolved` or `inactive` (a pending alert dropped).
    pub to: &'static str,
    /// The expression's value at that time.
    pub value: f64,
}

#[derive(Debug, Clone)]
struct Active {
    alert: Alert,
    keep_firing_since: Option<DateTime<Utc>>,
}

/// A rule with its templates parsed and its active alerts.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    /// `alertname`.
    pub name: String,
    /// The condition.
    pub expr: promql_parser::parser::Expr,
    /// The condition as written (for links and logs).
    pub expr_source: String,
    hold: Duration,
    keep_firing_for: Duration,
    labels: Vec<(String, Template)>,
    annotations: Vec<(String, Template)>,
    active: HashMap<u64, Active>,
}

impl AlertingRule {
    /// Builds a rule from its config. Templates were validated when the config loaded.
    pub fn from_config(c: &RuleConfig) -> Result<Self, String> {
        let parse = |m: &BTreeMap<String, String>| -> Result<Vec<(String, Template)>, String> {
            m.iter()
                .map(|(k, v)| Template::parse(v).map(|t| (k.clone(), t)))
                .collect()
        };
        Ok(AlertingRule {
            name: c.alert.clone(),
            expr: c.expr.expr.clone(),
            expr_source: c.expr.source.clone(),
            hold: c.for_.get(),
            keep_firing_for: c.keep_firing_for.get(),
            labels: parse(&c.labels)?,
            annotations: parse(&c.annotations)?,
            active: HashMap::new(),
        })
    }

    /// A key that changes when the rule's meaning changes, so a reload keeps the alert state of
    /// rules that did not change (as Prometheus does for identical rules).
    pub fn identity(&self) -> String {
        format!(
            "{}\u{0}{}\u{0}{:?}\u{0}{:?}",
            self.name, self.expr_source, self.hold, self.labels
        )
    }

    /// Takes over the active alerts of the previous instance of the same alert (a reload),
    /// keeping this instance's definition: edited annotations and `keep_firing_for` apply
    /// from the next evaluation.
    pub fn take_state(&mut self, previous: AlertingRule) {
        self.active = previous.active;
    }

    /// Takes over the alerts of a previous instance of the same rule (reload, restart).
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for a in alerts {
            self.active.insert(
                a.labels.fingerprint(),
                Active {
                    alert: a,
                    keep_firing_since: None,
                },
            );
        }
    }

    /// Drops every alert the rule holds, as Prometheus does when a rule exceeds its group's
    /// limit.
    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// The alerts this rule holds: pending, firing, and resolved within the retention.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().map(|a| &a.alert)
    }

    /// Applies one evaluation's result (the query's samples at `ts`) and returns the
    /// transitions. Fails, changing nothing, when two samples give the same alert labels.
    pub fn eval(
        &mut self,
        samples: &[(Labels, f64)],
        ts: DateTime<Utc>,
        external: &BTreeMap<String, String>,
        generator_url: &str,
    ) -> Result<Vec<Transition>, String> {
        let mut transitions = Vec::new();
        let ext: BTreeMap<&str, &str> = external
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut fresh: HashMap<u64, (Labels, BTreeMap<String, String>, f64)> = HashMap::new();
        for (series, value) in samples {
            let data = TemplateData {
                labels: series.iter().map(|l| (&**l.name(), &**l.value())).collect(),
                external_labels: ext.clone(),
                value: *value,
            };
            let expand = |t: &Template| {
                t.render(&data)
                    .unwrap_or_else(|e| format!("<error expanding template: {e}>"))
            };
            let mut labels = series.without_metric_name();
            for (k, t) in &self.labels {
                labels = labels.with(k.as_str(), expand(t));
            }
            labels = labels.with("alertname", self.name.as_str());
            for (k, v) in external {
                if labels.get(k).is_none() {
                    labels = labels.with(k.as_str(), v.as_str());
                }
            }
            let annotations: BTreeMap<String, String> = self
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), expand(t)))
                .collect();
            let fp = labels.fingerprint();
            if fresh.insert(fp, (labels, annotations, *value)).is_some() {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
        }

        for (fp, (labels, annotations, value)) in &fresh {
            match self.active.get_mut(fp) {
                Some(a) if a.alert.state != AlertState::Resolved => {
                    a.alert.value = *value;
                    a.alert.annotations = annotations.clone();
                    a.keep_firing_since = None;
                }
                _ => {
                    transitions.push(Transition {
                        at: ts,
                        labels: labels.clone(),
                        from: "inactive",
                        to: "pending",
                        value: *value,
                    });
                    self.active.insert(
                        *fp,
                        Active {
                            alert: Alert {
                                labels: labels.clone(),
                                annotations: annotations.clone(),
                                state: AlertState::Pending,
                                active_at: ts,
                                fired_at: None,
                                resolved_at: None,
                                value: *value,
                                generator_url: generator_url.to_string(),
                            },
                            keep_firing_since: None,
                        },
                    );
                }
            }
        }

        let keep =
            chrono::Duration::from_std(self.keep_firing_for).unwrap_or(chrono::Duration::MAX);
        let retention =
            chrono::Duration::from_std(RESOLVED_RETENTION).unwrap_or(chrono::Duration::MAX);
        self.active.retain(|fp, a| {
            if fresh.contains_key(fp) {
                return true;
            }
            if a.alert.state == AlertState::Firing && !self.keep_firing_for.is_zero() {
                let since = *a.keep_firing_since.get_or_insert(ts);
                if ts - since < keep {
                    return true;
                }
            }
            match a.alert.state {
                AlertState::Pending => {
                    transitions.push(Transition {
                        at: ts,
                        labels: a.alert.labels.clone(),
                        from: "pending",
                        to: "inactive",
                        value: a.alert.value,
                    });
                    false
                }
                AlertState::Firing => {
                    transitions.push(Transition {
                        at: ts,
                        labels: a.alert.labels.clone(),
                        from: "firing",
                        to: "resolved",
                        value: a.alert.value,
                    });
                    a.alert.state = AlertState::Resolved;
                    a.alert.resolved_at = Some(ts);
                    true
                }
                AlertState::Resolved => a.alert.resolved_at.is_some_and(|r| ts - r <= retention),
            }
        });

        let hold = chrono::Duration::from_std(self.hold).unwrap_or(chrono::Duration::MAX);
        for a in self.active.values_mut() {
            if a.alert.state == AlertState::Pending && ts - a.alert.active_at >= hold {
                a.alert.state = AlertState::Firing;
                a.alert.fired_at = Some(ts);
                transitions.push(Transition {
                    at: ts,
                    labels: a.alert.labels.clone(),
                    from: "pending",
                    to: "firing",
                    value: a.alert.value,
                });
            }
        }
        Ok(transitions)
    }
}

#[cfg(test)]
mod tests;
