use super::*;
use crate::notify::tests::sample;

#[test]
fn hmac_matches_rfc4231_vector() {
    // RFC 4231 test case 2.
    let sig = signature(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        sig,
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn payload_has_alertmanager_v4_fields() {
    let n = sample();
    let v: serde_json::Value = serde_json::from_slice(&body(&n)).unwrap();
    assert_eq!(v["version"], "4");
    assert_eq!(v["groupKey"], n.group_key.as_str());
    assert_eq!(v["truncatedAlerts"], 0);
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "hooks");
    assert_eq!(v["groupLabels"]["alertname"], "HighErrorRate");
    assert_eq!(v["commonLabels"]["job"], "api");
    assert_eq!(v["commonAnnotations"], serde_json::json!({}));
    assert_eq!(v["externalURL"], "http://monitor.example.com:7980");
    let alerts = v["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    let a = &alerts[0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"]["instance"], "a:80");
    assert_eq!(a["annotations"]["summary"], "error rate 5% on <api>");
    assert_eq!(a["startsAt"], "2024-05-01T12:00:00Z");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        a["generatorURL"],
        "http://monitor.example.com:7980/rules/HighErrorRate"
    );
    assert_eq!(a["fingerprint"], "00000000000000aa");
    let b = &alerts[1];
    assert_eq!(b["status"], "resolved");
    assert_eq!(b["endsAt"], "2024-05-01T12:10:00Z");
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 10, "no extra top-level fields: {keys:?}");
}
