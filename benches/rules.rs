//! One rule-evaluation round over a head shaped like the watch job.
//!
//! The head holds 100 targets (10 jobs × 10 instances), each exposing the 590-series web-app page
//! of `../shared/corpus/exposition/webapp_590_series.prom` (counters, a 12-bucket latency
//! histogram per route, gauges): 59,000 series with one hour of 10 s samples (360 each). Counters
//! grow at a per-series pace, the 5xx share and the memory gauge differ per job and instance, so
//! some rules fire and some do not.
//!
//! A round evaluates 1,000 alerting expressions of the shapes in `config/examples/` at one
//! timestamp, each scoped to one job or one target so that no two are identical: an error ratio
//! (`sum by (job) (rate(x{status=~"5.."}[5m])) / sum by (job) (rate(x[5m])) > t`), a p99
//! latency (`histogram_quantile(0.99, sum by (le, job) (rate(…_bucket[5m]))) > t`) and a
//! gauge threshold (`process_resident_memory_bytes > t`). The target is < 200 ms of one core.
//!
//! ```text
//! cargo bench --bench rules                          # release, criterion plus a plain timing
//! RULES_BENCH_MINUTES=10 cargo bench --bench rules   # a shorter history
//! RULES_BENCH_JOB_WIDE=0 cargo bench --bench rules   # every rule scoped to one target
//! RULES_BENCH_MEMO=1 cargo bench --bench rules -- nomatch  # plain timing of the daemon's round only
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use postflight::ingest::Ingest;
use postflight::promql::{self, Engine, Expr, LabelOrders, RoundMemo, Value};
use postflight::scrape::parse::{Format, parse};
use postflight::series::Labels;
use postflight::series::head::Head;

const JOBS: usize = 10;
const INSTANCES: usize = 10;
const RULES: usize = 1000;
const SCRAPE_MS: i64 = 10_000;
/// An arbitrary start, well away from 0 so no window reaches before the data by accident.
const T0: i64 = 1_700_000_000_000;

/// One series of the page: the exposed text (the scrape-cache key), its labels, its value.
struct PageSeries {
    key: String,
    labels: Vec<(String, String)>,
    name: String,
    value: f64,
}

fn corpus_page() -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rel = "shared/corpus/exposition/webapp_590_series.prom";
    for up in ["..", "../.."] {
        let p = root.join(up).join(rel);
        if let Ok(b) = std::fs::read(&p) {
            return b;
        }
    }
    panic!("{rel} not found next to the crate or its worktree");
}

fn page() -> Vec<PageSeries> {
    let body = corpus_page();
    let mut out = Vec::new();
    parse(&body, Format::Text, |s| {
        out.push(PageSeries {
            key: s.series.to_string(),
            labels: s
                .labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.into_owned()))
                .collect(),
            name: s.name.to_string(),
            value: s.value,
        });
    })
    .expect("the corpus page parses");
    out
}

/// The value of a page series on target `(job, inst)` at scrape `k`.
fn value_at(s: &PageSeries, job: usize, inst: usize, k: usize) -> f64 {
    let k = k as f64;
    match s.name.as_str() {
        "process_resident_memory_bytes" => {
            // 0.2–2 GB depending on the target, slowly growing.
            2e8 * (1 + (job * INSTANCES + inst) % 10) as f64 + 1e5 * k
        }
        "http_requests_total" => {
            let pace = s.value / 2000.0 * (1.0 + inst as f64 / 10.0);
            // 5xx grows at 0.2%–2% of the other statuses' pace depending on the job.
            let pace = if s
                .labels
                .iter()
                .any(|(n, v)| n == "status" && v.starts_with('5'))
            {
                pace * (job + 1) as f64 / 500.0
            } else {
                pace
            };
            s.value + pace * k
        }
        // Buckets grow in proportion to their count, so they stay cumulative; the latency
        // profile differs per job through the +Inf share.
        _ => s.value + s.value / 2000.0 * (1.0 + job as f64 / 20.0) * k,
    }
}

fn build_head(minutes: usize) -> Head {
    let page = page();
    let head = std::sync::Arc::new(Head::new());
    let ingest = Ingest::new(head.clone());
    let scrapes = minutes * 6;
    for k in 0..scrapes {
        let t = T0 + k as i64 * SCRAPE_MS;
        for job in 0..JOBS {
            for inst in 0..INSTANCES {
                let target_labels = Labels::new([
                    ("job", format!("job{job}")),
                    ("instance", format!("10.0.{job}.{inst}:8080")),
                ]);
                let key = format!("job{job}/{inst}");
                let mut app = ingest.appender(&key, &target_labels, t);
                for s in &page {
                    app.add_keyed(&s.key, None, value_at(s, job, inst, k), |target_labels| {
                        Labels::new(
                            s.labels
                                .iter()
                                .map(|(n, v)| (n.as_str(), v.as_str()))
                                .chain([("__name__", s.name.as_str())])
                                .chain(target_labels.iter().map(|l| (&**l.name(), &**l.value()))),
                        )
                    });
                }
                app.commit();
            }
        }
    }
    drop(ingest);
    std::sync::Arc::into_inner(head).expect("the only reference left")
}

/// 1,000 rules: a third each of error ratio, p99 latency and memory threshold; every tenth of
/// the first two kinds covers a whole job (unless `job_wide` is false), the rest one target.
fn rules(job_wide: bool) -> Vec<Expr> {
    (0..RULES)
        .map(|i| {
            let n = i / 3;
            let job = n % JOBS;
            let inst = (n / JOBS) % INSTANCES;
            let scope = if job_wide && n % 10 == 0 {
                format!("job=\"job{job}\"")
            } else {
                format!("job=\"job{job}\",instance=\"10.0.{job}.{inst}:8080\"")
            };
            // n, n + 100, n + 200 (and n + 300) share a scope: give them different thresholds,
            // like the warning and critical rules of one alert, so no two rules are identical.
            let threshold = 1 + n / 100;
            let text = match i % 3 {
                0 => format!(
                    "sum by (job) (rate(http_requests_total{{{scope},status=~\"5..\"}}[5m])) \
                     / sum by (job) (rate(http_requests_total{{{scope}}}[5m])) > 0.0{threshold}"
                ),
                1 => format!(
                    "histogram_quantile(0.99, sum by (le, job) \
                     (rate(http_request_duration_seconds_bucket{{{scope}}}[5m]))) > 0.{threshold}"
                ),
                _ => format!(
                    "process_resident_memory_bytes{{job=\"job{job}\",instance=\"10.0.{job}.{inst}:8080\"}} > {threshold}e9"
                ),
            };
            let e = promql::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            promql::check_supported(&e).unwrap_or_else(|e| panic!("{text}: {e}"));
            e
        })
        .collect()
}

/// Size of the last round's memo.
static LAST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn round_memo_len() -> usize {
    LAST.load(std::sync::atomic::Ordering::Relaxed)
}

/// The label orders the last round's aggregations used (the daemon carries them too).
static ORDERS: std::sync::Mutex<Option<LabelOrders>> = std::sync::Mutex::new(None);

/// One evaluation round as the daemon runs it (one [`RoundMemo`] shared by the round's rules,
/// unless `memo` is false); returns how many rules fired (so the work is not optimised away).
fn round(head: &Head, engine: &Engine, rules: &[Expr], t: i64, memo: bool) -> usize {
    // The daemon sizes each round's memo by the previous round's, and hands on its label
    // orders; so does this.
    let orders = ORDERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_default();
    let shared = RoundMemo::with_capacity(LAST.load(std::sync::atomic::Ordering::Relaxed))
        .with_orders(orders);
    let fired = rules
        .iter()
        .map(|e| match memo {
            true => engine.instant_in_round(head, e, t, &shared),
            false => engine.instant(head, e, t),
        })
        .map(|r| match r {
            Ok(Value::Vector(v)) => usize::from(!v.is_empty()),
            Ok(_) => 0,
            Err(err) => panic!("evaluation failed: {err}"),
        })
        .sum::<usize>();
    if memo {
        LAST.store(shared.len(), std::sync::atomic::Ordering::Relaxed);
        *ORDERS.lock().unwrap_or_else(|p| p.into_inner()) = Some(shared.take_orders());
    }
    fired
}

/// CPU time of the calling thread in ns (Linux `/proc/thread-self/schedstat`), if available.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn bench_rules(c: &mut Criterion) {
    let minutes: usize = std::env::var("RULES_BENCH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(60);
    let started = Instant::now();
    let head = build_head(minutes);
    let stats = head.stats();
    println!(
        "head: {} series, {} minutes of 10 s samples, built in {:.1} s",
        stats.series,
        minutes,
        started.elapsed().as_secs_f64()
    );
    // RULES_BENCH_JOB_WIDE=0: every rule scoped to one target (no job-wide selections).
    let job_wide = std::env::var("RULES_BENCH_JOB_WIDE").map_or(true, |v| v != "0");
    let rules = rules(job_wide);
    let engine = Engine::default();
    let t = T0 + (minutes as i64 * 6 - 1) * SCRAPE_MS + 5_000;
    let fired = round(&head, &engine, &rules, t, true);
    assert_eq!(
        fired,
        round(&head, &engine, &rules, t, false),
        "the memo changed a result"
    );
    println!(
        "{} rules, {fired} fired; the round memo holds {} range-function results",
        rules.len(),
        round_memo_len()
    );

    // A plain timing first, independent of criterion's statistics: wall clock, and the CPU
    // time of this thread (what "ms of one core" means on a machine shared with other work).
    // RULES_BENCH_MEMO=1 or 0 times only the round with or without the memo.
    let variants: &[bool] = match std::env::var("RULES_BENCH_MEMO").as_deref() {
        Ok("1") => &[true],
        Ok("0") => &[false],
        _ => &[true, false],
    };
    for &memo in variants {
        let mut ms: Vec<(f64, f64)> = (0..10)
            .map(|_| {
                let (s, cpu) = (Instant::now(), thread_cpu_ns());
                black_box(round(&head, &engine, &rules, t, memo));
                let cpu_ms = match (cpu, thread_cpu_ns()) {
                    (Some(a), Some(b)) => (b - a) as f64 / 1e6,
                    _ => f64::NAN,
                };
                (s.elapsed().as_secs_f64() * 1000.0, cpu_ms)
            })
            .collect();
        ms.sort_by(|a, b| a.1.total_cmp(&b.1));
        let wall: Vec<f64> = ms.iter().map(|m| m.0).collect();
        println!(
            "round of {} rules{}, CPU of one core: min {:.1} ms, median {:.1} ms, max {:.1} ms \
             (wall clock median {:.1} ms)",
            rules.len(),
            if memo { "" } else { " without the round memo" },
            ms[0].1,
            ms[ms.len() / 2].1,
            ms[ms.len() - 1].1,
            wall[wall.len() / 2],
        );
    }

    let mut g = c.benchmark_group("rules");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("round_1000_rules_59k_series", |b| {
        b.iter(|| round(&head, &engine, black_box(&rules), t, true))
    });
    g.finish();
}

criterion_group!(benches, bench_rules);
criterion_main!(benches);
