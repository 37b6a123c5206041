use super::*;
use crate::scrape::manager::add_exposed;
use crate::scrape::parse::{Format, parse};
use crate::series::STALE_NAN_BITS;
use promql_parser::label::{MatchOp, Matcher};

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value)
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

fn scrape(ingest: &Ingest, target: &str, tl: &Labels, t: i64, page: &str) -> Commit {
    let mut app = ingest.appender(target, tl, t);
    parse(page.as_bytes(), Format::Text, |s| add_exposed(&mut app, &s)).expect("page parses");
    app.commit()
}

#[test]
fn scrape_adds_target_labels_and_marks_disappeared_series_stale() {
    let ingest = Ingest::new(Arc::new(Head::new()));
    let head = ingest.head();
    let tl = l(&[("job", "api"), ("instance", "h:1")]);
    let page1 = "a{x=\"1\"} 1\nb 2\nc{job=\"inner\"} 3\nd{e=\"\"} 4\n";
    let c1 = scrape(&ingest, "api/h:1", &tl, 10_000, page1);
    assert_eq!((c1.appended, c1.series_added, c1.stale_markers), (4, 4, 0));
    // Exposed `job` is kept as `exported_job`; empty values are dropped.
    assert_eq!(
        head.samples_of(&[m(MatchOp::Equal, "__name__", "c")])[0].0,
        r#"c{exported_job="inner", instance="h:1", job="api"}"#
    );
    assert_eq!(
        head.samples_of(&[m(MatchOp::Equal, "__name__", "d")])[0].0,
        r#"d{instance="h:1", job="api"}"#
    );

    let page2 = "a{x=\"1\"} 5\nc{job=\"inner\"} 6\nd{e=\"\"} 7\n";
    let c2 = scrape(&ingest, "api/h:1", &tl, 20_000, page2);
    assert_eq!((c2.appended, c2.series_added, c2.stale_markers), (3, 0, 1));
    let b = head.samples_of(&[m(MatchOp::Equal, "__name__", "b")]);
    assert_eq!(b[0].1[1], (20_000, STALE_NAN.to_bits()));

    // b comes back: a new sample after the marker, counted as added for this target again.
    let c3 = scrape(&ingest, "api/h:1", &tl, 30_000, page1);
    assert_eq!((c3.appended, c3.series_added, c3.stale_markers), (4, 1, 0));
    assert_eq!(head.stats().stale_markers, 1);
}

#[test]
fn failed_scrape_and_down_target_mark_everything_stale() {
    let ingest = Ingest::new(Arc::new(Head::new()));
    let head = ingest.head();
    let tl = l(&[("job", "api")]);
    scrape(&ingest, "t", &tl, 10_000, "a 1\nb 2\n");
    // A scrape that fails halfway: nothing of it is stored, the last page goes stale.
    let mut app = ingest.appender("t", &tl, 20_000);
    let err = parse(b"a 5\nb oops\n", Format::Text, |s| {
        add_exposed(&mut app, &s)
    });
    assert!(err.is_err());
    assert_eq!(app.rollback(), 2);
    let a = head.samples_of(&[m(MatchOp::Equal, "__name__", "a")]);
    assert_eq!(
        a[0].1,
        vec![(10_000, 1f64.to_bits()), (20_000, STALE_NAN_BITS)]
    );
    // The next good scrape does not stale again, and the series resume.
    let c = scrape(&ingest, "t", &tl, 30_000, "a 3\nb 4\n");
    assert_eq!((c.appended, c.stale_markers), (2, 0));
    // Target down.
    assert_eq!(ingest.mark_target_stale("t", 40_000), 2);
    assert_eq!(ingest.mark_target_stale("t", 50_000), 0, "only once");
    assert_eq!(ingest.mark_target_stale("unknown", 50_000), 0);
    // Dropping an appender without commit is a rollback.
    scrape(&ingest, "t", &tl, 60_000, "a 1\n");
    drop(ingest.appender("t", &tl, 70_000));
    let a = head.samples_of(&[m(MatchOp::Equal, "__name__", "a")]);
    assert_eq!(a[0].1.last(), Some(&(70_000, STALE_NAN_BITS)));
}

#[test]
fn samples_with_explicit_timestamps_are_not_staled() {
    let ingest = Ingest::new(Arc::new(Head::new()));
    let head = ingest.head();
    let tl = l(&[("job", "j")]);
    scrape(&ingest, "t", &tl, 10_000, "a 1 5000\nb 2\n");
    let c = scrape(&ingest, "t", &tl, 20_000, "\n");
    assert_eq!(c.stale_markers, 1);
    let a = head.samples_of(&[m(MatchOp::Equal, "__name__", "a")]);
    assert_eq!(a[0].1, vec![(5000, 1f64.to_bits())]);
}

#[test]
fn staleness_and_the_cache_survive_the_scrape_number_wrapping() {
    // Scrape numbers are 31 bits (the 32nd flags explicit timestamps): start a target just
    // before the wrap and check that nothing changes across it.
    let ingest = Ingest::new(Arc::new(Head::new()));
    let tl = l(&[("job", "j")]);
    scrape(&ingest, "t", &tl, 10_000, "a 1\nb 2\nc 3 5000\n");
    {
        let mut targets = lock(&ingest.caches);
        let cache = targets.get_mut("t").expect("cache");
        cache.iter = UNTRACKED - 2;
        for e in cache.entries.values_mut() {
            e.last_seen = cache.iter;
        }
    }
    let mut t = 20_000;
    for _ in 0..3 {
        let c = scrape(&ingest, "t", &tl, t, "a 1\nb 2\nc 3 5000\n");
        assert_eq!((c.series_added, c.stale_markers), (0, 0), "at {t}");
        t += 10_000;
    }
    assert!(lock(&ingest.caches)["t"].iter < 2, "wrapped");
    // b disappears: marked stale once, the explicitly timestamped c never.
    let c = scrape(&ingest, "t", &tl, t, "a 1\n");
    assert_eq!((c.series_added, c.stale_markers), (0, 1));
    let c = scrape(&ingest, "t", &tl, t + 10_000, "a 1\nb 2\n");
    assert_eq!((c.series_added, c.stale_markers), (1, 0));
    assert_eq!(
        lock(&ingest.caches)["t"].entries.len(),
        3,
        "c stays cached for a while"
    );
}

#[test]
fn scrape_cache_survives_truncation_of_its_series() {
    let ingest = Ingest::new(Arc::new(Head::new()));
    let head = ingest.head();
    let tl = l(&[("job", "j")]);
    scrape(&ingest, "t", &tl, 1000, "a 1\n");
    assert_eq!(head.truncate(5000), 1);
    let c = scrape(&ingest, "t", &tl, 10_000, "a 2\n");
    assert_eq!(c.appended, 1);
    let a = head.samples_of(&[m(MatchOp::Equal, "__name__", "a")]);
    assert_eq!(a[0].1, vec![(10_000, 2f64.to_bits())]);
}

#[test]
fn a_scrape_cache_is_a_sorted_vector_exactly_as_long_as_the_page() {
    let ingest = Ingest::new(Arc::new(Head::new()));
    let tl = l(&[("job", "app"), ("instance", "a:1")]);
    let page = |n: usize| -> String { (0..n).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect() };
    let cache_bytes = || ingest.cache_bytes();
    let entry = size_of::<(u64, CacheEntry)>();
    // The page's one metric name, kept for the arrivals.
    let name = size_of::<LabelStr>();

    // First page: every series is new; after commit they sit in the vector, no table left.
    let c = scrape(&ingest, "t", &tl, 10_000, &page(590));
    assert_eq!((c.appended, c.series_added), (590, 590));
    assert_eq!(
        cache_bytes(),
        590 * entry + name,
        "590 entries, no spare room, no hash table"
    );

    // Same page again: every lookup hits the sorted part; nothing added.
    let c = scrape(&ingest, "t", &tl, 20_000, &page(590));
    assert_eq!((c.appended, c.series_added, c.stale_markers), (590, 0, 0));
    assert_eq!(cache_bytes(), 590 * entry + name);

    // Ten more series: they join the vector, which grows by exactly ten.
    let c = scrape(&ingest, "t", &tl, 30_000, &page(600));
    assert_eq!((c.appended, c.series_added), (600, 10));
    assert_eq!(cache_bytes(), 600 * entry + name);
    {
        let targets = lock(&ingest.caches);
        let sorted = &targets.get("t").expect("cached").entries.sorted;
        assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0), "sorted by key");
    }

    // A page that repeats a new series: the second sample finds the fresh entry.
    let mut app = ingest.appender("t", &tl, 40_000);
    let dup = format!("{}new 1\nnew 2\n", page(600));
    parse(dup.as_bytes(), Format::Text, |s| add_exposed(&mut app, &s)).expect("page parses");
    let c = app.commit();
    assert_eq!((c.series_added, c.out_of_order), (1, 1));

    // Back to 590 series: the ten and `new` go stale, and are dropped from the cache after
    // CACHE_KEEP_SCRAPES scrapes; the vector shrinks only when less than half full.
    let c = scrape(&ingest, "t", &tl, 50_000, &page(590));
    assert_eq!(c.stale_markers, 11);
    for i in 0..CACHE_KEEP_SCRAPES as i64 + 1 {
        scrape(&ingest, "t", &tl, 60_000 + i * 10_000, &page(590));
    }
    assert_eq!(
        lock(&ingest.caches).get("t").expect("cached").entries.len(),
        590
    );
    scrape(&ingest, "t", &tl, 500_000, &page(100));
    for i in 0..CACHE_KEEP_SCRAPES as i64 + 1 {
        scrape(&ingest, "t", &tl, 510_000 + i * 10_000, &page(100));
    }
    assert_eq!(
        cache_bytes(),
        100 * entry + name,
        "shrunk once less than half full"
    );

    // A failed scrape leaves no fresh entries behind.
    let mut app = ingest.appender("t", &tl, 900_000);
    parse(b"other 1\n", Format::Text, |s| add_exposed(&mut app, &s)).expect("page parses");
    drop(app);
    assert_eq!(
        lock(&ingest.caches).get("t").expect("cached").entries.len(),
        100
    );
}

#[test]
fn a_cache_entry_is_16_bytes() {
    assert_eq!(
        size_of::<CacheEntry>(),
        16,
        "a scrape cache bucket is 24 bytes"
    );
}

fn landed(head: &Head) -> Vec<String> {
    let mut taken = crate::series::hash::FastMap::default();
    head.arrivals().take_into(&mut taken);
    let mut n: Vec<String> = taken.keys().map(|k| k.to_string()).collect();
    n.sort();
    n
}

#[test]
fn a_commit_marks_the_names_of_its_page_and_of_its_stale_markers_as_arrivals() {
    let ingest = Ingest::new(Arc::new(Head::new()));
    let head = ingest.head();
    head.arrivals().watch(None::<[&str; 0]>);
    let tl = l(&[("job", "api")]);
    let page = "a{x=\"1\"} 1\na{x=\"2\"} 1\nb 2\nc 3\n";
    scrape(&ingest, "api/h:1", &tl, 10_000, page);
    assert_eq!(landed(head), ["a", "b", "c"]);
    // The same page again: the names kept from the last commit.
    scrape(&ingest, "api/h:1", &tl, 20_000, page);
    assert_eq!(landed(head), ["a", "b", "c"]);
    // c disappears: its stale marker is an arrival too; then it is gone from the names.
    scrape(&ingest, "api/h:1", &tl, 30_000, "a{x=\"1\"} 1\nb 2\n");
    assert_eq!(landed(head), ["a", "b", "c"]);
    scrape(&ingest, "api/h:1", &tl, 40_000, "a{x=\"1\"} 1\nb 2\n");
    assert_eq!(landed(head), ["a", "b"]);
    // The target goes down: every name it exposed ends now.
    ingest.mark_target_stale("api/h:1", 50_000);
    assert_eq!(landed(head), ["a", "b"]);
    // Only the names someone reads are kept.
    head.arrivals().watch(Some(["b"]));
    scrape(&ingest, "api/h:1", &tl, 60_000, page);
    assert_eq!(landed(head), ["b"]);
}
