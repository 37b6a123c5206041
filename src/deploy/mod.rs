//! Post-deployment gates (SPEC §2 `[[gate]]`, §3): a deployment of a job starts a watch of its
//! checks against bounds and against the job's own recent past, and ends in a verdict that is
//! stored, exported and notified.
//!
//! [`GateEngine`] owns every deployment; the API and the CLI talk to it through the cloneable
//! [`GateHandle`]. The judgement itself is a set of pure functions in [`judge`]; [`observe`]
//! turns a check's PromQL into one number; [`verdict`] builds the `DeploymentVerdict`
//! notification; [`persist`] is the storage boundary.
//!
//! # Gate semantics
//!
//! - **Recording.** `POST /api/v1/deployments` (or `postflight deploy`) with a job that has a
//!   `[[gate]]` starts a watch and answers 201 with the deployment's id once the deployment is
//!   on disk, after queuing the alert `DeploymentStarted` to the gate's `notify` receivers
//!   (see [`verdict::started`]). A job without a gate is 404. A new deployment of a job that
//!   already has one under watch supersedes it, as Argo Rollouts and Flagger abort an analysis
//!   when a new rollout starts: the earlier one ends with the verdict `superseded` (reason
//!   "superseded by …"), counted in `postflight_deployments_total` and never notified. With
//!   `"supersede": false` the answer is 409 with the id under watch instead.
//! - **Frozen gate.** A deployment is judged by the gate as it was when it was recorded (bounds,
//!   intervals, receivers and expressions are stored with it). A reload applies to the next
//!   deployment; removing a gate does not cancel a running watch.
//! - **Baseline.** For each check, the check expression (with its guard) is evaluated at
//!   instants one gate `interval` apart across `(start - baseline, start]` (at most 480 instants;
//!   the step grows for longer windows), and the non-NaN single values are averaged. It is
//!   computed once, at the deployment, and stored: a restart never recomputes it. A check with a
//!   relative bound (`max_increase`) and no baseline value is NoData at every evaluation, never a
//!   silent pass; an absolute bound it crosses still fails it.
//! - **Bounds.** `max` and `min` are absolute and inclusive (a value equal to `max` passes).
//!   `max_increase = "10%"` allows up to baseline + 10% of |baseline|; `"+0.002"` allows up to
//!   baseline + 0.002. With both `max` and `max_increase`, the tighter upper bound applies.
//! - **Schedule.** Evaluations happen at `start + k × interval` (k ≥ 1) that are not inside the
//!   warmup, up to and including `start + watch`. With warmup 1m, interval 30s and watch 30m
//!   that is 59 evaluations, the first one minute after the deployment.
//! - **Each evaluation** judges every check: NoData when the guard is empty, the expression is
//!   empty, gives NaN (0/0, no requests), gives more than one series (the reason says so: use an
//!   aggregation), fails to evaluate, or has a relative bound without a baseline; else Fail when
//!   outside its bounds, else Pass.
//! - **Fail** as soon as one check has failed `consecutive_failures` evaluations in a row. A Pass
//!   resets the run; a NoData neither extends nor breaks it (a scrape gap between two failures
//!   does not hide a regression). A `ProbeFailed` alert for the job's probes (label `job`) that
//!   fires during the watch fails it at once; one that was already firing when the deployment
//!   was recorded does not (deploying the fix for a broken service must be possible).
//! - **At the end of the watch:** `inconclusive` when no evaluation took place, or when any
//!   check had no data in more than half of the evaluations (a gate passes only when every
//!   check was actually judged most of the time); otherwise `pass`.
//! - **Notification.** Every verdict is queued durably (through the outbox, with a log entry
//!   `deploy\x1f<id>\x1f<receiver>`, so it is sent once even across a restart) to each of the
//!   gate's `notify` receivers, as the alert `DeploymentVerdict` with labels
//!   `{alertname, job, version, verdict, severity}` (severity `page` for fail, `warning` for
//!   inconclusive, `info` for pass, plus `global.labels`), one annotation per check
//!   (`state: value V, bound B, baseline X; reason (counts)`), `summary` and `reason`.
//!   `fail` and `inconclusive` are sent as firing; `pass` as resolved, so it reads as "all
//!   clear" and opens no incident. The group key is the job's gate, not the deployment, so
//!   PagerDuty and Opsgenie key one incident per job: a `fail` opens it and the next `pass` of
//!   the job, whichever deployment it is, resolves it. `send_resolved = false` does not
//!   suppress a pass verdict: the gate's `notify` list asked for it.
//! - **Restarts.** The deployment (baseline, counters, next evaluation time) is written after
//!   every evaluation. A restarted daemon resumes each watch; evaluations that fell due while it
//!   was down are made from the data the head still has (instants without data are NoData),
//!   and a watch whose end passed is then decided. A verdict is stored before it is notified.
//! - **Metrics.** `postflight_deployments_total{job,verdict}`,
//!   `postflight_deployment_watch_active{job}`, `postflight_gate_check_value{job,check}` (NaN
//!   when the last evaluation had no value) and `postflight_gate_check_state{job,check,state}`.

pub mod judge;
pub mod observe;
pub mod persist;
pub mod verdict;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::alert::{Alert, AlertState};
use crate::clock::Clock;
use crate::config::{Config, ReceiverKind};
use crate::dispatch::DispatchStore;
use crate::liveness::Heartbeat;
use crate::promql::Engine;
use crate::rt::{Wake, ask};
use crate::series::SeriesSource;
use crate::telemetry::Telemetry;

pub use judge::{CheckRecord, CheckSpec, CheckState, GateSnapshot, Verdict};
pub use persist::{DeploymentStore, MemoryDeploymentStore};

use observe::Compiled;

/// How soon a failed store write or notification is retried.
const RETRY: Duration = Duration::from_secs(10);
/// Longest accepted job, version, commit, author or url.
const MAX_FIELD: usize = 512;
/// Default and largest number of deployments `list` returns.
pub const LIST_LIMIT: usize = 100;

/// A deployment and the state of its watch, as stored ([`crate::store::Kind::Deployments`],
/// keyed by id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Unique id: the start time in hex ms (bumped to stay increasing) followed by random
    /// digits, so ids sort like deployments.
    pub id: String,
    /// The job deployed.
    pub job: String,
    /// The version deployed.
    pub version: String,
    /// Commit id, if given.
    #[serde(default)]
    pub commit: Option<String>,
    /// Who deployed, if given.
    #[serde(default)]
    pub author: Option<String>,
    /// A link (pipeline run, release notes), if given.
    #[serde(default)]
    pub url: Option<String>,
    /// When the deployment was recorded.
    pub started_at: DateTime<Utc>,
    /// When the watch ends.
    pub watch_until: DateTime<Utc>,
    /// `watching` until decided.
    pub verdict: Verdict,
    /// Why the verdict (empty while watching).
    #[serde(default)]
    pub reason: String,
    /// When the verdict was reached.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Evaluations made.
    pub evaluations: u32,
    /// Time of the next evaluation, ms since the epoch.
    pub next_eval_ms: i64,
    /// Each check's baseline, last state and counters, in gate order.
    pub checks: Vec<CheckRecord>,
    /// The gate as it was when the deployment was recorded.
    pub gate: GateSnapshot,
    /// The deployment that replaced this one under watch.
    #[serde(default)]
    pub superseded_by: Option<String>,
    /// Receivers the verdict has been queued for (or given up on).
    #[serde(default)]
    pub notified: Vec<String>,
}

impl Deployment {
    /// The API view (SPEC §4): `{"id","job","version","startedAt","verdict","evaluations",
    /// "checks":[{"name","state","value","baseline","bound","reason","passes","failures",
    /// "nodata"}], ...}`.
    pub fn view(&self) -> serde_json::Value {
        let t = |d: &DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Millis, true);
        let checks: Vec<serde_json::Value> = self
            .gate
            .checks
            .iter()
            .zip(&self.checks)
            .map(|(spec, c)| {
                let b = judge::bounds(spec, c.baseline);
                serde_json::json!({
                    "name": c.name,
                    "state": c.state.as_str(),
                    "value": finite(c.value),
                    "baseline": finite(c.baseline),
                    "baselinePoints": c.baseline_points,
                    "bound": judge::describe_bounds(spec, c.baseline),
                    "min": finite(b.lower),
                    "max": finite(b.upper),
                    "reason": c.reason,
                    "passes": c.passes,
                    "failures": c.failures,
                    "nodata": c.nodata,
                    "consecutiveFailures": c.streak,
                    "history": c.history.iter().map(|p| serde_json::json!({
                        "time": p.t as f64 / 1000.0,
                        "value": finite(p.value),
                        "state": p.state.as_str(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "id": self.id,
            "job": self.job,
            "version": self.version,
            "commit": self.commit,
            "author": self.author,
            "url": self.url,
            "startedAt": t(&self.started_at),
            "watchUntil": t(&self.watch_until),
            "finishedAt": self.finished_at.as_ref().map(t),
            "verdict": self.verdict.as_str(),
            "reason": self.reason,
            "evaluations": self.evaluations,
            "plannedEvaluations": self.gate.planned_evaluations(self.started_at.timestamp_millis()),
            "consecutiveFailures": self.gate.consecutive_failures,
            "supersededBy": self.superseded_by,
            "checks": checks,
        })
    }

    fn end_ms(&self) -> i64 {
        self.started_at.timestamp_millis() + self.gate.watch_ms
    }

    fn pending_receivers(&self) -> Vec<String> {
        self.gate
            .notify
            .iter()
            .filter(|r| !self.notified.contains(r))
            .cloned()
            .collect()
    }
}

/// JSON has no NaN or infinity: those are shown as null.
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// A deployment to record (the body of `POST /api/v1/deployments`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    /// The job deployed; must have a `[[gate]]`.
    pub job: String,
    /// The version deployed.
    pub version: String,
    /// Commit id.
    #[serde(default)]
    pub commit: Option<String>,
    /// Who deployed.
    #[serde(default)]
    pub author: Option<String>,
    /// A link (pipeline run, release notes).
    #[serde(default)]
    pub url: Option<String>,
    /// Whether to replace a deployment of the same job that is still under watch (absent:
    /// yes); `false` makes such a request a conflict.
    #[serde(default)]
    pub supersede: Option<bool>,
}

/// Why a deployment was not recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The job has no `[[gate]]` (HTTP 404).
    #[error("no [[gate]] is configured for job {0:?}")]
    NoGate(String),
    /// The job already has a deployment under watch; its id (HTTP 409).
    #[error(
        "job already has deployment {0} under watch, and the request said \"supersede\": false (--no-supersede)"
    )]
    AlreadyWatching(String),
    /// The request is malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The deployment could not be stored, so it was not started (HTTP 500).
    #[error("cannot store the deployment: {0}")]
    Store(String),
    /// The engine is shutting down (HTTP 503).
    #[error("the gate engine is not running")]
    Stopped,
}

enum Msg {
    Start(NewDeployment, oneshot::Sender<Result<String, StartError>>),
    Get(String, oneshot::Sender<Option<Deployment>>),
    List(
        Option<String>,
        Option<String>,
        usize,
        oneshot::Sender<Vec<Deployment>>,
    ),
    ProbeAlerts(Vec<Alert>),
    Reconfigure(Arc<Config>),
    Sync(oneshot::Sender<()>),
}

/// How the API, the CLI's daemon side and the probe runner talk to the [`GateEngine`].
#[derive(Clone)]
pub struct GateHandle {
    tx: mpsc::Sender<Msg>,
}

impl GateHandle {
    /// Records a deployment and starts its watch; returns its id once it is stored.
    pub async fn start(&self, d: NewDeployment) -> Result<String, StartError> {
        ask(&self.tx, |tx| Msg::Start(d, tx))
            .await
            .unwrap_or(Err(StartError::Stopped))
    }

    /// One deployment by id.
    pub async fn get(&self, id: &str) -> Option<Deployment> {
        ask(&self.tx, |tx| Msg::Get(id.to_string(), tx))
            .await
            .flatten()
    }

    /// The newest deployments (of `job`, if given) started before the deployment `before`
    /// (all when `None`), newest first, at most `limit` (capped at [`LIST_LIMIT`]): a page
    /// of the list; the last one's id is where the next page starts.
    pub async fn list(
        &self,
        job: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Vec<Deployment> {
        ask(&self.tx, |tx| {
            Msg::List(
                job.map(str::to_string),
                before.map(str::to_string),
                limit,
                tx,
            )
        })
        .await
        .unwrap_or_default()
    }

    /// The alerts the probe runner currently holds (the full list, every time it changes). A
    /// `ProbeFailed` for a job under watch that fired after the deployment fails it at once.
    pub async fn probe_alerts(&self, alerts: Vec<Alert>) {
        if self.tx.send(Msg::ProbeAlerts(alerts)).await.is_err() {
            warn!("gate engine stopped; probe alerts not seen by gates");
        }
    }

    /// Applies a new config: which jobs have gates, the global labels and external URL of
    /// notifications. Running watches keep the gate they started with.
    pub async fn reconfigure(&self, c: Arc<Config>) {
        let _ = self.tx.send(Msg::Reconfigure(c)).await;
    }

    /// Waits until every message sent before is handled and due evaluations are made.
    pub async fn sync(&self) {
        // A stopped engine has nothing left to wait for.
        let _ = ask(&self.tx, Msg::Sync).await;
    }
}

/// A deployment the engine is still working on: under watch, or decided but not yet stored or
/// notified.
struct Live {
    d: Deployment,
    /// The checks' expressions, parsed.
    compiled: Vec<Compiled>,
    /// Changed since last stored.
    dirty: bool,
}

/// The gate engine: owns deployments, evaluates their checks on schedule, decides, stores and
/// notifies verdicts.
///
/// Store writes (one per evaluation of each watched deployment, plus one per verdict) are
/// durable and made on the engine's task, like the dispatcher's: a few per interval, each an
/// fsync. The baseline (at most 480 instants per check) is computed on the task too, once per
/// deployment.
pub struct GateEngine {
    rx: mpsc::Receiver<Msg>,
    /// The config in force: which jobs have gates, global labels, external URL.
    config: Arc<Config>,
    /// Where check expressions read samples (the head).
    src: Arc<dyn SeriesSource>,
    /// Where deployments are kept.
    store: Arc<dyn DeploymentStore>,
    /// Where verdict notifications are queued (the outbox in the daemon).
    queue: Arc<dyn DispatchStore>,
    /// Wall-clock time; the paused tokio clock in tests.
    clock: Clock,
    /// `postflight_deployments_total` and the gate gauges.
    telemetry: Arc<Telemetry>,
    /// Tells the systemd watchdog this loop is alive.
    heartbeat: Option<Heartbeat>,
    /// PromQL settings (lookback 5m).
    promql: Engine,
    /// Deployments still being worked on, by id.
    live: BTreeMap<String, Live>,
    /// Jobs whose `deployment_watch_active` gauge has been set, so that it drops to 0.
    jobs_seen: BTreeSet<String>,
    /// Time part of the last id handed out.
    last_id_ms: i64,
    /// When finished deployments past the retention were last deleted.
    last_prune: Option<DateTime<Utc>>,
}

impl GateEngine {
    /// Creates the engine and loads the deployments still under watch (or not yet notified)
    /// from `store`.
    pub fn new(
        config: Arc<Config>,
        src: Arc<dyn SeriesSource>,
        store: Arc<dyn DeploymentStore>,
        queue: Arc<dyn DispatchStore>,
        clock: Clock,
        telemetry: Arc<Telemetry>,
        heartbeat: Option<Heartbeat>,
    ) -> (GateEngine, GateHandle) {
        let (tx, rx) = mpsc::channel(64);
        let mut engine = GateEngine {
            rx,
            config,
            src,
            store,
            queue,
            clock,
            telemetry,
            heartbeat,
            promql: Engine::default(),
            live: BTreeMap::new(),
            jobs_seen: BTreeSet::new(),
            last_id_ms: 0,
            last_prune: None,
        };
        engine.load();
        (engine, GateHandle { tx })
    }

    fn load(&mut self) {
        let all = match self.store.load_all() {
            Ok(all) => all,
            Err(e) => {
                error!(error = %e, "cannot load deployments; watches in progress are lost");
                return;
            }
        };
        let mut unnotified = false;
        for d in all {
            let watching = d.verdict == Verdict::Watching;
            if !watching && d.pending_receivers().is_empty() {
                continue;
            }
            unnotified |= !watching;
            if watching {
                info!(deployment = %d.id, job = %d.job, version = %d.version, evaluations = d.evaluations, "resuming the watch of a deployment");
            }
            let compiled = d.gate.checks.iter().map(Compiled::parse).collect();
            self.jobs_seen.insert(d.job.clone());
            self.live.insert(
                d.id.clone(),
                Live {
                    d,
                    compiled,
                    dirty: false,
                },
            );
        }
        if unnotified {
            // A crash between queuing a verdict and recording that it was queued: the log
            // entry queued with the notification says whether it was.
            match self.queue.load() {
                Ok((nlog, _)) => {
                    let keys: HashSet<String> = nlog.into_iter().map(|(k, _)| k).collect();
                    for l in self.live.values_mut() {
                        for r in l.d.pending_receivers() {
                            if keys.contains(&verdict::nlog_key(&l.d.id, &r)) {
                                l.d.notified.push(r);
                                l.dirty = true;
                            }
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the notification log; a verdict may be notified twice")
                }
            }
        }
        for l in self.live.values() {
            if l.d.verdict == Verdict::Watching {
                self.export_checks(&l.d);
            }
        }
        self.export_watch_gauges();
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut beat = tokio::time::interval(Duration::from_secs(5));
        loop {
            self.tick();
            self.prune();
            let deadline = self.next_wake().map(|d| tokio::time::Instant::now() + d);
            match crate::rt::next_wake(&mut self.rx, deadline, &mut beat, &shutdown).await {
                Wake::Message(m) => self.handle(m),
                Wake::Timer => {}
                Wake::Stop => break,
            }
            if let Some(h) = &self.heartbeat {
                h.beat();
            }
        }
        debug!("gate engine stopped");
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Start(d, reply) => {
                let r = self.start(d);
                // Store and notify a superseded deployment before the caller hears back.
                self.tick();
                let _ = reply.send(r);
            }
            Msg::Get(id, reply) => {
                let d = match self.live.get(&id) {
                    Some(l) => Some(l.d.clone()),
                    None => self.store.get(&id).unwrap_or_else(|e| {
                        warn!(deployment = %id, error = %e, "cannot read a deployment");
                        None
                    }),
                };
                let _ = reply.send(d);
            }
            Msg::List(job, before, limit, reply) => {
                let _ = reply.send(self.list(job.as_deref(), before.as_deref(), limit));
            }
            Msg::ProbeAlerts(alerts) => {
                self.probe_alerts(&alerts);
                self.tick();
            }
            Msg::Reconfigure(c) => self.config = c,
            Msg::Sync(reply) => {
                self.tick();
                let _ = reply.send(());
            }
        }
    }

    fn start(&mut self, nd: NewDeployment) -> Result<String, StartError> {
        let job = nd.job.trim().to_string();
        let version = nd.version.trim().to_string();
        if job.is_empty() || version.is_empty() {
            return Err(StartError::Invalid("job and version are required".into()));
        }
        let optional = [&nd.commit, &nd.author, &nd.url];
        if [&job, &version]
            .into_iter()
            .chain(optional.into_iter().flatten())
            .any(|s| s.len() > MAX_FIELD)
        {
            return Err(StartError::Invalid(format!(
                "job, version, commit, author and url are limited to {MAX_FIELD} bytes"
            )));
        }
        let Some(gate) = self.config.gate(&job) else {
            return Err(StartError::NoGate(job));
        };
        let current = self
            .live
            .values()
            .find(|l| l.d.job == job && l.d.verdict == Verdict::Watching)
            .map(|l| l.d.id.clone());
        if let Some(id) = &current
            && nd.supersede == Some(false)
        {
            return Err(StartError::AlreadyWatching(id.clone()));
        }
        let now = self.clock.now();
        let start_ms = now.timestamp_millis();
        let snapshot = GateSnapshot::of(gate);
        // The config parsed these already: reuse its trees instead of parsing the sources again.
        let compiled: Vec<Compiled> = gate
            .check
            .iter()
            .map(|c| Compiled {
                expr: Ok(c.expr.expr.clone()),
                guard: c.guard.as_ref().map(|g| Ok(g.expr.clone())),
            })
            .collect();
        let checks = snapshot
            .checks
            .iter()
            .zip(&compiled)
            .map(|(spec, c)| {
                let (b, n) = observe::baseline(
                    &self.promql,
                    &*self.src,
                    c,
                    start_ms,
                    snapshot.baseline_ms,
                    snapshot.interval_ms,
                );
                CheckRecord::new(&spec.name, b, n)
            })
            .collect();
        // Strictly increasing, so ids sort like deployments even within one millisecond.
        self.last_id_ms = start_ms.max(self.last_id_ms + 1);
        let id = format!("{:012x}{:08x}", self.last_id_ms.max(0), fastrand::u32(..));
        let d = Deployment {
            id: id.clone(),
            job: job.clone(),
            version,
            commit: nd.commit,
            author: nd.author,
            url: nd.url,
            started_at: now,
            watch_until: now + chrono::Duration::milliseconds(snapshot.watch_ms),
            verdict: Verdict::Watching,
            reason: String::new(),
            finished_at: None,
            evaluations: 0,
            next_eval_ms: snapshot.first_eval_ms(start_ms),
            checks,
            gate: snapshot,
            superseded_by: None,
            notified: Vec::new(),
        };
        // Durable before the caller gets an id: a deployment the API acknowledged survives a
        // crash.
        self.store.save(&d).map_err(|e| {
            self.write_failed();
            StartError::Store(e.to_string())
        })?;
        info!(deployment = %id, job = %d.job, version = %d.version,
            baselines = ?d.checks.iter().map(|c| (c.name.as_str(), c.baseline)).collect::<Vec<_>>(),
            "deployment recorded; watching");
        self.announce(&d, now);
        if let Some(old) = current.and_then(|o| self.live.get_mut(&o)) {
            let reason = format!("superseded by deployment {id} ({})", d.version);
            info!(deployment = %old.d.id, by = %id, "deployment superseded");
            old.d.superseded_by = Some(id.clone());
            // Nobody is told about a superseded deployment.
            old.d.notified = old.d.gate.notify.clone();
            finish(
                &self.telemetry,
                &mut old.d,
                Verdict::Superseded,
                reason,
                now,
            );
            old.dirty = true;
        }
        self.export_checks(&d);
        self.jobs_seen.insert(job);
        self.live.insert(
            id.clone(),
            Live {
                compiled,
                d,
                dirty: false,
            },
        );
        self.export_watch_gauges();
        Ok(id)
    }

    fn list(&self, job: Option<&str>, before: Option<&str>, limit: usize) -> Vec<Deployment> {
        let limit = limit.clamp(1, LIST_LIMIT);
        let mut page: BTreeMap<String, Deployment> = match self.store.page(job, before, limit) {
            Ok(v) => v.into_iter().map(|d| (d.id.clone(), d)).collect(),
            Err(e) => {
                warn!(error = %e, "cannot list stored deployments");
                BTreeMap::new()
            }
        };
        // The engine's copy is newer when a write failed (or not stored at all yet).
        for l in self.live.values() {
            if job.is_none_or(|j| l.d.job == j) && before.is_none_or(|b| l.d.id.as_str() < b) {
                page.insert(l.d.id.clone(), l.d.clone());
            }
        }
        page.into_values().rev().take(limit).collect()
    }

    /// Deletes finished deployments older than the retention, at most once an hour.
    fn prune(&mut self) {
        let now = self.clock.now();
        if self
            .last_prune
            .is_some_and(|t| now - t < chrono::Duration::hours(1))
        {
            return;
        }
        self.last_prune = Some(now);
        let retention = chrono::Duration::from_std(self.config.storage.retention.get())
            .unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = now.checked_sub_signed(retention) else {
            return;
        };
        match self.store.prune(cutoff) {
            Ok(0) => {}
            Ok(n) => debug!(deployments = n, "deployments past the retention deleted"),
            Err(e) => warn!(error = %e, "cannot delete old deployments"),
        }
    }

    fn probe_alerts(&mut self, alerts: &[Alert]) {
        let now = self.clock.now();
        for l in self.live.values_mut() {
            if l.d.verdict != Verdict::Watching {
                continue;
            }
            let failed = alerts.iter().find(|a| {
                a.name() == "ProbeFailed"
                    && a.state == AlertState::Firing
                    && a.labels.get("job") == Some(l.d.job.as_str())
                    && a.fired_at.unwrap_or(a.active_at) >= l.d.started_at
            });
            if let Some(a) = failed {
                let probe = a.labels.get("probe").unwrap_or("?");
                let why = a
                    .annotations
                    .get("reason")
                    .map(String::as_str)
                    .unwrap_or("no reason given");
                let reason = format!("probe {probe} failed during the watch: {why}");
                finish(&self.telemetry, &mut l.d, Verdict::Fail, reason, now);
                l.dirty = true;
            }
        }
        self.export_watch_gauges();
    }

    /// Makes due evaluations, decides watches that ended, stores what changed and notifies
    /// verdicts that are stored.
    fn tick(&mut self) {
        let now = self.clock.now();
        let ids: Vec<String> = self.live.keys().cloned().collect();
        let mut finished_any = false;
        for id in ids {
            let Some(mut l) = self.live.remove(&id) else {
                continue;
            };
            if l.d.verdict == Verdict::Watching {
                self.advance(&mut l, now);
                finished_any |= l.d.verdict != Verdict::Watching;
            }
            if l.dirty {
                self.save(&mut l);
            }
            if l.d.verdict != Verdict::Watching && !l.dirty && self.notify(&mut l.d, now) {
                l.dirty = true;
                self.save(&mut l);
            }
            let done =
                l.d.verdict != Verdict::Watching && !l.dirty && l.d.pending_receivers().is_empty();
            if !done {
                self.live.insert(id, l);
            }
        }
        if finished_any {
            self.export_watch_gauges();
        }
    }

    /// Evaluates every instant that fell due (several after a restart), then decides the watch
    /// if it ended.
    fn advance(&self, l: &mut Live, now: DateTime<Utc>) {
        let now_ms = now.timestamp_millis();
        let end = l.d.end_ms();
        let mut evaluated = false;
        while l.d.verdict == Verdict::Watching
            && l.d.next_eval_ms <= now_ms
            && l.d.next_eval_ms <= end
        {
            let t = l.d.next_eval_ms;
            let obs: Vec<_> = crate::rt::blocking(|| {
                l.compiled
                    .iter()
                    .map(|c| observe::observe(&self.promql, &*self.src, c, t))
                    .collect()
            });
            let failed = judge::evaluate(&l.d.gate, &mut l.d.checks, &mut l.d.evaluations, &obs);
            l.d.checks.iter_mut().for_each(|c| c.remember(t));
            debug!(deployment = %l.d.id, job = %l.d.job, evaluation = l.d.evaluations,
                states = ?l.d.checks.iter().map(|c| (c.name.as_str(), c.state.as_str(), c.value)).collect::<Vec<_>>(),
                "gate evaluated");
            l.d.next_eval_ms = t + l.d.gate.interval_ms;
            if let Some(reason) = failed {
                finish(
                    &self.telemetry,
                    &mut l.d,
                    Verdict::Fail,
                    reason,
                    at_ms(t, now),
                );
            }
            evaluated = true;
            l.dirty = true;
        }
        if l.d.verdict == Verdict::Watching && now_ms >= end {
            let (v, reason) = judge::conclude(&l.d.checks, l.d.evaluations);
            finish(&self.telemetry, &mut l.d, v, reason, at_ms(end, now));
            l.dirty = true;
        }
        if evaluated {
            self.export_checks(&l.d);
        }
    }

    fn save(&self, l: &mut Live) {
        match self.store.save(&l.d) {
            Ok(()) => l.dirty = false,
            Err(e) => {
                error!(deployment = %l.d.id, error = %e, "cannot store a deployment; retrying");
                self.write_failed();
            }
        }
    }

    fn write_failed(&self) {
        self.telemetry
            .store_write_failures
            .with_label_values(&["deployments"])
            .inc();
    }

    /// Queues `DeploymentStarted` for the gate's receivers, except the incident tools
    /// (PagerDuty, Opsgenie), where a deployment that started is not an incident. Queued once:
    /// a failure is logged and counted, not retried, as the watch matters more than the notice.
    fn announce(&self, d: &Deployment, now: DateTime<Utc>) {
        let external_url = self.config.server.link_base();
        for receiver in &d.gate.notify {
            let Some(rc) = self.config.receiver(receiver) else {
                continue;
            };
            if matches!(
                rc.kind,
                ReceiverKind::Pagerduty(_) | ReceiverKind::Opsgenie(_)
            ) {
                continue;
            }
            let (n, entry) =
                verdict::started(d, receiver, &external_url, &self.config.global.labels, now);
            if let Err(e) =
                self.queue
                    .enqueue(&n, &verdict::started_nlog_key(&d.id, receiver), &entry)
            {
                error!(deployment = %d.id, receiver = %receiver, error = %e, "cannot queue DeploymentStarted");
                self.telemetry
                    .store_write_failures
                    .with_label_values(&["outbox"])
                    .inc();
            }
        }
    }

    /// Queues the verdict for every receiver not yet told; returns whether any was.
    fn notify(&self, d: &mut Deployment, now: DateTime<Utc>) -> bool {
        let external_url = self.config.server.link_base();
        let mut changed = false;
        for receiver in d.pending_receivers() {
            if self.config.receiver(&receiver).is_none() {
                warn!(deployment = %d.id, receiver = %receiver, "the gate's receiver is no longer configured; verdict not sent to it");
                d.notified.push(receiver);
                changed = true;
                continue;
            }
            let (n, entry) =
                verdict::notification(d, &receiver, &external_url, &self.config.global.labels, now);
            match self
                .queue
                .enqueue(&n, &verdict::nlog_key(&d.id, &receiver), &entry)
            {
                Ok(()) => {
                    info!(deployment = %d.id, receiver = %receiver, verdict = d.verdict.as_str(), "verdict notification queued");
                    d.notified.push(receiver);
                    changed = true;
                }
                Err(e) => {
                    error!(deployment = %d.id, receiver = %receiver, error = %e, "cannot queue the verdict notification; retrying");
                    self.telemetry
                        .store_write_failures
                        .with_label_values(&["outbox"])
                        .inc();
                }
            }
        }
        changed
    }

    fn next_wake(&self) -> Option<Duration> {
        let now_ms = self.clock.now_ms();
        self.live
            .values()
            .map(|l| {
                if l.d.verdict == Verdict::Watching && !l.dirty {
                    let due = l.d.next_eval_ms.min(l.d.end_ms());
                    Duration::from_millis(due.saturating_sub(now_ms).max(0) as u64)
                } else {
                    RETRY
                }
            })
            .min()
    }

    fn export_checks(&self, d: &Deployment) {
        for c in &d.checks {
            self.telemetry
                .gate_check_value
                .with_label_values(&[d.job.as_str(), c.name.as_str()])
                .set(c.value.unwrap_or(f64::NAN));
            for s in CheckState::ALL {
                self.telemetry
                    .gate_check_state
                    .with_label_values(&[d.job.as_str(), c.name.as_str(), s.as_str()])
                    .set(i64::from(s == c.state));
            }
        }
    }

    fn export_watch_gauges(&self) {
        for job in &self.jobs_seen {
            let watching = self
                .live
                .values()
                .any(|l| &l.d.job == job && l.d.verdict == Verdict::Watching);
            self.telemetry
                .deployment_watch_active
                .with_label_values(&[job.as_str()])
                .set(i64::from(watching));
        }
    }
}

/// Records a verdict on a deployment and counts it.
fn finish(
    telemetry: &Telemetry,
    d: &mut Deployment,
    v: Verdict,
    reason: String,
    at: DateTime<Utc>,
) {
    match v {
        Verdict::Fail => {
            warn!(deployment = %d.id, job = %d.job, version = %d.version, reason = %reason, "deployment failed its gate")
        }
        _ => {
            info!(deployment = %d.id, job = %d.job, version = %d.version, verdict = v.as_str(), reason = %reason, "deployment verdict")
        }
    }
    d.verdict = v;
    d.reason = reason;
    d.finished_at = Some(at);
    telemetry
        .deployments_total
        .with_label_values(&[d.job.as_str(), v.as_str()])
        .inc();
}

/// The wall time of `ms`, or `fallback` if it is out of chrono's range.
fn at_ms(ms: i64, fallback: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(fallback)
}
