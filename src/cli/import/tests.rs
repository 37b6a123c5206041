use super::*;

fn cut(samples: &[(i64, f64)], spans: &[(i64, i64)]) -> (Vec<Vec<i64>>, Imported) {
    let mut samples = samples.to_vec();
    let mut done = Imported::default();
    let mut chunks = Vec::new();
    let keep = Keep {
        from: 0,
        until: i64::MAX,
    };
    cut_series(&mut samples, spans, keep, &mut done, |c| {
        chunks.push(c.iter().map(|s| s.t).collect::<Vec<_>>());
        Ok::<(), ()>(())
    })
    .unwrap();
    (chunks, done)
}

#[test]
fn samples_in_any_order_come_out_sorted_in_chunks_of_the_head_size() {
    let mut samples: Vec<(i64, f64)> = (1..=250).rev().map(|i| (i * 1000, i as f64)).collect();
    samples.swap(3, 200);
    let (chunks, done) = cut(&samples, &[]);
    let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
    assert_eq!(sizes, [DEFAULT_CHUNK_SAMPLES, DEFAULT_CHUNK_SAMPLES, 10]);
    let all: Vec<i64> = chunks.concat();
    assert_eq!(all, (1..=250).map(|i| i * 1000).collect::<Vec<_>>());
    assert_eq!(done, Imported::default());
}

#[test]
fn stored_spans_win_and_chunks_do_not_straddle_them() {
    let samples: Vec<(i64, f64)> = (1..=10).map(|i| (i * 10, 0.0)).collect();
    // Stored: 30..=50. Kept: 10, 20 | 60..=100.
    let (chunks, done) = cut(&samples, &[(30, 50)]);
    assert_eq!(chunks, [vec![10, 20], vec![60, 70, 80, 90, 100]]);
    assert_eq!(done.already_stored, 3);
}

#[test]
fn the_later_line_wins_at_a_repeated_timestamp() {
    let mut samples = vec![(10, 1.0), (20, 2.0), (10, 3.0)];
    let mut done = Imported::default();
    let mut values = Vec::new();
    let keep = Keep {
        from: 0,
        until: i64::MAX,
    };
    cut_series(&mut samples, &[], keep, &mut done, |c| {
        values.extend(c.iter().map(|s| (s.t, s.v)));
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(values, [(10, 3.0), (20, 2.0)]);
    assert_eq!(done.duplicates, 1);
}

#[test]
fn windows_hold_whole_hours_up_to_the_budget() {
    let h = HOUR_MS;
    let per_hour = BTreeMap::from([
        (0, WINDOW_SAMPLES / 2),
        (h, WINDOW_SAMPLES / 2),
        (2 * h, 1),
        (5 * h, WINDOW_SAMPLES * 2),
    ]);
    assert_eq!(
        windows(&per_hour),
        [(0, 2 * h), (2 * h, 3 * h), (5 * h, 6 * h)]
    );
}

#[test]
fn merged_spans_are_disjoint_and_sorted() {
    assert_eq!(
        merge_spans(vec![(50, 60), (0, 10), (5, 20), (20, 30)]),
        [(0, 30), (50, 60)]
    );
}

#[test]
fn the_progress_line_is_rewritten_in_place() {
    assert_eq!(
        progress_line(1, 1, 7),
        "\rimport: checking the file:   7%\x1b[K"
    );
    let line = progress_line(3, 5, 100);
    assert_eq!(line, "\rimport: writing, pass 2 of 4: 100%\x1b[K");
    assert!(!line.contains('\n'));
}

#[test]
fn samples_before_the_retention_or_after_now_are_skipped_and_counted() {
    let mut samples = vec![(5, 1.0), (10, 1.0), (20, 1.0), (31, 1.0)];
    let mut done = Imported::default();
    let mut kept = Vec::new();
    let keep = Keep {
        from: 10,
        until: 30,
    };
    cut_series(&mut samples, &[], keep, &mut done, |c| {
        kept.extend(c.iter().map(|s| s.t));
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(kept, [10, 20]);
    assert_eq!((done.too_old, done.future), (1, 1));
}
