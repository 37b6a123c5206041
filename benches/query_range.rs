//! A range query over days of stored data: `sum by (job) (rate(x[5m]))` over 24 h at a 60 s
//! step across 10,000 series, read from the store and the head as the query API reads them
//! ([`QuerySource`]).
//!
//! The history is played through the real head and the real checkpointer, as the daemon
//! writes it: 10,000 counters (10 jobs) scraped every 15 s for 24 h and 15 minutes, a checkpoint
//! every 30 s of simulated time storing each series' chunks of 120 samples, then a truncation
//! to the head's 15-minute window. So the store holds the blocks a daemon would have written
//! and the head its last 15 minutes. Then the query runs `QUERY_BENCH_RUNS` times (3); each
//! run prints its wall time, the samples it loaded and the peak RSS during it (the peak is
//! reset before each run through `/proc/self/clear_refs`).
//!
//! A plain `main` (no harness):
//!
//! ```text
//! cargo bench --bench query_range                        # 10,000 series, 24 h
//! QUERY_BENCH_SERIES=1000 QUERY_BENCH_HOURS=6 cargo bench --bench query_range
//! ```

use std::time::Instant;

use postflight::promql::{Engine, QueryLimits, Value};
use postflight::series::Labels;
use postflight::series::head::Head;
use postflight::store::Store;
use postflight::store::checkpoint::checkpoint;
use postflight::store::query::QuerySource;

mod common;
use common::rss_kib;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Scrape interval.
const STEP_MS: i64 = 15_000;
/// Scrapes between checkpoints (30 s).
const STEPS_PER_CHECKPOINT: i64 = 2;
/// The head's window.
const WINDOW_MS: i64 = 15 * 60_000;

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The peak resident set in KiB since the last [`reset_peak`].
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_peak() {
    // "5" resets the peak RSS (Linux 4.0 and later); elsewhere the peak is the process'.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let series = env_or("QUERY_BENCH_SERIES", 10_000) as usize;
    let hours = env_or("QUERY_BENCH_HOURS", 24);
    let runs = env_or("QUERY_BENCH_RUNS", 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store"))
        .expect("open store")
        .store;
    let labels: Vec<Labels> = (0..series)
        .map(|i| {
            Labels::new([
                ("__name__", "x".to_string()),
                ("instance", format!("host-{i}:9100")),
                ("job", format!("job-{}", i % 10)),
            ])
        })
        .collect();
    let end = 1_800_000_000_000 / STEP_MS * STEP_MS;
    let start = end - hours * 3_600_000;
    let first = start - 5 * 60_000;
    let head = Head::new();
    head.mark_complete_since(first);
    let written = Instant::now();
    let mut values = vec![0.0f64; series];
    let mut n = 0i64;
    let mut t = first;
    while t <= end {
        for (i, l) in labels.iter().enumerate() {
            // Counters growing by 0–9 a scrape, each at its own pace.
            values[i] += ((n as usize * 7 + i * 13) % 10) as f64;
            head.append(l, t, values[i]);
        }
        n += 1;
        if n % STEPS_PER_CHECKPOINT == 0 {
            checkpoint(&head, &store.samples, false, t - WINDOW_MS).expect("checkpoint");
            head.truncate_and_trim(t - WINDOW_MS);
        }
        t += STEP_MS;
    }
    println!(
        "history: {series} series, {hours} h + 5 m at 15 s ({} samples) written in {:.1} s; store {:.1} MB; head {} samples",
        n * series as i64,
        written.elapsed().as_secs_f64(),
        store.size_on_disk().expect("size") as f64 / 1e6,
        head.stats().samples,
    );

    let expr = postflight::promql::parse("sum by (job) (rate(x[5m]))").expect("parses");
    for run in 1..=runs {
        reset_peak();
        let before = rss_kib();
        let limits = QueryLimits::none();
        let src = QuerySource::new(&head, &store.samples, &limits);
        let took = Instant::now();
        let v = Engine::default()
            .range_limited(&src, &expr, (start, end, 60_000), &limits)
            .expect("the query runs");
        let took = took.elapsed();
        let Value::Matrix(m) = &v else {
            panic!("a range query answers a matrix")
        };
        let points: usize = m.iter().map(|s| s.samples.len()).sum();
        println!(
            "run {run}: {:.3} s, {} series × {} points, {} samples loaded; RSS {:.1} MiB before, peak {:.1} MiB during",
            took.as_secs_f64(),
            m.len(),
            points / m.len().max(1),
            limits.loaded(),
            before as f64 / 1024.0,
            peak_kib() as f64 / 1024.0,
        );
    }
}
