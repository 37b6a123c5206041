use super::*;

#[test]
fn scrape_timestamps_snap_to_the_schedule_within_two_milliseconds() {
    let mut a = None;
    assert_eq!(align_timestamp(&mut a, 1_000_000, 10_000), 1_000_000);
    // Timer jitter of ±2 ms: the scheduled time.
    assert_eq!(align_timestamp(&mut a, 1_010_001, 10_000), 1_010_000);
    assert_eq!(align_timestamp(&mut a, 1_019_998, 10_000), 1_020_000);
    assert_eq!(align_timestamp(&mut a, 1_030_002, 10_000), 1_030_000);
    // Late by more: the real time, and the schedule stays.
    assert_eq!(align_timestamp(&mut a, 1_040_050, 10_000), 1_040_050);
    assert_eq!(align_timestamp(&mut a, 1_050_000, 10_000), 1_050_000);
    // A missed tick: the schedule moves on by whole intervals.
    assert_eq!(align_timestamp(&mut a, 1_070_001, 10_000), 1_070_000);
    // A clock step back: re-anchored on the clock, aligned again from there.
    assert_eq!(align_timestamp(&mut a, 500_000, 10_000), 500_000);
    assert_eq!(align_timestamp(&mut a, 510_001, 10_000), 510_000);
}

#[test]
fn probe_runs_snap_to_the_schedule_within_one_percent_of_the_interval() {
    let mut a = None;
    assert_eq!(align_probe_timestamp(&mut a, 1_000_000, 10_000), 1_000_000);
    assert_eq!(align_probe_timestamp(&mut a, 1_010_100, 10_000), 1_010_000);
    assert_eq!(align_probe_timestamp(&mut a, 1_019_900, 10_000), 1_020_000);
    // Later than 100 ms: the real time, and the schedule stays.
    assert_eq!(align_probe_timestamp(&mut a, 1_030_101, 10_000), 1_030_101);
    assert_eq!(align_probe_timestamp(&mut a, 1_040_003, 10_000), 1_040_000);
    // A scrape 3 ms late is not aligned.
    let mut s = None;
    align_timestamp(&mut s, 1_000_000, 10_000);
    assert_eq!(align_timestamp(&mut s, 1_010_003, 10_000), 1_010_003);
}

#[test]
fn the_tolerance_is_at_most_one_percent_of_the_interval() {
    let mut a = None;
    align_timestamp(&mut a, 0, 100);
    assert_eq!(align_timestamp(&mut a, 101, 100), 100);
    assert_eq!(align_timestamp(&mut a, 202, 100), 202);
}
