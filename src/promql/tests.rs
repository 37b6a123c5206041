use super::*;
use crate::series::{STALE_NAN, Sample};
use promql_parser::label::Matcher;

#[test]
fn the_round_memo_gives_back_values_absences_and_nans_as_put() {
    let memo = RoundMemo::with_capacity(0);
    let w = memo.window(MemoWindow {
        f: 1,
        range: 300_000,
        offset: 0,
        at: None,
        ts: 0,
    });
    let nan = f64::from_bits(0x7ff8_0000_0000_0001);
    memo.put(w, 1, Some(0.25));
    memo.put(w, 2, None);
    memo.put(w, 3, Some(nan));
    memo.put(w, 4, Some(f64::from_bits(NO_VALUE)));
    memo.put(w, 1 << 48, Some(1.0));
    memo.put(w + 1, 1, Some(2.0));
    assert_eq!(memo.get(w, 1), Some(Some(0.25)));
    assert_eq!(memo.get(w, 2), Some(None));
    assert_eq!(
        memo.get(w, 3).flatten().map(f64::to_bits),
        Some(nan.to_bits())
    );
    // The one value that looks like an absence, and ids beyond the key, are not kept:
    // computed again, never mistaken.
    assert_eq!(memo.get(w, 4), None);
    assert_eq!(memo.get(w, 1 << 48), None);
    assert_eq!(memo.get(w + 1, 1), Some(Some(2.0)));
    assert_eq!(memo.get(w, 5), None);
    assert_eq!(memo.len(), 4);
}

/// A fake head: series with samples, filtered like the real one.
struct VecSource(Vec<SeriesSamples>);

impl SeriesSource for VecSource {
    fn select(&self, ms: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
        self.0
            .iter()
            .filter(|s| {
                ms.iter()
                    .all(|m| m.is_match(s.labels.get(&m.name).unwrap_or("")))
            })
            .map(|s| SeriesSamples {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .copied()
                    .filter(|x| x.t >= mint && x.t <= maxt)
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect()
    }
}

fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::new(labels.iter().copied()),
        samples: points.iter().map(|&(t, v)| Sample { t, v }).collect(),
    }
}

fn instant(src: &VecSource, q: &str, t: i64) -> Result<Value, EvalError> {
    Engine::default().instant(src, &parse(q).unwrap(), t)
}

fn values(v: Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(s) => s.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        other => panic!("expected vector, got {other:?}"),
    }
}

#[test]
fn lookback_is_left_open_and_stale_markers_end_series() {
    let src = VecSource(vec![
        series(&[("__name__", "a")], &[(0, 1.0)]),
        series(&[("__name__", "b")], &[(0, 1.0), (60_000, STALE_NAN)]),
    ]);
    // Exactly 5m old: out of the left-open lookback window.
    assert!(values(instant(&src, "a", 300_000).unwrap()).is_empty());
    assert_eq!(
        values(instant(&src, "a", 299_999).unwrap()),
        [("a{}".into(), 1.0)]
    );
    // The stale marker hides the earlier sample, and is never a value itself.
    assert!(values(instant(&src, "b", 90_000).unwrap()).is_empty());
    assert!(
        values(instant(&src, "count_over_time(b[5m])", 90_000).unwrap())
            .iter()
            .all(|(_, v)| *v == 1.0)
    );
}

#[test]
fn range_windows_are_left_open() {
    let src = VecSource(vec![series(
        &[("__name__", "c")],
        &[(0, 0.0), (60_000, 1.0), (120_000, 2.0)],
    )]);
    // (0, 120s]: the sample at 0 is out.
    assert_eq!(
        values(instant(&src, "count_over_time(c[2m])", 120_000).unwrap()),
        [("{}".into(), 2.0)]
    );
}

#[test]
fn many_to_many_matching_is_an_error_with_prometheus_wording() {
    let src = VecSource(vec![
        series(&[("__name__", "x"), ("job", "a")], &[(0, 1.0)]),
        series(&[("__name__", "y"), ("job", "a"), ("i", "1")], &[(0, 1.0)]),
        series(&[("__name__", "y"), ("job", "a"), ("i", "2")], &[(0, 1.0)]),
    ]);
    let err = instant(&src, "x + on(job) y", 0).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "found duplicate series for the match group {job=\"a\"} on the right hand-side"
        ),
        "{err}"
    );
    // group_right makes it legal.
    assert_eq!(
        values(instant(&src, "x + on(job) group_right y", 0).unwrap()).len(),
        2
    );
}

#[test]
fn names_are_dropped_at_the_end_and_collisions_fail() {
    let src = VecSource(vec![
        series(&[("__name__", "m1"), ("a", "1")], &[(0, 1.0)]),
        series(&[("__name__", "m2"), ("a", "1")], &[(0, 2.0)]),
    ]);
    assert_eq!(
        instant(&src, "ceil({a=\"1\"})", 0).unwrap_err(),
        EvalError::DuplicateLabelset
    );
    // Comparisons keep the name; arithmetic with a scalar drops it.
    let v = values(instant(&src, "m1 > 0", 0).unwrap());
    assert_eq!(v, [("m1{a=\"1\"}".into(), 1.0)]);
    let v = values(instant(&src, "m1 * 2", 0).unwrap());
    assert_eq!(v, [("{a=\"1\"}".into(), 2.0)]);
}

#[test]
fn range_query_returns_sorted_matrix() {
    let src = VecSource(vec![
        series(&[("__name__", "m"), ("i", "2")], &[(0, 2.0), (60_000, 3.0)]),
        series(&[("__name__", "m"), ("i", "1")], &[(0, 1.0)]),
    ]);
    let v = Engine::default()
        .range(&src, &parse("m").unwrap(), 0, 60_000, 30_000)
        .unwrap();
    let Value::Matrix(m) = v else { panic!() };
    assert_eq!(m[0].labels.get("i"), Some("1"));
    assert_eq!(m[0].samples.len(), 3);
    assert_eq!(
        m[1].samples.iter().map(|s| s.v).collect::<Vec<_>>(),
        [2.0, 2.0, 3.0]
    );
}

/// A rule round aggregates a range function's values as the head streams them (in the
/// order the series were created), but folds them in label order, as the general path
/// does: with a sum that overflows in one order and not in the other, both paths give the
/// same result, name handling and group order.
#[test]
fn a_round_aggregates_streamed_range_values_in_label_order() {
    let head = crate::series::head::Head::new();
    // Created c, a, b: the head streams them in that order.
    for (i, v) in [("c", 1e308), ("a", 1e308), ("b", -1e308)] {
        for job in ["api", "web"] {
            let labels = Labels::new([("__name__", "x"), ("i", i), ("job", job)]);
            head.append(&labels, 10_000, v);
            head.append(&labels, 20_000, v);
        }
    }
    let engine = Engine::default();
    let memo = RoundMemo::default();
    for q in [
        "sum by (job) (last_over_time(x[1m]))",
        "sum without (i) (last_over_time(x[1m]))",
        "avg by (job) (max_over_time(x[1m]))",
        "count(count_over_time(x[1m]))",
        "max by (i) (min_over_time(x[1m]))",
    ] {
        let e = parse(q).unwrap();
        let plain = engine.instant(&head, &e, 30_000).unwrap();
        let in_round = engine.instant_in_round(&head, &e, 30_000, &memo).unwrap();
        assert_eq!(format!("{in_round:?}"), format!("{plain:?}"), "{q}");
    }
    // Label order a, b, c: 1e308 - 1e308 + 1e308, not (1e308 + 1e308) - 1e308 = +Inf.
    let e = parse("sum by (job) (last_over_time(x[1m]))").unwrap();
    let v = values(engine.instant_in_round(&head, &e, 30_000, &memo).unwrap());
    assert_eq!(
        v,
        [
            ("{job=\"api\"}".to_string(), 1e308),
            ("{job=\"web\"}".to_string(), 1e308)
        ]
    );
    // `without` keeps every other label but the name, which `by` keeps when listed, even
    // from a function that keeps it.
    let e = parse("sum without (i) (last_over_time(x[1m]))").unwrap();
    let v = values(engine.instant_in_round(&head, &e, 30_000, &memo).unwrap());
    assert_eq!(v[0].0, "{job=\"api\"}");
    let e = parse("count by (__name__) (last_over_time(x[1m]))").unwrap();
    let v = values(engine.instant_in_round(&head, &e, 30_000, &memo).unwrap());
    assert_eq!(v, [("x{}".to_string(), 6.0)]);
}

/// A round remembers the label order of each selection it aggregated; the next round,
/// streaming the same series in the same order, folds in that order without sorting, and
/// gives what the general path gives (the sums below overflow in the head's order). A new
/// series is a new selection: sorted again. Orders a round did not use are dropped.
#[test]
fn label_orders_carry_to_the_next_round_and_follow_new_series() {
    let head = crate::series::head::Head::new();
    let add = |i: &str, v: f64| {
        for job in ["api", "web"] {
            let labels = Labels::new([("__name__", "x"), ("i", i), ("job", job)]);
            head.append(&labels, 10_000, v);
            head.append(&labels, 20_000, v);
        }
    };
    for (i, v) in [("c", 1e308), ("a", 1e308), ("b", -1e308)] {
        add(i, v);
    }
    let engine = Engine::default();
    let queries = [
        "sum by (job) (last_over_time(x[1m]))",
        "sum without (i) (last_over_time(x[1m]))",
        "max by (i) (min_over_time(x{job=\"api\"}[1m]))",
    ];
    let mut orders = LabelOrders::default();
    let mut sums = Vec::new();
    let mut counts = Vec::new();
    for round in 0..4 {
        if round == 2 {
            // Created last, sorted second: the remembered order no longer fits.
            add("aa", -1e308);
        }
        let memo = RoundMemo::default().with_orders(orders);
        let asked: &[&str] = if round == 3 { &queries[..1] } else { &queries };
        for q in asked {
            let e = parse(q).unwrap();
            let plain = engine.instant(&head, &e, 30_000).unwrap();
            let in_round = engine.instant_in_round(&head, &e, 30_000, &memo).unwrap();
            assert_eq!(
                format!("{in_round:?}"),
                format!("{plain:?}"),
                "round {round}: {q}"
            );
        }
        let e = parse(queries[0]).unwrap();
        sums.push(values(engine.instant_in_round(&head, &e, 30_000, &memo).unwrap())[0].1);
        orders = memo.take_orders();
        counts.push(orders.len());
    }
    // In label order a, b, c: 1e308; a, aa, b, c: 0 (in the head's order, +Inf both).
    assert_eq!(sums, [1e308, 1e308, 0.0, 0.0]);
    // Two selections a round (`x` serves two queries); round 2 adds two for the new series,
    // and round 3 starts without the two it replaced.
    assert_eq!(counts, [2, 2, 4, 2]);
    // Round 3 asked for one of them: the next round starts without the other, and a round
    // that uses nothing drops the rest.
    let memo = RoundMemo::default().with_orders(orders);
    let orders = memo.take_orders();
    assert_eq!(orders.len(), 1);
    let memo = RoundMemo::default().with_orders(orders);
    assert!(memo.take_orders().is_empty());
}
