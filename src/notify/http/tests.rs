use super::*;
use chrono::TimeZone;

#[test]
fn retry_after_seconds() {
    let now = Utc::now();
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after(" 120 ", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        Some(MAX_RETRY_AFTER)
    );
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("", now), None);
}

#[test]
fn retry_after_http_dates() {
    let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        parse_retry_after("Wed Oct 21 07:28:05 2015", now),
        Some(Duration::from_secs(5))
    );
    // In the past: retry now.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
}

#[test]
fn status_classification() {
    let class = |code: u16| {
        let e = classify_status(StatusCode::from_u16(code).unwrap(), "m".into(), None);
        e.is_retryable()
    };
    for code in [408, 429, 500, 502, 503, 504] {
        assert!(class(code), "{code} should be retryable");
    }
    for code in [301, 400, 401, 403, 404, 410, 413, 422] {
        assert!(!class(code), "{code} should be permanent");
    }
}
