//! How much disk the store needs per sample.
//!
//! Plays one hour of 10 s samples for N series through the real head and the real
//! checkpointer: every sample is appended to a [`Head`] (so chunks are the real Gorilla
//! [`postflight::series::chunk::Chunk`] encoding), and every 30 s of simulated time
//! [`checkpoint`] writes each series' samples not stored yet once they are 120, as the daemon
//! does; a final stop checkpoint writes the last ones. Then it flushes and prints
//! `size_on_disk` per sample, every file of the store directory (sled's, the segments, the
//! open-chunk snapshot) and `du -sb` of it as a cross-check.
//!
//! Values: a third of the series are counters growing by small varying integer amounts, a
//! third gauges (three quarters an integer random walk, a quarter a float with two decimals
//! that moves at one scrape in three), a third constant.
//! Timestamps are exactly 10 s apart (jitter of a few ms would cost the chunks themselves up to
//! 2 bytes/sample more; that is the encoder's business, not the store's). Each series starts at
//! a random point of a 20-minute cycle, so its chunks close at different checkpoints like in a
//! daemon that has been running for a while, instead of all 59,000 in the same one.
//!
//! A plain `main` (no harness) so that it does not depend on a benchmarking crate:
//!
//! ```text
//! cargo bench --bench store_size                      # 59,000 series
//! STORE_BENCH_SERIES=5000 cargo bench --bench store_size
//! ```

use std::collections::HashMap;
use std::time::Instant;

use postflight::series::Labels;
use postflight::series::head::Head;
use postflight::store::Store;
use postflight::store::checkpoint::checkpoint;

mod common;
use common::rss_kib;

/// Samples per stored chunk, as the checkpoint cuts them.
const SAMPLES_PER_CHUNK: i64 = 120;
/// Scrape interval.
const STEP_MS: i64 = 10_000;
/// One hour of samples per series.
const SAMPLES_PER_SERIES: i64 = 360;
/// Scrapes between checkpoints (30 s).
const STEPS_PER_CHECKPOINT: i64 = 3;

/// How a series' values move.
enum Shape {
    /// Grows by 0–9 per scrape.
    Counter(f64),
    /// An integer random walk.
    IntGauge(f64),
    /// A float with two decimals, moving at one scrape in three.
    FloatGauge(i64),
    /// Never changes.
    Constant(f64),
}

impl Shape {
    fn index(&self) -> usize {
        match self {
            Shape::Counter(_) => 0,
            Shape::IntGauge(_) => 1,
            Shape::FloatGauge(_) => 2,
            Shape::Constant(_) => 3,
        }
    }

    fn next(&mut self, rng: &mut fastrand::Rng) -> f64 {
        match self {
            Shape::Counter(v) => {
                *v += f64::from(rng.u8(..10));
                *v
            }
            Shape::IntGauge(v) => {
                *v = (*v + f64::from(rng.i8(-20..=20))).max(0.0);
                *v
            }
            Shape::FloatGauge(c) => {
                // A ratio or temperature: moves at one scrape in three.
                if rng.u8(..3) == 0 {
                    *c += i64::from(rng.i8(-20..=20));
                }
                *c as f64 / 100.0
            }
            Shape::Constant(v) => *v,
        }
    }
}

fn main() {
    let series: usize = std::env::var("STORE_BENCH_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(59_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let opened = Store::open(&dir.path().join("store")).expect("open store");
    let store = opened.store;

    let mut rng = fastrand::Rng::with_seed(42);
    let start_t: i64 = 1_700_000_000_000;
    let labels: Vec<Labels> = (0..series)
        .map(|i| {
            Labels::new([
                ("__name__", format!("http_requests_total_{}", i % 500)),
                ("job", "api".into()),
                (
                    "instance",
                    format!("10.0.{}.{}:9100", i / 250 % 256, i % 250),
                ),
                ("status", ["200", "404", "500"][i % 3].into()),
            ])
        })
        .collect();
    let mut shapes: Vec<Shape> = (0..series)
        .map(|i| match i % 12 {
            0..4 => Shape::Counter(f64::from(rng.u32(..1_000_000))),
            4..7 => Shape::IntGauge(f64::from(rng.u32(..100_000))),
            7 => Shape::FloatGauge(rng.i64(0..10_000)),
            _ => Shape::Constant(f64::from(rng.u8(..4))),
        })
        .collect();
    // The step at which each series takes its first sample.
    let phase: Vec<i64> = (0..series).map(|_| rng.i64(0..SAMPLES_PER_CHUNK)).collect();

    let head = Head::new();
    let mut chunks_written = 0;
    let mut checkpoint_time = std::time::Duration::ZERO;
    let steps = SAMPLES_PER_CHUNK + SAMPLES_PER_SERIES;
    let began = Instant::now();
    for step in 0..steps {
        let t = start_t + step * STEP_MS;
        for i in 0..series {
            let k = step - phase[i];
            if (0..SAMPLES_PER_SERIES).contains(&k) {
                let v = shapes[i].next(&mut rng);
                head.append(&labels[i], t, v);
            }
        }
        if (step + 1) % STEPS_PER_CHECKPOINT == 0 {
            let c = Instant::now();
            chunks_written +=
                checkpoint(&head, &store.samples, false, i64::MIN).expect("checkpoint");
            checkpoint_time += c.elapsed();
        }
    }
    let c = Instant::now();
    // The stop checkpoint: the open chunks too, then a flush.
    chunks_written += checkpoint(&head, &store.samples, true, i64::MIN).expect("checkpoint");
    checkpoint_time += c.elapsed();
    let flushed = began.elapsed();

    let samples = series as u64 * SAMPLES_PER_SERIES as u64;
    let mut payload: u64 = 0;
    let mut by_shape = [0u64; 4];
    let shape_of: HashMap<u64, usize> = labels
        .iter()
        .zip(&shapes)
        .map(|(l, s)| (l.fingerprint(), s.index()))
        .collect();
    head.for_each_series(|l, chunks| {
        let n = chunks
            .iter()
            .map(|c| c.as_bytes().len() as u64)
            .sum::<u64>();
        payload += n;
        by_shape[shape_of[&l.fingerprint()]] += n;
    });
    let size = store.size_on_disk().expect("size on disk");
    let files: u64 = walk_size(dir.path());
    println!("series:               {series}");
    println!("samples:              {samples} (1 h at 10 s)");
    println!("chunks written:       {chunks_written}");
    println!(
        "chunk payload:        {payload} B ({:.2} B/sample)",
        payload as f64 / samples as f64
    );
    let per_shape =
        |i: usize, n: usize| by_shape[i] as f64 / (n as f64 * SAMPLES_PER_SERIES as f64);
    println!(
        "  by shape (B/sample): counters {:.2}, int gauges {:.2}, float gauges {:.2}, constants {:.2}",
        per_shape(0, shapes.iter().filter(|s| s.index() == 0).count()),
        per_shape(1, shapes.iter().filter(|s| s.index() == 1).count()),
        per_shape(2, shapes.iter().filter(|s| s.index() == 2).count()),
        per_shape(3, shapes.iter().filter(|s| s.index() == 3).count()),
    );
    println!(
        "size_on_disk:         {size} B ({:.2} B/sample)",
        size as f64 / samples as f64
    );
    println!(
        "files in store dir:   {files} B ({:.2} B/sample)",
        files as f64 / samples as f64
    );
    for e in std::fs::read_dir(dir.path().join("store"))
        .into_iter()
        .flatten()
        .flatten()
    {
        println!(
            "  {:<20}{} B",
            e.file_name().to_string_lossy(),
            walk_size(&e.path()).max(e.metadata().map(|m| m.len()).unwrap_or(0))
        );
    }
    let segments = dir.path().join("store").join("segments");
    let (mut seg_files, mut seg_bytes, mut snap_bytes) = (0, 0, 0);
    for e in std::fs::read_dir(&segments).into_iter().flatten().flatten() {
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        if e.file_name().to_string_lossy().ends_with(".seg") {
            seg_files += 1;
            seg_bytes += len;
        } else {
            snap_bytes += len;
        }
    }
    println!(
        "  of segments/:       {seg_files} segment files {seg_bytes} B ({:.2} B/sample), snapshot {snap_bytes} B",
        seg_bytes as f64 / samples as f64
    );
    // The same directory as `du` sees it (apparent sizes, directories included).
    if let Ok(out) = std::process::Command::new("du")
        .arg("-sb")
        .arg(dir.path().join("store"))
        .output()
    {
        let du = String::from_utf8_lossy(&out.stdout);
        let bytes: u64 = du
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        println!(
            "du -sb of store dir:  {bytes} B ({:.2} B/sample)",
            bytes as f64 / samples as f64
        );
    }
    println!("simulation + flush:   {flushed:.2?} (checkpoints: {checkpoint_time:.2?})");

    let began = Instant::now();
    let read = store.samples.chunks_since(start_t).count();
    println!(
        "chunks_since (start): {read} chunks in {:.2?}",
        began.elapsed()
    );
    drop(store);

    let rss_before = rss_kib();
    let began = Instant::now();
    let reopened = Store::open(&dir.path().join("store")).expect("reopen");
    println!(
        "reopen:               {:.2?} ({} series; RSS {} -> {} KiB: the series index and symbols in memory, sled's cache)",
        began.elapsed(),
        reopened.store.samples.series_count(),
        rss_before,
        rss_kib()
    );
    let size = reopened.store.size_on_disk().expect("size on disk");
    println!(
        "size after reopen:    {size} B ({:.2} B/sample)",
        size as f64 / samples as f64
    );
}

fn walk_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        total += if m.is_dir() {
            walk_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}
