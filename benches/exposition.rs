//! Parser throughput on every corpus page (MB/s), the 590-series web app page above all.
//!
//! `cargo bench --bench exposition`. Reads `$CARGO_MANIFEST_DIR/../shared/corpus/exposition`
//! and skips with a message when it is absent.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use postflight::scrape::parse::{Format, Parser};

#[path = "../tests/common/corpus.rs"]
mod corpus;

fn corpus() -> Vec<(String, Format, Vec<u8>)> {
    let Some(rd) = corpus::corpus_dir().and_then(|d| std::fs::read_dir(d).ok()) else {
        eprintln!("corpus not found (../shared/corpus/exposition or $POSTFLIGHT_CORPUS): skipping");
        return Vec::new();
    };
    let mut pages: Vec<_> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let format = if name.ends_with(".prom") {
                Format::Text
            } else if name.ends_with(".openmetrics") {
                Format::OpenMetrics
            } else {
                return None;
            };
            Some((name, format, std::fs::read(&p).ok()?))
        })
        .collect();
    pages.sort_by(|a, b| a.0.cmp(&b.0));
    pages
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut parser = Parser::new();
    for (name, format, body) in corpus() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                let mut sum = 0.0;
                let stats = parser
                    .parse(black_box(&body), format, |s| {
                        sum += s.value + s.labels.len() as f64;
                    })
                    .expect("corpus page parses");
                black_box((stats, sum))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
