use super::*;
use crate::notify::tests::{alert, sample, verdict_sample};

#[test]
fn create_body_fields() {
    let mut n = sample();
    n.alerts[0].labels.insert("severity".into(), "page".into());
    let b = create_body(&n);
    assert_eq!(
        b["message"],
        "[FIRING:1] HighErrorRate api: error rate 5% on <api>"
    );
    assert_eq!(b["alias"], dedup_key("hooks", &n.group_key));
    assert_eq!(b["alias"].as_str().unwrap().len(), 64);
    assert_eq!(b["priority"], "P1");
    assert_eq!(b["source"], "postflight");
    assert_eq!(b["entity"], "api");
    assert_eq!(b["tags"], json!(["postflight", "alertname:HighErrorRate"]));
    assert_eq!(b["details"]["firing"], "1");
    assert_eq!(b["details"]["job"], "api");
    let d = b["description"].as_str().unwrap();
    assert!(
        d.starts_with("FIRING · error rate 5% on <api>\nReason:"),
        "{d}"
    );
    assert!(d.contains("\n\nRESOLVED · error rate back to normal"));
    assert!(
        d.ends_with("postflight: http://monitor.example.com:7980"),
        "{d}"
    );
}

#[test]
fn priority_from_severity() {
    let mut n = sample();
    let with = |n: &mut Notification, s: &str| {
        n.alerts[0].labels.insert("severity".into(), s.into());
        priority(n)
    };
    assert_eq!(priority(&n), "P3", "no severity: Opsgenie's default");
    assert_eq!(with(&mut n, "critical"), "P1");
    assert_eq!(with(&mut n, "error"), "P2");
    assert_eq!(with(&mut n, "warning"), "P3");
    assert_eq!(with(&mut n, "info"), "P5");
    assert_eq!(priority(&verdict_sample("fail")), "P1");
    assert_eq!(priority(&verdict_sample("inconclusive")), "P3");
    assert_eq!(priority(&Notification::test_notification("o", "")), "P5");
}

#[test]
fn verdicts_of_a_job_share_one_alias() {
    let fail = verdict_sample("fail");
    let mut pass = verdict_sample("pass");
    // Another deployment of the same job.
    pass.group_key = format!("{}@19a2b", pass.group_key);
    assert_eq!(alias(&fail), alias(&pass));
    assert_eq!(alias(&fail), dedup_key("hooks", "deploy:api"));
    let b = create_body(&fail);
    assert_eq!(b["message"], "Deployment api v2.0.1: FAIL");
    assert!(
        b["description"]
            .as_str()
            .unwrap()
            .contains("- error-rate: FAIL · value 0.02")
    );
    assert!(
        b["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("verdict:fail"))
    );
}

#[test]
fn every_field_within_its_limit() {
    let mut n = sample();
    n.alerts = (0..30)
        .map(|i| {
            let mut a = alert(&format!("i{i}"), GroupStatus::Firing);
            a.annotations.insert("summary".into(), "s".repeat(500));
            a.annotations
                .insert("description".into(), "d".repeat(20_000));
            a.labels.insert(format!("l{i}"), "v".repeat(900));
            a
        })
        .collect();
    for i in 0..40 {
        n.group_labels.insert(format!("g{i}"), "x".repeat(80));
    }
    n.common_labels = (0..40)
        .map(|i| (format!("c{i}"), "y".repeat(900)))
        .collect();
    let b = create_body(&n);
    assert!(b["message"].as_str().unwrap().chars().count() <= MAX_MESSAGE);
    let d = b["description"].as_str().unwrap();
    assert!(d.chars().count() <= MAX_DESCRIPTION);
    assert!(d.contains("…and 29 more alerts"), "{}", &d[d.len() - 80..]);
    let tags = b["tags"].as_array().unwrap();
    assert!(tags.len() <= MAX_TAGS);
    assert!(
        tags.iter()
            .all(|t| t.as_str().unwrap().chars().count() <= MAX_TAG)
    );
    let details: usize = b["details"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| k.chars().count() + v.as_str().unwrap().chars().count())
        .sum();
    assert!(details <= MAX_DETAILS, "{details}");
}
