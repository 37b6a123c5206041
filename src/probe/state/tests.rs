use super::*;
use crate::probe::Phases;
use std::time::{Duration, SystemTime};

fn cfg(extra: &str) -> ProbeConfig {
    toml::from_str(&format!(
        "name = \"api\"\nurl = \"http://127.0.0.1:1/health\"\njob = \"web\"\n{extra}"
    ))
    .unwrap()
}

fn outcome(ok: bool, secs: u64) -> ProbeOutcome {
    ProbeOutcome {
        success: ok,
        duration: Duration::from_millis(5),
        status: Some(if ok { 200 } else { 503 }),
        cert_not_after: None,
        phases: Phases::default(),
        reason: if ok {
            String::new()
        } else {
            "status 503, expected 200".into()
        },
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
    }
}

#[test]
fn fires_exactly_at_the_nth_failure_and_resolves_after_m_successes() {
    let s = ProbeStates::new();
    let c = cfg("failure_threshold = 3\nsuccess_threshold = 2");
    assert_eq!(s.observe(&c, &outcome(true, 0)), None);
    assert_eq!(s.observe(&c, &outcome(false, 10)), None);
    assert_eq!(s.alerts()[0].state, AlertState::Pending);
    assert_eq!(s.observe(&c, &outcome(false, 20)), None);
    let fired = s
        .observe(&c, &outcome(false, 30))
        .expect("fires at the 3rd");
    let AlertChange::Fired(a) = fired else {
        panic!("expected Fired")
    };
    assert_eq!(a.state, AlertState::Firing);
    assert_eq!(
        a.labels,
        Labels::new([
            ("alertname", "ProbeFailed"),
            ("probe", "api"),
            ("job", "web"),
            ("severity", "page")
        ])
    );
    assert_eq!(a.annotations["reason"], "status 503, expected 200");
    assert_eq!(
        a.annotations["summary"],
        "probe api failing: status 503, expected 200"
    );
    assert_eq!(
        a.active_at.timestamp(),
        1_700_000_010,
        "activeAt = first failure"
    );
    assert_eq!(a.fired_at.unwrap().timestamp(), 1_700_000_030);
    // Further failures do not fire again.
    assert_eq!(s.observe(&c, &outcome(false, 40)), None);
    // One success is not enough with success_threshold = 2; a failure resets the count.
    assert_eq!(s.observe(&c, &outcome(true, 50)), None);
    assert_eq!(s.observe(&c, &outcome(false, 60)), None);
    assert_eq!(s.observe(&c, &outcome(true, 70)), None);
    assert_eq!(s.alerts().len(), 1);
    let Some(AlertChange::Resolved(r)) = s.observe(&c, &outcome(true, 80)) else {
        panic!("expected Resolved")
    };
    assert_eq!(r.state, AlertState::Resolved);
    assert_eq!(r.resolved_at.unwrap().timestamp(), 1_700_000_080);
    assert!(s.alerts().is_empty());
}

#[test]
fn pending_that_clears_is_dropped_silently() {
    let s = ProbeStates::new();
    let c = cfg("");
    assert_eq!(s.observe(&c, &outcome(false, 0)), None);
    assert_eq!(s.observe(&c, &outcome(false, 1)), None);
    assert_eq!(s.alerts().len(), 1);
    assert_eq!(s.observe(&c, &outcome(true, 2)), None);
    assert!(s.alerts().is_empty());
}

#[test]
fn alert_false_never_fires() {
    let s = ProbeStates::new();
    let c = cfg("alert = false\nfailure_threshold = 1");
    for i in 0..10 {
        assert_eq!(s.observe(&c, &outcome(false, i)), None);
    }
    assert!(s.alerts().is_empty());
}

#[test]
fn switching_alert_off_resolves_a_firing_alert() {
    let s = ProbeStates::new();
    let on = cfg("failure_threshold = 1");
    assert!(matches!(
        s.observe(&on, &outcome(false, 0)),
        Some(AlertChange::Fired(_))
    ));
    let off = cfg("failure_threshold = 1\nalert = false");
    assert!(matches!(
        s.observe(&off, &outcome(false, 1)),
        Some(AlertChange::Resolved(_))
    ));
    assert!(s.alerts().is_empty());
}

#[test]
fn snapshot_restores_firing_without_a_new_change() {
    let s = ProbeStates::new();
    let c = cfg("failure_threshold = 1");
    let fired = s.observe(&c, &outcome(false, 0)).unwrap();
    let snap = s.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    let back: ProbeStatesSnapshot = serde_json::from_str(&json).unwrap();
    let s2 = ProbeStates::new();
    s2.restore(back);
    assert_eq!(s2.alerts(), vec![fired.alert().clone()]);
    // Still failing after the restart: no second page.
    assert_eq!(s2.observe(&c, &outcome(false, 10)), None);
    assert!(matches!(
        s2.observe(&c, &outcome(true, 20)),
        Some(AlertChange::Resolved(_))
    ));
}

#[test]
fn retain_resolves_removed_probes() {
    let s = ProbeStates::new();
    let c = cfg("failure_threshold = 1");
    s.observe(&c, &outcome(false, 0));
    assert!(s.retain(&["api"]).is_empty());
    let gone = s.retain::<&str>(&[]);
    assert_eq!(gone.len(), 1);
    assert!(matches!(gone[0], AlertChange::Resolved(_)));
    assert!(s.alerts().is_empty());
    assert!(s.latest().is_empty());
}
