//! Remote write into a real Prometheus (`--web.enable-remote-write-receiver`): the series
//! arrive with postflight's values and the external labels; an outage of the receiver and a
//! restart of postflight during it leave neither a gap nor a refused (out-of-order) sample,
//! compared series by series through both query APIs.

mod common;
#[path = "common/remote.rs"]
mod remote;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, free_port, http, require, wait_until};
use remote::{metric_sum, names, now, same_series};

/// The series every test compares: the probe's and the scrape's.
const COMPARED: [&str; 4] = [
    "probe_success",
    "probe_duration_seconds",
    "up",
    "scrape_samples_scraped",
];

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

/// The daemon of `config` in `dir`, ready, answering on `port` (its `[api] listen`).
fn start_on(dir: &Path, config: &str, port: u16) -> Daemon {
    let mut d = Daemon::start_in(dir, config, &[]);
    d.port = port;
    d.wait_ready();
    d
}

/// The daemon's remote write lag, in seconds.
fn lag(d: &Daemon) -> f64 {
    metric_sum(&d.get("/metrics").1, "postflight_remote_write_lag_seconds{")
}

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
    let start = |dir: &Path| start_on(dir, &config, port);
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

    // The receiver goes away; postflight is restarted during the outage. Meanwhile the lag
    // grows with the outage, though no request gets through to end a round.
    std::thread::sleep(Duration::from_secs(4));
    prom.stop();
    std::thread::sleep(Duration::from_secs(2));
    let before = lag(&d);
    wait_until(15, "the lag growing during the outage", || {
        lag(&d) >= before + 5.0
    });
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
        let l = lag(&d);
        l > 0.0 && l < 5.0
    });
    let got = same_series(d.port, prom.port, began, "");
    assert_eq!(
        names(&got),
        COMPARED.map(String::from).into(),
        "postflight holds every series compared"
    );
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
    let start = |dir: &Path| start_on(dir, &config, port);
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
    // Caught up: the send position is within a few seconds of now.
    wait_until(60, "remote write caught up", || {
        let l = lag(&d);
        l > 0.0 && l < 5.0
    });
    let got = same_series(d.port, prom.port, began, "");
    assert_eq!(
        names(&got),
        COMPARED.map(String::from).into(),
        "postflight holds every series compared"
    );
}
