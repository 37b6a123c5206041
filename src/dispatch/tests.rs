//! The dispatcher on a paused clock, against an in-memory store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::alert::{Alert, AlertState};
use crate::config::load_str;
use crate::series::Labels;

const CONFIG: &str = r#"
[[route]]
matchers = ['severity="page"']
receivers = ["hook", "quiet"]
group_by = ["alertname", "job"]
group_wait = "30s"
group_interval = "5m"
repeat_interval = "1h"

[[inhibit]]
source_matchers = ['alertname="ProbeFailed"']
target_matchers = ['alertname="HighLatency"']
equal = ["job"]

[[receiver]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/"

[[receiver]]
name = "quiet"
type = "webhook"
url = "http://127.0.0.1:9/"
send_resolved = false
"#;

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

struct Harness {
    handle: DispatcherHandle,
    store: Arc<MemoryDispatchStore>,
    clock: Clock,
    stop: CancellationToken,
}

fn harness_with(store: Arc<MemoryDispatchStore>, clock: Clock) -> Harness {
    let config = Arc::new(load_str(CONFIG, "t").unwrap());
    let (d, handle) = Dispatcher::new(config, store.clone(), clock.clone(), Telemetry::new(), None);
    let stop = CancellationToken::new();
    tokio::spawn(d.run(stop.clone()));
    Harness {
        handle,
        store,
        clock,
        stop,
    }
}

fn harness() -> Harness {
    harness_with(
        Arc::new(MemoryDispatchStore::default()),
        Clock::tokio_from(start()),
    )
}

fn alert(h: &Harness, name: &str, job: &str, state: AlertState) -> Alert {
    let now = h.clock.now();
    Alert {
        labels: Labels::new([("alertname", name), ("job", job), ("severity", "page")]),
        annotations: BTreeMap::new(),
        state,
        active_at: now,
        fired_at: Some(now),
        resolved_at: (state == AlertState::Resolved).then_some(now),
        value: 1.0,
        generator_url: String::new(),
    }
}

impl Harness {
    /// Notifications queued for `receiver`, as (status, alert count).
    fn sent(&self, receiver: &str) -> Vec<(String, usize)> {
        self.store
            .queued
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.receiver == receiver)
            .map(|n| (n.status.as_str().to_string(), n.alerts.len()))
            .collect()
    }
    async fn advance(&self, secs: u64) {
        tokio::time::advance(Duration::from_secs(secs)).await;
        self.handle.sync().await;
    }
    async fn update(&self, alerts: Vec<Alert>) {
        self.handle.update_alerts("rules", alerts).await;
        self.handle.sync().await;
    }
}

fn fire(n: usize) -> Vec<(String, usize)> {
    vec![("firing".to_string(), n)]
}

#[tokio::test(start_paused = true)]
async fn first_notification_after_group_wait_then_no_repeat_inside_repeat_interval() {
    let h = harness();
    let a = alert(&h, "HighErrorRate", "api", AlertState::Firing);
    h.update(vec![a.clone()]).await;
    h.advance(29).await;
    assert!(h.sent("hook").is_empty(), "nothing before group_wait");
    h.advance(1).await;
    assert_eq!(h.sent("hook"), fire(1));
    // Unchanged for 55 minutes: every group_interval flush finds nothing new.
    for _ in 0..11 {
        h.update(vec![a.clone()]).await;
        h.advance(300).await;
    }
    assert_eq!(h.sent("hook"), fire(1));
    // Past repeat_interval: repeated once.
    h.update(vec![a.clone()]).await;
    h.advance(300).await;
    assert_eq!(h.sent("hook").len(), 2);
    h.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn an_alert_that_resolves_before_group_wait_is_never_sent() {
    let h = harness();
    h.update(vec![alert(&h, "Flap", "api", AlertState::Firing)])
        .await;
    h.advance(10).await;
    h.update(vec![]).await;
    h.advance(3600).await;
    assert!(h.sent("hook").is_empty());
    assert!(h.sent("quiet").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_new_alert_joins_its_group_at_the_next_group_interval() {
    let h = harness();
    let a = alert(&h, "HighErrorRate", "api", AlertState::Firing);
    h.update(vec![a.clone()]).await;
    h.advance(30).await;
    let mut b = alert(&h, "HighErrorRate", "api", AlertState::Firing);
    b.labels = b.labels.with("instance", "b");
    h.update(vec![a.clone(), b.clone()]).await;
    h.advance(299).await;
    assert_eq!(h.sent("hook"), fire(1));
    h.advance(1).await;
    assert_eq!(
        h.sent("hook"),
        vec![("firing".to_string(), 1), ("firing".to_string(), 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn resolution_is_sent_where_send_resolved_and_logged_everywhere() {
    let h = harness();
    let a = alert(&h, "HighErrorRate", "api", AlertState::Firing);
    h.update(vec![a.clone()]).await;
    h.advance(30).await;
    h.update(vec![]).await;
    h.advance(300).await;
    assert_eq!(
        h.sent("hook"),
        vec![("firing".to_string(), 1), ("resolved".to_string(), 1)]
    );
    assert_eq!(
        h.sent("quiet"),
        fire(1),
        "send_resolved = false: no resolved message"
    );
    // The log of "quiet" says nothing is firing any more, so a new firing pages again.
    h.update(vec![alert(&h, "HighErrorRate", "api", AlertState::Firing)])
        .await;
    h.advance(30).await;
    assert_eq!(h.sent("quiet").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn silences_mute_until_they_expire() {
    let h = harness();
    let id = h
        .handle
        .add_silence(NewSilence {
            matchers: vec!["job=\"api\"".into()],
            starts_at: None,
            ends_at: h.clock.now() + chrono::Duration::minutes(20),
            comment: "deploying".into(),
            created_by: "ops".into(),
        })
        .await
        .unwrap();
    let list = h.handle.silences().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].1, "active");
    let a = alert(&h, "HighErrorRate", "api", AlertState::Firing);
    h.update(vec![a.clone()]).await;
    h.advance(30).await;
    h.advance(300).await;
    assert!(h.sent("hook").is_empty(), "silenced");
    h.handle.expire_silence(&id).await.unwrap();
    assert_eq!(h.handle.silences().await[0].1, "expired");
    h.advance(300).await;
    assert_eq!(h.sent("hook"), fire(1));
    assert_eq!(
        h.handle.expire_silence("nope").await,
        Err("not found".into())
    );
    assert!(
        h.store.silences.lock().unwrap().contains_key(&id),
        "persisted"
    );
}

#[tokio::test(start_paused = true)]
async fn silences_that_match_everything_or_end_before_they_start_are_refused() {
    let h = harness();
    let bad = |m: &str, mins: i64| NewSilence {
        matchers: vec![m.into()],
        starts_at: None,
        ends_at: h.clock.now() + chrono::Duration::minutes(mins),
        comment: String::new(),
        created_by: String::new(),
    };
    assert!(h.handle.add_silence(bad("job=~\".*\"", 10)).await.is_err());
    assert!(h.handle.add_silence(bad("job=\"api\"", -10)).await.is_err());
    assert!(h.handle.add_silence(bad("job", 10)).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn inhibition_mutes_the_target_while_the_source_fires() {
    let h = harness();
    let src = alert(&h, "ProbeFailed", "api", AlertState::Firing);
    let target = alert(&h, "HighLatency", "api", AlertState::Firing);
    let other = alert(&h, "HighLatency", "db", AlertState::Firing);
    h.update(vec![src.clone(), target.clone(), other.clone()])
        .await;
    h.advance(30).await;
    let groups: Vec<String> = h
        .store
        .queued
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.receiver == "hook")
        .map(|n| n.group_key.clone())
        .collect();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert!(groups.iter().any(|g| g.contains("ProbeFailed")));
    assert!(
        groups
            .iter()
            .any(|g| g.contains("HighLatency") && g.contains("db"))
    );
}

#[tokio::test(start_paused = true)]
async fn restart_neither_repeats_a_page_nor_loses_a_resolution() {
    let store = Arc::new(MemoryDispatchStore::default());
    let clock = Clock::tokio_from(start());
    let h = harness_with(store.clone(), clock.clone());
    let a = alert(&h, "HighErrorRate", "api", AlertState::Firing);
    let b = alert(&h, "HighErrorRate", "db", AlertState::Firing);
    h.update(vec![a.clone(), b.clone()]).await;
    h.advance(30).await;
    assert_eq!(
        store
            .queued
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.receiver == "hook")
            .count(),
        2
    );
    h.stop.cancel();

    // A new dispatcher on the same store, ten minutes later: `a` still fires, `b` resolved
    // while the daemon was down (the rules engine restored it and saw it clear).
    tokio::time::advance(Duration::from_secs(600)).await;
    let h2 = harness_with(store.clone(), clock.clone());
    let mut b_resolved = b.clone();
    b_resolved.state = AlertState::Resolved;
    b_resolved.resolved_at = Some(clock.now());
    h2.update(vec![a.clone(), b_resolved]).await;
    h2.advance(30).await;
    let hook: Vec<(String, String)> = store
        .queued
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.receiver == "hook")
        .map(|n| (n.status.as_str().to_string(), n.group_key.clone()))
        .collect();
    assert_eq!(
        hook.len(),
        3,
        "no second page for `a`, one resolution for `b`: {hook:?}"
    );
    assert_eq!(hook[2].0, "resolved");
    assert!(hook[2].1.contains("db"));
}

#[tokio::test(start_paused = true)]
async fn unrouted_alerts_are_counted() {
    let h = harness();
    let mut a = alert(&h, "Other", "api", AlertState::Firing);
    a.labels = a.labels.with("severity", "info");
    h.update(vec![a]).await;
    h.advance(60).await;
    assert!(h.store.queued.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn notification_log_entries_older_than_the_retention_are_deleted() {
    let h = harness();
    let a = alert(&h, "HighErrorRate", "api", AlertState::Firing);
    h.update(vec![a.clone()]).await;
    h.advance(30).await;
    assert_eq!(h.sent("hook"), fire(1));
    let mut resolved = a.clone();
    resolved.state = AlertState::Resolved;
    resolved.resolved_at = Some(h.clock.now());
    h.update(vec![resolved]).await;
    h.advance(300).await;
    assert!(
        !h.store.nlog.lock().unwrap().is_empty(),
        "the group's log entries"
    );
    // The default retention is 15 days: the entries go at the first clean-up after it.
    for _ in 0..(15 * 24 * 6 + 2) {
        h.advance(600).await;
    }
    assert!(
        h.store.nlog.lock().unwrap().is_empty(),
        "entries older than the retention are deleted from the store"
    );
}

#[tokio::test(start_paused = true)]
async fn a_maintenance_window_mutes_on_its_wall_clock_schedule_across_a_dst_switch() {
    // Sunday 01:00-04:00 in Berlin, on the night summer time starts (2024-03-31): 02:00 CET
    // becomes 03:00 CEST, so the window is 00:00-02:00 UTC.
    let config = format!(
        "{CONFIG}\n[[maintenance]]\nname = \"weekly-db\"\nmatchers = ['job=\"db\"']\nschedule = \"Sun 01:00-04:00\"\ntimezone = \"Europe/Berlin\"\n"
    );
    let config = Arc::new(load_str(&config, "t").unwrap());
    let clock = Clock::tokio_from(DateTime::from_timestamp(1_711_842_600, 0).unwrap()); // 2024-03-30T23:50:00Z
    let store = Arc::new(MemoryDispatchStore::default());
    let (d, handle) = Dispatcher::new(config, store.clone(), clock.clone(), Telemetry::new(), None);
    let stop = CancellationToken::new();
    tokio::spawn(d.run(stop.clone()));
    let h = Harness {
        handle,
        store,
        clock,
        stop,
    };
    h.advance(11 * 60).await; // 00:01 UTC: the window is on
    let silences = h.handle.silences().await;
    let (s, state) = &silences[0];
    assert_eq!(
        (s.created_by.as_str(), *state),
        ("maintenance:weekly-db", "active")
    );
    assert_eq!(s.ends_at.to_rfc3339(), "2024-03-31T02:00:00+00:00");
    let db = alert(&h, "DiskFull", "db", AlertState::Firing);
    let api = alert(&h, "HighErrorRate", "api", AlertState::Firing);
    h.update(vec![db.clone(), api.clone()]).await;
    h.advance(30).await;
    let db_pages = |h: &Harness| {
        h.store
            .queued
            .lock()
            .unwrap()
            .iter()
            .filter(|n| {
                n.receiver == "hook" && n.group_labels.get("job").map(String::as_str) == Some("db")
            })
            .count()
    };
    assert_eq!(h.sent("hook"), fire(1), "only the alert outside the window");
    assert_eq!(db_pages(&h), 0);
    // Still muted until 02:00 UTC (04:00 CEST), not until 03:00 UTC.
    for _ in 0..23 {
        h.update(vec![db.clone(), api.clone()]).await;
        h.advance(300).await;
    }
    assert_eq!(db_pages(&h), 0, "muted through 01:56 UTC");
    for _ in 0..2 {
        h.update(vec![db.clone(), api.clone()]).await;
        h.advance(300).await;
    }
    assert_eq!(
        db_pages(&h),
        1,
        "the db alert goes out once the window ends"
    );
    assert!(
        h.handle.silences().await.is_empty(),
        "an inactive window is not listed"
    );
    h.stop.cancel();
}
