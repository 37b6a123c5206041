use std::time::Duration;

use super::*;
use crate::promql::{Engine, EvalError, Value};
use crate::series::{Labels, STALE_NAN};
use crate::store::checkpoint::{checkpoint, load_head};
use crate::store::test_util::temp_store;

const STEP: i64 = 15_000;
/// Three hours of samples: far more than the head's window of 15 minutes.
const END: i64 = 3 * 3_600_000;
const WINDOW: Duration = Duration::from_secs(15 * 60);

fn series(job: &str) -> Labels {
    Labels::new([("__name__", "x"), ("job", job)])
}

/// Series `a` from 0 to 3 h, in the store and (its last 15 minutes and more) in the head, then
/// 10 more minutes in the head only; `b` from 0 to 1 h then a stale marker, in the store only;
/// `c` in the head only. `a` is worth its sample number, `b` 1,000 more.
fn history() -> (tempfile::TempDir, crate::store::Store, Head) {
    let (dir, store) = temp_store();
    let before = Head::new();
    for i in 0..=END / STEP {
        before.append(&series("a"), i * STEP, i as f64);
        if i * STEP <= 3_600_000 {
            before.append(&series("b"), i * STEP, 1_000.0 + i as f64);
        }
    }
    before.append(&series("b"), 3_600_000 + STEP, STALE_NAN);
    checkpoint(&before, &store.samples, true, i64::MIN).unwrap();
    // A restart at END: the head gets back its window, then goes on.
    let head = Head::new();
    load_head(&head, &store.samples, END, WINDOW);
    for i in END / STEP + 1..=(END + 600_000) / STEP {
        head.append(&series("a"), i * STEP, i as f64);
        head.append(&series("c"), i * STEP, -1.0);
    }
    (dir, store, head)
}

/// The matrix of a range query, as (job, [(t, v)]).
fn matrix(v: Value) -> Vec<(String, Vec<(i64, f64)>)> {
    let Value::Matrix(m) = v else {
        panic!("not a matrix: {v:?}")
    };
    m.into_iter()
        .map(|s| {
            let job = s.labels.get("job").unwrap_or("").to_string();
            (job, s.samples.iter().map(|x| (x.t, x.v)).collect())
        })
        .collect()
}

fn range(src: &dyn SeriesSource, q: &str, start: i64, end: i64, step: i64) -> Value {
    let expr = crate::promql::parse(q).unwrap();
    Engine::default()
        .range(src, &expr, start, end, step)
        .unwrap()
}

#[test]
fn a_range_query_reads_the_store_and_the_head_without_gap_or_double() {
    let (_dir, store, head) = history();
    let limits = QueryLimits::none();
    let src = QuerySource::new(&head, &store.samples, &limits);
    let end = END + 600_000;
    let got = matrix(range(&src, "x", 0, end, STEP));
    let jobs: Vec<&str> = got.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(jobs, ["a", "b", "c"], "b is found in the store only");
    // a: every step, its own sample, across the head's window boundary (END - 15m).
    let a: Vec<(i64, f64)> = (0..=end / STEP).map(|i| (i * STEP, i as f64)).collect();
    assert_eq!(got[0].1, a);
    // b: up to its stale marker, then nothing (no 5 minutes of lookback after it).
    let b: Vec<(i64, f64)> = (0..=3_600_000 / STEP)
        .map(|i| (i * STEP, 1_000.0 + i as f64))
        .collect();
    assert_eq!(got[1].1, b);

    // Every sample counted once: 4 samples in every minute, also where the head's samples
    // and the store's overlap.
    let counts = matrix(range(
        &src,
        "count_over_time(x{job=\"a\"}[1m])",
        60_000,
        end,
        STEP,
    ));
    assert!(
        counts[0].1.iter().all(|&(_, v)| v == 4.0),
        "{:?}",
        counts[0]
            .1
            .iter()
            .filter(|x| x.1 != 4.0)
            .collect::<Vec<_>>()
    );

    // The head alone knows only its window: what the store adds is what this test is about.
    let alone = matrix(range(&head, "x", 0, end, STEP));
    assert_eq!(alone.len(), 2, "b is not in the head");
    assert!(alone[0].1.len() < a.len() / 2);
}

#[test]
fn an_instant_query_of_last_hour_answers_from_the_store() {
    let (_dir, store, head) = history();
    let limits = QueryLimits::none();
    let src = QuerySource::new(&head, &store.samples, &limits);
    let expr = crate::promql::parse("sum(x)").unwrap();
    let v = Engine::default().instant(&src, &expr, 1_800_000).unwrap();
    let Value::Vector(v) = v else { panic!() };
    assert_eq!(v[0].v, 120.0 + 1_120.0);
    let labels = src.series_labels(
        &crate::promql::selector_matchers(&match crate::promql::parse("x").unwrap() {
            crate::promql::Expr::VectorSelector(vs) => vs,
            _ => unreachable!(),
        })
        .unwrap(),
        0,
        3_600_000,
    );
    assert_eq!(labels, vec![series("a"), series("b")]);
}

#[test]
fn a_query_over_its_sample_limit_or_deadline_stops_with_prometheus_errors() {
    let (_dir, store, head) = history();
    let expr = crate::promql::parse("sum(count_over_time(x[3h]))").unwrap();
    let engine = Engine::default();
    let limits = QueryLimits::new(1_000, None);
    let src = QuerySource::new(&head, &store.samples, &limits);
    assert_eq!(
        engine.instant_limited(&src, &expr, END, &limits),
        Err(EvalError::TooManySamples)
    );
    assert!(
        limits.loaded() < 1_000 + 200,
        "it stopped early: {}",
        limits.loaded()
    );

    let enough = QueryLimits::new(10_000, None);
    let src = QuerySource::new(&head, &store.samples, &enough);
    let v = engine.instant_limited(&src, &expr, END, &enough).unwrap();
    let Value::Vector(v) = v else { panic!() };
    assert_eq!(
        v[0].v,
        720.0 + 240.0,
        "3 h of a (left-open) and b's hour, its marker not"
    );

    let late = QueryLimits::new(u64::MAX, Some(std::time::Instant::now()));
    let src = QuerySource::new(&head, &store.samples, &late);
    assert_eq!(
        engine.range_limited(&src, &expr, (0, END, 60_000), &late),
        Err(EvalError::Timeout)
    );
}
