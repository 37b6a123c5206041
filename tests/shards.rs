//! `[global] shard = "i/n"`: three instances of one config run disjoint shares of its probes
//! and scrape targets that add up to all of them, and `check` prints the same split; remote
//! writing into one real Prometheus, every probe's and target's series arrives exactly once.

mod common;
#[path = "common/remote.rs"]
mod remote;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::{Daemon, TestServer, free_port, http, prometheus, require, wait_until};
use remote::{metric_sum, now, same_series};

fn config(shard: u32) -> String {
    let closed = free_port();
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n[storage]\npath = \"{{dir}}/data\"\n[global]\nshard = \"{shard}/3\"\nprobe_interval = \"1h\"\nscrape_interval = \"1h\"\n"
    );
    for i in 0..12 {
        text.push_str(&format!(
            "[[probe]]\nname = \"probe-{i}\"\nurl = \"http://127.0.0.1:{closed}/{i}\"\n"
        ));
    }
    let targets: Vec<String> = (0..15)
        .map(|t| format!("\"127.0.0.1:{}\"", 20000 + t))
        .collect();
    text.push_str(&format!(
        "[[job]]\nname = \"node\"\ntargets = [{}]\n",
        targets.join(", ")
    ));
    text
}

#[test]
fn three_shards_of_one_config_run_disjoint_shares_that_add_up_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut probes: Vec<String> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    let mut printed: Vec<String> = Vec::new();
    for shard in 1..=3 {
        let sub = dir.path().join(shard.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        let mut d = Daemon::start_in(&sub, &config(shard), &[]);
        d.wait_ready();
        let (_, body) = d.get("/api/v1/targets");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let list = v["targets"].as_array().expect("targets");
        let mine_p: Vec<String> = list
            .iter()
            .filter(|t| t["kind"] == "probe")
            .map(|t| t["probe"].as_str().unwrap().to_string())
            .collect();
        let mine_t: Vec<String> = list
            .iter()
            .filter(|t| t["kind"] == "scrape")
            .map(|t| t["url"].as_str().unwrap().to_string())
            .collect();
        assert!(
            !mine_p.is_empty() && !mine_t.is_empty(),
            "shard {shard} runs a share: {body}"
        );
        // `check` counts this instance's share as it runs it.
        let out = Command::new(env!("CARGO_BIN_EXE_postflight"))
            .args(["check", "-c"])
            .arg(sub.join("postflight.toml"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = format!(
            "shard {shard}/3: {} probes, {} scrape targets, 0 log sources  (this instance)",
            mine_p.len(),
            mine_t.len()
        );
        assert!(text.contains(&line), "{line:?} in:\n{text}");
        printed.push(text);
        probes.extend(mine_p);
        targets.extend(mine_t);
    }
    let (np, nt) = (probes.len(), targets.len());
    let probes: BTreeSet<String> = probes.into_iter().collect();
    let targets: BTreeSet<String> = targets.into_iter().collect();
    assert_eq!((np, probes.len()), (12, 12), "each probe runs exactly once");
    assert_eq!(
        (nt, targets.len()),
        (15, 15),
        "each target is scraped exactly once"
    );
    assert!(
        printed
            .iter()
            .all(|p| p.lines().filter(|l| l.starts_with("shard ")).count() == 3)
    );
}

/// Shard `shard` of three of one config: nine probes of one server, nine scrape targets, all
/// remote-written to `prom`. Each shard carries its own external label `shard`, so the
/// receiver tells the shards' series apart (and a series sent by two shards would show twice).
fn remote_config(shard: u32, prom: u16, probed: u16, targets: &[u16]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n[storage]\npath = \"{{dir}}/data\"\n[global]\nshard = \"{shard}/3\"\nprobe_interval = \"1s\"\nprobe_timeout = \"1s\"\nscrape_interval = \"1s\"\nexternal_labels = {{ shard = \"{shard}\" }}\n[[remote_write]]\nurl = \"http://127.0.0.1:{prom}/api/v1/write\"\nbatch_send_deadline = \"1s\"\n"
    );
    for i in 0..9 {
        text.push_str(&format!(
            "[[probe]]\nname = \"probe-{i}\"\nurl = \"http://127.0.0.1:{probed}/{i}\"\n"
        ));
    }
    let targets: Vec<String> = targets
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    text.push_str(&format!(
        "[[job]]\nname = \"node\"\ntargets = [{}]\n",
        targets.join(", ")
    ));
    text
}

/// `query` (an instant vector) on Prometheus: each result's `by` label with its value.
fn counts(prom: u16, query: &str, by: &str) -> BTreeMap<String, f64> {
    let path = format!("/api/v1/query?query={}", common::encode(query));
    let (status, body) = http(prom, "GET", &path, None, &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|r| {
            (
                r["metric"][by].as_str().unwrap_or_default().to_string(),
                r["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
            )
        })
        .collect()
}

#[test]
fn three_shards_remote_write_every_series_into_one_prometheus_exactly_once() {
    if !require("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let probed = TestServer::start(|_| (200, "text/plain", "ok".into()));
    let targets: Vec<TestServer> = (0..9)
        .map(|_| {
            TestServer::start(|_| {
                (
                    200,
                    "text/plain; version=0.0.4",
                    "# TYPE demo_value gauge\ndemo_value 1\n".into(),
                )
            })
        })
        .collect();
    let target_ports: Vec<u16> = targets.iter().map(|t| t.port).collect();
    let (_prom, prom) = prometheus(
        dir.path(),
        "global:\n  scrape_interval: 1m\n",
        None,
        &["--web.enable-remote-write-receiver"],
    );
    let began = now();
    let shards: Vec<Daemon> = (1..=3)
        .map(|shard| {
            let sub = dir.path().join(shard.to_string());
            std::fs::create_dir_all(&sub).unwrap();
            let mut d = Daemon::start_in(
                &sub,
                &remote_config(shard, prom, probed.port, &target_ports),
                &[],
            );
            d.wait_ready();
            d
        })
        .collect();
    std::thread::sleep(Duration::from_secs(20));
    for d in &shards {
        wait_until(60, "every shard caught up", || {
            let lag = metric_sum(&d.get("/metrics").1, "postflight_remote_write_lag_seconds{");
            lag > 0.0 && lag < 5.0
        });
    }

    // Series by series, each shard's copy in Prometheus (its external label) is what the shard
    // holds: no gap, no sample twice, the same values.
    let mut arrived = 0;
    for (i, d) in shards.iter().enumerate() {
        let got = same_series(d.port, prom, began, &format!("{{shard=\"{}\"}}", i + 1));
        for (series, points) in &got {
            // One sample a second (a scrape or probe is never skipped here): none missing
            // between the first and the last.
            let widest = points
                .windows(2)
                .map(|w| w[1].0 - w[0].0)
                .max()
                .unwrap_or(0);
            assert!(
                points.len() >= 10 && widest < 1900,
                "{series}: {} samples, {widest} ms apart at most",
                points.len()
            );
        }
        arrived += got.len();
    }
    // Every probe's and every target's series arrives from exactly one shard.
    let w = (now() - began).ceil() as i64;
    let per_probe = counts(
        prom,
        &format!("count by (probe) (last_over_time(probe_success[{w}s]))"),
        "probe",
    );
    let want: BTreeMap<String, f64> = (0..9).map(|i| (format!("probe-{i}"), 1.0)).collect();
    assert_eq!(per_probe, want, "each probe's series once");
    let per_target = counts(
        prom,
        &format!("count by (instance) (last_over_time(up[{w}s]))"),
        "instance",
    );
    let want: BTreeMap<String, f64> = target_ports
        .iter()
        .map(|p| (format!("127.0.0.1:{p}"), 1.0))
        .collect();
    assert_eq!(per_target, want, "each target's series once");
    let total = counts(
        prom,
        &format!(
            "count(last_over_time({{__name__=~\"probe_success|probe_duration_seconds|up|scrape_samples_scraped\"}}[{w}s]))"
        ),
        "",
    );
    assert_eq!(
        total.values().sum::<f64>() as usize,
        arrived,
        "the shards' series add up to what Prometheus holds"
    );
}
