//! The whole alerting path through the real binary: a scraped target trips a rule, the page
//! reaches a webhook on loopback — once, across SIGKILL restarts — the resolution is delivered
//! even when it happened while postflight was down, a receiver that is down gets the page
//! later from the durable outbox, and silences mute.

mod common;

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Daemon, SeenRequest, TestServer, http, wait_until};

struct World {
    errors: Arc<AtomicU64>,
    /// Status the webhook answers with.
    hook_status: Arc<AtomicU16>,
    /// Every request the webhook got, with the status it answered.
    hook_seen: Arc<Mutex<Vec<(u16, SeenRequest)>>>,
    target: TestServer,
    hook: TestServer,
}

fn world() -> World {
    let errors = Arc::new(AtomicU64::new(0));
    let e = errors.clone();
    let target = TestServer::start(move |_| {
        let v = e.load(Ordering::SeqCst);
        (
            200,
            "text/plain; version=0.0.4",
            format!(
                "# TYPE app_errors gauge\napp_errors {v}\n# TYPE app_info gauge\napp_info{{version=\"1\"}} 1\n"
            ),
        )
    });
    let hook_status = Arc::new(AtomicU16::new(200));
    let hook_seen: Arc<Mutex<Vec<(u16, SeenRequest)>>> = Arc::default();
    let (st, seen) = (hook_status.clone(), hook_seen.clone());
    let hook = TestServer::start(move |req| {
        let status = st.load(Ordering::SeqCst);
        seen.lock().unwrap().push((status, req.clone()));
        (status, "text/plain", String::new())
    });
    World {
        errors,
        hook_status,
        hook_seen,
        target,
        hook,
    }
}

impl World {
    fn config(&self) -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:{{port}}"
[storage]
path = "{{dir}}/data"
[global]
scrape_interval = "1s"
evaluation_interval = "1s"
labels = {{ env = "test" }}
[[job]]
name = "app"
targets = ["127.0.0.1:{target}"]
[[rule]]
alert = "AppErrors"
expr = 'app_errors > 0'
for = "0s"
labels = {{ severity = "page" }}
annotations = {{ summary = "{{{{ $value }}}} errors on {{{{ $labels.instance }}}}" }}
[[route]]
receivers = ["hook"]
group_by = ["alertname", "job"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "1h"
[[receiver]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{hook}/alerts"
timeout = "2s"
"#,
            target = self.target.port,
            hook = self.hook.port
        )
    }

    /// Delivered (2xx) webhook bodies, parsed.
    fn delivered(&self) -> Vec<serde_json::Value> {
        self.hook_seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, r)| serde_json::from_str(&r.body).unwrap())
            .collect()
    }
}

fn statuses(v: &[serde_json::Value]) -> Vec<String> {
    v.iter()
        .map(|n| n["status"].as_str().unwrap().to_string())
        .collect()
}

/// Starts the daemon again on the same directory and port.
fn start_again(dir: &std::path::Path, cfg: &str, port: u16) -> Daemon {
    let mut n = Daemon::start_in(dir, &cfg.replace("{port}", &port.to_string()), &[]);
    n.port = port;
    n.wait_ready();
    n
}

fn restart(d: &mut Daemon, dir: &std::path::Path, cfg: &str) -> Daemon {
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(5));
    start_again(dir, cfg, d.port)
}

#[test]
fn pages_once_across_sigkill_and_delivers_a_resolution_that_happened_while_down() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &w.config(), &[]);
    d.wait_ready();
    w.errors.store(3, Ordering::SeqCst);
    wait_until(15, "the first page", || !w.delivered().is_empty());
    let first = &w.delivered()[0];
    assert_eq!(first["status"], "firing");
    assert_eq!(first["version"], "4");
    assert_eq!(first["alerts"][0]["labels"]["alertname"], "AppErrors");
    assert_eq!(
        first["alerts"][0]["labels"]["env"], "test",
        "global labels on every alert"
    );
    assert_eq!(
        first["alerts"][0]["annotations"]["summary"],
        format!("3 errors on 127.0.0.1:{}", w.target.port)
    );

    // What an operator sees while it fires.
    let (_, alerts) = d.get("/api/v1/alerts");
    assert!(
        alerts.contains("\"state\":\"firing\"") && alerts.contains("AppErrors"),
        "{alerts}"
    );
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with("ALERTS{")
            && l.contains("alertname=\"AppErrors\"")
            && l.contains("alertstate=\"firing\"")),
        "{metrics}"
    );
    let (st, q) = d.get("/api/v1/query?query=ALERTS%7Balertname%3D%22AppErrors%22%7D");
    assert_eq!(st, 200, "{q}");
    assert!(
        q.contains("\"resultType\":\"vector\"") && q.contains("\"alertstate\":\"firing\""),
        "{q}"
    );
    let (_, hist) = d.get("/api/v1/history?alert=AppErrors");
    assert!(hist.contains("\"to\":\"firing\""), "{hist}");

    // Killed and restarted while it still fires: no second page inside repeat_interval.
    let cfg = w.config();
    let mut d = restart(&mut d, dir.path(), &cfg);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        statuses(&w.delivered()),
        vec!["firing"],
        "no duplicate page after SIGKILL: {}",
        d.log_text()
    );
    let (_, alerts) = d.get("/api/v1/alerts");
    assert!(
        alerts.contains("\"state\":\"firing\""),
        "still firing after the restart: {alerts}"
    );

    // Killed; the problem goes away while it is down; the resolution still arrives.
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(5));
    w.errors.store(0, Ordering::SeqCst);
    let mut d = start_again(dir.path(), &cfg, d.port);
    wait_until(15, "the resolution", || w.delivered().len() >= 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(statuses(&w.delivered()), vec!["firing", "resolved"]);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_receiver_that_is_down_gets_the_page_from_the_outbox_after_a_crash() {
    let w = world();
    w.hook_status.store(503, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &w.config(), &[]);
    d.wait_ready();
    w.errors.store(1, Ordering::SeqCst);
    wait_until(15, "a failed attempt", || {
        !w.hook_seen.lock().unwrap().is_empty()
    });
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(5));
    w.hook_status.store(200, Ordering::SeqCst);
    let mut d = start_again(dir.path(), &w.config(), d.port);
    wait_until(20, "delivery after the restart", || {
        !w.delivered().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        statuses(&w.delivered()),
        vec!["firing"],
        "delivered exactly once"
    );
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.contains("postflight_notifications_total{receiver=\"hook\",result=\"success\"} 1"),
        "{metrics}"
    );
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));
}

#[test]
fn silences_mute_until_expired_through_the_api() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &w.config(), &[]);
    d.wait_ready();
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body = format!(
        r#"{{"matchers":["alertname=\"AppErrors\""],"endsAt":"{ends}","comment":"deploying","createdBy":"ops"}}"#
    );
    let (st, created) = http(d.port, "POST", "/api/v1/silences", Some(&body), &[]).unwrap();
    assert_eq!(st, 200, "{created}");
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, list) = d.get("/api/v1/silences");
    assert!(
        list.contains(&id) && list.contains("\"state\":\"active\""),
        "{list}"
    );

    w.errors.store(1, Ordering::SeqCst);
    wait_until(10, "the alert to fire", || {
        d.get("/api/v1/alerts").1.contains("\"state\":\"firing\"")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(w.delivered().is_empty(), "silenced");

    let (st, _) = http(
        d.port,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        None,
        &[],
    )
    .unwrap();
    assert_eq!(st, 200);
    let (st, _) = http(d.port, "DELETE", "/api/v1/silences/nope", None, &[]).unwrap();
    assert_eq!(st, 404);
    wait_until(10, "the page after the silence expired", || {
        !w.delivered().is_empty()
    });
    let (st, bad) = http(
        d.port,
        "POST",
        "/api/v1/silences",
        Some(r#"{"matchers":["job=~\".*\""],"endsAt":"2099-01-01T00:00:00Z"}"#),
        &[],
    )
    .unwrap();
    assert_eq!(
        st, 400,
        "a silence that matches everything is refused: {bad}"
    );
}

#[test]
fn notify_test_reports_the_receivers_answer() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let cfg = w
        .config()
        .replace("{port}", &common::free_port().to_string())
        .replace("{dir}", &dir.path().display().to_string())
        + "[[receiver]]\nname = \"dead\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/x\"\ntimeout = \"2s\"\n";
    let path = dir.path().join("pf.toml");
    std::fs::write(&path, cfg).unwrap();
    let bin = env!("CARGO_BIN_EXE_postflight");
    let ok = std::process::Command::new(bin)
        .args(["notify-test", "hook", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let sent = w.delivered();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["alerts"][0]["labels"]["alertname"],
        "PostflightTest"
    );
    let bad = std::process::Command::new(bin)
        .args(["notify-test", "dead", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("failed"));

    // An invalid config is exit 2 with the problem's position, as `check` reports it.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[receiver]]\nname = \"x\"\ntype = \"carrier-pigeon\"\n",
    )
    .unwrap();
    let invalid = std::process::Command::new(bin)
        .args(["notify-test", "x", "-c"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(invalid.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("broken.toml:"),
        "{}",
        String::from_utf8_lossy(&invalid.stderr)
    );
}

/// A target whose pages take `SLOW` to render after the first: the page that shows the
/// problem lands `SLOW` after its scrape started, and the rule must see it then. (The first
/// round follows the target's first, fast, page; a grid of evaluations anchored there would
/// tick `SLOW` before every later page lands, and page `interval - SLOW` late.)
#[test]
fn a_rule_is_evaluated_when_the_scrape_that_shows_the_problem_lands_not_on_the_next_tick() {
    const SLOW: Duration = Duration::from_secs(2);
    type Times = Arc<Mutex<std::collections::HashMap<u64, std::time::Instant>>>;
    // The iteration whose problem the page shows (0: none), when each first showed it, and
    // when its page arrived.
    let broken = Arc::new(AtomicU64::new(0));
    let (shown, paged): (Times, Times) = Default::default();
    let scrapes = Arc::new(AtomicU64::new(0));
    let (b, s, n) = (broken.clone(), shown.clone(), scrapes.clone());
    let target = TestServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) > 0 {
            std::thread::sleep(SLOW);
        }
        let mut body = "app_ok 1\n".to_string();
        let it = b.load(Ordering::SeqCst);
        if it > 0 {
            body += &format!("app_broken{{iter=\"{it}\"}} 1\n");
            s.lock()
                .unwrap()
                .entry(it)
                .or_insert_with(std::time::Instant::now);
        }
        (200, "text/plain; version=0.0.4", body)
    });
    let p = paged.clone();
    let hook = TestServer::start(move |req| {
        let now = std::time::Instant::now();
        let v: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
        for a in v["alerts"].as_array().into_iter().flatten() {
            if a["status"] == "firing"
                && let Some(it) = a["labels"]["iter"].as_str().and_then(|i| i.parse().ok())
            {
                p.lock().unwrap().entry(it).or_insert(now);
            }
        }
        (200, "text/plain", String::new())
    });
    let cfg = format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
[storage]
path = "{{dir}}/data"
[global]
scrape_interval = "4s"
evaluation_interval = "4s"
[[job]]
name = "app"
targets = ["127.0.0.1:{target}"]
scrape_timeout = "3s"
[[rule]]
alert = "AppBroken"
expr = 'app_broken == 1'
for = "0s"
[[route]]
receivers = ["hook"]
group_by = ["alertname", "iter"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "1h"
[[receiver]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{hook}/alerts"
timeout = "2s"
"#,
        target = target.port,
        hook = hook.port
    );
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    d.wait_ready();
    // The fast first page and a slow one: the first round is behind.
    wait_until(20, "two scrapes", || scrapes.load(Ordering::SeqCst) >= 3);
    let mut lags = Vec::new();
    for it in 1..=3 {
        broken.store(it, Ordering::SeqCst);
        wait_until(20, "the page", || paged.lock().unwrap().contains_key(&it));
        let lag = paged.lock().unwrap()[&it] - shown.lock().unwrap()[&it];
        lags.push(lag);
    }
    eprintln!("from the page that shows the problem to the webhook: {lags:?}");
    lags.sort();
    assert!(
        lags[1] < Duration::from_secs(1),
        "from the page that shows the problem to the webhook: {lags:?} (a grid would take \
         about {:?}); {}",
        Duration::from_secs(4) - SLOW,
        d.log_text()
    );
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));
}
