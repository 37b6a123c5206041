use super::*;
use crate::series::labels::LabelStr;
use crate::series::{Label, STALE_NAN};
use promql_parser::label::MatchOp;

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value)
}

fn re(name: &str, pattern: &str) -> MatchOp {
    let _ = name;
    MatchOp::Re(regex::Regex::new(&format!("^(?:{pattern})$")).expect("regex"))
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

#[test]
fn head_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Head>();
    assert_send_sync::<Arc<Head>>();
}

#[test]
fn append_and_select_with_every_matcher_kind() {
    let head = Head::new();
    let a = l(&[("__name__", "up"), ("job", "api"), ("instance", "a:1")]);
    let b = l(&[("__name__", "up"), ("job", "web"), ("instance", "b:1")]);
    let c = l(&[("__name__", "other"), ("job", "api")]);
    for (i, s) in [&a, &b, &c].iter().enumerate() {
        assert_eq!(head.append(s, 1000, i as f64), AppendOutcome::Appended);
        assert_eq!(
            head.append(s, 2000, 10.0 + i as f64),
            AppendOutcome::Appended
        );
    }
    let name = |v: &str| m(MatchOp::Equal, "__name__", v);
    assert_eq!(
        head.samples_of(&[name("up"), m(MatchOp::Equal, "job", "api")])
            .len(),
        1
    );
    assert_eq!(head.samples_of(&[name("up")]).len(), 2);
    assert_eq!(head.samples_of(&[m(MatchOp::Equal, "job", "api")]).len(), 2);
    assert_eq!(
        head.samples_of(&[name("up"), m(MatchOp::NotEqual, "job", "api")])
            .len(),
        1
    );
    assert_eq!(
        head.samples_of(&[m(re("job", "a.*"), "job", "a.*")]).len(),
        2
    );
    assert_eq!(
        head.samples_of(&[m(re("", "u.|oth.*"), "__name__", "u.|oth.*")])
            .len(),
        3
    );
    assert_eq!(
        head.samples_of(&[
            name("up"),
            m(
                MatchOp::NotRe(regex::Regex::new("^(?:web)$").expect("re")),
                "job",
                "web"
            )
        ])
        .len(),
        1
    );
    // A matcher that matches the empty string selects series without the label.
    assert_eq!(
        head.samples_of(&[m(MatchOp::Equal, "instance", "")]).len(),
        1
    );
    assert!(head.samples_of(&[name("nope")]).is_empty());
    assert!(
        head.samples_of(&[m(MatchOp::Equal, "nolabel", "x")])
            .is_empty()
    );
    // Time range is closed on both ends.
    let r = head.select(&[name("other")], 2000, 2000);
    assert_eq!(r[0].samples, vec![Sample { t: 2000, v: 12.0 }]);
    assert!(head.select(&[name("other")], 2001, 3000).is_empty());
    // Results come sorted by labels.
    let ups = head.samples_of(&[name("up")]);
    assert!(ups[0].0 < ups[1].0);
}

#[test]
fn out_of_order_and_duplicates() {
    let head = Head::new();
    let s = l(&[("__name__", "x")]);
    assert_eq!(head.append(&s, 100, 1.0), AppendOutcome::Appended);
    assert_eq!(head.append(&s, 100, 1.0), AppendOutcome::Duplicate);
    assert_eq!(head.append(&s, 100, 2.0), AppendOutcome::OutOfOrder);
    assert_eq!(head.append(&s, 50, 2.0), AppendOutcome::OutOfOrder);
    assert_eq!(head.append(&s, 200, 2.0), AppendOutcome::Appended);
    let st = head.stats();
    assert_eq!(st.out_of_order, 2);
    assert_eq!(st.samples, 2);
}

#[test]
fn chunks_are_cut_and_stats_account_for_them() {
    // Stored chunks of 30: the open chunk takes OPEN_CHUNK_LIMIT (4) of them, 120 samples.
    let head = Head::with_chunk_samples(30);
    let s = l(&[("__name__", "x"), ("job", "j")]);
    for i in 0..250 {
        head.append(&s, i * 10_000, i as f64);
    }
    let st = head.stats();
    assert_eq!((st.series, st.samples, st.chunks), (1, 250, 3));
    assert!(st.chunk_bytes > 0 && st.bytes > st.chunk_bytes);
    let got = head.select(&[m(MatchOp::Equal, "__name__", "x")], 0, i64::MAX);
    assert_eq!(got[0].samples.len(), 250);
    assert!(got[0].samples.windows(2).all(|w| w[0].t < w[1].t));
    // A range inside the second chunk.
    let mid = head.select(&[m(MatchOp::Equal, "__name__", "x")], 1_300_000, 1_310_000);
    assert_eq!(mid[0].samples.len(), 2);
}

#[test]
fn strings_are_interned() {
    let head = Head::new();
    let a = head.series(&l(&[("__name__", "a"), ("job", "api")]));
    let b = head.series(&l(&[("__name__", "b"), ("job", "api")]));
    let job = |s: &MemSeries| {
        s.labels()
            .iter()
            .find(|x| x.name() == "job")
            .cloned()
            .expect("job")
    };
    assert!(LabelStr::ptr_eq(job(&a).value(), job(&b).value()));
    assert!(LabelStr::ptr_eq(job(&a).name(), job(&b).name()));
    // Same labels, same series.
    let again = head.series(&l(&[("job", "api"), ("__name__", "a")]));
    assert!(Arc::ptr_eq(&a, &again));
}

#[test]
fn a_removed_series_beside_its_successor_is_never_found() {
    // Truncation marks a series removed before it takes it out of the index; a series with the
    // same labels created in between sits beside it in the table until then.
    let head = Head::with_chunk_samples(10);
    let a = l(&[("__name__", "x"), ("job", "j")]);
    let old = head.series(&a);
    old.mark_removed();
    let new = head.series(&a);
    assert!(!Arc::ptr_eq(&old, &new));
    assert_eq!(read(&head.index).len(), 2);
    write(&head.index).remove_removed(std::slice::from_ref(&old));
    assert_eq!(read(&head.index).len(), 1);
    assert!(Arc::ptr_eq(&head.series(&a), &new));
    // Many series: fresh ones are merged into the sorted vector as they come (many merges),
    // and every one is found, wherever it sits.
    let y = |i: usize| l(&[("__name__", "y"), ("i", &i.to_string())]);
    let many: Vec<Arc<MemSeries>> = (0..5000).map(|i| head.series(&y(i))).collect();
    for (i, s) in many.iter().enumerate() {
        assert!(Arc::ptr_eq(s, &head.series(&y(i))));
    }
    {
        let index = read(&head.index);
        assert_eq!(index.len(), 5001);
        assert_eq!(index.all().len(), 5001);
        assert!(index.sorted.len() >= 4000, "merged: {}", index.sorted.len());
        let hashes: Vec<u64> = index
            .sorted
            .iter()
            .map(|s| labels_hash(&s.labels))
            .collect();
        assert!(hashes.is_sorted(), "the vector is sorted by hash");
    }
    // Every tenth one removed (most of them in the sorted vector), each with a successor
    // created before the index drops it: only the successor is ever found.
    let removed: Vec<Arc<MemSeries>> = many.iter().step_by(10).cloned().collect();
    for s in &removed {
        s.mark_removed();
    }
    let successors: Vec<Arc<MemSeries>> =
        (0..5000).step_by(10).map(|i| head.series(&y(i))).collect();
    for (s, n) in removed.iter().zip(&successors) {
        assert!(!Arc::ptr_eq(s, n));
    }
    write(&head.index).remove_removed(&removed);
    assert_eq!(read(&head.index).len(), 5001);
    for (i, s) in many.iter().enumerate() {
        let found = head.series(&y(i));
        match i % 10 {
            0 => assert!(Arc::ptr_eq(&found, &successors[i / 10])),
            _ => assert!(Arc::ptr_eq(&found, s)),
        }
    }
}

#[test]
fn series_share_their_label_pairs() {
    let head = Head::with_chunk_samples(10);
    let a = head.series(&l(&[("__name__", "x"), ("job", "j"), ("i", "1")]));
    let b = head.series(&l(&[("__name__", "y"), ("job", "j"), ("i", "2")]));
    let job = |s: &MemSeries| s.labels.iter().find(|l| &**l.name() == "job").cloned();
    let (ja, jb) = (job(&a).expect("job"), job(&b).expect("job"));
    assert!(Label::ptr_eq(&ja, &jb), "one pair for job=\"j\"");
    // Built from the interned strings, which the index and the matchers compare by address.
    let name = lock(&head.interner).intern("job");
    assert!(LabelStr::ptr_eq(ja.name(), &name));
    // Label sets built elsewhere compare equal to the interned ones.
    assert_eq!(a.labels, l(&[("i", "1"), ("job", "j"), ("__name__", "x")]));
    assert_eq!(lock(&head.interner).pairs.len(), 5);
}

#[test]
fn truncate_drops_old_chunks_and_empty_series() {
    // Chunks of 12 samples in memory (3 × OPEN_CHUNK_LIMIT).
    let head = Head::with_chunk_samples(3);
    let old = l(&[("__name__", "old"), ("job", "gone")]);
    let live = l(&[("__name__", "live"), ("job", "j")]);
    for i in 0..30 {
        head.append(&old, i * 1000, 1.0);
        head.append(&live, i * 1000 + 100_000, 1.0);
    }
    assert_eq!(head.stats().chunks, 6);
    // Everything of `old` is before 50 s; `live`'s first chunk ends at 111 s.
    assert_eq!(head.truncate(112_000), 1);
    let st = head.stats();
    assert_eq!((st.series, st.chunks, st.samples), (1, 2, 18));
    // The dropped chunk's room went with it.
    for s in head.all_series() {
        let chunks = lock(&s.data);
        assert_eq!(chunks.list_bytes(), chunks.len() * size_of::<Chunk>());
    }
    // Down to one chunk, the series holds it inline again (no list at all).
    assert_eq!(head.truncate(124_000), 0);
    let s = head.series(&live);
    assert!(matches!(&*lock(&s.data), SeriesChunks::One(_)));
    assert_eq!(lock(&s.data).list_bytes(), 0);
    assert_eq!(head.stats().samples, 6);
    assert!(
        head.samples_of(&[m(MatchOp::Equal, "job", "gone")])
            .is_empty()
    );
    assert!(
        head.samples_of(&[m(MatchOp::Equal, "__name__", "old")])
            .is_empty()
    );
    // Its strings and label pairs left the interner.
    assert!(!lock(&head.interner).set.contains("gone"));
    assert!(
        !lock(&head.interner)
            .pairs
            .iter()
            .any(|p| &**p.value() == "gone" || &**p.value() == "old")
    );
    // The series can come back.
    assert_eq!(head.append(&old, 200_000, 2.0), AppendOutcome::Appended);
    assert_eq!(
        head.samples_of(&[m(MatchOp::Equal, "job", "gone")]).len(),
        1
    );
}

#[test]
fn truncate_trims_stored_samples_once_a_quarter_chunk_of_them_is_old() {
    let head = Head::with_chunk_samples(20);
    let a = l(&[("__name__", "a")]);
    for i in 0..60 {
        head.append(&a, i * 1000, i as f64);
    }
    let times = |head: &Head| -> Vec<i64> {
        head.samples_of(&[m(MatchOp::Equal, "__name__", "a")])[0]
            .1
            .iter()
            .map(|&(t, _)| t)
            .collect()
    };
    // One chunk, 0-59 s, the open one (it takes 80 samples before a new one is cut).
    assert_eq!((head.stats().chunks, head.stats().samples), (1, 60));
    // Nothing is stored: neither truncation trims (the samples exist nowhere else).
    assert_eq!(head.truncate(25_000), 0);
    assert_eq!(head.truncate_and_trim(25_000), 0);
    assert_eq!(head.stats().samples, 60);
    // Stored up to 39 s: at 25 s, 25 old samples (more than a quarter of 20) go, re-encoded.
    head.series(&a).set_persisted_until(39_000);
    // Plain truncation (a checkpoint failed) keeps them.
    assert_eq!(head.truncate(25_000), 0);
    assert_eq!(head.stats().samples, 60);
    assert_eq!(head.truncate_and_trim(25_000), 0);
    assert_eq!(times(&head), (25..60).map(|i| i * 1000).collect::<Vec<_>>());
    // Two more old samples are too few to re-encode for.
    head.truncate_and_trim(27_000);
    assert_eq!(head.stats().samples, 35);
    // Samples not stored stay, however old: at 45 s only those up to 39 s go.
    head.truncate_and_trim(45_000);
    assert_eq!(times(&head), (40..60).map(|i| i * 1000).collect::<Vec<_>>());
    assert_eq!(head.stats().chunks, 1);
    // Appends go on after a trim, and read back with the kept samples.
    assert_eq!(head.append(&a, 60_000, 60.0), AppendOutcome::Appended);
    assert_eq!(head.append(&a, 59_000, 1.0), AppendOutcome::OutOfOrder);
    let v = head.samples_of(&[m(MatchOp::Equal, "__name__", "a")]);
    assert_eq!(
        v[0].1,
        (40..61)
            .map(|i| (i * 1000, (i as f64).to_bits()))
            .collect::<Vec<_>>()
    );
}

/// The checkpoint's one walk gives what truncation followed by [`Head::stats`] gives: the
/// same series removed, the same chunks trimmed, and statistics of the head as it is after.
#[test]
fn truncation_with_statistics_equals_truncation_then_statistics() {
    let build = || {
        let head = Head::with_chunk_samples(20);
        for k in 0..40 {
            let s = l(&[("__name__", "m"), ("k", &k.to_string())]);
            // Series 0-9 stop at 30 s, the others run to 99 s; half of them stored to 60 s.
            let end = if k < 10 { 30 } else { 100 };
            for i in 0..end {
                head.append(&s, i * 1000, (i * k) as f64);
            }
            if k % 2 == 0 {
                head.series(&s).set_persisted_until(60_000);
            }
        }
        head
    };
    for (cutoff, trim) in [(50_000, true), (50_000, false), (10_000, true), (0, true)] {
        let (a, b) = (build(), build());
        let removed = match trim {
            true => a.truncate_and_trim(cutoff),
            false => a.truncate(cutoff),
        };
        let expected = a.stats();
        let got = b.truncate_with_stats(cutoff, trim);
        assert_eq!(got, expected, "cutoff {cutoff}, trim {trim}");
        assert_eq!(b.stats(), expected, "cutoff {cutoff}, trim {trim}");
        assert_eq!(
            expected.series,
            40 - removed,
            "cutoff {cutoff}, trim {trim}"
        );
        let all = |h: &Head| h.samples_of(&[m(MatchOp::Equal, "__name__", "m")]);
        assert_eq!(all(&a), all(&b), "cutoff {cutoff}, trim {trim}");
    }
    // At 50 s the stopped series went and the stored half was trimmed.
    let head = build();
    let st = head.truncate_with_stats(50_000, true);
    assert_eq!(st.series, 30);
    assert_eq!(st.samples, 15 * 100 + 15 * 50);
}

#[test]
fn a_kept_series_survives_truncation() {
    let head = Head::new();
    let probe = l(&[("__name__", "probe_success"), ("probe", "p")]);
    let mut kept = head.series(&probe);
    assert_eq!(
        head.append_series(&mut kept, 1000, 1.0),
        AppendOutcome::Appended
    );
    assert_eq!(head.truncate(5000), 1);
    // The kept handle is replaced by the series' successor, which queries see.
    assert_eq!(
        head.append_series(&mut kept, 10_000, 0.0),
        AppendOutcome::Appended
    );
    assert!(Arc::ptr_eq(&kept, &head.series(&probe)));
    assert_eq!(
        head.append_series(&mut kept, 20_000, 1.0),
        AppendOutcome::Appended
    );
    let v = head.samples_of(&[m(MatchOp::Equal, "probe", "p")]);
    assert_eq!(
        v[0].1,
        vec![(10_000, 0f64.to_bits()), (20_000, 1f64.to_bits())]
    );
}

#[test]
fn export_and_reload_round_trip() {
    let head = Head::with_chunk_samples(50);
    let tl = l(&[("job", "j"), ("instance", "i")]);
    for k in 0..120 {
        head.append(&tl.with("__name__", "a"), k * 15_000, k as f64);
        head.append(
            &tl.with("__name__", "b").with("x", "y"),
            k * 15_000,
            k as f64 * 0.5,
        );
    }
    head.append(&l(&[("__name__", "s")]), 5, STALE_NAN);
    let mut dump: Vec<(Labels, Vec<Vec<u8>>)> = Vec::new();
    head.for_each_series(|labels, chunks| {
        dump.push((
            labels.clone(),
            chunks.iter().map(|c| c.as_bytes().to_vec()).collect(),
        ));
    });
    assert_eq!(dump.len(), 3);
    let restored = Head::with_chunk_samples(50);
    for (labels, chunks) in &dump {
        restored.load_series(labels, chunks).expect("loads");
    }
    let all = [m(re("", ".+"), "__name__", ".+")];
    assert_eq!(head.samples_of(&all), restored.samples_of(&all));
    // Appends continue after the loaded data; samples a series already has are skipped
    // (a checkpoint's open chunk starts with stored ones).
    let a = l(&[("__name__", "a"), ("job", "j"), ("instance", "i")]);
    assert_eq!(
        restored.append(&a, 120 * 15_000, 1.0),
        AppendOutcome::Appended
    );
    let before = restored.samples_of(&all);
    assert_eq!(restored.load_series(&a, &dump[0].1).expect("loads"), 0);
    assert_eq!(restored.samples_of(&all), before);
    assert!(matches!(
        restored.load_series(&a, [&[1u8, 2, 3][..]]),
        Err(LoadError::Chunk { .. })
    ));
}

#[test]
fn concurrent_writers_and_readers() {
    let head = Arc::new(Head::new());
    let mut handles = Vec::new();
    for w in 0..4 {
        let head = head.clone();
        handles.push(std::thread::spawn(move || {
            let tl = l(&[("job", "j"), ("instance", &format!("i{w}"))]);
            for k in 0..50 {
                let w_label = w.to_string();
                head.append(&tl.with("__name__", "a"), k * 1000, 1.0);
                head.append(
                    &tl.with("__name__", "b").with("w", &w_label),
                    k * 1000,
                    k as f64,
                );
                head.append(&tl.with("__name__", "shared"), k * 1000, 1.0);
                let _ = head.select(&[m(MatchOp::Equal, "__name__", "b")], 0, i64::MAX);
            }
        }));
    }
    for h in handles {
        h.join().expect("thread");
    }
    let st = head.stats();
    assert_eq!(st.series, 12);
    assert_eq!(st.samples, 4 * 50 * 3);
    assert_eq!(st.out_of_order, 0);
}

#[test]
fn select_each_skips_what_the_caller_knows_and_lends_the_rest() {
    let head = Head::new();
    let a = l(&[("__name__", "up"), ("job", "api")]);
    let b = l(&[("__name__", "up"), ("job", "web")]);
    let old = l(&[("__name__", "up"), ("job", "old")]);
    for t in [1000, 2000, 3000] {
        head.append(&a, t, t as f64);
        head.append(&b, t, 1.0);
    }
    head.append(&old, 10, 1.0);
    let up = [m(MatchOp::Equal, "__name__", "up")];
    let mut seen = Vec::new();
    let mut skip_b = |_: u64| false;
    assert!(
        head.select_each(&up, 1500, 3000, &mut skip_b, &mut |id, labels, samples| {
            seen.push((id, labels.to_string(), samples.len()))
        })
    );
    // `old` has no sample in the window: not reported. The others, with their ids.
    seen.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(
        seen.iter().map(|s| (s.1.as_str(), s.2)).collect::<Vec<_>>(),
        vec![(r#"up{job="api"}"#, 2), (r#"up{job="web"}"#, 2)]
    );
    let web_id = seen[1].0;
    // A series the caller already knows comes back without samples (and is not read).
    let mut again = Vec::new();
    head.select_each(
        &up,
        1500,
        3000,
        &mut |id| id == web_id,
        &mut |id, _, samples| again.push((id, samples.len())),
    );
    again.sort();
    let mut want = vec![(seen[0].0, 2), (web_id, 0)];
    want.sort();
    assert_eq!(again, want);
}

#[test]
fn a_series_and_its_open_chunk_fit_a_96_byte_allocation() {
    // Arc counters (16) + the series with its open chunk inline: jemalloc's 96-byte size
    // class, where the series (80) and a vector of one chunk (48) took 128 bytes in two
    // regions, and a label set as std's two-word `Arc<[Label]>` took 112. One field more and
    // every series costs 112 again.
    assert!(size_of::<MemSeries>() <= 80, "{}", size_of::<MemSeries>());
    assert_eq!(size_of::<Labels>(), 8, "a label set is one pointer");
    assert_eq!(
        size_of::<SeriesChunks>(),
        size_of::<Chunk>(),
        "the chunk list is a chunk, or a vector in the chunk's niche"
    );
    assert_eq!(
        size_of::<Label>(),
        8,
        "a label is one pointer to a shared pair"
    );
    assert_eq!(size_of::<Chunk>(), 48);
}

#[test]
fn posting_lists_grow_by_an_eighth() {
    let head = Head::new();
    for i in 0..5_000 {
        head.append(&l(&[("instance", "j"), ("i", &i.to_string())]), 1_000, 1.0);
    }
    let index = read(&head.index);
    let list = &index.postings["instance"]["j"].series;
    assert_eq!(list.len(), 5_000);
    assert!(
        list.capacity() <= 5_000 + 5_000 / 8 + 4,
        "capacity {} for 5,000 series",
        list.capacity()
    );
}

#[test]
fn labels_without_postings_are_counted_and_still_select() {
    let head = Head::new();
    for i in 0..50 {
        let name = if i % 2 == 0 { "even" } else { "odd" };
        let code = if i % 5 == 0 { "500" } else { "200" };
        head.append(
            &l(&[
                ("__name__", name),
                ("method", "get"),
                ("code", code),
                ("i", &i.to_string()),
            ]),
            1_000,
            1.0,
        );
    }
    {
        let index = read(&head.index);
        let method = &index.postings["method"]["get"];
        assert!(method.series.is_empty(), "method has no posting list");
        assert_eq!(method.count, 50);
        assert_eq!(index.postings["__name__"]["even"].series.len(), 25);
    }
    let count = |ms: &[Matcher]| head.select(ms, i64::MIN, i64::MAX).len();
    assert_eq!(count(&[m(MatchOp::Equal, "method", "get")]), 50);
    assert_eq!(count(&[m(MatchOp::Equal, "code", "500")]), 10);
    assert_eq!(count(&[m(MatchOp::Equal, "code", "404")]), 0);
    assert_eq!(count(&[m(re("code", "5.."), "code", "5..")]), 10);
    assert_eq!(count(&[m(re("code", "4.."), "code", "4..")]), 0);
    assert_eq!(count(&[m(MatchOp::NotEqual, "code", "500")]), 40);
    assert_eq!(
        count(&[
            m(MatchOp::Equal, "__name__", "even"),
            m(MatchOp::Equal, "code", "500")
        ]),
        5
    );
    assert_eq!(
        count(&[
            m(re("__name__", "even|odd"), "__name__", "even|odd"),
            m(re("i", "1."), "i", "1.")
        ]),
        10
    );
    // Removing series takes their values' counts down and the values away at zero.
    head.truncate(2_000);
    let index = read(&head.index);
    assert!(
        index.postings.is_empty(),
        "no values left after every series went"
    );
}

#[test]
fn range_reads_cut_runs_of_repeated_samples_at_both_ends() {
    // A series that repeats for long stretches (an idle counter), changes now and then, and
    // skips a scrape once: every range read gets exactly the samples in its range, whether its
    // ends fall inside a run, on a run's first or last sample, or between samples.
    let head = Head::with_chunk_samples(60);
    let s = l(&[("__name__", "idle_total"), ("job", "api")]);
    let mut samples = Vec::new();
    let mut t = 1_700_000_000_000i64;
    for i in 0..400i64 {
        t += if i == 150 { 20_000 } else { 10_000 };
        let v = (i / 70) as f64;
        assert_eq!(head.append(&s, t, v), AppendOutcome::Appended);
        samples.push((t, v.to_bits()));
    }
    let ts: Vec<i64> = samples.iter().map(|x| x.0).collect();
    let mut ends = vec![i64::MIN, i64::MAX];
    for &t in ts.iter().step_by(7).chain(ts.iter().skip(60).take(40)) {
        ends.extend([t - 1, t, t + 1, t + 5_000]);
    }
    let matcher = [m(MatchOp::Equal, "__name__", "idle_total")];
    for &mint in &ends {
        for &maxt in ends.iter().filter(|&&e| e >= mint).step_by(3) {
            let got: Vec<(i64, u64)> = head
                .select(&matcher, mint, maxt)
                .first()
                .map(|x| x.samples.iter().map(|x| (x.t, x.v.to_bits())).collect())
                .unwrap_or_default();
            let want: Vec<(i64, u64)> = samples
                .iter()
                .copied()
                .filter(|&(t, _)| t >= mint && t <= maxt)
                .collect();
            assert_eq!(got, want, "[{mint}, {maxt}]");
        }
    }
}
