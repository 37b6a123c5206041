use super::super::Store;
use super::*;
use crate::series::{SeriesSamples, SeriesSource};

fn all_samples(head: &Head) -> Vec<SeriesSamples> {
    let mut v = head.select(&[], i64::MIN, i64::MAX);
    v.sort_by(|a, b| a.labels.cmp(&b.labels));
    v
}

fn open(path: &std::path::Path) -> Store {
    let opened = Store::open(path).expect("open store");
    assert!(opened.recovered_from_corruption.is_none());
    opened.store
}

/// Appends samples `from..to` (10 s apart) to 50 series: counters, gauges and constants.
fn scrape(head: &Head, from: i64, to: i64) {
    for i in 0..50i64 {
        let labels = Labels::new([("job", "api".to_string()), ("i", i.to_string())]);
        for k in from..to {
            let v = match i % 3 {
                0 => (k * k % 7 + k * 3) as f64,
                1 => ((k * 31 + i) % 100) as f64 / 4.0,
                _ => 1.0,
            };
            head.append(&labels, 1_700_000_000_000 + k * 10_000, v);
        }
    }
}

/// Samples `0..n` of [`scrape`] with a checkpoint every 30 s of them, as the Checkpointer
/// does; returns the chunks written.
fn scrape_with_checkpoints(head: &Head, store: &Store, n: i64) -> usize {
    let mut written = 0;
    for k in (0..n).step_by(3) {
        scrape(head, k, k + 3);
        written += checkpoint(head, &store.samples, false, i64::MIN).expect("checkpoint");
    }
    written
}

#[test]
fn checkpoints_and_a_reopen_give_back_the_same_samples() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let now = 1_700_000_000_000 + 1_000 * 10_000;
    let window = Duration::from_secs(86_400);
    let head = Head::new();
    let written = {
        let store = open(&path);
        // 300 samples each (two stored chunks of 120 cut from the open one, 60 not
        // stored), then the stop checkpoint.
        let mut written = scrape_with_checkpoints(&head, &store, 300);
        assert_eq!(written, 100, "two stored chunks per series");
        written += checkpoint(&head, &store.samples, true, i64::MIN).expect("stop checkpoint");
        written
    };
    assert_eq!(written, 150);

    let store = open(&path);
    let reloaded = Head::new();
    let loaded = load_head(&reloaded, &store.samples, now, window);
    assert_eq!((loaded.series, loaded.samples), (50, 50 * 300));
    assert_eq!(all_samples(&reloaded), all_samples(&head));
    assert_eq!(store.skipped_records(), 0);

    // The loaded samples are one open chunk again (not three), and they are not
    // written again: the next stop stores only the 100 samples after them.
    assert_eq!(reloaded.stats().chunks, 50);
    assert_eq!(
        checkpoint(&reloaded, &store.samples, false, i64::MIN).unwrap(),
        0
    );
    scrape(&head, 300, 400);
    scrape(&reloaded, 300, 400);
    assert_eq!(
        checkpoint(&reloaded, &store.samples, true, i64::MIN).unwrap(),
        50
    );
    drop(store);

    // Four stored chunks a series, none overlapping: all 400 samples come back once.
    let store = open(&path);
    let again = Head::new();
    let loaded = load_head(&again, &store.samples, now, window);
    assert_eq!((loaded.series, loaded.samples), (50, 50 * 400));
    assert_eq!(all_samples(&again), all_samples(&head));
}

#[test]
fn a_window_that_grows_on_reload_gets_the_stored_history_back_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("store"));
    let full = Head::new();
    // 300 samples (50 minutes at 10 s) per series, stored; the head then keeps 15 minutes.
    scrape_with_checkpoints(&full, &store, 300);
    checkpoint(&full, &store.samples, true, i64::MIN).expect("stop checkpoint");
    let now = 1_700_000_000_000 + 300 * 10_000;
    let narrow = Head::new();
    let loaded = load_head(&narrow, &store.samples, now, Duration::from_secs(900));
    assert!(loaded.samples < 50 * 300, "a 15-minute head holds less");
    // New samples keep arriving while the window is narrow.
    scrape(&narrow, 300, 310);
    scrape(&full, 300, 310);

    let added = backfill_head(
        &narrow,
        &store.samples,
        now,
        Duration::from_secs(900),
        Duration::from_secs(3600),
    );
    assert_eq!(
        added + loaded.samples,
        50 * 300,
        "every stored sample, once"
    );
    assert_eq!(all_samples(&narrow), all_samples(&full));
    // Backfilling again adds nothing; appends go on after the backfilled history.
    assert_eq!(
        backfill_head(
            &narrow,
            &store.samples,
            now,
            Duration::from_secs(900),
            Duration::from_secs(3600)
        ),
        0
    );
    scrape(&narrow, 310, 311);
    scrape(&full, 310, 311);
    assert_eq!(all_samples(&narrow), all_samples(&full));
}

#[test]
fn a_crash_after_a_stored_chunk_reloads_every_sample_once() {
    // 150 samples: the first 120 go to the store as a chunk, and the checkpoint's
    // snapshot holds the open chunk, all 150 (stored ones first). No stop checkpoint:
    // the process dies. The reload skips what the snapshot repeats.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let head = Head::new();
    {
        let store = open(&path);
        let written = scrape_with_checkpoints(&head, &store, 150);
        assert_eq!(written, 50, "one stored chunk per series");
        // Trimming the stored, expired samples (as the Checkpointer does) leaves the
        // rest alone.
        head.truncate_and_trim(1_700_000_000_000 + 100 * 10_000);
        assert_eq!(head.stats().samples, 50 * 50);
        checkpoint(&head, &store.samples, false, i64::MIN).expect("checkpoint");
    }
    let store = open(&path);
    let reloaded = Head::new();
    let now = 1_700_000_000_000 + 150 * 10_000;
    let loaded = load_head(&reloaded, &store.samples, now, Duration::from_secs(86_400));
    // The whole window of the store (all 150) comes back, each sample once.
    assert_eq!((loaded.series, loaded.samples), (50, 50 * 150));
    let got = all_samples(&reloaded);
    assert!(
        got.iter()
            .all(|s| s.samples.len() == 150
                && s.samples.windows(2).all(|w| w[1].t - w[0].t == 10_000))
    );
    // And what the head held is among it, sample for sample.
    for (a, b) in all_samples(&head).iter().zip(&got) {
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.samples[..], b.samples[100..]);
    }
}

#[test]
fn chunks_cut_while_the_store_was_away_are_stored_whole_and_reload() {
    // Stored chunks of 10: the open chunk takes 40 samples before a new one is cut. 100
    // samples with no checkpoint (the store was unwritable) leave three chunks in memory;
    // the next checkpoint stores the two closed ones whole and the open one's 20.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let head = Head::with_chunk_samples(10);
    scrape(&head, 0, 100);
    assert_eq!(head.stats().chunks, 150);
    {
        let store = open(&path);
        assert_eq!(
            checkpoint(&head, &store.samples, false, i64::MIN).unwrap(),
            150
        );
        assert_eq!(
            checkpoint(&head, &store.samples, false, i64::MIN).unwrap(),
            0,
            "once"
        );
        // Everything is stored: trimming to the last 25 samples drops the first closed
        // chunk (0-39) and re-encodes the second from 75 on (5 left); the open one (80-99)
        // has nothing to give.
        head.truncate_and_trim(1_700_000_000_000 + 75 * 10_000);
        assert_eq!((head.stats().chunks, head.stats().samples), (100, 50 * 25));
        store.flush().expect("flush");
    }
    let store = open(&path);
    let reloaded = Head::with_chunk_samples(10);
    let now = 1_700_000_000_000 + 100 * 10_000;
    let loaded = load_head(&reloaded, &store.samples, now, Duration::from_secs(86_400));
    assert_eq!((loaded.series, loaded.samples), (50, 50 * 100));
    // Loaded into open chunks of at most 40 again, and the same samples.
    assert_eq!(reloaded.stats().chunks, 150);
    for (a, b) in all_samples(&head).iter().zip(&all_samples(&reloaded)) {
        assert_eq!(a.samples[..], b.samples[75..]);
    }
}

#[test]
fn a_series_that_stops_is_stored_before_truncation_drops_it() {
    // 50 samples of a series that then stops: its only chunk never closes. The checkpoint
    // before the truncation that drops it stores it, so the store keeps its samples.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let t0 = 1_700_000_000_000i64;
    let gone = Labels::new([("job", "api"), ("series", "gone")]);
    let live = Labels::new([("job", "api"), ("series", "live")]);
    let head = Head::new();
    for k in 0..50 {
        head.append(&gone, t0 + k * 10_000, k as f64);
    }
    for k in 0..200 {
        head.append(&live, t0 + k * 10_000, k as f64);
    }
    {
        let store = open(&path);
        let cutoff = t0 + 100 * 10_000;
        // The live series' first chunk closed (120 samples); the stopped one is idle.
        assert_eq!(checkpoint(&head, &store.samples, false, cutoff).unwrap(), 2);
        assert_eq!(head.truncate_and_trim(cutoff), 1, "the stopped series goes");
        assert_eq!(
            checkpoint(&head, &store.samples, false, cutoff).unwrap(),
            0,
            "once"
        );
        store.flush().expect("flush");
    }
    let store = open(&path);
    let reloaded = Head::new();
    load_head(
        &reloaded,
        &store.samples,
        t0 + 200 * 10_000,
        Duration::from_secs(86_400),
    );
    use promql_parser::label::{MatchOp, Matcher};
    let only_gone = [Matcher::new(MatchOp::Equal, "series", "gone")];
    let got = reloaded.select(&only_gone, i64::MIN, i64::MAX);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples.len(), 50);
}

#[test]
fn the_head_window_covers_the_ranges_of_rule_file_rules() {
    let rule = |expr: &str| crate::config::RuleConfig {
        alert: String::new(),
        record: "job:x:rate2h".into(),
        expr: crate::config::PromqlExpr {
            source: expr.into(),
            expr: crate::promql::parse(expr).unwrap(),
        },
        for_: Default::default(),
        keep_firing_for: Default::default(),
        labels: Default::default(),
        annotations: Default::default(),
    };
    let mut c = crate::config::Config::default();
    c.rule_groups.push(crate::config::RuleGroupConfig {
        name: "g".into(),
        file: "r.yml".into(),
        interval: None,
        limit: 0,
        rules: vec![rule("rate(x[2h])")],
    });
    assert!(
        head_window(&c) >= Duration::from_secs(2 * 3600 + 300),
        "{:?}",
        head_window(&c)
    );
}
