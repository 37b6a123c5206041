//! How the daemon's memory follows the probe history it keeps.
//!
//! Plays the watch job's probe results through the real store, as fast as it can: 1,000 probes
//! every 10 s, each result appended ([`postflight::store::ProbeLog::append_probe`]), each 10 s round journaled
//! ([`postflight::store::ProbeLog::write_probe_journal`]), and the buffer written as blocks once a simulated minute
//! ([`postflight::store::ProbeLog::write_probe_results`]). Every `HISTORY_BENCH_EVERY` simulated minutes (60) it
//! prints the process' RSS, the number of stored results and the store's size on disk.
//! Nothing is pruned: the history grows as it does between two prunes of a long retention (15
//! days by default).
//!
//! The results are in the history files (see `src/store/probes/files.rs`) and sled holds
//! nothing per result, so the memory should stay flat while the history grows; a key per
//! probe and minute in sled would make it grow with the history.
//!
//! A replay runs hundreds of times faster than the daemon, and sled's background work (its
//! flusher, the reclaiming of old log segments) falls behind: `HISTORY_BENCH_PACE_MS` sleeps
//! that long after each simulated minute. `HISTORY_BENCH_NO_JOURNAL=1` leaves the journal
//! out, to tell its share from the blocks'.
//!
//! The allocator is the daemon's (jemalloc with the options of `.cargo/config.toml`). A plain
//! `main` (no harness):
//!
//! ```text
//! cargo bench --bench history_memory                            # 600 simulated minutes
//! HISTORY_BENCH_MINUTES=120 cargo bench --bench history_memory
//! HISTORY_BENCH_PACE_MS=200 cargo bench --bench history_memory   # ~2 minutes
//! ```

use std::time::Instant;

use postflight::store::{ProbeRecord, Store};

mod common;
use common::rss_kib;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Probes, as in the watch job.
const PROBES: usize = 1_000;
/// Probe interval.
const STEP_MS: i64 = 10_000;

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let minutes = env_or("HISTORY_BENCH_MINUTES", 600);
    let every = env_or("HISTORY_BENCH_EVERY", 60).max(1);
    let pace = std::time::Duration::from_millis(env_or("HISTORY_BENCH_PACE_MS", 0) as u64);
    let no_journal = std::env::var_os("HISTORY_BENCH_NO_JOURNAL").is_some();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store"))
        .expect("open store")
        .store;
    let names: Vec<String> = (0..PROBES).map(|i| format!("health-{i}")).collect();
    let t0 = 1_700_000_000_000i64;
    let started = Instant::now();
    println!("history_memory: {PROBES} probes every 10 s, {minutes} simulated minutes");
    println!(
        "{:>8} {:>12} {:>10} {:>12}",
        "minute", "results", "RSS MiB", "store MB"
    );
    println!(
        "{:>8} {:>12} {:>10.1} {:>12.1}",
        0,
        0,
        rss_kib() as f64 / 1024.0,
        0.0
    );
    let mut results = 0u64;
    for minute in 0..minutes {
        for step in 0..6 {
            let t = t0 + minute * 60_000 + step * STEP_MS;
            for (i, name) in names.iter().enumerate() {
                let r = ProbeRecord {
                    probe: name.clone(),
                    t: t + i as i64,
                    success: true,
                    // A latency that varies like a real one (a few ms, microsecond digits).
                    duration_seconds: 0.002 + ((i as i64 * 7919 + t / 1000) % 997) as f64 * 1e-6,
                    status: Some(200),
                    reason: String::new(),
                };
                store.probes.append_probe(&r).expect("append");
                results += 1;
            }
            if !no_journal {
                store.probes.write_probe_journal().expect("journal");
            }
        }
        store
            .probes
            .write_probe_results(Some(t0 + (minute + 2) * 60_000))
            .expect("blocks");
        // sled's own flush comes every second in the daemon; once a simulated minute here.
        store.flush().expect("flush");
        std::thread::sleep(pace);
        if (minute + 1) % every == 0 {
            println!(
                "{:>8} {:>12} {:>10.1} {:>12.1}",
                minute + 1,
                results,
                rss_kib() as f64 / 1024.0,
                store.size_on_disk().unwrap_or(0) as f64 / 1e6
            );
        }
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}
