use super::*;
use crate::notify::tests::{sample, verdict_sample};

#[test]
fn severity_mapping() {
    assert_eq!(severity(Some("page")), "critical");
    assert_eq!(severity(Some("critical")), "critical");
    assert_eq!(severity(Some("Critical")), "critical");
    assert_eq!(severity(Some("warning")), "warning");
    assert_eq!(severity(Some("ticket")), "info");
    assert_eq!(severity(None), "info");
}

#[test]
fn dedup_key_is_stable_per_group() {
    let a = dedup_key("oncall", "{}:{alertname=\"X\"}");
    assert_eq!(a, dedup_key("oncall", "{}:{alertname=\"X\"}"));
    assert_eq!(a.len(), 64);
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(a, dedup_key("oncall", "{}:{alertname=\"Y\"}"));
    assert_ne!(a, dedup_key("devops", "{}:{alertname=\"X\"}"));
    // SHA-256 of the single separator byte.
    assert_eq!(
        dedup_key("", ""),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
}

#[test]
fn a_group_mixing_severities_pages_with_the_highest_firing_one() {
    let mut n = sample();
    n.common_labels.remove("severity");
    let template = n.alerts[0].clone();
    let with = |severity: &str, status: GroupStatus| {
        let mut a = template.clone();
        a.status = status;
        a.labels.insert("severity".into(), severity.into());
        a
    };
    n.alerts = vec![
        with("info", GroupStatus::Firing),
        with("warning", GroupStatus::Firing),
        with("critical", GroupStatus::Resolved),
    ];
    assert_eq!(event("rk", &n)["payload"]["severity"], "warning");
    n.alerts.push(with("page", GroupStatus::Firing));
    assert_eq!(event("rk", &n)["payload"]["severity"], "critical");
    // Without a severity on any alert, the group's label decides.
    for a in &mut n.alerts {
        a.labels.remove("severity");
    }
    n.common_labels.insert("severity".into(), "warning".into());
    assert_eq!(event("rk", &n)["payload"]["severity"], "warning");
}

#[test]
fn trigger_event_fields() {
    let mut n = sample();
    n.common_labels.insert("severity".into(), "page".into());
    let ev = event("rk-123", &n);
    assert_eq!(ev["routing_key"], "rk-123");
    assert_eq!(ev["event_action"], "trigger");
    assert_eq!(ev["dedup_key"], dedup_key(&n.receiver, &n.group_key));
    let p = &ev["payload"];
    assert_eq!(
        p["summary"],
        "[FIRING:1] HighErrorRate api: error rate 5% on <api>"
    );
    assert_eq!(p["source"], "api");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["timestamp"], "2024-05-01T12:00:00Z");
    assert_eq!(p["custom_details"]["firing"], 1);
    assert_eq!(p["custom_details"]["resolved"], 1);
    assert_eq!(ev["links"][0]["href"], "http://monitor.example.com:7980");
}

#[test]
fn resolve_event_reuses_dedup_key() {
    let mut n = sample();
    let trigger = event("rk", &n);
    n.status = GroupStatus::Resolved;
    let resolve = event("rk", &n);
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert!(resolve.get("payload").is_none());
}

#[test]
fn a_pass_of_the_next_deployment_resolves_the_incident_a_fail_opened() {
    let fail = verdict_sample("fail");
    let mut pass = verdict_sample("pass");
    // Another deployment of the same job, with a group key of its own.
    pass.group_key = format!("{}@another-deployment", pass.group_key);
    pass.alerts[0].generator_url = pass.alerts[0].generator_url.replace("18f0a", "19a2b");
    let trigger = event("rk", &fail);
    let resolve = event("rk", &pass);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["summary"],
        "Deployment api v2.0.1: FAIL: check error-rate failed 3 evaluations in a row"
    );
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(trigger["dedup_key"], dedup_key("hooks", "deploy:api"));
    assert_eq!(
        trigger["dedup_key"],
        crate::notify::opsgenie::alias(&fail),
        "PagerDuty and Opsgenie key a job's incident alike"
    );

    let inconclusive = event("rk", &verdict_sample("inconclusive"));
    assert_eq!(inconclusive["event_action"], "trigger");
    assert_eq!(inconclusive["payload"]["severity"], "warning");
    assert_eq!(inconclusive["dedup_key"], trigger["dedup_key"]);
}

#[test]
fn summary_truncated_on_char_boundary() {
    let mut n = sample();
    n.alerts.truncate(1);
    n.alerts[0]
        .annotations
        .insert("summary".into(), "é".repeat(2000));
    let s = summary(&n);
    assert_eq!(s.chars().count(), MAX_SUMMARY);
    assert!(s.ends_with('…'));
    assert!(s.starts_with("[FIRING:1] HighErrorRate api: é"));
}
