//! `postflight import openmetrics FILE` with the real binary: counts and exit codes, all or
//! nothing, samples in the file's any order landing in time order, the daemon reading them.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use common::Daemon;
use postflight::series::chunk::Chunk;
use postflight::store::Store;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/data"
"#;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("postflight.toml");
    let text = CONFIG
        .replace("{port}", &common::free_port().to_string())
        .replace("{dir}", &dir.display().to_string());
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn import(file: &Path, cfg: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postflight"))
        .args(["import", "openmetrics"])
        .arg(file)
        .arg("-c")
        .arg(cfg)
        .output()
        .unwrap()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Two hours of two series at 15 s, up to `end` (seconds): a counter whose samples come
/// newest first, and a gauge written in two interleaved halves. The value of each sample
/// tells its time (`t - end`), so a sample read back in the wrong place shows.
fn history(end: i64) -> (String, usize) {
    let times: Vec<i64> = (0..480).map(|k| end - 15 * k).collect();
    let mut f = String::new();
    f.push_str("# HELP req Requests.\n# TYPE req counter\n");
    for t in &times {
        writeln!(f, "req_total{{path=\"/a\"}} {} {t}", 7200 + t - end).unwrap();
    }
    f.push_str("# TYPE temp_celsius gauge\n# UNIT temp_celsius celsius\n");
    let mut odd: Vec<i64> = times.iter().copied().filter(|t| t % 2 != 0).collect();
    let even: Vec<i64> = times.iter().copied().filter(|t| t % 2 == 0).collect();
    odd.reverse();
    for t in odd.iter().chain(&even) {
        let v = (t - end) as f64 + 0.5;
        writeln!(f, "temp_celsius{{room=\"x\"}} {v} {t}.000").unwrap();
    }
    f.push_str("# EOF\n");
    (f, 2 * times.len())
}

/// Every stored sample: (series, time in ms, value), in the store's order.
fn stored(data: &Path) -> Vec<(String, i64, f64)> {
    let store = Store::open(data).unwrap().store;
    let mut out = Vec::new();
    for c in store.samples.chunks_since(i64::MIN) {
        let c = c.unwrap();
        for s in Chunk::from_bytes(&c.bytes).unwrap().iter() {
            out.push((c.labels.to_string(), s.t, s.v));
        }
    }
    out
}

#[test]
fn a_file_in_any_order_is_imported_in_time_order_and_read_by_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let end = now_s() - 60;
    let (text, samples) = history(end);
    let file = dir.path().join("history.om");
    std::fs::write(&file, &text).unwrap();

    let out = import(&file, &cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("imported 2 series, {samples} samples")),
        "{stdout}"
    );
    // Off a terminal, no progress line.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let back = stored(&dir.path().join("data"));
    assert_eq!(back.len(), samples);
    for name in ["req_total", "temp_celsius"] {
        let series: Vec<&(String, i64, f64)> = back.iter().filter(|s| s.0.contains(name)).collect();
        assert_eq!(series.len(), samples / 2, "{name}");
        assert!(
            series.windows(2).all(|w| w[0].1 < w[1].1),
            "{name} out of order"
        );
        for (_, t, v) in series {
            let offset = (t / 1000 - end) as f64;
            let want = if name == "req_total" {
                7200.0 + offset
            } else {
                offset + 0.5
            };
            assert_eq!(*v, want, "{name} at {t}");
        }
    }

    // Importing again adds nothing: the stored samples win.
    let again = import(&file, &cfg);
    assert_eq!(again.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains(&format!(
            "imported 0 series, 0 samples from {}; skipped {samples} samples already stored",
            file.display()
        )),
        "{stdout}"
    );
    assert_eq!(stored(&dir.path().join("data")).len(), samples);

    // The daemon started on the store reads them.
    let mut d = Daemon::start_in(dir.path(), CONFIG, &[]);
    d.wait_ready();
    let t = end - 300;
    let (code, body) = d.get(&format!("/api/v1/query?query=req_total&time={t}"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("\"{}\"", 7200 - 300)), "{body}");
    let (code, body) = d.get(&format!("/api/v1/query?query=temp_celsius&time={t}"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"-299.5\""), "{body}");
}

#[test]
fn a_malformed_file_is_exit_2_with_its_line_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let end = now_s() - 60;
    let (good, samples) = history(end);
    let file = dir.path().join("good.om");
    std::fs::write(&file, &good).unwrap();
    assert_eq!(import(&file, &cfg).status.code(), Some(0));
    let before = stored(&dir.path().join("data"));
    assert_eq!(before.len(), samples);

    // New series before the error, an error on the second last line.
    let mut bad = String::from("# TYPE other gauge\n");
    for k in 0..100 {
        writeln!(bad, "other{{k=\"{k}\"}} 1 {}", end - k).unwrap();
    }
    bad.push_str("other{k=\"x\" 1 5\n# EOF\n");
    let bad_file = dir.path().join("bad.om");
    std::fs::write(&bad_file, &bad).unwrap();
    let out = import(&bad_file, &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:102: ", bad_file.display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // A sample without a timestamp, and a file without # EOF.
    let no_ts = dir.path().join("no_ts.om");
    std::fs::write(&no_ts, "# TYPE a gauge\na 1 100\na 2\n# EOF\n").unwrap();
    let out = import(&no_ts, &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3: ", no_ts.display())),
        "{stderr}"
    );
    let no_eof = dir.path().join("no_eof.om");
    std::fs::write(&no_eof, "a 1 100\na 2 115\n").unwrap();
    let out = import(&no_eof, &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("# EOF"), "{stderr}");

    assert_eq!(stored(&dir.path().join("data")), before);
}

#[test]
fn a_store_held_by_a_running_daemon_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), CONFIG, &[]);
    d.wait_ready();
    let file = dir.path().join("h.om");
    std::fs::write(&file, "a 1 100\n# EOF\n").unwrap();
    let out = import(&file, &dir.path().join("postflight.toml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by a running postflight"),
        "{stderr}"
    );
    d.signal("TERM");
    d.wait_exit(std::time::Duration::from_secs(20));
}
