//! The rules engine: evaluates each alerting rule about once an `evaluation_interval`, right
//! after the samples it reads land (see [`super::schedule`]), keeps the alert state, writes
//! `ALERTS`/`ALERTS_FOR_STATE` into the head, records transitions in the store, and hands the
//! alerts to the dispatcher.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::alerting::{AlertingRule, Transition};
use super::schedule::{self, Schedule};
use crate::alert::{Alert, AlertState};
use crate::clock::Clock;
use crate::config::Config;
use crate::dispatch::DispatcherHandle;
use crate::ingest::Ingest;
use crate::liveness::Heartbeat;
use crate::promql::{Engine, LabelOrders, RoundMemo, Value};
use crate::series::Labels;
use crate::series::arrivals::{Arrivals, Landed};
use crate::series::hash::FastMap;
use crate::series::labels::LabelStr;
use crate::store::{AlertTransition, Kind, StateStore};
use crate::telemetry::Telemetry;

/// The dispatcher source name of rule alerts.
pub const SOURCE: &str = "rules";

/// The rules and their alert state. Lives across reloads: a rule that did not change keeps its
/// pending and firing alerts, as in Prometheus.
#[derive(Default)]
pub struct RulesState {
    rules: Mutex<Vec<AlertingRule>>,
    /// Results the last round's memo held per rule evaluated: the next one is sized for them.
    memo_size: std::sync::atomic::AtomicUsize,
    /// The label orders of the rounds' aggregated selections.
    orders: Mutex<LabelOrders>,
}

fn state_key(rule: &AlertingRule) -> String {
    format!(
        "{}/{:016x}",
        rule.name,
        Labels::new([("k", rule.identity())]).fingerprint()
    )
}

impl RulesState {
    /// The rules of `config`, with the alerts they had (from the previous config, else from the
    /// store after a restart).
    pub fn configure(&self, config: &Config, store: Option<&StateStore>) {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let mut old: BTreeMap<String, AlertingRule> =
            rules.drain(..).map(|r| (r.identity(), r)).collect();
        for rc in &config.rules {
            let mut r = match AlertingRule::from_config(rc) {
                Ok(r) => r,
                Err(e) => {
                    // Templates were validated with the config; this is a bug, not bad input.
                    error!(rule = %rc.alert, error = %e, "rule cannot be built; skipped");
                    continue;
                }
            };
            if let Some(prev) = old.remove(&r.identity()) {
                r.take_state(prev);
            } else if let Some(store) = store {
                match store.get::<Vec<Alert>>(Kind::AlertState, &state_key(&r)) {
                    Ok(Some(alerts)) => {
                        if !alerts.is_empty() {
                            info!(rule = %r.name, alerts = alerts.len(), "alert state restored from the store");
                        }
                        r.restore(alerts);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(rule = %r.name, error = %e, "stored alert state unreadable; starting empty")
                    }
                }
            }
            rules.push(r);
        }
    }

    /// Every alert the rules hold (pending, firing, resolved within 15 minutes).
    pub fn alerts(&self) -> Vec<Alert> {
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules.iter().flat_map(|r| r.alerts().cloned()).collect()
    }
}

/// The evaluation loop.
pub struct RulesEngine {
    /// The config in force for this generation.
    pub config: Arc<Config>,
    /// The head rules read, and where ALERTS go.
    pub ingest: Arc<Ingest>,
    /// Rules and alert state, shared with the API.
    pub state: Arc<RulesState>,
    /// Transitions and state snapshots.
    pub store: StateStore,
    /// Where alerts go.
    pub dispatch: DispatcherHandle,
    /// Metrics.
    pub telemetry: Arc<Telemetry>,
    /// Wall time.
    pub clock: Clock,
    /// Proves the loop is alive.
    pub heartbeat: Heartbeat,
    /// Health of targets and probes: the first round waits until each has run once.
    pub targets: Option<Arc<crate::targets::TargetsView>>,
    /// Alerts from other sources (probes) that ALERTS must show too.
    pub extra_alerts: Option<Arc<dyn Fn() -> Vec<Alert> + Send + Sync>>,
}

impl RulesEngine {
    /// Evaluates the rules until `shutdown`, each when [`Schedule`] says. A round that
    /// overruns the interval is counted.
    pub async fn run(self, shutdown: CancellationToken) {
        let every = self
            .config
            .global
            .evaluation_interval
            .get()
            .max(Duration::from_millis(100));
        let reads: Vec<schedule::Reads> = {
            let rules = self.state.rules.lock().unwrap_or_else(|p| p.into_inner());
            rules.iter().map(|r| schedule::reads(&r.expr)).collect()
        };
        let arrivals = self.ingest.head().arrivals();
        arrivals.watch(schedule::watched(&reads));
        // The first round waits until every target and probe has run once (their starts are
        // spread over one interval): evaluating before would see series missing after a
        // restart, resolve firing alerts and page again when the data comes back.
        let g = &self.config.global;
        let warmup = self
            .config
            .jobs
            .iter()
            .map(|j| j.interval(g) + j.timeout(g))
            .chain(
                self.config
                    .probes
                    .iter()
                    .map(|p| p.interval(g) + p.timeout(g)),
            )
            .max()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(300));
        let deadline = tokio::time::Instant::now() + warmup;
        while tokio::time::Instant::now() < deadline
            && !self.targets.as_ref().is_some_and(|t| t.all_ran())
        {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = arrivals.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        // The first round sees everything landed so far.
        let mut taken = Default::default();
        arrivals.take_into(&mut taken);
        let mut at = tokio::time::Instant::now();
        let mut schedule = Schedule::new(&reads, every, at);
        let mut due = vec![true; schedule.len()];
        let mut swept = at;
        loop {
            // Label orders unused for two intervals go: every rule ran meanwhile.
            let sweep = at.duration_since(swept) >= every * 2;
            if sweep {
                swept = at;
            }
            let started = Instant::now();
            self.round(&due, sweep).await;
            schedule.evaluated(&due, at);
            let took = started.elapsed();
            self.telemetry
                .rule_evaluation_duration
                .with_label_values(&[] as &[&str])
                .observe(took.as_secs_f64());
            if took > every {
                self.telemetry
                    .rule_evaluations_missed_total
                    .with_label_values(&[] as &[&str])
                    .inc();
                warn!(took = ?took, interval = ?every, "rule evaluation took longer than the evaluation interval");
            }
            self.heartbeat.beat();
            loop {
                arrivals.take_into(&mut taken);
                let mut now = tokio::time::Instant::now();
                if schedule.landed(&taken) && schedule.next() <= now {
                    now = settle(&mut schedule, &mut taken, arrivals, every).await;
                }
                let next = schedule.next();
                if next <= now {
                    at = now;
                    due = schedule.due(now);
                    break;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = arrivals.notified() => {}
                    _ = tokio::time::sleep_until(next) => {}
                }
            }
        }
    }

    /// One evaluation at the current time of the rules `due` marks (by index), and `ALERTS`
    /// of every alert. `sweep` drops the label orders no round used since the last sweep.
    pub async fn round(&self, due: &[bool], sweep: bool) {
        let now = self.clock.now();
        let t_ms = now.timestamp_millis();
        let engine = Engine::default();
        let evaluated = due.iter().filter(|d| **d).count();
        // Every rule of the round is evaluated at `t_ms`: they share range-function results.
        let mut orders =
            std::mem::take(&mut *self.state.orders.lock().unwrap_or_else(|p| p.into_inner()));
        if sweep {
            orders.sweep();
        }
        let memo =
            RoundMemo::with_capacity(self.state.memo_size.load(Ordering::Relaxed) * evaluated)
                .with_kept_orders(orders);
        let base_url = self.config.server.link_base();
        // Milliseconds of CPU over tens of thousands of series, and fsyncs on transitions:
        // off the runtime's worker, so that probes keep their timing.
        let alerts = crate::rt::blocking(|| {
            let mut transitions: Vec<Transition> = Vec::new();
            let mut changed_rules: Vec<(String, Vec<Alert>)> = Vec::new();
            let alerts = {
                let mut rules = self.state.rules.lock().unwrap_or_else(|p| p.into_inner());
                for (rule, _) in rules.iter_mut().zip(due).filter(|(_, d)| **d) {
                    self.telemetry
                        .rule_evaluations_total
                        .with_label_values(&[rule.name.as_str()])
                        .inc();
                    let samples = match engine.instant_in_round(
                        &**self.ingest.head(),
                        &rule.expr,
                        t_ms,
                        &memo,
                    ) {
                        Ok(Value::Vector(v)) => {
                            v.into_iter().map(|s| (s.labels, s.v)).collect::<Vec<_>>()
                        }
                        Ok(Value::Scalar { v, .. }) => vec![(Labels::empty(), v)],
                        Ok(_) => {
                            self.fail(rule, "rule result is not a vector or scalar");
                            continue;
                        }
                        Err(e) => {
                            self.fail(rule, &e.to_string());
                            continue;
                        }
                    };
                    let url = format!(
                        "{base_url}/api/v1/query?query={}",
                        urlencode(&rule.expr_source)
                    );
                    match rule.eval(&samples, now, &self.config.global.labels, &url) {
                        Ok(t) => {
                            if !crate::logs::matches_read(&rule.expr).is_empty() {
                                // The lines behind a count of log matches, in the page.
                                let expr = rule.expr.clone();
                                rule.annotate(crate::logs::EXCERPT_ANNOTATION, |labels| {
                                    crate::logs::excerpt(
                                        &self.store,
                                        &self.config,
                                        &expr,
                                        Some(labels),
                                    )
                                });
                            }
                            if !t.is_empty() {
                                changed_rules
                                    .push((state_key(rule), rule.alerts().cloned().collect()));
                            }
                            transitions.extend(t);
                        }
                        Err(e) => self.fail(rule, &e),
                    }
                }
                if let Some(per_rule) = memo.len().checked_div(evaluated) {
                    self.state.memo_size.store(per_rule, Ordering::Relaxed);
                }
                *self.state.orders.lock().unwrap_or_else(|p| p.into_inner()) = memo.take_orders();
                rules
                    .iter()
                    .flat_map(|r| r.alerts().cloned())
                    .collect::<Vec<Alert>>()
            };

            for t in &transitions {
                let name = t.labels.get("alertname").unwrap_or("");
                match t.to {
                    "firing" => warn!(alert = %t.labels, value = t.value, "alert firing"),
                    "resolved" => info!(alert = %t.labels, "alert resolved"),
                    _ => debug!(alert = %t.labels, from = t.from, to = t.to, "alert state"),
                }
                let rec = AlertTransition {
                    t: t.at.timestamp_millis(),
                    alertname: name.to_string(),
                    labels: t.labels.clone(),
                    from: t.from.to_string(),
                    to: t.to.to_string(),
                    value: t.value,
                };
                if let Err(e) = self.store.append_alert_transition_durable(&rec) {
                    self.telemetry
                        .store_write_failures
                        .with_label_values(&["alert_transitions"])
                        .inc();
                    error!(error = %e, "cannot record an alert transition");
                }
            }
            // The state that decides pages is durable before the dispatcher hears of it.
            for (key, alerts) in &changed_rules {
                if let Err(e) = self.store.put_durable(Kind::AlertState, key, alerts) {
                    self.telemetry
                        .store_write_failures
                        .with_label_values(&["alert_state"])
                        .inc();
                    error!(error = %e, "cannot persist alert state");
                }
            }

            let mut shown = alerts.clone();
            if let Some(extra) = &self.extra_alerts {
                shown.extend(extra());
            }
            write_alerts_series(&self.ingest, &shown, t_ms);
            alerts
        });
        self.dispatch.update_alerts(SOURCE, alerts).await;
    }

    fn fail(&self, rule: &AlertingRule, e: &str) {
        self.telemetry
            .rule_evaluation_failures_total
            .with_label_values(&[rule.name.as_str()])
            .inc();
        warn!(rule = %rule.name, error = %e, "rule evaluation failed");
    }
}

/// Once a batch landed that a rule is due for, waits until no more land for a few
/// milliseconds (targets scraped in the same instant answer within them), at most a
/// twentieth of the interval: a burst costs one round, which sees all of it. Returns the time
/// it stopped.
async fn settle(
    schedule: &mut Schedule,
    taken: &mut FastMap<LabelStr, Landed>,
    arrivals: &Arrivals,
    every: Duration,
) -> tokio::time::Instant {
    const QUIET: Duration = Duration::from_millis(5);
    let until = tokio::time::Instant::now() + (every / 20).min(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = arrivals.notified() => {
                arrivals.take_into(taken);
                schedule.landed(taken);
            }
            _ = tokio::time::sleep(QUIET) => break,
        }
        if tokio::time::Instant::now() >= until {
            break;
        }
    }
    tokio::time::Instant::now()
}

/// Writes `ALERTS{alertname, alertstate, ...} 1` and `ALERTS_FOR_STATE{...} <activeAt>` for
/// every pending and firing alert, as Prometheus does; series of alerts that ended go stale.
pub fn write_alerts_series(ingest: &Ingest, alerts: &[Alert], t_ms: i64) {
    let mut app = ingest.appender("__alerts__", &Labels::empty(), t_ms);
    for a in alerts {
        if a.state == AlertState::Resolved {
            continue;
        }
        let l = a
            .labels
            .with("__name__", "ALERTS")
            .with("alertstate", a.state.as_str());
        let key = l.to_string();
        app.add_keyed(&key, None, 1.0, |_| l.clone());
        let f = a.labels.with("__name__", "ALERTS_FOR_STATE");
        let key = f.to_string();
        app.add_keyed(&key, None, a.active_at.timestamp() as f64, |_| f.clone());
    }
    app.commit();
}

/// Percent-encodes a query parameter.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `ALERTS` and `ALERTS_FOR_STATE` on `/metrics`, from the alerts the daemon holds now.
pub struct AlertsExposer {
    /// Every current alert (rules and probes).
    pub alerts: crate::alert::AlertsView,
}

impl crate::telemetry::Exposer for AlertsExposer {
    fn expose(&self, out: &mut String) {
        let mut alerts: Vec<Alert> = (self.alerts)()
            .into_iter()
            .filter(|a| a.state != AlertState::Resolved)
            .collect();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        out.push_str("# HELP ALERTS Alerts that are pending or firing, as Prometheus writes them.\n# TYPE ALERTS gauge\n");
        let mut owned: Vec<(String, String)> = Vec::new();
        for a in &alerts {
            owned.clear();
            owned.extend(
                a.labels
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string())),
            );
            owned.push(("alertstate".into(), a.state.as_str().into()));
            owned.sort();
            let pairs: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            crate::telemetry::write_sample(out, "ALERTS", &pairs, 1.0);
        }
        out.push_str("# HELP ALERTS_FOR_STATE When each pending or firing alert became active (Unix seconds).\n# TYPE ALERTS_FOR_STATE gauge\n");
        for a in &alerts {
            let pairs: Vec<(&str, &str)> = a
                .labels
                .iter()
                .map(|l| (&**l.name(), &**l.value()))
                .collect();
            crate::telemetry::write_sample(
                out,
                "ALERTS_FOR_STATE",
                &pairs,
                a.active_at.timestamp() as f64,
            );
        }
    }
}
