//! What an operator installs: the systemd unit (verified and hardened), the Dockerfile, and a
//! /metrics page that Prometheus' own linter accepts.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/postflight.service");

#[test]
fn systemd_unit_exposure_is_at_most_2() {
    if !common::require("systemd-analyze") {
        return;
    }
    let level = common::exposure(Path::new(UNIT));
    assert!(level <= 2.0, "exposure {level} > 2.0");
}

#[test]
fn systemd_unit_verifies() {
    if !common::require("systemd-analyze") {
        return;
    }
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "Restart=on-failure",
        "StateDirectory=postflight",
        "ConfigurationDirectory=postflight",
        "DynamicUser=yes",
        // [[log]] sources read the journal and /var/log.
        "SupplementaryGroups=systemd-journal adm",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle}");
    }
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postflight.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/postflight",
            env!("CARGO_BIN_EXE_postflight"),
        ),
    )
    .unwrap();
    // --man=no: Documentation= names the man page, which exists only once the package is
    // installed (tests/deb_package.rs verifies the installed unit with it).
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dockerfile_is_multistage_nonroot_with_healthcheck() {
    let d = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let froms: Vec<&str> = d.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(
        froms.len() >= 2 && froms[0].contains(" AS builder"),
        "{froms:?}"
    );
    assert!(d.contains("COPY --from=builder"));
    let user = d
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(
        !user.contains("root") && !user.trim_end().ends_with(" 0"),
        "{user}"
    );
    assert!(d.contains("HEALTHCHECK") && d.contains("/healthz"));
    assert!(d.contains("VOLUME") && d.contains("/var/lib/postflight"));
    assert!(d.contains("/etc/postflight"));
}

#[test]
fn metrics_page_passes_promtool_check_metrics() {
    if !common::require("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/data"
[global]
probe_interval = "1s"
scrape_interval = "1s"
evaluation_interval = "1s"
[[job]]
name = "self"
targets = ["127.0.0.1:{port}"]
[[probe]]
name = "self-health"
url = "http://127.0.0.1:{port}/healthz"
job = "self"
[[probe]]
name = "refused"
url = "tcp://127.0.0.1:1"
failure_threshold = 1
[[rule]]
alert = "AlwaysFiring"
expr = 'vector(1)'
labels = { severity = "warning" }
"#;
    let mut d = common::Daemon::start_in(dir.path(), cfg, &[]);
    d.wait_ready();
    std::thread::sleep(std::time::Duration::from_millis(3000));
    let page = d.get("/metrics").1;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\npage:\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(page.contains("postflight_build_info{"));
    assert!(page.contains("process_resident_memory_bytes "));
}
