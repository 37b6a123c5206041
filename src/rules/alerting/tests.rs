use super::*;
use crate::config::{ConfigDuration, PromqlExpr};

fn rule(for_s: u64, keep_s: u64) -> AlertingRule {
    let cfg = RuleConfig {
        alert: "HighErrorRate".into(),
        record: String::new(),
        expr: PromqlExpr {
            source: "x > 1".into(),
            expr: promql_parser::parser::parse("x > 1").unwrap(),
        },
        for_: ConfigDuration::secs(for_s),
        keep_firing_for: ConfigDuration::secs(keep_s),
        labels: BTreeMap::from([("severity".into(), "page".into())]),
        annotations: BTreeMap::from([(
            "summary".into(),
            "{{ $labels.job }} at {{ $value }}".into(),
        )]),
    };
    AlertingRule::from_config(&cfg).unwrap()
}

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

fn series(v: f64) -> Vec<(Labels, f64)> {
    vec![(Labels::new([("__name__", "x"), ("job", "api")]), v)]
}

fn states(r: &AlertingRule) -> Vec<AlertState> {
    r.alerts().map(|a| a.state).collect()
}

#[test]
fn pending_then_firing_after_for() {
    let mut r = rule(60, 0);
    let ext = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let t = r.eval(&series(2.0), at(0), &ext, "").unwrap();
    assert_eq!(t[0].to, "pending");
    let a = r.alerts().next().unwrap().clone();
    assert_eq!(
        a.labels.to_string(),
        r#"{alertname="HighErrorRate", env="prod", job="api", severity="page"}"#
    );
    assert_eq!(a.annotations["summary"], "api at 2");
    assert!(r.eval(&series(3.0), at(30), &ext, "").unwrap().is_empty());
    assert_eq!(states(&r), vec![AlertState::Pending]);
    let t = r.eval(&series(3.0), at(60), &ext, "").unwrap();
    assert_eq!((t[0].from, t[0].to), ("pending", "firing"));
    assert_eq!(
        r.alerts().next().unwrap().annotations["summary"],
        "api at 3"
    );
}

#[test]
fn pending_that_clears_is_dropped_without_resolution() {
    let mut r = rule(60, 0);
    r.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
    let t = r.eval(&[], at(30), &BTreeMap::new(), "").unwrap();
    assert_eq!((t[0].from, t[0].to), ("pending", "inactive"));
    assert_eq!(r.alerts().count(), 0);
}

#[test]
fn for_zero_fires_at_once_and_resolution_is_kept_15_minutes() {
    let mut r = rule(0, 0);
    let t = r.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
    assert_eq!(
        t.iter().map(|t| t.to).collect::<Vec<_>>(),
        vec!["pending", "firing"]
    );
    let t = r.eval(&[], at(15), &BTreeMap::new(), "").unwrap();
    assert_eq!((t[0].from, t[0].to), ("firing", "resolved"));
    assert_eq!(states(&r), vec![AlertState::Resolved]);
    r.eval(&[], at(15 + 900), &BTreeMap::new(), "").unwrap();
    assert_eq!(
        states(&r),
        vec![AlertState::Resolved],
        "kept for 15 minutes"
    );
    r.eval(&[], at(15 + 901), &BTreeMap::new(), "").unwrap();
    assert!(states(&r).is_empty());
}

#[test]
fn keep_firing_for_holds_a_cleared_alert() {
    let mut r = rule(0, 120);
    r.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
    assert!(
        r.eval(&[], at(60), &BTreeMap::new(), "")
            .unwrap()
            .is_empty()
    );
    assert_eq!(states(&r), vec![AlertState::Firing]);
    // Back before keep_firing_for ran out: the countdown restarts.
    r.eval(&series(2.0), at(90), &BTreeMap::new(), "").unwrap();
    assert!(
        r.eval(&[], at(200), &BTreeMap::new(), "")
            .unwrap()
            .is_empty()
    );
    let t = r.eval(&[], at(320), &BTreeMap::new(), "").unwrap();
    assert_eq!(t[0].to, "resolved");
}

#[test]
fn a_reloaded_rule_keeps_its_alerts_and_applies_its_new_annotations_and_keep_firing_for() {
    let mut old = rule(0, 0);
    old.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
    let active_at = old.alerts().next().unwrap().active_at;
    let mut new = rule(0, 600);
    new.annotations = vec![(
        "summary".into(),
        Template::parse("now {{ $value }} on {{ $labels.job }}").unwrap(),
    )];
    assert_eq!(new.identity(), old.identity(), "the same alert");
    new.take_state(old);
    assert_eq!(states(&new), vec![AlertState::Firing]);
    new.eval(&series(3.0), at(30), &BTreeMap::new(), "")
        .unwrap();
    let a = new.alerts().next().unwrap();
    assert_eq!(a.annotations["summary"], "now 3 on api");
    assert_eq!(a.active_at, active_at, "the alert carried over");
    // The new keep_firing_for holds the cleared alert.
    assert!(
        new.eval(&[], at(60), &BTreeMap::new(), "")
            .unwrap()
            .is_empty()
    );
    assert_eq!(states(&new), vec![AlertState::Firing]);
}

#[test]
fn a_resolved_alert_that_returns_starts_over_as_pending() {
    let mut r = rule(60, 0);
    r.eval(&series(2.0), at(0), &BTreeMap::new(), "").unwrap();
    r.eval(&series(2.0), at(60), &BTreeMap::new(), "").unwrap();
    r.eval(&[], at(90), &BTreeMap::new(), "").unwrap();
    let t = r.eval(&series(2.0), at(120), &BTreeMap::new(), "").unwrap();
    assert_eq!(t[0].to, "pending");
    assert_eq!(r.alerts().next().unwrap().active_at, at(120));
}

#[test]
fn duplicate_labelsets_after_templating_are_an_error() {
    let mut r = rule(0, 0);
    let two = vec![
        (Labels::new([("__name__", "x"), ("job", "api")]), 1.0),
        (Labels::new([("__name__", "y"), ("job", "api")]), 2.0),
    ];
    let e = r.eval(&two, at(0), &BTreeMap::new(), "").unwrap_err();
    assert!(e.contains("same labelset"));
    assert_eq!(r.alerts().count(), 0, "nothing changed");
}
