use super::*;

fn names(expr: &str) -> Reads {
    reads(&promql_parser::parser::parse(expr).expect("parses"))
}

fn these(n: &[&str]) -> Reads {
    Reads::Names(n.iter().map(|s| s.to_string()).collect())
}

#[test]
fn a_rule_reads_the_metric_names_of_all_its_selectors() {
    assert_eq!(
        names("rate(errors_total[5s]) / rate(requests_total[5s]) > 0.01"),
        these(&["errors_total", "requests_total"])
    );
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le) (rate(d_bucket{job="a"}[5m]))) > on() group_left scalar(limit)"#
        ),
        these(&["d_bucket", "limit"])
    );
    assert_eq!(
        names("max_over_time(deriv(x[1m])[10m:1m] offset 5m)"),
        these(&["x"])
    );
    assert_eq!(names("topk(scalar(k), -(y))"), these(&["k", "y"]));
    assert_eq!(names(r#"{__name__="up", job="a"} == 0"#), these(&["up"]));
    assert_eq!(
        names(r#"absent(up{job="a"}) or ALERTS{alertstate="firing"}"#),
        these(&["ALERTS", "up"])
    );
    assert_eq!(
        names(r#"label_replace(z, "a", "$1", "b", "(.*)")"#),
        these(&["z"])
    );
    // Nothing to read: only the clock moves it.
    assert_eq!(names("vector(1) > 0"), these(&[]));
    assert_eq!(names("vector(time()) > 0"), these(&[]));
    // No fixed name: every arrival counts.
    assert_eq!(names(r#"{__name__=~"x|y"} > 1"#), Reads::Any);
    assert_eq!(names(r#"x + {job="a"}"#), Reads::Any);
    assert_eq!(
        watched(&[these(&["b", "a"]), these(&["a"])]),
        Some(vec!["a", "b"])
    );
    assert_eq!(watched(&[these(&["a"]), Reads::Any]), None);
}

const SEC: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `reads` through the schedule as the engine does: a first round at `first` sees what
/// landed until then, every later batch of `arrivals` (name, time) is noted when it lands, and
/// each round happens when [`Schedule::next`] says. Returns the times of each rule's
/// evaluations after the first round.
fn run(
    reads: &[Reads],
    every: Duration,
    first: Duration,
    arrivals: &[(&str, Duration)],
    until: Duration,
) -> Vec<Vec<Duration>> {
    let mut arrivals: Vec<_> = arrivals.iter().filter(|(_, t)| *t > first).collect();
    arrivals.sort_by_key(|(_, t)| *t);
    let base = Instant::now();
    let mut s = Schedule::new(reads, every, base + first);
    let mut evals = vec![Vec::new(); reads.len()];
    let mut arrivals = arrivals.into_iter().peekable();
    loop {
        let next = s.next();
        if let Some((name, t)) = arrivals.next_if(|(_, t)| base + *t <= next) {
            let at = base + *t;
            let taken = FastMap::from_iter([(
                LabelStr::from(*name),
                Landed {
                    first: at,
                    last: at,
                },
            )]);
            s.landed(&taken);
            continue;
        }
        if next > base + until {
            return evals;
        }
        let due = s.due(next);
        for (e, _) in evals.iter_mut().zip(&due).filter(|(_, d)| **d) {
            e.push(next - base);
        }
        s.evaluated(&due, next);
    }
}

/// Scrapes of `name` every `every` from `phase`, for `n` intervals, with `late(k)` added to
/// the k-th.
fn scrapes(
    name: &'static str,
    phase: Duration,
    every: Duration,
    n: u32,
    late: impl Fn(u32) -> Duration,
) -> Vec<(&'static str, Duration)> {
    (0..n)
        .map(|k| (name, phase + every * k + late(k)))
        .collect()
}

fn assert_spaced(evals: &[Duration], every: Duration) {
    for w in evals.windows(2) {
        assert!(
            w[1] - w[0] >= every * 9 / 10,
            "evaluations at {:?} and {:?} too close: {evals:?}",
            w[0],
            w[1]
        );
    }
}

fn secs(d: &[Duration]) -> Vec<f64> {
    d.iter()
        .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
        .collect()
}

#[test]
fn a_rule_over_one_target_is_evaluated_right_after_each_scrape() {
    // Scrapes 300 ms after the first round's grid, each a few ms early or late.
    let jitter = |k: u32| ms(u64::from(k * 7 % 40));
    let arrivals = scrapes("x", ms(280), SEC, 30, jitter);
    // Another target's first scrape came last: the first round is half an interval later.
    let evals = run(&[these(&["x"])], SEC, ms(800), &arrivals, SEC * 30);
    let landed: Vec<Duration> = arrivals[1..].iter().map(|(_, t)| *t).collect();
    assert_eq!(evals[0], landed, "one evaluation per scrape, as it lands");
}

#[test]
fn a_rule_over_targets_all_through_the_interval_is_evaluated_on_the_grid_once_an_interval() {
    let mut arrivals = Vec::new();
    for i in 0..10 {
        arrivals.extend(scrapes("x", ms(50 + 100 * i), SEC, 30, |_| Duration::ZERO));
    }
    let evals = run(
        &[these(&["x"]), these(&["x"])],
        SEC,
        ms(960),
        &arrivals,
        SEC * 30,
    );
    // The first scrape after the first round is followed (nothing tells yet that more come),
    // then the grid of the first round.
    let mut expected = vec![ms(1050)];
    expected.extend((1..30).map(|k| ms(960) + SEC * k));
    assert_eq!(evals[0], expected);
    assert_eq!(evals[1], expected, "in the same rounds");
}

#[test]
fn a_rule_without_input_is_evaluated_on_the_grid() {
    let arrivals = scrapes("x", ms(300), SEC, 10, |_| Duration::ZERO);
    let evals = run(
        &[these(&[]), these(&["y"])],
        SEC,
        ms(400),
        &arrivals,
        SEC * 10,
    );
    let ticks: Vec<Duration> = (1..10).map(|k| ms(400) + SEC * k).collect();
    assert_eq!(evals, vec![ticks.clone(), ticks]);
}

#[test]
fn a_late_scrape_is_waited_for_a_little_then_the_rule_follows_again() {
    // The 5th scrape lands 600 ms late; the 6th is on time again.
    let late = |k| if k == 5 { ms(600) } else { Duration::ZERO };
    let arrivals = scrapes("x", ms(300), SEC, 12, late);
    let evals = run(&[these(&["x"])], SEC, ms(310), &arrivals, SEC * 12);
    assert_eq!(
        secs(&evals[0]),
        vec![1.3, 2.3, 3.3, 4.3, 5.4, 6.3, 7.3, 8.3, 9.3, 10.3, 11.3],
        "waits 0.1 s past the due time, evaluates without it, then follows the next scrape"
    );
}

#[test]
fn a_series_that_appears_is_evaluated_at_once_and_a_target_that_slows_down_is_followed_again() {
    // x first lands 3.7 s after the first round; from its 5th scrape on, 300 ms later.
    let late = |k| if k >= 4 { ms(300) } else { Duration::ZERO };
    let arrivals = scrapes("x", ms(3700), SEC, 8, late);
    let evals = run(&[these(&["x"])], SEC, ms(0), &arrivals, SEC * 11);
    assert_eq!(
        secs(&evals[0]),
        vec![1.0, 2.0, 3.0, 3.7, 4.7, 5.7, 6.7, 7.8, 8.7, 9.0, 10.0, 11.0],
        "on the grid without input; right after each scrape; a tenth past the due time \
         without it, the late scrape 0.9 s after that, then right after each scrape again"
    );
}

#[test]
fn input_that_lands_slightly_more_often_than_the_interval_costs_no_more_than_the_grid() {
    // Two targets 50 ms apart: after a round that followed the first, the second's scrape
    // is early; the rule must not be evaluated twice an interval.
    let mut arrivals = scrapes("x", ms(300), SEC, 40, |_| Duration::ZERO);
    arrivals.extend(scrapes("x", ms(350), SEC, 40, |_| Duration::ZERO));
    let evals = run(&[these(&["x"])], SEC, ms(360), &arrivals, SEC * 40);
    assert_spaced(&evals[0], SEC);
    assert!(
        evals[0].len() <= 40,
        "{} evaluations in 40 s",
        evals[0].len()
    );
}

#[test]
fn any_pattern_of_arrivals_costs_at_most_the_grids_evaluations() {
    let mut rng = fastrand::Rng::with_seed(7);
    // Evaluations, and the grid's evaluations over the same intervals.
    let (mut total, mut n) = (0, 0);
    for _ in 0..200 {
        let every = ms(rng.u64(500..5_000));
        let until = every * 40;
        let mut arrivals = Vec::new();
        for name in ["a", "b", "c"] {
            let period = ms(rng.u64(100..10_000));
            let mut t = ms(rng.u64(0..10_000));
            while t < until {
                arrivals.push((name, t + ms(rng.u64(0..50))));
                t += period;
            }
        }
        let reads = [
            these(&["a"]),
            these(&["a", "b"]),
            these(&["c"]),
            these(&[]),
            Reads::Any,
        ];
        let first = ms(rng.u64(0..1000));
        let evals = run(&reads, every, first, &arrivals, until);
        for e in &evals {
            total += e.len();
            n += 40;
            // A source scraped a little more often than the interval gets one per scrape.
            assert!(
                e.len() <= 45,
                "{} evaluations in 40 intervals: {e:?}",
                e.len()
            );
            // Never more than two intervals without an evaluation.
            let mut prev = first;
            for t in e {
                assert!(*t - prev <= every * 2, "{prev:?} → {t:?} in {e:?}");
                prev = *t;
            }
        }
    }
    assert!(total <= n, "{total} evaluations where the grid makes {n}");
}

#[test]
fn what_a_round_recorded_is_not_fresh_input_for_the_rules_after_the_writer() {
    // Rule 0 records `r` from `x`; rules 1 and 2 read `r`; rule 2 was not in the round.
    let reads = [these(&["x"]), these(&["r"]), these(&["r"])];
    let base = Instant::now();
    let mut s = Schedule::new(&reads, SEC, base);
    let at = base + SEC;
    let due = [true, true, false];
    s.evaluated(&due, at);
    let taken = FastMap::from_iter([(
        LabelStr::from("r"),
        Landed {
            first: at,
            last: at,
        },
    )]);
    assert!(s.landed_except(&taken, |i, name| due[i] && i > 0 && name == "r"));
    assert_eq!(s.due(at), [false, false, true]);
}

#[test]
fn a_group_interval_spaces_its_rules_apart_from_the_evaluation_interval() {
    let reads = [these(&[]), these(&[])];
    let base = Instant::now();
    let mut s = Schedule::new(&reads, SEC, base);
    s.set_interval(1, SEC * 5);
    let mut evals = [0, 0];
    loop {
        let next = s.next();
        if next > base + SEC * 20 {
            break;
        }
        let due = s.due(next);
        for (n, d) in evals.iter_mut().zip(&due) {
            *n += usize::from(*d);
        }
        s.evaluated(&due, next);
    }
    assert_eq!(evals, [20, 4]);
}
