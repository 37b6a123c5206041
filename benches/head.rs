//! Scrape ingestion: parse + append ns/sample for 100 targets each exposing the 590-series web
//! app page, head memory per series after 360 samples (one hour of 10 s scrapes) each, and a
//! rule's `[5m]` range read over series that repeat their samples and series that do not.
//!
//! `cargo bench --bench head` (`cargo bench --bench head -- range` for the range read alone). Values change between scrapes like a live page's do (counters
//! grow by random steps, gauges wander) so the chunks compress like real data, not like a
//! constant. Reads `$CARGO_MANIFEST_DIR/../shared/corpus/exposition/webapp_590_series.prom`
//! and skips with a message when it is absent.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use postflight::ingest::Ingest;
use postflight::scrape::manager::add_exposed;
use postflight::scrape::parse::{Format, Parser, parse};
use postflight::series::Labels;
use postflight::series::head::Head;

const TARGETS: usize = 100;
const VARIANTS: usize = 16;
const SCRAPE_MS: i64 = 10_000;

#[path = "../tests/common/corpus.rs"]
mod corpus;

fn page() -> Option<Vec<u8>> {
    let p = corpus::corpus_dir()
        .unwrap_or_default()
        .join("webapp_590_series.prom");
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("corpus page not found at {}: skipping", p.display());
            None
        }
    }
}

/// How the page's values move between scrapes.
#[derive(Clone, Copy, Debug)]
enum Activity {
    /// Every counter grows by a random 0–49 and every gauge moves by up to ±0.5 % on every
    /// scrape: a worst case for compression.
    Busy,
    /// A third of the counters grow by 1–10 per scrape, the rest are idle; a tenth of the
    /// gauges move: closer to a real service, where most label combinations are quiet.
    Typical,
}

/// Successive versions of the page; comments stay as they are.
fn evolve(page: &[u8], n: usize, seed: u64, activity: Activity) -> Vec<Vec<u8>> {
    let text = std::str::from_utf8(page).expect("corpus is UTF-8");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut lines: Vec<(String, f64, bool)> = Vec::new();
    let mut comments: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            comments.push((lines.len(), line.to_owned()));
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let counter = ["_total", "_bucket", "_count", "_sum", "_seconds_total"]
            .iter()
            .any(|s| series.split('{').next().unwrap_or("").ends_with(s));
        lines.push((series.to_owned(), value.parse().unwrap_or(0.0), counter));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = String::with_capacity(page.len() + 1024);
        let mut c = comments.iter().peekable();
        for (i, (series, value, counter)) in lines.iter_mut().enumerate() {
            while let Some((_, text)) = c.next_if(|(at, _)| *at == i) {
                s.push_str(text);
                s.push('\n');
            }
            match (activity, *counter) {
                (Activity::Busy, true) => *value += f64::from(rng.u32(0..50)),
                (Activity::Busy, false) => {
                    *value = (*value * (1.0 + (rng.f64() - 0.5) * 0.01)).round();
                }
                (Activity::Typical, true) if rng.u32(0..3) == 0 => {
                    *value += f64::from(rng.u32(1..11));
                }
                (Activity::Typical, false) if rng.u32(0..10) == 0 => {
                    *value = (*value * (1.0 + (rng.f64() - 0.5) * 0.01)).round();
                }
                (Activity::Typical, _) => {}
            }
            s.push_str(series);
            s.push(' ');
            s.push_str(&value.to_string());
            s.push('\n');
        }
        out.push(s.into_bytes());
    }
    out
}

fn target_labels(i: usize) -> Labels {
    Labels::new([
        ("job", "webapp".to_owned()),
        ("instance", format!("10.0.0.{i}:8080")),
    ])
}

/// One round: every target scrapes its page at `t`.
fn scrape_round(
    ingest: &Ingest,
    parser: &mut Parser,
    pages: &[Vec<u8>],
    tls: &[Labels],
    t: i64,
) -> usize {
    let mut n = 0;
    for (i, tl) in tls.iter().enumerate() {
        let key = &tls[i].get("instance").unwrap_or("");
        let mut app = ingest.appender(key, tl, t);
        let page = &pages[(i + (t / SCRAPE_MS) as usize) % pages.len()];
        parser
            .parse(page, Format::Text, |s| add_exposed(&mut app, &s))
            .expect("page parses");
        n += app.commit().appended;
    }
    n
}

fn bench_ingest(c: &mut Criterion) {
    let Some(page) = page() else { return };
    let pages = evolve(&page, VARIANTS, 1, Activity::Busy);
    let per_page = {
        let mut n = 0;
        parse(&pages[0], Format::Text, |_| n += 1).expect("parses");
        n
    };
    let tls: Vec<Labels> = (0..TARGETS).map(target_labels).collect();
    let ingest = Ingest::new(std::sync::Arc::new(Head::new()));
    let head = ingest.head();
    let mut parser = Parser::new();
    // First round creates the 59,000 series; measure steady state after it.
    let mut t = 0;
    let created = Instant::now();
    scrape_round(&ingest, &mut parser, &pages, &tls, t);
    eprintln!(
        "first round (creates {} series): {:.1} ms",
        head.stats().series,
        created.elapsed().as_secs_f64() * 1e3
    );

    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements((TARGETS * per_page) as u64));
    group.bench_function("parse+append 100 targets x 590-series page", |b| {
        b.iter(|| {
            t += SCRAPE_MS;
            black_box(scrape_round(&ingest, &mut parser, &pages, &tls, t))
        })
    });
    group.finish();

    // A plain timing for the results file, independent of criterion's statistics.
    let rounds = 50;
    let start = Instant::now();
    let mut samples = 0;
    for _ in 0..rounds {
        t += SCRAPE_MS;
        samples += scrape_round(&ingest, &mut parser, &pages, &tls, t);
    }
    let ns = start.elapsed().as_nanos() as f64 / samples as f64;
    eprintln!(
        "steady state: {samples} samples in {rounds} rounds, {ns:.1} ns/sample (parse + append + commit)"
    );
}

fn memory_per_series(_c: &mut Criterion) {
    memory_with(Activity::Busy);
    memory_with(Activity::Typical);
}

fn memory_with(activity: Activity) {
    let Some(page) = page() else { return };
    // 10 targets are enough for a per-series figure; 360 scrapes = one hour at 10 s.
    let targets = 10;
    // One evolving page per target, so every series sees a continuous history.
    let pages: Vec<Vec<Vec<u8>>> = (0..targets)
        .map(|i| evolve(&page, 360, 2 + i as u64, activity))
        .collect();
    let tls: Vec<Labels> = (0..targets).map(target_labels).collect();
    let ingest = Ingest::new(std::sync::Arc::new(Head::new()));
    let mut parser = Parser::new();
    for k in 0..360 {
        let t = k as i64 * SCRAPE_MS;
        for (tl, history) in tls.iter().zip(&pages) {
            let key = tl.get("instance").unwrap_or("");
            let mut app = ingest.appender(key, tl, t);
            parser
                .parse(&history[k], Format::Text, |s| add_exposed(&mut app, &s))
                .expect("page parses");
            app.commit();
        }
    }
    let st = ingest.head().stats();
    let caches = ingest.cache_bytes();
    let bytes = st.bytes + caches;
    eprintln!(
        "memory ({activity:?} values) after 360 samples/series: {} series, {} samples, {} chunks, chunk bytes {} ({:.2} B/sample), head bytes {} => {:.0} B/series ({:.0} B/series of which scrape caches, {:.0} B/series besides chunk data and caches)",
        st.series,
        st.samples,
        st.chunks,
        st.chunk_bytes,
        st.chunk_bytes as f64 / st.samples as f64,
        bytes,
        bytes as f64 / st.series as f64,
        caches as f64 / st.series as f64,
        (st.bytes - st.chunk_bytes) as f64 / st.series as f64,
    );
}

/// A rule's range read, `x[5m]` at the end of 20 minutes of 10 s samples (the head's open chunk
/// holds all 120), over 10,000 series that never change (an idle counter, an unused bucket:
/// runs of repeated samples) and 10,000 counters that grow at every scrape.
fn bench_range_read(c: &mut Criterion) {
    use postflight::series::SeriesSource;
    use promql_parser::label::{MatchOp, Matcher};
    let series = 10_000;
    let head = Head::new();
    let mut t = 1_700_000_000_000i64;
    for k in 0..120u64 {
        t += SCRAPE_MS;
        for i in 0..series {
            let id = i.to_string();
            let idle = Labels::new([("__name__", "idle_total"), ("i", id.as_str())]);
            let busy = Labels::new([("__name__", "busy_total"), ("i", id.as_str())]);
            head.append(&idle, t, i as f64);
            head.append(&busy, t, (k * (i as u64 % 7 + 1) * 13) as f64);
        }
    }
    let mut group = c.benchmark_group("range read [5m] of 120-sample chunks");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(series as u64));
    for name in ["idle_total", "busy_total"] {
        let m = [Matcher::new(MatchOp::Equal, "__name__", name)];
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                head.select_each(&m, t - 300_000, t, &mut |_| false, &mut |_, _, s| {
                    n += s.len()
                });
                black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, memory_per_series, bench_ingest, bench_range_read);
criterion_main!(benches);
