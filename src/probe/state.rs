//! Per-probe state: the built-in `ProbeFailed` alert, and the latest outcome that `/metrics` and
//! the API show.
//!
//! `ProbeFailed` follows the rules engine's shape, with consecutive failures in the role of `for`:
//! - the first failure makes the alert **pending** (shown by [`ProbeStates::alerts`] and in
//!   `ALERTS{alertstate="pending"}`, never notified);
//! - the `failure_threshold`-th consecutive failure makes it **firing** ([`AlertChange::Fired`]);
//! - `success_threshold` consecutive successes **resolve** a firing alert
//!   ([`AlertChange::Resolved`]); a pending alert that clears is dropped silently, as in
//!   Prometheus.
//!
//! With `alert = false` the probe never fires (and an alert that fired before a reload set it
//! resolves). The alert carries exactly the labels `{alertname="ProbeFailed", probe, job (when
//! set), severity}`; the daemon adds `global.labels` like it does for rule alerts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::ProbeOutcome;
use crate::alert::{Alert, AlertState};
use crate::config::ProbeConfig;
use crate::series::Labels;

/// The name of the built-in probe alert.
pub const PROBE_ALERT_NAME: &str = "ProbeFailed";

/// A change of a probe's alert that the dispatcher must hear about.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertChange {
    /// The probe reached `failure_threshold` consecutive failures: the alert fires (state
    /// [`AlertState::Firing`]).
    Fired(Alert),
    /// A firing probe recovered (or its alert was switched off or the probe removed): state
    /// [`AlertState::Resolved`], `resolved_at` set.
    Resolved(Alert),
}

impl AlertChange {
    /// The alert, in its new state.
    pub fn alert(&self) -> &Alert {
        match self {
            AlertChange::Fired(a) | AlertChange::Resolved(a) => a,
        }
    }
}

/// What the state keeps of a probe's config, so alerts and series can be built without it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ProbeIdent {
    /// `url`, the `instance` label.
    pub url: String,
    /// The `job` label, if set.
    pub job: Option<String>,
    /// `severity` label of the alert.
    pub severity: String,
    /// Whether the probe raises ProbeFailed.
    pub alert: bool,
}

impl ProbeIdent {
    fn matches(&self, cfg: &ProbeConfig) -> bool {
        self.url == cfg.url
            && self.job == cfg.job
            && self.severity == cfg.severity
            && self.alert == cfg.alert
    }
    fn from_cfg(cfg: &ProbeConfig) -> Self {
        ProbeIdent {
            url: cfg.url.clone(),
            job: cfg.job.clone(),
            severity: cfg.severity.clone(),
            alert: cfg.alert,
        }
    }
}

/// One probe's state.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// Labels and switches copied from the config at the last observation.
    pub ident: ProbeIdent,
    /// Failures in a row (0 after a success).
    consecutive_failures: u32,
    /// Successes in a row (0 after a failure).
    consecutive_successes: u32,
    /// When the current run of failures started: the alert's `activeAt`.
    failing_since: Option<DateTime<Utc>>,
    /// The latest failure reason, kept while failing.
    last_reason: String,
    /// The alert while it fires.
    firing: Option<Alert>,
    /// The latest outcome, for `/metrics` and the API.
    pub latest: Option<ProbeOutcome>,
    /// Ticks skipped because the previous run was still going.
    pub skipped: u64,
    /// Runs that succeeded since start (`postflight_probes_total{result="success"}`).
    pub succeeded: u64,
    /// Runs that failed since start (`postflight_probes_total{result="failure"}`).
    pub failed: u64,
}

/// The state of every probe. Thread-safe: the runner's probe tasks observe outcomes, the API and
/// `/metrics` read, the daemon snapshots.
#[derive(Debug, Default)]
pub struct ProbeStates {
    /// By probe name. Hashed, not ordered: every probe run looks its entry up, and a B-tree of
    /// a thousand string keys makes that a chain of cache misses.
    /// Readers that need an order (exposition, alerts, the snapshot) sort with [`by_name`].
    /// Boxed: a table of a thousand probes has 2,048 slots, and an empty slot then costs a
    /// pointer instead of a whole entry.
    pub(crate) entries: Mutex<HashMap<String, Box<Entry>>>,
}

/// The entries sorted by probe name.
pub(crate) fn by_name(entries: &HashMap<String, Box<Entry>>) -> Vec<(&String, &Entry)> {
    let mut v: Vec<(&String, &Entry)> = entries.iter().map(|(n, e)| (n, &**e)).collect();
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    v
}

impl ProbeStates {
    /// No state.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Box<Entry>>> {
        // A panic while holding the lock leaves plain counters behind, still consistent enough
        // to go on with: never let one poisoned lock stop every probe.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one outcome of `cfg` and advances its alert. Returns the change to notify, if any.
    pub fn observe(&self, cfg: &ProbeConfig, outcome: &ProbeOutcome) -> Option<AlertChange> {
        let now: DateTime<Utc> = outcome.at.into();
        let mut entries = self.lock();
        // Look up before inserting: the common case allocates no key.
        if !entries.contains_key(&cfg.name) {
            entries.insert(cfg.name.clone(), Box::default());
        }
        let e = entries.get_mut(&cfg.name)?; // present: inserted just above
        if !e.ident.matches(cfg) {
            e.ident = ProbeIdent::from_cfg(cfg);
        }
        e.latest = Some(outcome.clone());
        if outcome.success {
            e.succeeded += 1;
        } else {
            e.failed += 1;
        }
        let change = if outcome.success {
            e.consecutive_failures = 0;
            e.consecutive_successes = e.consecutive_successes.saturating_add(1);
            e.failing_since = None;
            e.last_reason.clear();
            if e.consecutive_successes >= cfg.success_threshold.max(1) {
                e.firing
                    .take()
                    .map(|a| AlertChange::Resolved(resolve(a, now)))
            } else {
                None
            }
        } else {
            e.consecutive_successes = 0;
            e.consecutive_failures = e.consecutive_failures.saturating_add(1);
            e.failing_since.get_or_insert(now);
            e.last_reason.clone_from(&outcome.reason);
            if let Some(a) = &mut e.firing {
                // Keep the page's reason current; not a change to notify by itself.
                set_reason(a, &cfg.name, &e.last_reason);
                a.value = f64::from(e.consecutive_failures);
                None
            } else if cfg.alert && e.consecutive_failures >= cfg.failure_threshold.max(1) {
                let mut a = build_alert(&cfg.name, e, AlertState::Firing);
                a.fired_at = Some(now);
                e.firing = Some(a.clone());
                Some(AlertChange::Fired(a))
            } else {
                None
            }
        };
        if change.is_none() && !cfg.alert {
            // `alert = false` after a reload: a page already out must not stay open forever.
            return e
                .firing
                .take()
                .map(|a| AlertChange::Resolved(resolve(a, now)));
        }
        change
    }

    /// Every active ProbeFailed alert: firing ones, and pending ones for probes that failed
    /// fewer than `failure_threshold` times in a row. Sorted by probe name.
    pub fn alerts(&self) -> Vec<Alert> {
        by_name(&self.lock())
            .into_iter()
            .filter_map(|(name, e)| match &e.firing {
                Some(a) => Some(a.clone()),
                None if e.ident.alert && e.consecutive_failures > 0 => {
                    Some(build_alert(name, e, AlertState::Pending))
                }
                None => None,
            })
            .collect()
    }

    /// The latest outcome of each probe, by name.
    pub fn latest(&self) -> Vec<(String, ProbeOutcome)> {
        by_name(&self.lock())
            .into_iter()
            .filter_map(|(n, e)| e.latest.clone().map(|o| (n.clone(), o)))
            .collect()
    }

    /// Counts a tick of `probe` skipped because its previous run was still going.
    pub(crate) fn count_skip(&self, probe: &str) {
        if let Some(e) = self.lock().get_mut(probe) {
            e.skipped += 1;
        }
    }

    /// Makes sure `cfg` has an entry (so skips are counted before its first outcome).
    pub(crate) fn register(&self, cfg: &ProbeConfig) {
        let mut entries = self.lock();
        if !entries.contains_key(&cfg.name) {
            let e = entries.entry(cfg.name.clone()).or_default();
            e.ident = ProbeIdent::from_cfg(cfg);
        }
    }

    /// Drops the state of probes not in `names` (after a reload). Their firing alerts are
    /// returned resolved, so no page stays open for a probe that no longer exists.
    pub fn retain<S: AsRef<str>>(&self, names: &[S]) -> Vec<AlertChange> {
        let now = Utc::now();
        let mut out = Vec::new();
        self.lock().retain(|name, e| {
            let keep = names.iter().any(|n| n.as_ref() == name);
            if !keep && let Some(a) = e.firing.take() {
                out.push(AlertChange::Resolved(resolve(a, now)));
            }
            keep
        });
        out
    }

    /// The alert state of every probe, for the store.
    pub fn snapshot(&self) -> ProbeStatesSnapshot {
        let probes = by_name(&self.lock())
            .into_iter()
            .map(|(name, e)| ProbeStateRecord {
                name: name.clone(),
                url: e.ident.url.clone(),
                job: e.ident.job.clone(),
                severity: e.ident.severity.clone(),
                alert: e.ident.alert,
                consecutive_failures: e.consecutive_failures,
                consecutive_successes: e.consecutive_successes,
                failing_since_ms: e.failing_since.map(|t| t.timestamp_millis()),
                last_reason: e.last_reason.clone(),
                fired_at_ms: e
                    .firing
                    .as_ref()
                    .and_then(|a| a.fired_at)
                    .map(|t| t.timestamp_millis()),
            })
            .collect();
        ProbeStatesSnapshot { probes }
    }

    /// Replaces the state with a snapshot taken before a restart. Firing alerts come back firing
    /// with their original `activeAt`/`firedAt`, so the dispatcher sees no new alert and does
    /// not page twice. Latest outcomes are not part of the snapshot (the store keeps history).
    pub fn restore(&self, snap: ProbeStatesSnapshot) {
        let mut entries = self.lock();
        entries.clear();
        for r in snap.probes {
            let mut e = Entry {
                ident: ProbeIdent {
                    url: r.url,
                    job: r.job,
                    severity: r.severity,
                    alert: r.alert,
                },
                consecutive_failures: r.consecutive_failures,
                consecutive_successes: r.consecutive_successes,
                failing_since: r.failing_since_ms.and_then(from_ms),
                last_reason: r.last_reason,
                ..Entry::default()
            };
            if let Some(fired) = r.fired_at_ms.and_then(from_ms) {
                if e.failing_since.is_none() {
                    e.failing_since = Some(fired);
                }
                let mut a = build_alert(&r.name, &e, AlertState::Firing);
                a.fired_at = Some(fired);
                e.firing = Some(a);
            }
            entries.insert(r.name, Box::new(e));
        }
    }
}

/// The persisted form of [`ProbeStates`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeStatesSnapshot {
    /// One record per probe.
    pub probes: Vec<ProbeStateRecord>,
}

/// One probe's persisted alert state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeStateRecord {
    /// Probe name.
    pub name: String,
    /// Probe URL (generator URL of the alert).
    pub url: String,
    /// `job` label, if set.
    #[serde(default)]
    pub job: Option<String>,
    /// `severity` label.
    pub severity: String,
    /// Whether the probe raises ProbeFailed.
    pub alert: bool,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Successes in a row.
    pub consecutive_successes: u32,
    /// Start of the current failing run, ms since the epoch.
    #[serde(default)]
    pub failing_since_ms: Option<i64>,
    /// The latest failure reason.
    #[serde(default)]
    pub last_reason: String,
    /// When the alert fired, if it is firing (ms since the epoch).
    #[serde(default)]
    pub fired_at_ms: Option<i64>,
}

fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn build_alert(name: &str, e: &Entry, state: AlertState) -> Alert {
    let labels = Labels::new([
        ("alertname", PROBE_ALERT_NAME),
        ("probe", name),
        ("job", e.ident.job.as_deref().unwrap_or("")),
        ("severity", e.ident.severity.as_str()),
    ]);
    let mut a = Alert {
        labels,
        annotations: BTreeMap::new(),
        state,
        active_at: e.failing_since.unwrap_or_else(Utc::now),
        fired_at: None,
        resolved_at: None,
        // The number of failures in a row: what `failure_threshold` compares against.
        value: f64::from(e.consecutive_failures),
        generator_url: e.ident.url.clone(),
    };
    set_reason(&mut a, name, &e.last_reason);
    a
}

fn set_reason(a: &mut Alert, name: &str, reason: &str) {
    a.annotations.insert("reason".into(), reason.to_string());
    a.annotations
        .insert("summary".into(), format!("probe {name} failing: {reason}"));
}

fn resolve(mut a: Alert, now: DateTime<Utc>) -> Alert {
    a.state = AlertState::Resolved;
    a.resolved_at = Some(now);
    a
}

#[cfg(test)]
mod tests;
