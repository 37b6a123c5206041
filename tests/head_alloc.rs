//! The scrape hot path allocates nothing: once a target's page is cached, adding its samples
//! to a scrape appender performs no heap allocation. Counted with a global allocator wrapper,
//! which is why this lives in its own test binary (one test, so no other thread allocates).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use postflight::ingest::Ingest;
use postflight::scrape::manager::add_exposed;
use postflight::scrape::parse::{Format, Parser};
use postflight::series::Labels;
use postflight::series::head::Head;

#[path = "common/corpus.rs"]
mod corpus;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts allocations.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parsing_and_adding_a_cached_page_does_not_allocate() {
    let page = std::fs::read(
        corpus::corpus_dir()
            .unwrap_or_default()
            .join("webapp_590_series.prom"),
    )
    .unwrap_or_else(|_| {
        b"# TYPE a counter\na_total{x=\"1\"} 1\nb{y=\"esc\\\\aped\"} 2\nc 3\n".to_vec()
    });
    let ingest = Ingest::new(Arc::new(Head::new()));
    let tl = Labels::new([("job", "api"), ("instance", "h:1")]);
    let mut parser = Parser::new();
    // Warm up: the first scrapes create the series, the cache and the reusable buffers.
    for k in 0..3 {
        let mut app = ingest.appender("t", &tl, k * 10_000);
        parser
            .parse(&page, Format::Text, |s| add_exposed(&mut app, &s))
            .expect("page parses");
        app.commit();
    }
    let mut app = ingest.appender("t", &tl, 30_000);
    let before = ALLOCS.load(Ordering::Relaxed);
    let stats = parser
        .parse(&page, Format::Text, |s| add_exposed(&mut app, &s))
        .expect("page parses");
    let during = ALLOCS.load(Ordering::Relaxed) - before;
    let commit = app.commit();
    assert_eq!(
        during, 0,
        "allocations while parsing and adding {} samples",
        stats.samples
    );
    assert_eq!(commit.appended, stats.samples);
}
