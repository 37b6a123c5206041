//! The gate engine on a paused clock, over a head filled by hand, an in-memory (or temp-dir
//! sled) store and an in-memory notification queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::StatusCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::api::deployments as api;
use crate::config::load_str;
use crate::dispatch::MemoryDispatchStore;
use crate::notify::GroupStatus;
use crate::series::Labels;
use crate::series::head::Head;
use crate::store::StateStore;

const CONFIG: &str = r#"
[global]
labels = { env = "prod" }

[[receiver]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/"

[[gate]]
job = "api"
watch = "10m"
baseline = "10m"
warmup = "1m"
interval = "30s"
consecutive_failures = 3
notify = ["hook"]

[[gate.check]]
name = "error-rate"
expr = 'err_ratio{job="api"}'
max = 0.05
max_increase = "+0.002"
guard = 'traffic{job="api"} > 1'

[[gate.check]]
name = "latency"
expr = 'p99{job="api"}'
max_increase = "50%"
"#;

const MIN: i64 = 60_000;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn t0_ms() -> i64 {
    t0().timestamp_millis()
}

/// Appends `name{job="api"}` every 15 s over `[from, to)` (ms relative to the deployment),
/// with the value `f(t)`.
fn fill(head: &Head, name: &str, from: i64, to: i64, f: impl Fn(i64) -> f64) {
    let labels = Labels::new([("__name__", name), ("job", "api")]);
    let mut t = from;
    while t < to {
        head.append(&labels, t0_ms() + t, f(t));
        t += 15_000;
    }
}

/// A healthy service before and after the deployment.
fn healthy_head() -> Arc<Head> {
    let head = Head::new();
    fill(&head, "err_ratio", -15 * MIN, 15 * MIN, |_| 0.001);
    fill(&head, "traffic", -15 * MIN, 15 * MIN, |_| 10.0);
    fill(&head, "p99", -15 * MIN, 15 * MIN, |_| 0.2);
    Arc::new(head)
}

struct Harness {
    handle: GateHandle,
    queue: Arc<MemoryDispatchStore>,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Harness {
    fn start(
        head: Arc<Head>,
        store: Arc<dyn DeploymentStore>,
        queue: Arc<MemoryDispatchStore>,
        clock: Clock,
    ) -> Harness {
        let config = Arc::new(load_str(CONFIG, "t").unwrap());
        let telemetry = Telemetry::new();
        let (engine, handle) = GateEngine::new(
            config,
            head,
            store,
            queue.clone(),
            clock,
            telemetry.clone(),
            None,
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(engine.run(stop.clone()));
        Harness {
            handle,
            queue,
            telemetry,
            stop,
            task,
        }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    async fn deploy(&self, version: &str) -> String {
        self.handle
            .start(NewDeployment {
                commit: Some("abc123".into()),
                ..new_deployment("api", version)
            })
            .await
            .unwrap()
    }

    async fn get(&self, id: &str) -> Deployment {
        self.handle.get(id).await.expect("deployment exists")
    }

    /// The verdict notifications queued.
    fn queued(&self) -> Vec<crate::notify::Notification> {
        verdicts(&self.queue)
    }

    /// The `DeploymentStarted` notifications queued.
    fn started(&self) -> Vec<crate::notify::Notification> {
        of_alert(&self.queue, verdict::STARTED)
    }

    fn count(&self, verdict: &str) -> u64 {
        self.telemetry
            .deployments_total
            .with_label_values(&["api", verdict])
            .get()
    }

    fn watch_active(&self) -> i64 {
        self.telemetry
            .deployment_watch_active
            .with_label_values(&["api"])
            .get()
    }
}

fn of_alert(queue: &MemoryDispatchStore, name: &str) -> Vec<crate::notify::Notification> {
    let q = queue.queued.lock().unwrap();
    q.iter()
        .filter(|n| n.alerts[0].labels["alertname"] == name)
        .cloned()
        .collect()
}

fn verdicts(queue: &MemoryDispatchStore) -> Vec<crate::notify::Notification> {
    of_alert(queue, verdict::ALERTNAME)
}

fn harness(head: Arc<Head>) -> Harness {
    Harness::start(
        head,
        Arc::new(MemoryDeploymentStore::default()),
        Arc::new(MemoryDispatchStore::default()),
        Clock::tokio_from(t0()),
    )
}

fn assert_close(v: Option<f64>, want: f64) {
    let v = v.expect("a value");
    assert!((v - want).abs() < 1e-12, "{v} != {want}");
}

async fn sleep_until(clock_start: tokio::time::Instant, after_ms: i64) {
    tokio::time::sleep_until(clock_start + Duration::from_millis(after_ms as u64)).await;
}

/// The body of a deployment of `version` of `job`, nothing else given.
fn new_deployment(job: &str, version: &str) -> NewDeployment {
    NewDeployment {
        job: job.into(),
        version: version.into(),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_clean_deployment_passes_and_is_notified_as_resolved() {
    let base = tokio::time::Instant::now();
    let h = harness(healthy_head());
    let id = h.deploy("v2").await;
    let d = h.get(&id).await;
    assert_eq!(d.verdict, Verdict::Watching);
    assert_eq!(h.watch_active(), 1);
    assert_close(d.checks[0].baseline, 0.001);
    assert_eq!(d.checks[0].baseline_points, 20, "10m window at 30s steps");
    assert_close(d.checks[1].baseline, 0.2);

    sleep_until(base, 5 * MIN + 1_000).await;
    let d = h.get(&id).await;
    assert_eq!(d.verdict, Verdict::Watching);
    assert_eq!(d.evaluations, 9, "1m, 1m30 ... 5m");
    assert_eq!(
        h.telemetry
            .gate_check_state
            .with_label_values(&["api", "error-rate", "pass"])
            .get(),
        1
    );
    assert_eq!(
        h.telemetry
            .gate_check_value
            .with_label_values(&["api", "latency"])
            .get(),
        0.2
    );

    sleep_until(base, 10 * MIN + 1_000).await;
    let d = h.get(&id).await;
    assert_eq!(d.verdict, Verdict::Pass, "{}", d.reason);
    assert_eq!(d.evaluations, 19);
    assert_eq!(d.checks[0].passes, 19);
    assert_eq!(d.finished_at, Some(t0() + chrono::Duration::minutes(10)));
    assert_eq!((h.count("pass"), h.watch_active()), (1, 0));

    let q = h.queued();
    assert_eq!(q.len(), 1, "one receiver, one notification");
    let n = &q[0];
    assert_eq!(n.receiver, "hook");
    assert_eq!(n.status, GroupStatus::Resolved);
    let a = &n.alerts[0];
    let want: BTreeMap<String, String> = [
        ("alertname", "DeploymentVerdict"),
        ("env", "prod"),
        ("job", "api"),
        ("severity", "info"),
        ("verdict", "pass"),
        ("version", "v2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(a.labels, want);
    assert_eq!(
        a.annotations["error-rate"],
        "pass: value 0.001, bound <= 0.003 (baseline 0.001 +0.002), baseline 0.001; within bounds (19 pass, 0 fail, 0 no data)"
    );
    assert!(a.annotations["latency"].starts_with("pass: value 0.2, bound <= 0.3"));
    assert_eq!(a.annotations["commit"], "abc123");
    assert!(
        a.annotations["summary"].starts_with("api v2: pass after 19 evaluations"),
        "{}",
        a.annotations["summary"]
    );
    assert!(
        a.generator_url
            .ends_with(&format!("/api/v1/deployments/{id}"))
    );
    // The verdict is recorded as notified, so a restart does not send it again.
    assert_eq!(h.get(&id).await.notified, ["hook"]);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_regression_fails_within_interval_times_consecutive_failures() {
    let base = tokio::time::Instant::now();
    let head = Head::new();
    let regression = 3 * MIN;
    // 0.02: under max 0.05, but far above baseline 0.001 + 0.002.
    fill(&head, "err_ratio", -15 * MIN, 15 * MIN, |t| {
        if t < regression { 0.001 } else { 0.02 }
    });
    fill(&head, "traffic", -15 * MIN, 15 * MIN, |_| 10.0);
    fill(&head, "p99", -15 * MIN, 15 * MIN, |_| 0.2);
    let h = harness(Arc::new(head));
    let id = h.deploy("v3").await;

    // 3 failing evaluations at 30 s: decided at most 90 s after the regression starts.
    sleep_until(base, regression + 90_000 + 1).await;
    let d = h.get(&id).await;
    assert_eq!(d.verdict, Verdict::Fail);
    let finished = d.finished_at.unwrap();
    assert!(finished <= t0() + chrono::Duration::milliseconds(regression + 90_000));
    assert_eq!(d.evaluations, 7, "1m ... 4m");
    let c = &d.checks[0];
    assert_eq!((c.state, c.streak, c.failures), (CheckState::Fail, 3, 3));
    assert_eq!(
        d.reason,
        "check error-rate failed 3 evaluations in a row: 0.02 is above baseline 0.001 +0.002 = 0.003"
    );
    assert_eq!((h.count("fail"), h.watch_active()), (1, 0));

    let q = h.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].status, GroupStatus::Firing);
    let a = &q[0].alerts[0];
    assert_eq!(a.labels["verdict"], "fail");
    assert_eq!(a.labels["severity"], "page");
    assert!(
        a.annotations["error-rate"].starts_with("fail: value 0.02, bound <= 0.003"),
        "{}",
        a.annotations["error-rate"]
    );
    assert_eq!(a.annotations["reason"], d.reason);

    // Nothing more happens after the verdict.
    sleep_until(base, 11 * MIN).await;
    assert_eq!(h.get(&id).await.evaluations, 7);
    assert_eq!(h.queued().len(), 1);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn no_traffic_is_inconclusive() {
    let base = tokio::time::Instant::now();
    let head = Head::new();
    fill(&head, "err_ratio", -15 * MIN, 15 * MIN, |_| 0.001);
    fill(&head, "p99", -15 * MIN, 15 * MIN, |_| 0.2);
    // traffic stays below the guard's threshold.
    fill(&head, "traffic", -15 * MIN, 15 * MIN, |_| 0.5);
    let h = harness(Arc::new(head));
    let id = h.deploy("v4").await;
    let d = h.get(&id).await;
    assert_eq!(
        d.checks[0].baseline, None,
        "no baseline without traffic either"
    );

    sleep_until(base, 10 * MIN + 1_000).await;
    let d = h.get(&id).await;
    assert_eq!(d.verdict, Verdict::Inconclusive);
    assert_eq!(
        d.reason,
        "no data in more than half of the evaluations for error-rate (19 of 19)"
    );
    let c = &d.checks[0];
    assert_eq!((c.state, c.nodata), (CheckState::NoData, 19));
    assert!(c.reason.starts_with("the guard is empty"), "{}", c.reason);
    assert_eq!(d.checks[1].passes, 19);
    assert_eq!(h.count("inconclusive"), 1);
    let q = h.queued();
    assert_eq!(q[0].status, GroupStatus::Firing);
    assert_eq!(q[0].alerts[0].labels["severity"], "warning");
    h.shutdown().await;
}

fn probe_failed(job: &str, fired_at: DateTime<Utc>) -> Alert {
    Alert {
        labels: Labels::new([
            ("alertname", "ProbeFailed"),
            ("probe", "api-health"),
            ("job", job),
            ("severity", "page"),
        ]),
        annotations: [("reason".to_string(), "status 503, expected 200".to_string())].into(),
        state: AlertState::Firing,
        active_at: fired_at,
        fired_at: Some(fired_at),
        resolved_at: None,
        value: 1.0,
        generator_url: String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn probe_failed_during_the_watch_fails_at_once() {
    let base = tokio::time::Instant::now();
    let h = harness(healthy_head());
    let id = h.deploy("v5").await;
    // Firing since before the deployment, or for another job: not this deployment's doing.
    h.handle
        .probe_alerts(vec![
            probe_failed("api", t0() - chrono::Duration::minutes(1)),
            probe_failed("web", t0() + chrono::Duration::minutes(1)),
        ])
        .await;
    h.handle.sync().await;
    assert_eq!(h.get(&id).await.verdict, Verdict::Watching);

    sleep_until(base, 2 * MIN).await;
    h.handle
        .probe_alerts(vec![probe_failed(
            "api",
            t0() + chrono::Duration::minutes(2),
        )])
        .await;
    h.handle.sync().await;
    let d = h.get(&id).await;
    assert_eq!(d.verdict, Verdict::Fail);
    assert_eq!(
        d.reason,
        "probe api-health failed during the watch: status 503, expected 200"
    );
    assert_eq!(d.finished_at, Some(t0() + chrono::Duration::minutes(2)));
    assert_eq!(h.queued().len(), 1);
    assert_eq!(h.queued()[0].alerts[0].labels["verdict"], "fail");
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_resumes_with_the_same_baseline_and_counters() {
    let base = tokio::time::Instant::now();
    let clock = Clock::tokio_from(t0());
    let (_dir, store) = crate::store::test_util::temp_store();
    let store: Arc<StateStore> = Arc::new(store.state.clone());
    let queue = Arc::new(MemoryDispatchStore::default());

    let h = Harness::start(healthy_head(), store.clone(), queue.clone(), clock.clone());
    let id = h.deploy("v6").await;
    sleep_until(base, 5 * MIN + 1_000).await;
    let before = h.get(&id).await;
    assert_eq!(before.evaluations, 9);
    h.shutdown().await;
    let stored: Deployment = DeploymentStore::get(&*store, &id).unwrap().unwrap();
    assert_eq!(stored, before, "every evaluation is stored");

    // The new process lost the head's history before the deployment: recomputing the
    // baselines would find nothing (and the relative checks would be NoData).
    let head = Head::new();
    fill(&head, "err_ratio", 5 * MIN, 15 * MIN, |_| 0.001);
    fill(&head, "traffic", 5 * MIN, 15 * MIN, |_| 10.0);
    fill(&head, "p99", 5 * MIN, 15 * MIN, |_| 0.2);
    let h = Harness::start(Arc::new(head), store.clone(), queue.clone(), clock.clone());
    assert_eq!(h.watch_active(), 1, "the resumed watch is exported at once");
    sleep_until(base, 10 * MIN + 1_000).await;
    let d = h.get(&id).await;
    assert_eq!(d.verdict, Verdict::Pass, "{}", d.reason);
    assert_eq!(d.evaluations, 19, "9 before, 10 after, none twice");
    assert_eq!(d.checks[0].baseline, before.checks[0].baseline);
    assert_close(d.checks[1].baseline, 0.2);
    assert_eq!(d.checks[0].passes, 19);
    assert_eq!(verdicts(&queue).len(), 1);
    h.shutdown().await;

    // A third start neither resumes nor notifies again.
    let h = Harness::start(healthy_head(), store.clone(), queue.clone(), clock);
    h.handle.sync().await;
    assert_eq!(h.watch_active(), 0);
    assert_eq!(verdicts(&queue).len(), 1);
    assert_eq!(h.get(&id).await.verdict, Verdict::Pass);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_watch_that_ended_while_down_is_judged_on_the_data_there_is() {
    let base = tokio::time::Instant::now();
    let clock = Clock::tokio_from(t0());
    let store = Arc::new(MemoryDeploymentStore::default());
    let queue = Arc::new(MemoryDispatchStore::default());
    let head = Head::new();
    fill(&head, "err_ratio", -15 * MIN, 15 * MIN, |t| {
        if t < 6 * MIN { 0.001 } else { 0.03 }
    });
    fill(&head, "traffic", -15 * MIN, 15 * MIN, |_| 10.0);
    fill(&head, "p99", -15 * MIN, 15 * MIN, |_| 0.2);
    let head = Arc::new(head);

    let h = Harness::start(head.clone(), store.clone(), queue.clone(), clock.clone());
    let id = h.deploy("v7").await;
    sleep_until(base, 2 * MIN + 1_000).await;
    h.shutdown().await;

    // Down from 2m to 12m: the regression at 6m and the end of the watch happened meanwhile.
    sleep_until(base, 12 * MIN).await;
    let h = Harness::start(head, store, queue, clock);
    h.handle.sync().await;
    let d = h.get(&id).await;
    assert_eq!(d.verdict, Verdict::Fail);
    assert_eq!(
        d.finished_at,
        Some(t0() + chrono::Duration::minutes(7)),
        "decided at the third failing evaluation, not at the restart"
    );
    assert_eq!(d.evaluations, 13, "1m ... 7m");
    assert_eq!(h.queued().len(), 1);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_second_deployment_supersedes_the_first_unless_told_not_to() {
    let h = harness(healthy_head());
    let first = h.deploy("v1").await;
    let refused = h
        .handle
        .start(NewDeployment {
            supersede: Some(false),
            ..new_deployment("api", "v2")
        })
        .await;
    assert_eq!(refused, Err(StartError::AlreadyWatching(first.clone())));
    assert_eq!(h.get(&first).await.verdict, Verdict::Watching);
    assert_eq!(
        h.handle.start(new_deployment("nope", "v1")).await,
        Err(StartError::NoGate("nope".into()))
    );
    assert!(matches!(
        h.handle.start(NewDeployment::default()).await,
        Err(StartError::Invalid(_))
    ));
    let started = h.queued().len();
    assert_eq!(
        h.started().len(),
        1,
        "only the deployment recorded is announced"
    );

    // Nothing said: the new deployment replaces the watch, as a new rollout aborts an analysis.
    let second = h.deploy("v2").await;
    let old = h.get(&first).await;
    assert_eq!(old.verdict, Verdict::Superseded);
    assert_eq!(old.view()["verdict"], "superseded");
    assert_eq!(old.superseded_by.as_deref(), Some(second.as_str()));
    assert_eq!(old.finished_at, Some(t0()));
    assert!(
        old.reason
            .starts_with(&format!("superseded by deployment {second} (v2)")),
        "{}",
        old.reason
    );
    assert_eq!(h.get(&second).await.verdict, Verdict::Watching);
    assert_eq!(h.watch_active(), 1);
    assert_eq!((h.count("superseded"), h.count("inconclusive")), (1, 0));
    let verdicts: Vec<_> = h
        .queued()
        .into_iter()
        .skip(started)
        .filter(|n| n.alerts[0].labels["alertname"] != "DeploymentStarted")
        .collect();
    assert!(
        verdicts.is_empty(),
        "a superseded deployment is not paged: {verdicts:?}"
    );
    assert_eq!(h.started().len(), 2, "the new deployment is announced");
    // Passing the old flag explicitly supersedes too.
    let third = h
        .handle
        .start(NewDeployment {
            supersede: Some(true),
            ..new_deployment("api", "v3")
        })
        .await
        .unwrap();
    assert_eq!(h.get(&second).await.superseded_by, Some(third.clone()));
    assert_eq!(h.get(&second).await.verdict, Verdict::Superseded);

    let list = h.handle.list(Some("api"), None, 10).await;
    assert_eq!(
        list.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [third.as_str(), second.as_str(), first.as_str()],
        "newest first"
    );
    assert!(h.handle.list(Some("web"), None, 10).await.is_empty());
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn api_handlers_answer_with_the_documented_statuses_and_shape() {
    let h = harness(healthy_head());
    let body = |job: &str| new_deployment(job, "v1");
    let r = api::create_from(&h.handle, body("api")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = body_json(r).await;
    let id = v["id"].as_str().unwrap().to_string();
    let refuse = NewDeployment {
        supersede: Some(false),
        ..body("api")
    };
    let r = api::create_from(&h.handle, refuse).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(body_json(r).await["id"], id.as_str());
    let r = api::create_from(&h.handle, body("web")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    tokio::time::sleep(Duration::from_secs(61)).await;
    let r = api::get(&h.handle, &id).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = body_json(r).await;
    for k in [
        "id",
        "job",
        "version",
        "startedAt",
        "verdict",
        "evaluations",
        "checks",
    ] {
        assert!(v.get(k).is_some(), "{k} missing in {v}");
    }
    assert_eq!(v["verdict"], "watching");
    assert_eq!(v["evaluations"], 1);
    assert_eq!(v["startedAt"], "2023-11-14T22:13:20.000Z");
    let c = &v["checks"][0];
    assert_eq!(c["name"], "error-rate");
    assert_eq!(c["state"], "pass");
    assert_eq!(c["value"], 0.001);
    assert_close(c["baseline"].as_f64(), 0.001);
    assert_eq!(c["bound"], "<= 0.003 (baseline 0.001 +0.002)");
    assert_eq!(
        (
            c["passes"].as_u64(),
            c["failures"].as_u64(),
            c["nodata"].as_u64()
        ),
        (Some(1), Some(0), Some(0))
    );
    assert_eq!(
        api::get(&h.handle, "nope").await.status(),
        StatusCode::NOT_FOUND
    );

    let r = api::list(&h.handle, Some("job=api")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_json(r).await["deployments"][0]["id"], id.as_str());
    let r = api::list(&h.handle, Some("job=web")).await;
    assert_eq!(body_json(r).await["deployments"], serde_json::json!([]));
    assert_eq!(
        api::list(&h.handle, Some("limit=0")).await.status(),
        StatusCode::BAD_REQUEST
    );
    h.shutdown().await;
}

async fn body_json(r: crate::api::Resp) -> serde_json::Value {
    use http_body_util::BodyExt;
    let b = r.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&b).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_verdict_stored_but_not_yet_queued_is_queued_once_after_a_restart() {
    let clock = Clock::tokio_from(t0());
    let store = Arc::new(MemoryDeploymentStore::default());
    let queue = Arc::new(MemoryDispatchStore::default());
    let h = Harness::start(healthy_head(), store.clone(), queue.clone(), clock.clone());
    let id = h.deploy("v8").await;
    h.shutdown().await;

    // As if the daemon died after storing the verdict, before queuing it.
    let mut d = store.get(&id).unwrap().unwrap();
    d.verdict = Verdict::Fail;
    d.reason = "test".into();
    d.finished_at = Some(t0());
    store.save(&d).unwrap();
    let h = Harness::start(healthy_head(), store.clone(), queue.clone(), clock.clone());
    h.handle.sync().await;
    assert_eq!(h.queued().len(), 1);
    h.shutdown().await;

    // As if it died after queuing, before recording it: the log entry says it was sent.
    let mut d = store.get(&id).unwrap().unwrap();
    assert_eq!(d.notified, ["hook"]);
    d.notified.clear();
    store.save(&d).unwrap();
    let h = Harness::start(healthy_head(), store.clone(), queue.clone(), clock);
    h.handle.sync().await;
    assert_eq!(h.queued().len(), 1, "not queued twice");
    assert_eq!(store.get(&id).unwrap().unwrap().notified, ["hook"]);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_deployment_that_cannot_be_stored_is_refused_and_a_verdict_waits_for_the_disk() {
    let base = tokio::time::Instant::now();
    let store = Arc::new(MemoryDeploymentStore::default());
    let queue = Arc::new(MemoryDispatchStore::default());
    let h = Harness::start(
        healthy_head(),
        store.clone(),
        queue,
        Clock::tokio_from(t0()),
    );
    store.fail.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        h.handle.start(new_deployment("api", "v9")).await,
        Err(StartError::Store(_))
    ));
    store
        .fail
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let id = h.deploy("v9").await;
    store.fail.store(true, std::sync::atomic::Ordering::Relaxed);
    sleep_until(base, 10 * MIN + 1_000).await;
    assert_eq!(h.get(&id).await.verdict, Verdict::Pass);
    assert!(h.queued().is_empty(), "not notified before it is stored");
    store
        .fail
        .store(false, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(RETRY).await;
    h.handle.sync().await;
    assert_eq!(h.queued().len(), 1);
    assert_eq!(store.get(&id).unwrap().unwrap().verdict, Verdict::Pass);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_list_pages_back_newest_first_and_old_finished_deployments_are_pruned() {
    let clock = Clock::tokio_from(t0());
    let (_dir, store) = crate::store::test_util::temp_store();
    let store: Arc<StateStore> = Arc::new(store.state.clone());
    let queue = Arc::new(MemoryDispatchStore::default());
    let h = Harness::start(healthy_head(), store.clone(), queue, clock.clone());
    let id = h.deploy("v1").await;
    let template = h.get(&id).await;
    h.shutdown().await;
    // Five deployments a day apart, the oldest first; the second one still under watch.
    let day = chrono::Duration::days(1);
    let mut ids = Vec::new();
    for k in 0..5i32 {
        let mut d = template.clone();
        d.started_at = t0() - day * (20 - 5 * k);
        d.id = format!("{:012x}{:08x}", d.started_at.timestamp_millis(), k);
        d.version = format!("v{k}");
        d.verdict = if k == 1 {
            Verdict::Watching
        } else {
            Verdict::Pass
        };
        d.gate.notify.clear();
        DeploymentStore::save(&*store, &d).unwrap();
        ids.push(d.id);
    }
    let page = |before: Option<&str>| {
        DeploymentStore::page(&*store, Some("api"), before, 2)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(page(None), [id.clone(), ids[4].clone()], "newest first");
    assert_eq!(page(Some(&ids[4])), [ids[3].clone(), ids[2].clone()]);
    assert_eq!(page(Some(&ids[2])), [ids[1].clone(), ids[0].clone()]);
    assert!(page(Some(&ids[0])).is_empty());
    assert!(
        DeploymentStore::page(&*store, Some("web"), None, 2)
            .unwrap()
            .is_empty()
    );

    // The fake prunes as the store does.
    let memory = MemoryDeploymentStore::default();
    for d in DeploymentStore::page(&*store, None, None, 100).unwrap() {
        memory.save(&d).unwrap();
    }
    assert_eq!(memory.prune(t0() - chrono::Duration::days(4)).unwrap(), 3);
    // Finished ones started before the cutoff go; the one under watch stays whatever its age.
    let removed = DeploymentStore::prune(&*store, t0() - chrono::Duration::days(4)).unwrap();
    assert_eq!(removed, 3);
    assert!(
        DeploymentStore::get(&*store, &ids[1]).unwrap().is_some(),
        "still watching"
    );
    assert!(DeploymentStore::get(&*store, &ids[0]).unwrap().is_none());
    assert_eq!(memory.page(None, None, 10).unwrap().len(), 3);

    // The API pages the same way: `next` of a full page starts the following one.
    let h = Harness::start(
        healthy_head(),
        store.clone(),
        Arc::new(MemoryDispatchStore::default()),
        clock.clone(),
    );
    let ids_of = |v: &serde_json::Value| -> Vec<String> {
        v["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    let v = body_json(api::list(&h.handle, Some("job=api&limit=2")).await).await;
    assert_eq!(ids_of(&v), [id.clone(), ids[4].clone()]);
    assert_eq!(v["next"], ids[4].as_str());
    let q = format!("job=api&limit=2&before={}", ids[4]);
    let v = body_json(api::list(&h.handle, Some(&q)).await).await;
    assert_eq!(ids_of(&v), [ids[1].clone()]);
    assert!(v["next"].is_null(), "the last page");
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn verdicts_of_two_deployments_of_a_job_share_one_pagerduty_incident() {
    let h = harness(healthy_head());
    let id = h.deploy("v1").await;
    let mut failed = h.get(&id).await;
    failed.verdict = Verdict::Fail;
    failed.reason = "check error-rate failed 3 evaluations in a row".into();
    let mut passed = failed.clone();
    passed.id = "another-deployment".into();
    passed.version = "v2".into();
    passed.verdict = Verdict::Pass;
    passed.reason = "every check held for 19 evaluations".into();
    let mut blind = passed.clone();
    blind.verdict = Verdict::Inconclusive;
    let no_labels = BTreeMap::new();
    let notify = |d: &Deployment| verdict::notification(d, "pd", "", &no_labels, t0()).0;
    let (fail, pass, blind) = (notify(&failed), notify(&passed), notify(&blind));
    assert_eq!(fail.group_key, pass.group_key, "keyed by the job's gate");

    let trigger = crate::notify::pagerduty::event("rk", &fail);
    let resolve = crate::notify::pagerduty::event("rk", &pass);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    let warn = crate::notify::pagerduty::event("rk", &blind);
    assert_eq!(warn["payload"]["severity"], "warning");
    assert_eq!(
        crate::notify::opsgenie::alias(&pass),
        trigger["dedup_key"].as_str().unwrap()
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn recording_a_deployment_announces_it_to_the_gates_receivers() {
    let h = harness(healthy_head());
    let id = h
        .handle
        .start(NewDeployment {
            commit: Some("abc123".into()),
            author: Some("ada".into()),
            url: Some("https://ci.example.com/run/7".into()),
            ..new_deployment("api", "v2.0.1")
        })
        .await
        .unwrap();
    let q = h.started();
    assert_eq!(q.len(), 1, "one receiver, one notice");
    let n = &q[0];
    assert_eq!(n.receiver, "hook");
    assert_eq!(n.status, GroupStatus::Firing);
    let a = &n.alerts[0];
    let want: BTreeMap<String, String> = [
        ("alertname", "DeploymentStarted"),
        ("env", "prod"),
        ("job", "api"),
        ("severity", "info"),
        ("version", "v2.0.1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(a.labels, want);
    assert_eq!(
        a.annotations["summary"],
        "v2.0.1 of api deployed, watching for 10m"
    );
    assert_eq!(a.annotations["watch"], "10m");
    assert_eq!(a.annotations["baseline"], "10m");
    assert_eq!(a.annotations["commit"], "abc123");
    assert_eq!(a.annotations["author"], "ada");
    assert_eq!(a.annotations["url"], "https://ci.example.com/run/7");
    assert!(
        a.generator_url
            .ends_with(&format!("/api/v1/deployments/{id}"))
    );
    assert_eq!(n.headline(), "v2.0.1 of api deployed, watching for 10m");
    assert!(h.queued().is_empty(), "no verdict yet");
    // Sent through the outbox with a log entry of its own, never a verdict's.
    let keys: Vec<String> = h.queue.nlog.lock().unwrap().keys().cloned().collect();
    assert_eq!(keys, [verdict::started_nlog_key(&id, "hook")]);
    h.shutdown().await;
}
