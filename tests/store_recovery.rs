//! The store against real sled directories: what survives a restart and a crash, what happens
//! to a damaged store, and how unusable paths are reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use postflight::series::Labels;
use postflight::store::{
    AlertTransition, Kind, OpenChunk, ProbeRecord, Store, StoreError, StoreOptions,
};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Notification {
    receiver: String,
    body: String,
}

fn probe(t: i64) -> ProbeRecord {
    ProbeRecord {
        probe: "api-health".into(),
        t,
        success: t % 2 == 0,
        duration_seconds: 0.042,
        status: Some(if t % 2 == 0 { 200 } else { 503 }),
        reason: if t % 2 == 0 {
            String::new()
        } else {
            "status 503, expected 200".into()
        },
    }
}

fn series(i: usize) -> Labels {
    Labels::new([
        ("__name__", "http_requests_total".to_string()),
        ("job", "api".into()),
        ("i", i.to_string()),
    ])
}

fn transition(t: i64) -> AlertTransition {
    AlertTransition {
        t,
        alertname: "HighErrorRate".into(),
        labels: Labels::new([("alertname", "HighErrorRate"), ("job", "api")]),
        from: "pending".into(),
        to: "firing".into(),
        value: 0.12,
    }
}

/// Writes one of everything, bulk first and durable last (as a running daemon would).
fn write_everything(store: &Store) -> u64 {
    for i in 0..200 {
        store
            .samples
            .put_chunk(&series(i), 0, 1_190_000, 120, &[i as u8; 168])
            .unwrap();
    }
    for t in 0..50 {
        store.probes.append_probe(&probe(t * 1_000)).unwrap();
    }
    // The daemon's half-second journal tick: the results are in the store's journal, not yet
    // in their block; a crash must not lose them.
    store.probes.write_probe_journal().unwrap();
    store
        .state
        .append_alert_transition_durable(&transition(5_000))
        .unwrap();
    store
        .state
        .put_durable(Kind::Silences, "s1", &"job=\"api\"")
        .unwrap();
    store
        .state
        .put_durable(Kind::Nlog, "route/group", &1_700_000_000_000i64)
        .unwrap();
    store
        .state
        .put_durable(Kind::Deployments, "d1", &"v2.0.1")
        .unwrap();
    store
        .state
        .put_durable(Kind::AlertState, "HighErrorRate{job=\"api\"}", &"firing")
        .unwrap();
    store
        .state
        .meta_put_durable("head.last_cut", b"\x01\x02")
        .unwrap();
    let id = store.state.outbox_next_id().unwrap();
    store
        .state
        .outbox_put_durable(
            id,
            &Notification {
                receiver: "pager".into(),
                body: "HighErrorRate firing".into(),
            },
        )
        .unwrap();
    id
}

fn assert_everything(store: &Store, outbox_id: u64) {
    assert_eq!(store.samples.series_count(), 200);
    let chunks: Vec<_> = store.samples.chunks_since(0).map(Result::unwrap).collect();
    assert_eq!(chunks.len(), 200);
    assert!(
        chunks
            .iter()
            .all(|c| c.count == 120 && c.bytes.len() == 168 && c.max_t == 1_190_000)
    );
    let h = store
        .probes
        .probe_history("api-health", 0, i64::MAX, usize::MAX)
        .unwrap();
    assert_eq!(h.len(), 50);
    assert_eq!(h[49], probe(49_000));
    assert_eq!(
        store
            .state
            .alert_history("HighErrorRate", 0, i64::MAX, 10)
            .unwrap(),
        vec![transition(5_000)]
    );
    assert_durable(store, outbox_id);
}

fn assert_durable(store: &Store, outbox_id: u64) {
    assert_eq!(
        store
            .state
            .alert_history("HighErrorRate", 0, i64::MAX, 10)
            .unwrap(),
        vec![transition(5_000)]
    );
    assert_eq!(
        store
            .state
            .get::<String>(Kind::Silences, "s1")
            .unwrap()
            .as_deref(),
        Some("job=\"api\"")
    );
    assert_eq!(
        store.state.get::<i64>(Kind::Nlog, "route/group").unwrap(),
        Some(1_700_000_000_000)
    );
    assert_eq!(
        store
            .state
            .get::<String>(Kind::Deployments, "d1")
            .unwrap()
            .as_deref(),
        Some("v2.0.1")
    );
    assert_eq!(
        store.state.scan::<String>(Kind::AlertState).unwrap().len(),
        1
    );
    assert_eq!(
        store.state.meta_get("head.last_cut").unwrap(),
        Some(vec![1, 2])
    );
    let outbox: Vec<(u64, Notification)> = store.state.outbox_all().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].0, outbox_id);
    assert_eq!(outbox[0].1.receiver, "pager");
    assert_eq!(store.skipped_records(), 0);
}

fn assert_empty(store: &Store) {
    assert_eq!(store.samples.series_count(), 0);
    assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
    assert!(
        store
            .probes
            .probe_history("api-health", i64::MIN, i64::MAX, usize::MAX)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .state
            .scan::<String>(Kind::Silences)
            .unwrap()
            .is_empty()
    );
    assert!(store.state.outbox_all::<Notification>().unwrap().is_empty());
}

#[test]
fn everything_written_is_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let id = {
        let opened = Store::open(&path).unwrap();
        assert!(opened.recovered_from_corruption.is_none());
        let id = write_everything(&opened.store);
        opened.store.flush().unwrap();
        id
    };
    let opened = Store::open(&path).unwrap();
    assert!(opened.recovered_from_corruption.is_none());
    assert_everything(&opened.store, id);
    // New ids stay ahead of the ones handed out before the restart.
    assert!(opened.store.state.outbox_next_id().unwrap() > id);
}

/// Env var telling [`crash_child`] where to write before it aborts.
const CRASH_DIR: &str = "POSTFLIGHT_TEST_CRASH_DIR";

/// Not a test on its own: [`durable_writes_survive_a_crash`] runs this in a child process,
/// which writes and then dies without any chance to flush.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    // A periodic flush far in the future: only the durable writes' own flushes can save data.
    let options = StoreOptions {
        flush_every_ms: 600_000,
        ..StoreOptions::default()
    };
    let store = Store::open_with(Path::new(&dir), &options).unwrap().store;
    let id = write_everything(&store);
    println!("outbox-id={id}");
    std::process::abort();
}

#[test]
fn durable_writes_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the child must die, not exit: {stdout}"
    );
    // The test harness prints "test crash_child ... " before the child's own output.
    let id: u64 = stdout
        .split_once("outbox-id=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!(
                "child wrote nothing: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .parse()
        .unwrap();
    let opened = Store::open(&path).unwrap();
    assert!(opened.recovered_from_corruption.is_none());
    // A durable write flushes everything before it, so here the bulk records survive too.
    assert_everything(&opened.store, id);
}

/// Env var telling [`snapshot_crash_child`] where to write before it aborts.
const SNAPSHOT_CRASH_DIR: &str = "POSTFLIGHT_TEST_SNAPSHOT_CRASH_DIR";

/// Not a test on its own: [`open_chunks_survive_a_crash_with_their_series`] runs this in a
/// child process, which stores chunks (bulk: their index is not flushed), snapshots open chunks
/// that name those series by fingerprint, and dies, as a daemon killed right after a
/// checkpoint.
#[test]
fn snapshot_crash_child() {
    let Some(dir) = std::env::var_os(SNAPSHOT_CRASH_DIR) else {
        return;
    };
    let options = StoreOptions {
        flush_every_ms: 600_000,
        ..StoreOptions::default()
    };
    let store = Store::open_with(Path::new(&dir), &options).unwrap().store;
    let labels: Vec<Labels> = (0..50).map(series).collect();
    for l in &labels {
        store
            .samples
            .put_chunk(l, 0, 1_190_000, 120, &[7; 100])
            .unwrap();
    }
    store.flush().unwrap();
    // Chunks of series already indexed: only block index entries.
    for l in &labels {
        store
            .samples
            .put_chunk(l, 1_200_000, 2_390_000, 120, &[9; 100])
            .unwrap();
    }
    let open: Vec<OpenChunk<'_>> = labels
        .iter()
        .map(|l| OpenChunk {
            labels: l,
            fingerprint: l.fingerprint(),
            indexed: true,
            bytes: &[8; 20],
        })
        .collect();
    store.samples.put_open_chunks(0, &open).unwrap();
    println!("snapshot-written");
    std::process::abort();
}

#[test]
fn open_chunks_survive_a_crash_with_their_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "snapshot_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SNAPSHOT_CRASH_DIR, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child must die: {stdout}");
    assert!(
        stdout.contains("snapshot-written"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened = Store::open(&path).unwrap();
    assert!(opened.recovered_from_corruption.is_none());
    let store = opened.store;
    // The snapshot is durable when put_open_chunks returns, and so is every series it names.
    let open = store.samples.open_chunks().unwrap();
    assert_eq!(open.len(), 50);
    assert!(
        open.iter()
            .all(|(l, b)| l.get("job") == Some("api") && b == &[8; 20])
    );
    // The blocks were fsynced before their index entries were written, and the snapshot's
    // flush made those durable too: the samples the snapshot no longer holds are in chunks.
    assert_eq!(store.samples.chunks_since(0).count(), 100);
    assert_eq!(store.samples.chunks_since(2_390_000).count(), 50);
    assert_eq!(store.skipped_records(), 0);
}

/// Fills a store, damages it with `damage`, reopens: the damaged store must be moved aside and
/// a usable empty store opened in its place.
fn assert_recovers_from(name: &str, damage: impl Fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = Store::open(&path).unwrap().store;
        write_everything(&store);
        store.flush().unwrap();
    }
    damage(&path);
    let opened = Store::open(&path).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let moved: PathBuf = opened
        .recovered_from_corruption
        .clone()
        .unwrap_or_else(|| panic!("{name}: not detected"));
    let moved_name = moved.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        moved_name.starts_with("store.corrupt-"),
        "{name}: {moved_name}"
    );
    assert!(
        moved_name["store.corrupt-".len()..].parse::<u64>().is_ok(),
        "{name}: {moved_name}"
    );
    assert_eq!(moved.parent(), Some(dir.path()));
    assert!(
        moved.join("db").exists(),
        "{name}: the damaged files are kept for inspection"
    );
    let moved_segments = std::fs::read_dir(moved.join("segments"))
        .unwrap_or_else(|e| panic!("{name}: segments not moved: {e}"))
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert_eq!(
        moved_segments, 1,
        "{name}: the segment files move with the rest"
    );
    assert_empty(&opened.store);
    // The fresh store works and is not mistaken for a corrupt one on the next start.
    opened
        .store
        .state
        .put_durable(Kind::Silences, "new", &"x")
        .unwrap();
    drop(opened);
    let again = Store::open(&path).unwrap();
    assert!(again.recovered_from_corruption.is_none(), "{name}");
    assert_eq!(
        again
            .store
            .state
            .scan::<String>(Kind::Silences)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn overwritten_middle_of_the_log_is_detected() {
    // sled would silently drop everything after the damaged block; the witness notices.
    assert_recovers_from("overwritten middle", |p| {
        let db = p.join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid..mid + 4096].fill(0xab);
        std::fs::write(&db, bytes).unwrap();
    });
}

#[test]
fn truncated_conf_is_detected() {
    assert_recovers_from("truncated conf", |p| {
        let conf = p.join("conf");
        let bytes = std::fs::read(&conf).unwrap();
        std::fs::write(&conf, &bytes[..bytes.len() / 2]).unwrap();
    });
}

#[test]
fn garbage_db_is_detected() {
    assert_recovers_from("garbage db", |p| {
        std::fs::write(p.join("db"), vec![0x5a; 100_000]).unwrap()
    });
    assert_recovers_from("empty db", |p| std::fs::write(p.join("db"), b"").unwrap());
    for (keep, of) in [(1, 1000), (1, 100), (1, 2), (9, 10)] {
        assert_recovers_from(&format!("db cut to {keep}/{of}"), |p| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(p.join("db"))
                .unwrap();
            let len = f.metadata().unwrap().len();
            // Cuts at several depths, from just past the file header to only the tail.
            f.set_len(len * keep / of).unwrap();
        });
    }
}

#[test]
fn an_empty_conf_is_rewritten_and_the_data_kept() {
    // sled treats a conf of 8 bytes or less as missing and writes it again: nothing is lost,
    // so nothing is moved aside.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let id = {
        let store = Store::open(&path).unwrap().store;
        let id = write_everything(&store);
        store.flush().unwrap();
        id
    };
    std::fs::write(path.join("conf"), b"").unwrap();
    let opened = Store::open(&path).unwrap();
    assert!(opened.recovered_from_corruption.is_none());
    assert_everything(&opened.store, id);
}

#[test]
fn a_store_in_use_is_an_error_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let _first = Store::open(&path).unwrap();
    let e = Store::open(&path).unwrap_err();
    assert!(matches!(e, StoreError::Io { .. }), "{e:?}");
    assert!(path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing was moved aside"
    );
}

#[test]
fn unusable_paths_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "not a store").unwrap();

    let e = Store::open(&file).unwrap_err();
    assert!(matches!(e, StoreError::NotADirectory { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "store path {} exists and is not a directory",
            file.display()
        )
    );

    // Tests run as root, so chmod cannot make a directory unwritable; a path under a regular
    // file fails for everyone.
    let under = file.join("db");
    let e = Store::open(&under).unwrap_err();
    assert!(matches!(e, StoreError::Directory { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&*under.to_string_lossy()) && !msg.contains('\n'),
        "{msg}"
    );
    let cause = std::error::Error::source(&e).unwrap().to_string();
    assert!(cause.contains("Not a directory"), "{cause}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a store");
}

#[test]
fn injected_write_failures_surface_as_io_errors_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap().store;
    store.fail_writes(true);
    for e in [
        store.probes.append_probe(&probe(1)).unwrap_err(),
        store
            .samples
            .put_chunk(&series(1), 0, 1, 1, &[])
            .unwrap_err(),
        store
            .state
            .append_alert_transition_durable(&transition(1))
            .unwrap_err(),
        store.state.outbox_put_durable(1, &"x").unwrap_err(),
        store.flush().unwrap_err(),
    ] {
        assert!(e.is_io(), "{e:?}");
    }
    store.fail_writes(false);
    store.probes.append_probe(&probe(1)).unwrap();
    assert_eq!(
        store
            .probes
            .probe_history("api-health", 0, 10, 10)
            .unwrap()
            .len(),
        1
    );
}
