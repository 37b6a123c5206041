//! Unit tests of the shared types, and the sample notification the channel tests render.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::*;
use crate::series::Labels;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An alert of `HighErrorRate` on job api, instance `instance`.
pub(crate) fn alert(instance: &str, status: GroupStatus) -> NotifiedAlert {
    let firing = status == GroupStatus::Firing;
    NotifiedAlert {
        status,
        labels: map(&[
            ("alertname", "HighErrorRate"),
            ("job", "api"),
            ("instance", instance),
        ]),
        annotations: if firing {
            map(&[
                ("summary", "error rate 5% on <api>"),
                ("reason", "status 503, expected 200"),
            ])
        } else {
            map(&[("summary", "error rate back to normal")])
        },
        starts_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        ends_at: (!firing).then(|| Utc.with_ymd_and_hms(2024, 5, 1, 12, 10, 0).unwrap()),
        generator_url: "http://monitor.example.com:7980/rules/HighErrorRate".into(),
        fingerprint: if firing {
            "00000000000000aa"
        } else {
            "00000000000000bb"
        }
        .into(),
    }
}

/// A group of one firing and one resolved alert, for receiver "hooks".
pub(crate) fn sample() -> Notification {
    let group_labels = map(&[("alertname", "HighErrorRate")]);
    Notification::new(
        "hooks",
        group_key("{}/{severity=\"page\"}", &group_labels),
        group_labels,
        vec![
            alert("a:80", GroupStatus::Firing),
            alert("b:80", GroupStatus::Resolved),
        ],
        "http://monitor.example.com:7980",
    )
}

/// The `DeploymentVerdict` notification of api v2.0.1 with two checks, shaped as
/// `deploy::verdict::notification` builds it: `fail` and `inconclusive` firing, `pass` resolved.
pub(crate) fn verdict_sample(verdict: &str) -> Notification {
    let status = if verdict == "pass" {
        GroupStatus::Resolved
    } else {
        GroupStatus::Firing
    };
    let error_rate = if verdict == "fail" {
        "fail: value 0.02, bound <= 0.005, baseline 0.001; above the bound (0 pass, 3 fail, 0 no data)"
    } else {
        "pass: value 0.001, bound <= 0.005, baseline 0.001; within bounds (3 pass, 0 fail, 0 no data)"
    };
    let alert = NotifiedAlert {
        status,
        labels: map(&[
            ("alertname", VERDICT_ALERTNAME),
            ("job", "api"),
            ("version", "v2.0.1"),
            ("verdict", verdict),
            (
                "severity",
                match verdict {
                    "fail" => "page",
                    "inconclusive" => "warning",
                    _ => "info",
                },
            ),
        ]),
        annotations: map(&[
            ("error-rate", error_rate),
            (
                "p99-latency",
                "pass: value 0.21, bound <= 0.5, baseline 0.2; within bounds (3 pass, 0 fail, 0 no data)",
            ),
            (
                "summary",
                &format!("api v2.0.1: {verdict} after 3 evaluations — checks"),
            ),
            ("reason", "check error-rate failed 3 evaluations in a row"),
            ("commit", "abc123"),
            ("author", "ada"),
        ]),
        starts_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        ends_at: (status == GroupStatus::Resolved)
            .then(|| Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 0).unwrap()),
        generator_url: "http://monitor.example.com:7980/api/v1/deployments/18f0a".into(),
        fingerprint: "00000000000000cc".into(),
    };
    let group_labels = map(&[("alertname", VERDICT_ALERTNAME), ("job", "api")]);
    Notification::new(
        "hooks",
        format!("{{}}/deploy:{}", format_labels(&group_labels)),
        group_labels,
        vec![alert],
        "http://monitor.example.com:7980",
    )
}

#[test]
fn verdicts_read_as_verdicts() {
    assert_eq!(VERDICT_ALERTNAME, crate::deploy::verdict::ALERTNAME);
    assert_eq!(STARTED_ALERTNAME, crate::deploy::verdict::STARTED);
    let n = verdict_sample("fail");
    let v = n.verdict().expect("a verdict");
    assert_eq!((v.job, v.version, v.verdict), ("api", "v2.0.1", "fail"));
    assert_eq!(v.title(), "Deployment api v2.0.1: FAIL");
    assert_eq!(n.headline(), "Deployment api v2.0.1: FAIL");
    assert_eq!(n.tone(), Tone::Bad);
    assert_eq!(
        v.reason,
        Some("check error-rate failed 3 evaluations in a row")
    );
    assert_eq!(v.checks.len(), 2);
    assert_eq!(v.checks[0].name, "error-rate");
    assert_eq!(v.checks[0].state, "fail");
    assert!(v.checks[0].detail.starts_with("value 0.02, bound <= 0.005"));
    assert_eq!(v.details, vec![("commit", "abc123"), ("author", "ada")]);
    assert_eq!(verdict_sample("pass").tone(), Tone::Good);
    assert_eq!(verdict_sample("inconclusive").tone(), Tone::Warning);
    // A check named like a reserved annotation keeps its name.
    let mut n = verdict_sample("pass");
    n.alerts[0].annotations.insert(
        "check:reason".into(),
        "pass: value 1, bound <= 2, baseline none; ok (1 pass, 0 fail, 0 no data)".into(),
    );
    assert!(
        n.verdict()
            .unwrap()
            .checks
            .iter()
            .any(|c| c.name == "reason")
    );
    // Any other alert is not a verdict.
    assert!(sample().verdict().is_none());
    assert_eq!(sample().headline(), sample().title());
    assert_eq!(sample().tone(), Tone::Bad);
}

#[test]
fn plain_text_of_alerts_and_verdicts() {
    let a = alert("a:80", GroupStatus::Firing);
    let t = plain_alert(&a);
    assert!(t.starts_with("FIRING · error rate 5% on <api>\nReason: status 503, expected 200\nLabels: alertname=HighErrorRate, instance=a:80, job=api\nSince: 2024-05-01 12:00:00 UTC"), "{t}");
    let n = verdict_sample("fail");
    let t = plain_verdict(&n.verdict().unwrap());
    assert!(t.starts_with("Reason: check error-rate failed"), "{t}");
    assert!(t.contains("\n- error-rate: FAIL · value 0.02"), "{t}");
    assert!(
        t.contains("\nCommit: abc123\nAuthor: ada\nDeployment: http://"),
        "{t}"
    );
}

#[test]
fn new_computes_status_and_common_parts() {
    let n = sample();
    assert_eq!(n.status, GroupStatus::Firing);
    assert_eq!(
        n.common_labels,
        map(&[("alertname", "HighErrorRate"), ("job", "api")])
    );
    assert!(n.common_annotations.is_empty());
    assert_eq!(n.firing_count(), 1);
    assert_eq!(n.resolved_count(), 1);
    assert_eq!(
        n.group_key,
        "{}/{severity=\"page\"}:{alertname=\"HighErrorRate\"}"
    );

    let resolved = Notification::new(
        "r",
        "k".into(),
        BTreeMap::new(),
        vec![alert("b", GroupStatus::Resolved)],
        "",
    );
    assert_eq!(resolved.status, GroupStatus::Resolved);
    assert_eq!(
        resolved.common_annotations,
        map(&[("summary", "error rate back to normal")])
    );
}

#[test]
fn titles() {
    let mut n = sample();
    assert_eq!(n.title(), "[FIRING:1] HighErrorRate api");
    n.alerts[1].status = GroupStatus::Firing;
    assert_eq!(n.title(), "[FIRING:2] HighErrorRate api");
    n.test = true;
    assert!(n.title().starts_with("[TEST] [FIRING:2]"));
    n.group_labels
        .insert("job".into(), "api\r\nBcc: x@example.com".into());
    assert_eq!(
        n.title(),
        "[TEST] [FIRING:2] HighErrorRate api  Bcc: x@example.com"
    );
}

#[test]
fn group_key_quotes_values() {
    let k = group_key("{}", &map(&[("a", "x\"y\\z"), ("b", "1\n2")]));
    assert_eq!(k, r#"{}:{a="x\"y\\z",b="1\n2"}"#);
}

#[test]
fn summary_line_falls_back_to_name_and_job() {
    let mut a = alert("a", GroupStatus::Firing);
    assert_eq!(summary_line(&a), "error rate 5% on <api>");
    a.annotations.clear();
    assert_eq!(summary_line(&a), "HighErrorRate api");
    a.labels.clear();
    assert_eq!(summary_line(&a), "alert");
}

#[test]
fn truncation_counts_chars() {
    assert_eq!(truncate_chars("hello", 5), "hello");
    assert_eq!(truncate_chars("hello", 4), "hel…");
    assert_eq!(truncate_chars("ééééé", 3), "éé…");
    assert_eq!(truncate_chars("abc", 0), "");
}

#[test]
fn from_alert_freezes_state() {
    let mut al = Alert {
        labels: Labels::new([("alertname", "ProbeFailed"), ("job", "api")]),
        annotations: map(&[("reason", "connection refused")]),
        state: AlertState::Firing,
        active_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        fired_at: None,
        resolved_at: Some(Utc.with_ymd_and_hms(2024, 1, 1, 1, 0, 0).unwrap()),
        value: 1.0,
        generator_url: "http://x/probes".into(),
    };
    let f = NotifiedAlert::from_alert(&al);
    assert_eq!(f.status, GroupStatus::Firing);
    assert_eq!(f.ends_at, None, "a firing alert has no end yet");
    assert_eq!(
        f.labels,
        map(&[("alertname", "ProbeFailed"), ("job", "api")])
    );
    assert_eq!(f.fingerprint, al.fingerprint());
    al.state = AlertState::Resolved;
    let r = NotifiedAlert::from_alert(&al);
    assert_eq!(r.status, GroupStatus::Resolved);
    assert_eq!(r.ends_at, al.resolved_at);
}

#[test]
fn notification_round_trips_through_json() {
    // The dispatcher stores notifications in the outbox; a retry after a restart must send the
    // same thing.
    let n = sample();
    let json = serde_json::to_string(&n).unwrap();
    assert!(json.contains("\"status\":\"firing\""));
    let back: Notification = serde_json::from_str(&json).unwrap();
    assert_eq!(back, n);
}

#[test]
fn test_notification_is_marked_and_unique() {
    let a = Notification::test_notification("oncall", "http://x");
    assert!(a.test);
    assert_eq!(a.status, GroupStatus::Firing);
    assert_eq!(a.receiver, "oncall");
    assert_eq!(a.label("alertname"), Some("PostflightTest"));
    std::thread::sleep(Duration::from_millis(2));
    let b = Notification::test_notification("oncall", "http://x");
    assert_ne!(a.group_key, b.group_key);
}

#[test]
fn redaction_covers_the_parts_of_a_secret_url() {
    let secrets = [
        "https://discord.com/api/webhooks/123/D1SCORDTOKEN",
        "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=K3YK3Y&token=GCHATT0KEN",
    ];
    let e = NotifyError::permanent(
        "receiver x: HTTP 404: unknown webhook /api/webhooks/123/D1SCORDTOKEN, token GCHATT0KEN, \
         query key=K3YK3Y&token=GCHATT0KEN, url https://discord.com/api/webhooks/123/D1SCORDTOKEN",
    )
    .redacted(&secrets);
    let m = e.message();
    for leak in ["D1SCORDTOKEN", "GCHATT0KEN", "K3YK3Y", "/api/webhooks"] {
        assert!(!m.contains(leak), "{leak} in {m}");
    }
    assert!(
        m.starts_with("receiver x: HTTP 404: unknown webhook <secret>"),
        "{m}"
    );
    assert!(m.ends_with("url <secret>"), "{m}");
    // Short words of the path stay readable; a secret that is no URL has no parts.
    assert!(!secret_parts(secrets[0]).contains(&"api".to_string()));
    assert!(secret_parts("hmac-key").is_empty());
}

#[test]
fn redaction() {
    let e = NotifyError::permanent("receiver x: bad https://hooks.example/T0/SECRET and SECRET")
        .redacted(&["https://hooks.example/T0/SECRET", "SECRET"]);
    assert_eq!(e.message(), "receiver x: bad <secret> and <secret>");
    assert!(!e.is_retryable());
}
