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
mod tests {
    use super::*;
    use crate::config::{ConfigDuration, PromqlExpr};

    fn rule(for_s: u64, keep_s: u64) -> AlertingRule {
        let cfg = RuleConfig {
            alert: "HighErrorRate".into(),
            expr: PromqlExpr {
                source: "x > 1".into(),
                expr: promql_parser::parser::parse("x > 1").unwrap(),
            },
            for_: ConfigDuration::secs(for_s),
            keep_firing_for: ConfigDuration::secs(keep_s),
            labels: BTreeMap::from([("severity".into(), "page".into())]),
            annotations: BTreeMap::from([(
                "summary".into(),
                "{{ $labels.job }} at {{ $value }}".into(),
            )]),
        };
        AlertingRule::from_config(&cfg).unwrap()
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn series(v: f64) -> Vec<(Labels, f64)> {
        vec![(Labels::new([("__name__", "x"), ("job", "api")]), v)]
    }

    fn states(r: &AlertingRule) -> Vec<AlertState> {
        r.alerts().map(|a| a.state).collect()
    }

    #[test]
    fn pending_then_firing_after_for() {
        let mut r = rule(60, 0);
        let ext = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let t = r.eval(&series(2.0), at(0), &ext, "").unwrap();
        assert_eq!(t[0].to, "pending");
        let a = r.alerts().next().unwrap().clone();
        assert_eq!(
            a.labels.to_string(),
            r#"{alertname="HighErrorRate", env="prod", job="api", severity="page"}"#
        );
        assert_eq!(a.annotations["summary"], "api at 2");
        assert!(r.eval(&series(3.0), at(30), &ext, "").unwrap().is_empty());
        assert_eq!(states(&r), vec![AlertState::Pending]);
        let t = r.eval(&series(3.0), at(60), &ext, "").unwrap();
        assert_eq!((t[0].from, t[0].to), ("pending", "firing"));
        assert_eq!(
            r.alerts().next().unwrap().annotations["summary"],
            "api at 3"
        );
    }

    #[test]
    fn pending_that_clears_is_dropped_without_resolution() {
        let mut r = rule(60, 0);
        r.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
        let t = r.eval(&[], at(30), &BTreeMap::new(), "").unwrap();
        assert_eq!((t[0].from, t[0].to), ("pending", "inactive"));
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn for_zero_fires_at_once_and_resolution_is_kept_15_minutes() {
        let mut r = rule(0, 0);
        let t = r.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
        assert_eq!(
            t.iter().map(|t| t.to).collect::<Vec<_>>(),
            vec!["pending", "firing"]
        );
        let t = r.eval(&[], at(15), &BTreeMap::new(), "").unwrap();
        assert_eq!((t[0].from, t[0].to), ("firing", "resolved"));
        assert_eq!(states(&r), vec![AlertState::Resolved]);
        r.eval(&[], at(15 + 900), &BTreeMap::new(), "").unwrap();
        assert_eq!(
            states(&r),
            vec![AlertState::Resolved],
            "kept for 15 minutes"
        );
        r.eval(&[], at(15 + 901), &BTreeMap::new(), "").unwrap();
        assert!(states(&r).is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert() {
        let mut r = rule(0, 120);
        r.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
        assert!(
            r.eval(&[], at(60), &BTreeMap::new(), "")
                .unwrap()
                .is_empty()
        );
        assert_eq!(states(&r), vec![AlertState::Firing]);
        // Back before keep_firing_for ran out: the countdown restarts.
        r.eval(&series(2.0), at(90), &BTreeMap::new(), "").unwrap();
        assert!(
            r.eval(&[], at(200), &BTreeMap::new(), "")
                .unwrap()
                .is_empty()
        );
        let t = r.eval(&[], at(320), &BTreeMap::new(), "").unwrap();
        assert_eq!(t[0].to, "resolved");
    }

    #[test]
    fn a_reloaded_rule_keeps_its_alerts_and_applies_its_new_annotations_and_keep_firing_for() {
        let mut old = rule(0, 0);
        old.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
        let active_at = old.alerts().next().unwrap().active_at;
        let mut new = rule(0, 600);
        new.annotations = vec![(
            "summary".into(),
            Template::parse("now {{ $value }} on {{ $labels.job }}").unwrap(),
        )];
        assert_eq!(new.identity(), old.identity(), "the same alert");
        new.take_state(old);
        assert_eq!(states(&new), vec![AlertState::Firing]);
        new.eval(&series(3.0), at(30), &BTreeMap::new(), "")
            .unwrap();
        let a = new.alerts().next().unwrap();
        assert_eq!(a.annotations["summary"], "now 3 on api");
        assert_eq!(a.active_at, active_at, "the alert carried over");
        // The new keep_firing_for holds the cleared alert.
        assert!(
            new.eval(&[], at(60), &BTreeMap::new(), "")
                .unwrap()
                .is_empty()
        );
        assert_eq!(states(&new), vec![AlertState::Firing]);
    }

    #[test]
    fn a_resolved_alert_that_returns_starts_over_as_pending() {
        let mut r = rule(60, 0);
        r.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
        r.eval(&series(2.0), at(60), &BTreeMap::new(), "").unwrap();
        r.eval(&[], at(90), &BTreeMap::new(), "").unwrap();
        let t = r.eval(&series(2.0), at(120), &BTreeMap::new(), "").unwrap();
        assert_eq!(t[0].to, "pending");
        assert_eq!(r.alerts().next().unwrap().active_at, at(120));
    }

    #[test]
    fn duplicate_labelsets_after_templating_are_an_error() {
        let mut r = rule(0, 0);
        let two = vec![
            (Labels::new([("__name__", "x"), ("job", "api")]), 1.0),
            (Labels::new([("__name__", "y"), ("job", "api")]), 2.0),
        ];
        let e = r.eval(&two, at(0), &BTreeMap::new(), "").unwrap_err();
        assert!(e.contains("same labelset"));
        assert_eq!(r.alerts().count(), 0, "nothing changed");
    }
}
