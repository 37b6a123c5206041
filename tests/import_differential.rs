//! The same OpenMetrics history backfilled into a real Prometheus (`promtool tsdb
//! create-blocks-from openmetrics`) and imported into postflight (`postflight import
//! openmetrics`), then range queries over days of it compared value by value, and the series
//! and label answers compared as sets.

mod common;
#[path = "common/history.rs"]
mod history;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::{Daemon, http, require};
use history::{DAYS, backfilled_prometheus, history_file};
use serde_json::Value;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/data"
"#;

/// Range queries over the history, several at once through one helper.
const QUERIES: &[&str] = &[
    "http_requests_total",
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1h])",
    "increase(http_requests_total[10m])",
    "irate(http_requests_total[5m])",
    "resets(http_requests_total[1h])",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum without (instance) (increase(http_requests_total[1h]))",
    "topk(2, rate(http_requests_total[5m]))",
    "count by (job) (http_requests_total)",
    "rate(http_requests_total[5m] offset 1h)",
    "http_requests_total offset 1d",
    "rate(http_requests_total{code!=\"200\"}[5m]) / ignoring(code, instance) group_left sum by (job) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total[5m])) by (job) > 5",
    "temperature",
    "avg_over_time(temperature[30m])",
    "max_over_time(temperature[1h])",
    "min_over_time(temperature[1h])",
    "sum_over_time(temperature[15m])",
    "count_over_time(temperature[10m])",
    "stddev_over_time(temperature[1h])",
    "quantile_over_time(0.9, temperature[1h])",
    "last_over_time(temperature[10m])",
    "delta(temperature[30m])",
    "deriv(temperature[30m])",
    "avg(temperature) - min(temperature)",
    "temperature * 9 / 5 + 32",
    "abs(temperature - 20)",
    "histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, sum by (job, le) (rate(latency_seconds_bucket[10m])))",
    "histogram_quantile(0.9, rate(latency_seconds_bucket[1h]))",
    "rate(latency_seconds_sum[5m]) / rate(latency_seconds_count[5m])",
    "sum(increase(latency_seconds_count[1h])) by (job)",
    "latency_seconds_count offset 6h",
    "absent(nonexistent_metric)",
    "time() - timestamp(temperature)",
];

/// A matrix answer as series labels → [(t, value)].
fn matrix(body: &str) -> BTreeMap<String, Vec<(f64, f64)>> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["status"], "success", "{body}");
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let labels = s["metric"].to_string();
        let points = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = p[0].as_f64().unwrap();
                let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                (t, v)
            })
            .collect();
        out.insert(labels, points);
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn get(port: u16, path: &str) -> String {
    let (code, body) = http(port, "GET", path, None, &[]).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    body
}

/// `data` of a list answer (series, labels, values) as a set of JSON strings.
fn set(body: &str) -> BTreeSet<String> {
    let v: Value = serde_json::from_str(body).unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect()
}

#[test]
fn imported_history_answers_range_queries_as_backfilled_prometheus_does() {
    if !require("promtool") || !require("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Ends two hours ago on the minute: all of it in the store, none in the head's window.
    let (end, file) = history_file(dir.path());

    let (_prom, prom_port) = backfilled_prometheus(dir.path(), &file);

    let cfg = dir.path().join("postflight.toml");
    std::fs::write(
        &cfg,
        CONFIG
            .replace("{port}", "0")
            .replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_postflight"))
        .args(["import", "openmetrics"])
        .arg(&file)
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut d = Daemon::start_in(dir.path(), CONFIG, &[]);
    d.wait_ready();

    let start = end - DAYS * 86_400 + 3_600;
    let mut compared = 0usize;
    // Evaluated half-way between samples: Prometheus 2.42's range windows are closed at their
    // start, postflight's left-open as in Prometheus 3, which differ only for a sample exactly
    // on the window's start.
    for (from, to, step) in [(start + 30, end + 600, 1_800), (end - 7_170, end + 900, 60)] {
        for q in QUERIES {
            let path = format!(
                "/api/v1/query_range?query={}&start={from}&end={to}&step={step}",
                common::encode(q)
            );
            let theirs = matrix(&get(prom_port, &path));
            let ours = matrix(&get(d.port, &path));
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                theirs.keys().collect::<Vec<_>>(),
                "series of {q} over [{from}, {to}] step {step}"
            );
            for (series, want) in &theirs {
                let got = &ours[series];
                assert_eq!(
                    got.iter().map(|p| p.0).collect::<Vec<_>>(),
                    want.iter().map(|p| p.0).collect::<Vec<_>>(),
                    "timestamps of {q} {series}"
                );
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        close(g.1, w.1),
                        "{q} {series} at {}: ours {} theirs {}",
                        w.0,
                        g.1,
                        w.1
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 10_000, "only {compared} values compared");

    let window = format!("start={start}&end={end}");
    for path in [
        format!("/api/v1/series?match[]=http_requests_total&{window}"),
        format!(
            "/api/v1/series?match[]={}&{window}",
            common::encode("{__name__=~\"latency.*\",job=\"web\"}")
        ),
        format!("/api/v1/labels?{window}"),
        format!("/api/v1/labels?match[]=temperature&{window}"),
        format!("/api/v1/label/job/values?{window}"),
        format!("/api/v1/label/__name__/values?{window}"),
        format!("/api/v1/label/le/values?{window}"),
    ] {
        assert_eq!(
            set(&get(d.port, &path)),
            set(&get(prom_port, &path)),
            "{path}"
        );
    }
}
