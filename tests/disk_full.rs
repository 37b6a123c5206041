//! A store whose disk fills up while the daemon runs: the write check fails, StoreWriteFailing
//! fires and `postflight_store_up` drops to 0, probes and the API go on from memory; once space
//! is back a restart brings a working store. And the store's segment files on a full disk: a
//! failed write leaves nothing behind and the next one starts a new segment. Uses a small tmpfs
//! (root, as CI runs); skips with a message where mounting is not allowed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, TestServer, metric, wait_until};
use postflight::series::Labels;
use postflight::store::{Store, StoreOptions};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` at `mnt`; `None` (after saying so) where mounting is not allowed.
fn mount_tmpfs(mnt: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir(mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(mnt)
        .status();
    if !ok.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipping: cannot mount a tmpfs here");
        return None;
    }
    Some(Mount(mnt.to_owned()))
}

/// Fills the file system holding `path` to the last byte.
fn fill(path: &Path) {
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .args(["bs=1M", "count=64"])
        .output();
}

#[test]
fn a_full_disk_fails_segment_writes_cleanly_and_they_resume_when_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    let Some(_mount) = mount_tmpfs(&mnt, "4m") else {
        return;
    };
    let path = mnt.join("store");
    // No periodic flush: sled keeps an I/O error sticky, and this test is about the segments.
    let options = StoreOptions {
        flush_every_ms: 600_000,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&path, &options).unwrap().store;
    let labels = Labels::new([("job", "api")]);
    let bytes = vec![7u8; 100_000];
    store
        .samples
        .put_chunk(&labels, 0, 100, 120, &bytes)
        .unwrap();
    let segments = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(path.join("segments"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = segments();
    assert_eq!(before.len(), 1);

    let filler = mnt.join("filler");
    fill(&filler);
    for t in [200, 300] {
        let e = store
            .samples
            .put_chunk(&labels, t - 99, t, 120, &bytes)
            .unwrap_err();
        assert!(e.is_io(), "{e:?}");
        assert!(
            format!("{e}").contains("segment"),
            "the error says which file: {e}"
        );
    }
    assert_eq!(
        segments(),
        before,
        "no file left behind by the failed writes"
    );

    std::fs::remove_file(&filler).unwrap();
    store
        .samples
        .put_chunk(&labels, 301, 400, 120, &bytes)
        .unwrap();
    assert_eq!(
        segments().len(),
        2,
        "the failed segment was abandoned, a new one started"
    );
    store.flush().unwrap();
    drop(store);
    let store = Store::open(&path).unwrap().store;
    let back: Vec<i64> = store
        .samples
        .chunks_since(i64::MIN)
        .map(|c| c.unwrap().max_t)
        .collect();
    assert_eq!(back, [100, 400]);
    assert_eq!(store.skipped_records(), 0);
}

#[test]
fn a_full_disk_raises_store_write_failing_and_the_daemon_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    let Some(_mount) = mount_tmpfs(&mnt, "16m") else {
        return;
    };
    let target = TestServer::start(|_| (200, "text/plain", "ok 1\n".to_string()));
    let cfg = format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
[storage]
path = "{}/data"
checkpoint_interval = "1s"
[global]
probe_interval = "1s"
[[probe]]
name = "svc"
url = "http://127.0.0.1:{}/health"
"#,
        mnt.display(),
        target.port
    );
    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    d.wait_ready();
    assert_eq!(
        metric(&d.get("/metrics").1, "postflight_store_up"),
        Some(1.0)
    );

    // Fill the disk.
    let filler = mnt.join("filler");
    fill(&filler);
    wait_until(40, "StoreWriteFailing", || {
        d.get("/api/v1/alerts").1.contains("StoreWriteFailing")
    });
    assert_eq!(
        metric(&d.get("/metrics").1, "postflight_store_up"),
        Some(0.0)
    );
    assert!(
        d.log_text().contains("store write check failed"),
        "a logged error"
    );
    // The checkpointer (every second here) fails too: the snapshot of open chunks cannot be
    // written.
    wait_until(10, "a failed checkpoint", || {
        metric(
            &d.get("/metrics").1,
            "postflight_store_write_failures_total{kind=\"chunks\"}",
        )
        .is_some_and(|n| n >= 1.0)
    });
    // Probes carry on from memory.
    let before = d.get("/api/v1/targets").1;
    std::thread::sleep(Duration::from_millis(2500));
    let after = d.get("/api/v1/targets").1;
    assert_ne!(before, after, "probes still run: {after}");
    assert!(after.contains("\"health\":\"up\""), "{after}");
    // Failed history writes (a journal record every half second) leave no file behind each.
    let history: Vec<String> = std::fs::read_dir(mnt.join("data/history"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(history.len() <= 2, "{history:?}");

    // Space is back. sled 0.34 keeps an I/O error sticky, so the running store stays failed
    // (and the alert with it) until a restart; a clean stop still exits 0, and the restarted
    // daemon has a working store and no alert.
    std::fs::remove_file(&filler).unwrap();
    d.signal("TERM");
    assert_eq!(
        d.wait_exit(Duration::from_secs(15)).code(),
        Some(0),
        "{}",
        d.log_text()
    );
    let port = d.port;
    let mut d = Daemon::start_in(dir.path(), &cfg.replace("{port}", &port.to_string()), &[]);
    d.port = port;
    d.wait_ready();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        metric(&d.get("/metrics").1, "postflight_store_up"),
        Some(1.0)
    );
    assert!(!d.get("/api/v1/alerts").1.contains("StoreWriteFailing"));
    let (_, hist) = d.get("/api/v1/history?probe=svc");
    assert!(
        hist.contains("\"success\":true"),
        "history from before the disk filled is there: {hist}"
    );
}
