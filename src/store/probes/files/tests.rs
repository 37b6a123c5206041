use super::super::super::Store;
use super::super::super::test_util::*;
use super::*;

fn result(name: &str, t: i64) -> ProbeRecord {
    ProbeRecord {
        probe: name.into(),
        t,
        success: t % 3 != 0,
        duration_seconds: 0.002,
        status: Some(if t % 3 != 0 { 200 } else { 503 }),
        reason: if t % 3 != 0 {
            String::new()
        } else {
            "status 503, expected 200".into()
        },
    }
}

/// `minutes` of 3 probes every 10 s, checkpointed as the daemon does.
fn run(store: &Store, from_min: i64, minutes: i64) {
    for s in (from_min * 60..(from_min + minutes) * 60).step_by(10) {
        let t = s * 1_000;
        for name in ["api", "db", "web"] {
            store.probes.append_probe(&result(name, t)).unwrap();
        }
        store.probes.write_probe_journal().unwrap();
        store.probes.write_probe_results(Some(t)).unwrap();
    }
}

fn times(store: &Store, name: &str, since: i64, until: i64, limit: usize) -> Vec<i64> {
    store
        .probes
        .probe_history(name, since, until, limit)
        .unwrap()
        .iter()
        .map(|r| r.t)
        .collect()
}

#[test]
fn a_log_is_sealed_once_it_spans_an_hour_and_reads_go_on_across_files() {
    let (_dir, store) = temp_store();
    run(&store, 0, 150);
    // Sealed at the first blocks record an hour past the log's first result: two sealed
    // files, the third log current.
    assert_eq!(store.probes.inner.files.file_counts(), (2, 1));
    let paths = store.probes.inner.files.sealed_paths();
    let regions = sealed_probes(&paths[0]).unwrap();
    assert_eq!(regions.len(), 3, "one region a probe");
    let (first, last) = regions["api"];
    assert_eq!(first, 0);
    assert!((3_600_000..3_700_000).contains(&last), "{last}");
    // Every result once, in order, across sealed files, the log and the buffer.
    let all = times(&store, "db", i64::MIN, i64::MAX, usize::MAX);
    assert_eq!(all.len(), 150 * 6);
    assert!(all.windows(2).all(|w| w[1] - w[0] == 10_000));
    // A window across a seal, and the newest few.
    let w = times(&store, "api", 3_590_000, 3_720_000, 100);
    assert_eq!(w, (359..=372).map(|s| s * 10_000).collect::<Vec<_>>());
    let newest = times(&store, "web", i64::MIN, i64::MAX, 3);
    assert_eq!(newest, [8_970_000, 8_980_000, 8_990_000]);
    let oldest = times(&store, "web", i64::MIN, 20_000, 100);
    assert_eq!(oldest, [0, 10_000, 20_000]);
    // The same after a reopen (which seals the log).
    let store = reopen(store);
    assert_eq!(store.probes.inner.files.file_counts(), (3, 0));
    assert_eq!(times(&store, "db", i64::MIN, i64::MAX, usize::MAX), all);
    assert_eq!(store.skipped_records(), 0);
}

#[test]
fn a_short_retention_seals_sooner_and_prune_deletes_whole_files() {
    let (_dir, store) = temp_store();
    store.set_retention(std::time::Duration::from_secs(80 * 60));
    run(&store, 0, 60);
    // An eighth of 80 minutes: a file per 10 minutes.
    let (sealed, _) = store.probes.inner.files.file_counts();
    assert_eq!(sealed, 5);
    let stats = store.prune(30 * 60_000).unwrap();
    assert_eq!(stats.history_files, 2, "{stats:?}");
    assert_eq!(stats.probes, 6, "three probes' regions in each");
    let ts = times(&store, "api", i64::MIN, i64::MAX, usize::MAX);
    // The third file's results from before the cutoff stay with it.
    assert!(ts[0] < 30 * 60_000 && ts[0] >= 20 * 60_000, "{}", ts[0]);
    assert_eq!(*ts.last().unwrap(), 3_590_000);
}

#[test]
fn a_damaged_region_loses_only_that_probe_in_that_file() {
    let (_dir, store) = temp_store();
    for from in [0, 10] {
        run(&store, from, 10);
        store.probes.write_probe_results(None).unwrap();
        store.probes.inner.files.roll();
    }
    let paths = store.probes.inner.files.sealed_paths();
    // Flip a byte in the first file's first region (probe "api": names sort).
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[0])
        .unwrap();
    f.write_all_at(&[0xff], HEADER_LEN + 3).unwrap();
    drop(f);
    let api = times(&store, "api", i64::MIN, i64::MAX, usize::MAX);
    assert_eq!(
        api.first(),
        Some(&600_000),
        "the first file's results are lost"
    );
    assert_eq!(api.len(), 60);
    assert_eq!(store.skipped_records(), 1);
    assert_eq!(
        times(&store, "db", i64::MIN, i64::MAX, usize::MAX).len(),
        120
    );
    // A file cut short (its footer gone) is left in place, and counted, at open.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[1])
        .unwrap();
    f.set_len(100).unwrap();
    drop(f);
    let store = reopen(store);
    assert_eq!(store.skipped_records(), 1);
    assert!(paths[1].exists());
    assert_eq!(
        times(&store, "db", i64::MIN, i64::MAX, usize::MAX).len(),
        60
    );
}

#[test]
fn damaged_files_of_any_length_are_errors_never_panics() {
    let (dir, store) = temp_store();
    run(&store, 0, 3);
    store.probes.write_probe_results(None).unwrap();
    store.probes.append_probe(&result("api", 999_000)).unwrap();
    store.probes.write_probe_journal().unwrap();
    let log = std::fs::read(store.probes.inner.files.log_file().unwrap()).unwrap();
    store.probes.inner.files.roll();
    let sealed = std::fs::read(&store.probes.inner.files.sealed_paths()[0]).unwrap();
    let path = dir.path().join("damaged");
    // Every truncation of a log: a prefix of its records, never a panic.
    let mut last = 0;
    for n in 0..=log.len() {
        std::fs::write(&path, &log[..n]).unwrap();
        let scan = scan_log(&File::open(&path).unwrap(), true).unwrap();
        assert!(
            scan.blocks.len() >= last,
            "{n} bytes: records of a prefix only grow"
        );
        last = scan.blocks.len();
        if n == log.len() {
            assert!(scan.damage.is_none());
            assert_eq!(scan.blocks.len(), 3);
            assert_eq!(scan.journaled, [result("api", 999_000)]);
        }
    }
    // Every truncation, and every single flipped byte, of a sealed file: an error or
    // (where the damage misses what is read) the right answer.
    let whole = {
        std::fs::write(&path, &sealed).unwrap();
        read_region(&path, "db").unwrap().unwrap()
    };
    for n in 0..sealed.len() {
        std::fs::write(&path, &sealed[..n]).unwrap();
        assert!(read_footer(&path).is_err(), "{n} bytes");
    }
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x41;
        std::fs::write(&path, &bad).unwrap();
        if let Ok(Some(region)) = read_region(&path, "db") {
            assert_eq!(region, whole, "byte {i} changed what was read");
        }
    }
}
