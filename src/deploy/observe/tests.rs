use super::*;
use crate::series::Labels;
use crate::series::head::Head;

fn compiled(expr: &str, guard: Option<&str>) -> Compiled {
    Compiled::parse(&CheckSpec {
        name: "c".into(),
        expr: expr.into(),
        guard: guard.map(str::to_string),
        max: None,
        min: None,
        max_increase: None,
    })
}

fn head() -> Head {
    let h = Head::new();
    let a = Labels::new([("__name__", "m"), ("i", "a")]);
    let b = Labels::new([("__name__", "m"), ("i", "b")]);
    for k in 0..=40 {
        let t = k * 15_000;
        h.append(&a, t, if t < 300_000 { 1.0 } else { 3.0 });
        h.append(&b, t, 10.0);
    }
    h
}

#[test]
fn single_value_or_a_reason() {
    let h = head();
    let e = Engine::default();
    assert_eq!(
        observe(&e, &h, &compiled("m{i=\"a\"}", None), 60_000),
        Observation::Value(1.0)
    );
    assert_eq!(
        observe(&e, &h, &compiled("sum(m)", None), 60_000),
        Observation::Value(11.0)
    );
    let Observation::NoData(r) = observe(&e, &h, &compiled("m", None), 60_000) else {
        panic!()
    };
    assert!(r.contains("returned 2 series"), "{r}");
    let Observation::NoData(r) = observe(&e, &h, &compiled("nothing", None), 60_000) else {
        panic!()
    };
    assert_eq!(r, "the expression returned no series");
    let Observation::NoData(r) = observe(&e, &h, &compiled("sum(m)", Some("m > 100")), 60_000)
    else {
        panic!()
    };
    assert!(r.starts_with("the guard is empty"), "{r}");
    assert_eq!(
        observe(&e, &h, &compiled("sum(m)", Some("m > 5")), 60_000),
        Observation::Value(11.0)
    );
}

#[test]
fn baseline_averages_the_window_before_the_start() {
    let h = head();
    let e = Engine::default();
    let c = compiled("m{i=\"a\"}", None);
    // (0, 300s) holds 1.0; the window ends at 290 s, before the step to 3.0.
    let (b, n) = baseline(&e, &h, &c, 290_000, 240_000, 30_000);
    assert_eq!((b, n), (Some(1.0), 8));
    // Half the window on each side of the step.
    let (b, n) = baseline(&e, &h, &c, 435_000, 300_000, 30_000);
    assert_eq!(n, 10);
    assert!((b.unwrap() - 2.0).abs() < 1e-9, "{b:?}");
    // No data at all: no baseline.
    let (b, n) = baseline(&e, &h, &compiled("nothing", None), 290_000, 240_000, 30_000);
    assert_eq!((b, n), (None, 0));
    // A huge window is capped in steps, not in time.
    let (_, n) = baseline(&e, &h, &c, 600_000, 86_400_000, 1_000);
    assert!(n as i64 <= MAX_BASELINE_STEPS);
}
