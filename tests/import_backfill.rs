//! The same OpenMetrics history backfilled into a real Prometheus (`promtool tsdb
//! create-blocks-from openmetrics`) and imported into postflight (`postflight import
//! openmetrics`): both hold the same series with the same samples, and so does postflight
//! when each series' hours come out of order in the file.

mod common;
#[path = "common/history.rs"]
mod history;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{http, require};
use history::{DAYS, backfilled_prometheus, history, history_file};
use postflight::series::chunk::Chunk;
use postflight::store::Store;
use serde_json::Value;

type Series = BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>>;

/// Every raw sample Prometheus holds, by series: a range selector over the whole history.
fn prometheus_samples(port: u16, end: i64) -> Series {
    let days = DAYS + 1;
    let path = format!("/api/v1/query?query=%7B__name__%3D~%22.%2B%22%7D%5B{days}d%5D&time={end}");
    let (code, body) = http(port, "GET", &path, None, &[]).unwrap();
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut out = Series::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let labels = serde_json::from_value(s["metric"].clone()).unwrap();
        let samples = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, p[1].as_str().unwrap().parse().unwrap())
            })
            .collect();
        out.insert(labels, samples);
    }
    out
}

/// Every sample in postflight's store, by series, in the order its chunks hold them.
fn stored_samples(data: &Path) -> Series {
    let store = Store::open(data).unwrap().store;
    let mut out = Series::new();
    for c in store.samples.chunks_since(i64::MIN) {
        let c = c.unwrap();
        let labels = c
            .labels
            .iter()
            .map(|l| (l.name().to_string(), l.value().to_string()))
            .collect();
        let series: &mut Vec<(i64, f64)> = out.entry(labels).or_default();
        series.extend(
            Chunk::from_bytes(&c.bytes)
                .unwrap()
                .iter()
                .map(|s| (s.t, s.v)),
        );
    }
    out
}

#[test]
fn an_imported_history_holds_the_samples_a_backfilled_prometheus_holds_in_any_order() {
    if !require("promtool") || !require("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Ends two hours ago on the minute: all of it in the store, none in the head's window.
    let (end, file) = history_file(dir.path());
    let (_prom, port) = backfilled_prometheus(dir.path(), &file);
    let theirs = prometheus_samples(port, end);

    let shuffled = dir.path().join("shuffled.om");
    std::fs::write(&shuffled, history(end, true)).unwrap();
    assert_eq!(import_into(&file, &dir.path().join("a")), theirs);
    assert_eq!(import_into(&shuffled, &dir.path().join("b")), theirs);
}

/// Imports `file` into a new store in `dir`; returns its samples.
fn import_into(file: &Path, dir: &Path) -> Series {
    std::fs::create_dir(dir).unwrap();
    let cfg = dir.join("postflight.toml");
    let data = dir.join("data");
    std::fs::write(&cfg, format!("[storage]\npath = \"{}\"\n", data.display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_postflight"))
        .args(["import", "openmetrics"])
        .arg(file)
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = stored_samples(&data);
    let total: usize = ours.values().map(Vec::len).sum();
    assert!(
        stdout.contains(&format!("imported {} series, {total} samples", ours.len())),
        "{stdout}"
    );
    ours
}
