//! Queries over the whole retention with the real binary: history written into the store
//! before a restart, far older than the head's window, read back by `promtool query` value by
//! value (no gap and no double where the head's window starts), and the `[query]` limits with
//! Prometheus' errors.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, http, require};
use postflight::series::Labels;
use postflight::series::head::Head;

const STEP_S: i64 = 15;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/data"
[global]
scrape_interval = "1s"
[[job]]
name = "self"
targets = ["127.0.0.1:{port}"]
"#;

/// `history_x{i}` every 15 s from `from` to `to` (seconds), worth `i * 1000 + n` at its n-th
/// step, and `history_gone` for the first hour only, written with the library into the store
/// the daemon uses (while no daemon holds it).
fn write_history(dir: &std::path::Path, from: i64, to: i64) {
    let opened = postflight::store::Store::open(&dir.join("data")).unwrap();
    let store = opened.store;
    let head = Head::new();
    for n in 0..=(to - from) / STEP_S {
        let t = (from + n * STEP_S) * 1000;
        for i in 0..3 {
            let l = Labels::new([
                ("__name__", "history_x"),
                ("i", &i.to_string()),
                ("job", "old"),
            ]);
            head.append(&l, t, (i * 1000 + n) as f64);
        }
        if n * STEP_S <= 3600 {
            head.append(
                &Labels::new([("__name__", "history_gone"), ("job", "gone")]),
                t,
                1.0,
            );
        }
    }
    postflight::store::checkpoint::checkpoint(&head, &store.samples, true, i64::MIN).unwrap();
    store.samples.flush().unwrap();
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A `promtool query range` answer as series → [(t, value)].
fn parse_matrix(out: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut m: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let mut current = String::new();
    for line in out.lines() {
        if let Some(series) = line.strip_suffix(" =>") {
            current = series.to_string();
        } else if let Some((v, t)) = line.split_once(" @[") {
            let t: f64 = t.trim_end_matches(']').parse().unwrap();
            m.entry(current.clone())
                .or_default()
                .push((t as i64, v.parse().unwrap()));
        }
    }
    m
}

fn restart(d: Daemon, dir: &std::path::Path) -> Daemon {
    d.signal("TERM");
    let mut d = d;
    assert!(d.wait_exit(Duration::from_secs(20)).success());
    drop(d);
    let mut d = Daemon::start_in(dir, CONFIG, &[]);
    d.wait_ready();
    d
}

#[test]
fn promtool_reads_history_older_than_the_head_from_the_store_after_a_restart() {
    if !require("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), CONFIG, &[]);
    d.wait_ready();
    // Stopped, so that the history can be written into its store; then started again.
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success());
    drop(d);
    let now = chrono::Utc::now().timestamp() / STEP_S * STEP_S;
    let (from, to) = (now - 3 * 3600, now - 120);
    write_history(dir.path(), from, to);
    let mut d = Daemon::start_in(dir.path(), CONFIG, &[]);
    d.wait_ready();
    let url = format!("http://127.0.0.1:{}", d.port);

    let range = |q: &str, start: i64| {
        parse_matrix(&promtool(&[
            "query",
            "range",
            "--start",
            &start.to_string(),
            "--end",
            &to.to_string(),
            "--step",
            "15s",
            &url,
            q,
        ]))
    };
    let check = |got: &BTreeMap<String, Vec<(i64, f64)>>| {
        assert_eq!(got.len(), 3, "{got:?}");
        for (i, (series, points)) in got.iter().enumerate() {
            assert!(series.contains(&format!("i=\"{i}\"")), "{series}");
            let want: Vec<(i64, f64)> = (0..=(to - from) / STEP_S)
                .map(|n| (from + n * STEP_S, (i as i64 * 1000 + n) as f64))
                .collect();
            assert_eq!(points, &want, "{series}");
        }
    };
    // Three hours: the head holds the last 15 minutes, the store all of it.
    check(&range("history_x", from));
    // Every sample once: four in every minute, across the head's window boundary too.
    let counts = range("count_over_time(history_x[1m])", from + 60);
    assert_eq!(counts.len(), 3);
    for points in counts.values() {
        assert_eq!(points.len() as i64, (to - from - 60) / STEP_S + 1);
        assert!(points.iter().all(|p| p.1 == 4.0), "{points:?}");
    }
    // A series gone from the head for hours is found by its labels.
    let series = promtool(&["query", "series", "--match", "history_gone", &url]);
    assert!(series.contains("job=\"gone\""), "{series}");
    let labels = promtool(&["query", "labels", &url, "job"]);
    assert!(labels.lines().any(|l| l.trim() == "gone"), "{labels}");

    // And again after one more restart.
    let d = restart(d, dir.path());
    let url2 = format!("http://127.0.0.1:{}", d.port);
    let again = parse_matrix(&promtool(&[
        "query",
        "range",
        "--start",
        &from.to_string(),
        "--end",
        &to.to_string(),
        "--step",
        "15s",
        &url2,
        "history_x",
    ]));
    check(&again);
}

#[test]
fn query_limits_answer_with_prometheus_errors() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp() / STEP_S * STEP_S;
    std::fs::create_dir_all(dir.path()).unwrap();
    write_history(dir.path(), now - 3 * 3600, now - 120);
    let limited = |limits: &str| format!("{CONFIG}[query]\n{limits}\n");
    let mut d = Daemon::start_in(dir.path(), &limited("max_samples = 1000"), &[]);
    d.wait_ready();
    let q = &format!("/api/v1/query?query=sum(count_over_time(history_x%5B3h%5D))&time={now}");
    let (status, body) = d.get(q);
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "execution");
    assert_eq!(
        v["error"],
        "query processing would load too many samples into memory in query execution"
    );

    // Within the limit, the same query answers from the store: 3 series of 3 hours (the
    // window is left-open) up to 2 minutes ago.
    let reload = |d: &Daemon, limits: &str| {
        let text = limited(limits)
            .replace("{port}", &d.port.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        std::fs::write(dir.path().join("postflight.toml"), text).unwrap();
        let (status, body) = http(d.port, "POST", "/-/reload", None, &[]).unwrap();
        assert_eq!(status, 200, "{body}");
    };
    reload(&d, "max_samples = 100000");
    let (status, body) = d.get(q);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"2136\""), "{body}");

    // A timeout far shorter than the query: every second of three hours, each step sorting an
    // hour of samples per series (some 10,800 × 3 sorts of 240 points).
    reload(&d, "timeout = \"1ms\"");
    let (status, body) = d.get(&format!(
        "/api/v1/query_range?query=quantile_over_time(0.5,history_x%5B1h%5D)&start={}&end={}&step=1",
        now - 3 * 3600,
        now
    ));
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "timeout");
}
