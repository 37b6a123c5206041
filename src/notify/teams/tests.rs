use super::*;
use crate::notify::tests::{alert, sample, verdict_sample};

#[test]
fn message_is_an_adaptive_card_coloured_by_state() {
    let m = message(&sample());
    assert_eq!(m["type"], "message");
    let a = &m["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    let c = &a["content"];
    assert_eq!(c["type"], "AdaptiveCard");
    assert_eq!(c["version"], "1.4");
    assert_eq!(c["body"][0]["text"], "[FIRING:1] HighErrorRate api");
    assert_eq!(c["body"][0]["color"], "Attention");
    let firing = &c["body"][1];
    assert_eq!(firing["type"], "Container");
    assert_eq!(firing["style"], "attention");
    assert_eq!(
        firing["items"][0]["text"],
        "FIRING · error rate 5% on <api>"
    );
    assert_eq!(
        firing["items"][1]["text"],
        "Reason: status 503, expected 200"
    );
    assert_eq!(firing["items"][2]["type"], "FactSet");
    assert_eq!(c["body"][2]["style"], "good");
    assert_eq!(c["actions"][0]["url"], "http://monitor.example.com:7980");

    let mut n = sample();
    n.status = GroupStatus::Resolved;
    n.alerts.retain(|a| a.status == GroupStatus::Resolved);
    let c = card(&n);
    assert_eq!(c["body"][0]["text"], "[RESOLVED] HighErrorRate api");
    assert_eq!(c["body"][0]["color"], "Good");
}

#[test]
fn verdicts_list_their_checks() {
    let c = card(&verdict_sample("inconclusive"));
    assert_eq!(c["body"][0]["text"], "Deployment api v2.0.1: INCONCLUSIVE");
    assert_eq!(c["body"][0]["color"], "Warning");
    let checks = &c["body"][2];
    assert_eq!(checks["type"], "FactSet");
    assert_eq!(checks["facts"][0]["title"], "error-rate");
    assert!(
        checks["facts"][0]["value"]
            .as_str()
            .unwrap()
            .starts_with("**PASS** · value 0.001")
    );
    assert_eq!(c["actions"][0]["title"], "Deployment");
    assert_eq!(
        card(&verdict_sample("fail"))["body"][0]["color"],
        "Attention"
    );
    assert_eq!(card(&verdict_sample("pass"))["body"][0]["color"], "Good");
}

#[test]
fn a_card_stays_under_the_size_limit() {
    let mut n = sample();
    n.alerts = (0..100)
        .map(|i| {
            let mut a = alert(&format!("i{i}"), GroupStatus::Firing);
            a.annotations
                .insert("description".into(), "x".repeat(50_000));
            a
        })
        .collect();
    let c = card(&n);
    assert!(json_size(&c) <= MAX_CARD_BYTES, "{}", json_size(&c));
    let last = c["body"].as_array().unwrap().last().unwrap();
    assert!(
        last["text"].as_str().unwrap().starts_with("…and "),
        "{last}"
    );
}
