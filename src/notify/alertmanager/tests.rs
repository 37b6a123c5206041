use super::*;

use chrono::TimeZone;

use crate::notify::NotifiedAlert;

fn alert(status: GroupStatus, ends_at: Option<DateTime<Utc>>) -> NotifiedAlert {
    NotifiedAlert {
        status,
        labels: BTreeMap::from([("alertname".to_string(), "Down".to_string())]),
        annotations: BTreeMap::from([("summary".to_string(), "down".to_string())]),
        starts_at: Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap(),
        ends_at,
        generator_url: "http://postflight/rules".into(),
        fingerprint: "0000000000000001".into(),
    }
}

#[test]
fn firing_alerts_end_four_resends_ahead_and_resolved_ones_at_their_resolve_time() {
    let c = AlertmanagerConfig {
        urls: vec!["http://am:9093".into()],
        resend_interval: crate::config::ConfigDuration::secs(60),
        evaluation_interval: std::time::Duration::from_secs(90),
    };
    let resolved_at = Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap();
    let n = Notification::new(
        "am",
        "{}:{}".into(),
        BTreeMap::new(),
        vec![
            alert(GroupStatus::Firing, None),
            alert(GroupStatus::Resolved, Some(resolved_at)),
        ],
        "",
    );
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 10, 10, 0).unwrap();
    let body = serde_json::to_value(alerts(&c, &n, now)).unwrap();
    // 4 × max(1m resend, 1m30s evaluation) = 6 minutes ahead.
    assert_eq!(body[0]["endsAt"], "2026-01-01T10:16:00.000Z");
    assert_eq!(body[0]["startsAt"], "2026-01-01T10:00:00.000Z");
    assert_eq!(body[0]["labels"]["alertname"], "Down");
    assert_eq!(body[0]["annotations"]["summary"], "down");
    assert_eq!(body[0]["generatorURL"], "http://postflight/rules");
    assert_eq!(body[1]["endsAt"], "2026-01-01T10:05:00.000Z");
    assert_eq!(
        alerts_url("http://am:9093/"),
        "http://am:9093/api/v2/alerts"
    );
}
