//! How much disk the store needs per sample.
//!
//! Writes one hour of 10 s samples for N series as the head would hand them over: 120-sample
//! chunks of ~1.4 bytes per sample (a typical Gorilla ratio for scraped counters and gauges),
//! flushes, and prints `size_on_disk` per sample. sled's compression is off, so the chunk
//! contents do not change the size; only their lengths matter, and those vary a little around
//! the mean like real chunks do.
//!
//! A plain `main` (no harness) so that it does not depend on a benchmarking crate:
//!
//! ```text
//! cargo bench --bench store_size                      # 59,000 series
//! STORE_BENCH_SERIES=5000 cargo bench --bench store_size
//! ```

use std::time::Instant;

use postflight::series::Labels;
use postflight::store::Store;

/// Samples per chunk, as the head cuts them.
const SAMPLES_PER_CHUNK: u32 = 120;
/// Scrape interval.
const STEP_MS: i64 = 10_000;
/// One hour of samples per series.
const SAMPLES_PER_SERIES: u32 = 360;

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
    let chunks_per_series = SAMPLES_PER_SERIES / SAMPLES_PER_CHUNK;
    let mut chunk_bytes_total: u64 = 0;
    let mut buf = Vec::with_capacity(256);
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

    let began = Instant::now();
    // Chunk by chunk across all series, as a head cutting chunks on a schedule would.
    for c in 0..chunks_per_series {
        let min_t = start_t + i64::from(c * SAMPLES_PER_CHUNK) * STEP_MS;
        let max_t = min_t + i64::from(SAMPLES_PER_CHUNK - 1) * STEP_MS;
        for l in &labels {
            // 1.4 bytes/sample on average, between ~1.1 and ~1.7.
            let len = 132 + rng.usize(0..72);
            buf.clear();
            buf.extend((0..len).map(|_| rng.u8(..)));
            chunk_bytes_total += len as u64;
            store
                .put_chunk(l, min_t, max_t, SAMPLES_PER_CHUNK, &buf)
                .expect("put chunk");
        }
    }
    let write = began.elapsed();
    store.flush().expect("flush");
    let flushed = began.elapsed();

    let samples = series as u64 * u64::from(SAMPLES_PER_SERIES);
    let size = store.size_on_disk().expect("size on disk");
    let files: u64 = walk_size(dir.path());
    println!("series:               {series}");
    println!("samples:              {samples} (1 h at 10 s)");
    println!(
        "chunks:               {}",
        series as u64 * u64::from(chunks_per_series)
    );
    println!(
        "chunk payload:        {chunk_bytes_total} B ({:.2} B/sample)",
        chunk_bytes_total as f64 / samples as f64
    );
    println!(
        "size_on_disk:         {size} B ({:.2} B/sample)",
        size as f64 / samples as f64
    );
    println!(
        "files in store dir:   {files} B ({:.2} B/sample)",
        files as f64 / samples as f64
    );
    println!(
        "write:                {:.2?} ({:.0} chunks/s)",
        write,
        (series as f64 * f64::from(chunks_per_series)) / write.as_secs_f64()
    );
    println!("write + flush:        {flushed:.2?}");

    let began = Instant::now();
    let read = store.chunks_since(start_t).count();
    println!(
        "chunks_since (start): {read} chunks in {:.2?}",
        began.elapsed()
    );
    drop(store);

    let began = Instant::now();
    let reopened = Store::open(&dir.path().join("store")).expect("reopen");
    println!(
        "reopen:               {:.2?} ({} series)",
        began.elapsed(),
        reopened.store.series_count()
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
