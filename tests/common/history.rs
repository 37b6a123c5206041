//! A few days of OpenMetrics history (counters, gauges, a histogram), the same on every run,
//! for the import tests that compare postflight with a backfilled Prometheus.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::common::Stopped;

/// Sample step of the history, in seconds.
pub const STEP: i64 = 60;
/// Days of history.
pub const DAYS: i64 = 3;
const BUCKETS: [&str; 6] = ["0.01", "0.05", "0.1", "0.5", "1.0", "+Inf"];

/// A small deterministic generator (xorshift), so both sides read the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `DAYS` days of counters (one with a reset, one with a gap of an hour), gauges and a
/// histogram, ending at `end` (seconds); series written one after the other, each series'
/// samples in time order, or with `shuffled` in blocks of an hour out of order (which
/// `promtool` drops silently; the import sorts them).
pub fn history(end: i64, shuffled: bool) -> String {
    let points = DAYS * 86_400 / STEP;
    let start = end - (points - 1) * STEP;
    let times: Vec<i64> = (0..points).map(|k| start + k * STEP).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut f = String::new();
    // Hours in an order that is not time order.
    let hours: Vec<&[i64]> = {
        let mut h: Vec<&[i64]> = times.chunks(60).collect();
        let n = h.len();
        for i in (0..n).filter(|_| shuffled) {
            h.swap(i, (i * 7 + 3) % n);
        }
        h
    };
    let emit = |f: &mut String, name: &str, labels: &str, values: &BTreeMap<i64, f64>| {
        for hour in &hours {
            for t in hour.iter() {
                if let Some(v) = values.get(t) {
                    writeln!(f, "{name}{{{labels}}} {v} {t}").unwrap();
                }
            }
        }
    };
    f.push_str("# HELP http_requests Requests.\n# TYPE http_requests counter\n");
    for (i, (job, code)) in [
        ("api", "200"),
        ("api", "500"),
        ("web", "200"),
        ("web", "404"),
    ]
    .into_iter()
    .enumerate()
    {
        let rate = 1.0 + 10.0 * rng.next();
        let mut v = 0.0;
        let mut values = BTreeMap::new();
        for (k, &t) in times.iter().enumerate() {
            v += (rate * STEP as f64 * (0.5 + rng.next())).round();
            if i == 1 && k as i64 == points / 2 {
                v = 3.0;
            }
            if i == 2 && (points / 3..points / 3 + 60).contains(&(k as i64)) {
                continue;
            }
            values.insert(t, v);
        }
        let labels = format!("code=\"{code}\",instance=\"h{i}\",job=\"{job}\"");
        emit(&mut f, "http_requests_total", &labels, &values);
    }
    f.push_str("# TYPE temperature gauge\n");
    for room in ["a", "b", "c"] {
        let mut v = 20.0;
        let mut values = BTreeMap::new();
        for &t in &times {
            v += (rng.next() - 0.5).round_ties_even() * 0.25 + (rng.next() - 0.5) * 0.1;
            values.insert(t, (v * 1000.0_f64).round() / 1000.0);
        }
        emit(&mut f, "temperature", &format!("room=\"{room}\""), &values);
    }
    f.push_str("# HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n");
    for job in ["api", "web"] {
        let mut counts = [0.0; BUCKETS.len()];
        let mut sum = 0.0;
        let mut rows: Vec<BTreeMap<i64, f64>> = vec![BTreeMap::new(); BUCKETS.len() + 2];
        for (k, &t) in times.iter().enumerate() {
            let n = (10.0 + 90.0 * rng.next()).round();
            let mean = if k as i64 > points / 2 { 0.2 } else { 0.05 };
            for (b, le) in BUCKETS.iter().enumerate() {
                let share = match le.parse::<f64>() {
                    Ok(le) => 1.0 - (-le / mean).exp(),
                    Err(_) => 1.0,
                };
                counts[b] += (n * share).round();
                rows[b].insert(t, counts[b]);
            }
            sum += ((n * mean * (0.8 + 0.4 * rng.next())) * 1000.0).round() / 1000.0;
            rows[BUCKETS.len()].insert(t, (sum * 1000.0_f64).round() / 1000.0);
            rows[BUCKETS.len() + 1].insert(t, counts[BUCKETS.len() - 1]);
        }
        for (b, le) in BUCKETS.iter().enumerate() {
            let labels = format!("job=\"{job}\",le=\"{le}\"");
            emit(&mut f, "latency_seconds_bucket", &labels, &rows[b]);
        }
        let labels = format!("job=\"{job}\"");
        emit(&mut f, "latency_seconds_sum", &labels, &rows[BUCKETS.len()]);
        emit(
            &mut f,
            "latency_seconds_count",
            &labels,
            &rows[BUCKETS.len() + 1],
        );
    }
    f.push_str("# EOF\n");
    f
}

/// Stops a child process by its pid when the test ends.
/// `file` backfilled with `promtool tsdb create-blocks-from openmetrics` into `dir/tsdb`, and a
/// Prometheus started on it on a free loopback port; stopped when the handle drops.
pub fn backfilled_prometheus(dir: &Path, file: &Path) -> (Stopped, u16) {
    let tsdb = dir.join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(file)
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::common::prometheus(
        dir,
        "global:\n  scrape_interval: 1m\n",
        Some(&tsdb),
        &["--storage.tsdb.retention.time=30d"],
    )
}

/// The end of a history that lies wholly in the store (two hours ago, on the minute), and that
/// history written in order to `dir/history.om`.
pub fn history_file(dir: &Path) -> (i64, std::path::PathBuf) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64;
    let end = (now / 60) * 60 - 7_200;
    let file = dir.join("history.om");
    std::fs::write(&file, history(end, false)).unwrap();
    (end, file)
}
