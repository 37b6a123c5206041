use super::*;
use crate::notify::GroupStatus;
use crate::notify::tests::{alert, sample, verdict_sample};

#[test]
fn priority_and_tags_by_state() {
    let mut n = sample();
    assert_eq!(priority(&n), 3, "no severity label");
    n.alerts[0].labels.insert("severity".into(), "page".into());
    assert_eq!(priority(&n), 5);
    assert_eq!(tags(&n), ["rotating_light"]);
    n.status = GroupStatus::Resolved;
    n.alerts.retain(|a| a.status == GroupStatus::Resolved);
    assert_eq!(priority(&n), 2);
    assert_eq!(tags(&n), ["white_check_mark"]);
    let fail = verdict_sample("fail");
    assert_eq!(
        (priority(&fail), tags(&fail)),
        (5, vec!["rotating_light", "deployment"])
    );
    let inc = verdict_sample("inconclusive");
    assert_eq!(
        (priority(&inc), tags(&inc)),
        (4, vec!["warning", "deployment"])
    );
    let pass = verdict_sample("pass");
    assert_eq!(
        (priority(&pass), tags(&pass)),
        (2, vec!["white_check_mark", "deployment"])
    );
    let t = Notification::test_notification("n", "");
    assert_eq!(
        (priority(&t), tags(&t)),
        (3, vec!["rotating_light", "test_tube"])
    );
}

#[test]
fn headers_and_body() {
    let n = sample();
    let h = headers(&n, Some("tk_abc")).unwrap();
    assert_eq!(h["title"], "[FIRING:1] HighErrorRate api");
    assert_eq!(h["priority"], "3");
    assert_eq!(h["tags"], "rotating_light");
    assert_eq!(
        h["click"],
        "http://monitor.example.com:7980/rules/HighErrorRate"
    );
    assert_eq!(h["authorization"], "Bearer tk_abc");
    assert!(h["authorization"].is_sensitive());
    let b = body(&n);
    assert!(
        b.starts_with("FIRING · error rate 5% on <api>\nReason: status 503"),
        "{b}"
    );
    assert!(b.contains("\n\nRESOLVED · error rate back to normal"));
    let v = body(&verdict_sample("fail"));
    assert!(v.contains("- error-rate: FAIL · value 0.02"), "{v}");
    assert_eq!(
        headers(&verdict_sample("fail"), None).unwrap()["title"],
        "Deployment api v2.0.1: FAIL"
    );
}

#[test]
fn non_ascii_titles_are_encoded_words() {
    assert_eq!(header_text("plain"), "plain");
    assert_eq!(header_text("a\nb"), "a b");
    // RFC 4648 test vectors through the encoder.
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    assert_eq!(header_text("café"), "=?UTF-8?B?Y2Fmw6k=?=");
}

#[test]
fn the_body_stays_under_the_limit() {
    let mut n = sample();
    n.alerts = (0..50)
        .map(|i| {
            let mut a = alert(&format!("i{i}"), GroupStatus::Firing);
            a.annotations.insert("description".into(), "é".repeat(3000));
            a
        })
        .collect();
    let b = body(&n);
    assert!(b.len() <= MAX_BODY, "{}", b.len());
    assert!(b.ends_with("…and 49 more alerts"), "{}", &b[b.len() - 30..]);
}
