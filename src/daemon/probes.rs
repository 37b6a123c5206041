//! Where probe results go: the series head (for rules and gates), the store (history), the
//! targets view (API), and — for ProbeFailed changes — the dispatcher, after the probe alert
//! state is persisted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{error, warn};

use crate::alert::Alert;
use crate::config::ProbeConfig;
use crate::dispatch::DispatcherHandle;
use crate::probe::{
    AlertChange, OutcomeSeries, ProbeOutcome, ProbeSink, ProbeStates, ProbeStatesSnapshot,
    outcome_samples,
};
use crate::series::head::{Head, MemSeries};
use crate::store::{AlertTransition, Kind, ProbeLog, ProbeRecord, StateStore};
use crate::targets::{Run, TargetHealth, TargetsView};
use crate::telemetry::Telemetry;

/// The dispatcher source name of ProbeFailed alerts.
pub const SOURCE: &str = "probes";
/// Where the probe alert state is kept in the store.
const STATE_KEY: &str = "__probes__";

/// The daemon's [`ProbeSink`].
pub struct DaemonProbeSink {
    /// Probe series go here.
    pub head: Arc<Head>,
    /// The probe alert state goes here.
    pub state: StateStore,
    /// Probe results go here.
    pub probes: ProbeLog,
    /// Health for the API.
    pub targets: Arc<TargetsView>,
    /// Metrics.
    pub telemetry: Arc<Telemetry>,
    /// ProbeFailed alerts go here.
    pub dispatch: DispatcherHandle,
    /// The alert state of every probe.
    pub states: Arc<ProbeStates>,
    /// `[global].labels`, added to ProbeFailed like to every alert.
    pub external_labels: BTreeMap<String, String>,
    /// Gates fail a watch at once when a probe of their job fires.
    pub gates: crate::deploy::GateHandle,
    /// Each probe's series in the head, found on its first run: later runs append without
    /// building, hashing or comparing label sets. A sink lives for one configuration, so a
    /// probe's name keeps its URL and job here.
    pub series: Mutex<HashMap<String, KeptSeries>>,
}

/// One probe's series in the head, by which series of the outcome they are.
pub type KeptSeries = Vec<(OutcomeSeries, Arc<MemSeries>)>;

/// The key of a probe in the targets view.
pub fn target_key(name: &str) -> String {
    format!("probe/{name}")
}

/// Restores the probe alert state saved before a restart.
pub fn restore(states: &ProbeStates, store: &StateStore) {
    match store.get::<ProbeStatesSnapshot>(Kind::AlertState, STATE_KEY) {
        Ok(Some(s)) => states.restore(s),
        Ok(None) => {}
        Err(e) => warn!(error = %e, "stored probe alert state unreadable; starting empty"),
    }
}

/// ProbeFailed alerts with the external labels, as the dispatcher and the API see them.
pub fn probe_alerts(states: &ProbeStates, external: &BTreeMap<String, String>) -> Vec<Alert> {
    let mut alerts = states.alerts();
    for a in &mut alerts {
        for (k, v) in external {
            if a.labels.get(k).is_none() {
                a.labels = a.labels.with(k.as_str(), v.as_str());
            }
        }
    }
    alerts
}

impl DaemonProbeSink {
    /// Persists the probe alert state and sends the current ProbeFailed alerts to the
    /// dispatcher.
    pub fn publish(&self) {
        if let Err(e) = self
            .state
            .put_durable(Kind::AlertState, STATE_KEY, &self.states.snapshot())
        {
            self.telemetry
                .store_write_failures
                .with_label_values(&["alert_state"])
                .inc();
            error!(error = %e, "cannot persist the probe alert state");
        }
        let alerts = probe_alerts(&self.states, &self.external_labels);
        let dispatch = self.dispatch.clone();
        let gates = self.gates.clone();
        tokio::spawn(async move {
            gates.probe_alerts(alerts.clone()).await;
            dispatch.update_alerts(SOURCE, alerts).await
        });
    }
}

impl ProbeSink for DaemonProbeSink {
    fn record(&self, probe: &ProbeConfig, outcome: &ProbeOutcome) {
        let t = outcome.timestamp_ms();
        let mut appended = 0;
        {
            let mut cache = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            let known = match cache.get_mut(probe.name.as_str()) {
                Some(k) => k,
                None => cache.entry(probe.name.clone()).or_default(),
            };
            for (key, v) in outcome_samples(probe, outcome) {
                let i = match known.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        known.push((key, self.head.series(&key.labels(probe))));
                        known.len() - 1
                    }
                };
                self.head.append_series(&mut known[i].1, t, v);
                appended += 1;
            }
            self.head.arrivals().mark(
                known
                    .iter()
                    .filter_map(|(_, s)| s.labels().metric_name_label().map(|l| l.value())),
            );
        }
        // Every series of the outcome, as a scrape counts every sample of its page.
        self.telemetry
            .head_samples_appended
            .with_label_values(&["probe"])
            .inc_by(appended);
        let rec = ProbeRecord {
            probe: probe.name.clone(),
            t,
            success: outcome.success,
            duration_seconds: crate::probe::expose::seconds(outcome.duration),
            status: outcome.status,
            reason: outcome.reason.clone(),
        };
        if let Err(e) = self.probes.append_probe(&rec) {
            self.telemetry
                .store_write_failures
                .with_label_values(&["probes"])
                .inc();
            warn!(probe = %probe.name, error = %e, "cannot store a probe result");
        }
        let run = Run {
            up: outcome.success,
            error: &outcome.reason,
            at: chrono::DateTime::<chrono::Utc>::from(outcome.at),
            duration_seconds: crate::probe::expose::seconds(outcome.duration),
            samples: None,
        };
        self.targets
            .record_run(&target_key(&probe.name), run, || TargetHealth {
                kind: "probe",
                job: probe.job.clone().unwrap_or_default(),
                probe: Some(probe.name.clone()),
                url: probe.url.clone(),
                health: if run.up { "up" } else { "down" },
                last_error: outcome.reason.clone(),
                last_run: Some(run.at),
                last_duration_seconds: run.duration_seconds,
                samples: None,
            });
    }

    fn alert_changed(&self, _probe: &ProbeConfig, change: &AlertChange) {
        let (a, from, to, at) = match change {
            AlertChange::Fired(a) => {
                warn!(alert = %a.labels, reason = a.annotations.get("reason").map(String::as_str).unwrap_or(""), "probe alert firing");
                (a, "pending", "firing", a.fired_at)
            }
            AlertChange::Resolved(a) => {
                tracing::info!(alert = %a.labels, "probe alert resolved");
                (a, "firing", "resolved", a.resolved_at)
            }
        };
        // The alert history (`/api/v1/history?alert=ProbeFailed`) and the status page's
        // incidents.
        let rec = AlertTransition {
            t: at.unwrap_or_else(chrono::Utc::now).timestamp_millis(),
            alertname: a.name().to_owned(),
            labels: a.labels.clone(),
            from: from.into(),
            to: to.into(),
            value: a.value,
        };
        if let Err(e) = self.state.append_alert_transition_durable(&rec) {
            self.telemetry
                .store_write_failures
                .with_label_values(&["alert_transitions"])
                .inc();
            error!(error = %e, "cannot record a probe alert transition");
        }
        self.publish();
    }
}
