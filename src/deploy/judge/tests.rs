use super::*;

fn spec(max: Option<f64>, min: Option<f64>, rel: Option<Relative>) -> CheckSpec {
    CheckSpec {
        name: "c".into(),
        expr: "x".into(),
        guard: None,
        max,
        min,
        max_increase: rel,
    }
}

fn gate(checks: Vec<CheckSpec>, consecutive: u32) -> GateSnapshot {
    GateSnapshot {
        watch_ms: 600_000,
        baseline_ms: 600_000,
        warmup_ms: 60_000,
        interval_ms: 30_000,
        consecutive_failures: consecutive,
        notify: vec![],
        checks,
    }
}

fn state(s: &CheckSpec, b: Option<f64>, v: f64) -> CheckState {
    judge_check(s, b, &Observation::Value(v)).0
}

#[test]
fn absolute_bounds() {
    let s = spec(Some(0.005), Some(0.0), None);
    assert_eq!(state(&s, None, 0.005), CheckState::Pass, "max is inclusive");
    assert_eq!(state(&s, None, 0.0051), CheckState::Fail);
    assert_eq!(state(&s, None, -0.1), CheckState::Fail);
    let (_, _, reason) = judge_check(&s, None, &Observation::Value(0.01));
    assert_eq!(reason, "0.01 is above max 0.005");
}

#[test]
fn relative_bounds_percent_and_delta() {
    let pct = spec(None, None, Some(Relative::Percent(0.10)));
    assert_eq!(state(&pct, Some(0.2), 0.22), CheckState::Pass);
    assert_eq!(state(&pct, Some(0.2), 0.2201), CheckState::Fail);
    let delta = spec(None, None, Some(Relative::Delta(0.002)));
    assert_eq!(state(&delta, Some(0.001), 0.003), CheckState::Pass);
    assert_eq!(state(&delta, Some(0.001), 0.0031), CheckState::Fail);
    let (_, _, reason) = judge_check(&pct, Some(0.2), &Observation::Value(0.3));
    assert_eq!(reason, "0.3 is above baseline 0.2 +10% = 0.22");
}

#[test]
fn both_bounds_take_the_tighter() {
    let s = spec(Some(0.005), None, Some(Relative::Percent(0.10)));
    // Relative is tighter here.
    assert_eq!(state(&s, Some(0.001), 0.0012), CheckState::Fail);
    // Absolute is tighter here.
    assert_eq!(state(&s, Some(0.01), 0.006), CheckState::Fail);
    assert_eq!(state(&s, Some(0.01), 0.004), CheckState::Pass);
    let b = bounds(&s, Some(0.001));
    assert!((b.upper.unwrap() - 0.0011).abs() < 1e-12);
    assert_eq!(
        describe_bounds(&s, Some(0.001)),
        "<= 0.0011 (baseline 0.001 +10%)"
    );
    assert_eq!(describe_bounds(&s, Some(0.01)), "<= 0.005");
}

#[test]
fn missing_baseline_is_nodata_for_relative_bounds_only() {
    let rel = spec(None, None, Some(Relative::Percent(0.10)));
    let (st, v, reason) = judge_check(&rel, None, &Observation::Value(0.001));
    assert_eq!(st, CheckState::NoData);
    assert_eq!(v, Some(0.001), "the value is still reported");
    assert!(reason.starts_with("no baseline"), "{reason}");
    // An absolute bound that is crossed still fails without a baseline...
    let both = spec(Some(0.005), None, Some(Relative::Percent(0.10)));
    assert_eq!(state(&both, None, 0.01), CheckState::Fail);
    // ...but staying under it does not pass silently.
    assert_eq!(state(&both, None, 0.001), CheckState::NoData);
    // Absolute-only checks need no baseline.
    assert_eq!(
        state(&spec(Some(1.0), None, None), None, 0.5),
        CheckState::Pass
    );
    assert_eq!(
        describe_bounds(&both, None),
        "<= 0.005, baseline +10% (no baseline)"
    );
}

#[test]
fn nan_and_nodata_observations() {
    let s = spec(Some(1.0), None, None);
    assert_eq!(state(&s, None, f64::NAN), CheckState::NoData);
    let (st, _, reason) = judge_check(&s, None, &Observation::NoData("guard is empty".into()));
    assert_eq!(
        (st, reason.as_str()),
        (CheckState::NoData, "guard is empty")
    );
}

#[test]
fn consecutive_failures_fail_and_a_pass_resets() {
    let g = gate(vec![spec(Some(1.0), None, None)], 3);
    let mut checks = vec![CheckRecord::new("c", None, 0)];
    let mut n = 0;
    let bad = [Observation::Value(2.0)];
    let good = [Observation::Value(0.5)];
    let none = [Observation::NoData("empty".into())];
    assert!(evaluate(&g, &mut checks, &mut n, &bad).is_none());
    assert!(evaluate(&g, &mut checks, &mut n, &bad).is_none());
    assert!(evaluate(&g, &mut checks, &mut n, &good).is_none(), "reset");
    assert!(evaluate(&g, &mut checks, &mut n, &bad).is_none());
    assert!(evaluate(&g, &mut checks, &mut n, &bad).is_none());
    // NoData neither breaks nor extends the run.
    assert!(evaluate(&g, &mut checks, &mut n, &none).is_none());
    let reason = evaluate(&g, &mut checks, &mut n, &bad).expect("third failure in a row");
    assert_eq!(
        reason,
        "check c failed 3 evaluations in a row: 2 is above max 1"
    );
    let c = &checks[0];
    assert_eq!((n, c.passes, c.failures, c.nodata), (7, 1, 5, 1));
}

#[test]
fn any_check_can_fail_the_gate() {
    let mut a = spec(Some(1.0), None, None);
    a.name = "a".into();
    let mut b = spec(Some(1.0), None, None);
    b.name = "b".into();
    let g = gate(vec![a, b], 2);
    let mut checks = vec![
        CheckRecord::new("a", None, 0),
        CheckRecord::new("b", None, 0),
    ];
    let mut n = 0;
    let obs = [Observation::Value(0.0), Observation::Value(5.0)];
    assert!(evaluate(&g, &mut checks, &mut n, &obs).is_none());
    let r = evaluate(&g, &mut checks, &mut n, &obs).unwrap();
    assert!(r.starts_with("check b failed 2"), "{r}");
}

#[test]
fn inconclusive_when_more_than_half_nodata() {
    let mut c = CheckRecord::new("c", None, 0);
    c.passes = 5;
    c.nodata = 5;
    assert_eq!(
        conclude(&[c.clone()], 10).0,
        Verdict::Pass,
        "half is not more than half"
    );
    c.passes = 4;
    c.nodata = 6;
    let (v, reason) = conclude(&[c.clone()], 10);
    assert_eq!(v, Verdict::Inconclusive);
    assert_eq!(
        reason,
        "no data in more than half of the evaluations for c (6 of 10)"
    );
    // One blind check is enough, even when another check had data throughout.
    let mut ok = CheckRecord::new("ok", None, 0);
    ok.passes = 10;
    assert_eq!(conclude(&[ok, c], 10).0, Verdict::Inconclusive);
    assert_eq!(conclude(&[], 0).0, Verdict::Inconclusive);
}

#[test]
fn warmup_and_schedule() {
    let g = gate(vec![], 3);
    // warmup 60s, interval 30s: first evaluation at 60s, then every 30s up to 600s.
    assert_eq!(g.first_eval_ms(0), 60_000);
    assert_eq!(g.planned_evaluations(0), 19);
    let g2 = GateSnapshot {
        warmup_ms: 45_000,
        ..g.clone()
    };
    assert_eq!(
        g2.first_eval_ms(1_000),
        61_000,
        "next multiple after the warmup"
    );
    let g3 = GateSnapshot { warmup_ms: 0, ..g };
    assert_eq!(
        g3.first_eval_ms(0),
        30_000,
        "never at the deployment instant"
    );
    let g4 = GateSnapshot {
        warmup_ms: 700_000,
        ..g3
    };
    assert_eq!(g4.planned_evaluations(0), 0);
}

#[test]
fn numbers_for_people() {
    assert_eq!(fmt_num(0.005 * 1.1), "0.0055");
    assert_eq!(fmt_num(1234.5), "1234.5");
    assert_eq!(fmt_num(0.0), "0");
    assert_eq!(fmt_num(2.0), "2");
    assert_eq!(fmt_num(1.5e-7), "1.5e-7");
    assert_eq!(fmt_num(f64::INFINITY), "+Inf");
}

#[test]
fn each_evaluation_is_remembered_for_the_chart_and_the_oldest_dropped() {
    let g = gate(vec![spec(Some(1.0), None, None)], 3);
    let mut checks = vec![CheckRecord::new("c", None, 0)];
    let mut n = 0;
    evaluate(&g, &mut checks, &mut n, &[Observation::Value(0.5)]);
    checks[0].remember(1_000);
    evaluate(
        &g,
        &mut checks,
        &mut n,
        &[Observation::NoData("empty".into())],
    );
    checks[0].remember(2_000);
    evaluate(&g, &mut checks, &mut n, &[Observation::Value(2.0)]);
    checks[0].remember(3_000);
    let states: Vec<(i64, Option<f64>, CheckState)> = checks[0]
        .history
        .iter()
        .map(|p| (p.t, p.value, p.state))
        .collect();
    assert_eq!(
        states,
        [
            (1_000, Some(0.5), CheckState::Pass),
            (2_000, None, CheckState::NoData),
            (3_000, Some(2.0), CheckState::Fail),
        ]
    );
    for t in 0..MAX_HISTORY as i64 {
        checks[0].remember(10_000 + t);
    }
    assert_eq!(checks[0].history.len(), MAX_HISTORY);
    assert_eq!(checks[0].history[0].t, 10_000);
}
