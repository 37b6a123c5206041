//! The rules engine: evaluates each rule about once its group's interval, right after the
//! samples it reads land (see [`super::schedule`]). Recording rules write their results into
//! the head as series (so queries, rules, gates and the store see them); alerting rules keep
//! the alert state, write `ALERTS`/`ALERTS_FOR_STATE` into the head, record transitions in the
//! store, and hand the alerts to the dispatcher.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::alerting::{AlertingRule, Transition};
use super::recording::RecordingRule;
use super::schedule::{self, Schedule};
use crate::alert::{Alert, AlertState};
use crate::clock::Clock;
use crate::config::{Config, ConfigDuration, RuleConfig};
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

/// The group name of the config file's `[[rule]]` sections.
pub const CONFIG_GROUP: &str = "default";

/// What a rule does.
#[derive(Debug)]
pub enum RuleKind {
    /// Raises alerts.
    Alerting(AlertingRule),
    /// Writes series.
    Recording(RecordingRule),
}

/// The outcome of a rule's last evaluation, as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// The last evaluation worked.
    Ok,
    /// The last evaluation failed.
    Err,
}

impl Health {
    /// `unknown`, `ok` or `err`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// One rule with its group and the outcome of its last evaluation.
#[derive(Debug)]
pub struct Rule {
    /// Alerting or recording, with its state.
    pub kind: RuleKind,
    /// The rule as configured (what the rules API shows).
    pub config: RuleConfig,
    /// Its group, by index in [`RulesState`]'s groups.
    pub group: usize,
    /// The outcome of its last evaluation.
    pub health: Health,
    /// Why its last evaluation failed; empty when it did not.
    pub last_error: String,
    /// When it was last evaluated.
    pub last_evaluation: Option<chrono::DateTime<chrono::Utc>>,
    /// How long its last evaluation took.
    pub evaluation_time: Duration,
}

impl Rule {
    fn name(&self) -> &str {
        self.config.name()
    }

    fn expr(&self) -> &promql_parser::parser::Expr {
        match &self.kind {
            RuleKind::Alerting(a) => &a.expr,
            RuleKind::Recording(r) => &r.expr,
        }
    }

    /// The alerts this rule holds (none for a recording rule).
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        let a = match &self.kind {
            RuleKind::Alerting(a) => Some(a),
            RuleKind::Recording(_) => None,
        };
        a.into_iter().flat_map(|a| a.alerts())
    }

    fn identity(&self) -> String {
        match &self.kind {
            RuleKind::Alerting(a) => a.identity(),
            RuleKind::Recording(r) => r.key.clone(),
        }
    }
}

/// A group of rules, evaluated at its interval.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// The file it comes from.
    pub file: String,
    /// Its interval.
    pub interval: Duration,
    /// The most alerts or series one of its rules may produce; 0 for no limit.
    pub limit: u64,
    /// When its rules were last evaluated.
    pub last_evaluation: Option<chrono::DateTime<chrono::Utc>>,
    /// How long its rules took at their last evaluations.
    pub evaluation_time: Duration,
}

/// The rules, their groups and their alert state. Lives across reloads: a rule that did not
/// change keeps its pending and firing alerts, as in Prometheus.
#[derive(Default)]
pub struct RulesState {
    rules: Mutex<Vec<Rule>>,
    /// The groups, by index.
    groups: Mutex<Vec<Group>>,
    /// Ingest keys of recording rules a reload removed: their series get stale markers.
    retired: Mutex<Vec<String>>,
    /// Results the last round's memo held per rule evaluated: the next one is sized for them.
    memo_size: std::sync::atomic::AtomicUsize,
    /// The label orders of the rounds' aggregated selections.
    orders: Mutex<LabelOrders>,
}

/// The groups of `config`: the config file's `[[rule]]` first, then the rule files' groups.
fn config_groups(config: &Config) -> Vec<(Group, &[RuleConfig])> {
    let every = config.global.evaluation_interval;
    let group = |name: &str, file: &str, interval: Option<ConfigDuration>, limit: u64| Group {
        name: name.to_string(),
        file: file.to_string(),
        interval: interval.unwrap_or(every).get(),
        limit,
        last_evaluation: None,
        evaluation_time: Duration::ZERO,
    };
    let mut out = Vec::new();
    if !config.rules.is_empty() {
        out.push((
            group(CONFIG_GROUP, &config.origin, None, 0),
            config.rules.as_slice(),
        ));
    }
    for g in &config.rule_groups {
        out.push((
            group(&g.name, &g.file, g.interval, g.limit),
            g.rules.as_slice(),
        ));
    }
    out
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
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut old: BTreeMap<String, Rule> = rules.drain(..).map(|r| (r.identity(), r)).collect();
        groups.clear();
        for (group, configs) in config_groups(config) {
            let index = groups.len();
            for rc in configs {
                let rule = Rule {
                    kind: if rc.is_recording() {
                        RuleKind::Recording(RecordingRule::from_config(
                            rc,
                            &group.file,
                            &group.name,
                        ))
                    } else {
                        match AlertingRule::from_config(rc) {
                            Ok(r) => RuleKind::Alerting(r),
                            Err(e) => {
                                // Templates were validated with the config; this is a bug, not
                                // bad input.
                                error!(rule = %rc.alert, error = %e, "rule cannot be built; skipped");
                                continue;
                            }
                        }
                    },
                    config: rc.clone(),
                    group: index,
                    health: Health::Unknown,
                    last_error: String::new(),
                    last_evaluation: None,
                    evaluation_time: Duration::ZERO,
                };
                rules.push(self.carried_over(rule, &mut old, store));
            }
            groups.push(group);
        }
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        for (_, r) in old {
            if let RuleKind::Recording(r) = r.kind {
                retired.push(r.key);
            }
        }
    }

    /// `rule` with the state of the same rule before a reload (its alerts, its health), else
    /// with the alerts the store kept over a restart.
    fn carried_over(
        &self,
        mut rule: Rule,
        old: &mut BTreeMap<String, Rule>,
        store: Option<&StateStore>,
    ) -> Rule {
        if let Some(prev) = old.remove(&rule.identity()) {
            rule.health = prev.health;
            rule.last_error = prev.last_error;
            rule.last_evaluation = prev.last_evaluation;
            rule.evaluation_time = prev.evaluation_time;
            if let (RuleKind::Alerting(r), RuleKind::Alerting(p)) = (&mut rule.kind, prev.kind) {
                r.take_state(p);
            }
            return rule;
        }
        if let (RuleKind::Alerting(r), Some(store)) = (&mut rule.kind, store) {
            match store.get::<Vec<Alert>>(Kind::AlertState, &state_key(r)) {
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
        rule
    }

    /// Calls `f` with the groups and the rules (each naming its group by index), as they are
    /// between two evaluations: what the rules API shows.
    pub fn inspect<T>(&self, f: impl FnOnce(&[Group], &[Rule]) -> T) -> T {
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        f(&groups, &rules)
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
        let (reads, intervals): (Vec<schedule::Reads>, Vec<Duration>) = {
            let rules = self.state.rules.lock().unwrap_or_else(|p| p.into_inner());
            let groups = self.state.groups.lock().unwrap_or_else(|p| p.into_inner());
            rules
                .iter()
                .map(|r| {
                    let every = groups.get(r.group).map_or(every, |g| g.interval);
                    (schedule::reads(r.expr()), every)
                })
                .unzip()
        };
        // The series of recording rules a reload removed go stale, as in Prometheus.
        let retired =
            std::mem::take(&mut *self.state.retired.lock().unwrap_or_else(|p| p.into_inner()));
        if !retired.is_empty() {
            let now = self.clock.now_ms();
            for key in &retired {
                self.ingest.remove_target(key, now);
            }
        }
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
        for (i, d) in intervals.iter().enumerate() {
            if *d != every {
                schedule.set_interval(i, *d);
            }
        }
        let mut due = vec![true; schedule.len()];
        let mut swept = at;
        loop {
            // Label orders unused for two intervals go: every rule ran meanwhile.
            let sweep = at.duration_since(swept) >= every * 2;
            if sweep {
                swept = at;
            }
            let started = Instant::now();
            let recorded = self.round(&due, sweep).await;
            schedule.evaluated(&due, at);
            if !recorded.is_empty() {
                // The rules after a recording rule in this round read what it wrote: for them
                // its series are not fresh input (the others follow them as any input).
                arrivals.take_into(&mut taken);
                schedule.landed_except(&taken, |i, name| {
                    due.get(i) == Some(&true) && recorded.iter().any(|(j, n)| *j < i && n == name)
                });
            }
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
    /// Returns the recording rules that wrote series, by index, with the name they wrote.
    pub async fn round(&self, due: &[bool], sweep: bool) -> Vec<(usize, String)> {
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
        let (alerts, recorded) = crate::rt::blocking(|| {
            let mut transitions: Vec<Transition> = Vec::new();
            let mut changed_rules: Vec<(String, Vec<Alert>)> = Vec::new();
            let mut recorded: Vec<(usize, String)> = Vec::new();
            let alerts = {
                let mut rules = self.state.rules.lock().unwrap_or_else(|p| p.into_inner());
                let mut groups = self.state.groups.lock().unwrap_or_else(|p| p.into_inner());
                let mut group_time: Vec<Option<Duration>> = vec![None; groups.len()];
                for (index, (rule, _)) in rules
                    .iter_mut()
                    .zip(due)
                    .enumerate()
                    .filter(|(_, (_, d))| **d)
                {
                    let started = Instant::now();
                    let limit = groups.get(rule.group).map_or(0, |g| g.limit);
                    self.telemetry
                        .rule_evaluations_total
                        .with_label_values(&[rule.name()])
                        .inc();
                    let outcome = match engine.instant_in_round(
                        &**self.ingest.head(),
                        rule.expr(),
                        t_ms,
                        &memo,
                    ) {
                        Ok(Value::Vector(v)) => {
                            Ok(v.into_iter().map(|s| (s.labels, s.v)).collect::<Vec<_>>())
                        }
                        Ok(Value::Scalar { v, .. }) => Ok(vec![(Labels::empty(), v)]),
                        Ok(_) => Err("rule result is not a vector or scalar".to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                    .and_then(|samples| match &mut rule.kind {
                        RuleKind::Alerting(a) => {
                            if limit > 0 && samples.len() as u64 > limit {
                                // Prometheus drops the rule's alerts when it exceeds the limit.
                                let n = samples.len();
                                a.clear();
                                changed_rules.push((state_key(a), Vec::new()));
                                return Err(format!("exceeded limit of {limit} with {n} alerts"));
                            }
                            let url = format!(
                                "{base_url}/api/v1/query?query={}",
                                urlencode(&a.expr_source)
                            );
                            let t = a.eval(&samples, now, &self.config.global.labels, &url)?;
                            if !t.is_empty() {
                                changed_rules.push((state_key(a), a.alerts().cloned().collect()));
                            }
                            transitions.extend(t);
                            Ok(())
                        }
                        RuleKind::Recording(r) => {
                            self.record(r, samples, limit, t_ms)?;
                            recorded.push((index, r.name.clone()));
                            Ok(())
                        }
                    });
                    rule.evaluation_time = started.elapsed();
                    rule.last_evaluation = Some(now);
                    match outcome {
                        Ok(()) => {
                            rule.health = Health::Ok;
                            rule.last_error.clear();
                        }
                        Err(e) => self.fail(rule, e),
                    }
                    if let Some(t) = group_time.get_mut(rule.group) {
                        *t = Some(t.unwrap_or_default() + rule.evaluation_time);
                    }
                }
                for (g, took) in groups.iter_mut().zip(group_time) {
                    if let Some(took) = took {
                        g.last_evaluation = Some(now);
                        g.evaluation_time = took;
                    }
                }
                drop(groups);
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
            (alerts, recorded)
        });
        self.dispatch.update_alerts(SOURCE, alerts).await;
        recorded
    }

    /// Writes a recording rule's result at `t_ms` into the head, as one page of its own
    /// source: series it wrote last time and not now get stale markers. A failure writes
    /// nothing and marks nothing stale, as in Prometheus.
    fn record(
        &self,
        rule: &RecordingRule,
        result: Vec<(Labels, f64)>,
        limit: u64,
        t_ms: i64,
    ) -> Result<(), String> {
        let out = rule.output(result, limit)?;
        let mut app = self.ingest.appender(&rule.key, &Labels::empty(), t_ms);
        for (l, v) in out {
            let key = l.to_string();
            app.add_keyed(&key, None, v, |_| l);
        }
        app.commit();
        Ok(())
    }

    fn fail(&self, rule: &mut Rule, e: String) {
        self.telemetry
            .rule_evaluation_failures_total
            .with_label_values(&[rule.name()])
            .inc();
        warn!(rule = %rule.name(), error = %e, "rule evaluation failed");
        rule.health = Health::Err;
        rule.last_error = e;
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
