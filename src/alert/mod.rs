//! Alerts as the rest of the daemon sees them, and Alertmanager's label matchers.
//!
//! The rules engine and the probe runner produce [`Alert`]s; the dispatcher routes, groups,
//! silences and inhibits them by [`Matcher`]s; receivers turn them into pages.

mod matcher;

pub(crate) use matcher::one_line_regex_error;
pub use matcher::{MatchOp, Matcher, MatcherError, matches_all};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::series::Labels;

/// Where an alert is in Prometheus' state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds but not yet for `for`.
    Pending,
    /// The condition has held for `for`: this alert pages.
    Firing,
    /// The condition cleared after the alert fired.
    Resolved,
}

impl AlertState {
    /// The lower-case name used in ALERTS{alertstate} and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// Every current alert, from whoever holds them (rules, probes, postflight's own): read by the
/// API and by the `ALERTS` exposer.
pub type AlertsView = std::sync::Arc<dyn Fn() -> Vec<Alert> + Send + Sync>;

/// One alert instance: a label set with its state and annotations.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// Identity of the alert: `alertname` plus the rule's and the series' labels.
    pub labels: Labels,
    /// Templated annotations (`summary`, `reason`, ...).
    pub annotations: BTreeMap<String, String>,
    /// Current state.
    pub state: AlertState,
    /// When the condition started to hold (Prometheus' `activeAt`).
    pub active_at: DateTime<Utc>,
    /// When it started firing, once it has.
    pub fired_at: Option<DateTime<Utc>>,
    /// When it resolved, once it has.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The value of the expression at the last evaluation.
    #[serde(with = "float_text")]
    pub value: f64,
    /// A link back to the source of the alert (rule expression or probe).
    pub generator_url: String,
}

impl Alert {
    /// The alert's name (`alertname` label), or "" when it has none.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }

    /// The stable fingerprint of the alert's labels, as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", self.labels.fingerprint())
    }
}

/// Floats as text in stored JSON, so NaN and ±Inf survive (JSON numbers cannot hold them).
mod float_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<f64>().map_err(serde::de::Error::custom)
    }
}
