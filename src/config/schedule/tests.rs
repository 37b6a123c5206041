use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn active(s: &Schedule, tz: Tz, at: &str) -> Option<(String, String)> {
    s.active_at(tz, utc(at))
        .map(|(a, b)| (a.to_rfc3339(), b.to_rfc3339()))
}

#[test]
fn schedules_parse_days_ranges_and_times() {
    let s = Schedule::parse("Mon-Fri 22:00-02:00").unwrap();
    assert_eq!(s.days, 0b001_1111);
    assert_eq!((s.start, s.end), (22 * 60, 2 * 60));
    assert_eq!(
        Schedule::parse("Fri-Mon 00:00-24:00").unwrap().days,
        0b111_0001
    );
    assert_eq!(
        Schedule::parse("sat,Sun,Wed 01:30-02:00").unwrap().days,
        0b110_0100
    );
    for bad in [
        "",
        "Sun",
        "Sun 02:00",
        "Sun 2:00-4:00",
        "Funday 02:00-04:00",
        "Sun 02:00-02:00",
        "Sun 24:00-01:00",
        "Sun 25:00-26:00",
        "Sun 02:60-03:00",
        "Sun 02:00-04:00 extra",
    ] {
        assert!(Schedule::parse(bad).is_err(), "{bad:?}");
    }
    assert!(parse_zone("Europe/Berlin").is_ok());
    assert!(parse_zone("Mars/Olympus").is_err());
}

#[test]
fn a_window_past_midnight_belongs_to_the_day_it_starts() {
    let s = Schedule::parse("Sun 22:00-02:00").unwrap();
    let tz = chrono_tz::UTC;
    // 2024-06-02 is a Sunday.
    assert_eq!(active(&s, tz, "2024-06-02T21:59:00Z"), None);
    let w = Some((
        "2024-06-02T22:00:00+00:00".to_string(),
        "2024-06-03T02:00:00+00:00".to_string(),
    ));
    assert_eq!(active(&s, tz, "2024-06-02T22:00:00Z"), w);
    assert_eq!(active(&s, tz, "2024-06-03T01:59:59Z"), w, "Monday morning");
    assert_eq!(active(&s, tz, "2024-06-03T02:00:00Z"), None);
    assert_eq!(
        active(&s, tz, "2024-06-03T22:30:00Z"),
        None,
        "not Monday night"
    );
    assert_eq!(
        s.next_after(tz, utc("2024-06-03T02:00:00Z"))
            .map(|w| w.0.to_rfc3339()),
        Some("2024-06-09T22:00:00+00:00".to_string())
    );
}

#[test]
fn windows_keep_their_wall_clock_times_across_daylight_saving_changes() {
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let s = Schedule::parse("Sun 01:00-04:00").unwrap();
    // Summer time starts on 2024-03-31: 02:00 CET becomes 03:00 CEST. The window runs from
    // 01:00 CET (00:00 UTC) to 04:00 CEST (02:00 UTC): two hours of real time, not three.
    assert_eq!(
        active(&s, berlin, "2024-03-31T01:30:00Z"),
        Some((
            "2024-03-31T00:00:00+00:00".to_string(),
            "2024-03-31T02:00:00+00:00".to_string()
        ))
    );
    assert_eq!(active(&s, berlin, "2024-03-31T02:00:00Z"), None);
    // The week before, in winter time: 00:00 to 03:00 UTC.
    assert_eq!(
        active(&s, berlin, "2024-03-24T02:30:00Z"),
        Some((
            "2024-03-24T00:00:00+00:00".to_string(),
            "2024-03-24T03:00:00+00:00".to_string()
        ))
    );
    // Summer time ends on 2024-10-27: 03:00 CEST becomes 02:00 CET. 01:00 CEST is 23:00 UTC
    // the day before, 04:00 CET is 03:00 UTC: four hours of real time.
    assert_eq!(
        active(&s, berlin, "2024-10-27T02:30:00Z"),
        Some((
            "2024-10-26T23:00:00+00:00".to_string(),
            "2024-10-27T03:00:00+00:00".to_string()
        ))
    );
    // A start in the skipped hour begins when the clocks jump (03:00 CEST, 01:00 UTC); one in
    // the repeated hour begins at its first occurrence (02:30 CEST, 00:30 UTC).
    let skipped = Schedule::parse("Sun 02:30-05:00").unwrap();
    assert_eq!(
        active(&skipped, berlin, "2024-03-31T01:00:00Z").map(|w| w.0),
        Some("2024-03-31T01:00:00+00:00".to_string())
    );
    assert_eq!(active(&skipped, berlin, "2024-03-31T00:59:00Z"), None);
    assert_eq!(
        active(&skipped, berlin, "2024-10-27T00:45:00Z").map(|w| w.0),
        Some("2024-10-27T00:30:00+00:00".to_string())
    );
}
