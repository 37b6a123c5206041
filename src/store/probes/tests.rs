use super::super::Store;
use super::super::test_util::*;
use super::*;

fn probe(name: &str, t: i64, success: bool) -> ProbeRecord {
    ProbeRecord {
        probe: name.into(),
        t,
        success,
        duration_seconds: 0.25,
        status: if success { Some(200) } else { None },
        reason: if success {
            String::new()
        } else {
            "connection refused".into()
        },
    }
}

#[test]
fn probe_history_is_newest_last_within_bounds_and_limit() {
    let (_dir, store) = temp_store();
    // Out of order, two at the same millisecond, a neighbour whose name extends this one.
    for t in [5_000, 1_000, 3_000, 3_000, 2_000, 4_000, -1_000] {
        store
            .probes
            .append_probe(&probe("api", t, t != 2_000))
            .unwrap();
    }
    store
        .probes
        .append_probe(&probe("api2", 3_500, true))
        .unwrap();
    store.probes.append_probe(&probe("", 3_500, true)).unwrap();

    // Buffered, written as blocks, and read back after a reopen: the same answers.
    let check = |store: &Store| {
        let all = store
            .probes
            .probe_history("api", i64::MIN, i64::MAX, usize::MAX)
            .unwrap();
        let ts: Vec<i64> = all.iter().map(|r| r.t).collect();
        assert_eq!(ts, [-1_000, 1_000, 2_000, 3_000, 3_000, 4_000, 5_000]);
        assert!(all.iter().all(|r| r.probe == "api"));
        assert_eq!(all[2], probe("api", 2_000, false));

        let window = store
            .probes
            .probe_history("api", 2_000, 4_000, usize::MAX)
            .unwrap();
        let ts: Vec<i64> = window.iter().map(|r| r.t).collect();
        assert_eq!(
            ts,
            [2_000, 3_000, 3_000, 4_000],
            "since and until are inclusive"
        );

        let newest = store
            .probes
            .probe_history("api", i64::MIN, i64::MAX, 2)
            .unwrap();
        let ts: Vec<i64> = newest.iter().map(|r| r.t).collect();
        assert_eq!(
            ts,
            [4_000, 5_000],
            "the limit keeps the newest, still newest last"
        );

        assert!(
            store
                .probes
                .probe_history("api", 6_000, 7_000, 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .probes
                .probe_history("api", 4_000, 2_000, 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .probes
                .probe_history("nope", i64::MIN, i64::MAX, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .probes
                .probe_history("", i64::MIN, i64::MAX, 10)
                .unwrap()
                .len(),
            1
        );
    };
    check(&store);
    store.probes.write_probe_journal().unwrap();
    check(&store);
    assert_eq!(store.probes.write_probe_results(None).unwrap(), 9);
    assert_eq!(
        store.probes.inner.files.logged_blocks().len(),
        3,
        "one block a probe"
    );
    assert_eq!(store.probes.inner.files.file_counts(), (0, 1), "in the log");
    check(&store);
    let path = store.path().to_owned();
    drop(store);
    let store = Store::open(&path).unwrap().store;
    assert_eq!(
        store.probes.inner.files.file_counts(),
        (1, 0),
        "the log is sealed at open"
    );
    check(&store);
}

#[test]
fn probe_records_round_trip_odd_values() {
    let (_dir, store) = temp_store();
    let r = ProbeRecord {
        probe: "ünï\0code 🚀".into(),
        t: 1_700_000_000_123,
        success: false,
        duration_seconds: f64::INFINITY,
        status: Some(u16::MAX),
        reason: "json database = \"disconnected\"".into(),
    };
    store.probes.append_probe(&r).unwrap();
    let nan = ProbeRecord {
        t: r.t + 1,
        duration_seconds: f64::NAN,
        status: Some(0),
        ..r.clone()
    };
    store.probes.append_probe(&nan).unwrap();
    for written in [false, true] {
        if written {
            store.probes.write_probe_results(None).unwrap();
            assert_eq!(store.probes.inner.files.logged_blocks().len(), 1);
        }
        let back = store
            .probes
            .probe_history(&r.probe, 0, i64::MAX, 10)
            .unwrap();
        assert_eq!(back[0], r);
        assert!(back[1].duration_seconds.is_nan());
        assert_eq!(back[1].status, Some(0));
    }
}

/// Decoded results, with durations as bits (NaN compares unequal to itself).
fn bitwise(v: &[ProbeRecord]) -> Vec<(ProbeRecord, u64)> {
    v.iter()
        .map(|r| {
            let bits = r.duration_seconds.to_bits();
            (
                ProbeRecord {
                    duration_seconds: 0.0,
                    ..r.clone()
                },
                bits,
            )
        })
        .collect()
}

#[test]
fn compact_probe_blocks_give_back_every_field_bit_exactly() {
    let base = ProbeRecord {
        probe: "api".into(),
        t: 1_700_000_000_000,
        success: true,
        duration_seconds: 0.003_456_789,
        status: Some(200),
        reason: String::new(),
    };
    let mut records = Vec::new();
    // Irregular times (jitter, a long gap, a step back of the interval), every kind of
    // status sequence, reasons, and durations that are and are not whole nanoseconds.
    let times = [
        0,
        10_003,
        19_998,
        30_000,
        1_000_000,
        1_000_001,
        1_010_001,
        9_000_000_000,
    ];
    let durations = [
        0.003_456_789,
        1.0 / 3.0,
        12.345_678_901,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        2.5e9,
        0.0,
    ];
    let statuses = [
        Some(200),
        Some(200),
        None,
        Some(503),
        Some(503),
        Some(0),
        None,
        Some(u16::MAX),
    ];
    for i in 0..times.len() {
        records.push(ProbeRecord {
            t: base.t + times[i],
            success: i % 3 != 1,
            duration_seconds: durations[i],
            status: statuses[i],
            reason: if i % 2 == 1 {
                format!("status {i}, expected 200")
            } else {
                String::new()
            },
            ..base.clone()
        });
    }
    let bytes = encode_probe_block(&records);
    assert_eq!(bytes[0], PROBE_BLOCK_V3);
    let back = decode_probes("api", base.t, &bytes).expect("decodes");
    assert_eq!(bitwise(&back), bitwise(&records));
    // Damage is an error, never a panic or a wrong answer: every truncation, and flag
    // bits no version writes.
    for n in 0..bytes.len() {
        assert!(
            decode_probes("api", base.t, &bytes[..n]).is_err(),
            "{n} bytes"
        );
    }
    let mut bad = encode_probe_block(&records[..1]);
    bad[3] |= 0x80;
    assert!(decode_probes("api", base.t, &bad).is_err());
}

#[test]
fn a_minute_of_healthy_results_takes_about_seven_bytes_a_result() {
    // A typical probe: every 10 s with a few ms of jitter, status 200, a latency
    // of a few ms measured in nanoseconds.
    let records: Vec<ProbeRecord> = (0..6)
        .map(|i| ProbeRecord {
            probe: "health-17".into(),
            t: 1_700_000_000_000 + i * 10_000 + (i * 7) % 5,
            success: true,
            duration_seconds: std::time::Duration::from_nanos(2_000_000 + i as u64 * 123_457)
                .as_secs_f64(),
            status: Some(200),
            reason: String::new(),
        })
        .collect();
    let v3 = encode_probe_block(&records);
    assert!(v3.len() <= 2 + 6 * 7, "{} bytes", v3.len());
    let back = decode_probes("health-17", records[0].t, &v3).expect("decodes");
    assert_eq!(back, records);
}

#[test]
fn buffered_results_become_blocks_once_the_oldest_is_a_minute_old() {
    let (_dir, store) = temp_store();
    for t in [0, 10_000, 20_000] {
        store.probes.append_probe(&probe("slow", t, true)).unwrap();
    }
    store
        .probes
        .append_probe(&probe("fresh", 50_000, true))
        .unwrap();
    assert_eq!(store.probes.write_probe_results(Some(59_999)).unwrap(), 0);
    assert!(store.probes.inner.files.logged_blocks().is_empty());
    assert_eq!(store.probes.write_probe_results(Some(60_000)).unwrap(), 4);
    let mut blocks = store.probes.inner.files.logged_blocks();
    blocks.sort();
    assert_eq!(
        blocks,
        [
            ("fresh".to_owned(), 50_000, 50_000),
            ("slow".to_owned(), 0, 20_000)
        ],
        "one block a probe"
    );
    // A written block and a buffered result read together, in order.
    store
        .probes
        .append_probe(&probe("slow", 30_000, false))
        .unwrap();
    let ts = |since, limit| -> Vec<i64> {
        store
            .probes
            .probe_history("slow", since, i64::MAX, limit)
            .unwrap()
            .iter()
            .map(|r| r.t)
            .collect()
    };
    assert_eq!(
        ts(5_000, 10),
        [10_000, 20_000, 30_000],
        "a block that began before since"
    );
    assert_eq!(ts(i64::MIN, 2), [20_000, 30_000]);
    // A clean stop writes everything.
    store.flush().unwrap();
    assert_eq!(store.probes.inner.files.logged_blocks().len(), 3);
}

#[test]
fn the_journal_holds_what_is_not_in_blocks_until_the_blocks_are_written() {
    let (_dir, store) = temp_store();
    store.probes.append_probe(&probe("a", 1_000, true)).unwrap();
    store
        .probes
        .append_probe(&probe("b", 1_500, false))
        .unwrap();
    assert_eq!(store.probes.write_probe_journal().unwrap(), 2);
    assert_eq!(
        store.probes.write_probe_journal().unwrap(),
        0,
        "nothing new"
    );
    store.probes.append_probe(&probe("a", 2_000, true)).unwrap();
    assert_eq!(store.probes.write_probe_journal().unwrap(), 1);
    // What a restart after a crash reads back: every journaled result.
    let mut journaled = store.probes.inner.files.journaled();
    journaled.sort_by_key(|r| r.t);
    assert_eq!(
        journaled,
        [
            probe("a", 1_000, true),
            probe("b", 1_500, false),
            probe("a", 2_000, true)
        ]
    );
    assert_eq!(
        store
            .probes
            .probe_history("a", 0, 10_000, 10)
            .unwrap()
            .len(),
        2
    );
    // Blocks written: the journal records before them are superseded.
    store.probes.write_probe_results(None).unwrap();
    assert!(store.probes.inner.files.journaled().is_empty());
    assert_eq!(store.probes.inner.files.logged_blocks().len(), 2);
    assert_eq!(
        store
            .probes
            .probe_history("a", 0, 10_000, 10)
            .unwrap()
            .len(),
        2
    );
    store.probes.append_probe(&probe("b", 3_000, true)).unwrap();
    store.probes.write_probe_journal().unwrap();
    assert_eq!(
        store.probes.inner.files.journaled(),
        [probe("b", 3_000, true)]
    );
}

/// The store directory as a crash would leave it: sled as last flushed, the files as
/// written (copied while the store is open: dropping it would write the buffer).
fn crash_copy(store: &Store, to: &std::path::Path) -> Store {
    crash_copy_with(store, to, |_| {})
}

#[test]
fn a_crash_loses_no_journaled_result_and_repeats_none() {
    let (dir, store) = temp_store();
    // A minute in blocks, then results only journaled, then one not even journaled.
    for t in [0, 10_000, 20_000] {
        store.probes.append_probe(&probe("api", t, true)).unwrap();
        store
            .probes
            .append_probe(&probe("db", t + 1, t != 10_000))
            .unwrap();
    }
    store.probes.write_probe_journal().unwrap();
    store.probes.write_probe_results(None).unwrap();
    for t in [30_000, 40_000] {
        store.probes.append_probe(&probe("api", t, true)).unwrap();
        store.probes.write_probe_journal().unwrap();
    }
    store
        .probes
        .append_probe(&probe("api", 50_000, false))
        .unwrap();
    let crashed = crash_copy(&store, &dir.path().join("crashed"));
    let ts = |s: &Store, name| -> Vec<i64> {
        s.probes
            .probe_history(name, i64::MIN, i64::MAX, 100)
            .unwrap()
            .iter()
            .map(|r| r.t)
            .collect()
    };
    assert_eq!(ts(&crashed, "api"), [0, 10_000, 20_000, 30_000, 40_000]);
    assert_eq!(ts(&crashed, "db"), [1, 10_001, 20_001]);
    assert_eq!(crashed.probes.inner.files.file_counts(), (1, 0));
    // A second open after the crash finds the sealed file alone: nothing twice.
    let path = crashed.path().to_owned();
    drop(crashed);
    let again = Store::open(&path).unwrap().store;
    assert_eq!(ts(&again, "api"), [0, 10_000, 20_000, 30_000, 40_000]);
    assert_eq!(again.skipped_records(), 0);
    drop(again);
    // The store that did not crash writes its last result on a clean stop.
    assert_eq!(ts(&store, "api").len(), 6);
}

#[test]
fn a_torn_log_tail_loses_only_the_torn_record() {
    let (dir, store) = temp_store();
    store.probes.append_probe(&probe("api", 0, true)).unwrap();
    store.probes.write_probe_results(None).unwrap();
    store
        .probes
        .append_probe(&probe("api", 10_000, true))
        .unwrap();
    store.probes.write_probe_journal().unwrap();
    store
        .probes
        .append_probe(&probe("api", 20_000, true))
        .unwrap();
    store.probes.write_probe_journal().unwrap();
    let log = store.probes.inner.files.log_file().unwrap();
    // The last journal record cut short, as a crash during its write leaves it.
    let crashed = crash_copy_with(&store, &dir.path().join("crashed"), |history| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(history.join(log.file_name().unwrap()))
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - 5).unwrap();
    });
    let ts: Vec<i64> = crashed
        .probes
        .probe_history("api", i64::MIN, i64::MAX, 100)
        .unwrap()
        .iter()
        .map(|r| r.t)
        .collect();
    assert_eq!(
        ts,
        [0, 10_000],
        "the torn record's result is lost, no other"
    );
    assert_eq!(crashed.skipped_records(), 1, "the damage is counted");
}

#[test]
fn a_failed_write_journals_everything_again_in_a_new_log() {
    let (dir, store) = temp_store();
    store
        .probes
        .append_probe(&probe("api", 1_000, true))
        .unwrap();
    store.probes.write_probe_journal().unwrap();
    store
        .probes
        .append_probe(&probe("api", 2_000, true))
        .unwrap();
    store
        .probes
        .inner
        .files
        .fail_next_append
        .store(true, std::sync::atomic::Ordering::Relaxed);
    store.probes.write_probe_journal().unwrap_err();
    assert_eq!(
        store.probes.inner.files.file_counts(),
        (0, 1),
        "the log is retired"
    );
    // The next journal record goes to a new log and holds both results.
    assert_eq!(store.probes.write_probe_journal().unwrap(), 2);
    assert_eq!(store.probes.inner.files.file_counts(), (0, 2));
    // A crash now: each result comes back once (the retired log's journal is not read).
    let crashed = crash_copy(&store, &dir.path().join("crashed"));
    let ts: Vec<i64> = crashed
        .probes
        .probe_history("api", i64::MIN, i64::MAX, 10)
        .unwrap()
        .iter()
        .map(|r| r.t)
        .collect();
    assert_eq!(ts, [1_000, 2_000]);
    // Without a crash, the blocks go to the new log and the retired one is sealed empty.
    assert_eq!(store.probes.write_probe_results(None).unwrap(), 2);
    assert_eq!(store.probes.inner.files.file_counts(), (0, 1));
    assert_eq!(
        store
            .probes
            .probe_history("api", 0, 10_000, 10)
            .unwrap()
            .len(),
        2
    );
}

/// [`crash_copy`], with `damage` applied to the copied history directory before the open.
fn crash_copy_with(
    store: &Store,
    to: &std::path::Path,
    damage: impl FnOnce(&std::path::Path),
) -> Store {
    store.shared.flush_durable("test").unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    };
    copy(store.path(), to);
    for sub in [files::DIR_NAME, "segments"] {
        if store.path().join(sub).is_dir() {
            copy(&store.path().join(sub), &to.join(sub));
        }
    }
    let history = to.join(files::DIR_NAME);
    damage(&history);
    let opened = Store::open(to).unwrap();
    assert!(opened.recovered_from_corruption.is_none());
    opened.store
}

#[test]
fn blocks_hold_at_most_64_results_within_five_minutes() {
    let (_dir, store) = temp_store();
    for i in 0..130 {
        store
            .probes
            .append_probe(&probe("fast", i * 1_000, true))
            .unwrap();
    }
    for t in [100_000, 200_000, 300_000, 400_000, 500_000] {
        store.probes.append_probe(&probe("rare", t, true)).unwrap();
    }
    store.probes.write_probe_results(None).unwrap();
    let starts = |name: &str| -> Vec<i64> {
        let mut ts: Vec<i64> = store
            .probes
            .inner
            .files
            .logged_blocks()
            .into_iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, first, _)| first)
            .collect();
        ts.sort_unstable();
        ts
    };
    assert_eq!(starts("fast"), [0, 64_000, 128_000]);
    assert_eq!(starts("rare"), [100_000, 500_000]);
    let all = store
        .probes
        .probe_history("fast", i64::MIN, i64::MAX, 1_000)
        .unwrap();
    assert_eq!(all.len(), 130);
    assert!(all.windows(2).all(|w| w[1].t == w[0].t + 1_000));
    let ts = |since, until| -> Vec<i64> {
        store
            .probes
            .probe_history("rare", since, until, 10)
            .unwrap()
            .iter()
            .map(|r| r.t)
            .collect()
    };
    assert_eq!(ts(450_000, 500_000), [500_000]);
    assert_eq!(ts(250_000, 350_000), [300_000]);
}

#[test]
fn results_that_could_not_be_written_wait_for_the_next_write() {
    let (_dir, store) = temp_store();
    store.probes.append_probe(&probe("api", 0, false)).unwrap();
    store.probes.write_probe_journal().unwrap();
    store.fail_writes(true);
    assert!(store.probes.write_probe_results(None).is_err());
    assert_eq!(
        store.probes.probe_history("api", 0, 10, 10).unwrap().len(),
        1
    );
    store.fail_writes(false);
    assert_eq!(store.probes.write_probe_results(None).unwrap(), 1);
    assert_eq!(
        store.probes.inner.files.logged_blocks().len(),
        1,
        "one block"
    );
    assert!(
        store.probes.inner.files.journaled().is_empty(),
        "no journal after it"
    );
    assert_eq!(
        store.probes.probe_history("api", 0, 10, 10).unwrap().len(),
        1
    );
}

#[test]
fn results_written_out_of_order_read_back_in_order() {
    let (_dir, store) = temp_store();
    for t in [300, -5, 100, 200] {
        store.probes.append_probe(&probe("p", t, true)).unwrap();
        store.probes.write_probe_results(None).unwrap();
    }
    store.probes.inner.files.roll();
    store.probes.append_probe(&probe("p", 250, true)).unwrap();
    let ts: Vec<i64> = store
        .probes
        .probe_history("p", i64::MIN, i64::MAX, 10)
        .unwrap()
        .iter()
        .map(|r| r.t)
        .collect();
    assert_eq!(ts, [-5, 100, 200, 250, 300]);
}

#[test]
fn overlong_names_are_refused() {
    let (_dir, store) = temp_store();
    let e = store
        .probes
        .append_probe(&probe(&"x".repeat(70_000), 1, true))
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidRecord { .. }));
}
