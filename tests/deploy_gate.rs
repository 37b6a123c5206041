//! Deployments end to end: the real daemon, `postflight deploy --wait` as a process, and a
//! webhook receiver on loopback that gets `DeploymentStarted` and `DeploymentVerdict` in the
//! version 4 payload.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::{Daemon, http};

/// Three gates over expressions that need no scraped data: one that holds, one that fails,
/// one with no data at all. Short watches so the test takes seconds.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/data"

[[receiver]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{hook}/verdicts"

[[gate]]
job = "good"
watch = "3s"
warmup = "0s"
interval = "1s"
baseline = "10s"
notify = ["hook"]
[[gate.check]]
name = "constant"
expr = 'vector(0.5)'
max = 1

[[gate]]
job = "bad"
watch = "30s"
warmup = "0s"
interval = "1s"
consecutive_failures = 2
notify = ["hook"]
[[gate.check]]
name = "error-rate"
expr = 'vector(2)'
max = 1

[[gate]]
job = "slow"
watch = "60s"
warmup = "0s"
interval = "1s"
[[gate.check]]
name = "constant"
expr = 'vector(0.5)'
max = 1

[[gate]]
job = "blind"
watch = "3s"
warmup = "0s"
interval = "1s"
[[gate.check]]
name = "latency"
expr = 'sum(nothing_scraped)'
max_increase = "10%"
"#;

/// A webhook receiver answering 200 to every POST and passing each body on.
fn receiver() -> (u16, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                let _ = tx.send(v);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, rx)
}

fn deploy(port: u16, job: &str, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_postflight"))
        .args(["deploy", "--job", job, "--version", "v2", "--server"])
        .arg(format!("http://127.0.0.1:{port}"))
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn deploy_wait_exits_with_the_verdict_and_the_webhook_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, verdicts) = receiver();
    let mut d = Daemon::start_in(
        dir.path(),
        &CONFIG.replace("{hook}", &hook.to_string()),
        &[],
    );
    d.wait_ready();

    let good = deploy(d.port, "good", &["--wait", "--commit", "abc123"]);
    let bad = deploy(d.port, "bad", &["--wait"]);
    let blind = deploy(d.port, "blind", &["--wait"]);

    let (code, out) = finish(good);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("constant"),
        "each evaluation is printed: {out}"
    );
    // Not a terminal: one plain line per evaluation (a poll may see two at once), no progress
    // line rewritten in place.
    assert!(!out.contains('\r') && !out.contains('\x1b'), "{out:?}");
    let evaluations: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        !evaluations.is_empty() && evaluations.len() <= 3,
        "watch 3s at 1s: {out}"
    );
    assert!(evaluations.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert!(
        out.lines()
            .filter(|l| l.starts_with('#'))
            .all(|l| l.contains("/3s] constant pass 0.5")),
        "elapsed of the watch and the check's state on each line: {out}"
    );
    assert!(out.contains("verdict: pass"), "{out}");
    let (code, out) = finish(bad);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("verdict: fail (check error-rate failed 2 evaluations in a row"),
        "{out}"
    );
    let (code, out) = finish(blind);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("the expression returned no series"),
        "the check's reason is printed: {out}"
    );
    assert!(
        out.contains("verdict: inconclusive (no data in more than half"),
        "{out}"
    );

    // The two gates with receivers announced their deployments and notified their verdicts as
    // webhook v4 payloads.
    let (mut got, mut started) = (Vec::new(), Vec::new());
    while got.len() < 2 || started.len() < 2 {
        let v = verdicts
            .recv_timeout(Duration::from_secs(15))
            .expect("a deployment webhook");
        match v["alerts"][0]["labels"]["alertname"].as_str() {
            Some("DeploymentStarted") => started.push(v),
            _ => got.push(v),
        }
    }
    let good_started = started
        .iter()
        .find(|v| v["alerts"][0]["labels"]["job"] == "good")
        .expect("good announced");
    let a = &good_started["alerts"][0];
    assert_eq!(a["labels"]["version"], "v2");
    assert_eq!(a["annotations"]["commit"], "abc123");
    assert_eq!(a["annotations"]["watch"], "3s");
    assert_eq!(a["annotations"]["baseline"], "10s");
    assert_eq!(
        a["annotations"]["summary"],
        "v2 of good deployed, watching for 3s"
    );
    got.sort_by_key(|v| {
        v["alerts"][0]["labels"]["job"]
            .as_str()
            .unwrap_or("")
            .to_string()
    });
    let (bad, good) = (&got[0], &got[1]);
    assert_eq!(bad["version"], "4");
    assert_eq!(bad["status"], "firing");
    let a = &bad["alerts"][0];
    assert_eq!(a["labels"]["alertname"], "DeploymentVerdict");
    assert_eq!(a["labels"]["verdict"], "fail");
    assert_eq!(a["labels"]["version"], "v2");
    assert_eq!(a["labels"]["severity"], "page");
    assert!(
        a["annotations"]["error-rate"]
            .as_str()
            .unwrap()
            .starts_with("fail: value 2, bound <= 1"),
        "{a}"
    );
    assert_eq!(good["status"], "resolved");
    assert_eq!(good["alerts"][0]["labels"]["verdict"], "pass");
    assert_eq!(good["alerts"][0]["annotations"]["commit"], "abc123");
}

#[test]
fn recording_answers_201_404_409_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG.replace("{hook}", "9");
    let mut d = Daemon::start_in(dir.path(), &config, &[]);
    d.wait_ready();
    let post =
        |port, body: &str| http(port, "POST", "/api/v1/deployments", Some(body), &[]).unwrap();

    let (status, body) = post(d.port, r#"{"job":"bad","version":"v1","author":"ann"}"#);
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = post(d.port, r#"{"job":"bad","version":"v2","supersede":false}"#);
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains(&id),
        "the answer names the deployment under watch: {body}"
    );
    let (status, _) = post(d.port, r#"{"job":"nope","version":"v1"}"#);
    assert_eq!(status, 404);
    let (status, _) = post(d.port, r#"{"job":"bad"}"#);
    assert_eq!(status, 400);

    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let mut d = Daemon::start_in(dir.path(), &config, &[]);
    d.wait_ready();
    let (status, body) = d.get(&format!("/api/v1/deployments/{id}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["job"], "bad");
    assert_eq!(v["author"], "ann");
    let (status, body) = d.get("/api/v1/deployments?job=bad");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["deployments"][0]["id"], id.as_str());
    assert_eq!(d.get("/api/v1/deployments/nope").0, 404);
}

#[test]
fn ctrl_c_leaves_the_watch_running_on_the_daemon_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &CONFIG.replace("{hook}", "9"), &[]);
    d.wait_ready();
    let mut child = deploy(d.port, "slow", &["--wait"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let id = first
        .strip_prefix("deployment ")
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("the id first: {first}"))
        .to_string();
    // Wait for an evaluation line, so the client is inside its wait loop.
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("#1 "), "{line}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out) = finish(child);
    assert_eq!(code, 130, "{out}");
    assert!(
        out.contains(&format!(
            "interrupted; deployment {id} is still under watch on the daemon"
        )),
        "{out}"
    );
    let (status, body) = d.get(&format!("/api/v1/deployments/{id}"));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], "watching", "the daemon keeps watching: {v}");
}
