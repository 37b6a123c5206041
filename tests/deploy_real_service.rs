//! Post-deployment gates against a real service on loopback whose error rate, latency
//! histogram and memory gauge the test controls, scraped by the real daemon: a clean deploy
//! passes, a regression fails within `interval × consecutive_failures` (plus the rate window),
//! a deploy with no traffic is inconclusive, and a restart during the watch changes nothing.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, TestServer};

/// A service: every 100 ms it serves `ok` good requests and `bad` errors, fast or slow.
struct Service {
    ok_per_tick: Arc<AtomicU64>,
    bad_per_tick: Arc<AtomicU64>,
    slow: Arc<AtomicU64>,
    server: TestServer,
}

fn service() -> Service {
    let (ok_c, bad_c, fast_c, slow_c) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let ok_per_tick = Arc::new(AtomicU64::new(20));
    let bad_per_tick = Arc::new(AtomicU64::new(0));
    let slow = Arc::new(AtomicU64::new(0));
    {
        let (ok_c, bad_c, fast_c, slow_c) =
            (ok_c.clone(), bad_c.clone(), fast_c.clone(), slow_c.clone());
        let (okp, badp, slow) = (ok_per_tick.clone(), bad_per_tick.clone(), slow.clone());
        std::thread::spawn(move || {
            // Bounded: the test binary exits long before.
            for _ in 0..20_000 {
                let (o, b) = (okp.load(Ordering::SeqCst), badp.load(Ordering::SeqCst));
                ok_c.fetch_add(o, Ordering::SeqCst);
                bad_c.fetch_add(b, Ordering::SeqCst);
                if slow.load(Ordering::SeqCst) == 1 {
                    slow_c.fetch_add(o + b, Ordering::SeqCst)
                } else {
                    fast_c.fetch_add(o + b, Ordering::SeqCst)
                };
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
    let server = TestServer::start(move |_| {
        let (ok, bad, fast, slow) = (
            ok_c.load(Ordering::SeqCst),
            bad_c.load(Ordering::SeqCst),
            fast_c.load(Ordering::SeqCst),
            slow_c.load(Ordering::SeqCst),
        );
        let body = format!(
            "# TYPE http_requests_total counter\nhttp_requests_total{{status=\"200\"}} {ok}\nhttp_requests_total{{status=\"500\"}} {bad}\n\
             # TYPE http_request_duration_seconds histogram\n\
             http_request_duration_seconds_bucket{{le=\"0.1\"}} {fast}\nhttp_request_duration_seconds_bucket{{le=\"1\"}} {}\nhttp_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
             http_request_duration_seconds_count {}\nhttp_request_duration_seconds_sum 0\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 100000000\n",
            fast + slow,
            fast + slow,
            fast + slow
        );
        (200, "text/plain; version=0.0.4", body)
    });
    Service {
        ok_per_tick,
        bad_per_tick,
        slow,
        server,
    }
}

fn gate(job: &str) -> String {
    format!(
        r#"
[[gate]]
job = "{job}"
watch = "8s"
baseline = "4s"
warmup = "0s"
interval = "1s"
consecutive_failures = 2
[[gate.check]]
name = "error-rate"
expr = 'sum(rate(http_requests_total{{job="{job}",status="500"}}[3s])) / sum(rate(http_requests_total{{job="{job}"}}[3s]))'
max = 0.05
guard = 'sum(rate(http_requests_total{{job="{job}"}}[3s])) > 1'
[[gate.check]]
name = "p99-latency"
expr = 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{job="{job}"}}[3s])))'
max = 0.5
guard = 'sum(rate(http_requests_total{{job="{job}"}}[3s])) > 1'
[[gate.check]]
name = "memory"
expr = 'sum(process_resident_memory_bytes{{job="{job}"}})'
max_increase = "20%"
"#
    )
}

fn config(services: &[(&str, &Service)]) -> String {
    let mut c = String::from(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{dir}/data\"\n[global]\nscrape_interval = \"1s\"\nevaluation_interval = \"1s\"\n",
    );
    for (job, s) in services {
        c.push_str(&format!(
            "[[job]]\nname = \"{job}\"\ntargets = [\"127.0.0.1:{}\"]\n",
            s.server.port
        ));
    }
    for (job, _) in services {
        c.push_str(&gate(job));
    }
    c
}

fn deploy(port: u16, job: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_postflight"))
        .args([
            "deploy",
            "--job",
            job,
            "--version",
            "v2",
            "--wait",
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn clean_bad_and_idle_deploys_get_pass_fail_and_inconclusive() {
    let (clean, bad, idle) = (service(), service(), service());
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(
        dir.path(),
        &config(&[("clean", &clean), ("bad", &bad), ("idle", &idle)]),
        &[],
    );
    d.wait_ready();
    // Baselines need data from before the deployment.
    std::thread::sleep(Duration::from_secs(6));
    idle.ok_per_tick.store(0, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (pc, pb, pi) = (
        deploy(d.port, "clean"),
        deploy(d.port, "bad"),
        deploy(d.port, "idle"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let regression = Instant::now();
    bad.bad_per_tick.store(5, Ordering::SeqCst);
    bad.slow.store(1, Ordering::SeqCst);

    let ob = pb.wait_with_output().unwrap();
    let failed_after = regression.elapsed();
    let out = String::from_utf8_lossy(&ob.stdout).to_string();
    assert_eq!(
        ob.status.code(),
        Some(1),
        "bad deploy fails: {out}{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    assert!(
        out.contains("error-rate") && out.contains("fail"),
        "each evaluation is printed: {out}"
    );
    // interval × consecutive_failures = 2 s, plus up to the 3 s rate window to see it, plus a
    // scrape interval and the client's 1 s poll.
    assert!(
        failed_after < Duration::from_secs(8),
        "failed {failed_after:?} after the regression started"
    );

    let oc = pc.wait_with_output().unwrap();
    assert_eq!(
        oc.status.code(),
        Some(0),
        "clean deploy passes: {}",
        String::from_utf8_lossy(&oc.stdout)
    );
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "pass only when the watch ends"
    );
    let oi = pi.wait_with_output().unwrap();
    assert_eq!(
        oi.status.code(),
        Some(3),
        "no traffic is inconclusive: {}",
        String::from_utf8_lossy(&oi.stdout)
    );
    let (_, m) = d.get("/metrics");
    assert!(
        m.contains("postflight_deployments_total{job=\"bad\",verdict=\"fail\"} 1"),
        "{m}"
    );
    let _ = &clean.slow;
}

#[test]
fn a_restart_during_the_watch_changes_nothing() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cfg = config(&[("api", &svc)]).replace("{port}", &port.to_string());
    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    d.port = port;
    d.wait_ready();
    std::thread::sleep(Duration::from_secs(6));
    let (st, body) = common::http(
        port,
        "POST",
        "/api/v1/deployments",
        Some(r#"{"job":"api","version":"v3"}"#),
        &[],
    )
    .unwrap();
    assert_eq!(st, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_secs(3));
    let before: serde_json::Value =
        serde_json::from_str(&d.get(&format!("/api/v1/deployments/{id}")).1).unwrap();
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    d.port = port;
    d.wait_ready();
    let after: serde_json::Value =
        serde_json::from_str(&d.get(&format!("/api/v1/deployments/{id}")).1).unwrap();
    for (b, a) in before["checks"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["checks"].as_array().unwrap())
    {
        assert_eq!(
            b["baseline"], a["baseline"],
            "same baseline after the restart"
        );
    }
    common::wait_until(20, "the verdict", || {
        let v: serde_json::Value =
            serde_json::from_str(&d.get(&format!("/api/v1/deployments/{id}")).1).unwrap();
        v["verdict"] != "watching"
    });
    let v: serde_json::Value =
        serde_json::from_str(&d.get(&format!("/api/v1/deployments/{id}")).1).unwrap();
    assert_eq!(v["verdict"], "pass", "{v}");
}
