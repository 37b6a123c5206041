use super::*;

#[test]
fn parses_prometheus_durations() {
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(
        parse_duration("7d").unwrap(),
        Duration::from_secs(7 * 86400)
    );
    assert_eq!(
        parse_duration("1m30s500ms").unwrap(),
        Duration::from_millis(90_500)
    );
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
}

#[test]
fn rejects_bad_durations_with_reason() {
    assert!(parse_duration("5").unwrap_err().contains("missing unit"));
    assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
    assert!(
        parse_duration("30m1h")
            .unwrap_err()
            .contains("largest to smallest")
    );
    assert!(parse_duration("").is_err());
    assert!(
        parse_duration("-5s")
            .unwrap_err()
            .contains("expected a number")
    );
    assert!(parse_duration("1.5s").is_err());
}

#[test]
fn formats_like_prometheus() {
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::from_millis(2500)), "2s500ms");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}
