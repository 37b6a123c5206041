use super::*;
use crate::store::ProbeRecord;
use crate::store::test_util::{reopen, temp_store};

/// A UTC midnight.
const DAY0: i64 = 1_764_979_200_000;

fn run(probe: &str, t: i64, success: bool) -> ProbeRecord {
    ProbeRecord {
        probe: probe.into(),
        t,
        success,
        duration_seconds: 0.01,
        status: Some(if success { 200 } else { 503 }),
        reason: if success {
            String::new()
        } else {
            "status 503, expected 200".into()
        },
    }
}

/// Every 15 s from `from` for `n` runs; every `fail_every`-th fails (0: none).
fn runs(store: &crate::store::Store, probe: &str, from: i64, n: i64, fail_every: i64) {
    for i in 0..n {
        let failed = fail_every > 0 && i % fail_every == 0;
        store
            .probes
            .append_probe(&run(probe, from + i * 15_000, !failed))
            .expect("append");
    }
}

#[test]
fn counts_runs_and_failures_per_hour_and_window() {
    let (_dir, store) = temp_store();
    // Hour 0: 240 runs, 24 failed. Hour 1: no run (postflight down). Hour 2: 240 runs.
    runs(&store, "web", DAY0, 240, 10);
    runs(&store, "web", DAY0 + 2 * HOUR_MS, 240, 0);
    let u = store.probes.uptime();
    let now = DAY0 + 2 * HOUR_MS + 3_599_000;
    assert_eq!(
        u.window("web", HOUR_MS, now),
        Counts {
            checks: 240,
            failures: 0
        }
    );
    // Two hours back: hour 1 had no runs, so it adds nothing (never "up").
    assert_eq!(u.window("web", 2 * HOUR_MS, now).checks, 240);
    let three = u.window("web", 3 * HOUR_MS, now);
    assert_eq!((three.checks, three.failures), (480, 24));
    assert_eq!(three.uptime(), Some(456.0 / 480.0));
    // A probe that never ran has no data, not 100 %.
    assert_eq!(u.window("db", 24 * HOUR_MS, now).uptime(), None);
    // Windows beyond a week count whole days: the same runs.
    assert_eq!(u.window("web", 30 * DAY_MS, now), three);
    let days = u.days("web", 90, now);
    assert_eq!(days.len(), 90);
    assert_eq!(days[89], three);
    assert!(days[..89].iter().all(|d| d.uptime().is_none()));
    let last = u.last("web").expect("ran");
    assert!(last.success);
    assert_eq!(last.last_failure, Some(DAY0 + 230 * 15_000));
}

#[test]
fn a_window_of_a_week_is_hourly_and_longer_is_daily() {
    let (_dir, store) = temp_store();
    // One run a day at noon for 10 days, the first three failed.
    for d in 0..10 {
        store
            .probes
            .append_probe(&run("web", DAY0 + d * DAY_MS + 12 * HOUR_MS, d >= 3))
            .expect("append");
    }
    let u = store.probes.uptime();
    let now = DAY0 + 9 * DAY_MS + 13 * HOUR_MS;
    // 7 days = the last 168 clock hours: the runs of days 3..=9.
    assert_eq!(
        u.window("web", 7 * DAY_MS, now),
        Counts {
            checks: 7,
            failures: 0
        }
    );
    // 8 days = the last 8 UTC days, today included: days 2..=9.
    assert_eq!(
        u.window("web", 8 * DAY_MS, now),
        Counts {
            checks: 8,
            failures: 1
        }
    );
    assert_eq!(u.window("web", 90 * DAY_MS, now).failures, 3);
}

#[test]
fn counts_survive_a_reopen_without_double_counting() {
    let (_dir, store) = temp_store();
    runs(&store, "web", DAY0, 240, 4);
    runs(&store, "api", DAY0 + HOUR_MS, 100, 0);
    // Hour 0 is written as a row; hour 1 is not closed yet: its results are counted again
    // from the history at open.
    let now = DAY0 + HOUR_MS + GRACE_MS + 1;
    store.probes.write_probe_results(Some(now)).expect("write");
    let before: Vec<Counts> = store
        .probes
        .uptime()
        .windows(&["web", "api"], 3 * HOUR_MS, now);
    assert_eq!(before[0].checks, 240);
    assert_eq!(before[0].failures, 60);
    let store = reopen(store);
    let after = store
        .probes
        .uptime()
        .windows(&["web", "api"], 3 * HOUR_MS, now);
    assert_eq!(after, before);
    // More runs in hour 1 after the restart add to the counted ones.
    runs(&store, "api", DAY0 + HOUR_MS + 1_600_000, 10, 1);
    let later = store.probes.uptime().window("api", 3 * HOUR_MS, now);
    assert_eq!((later.checks, later.failures), (110, 10));
    // Everything closed is written: a second reopen reads rows only.
    store
        .probes
        .write_probe_results(Some(DAY0 + 3 * HOUR_MS))
        .expect("write");
    let store = reopen(store);
    let again = store.probes.uptime().window("api", 3 * HOUR_MS, now);
    assert_eq!(again, later);
}

#[test]
fn prune_drops_old_hours_and_forgets_gone_probes() {
    let (_dir, store) = temp_store();
    runs(&store, "old", DAY0, 10, 0);
    runs(&store, "web", DAY0 + 2 * DAY_MS, 10, 0);
    store
        .probes
        .write_probe_results(Some(DAY0 + 3 * DAY_MS))
        .expect("write");
    store.set_retention(std::time::Duration::from_secs(24 * 3600));
    // Results older than a day go; the counts are kept 91 days: nothing of them yet.
    let before = DAY0 + 3 * DAY_MS - DAY_MS;
    store.prune(before).expect("prune");
    assert_eq!(store.probes.uptime().probe_names(), ["old", "web"]);
    // 92 days on, "old" is past the 91 days kept, "web" (two days younger) is not.
    let before = DAY0 + 92 * DAY_MS - DAY_MS;
    let stats = store.prune(before).expect("prune");
    assert_eq!(stats.uptime_hours, 1);
    assert_eq!(store.probes.uptime().probe_names(), ["web"]);
    let store = reopen(store);
    assert_eq!(store.probes.uptime().probe_names(), ["web"]);
}

#[test]
fn rows_round_trip_and_bad_rows_are_errors() {
    let entries = vec![
        (
            0,
            Slot {
                checks: 240,
                failures: 3,
            },
        ),
        (
            7,
            Slot {
                checks: 1,
                failures: 1,
            },
        ),
    ];
    assert_eq!(decode_row(&encode_row(&entries)), Ok(entries));
    assert!(decode_row(&[9, 0]).is_err());
    // More failures than runs.
    let mut bad = Encoder::with_format(ROW_V1);
    bad.uvarint(1).uvarint(0).uvarint(1).uvarint(2);
    assert!(decode_row(&bad.finish()).is_err());
}

#[test]
fn an_hour_no_longer_kept_by_the_hour_keeps_its_row() {
    let (_dir, store) = temp_store();
    runs(&store, "web", DAY0, 10, 0);
    store
        .probes
        .write_probe_results(Some(DAY0 + 2 * HOUR_MS))
        .expect("write");
    // A late result for the first hour after its row was written, then one 10 days later
    // before the next write: the first hour is no longer kept by the hour, so its row is left
    // as it was rather than rewritten without its runs.
    runs(&store, "web", DAY0 + 1_000, 1, 0);
    runs(&store, "web", DAY0 + 10 * DAY_MS, 1, 0);
    store
        .probes
        .write_probe_results(Some(DAY0 + 11 * DAY_MS))
        .expect("write");
    let store = reopen(store);
    let now = DAY0 + 10 * DAY_MS + HOUR_MS;
    assert_eq!(
        store.probes.uptime().window("web", 30 * DAY_MS, now).checks,
        11
    );
}

#[test]
fn a_store_without_rows_recounts_only_its_last_day() {
    let (_dir, store) = temp_store();
    // Results written without any row, as by a version before the counts.
    runs(&store, "web", DAY0, 10, 0);
    runs(&store, "web", DAY0 + 3 * DAY_MS, 10, 0);
    let store = reopen(store);
    let now = DAY0 + 3 * DAY_MS + HOUR_MS;
    assert_eq!(
        store.probes.uptime().window("web", 30 * DAY_MS, now).checks,
        10
    );
}
