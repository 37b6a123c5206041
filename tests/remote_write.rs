//! Remote write into a real Prometheus (`--web.enable-remote-write-receiver`): the series
//! arrive with postflight's values and the external labels; an outage of the receiver and a
//! restart of postflight during it leave neither a gap nor a refused (out-of-order) sample,
//! compared series by series through both query APIs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, free_port, http, require, wait_until};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/data"
[global]
probe_interval = "1s"
probe_timeout = "1s"
scrape_interval = "1s"
evaluation_interval = "1s"
external_labels = { replica = "a" }
[[job]]
name = "self"
targets = ["127.0.0.1:{port}"]
[[probe]]
name = "self-health"
url = "http://127.0.0.1:{port}/healthz"
[[remote_write]]
url = "http://127.0.0.1:{prom}/api/v1/write"
batch_send_deadline = "1s"
headers = { "X-Scope-OrgID" = "tenant-secret-4711" }
write_relabel = [{ action = "drop", source_labels = ["__name__"], regex = "go_.*|process_.*" }]
"#;

/// A Prometheus receiving remote writes, stopped by pid when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, port: u16) -> Prometheus {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, "global:\n  scrape_interval: 1m\n").unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("prometheus.log"))
            .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let p = Prometheus { child, port };
        wait_until(30, "Prometheus ready", || {
            http(port, "GET", "/-/ready", None, &[]).is_ok_and(|r| r.0 == 200)
        });
        p
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `query` (a range selector) at `at` through the API on `port`: each series (its labels
/// without `replica`) with its samples.
fn samples(port: u16, query: &str, at: f64) -> BTreeMap<String, Vec<(i64, u64)>> {
    let path = format!(
        "/api/v1/query?query={}&time={at:.3}",
        query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    );
    let (status, body) = http(port, "GET", &path, None, &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().expect("a matrix") {
        let mut metric = s["metric"].as_object().unwrap().clone();
        metric.remove("replica");
        let key = serde_json::to_string(&metric).unwrap();
        let points = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                    p[1].as_str().unwrap().parse::<f64>().unwrap().to_bits(),
                )
            })
            .collect();
        out.insert(key, points);
    }
    out
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn metric_sum(page: &str, prefix: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every sample postflight holds (head and store, through its query API) of the probe's and the
/// scrape's series since `began`, compared series by series with what Prometheus on
/// `prom_port` received: the same series, every sample once with its value, none missing.
fn same_series(port: u16, prom_port: u16, began: f64) {
    let at = now() - 6.0;
    let window = (at - began).ceil() as i64 + 5;
    for name in [
        "probe_success",
        "probe_duration_seconds",
        "up",
        "scrape_samples_scraped",
    ] {
        let q = format!("{name}[{window}s]");
        let ours = samples(port, &q, at);
        let theirs = samples(prom_port, &q, at);
        assert!(!ours.is_empty(), "{name}: postflight holds the series");
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name}: the same series"
        );
        for (series, points) in &ours {
            let got = &theirs[series];
            // Prometheus holds what was sent since the endpoint was first configured.
            let first = got.first().map_or(i64::MAX, |p| p.0);
            let expected: Vec<_> = points.iter().filter(|p| p.0 >= first).cloned().collect();
            assert!(
                expected.len() + 3 >= points.len(),
                "{series}: Prometheus starts with the first samples ({} of {})",
                expected.len(),
                points.len()
            );
            if expected != *got {
                let missing: Vec<_> = expected
                    .iter()
                    .filter(|p| !got.contains(p))
                    .map(|p| p.0)
                    .collect();
                panic!(
                    "{series}: every sample, once, with its value: {} expected, {} received, missing at {missing:?}",
                    expected.len(),
                    got.len()
                );
            }
            // Before, during and after the outage, less the restart's own pause.
            // (The probe's own series: its copy on the scraped /metrics page comes and goes.)
            if !series.contains("exported_instance") {
                assert!(got.len() >= 10, "{series}: {} samples", got.len());
            }
            eprintln!("{series}: {} samples", got.len());
        }
    }
}

#[test]
fn series_reach_a_real_prometheus_without_gaps_across_an_outage_and_a_restart() {
    if !require("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    // One listen port for both runs: it is the probe's and the target's `instance`.
    let port = free_port();
    let config = CONFIG
        .replace("{prom}", &prom_port.to_string())
        .replace("{port}", &port.to_string());
    let start = |dir: &Path| {
        let mut d = Daemon::start_in(dir, &config, &[]);
        d.port = port;
        d.wait_ready();
        d
    };
    let prom = Prometheus::start(dir.path(), prom_port);
    let mut d = start(dir.path());
    let began = now();

    // Values arrive, with the external label; write_relabel keeps go_* out.
    wait_until(30, "probe_success in Prometheus", || {
        http(
            prom_port,
            "GET",
            "/api/v1/query?query=probe_success%7Bprobe%3D%22self-health%22%2Creplica%3D%22a%22%7D",
            None,
            &[],
        )
        .is_ok_and(|r| r.1.contains("\"value\":["))
    });
    let go = http(
        prom_port,
        "GET",
        "/api/v1/query?query=count(%7B__name__%3D~%22go_.*%22%7D)",
        None,
        &[],
    )
    .unwrap()
    .1;
    assert!(
        go.contains("\"result\":[]"),
        "write_relabel drops go_*: {go}"
    );

    // The receiver goes away; postflight is restarted during the outage.
    std::thread::sleep(Duration::from_secs(4));
    prom.stop();
    std::thread::sleep(Duration::from_secs(5));
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(20));
    let log = d.log_text();
    assert!(
        !log.contains("tenant-secret-4711"),
        "a header's secret never reaches the log"
    );
    drop(d);
    let d = start(dir.path());
    std::thread::sleep(Duration::from_secs(5));
    let prom = Prometheus::start(dir.path(), prom_port);

    // Caught up: the send position is within a few seconds of now.
    wait_until(60, "remote write caught up", || {
        let page = d.get("/metrics").1;
        let lag = metric_sum(&page, "postflight_remote_write_lag_seconds{");
        lag > 0.0 && lag < 5.0
    });
    same_series(d.port, prom.port, began);
    let page = d.get("/metrics").1;
    assert_eq!(
        metric_sum(
            &page,
            "postflight_remote_write_samples_total{result=\"dropped\""
        ),
        0.0,
        "nothing refused after the restart: {page}"
    );
    assert!(
        !page.contains("tenant-secret-4711"),
        "a header's secret never reaches /metrics"
    );
}

/// An outage longer than the head's window (one minute here), with postflight stopped during
/// it: on the restart the head holds only the last minute, and what was not sent before it
/// is read back from the store.
#[test]
fn an_outage_longer_than_the_head_s_window_loses_nothing() {
    if !require("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let port = free_port();
    let config = CONFIG
        .replace(
            "[storage]\n",
            "[storage]\nhead_window = \"1m\"\ncheckpoint_interval = \"2s\"\n",
        )
        .replace("{prom}", &prom_port.to_string())
        .replace("{port}", &port.to_string());
    assert!(config.contains("head_window"));
    let start = |dir: &Path| {
        let mut d = Daemon::start_in(dir, &config, &[]);
        d.port = port;
        d.wait_ready();
        d
    };
    let prom = Prometheus::start(dir.path(), prom_port);
    let mut d = start(dir.path());
    let began = now();
    wait_until(30, "probe_success in Prometheus", || {
        http(
            prom_port,
            "GET",
            "/api/v1/query?query=probe_success",
            None,
            &[],
        )
        .is_ok_and(|r| r.1.contains("\"value\":["))
    });

    // The receiver goes away; postflight keeps running for a while, then stops for longer
    // than its head's window, and the receiver comes back only after its restart.
    std::thread::sleep(Duration::from_secs(3));
    prom.stop();
    std::thread::sleep(Duration::from_secs(10));
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(20));
    drop(d);
    std::thread::sleep(Duration::from_secs(70));
    let d = start(dir.path());
    let loaded = d.log_text();
    assert!(
        loaded.contains("head loaded from the store") && loaded.contains("window=1m"),
        "the head holds one minute: {loaded}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let prom = Prometheus::start(dir.path(), prom_port);
    wait_until(60, "remote write caught up", || {
        let page = d.get("/metrics").1;
        let lag = metric_sum(&page, "postflight_remote_write_lag_seconds{");
        lag > 0.0 && lag < 5.0
    });
    same_series(d.port, prom.port, began);
}
