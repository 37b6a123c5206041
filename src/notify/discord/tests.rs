use super::*;
use crate::notify::tests::{alert, sample, verdict_sample};

#[test]
fn colour_and_title_by_state() {
    let mut n = sample();
    let e = embed(&n);
    assert_eq!(e["title"], "[FIRING:1] HighErrorRate api");
    assert_eq!(e["color"], 0xD93025);
    assert_eq!(e["url"], "http://monitor.example.com:7980");
    assert_eq!(e["timestamp"], "2024-05-01T12:00:00Z");
    let d = e["description"].as_str().unwrap();
    assert!(
        d.starts_with(
            "🔴 **FIRING** · error rate 5% on \\<api\\>\n**Reason:** status 503, expected 200"
        ),
        "{d}"
    );
    assert!(d.contains("`job=api`"));
    assert!(d.contains("[Source](http://monitor.example.com:7980/rules/HighErrorRate)"));
    assert!(d.contains("✅ **RESOLVED** · error rate back to normal"));

    n.status = GroupStatus::Resolved;
    n.alerts.retain(|a| a.status == GroupStatus::Resolved);
    let e = embed(&n);
    assert_eq!(e["title"], "[RESOLVED] HighErrorRate api");
    assert_eq!(e["color"], 0x1E8E3E);
    assert_eq!(e["timestamp"], "2024-05-01T12:10:00Z");

    let m = message(&sample());
    assert_eq!(m["allowed_mentions"]["parse"], json!([]));
}

#[test]
fn verdicts_have_a_field_per_check() {
    let e = embed(&verdict_sample("fail"));
    assert_eq!(e["title"], "Deployment api v2.0.1: FAIL");
    assert_eq!(e["color"], 0xD93025);
    let fields = e["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0]["name"], "error-rate");
    assert!(
        fields[0]["value"]
            .as_str()
            .unwrap()
            .starts_with("**FAIL** · value 0.02, bound \\<= 0.005")
    );
    assert!(
        e["description"]
            .as_str()
            .unwrap()
            .contains("**Commit:** abc123")
    );
    assert_eq!(embed(&verdict_sample("pass"))["color"], 0x1E8E3E);
    assert_eq!(embed(&verdict_sample("inconclusive"))["color"], 0xF9AB00);
    assert!(
        !embed(&verdict_sample("pass"))["title"]
            .as_str()
            .unwrap()
            .contains("RESOLVED")
    );
}

#[test]
fn every_limit_holds_with_huge_alerts_and_many_checks() {
    let mut n = sample();
    n.alerts = (0..60)
        .map(|i| {
            let mut a = alert(&format!("i{i}"), GroupStatus::Firing);
            a.annotations.insert("description".into(), "*".repeat(9000));
            a
        })
        .collect();
    n.group_labels.insert("job".into(), "j".repeat(1000));
    let m = message(&n);
    let e = &m["embeds"][0];
    assert!(e["title"].as_str().unwrap().chars().count() <= MAX_TITLE);
    let d = e["description"].as_str().unwrap();
    assert!(d.chars().count() <= MAX_DESCRIPTION);
    assert!(d.ends_with("…and 59 more alerts"), "{}", &d[d.len() - 40..]);
    assert!(counted_chars(&m) <= MAX_TOTAL);

    let mut v = verdict_sample("fail");
    for i in 0..40 {
        v.alerts[0].annotations.insert(
            format!("{i:02}-{}", "c".repeat(300)),
            format!("fail: {}", "v".repeat(2000)),
        );
    }
    let m = message(&v);
    let e = &m["embeds"][0];
    let fields = e["fields"].as_array().unwrap();
    assert!(fields.len() <= MAX_FIELDS);
    for f in fields {
        assert!(f["name"].as_str().unwrap().chars().count() <= MAX_FIELD_NAME);
        assert!(f["value"].as_str().unwrap().chars().count() <= MAX_FIELD_VALUE);
        assert!(!f["value"].as_str().unwrap().is_empty());
    }
    assert!(
        fields.last().unwrap()["value"]
            .as_str()
            .unwrap()
            .starts_with("and ")
    );
    assert!(counted_chars(&m) <= MAX_TOTAL, "{}", counted_chars(&m));
}

#[test]
fn markdown_in_labels_is_escaped() {
    assert_eq!(
        escape("**x** [a](b) @everyone"),
        "\\*\\*x\\*\\* \\[a\\]\\(b\\) @everyone"
    );
    assert_eq!(code("a`b"), "`aˋb`");
}

#[test]
fn test_message_is_marked() {
    let e = embed(&Notification::test_notification("d", ""));
    assert!(e["title"].as_str().unwrap().contains("[TEST]"));
    assert!(
        e["description"]
            .as_str()
            .unwrap()
            .contains("test notification")
    );
    assert!(e.get("url").is_none());
}
