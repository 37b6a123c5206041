use super::*;
use serde_json::json;

fn cfg(extra: &str) -> ProbeConfig {
    toml::from_str(&format!("name = \"p\"\nurl = \"http://x/\"\n{extra}")).unwrap()
}

#[test]
fn status_reasons() {
    assert_eq!(status(200, &[]), Ok(()));
    assert_eq!(status(204, &[]), Ok(()));
    assert_eq!(status(503, &[200]).unwrap_err(), "status 503, expected 200");
    assert_eq!(status(503, &[]).unwrap_err(), "status 503, expected 2xx");
    assert_eq!(
        status(500, &[200, 204]).unwrap_err(),
        "status 500, expected 200 or 204"
    );
    assert_eq!(
        status(500, &[200, 201, 204]).unwrap_err(),
        "status 500, expected 200, 201 or 204"
    );
    assert_eq!(status(301, &[301]), Ok(()));
}

#[test]
fn latency_reason() {
    assert_eq!(
        latency(
            Duration::from_micros(812_345),
            Some(Duration::from_millis(500))
        )
        .unwrap_err(),
        "latency 812ms, expected at most 500ms"
    );
    assert_eq!(
        latency(Duration::from_millis(2500), Some(Duration::from_secs(1))).unwrap_err(),
        "latency 2s500ms, expected at most 1s"
    );
    assert!(latency(Duration::from_millis(400), Some(Duration::from_millis(500))).is_ok());
    assert!(latency(Duration::from_secs(100), None).is_ok());
}

#[test]
fn json_paths() {
    let doc = json!({"database": "connected", "checks": [{"ok": true}, {"ok": false}],
                         "a": {"b": {"c": 3}}, "n": 1.0});
    assert_eq!(lookup(&doc, "database"), Some(&json!("connected")));
    assert_eq!(lookup(&doc, "checks.0.ok"), Some(&json!(true)));
    assert_eq!(lookup(&doc, "checks.1.ok"), Some(&json!(false)));
    assert_eq!(lookup(&doc, "checks.2.ok"), None);
    assert_eq!(lookup(&doc, "checks.x"), None);
    assert_eq!(lookup(&doc, "a.b.c"), Some(&json!(3)));
    assert_eq!(lookup(&doc, "a.b.c.d"), None);
    assert_eq!(lookup(&doc, "missing"), None);
    assert!(json_eq(lookup(&doc, "n").unwrap(), &json!(1)));
    assert!(!json_eq(&json!(1), &json!("1")));
    assert!(json_eq(&json!([1, {"x": 2.0}]), &json!([1.0, {"x": 2}])));
}

#[test]
fn body_reasons() {
    let c = cfg(r#"json = { database = "connected", "checks.0.ok" = true, n = 1 }"#);
    assert!(
        body(
            &c,
            br#"{"database":"connected","checks":[{"ok":true}],"n":1.0}"#
        )
        .is_ok()
    );
    assert_eq!(
        body(
            &c,
            br#"{"database":"disconnected","checks":[{"ok":true}],"n":1}"#
        )
        .unwrap_err(),
        r#"json database = "disconnected", expected "connected""#
    );
    assert_eq!(
        body(&c, br#"{"database":"connected","checks":[],"n":1}"#).unwrap_err(),
        "json checks.0.ok missing"
    );
    assert_eq!(body(&c, b"<html>").unwrap_err(), "body is not JSON");

    let c = cfg(r#"body_contains = "ok""#);
    assert!(body(&c, b"all ok").is_ok());
    assert_eq!(
        body(&c, b"down").unwrap_err(),
        r#"body does not contain "ok""#
    );

    let c = cfg(r#"body_regex = '"status":\s*"ok"'"#);
    assert!(body(&c, br#"{"status": "ok"}"#).is_ok());
    assert_eq!(
        body(&c, br#"{"status": "bad"}"#).unwrap_err(),
        r#"body does not match /"status":\s*"ok"/"#
    );
    // No body checks: anything goes, even bytes that are not UTF-8.
    assert!(body(&cfg(""), &[0xff, 0xfe]).is_ok());
}

#[test]
fn cert_reasons() {
    let now = 1_700_000_000;
    assert_eq!(
        cert_days(now + 3 * 86_400 + 100, now, 14).unwrap_err(),
        "certificate expires in 3 days, expected at least 14"
    );
    assert_eq!(
        cert_days(now + 86_400, now, 14).unwrap_err(),
        "certificate expires in 1 day, expected at least 14"
    );
    assert!(cert_days(now + 14 * 86_400, now, 14).is_ok());
    assert!(
        cert_days(now - 2 * 86_400, now, 14)
            .unwrap_err()
            .starts_with("certificate expired 2 days ago")
    );
}
