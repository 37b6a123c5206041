//! The real binary under signals, reloads, bad starts, and systemd's notify protocol.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Daemon, TestServer, http, metric};

const BASIC: &str = r#"
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
[[rule]]
alert = "Never"
expr = 'vector(1) == 2'
"#;

#[test]
fn sigterm_stops_cleanly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), BASIC, &[]);
    d.wait_ready();
    assert_eq!(d.get("/healthz").0, 200);
    let started = Instant::now();
    d.signal("TERM");
    let st = d.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", d.log_text());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(d.log_text().contains("stopped"));
}

#[test]
fn a_panicking_component_ends_the_process_with_exit_70_for_systemd_to_restart() {
    // A loop whose task panics must not leave the daemon up with a dead loop behind a watchdog
    // the other loops keep fed: the process exits with 70, which `Restart=on-failure` restarts.
    for component in ["rules", "dispatcher"] {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Daemon::start_in(dir.path(), BASIC, &[("POSTFLIGHT_PANIC_IN", component)]);
        let st = d.wait_exit(Duration::from_secs(15));
        let log = d.log_text();
        assert_eq!(st.code(), Some(70), "{component}: {log}");
        assert!(
            log.contains("a component panicked") && log.contains("a panic provoked for a test"),
            "{component}: the panic is in the log: {log}"
        );
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/postflight.service"
    ))
    .unwrap();
    assert!(
        unit.contains("Restart=on-failure"),
        "the unit restarts on exit 70"
    );
    assert!(!unit.contains("RestartPreventExitStatus=70"));
}

#[test]
fn sigint_stops_cleanly_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), BASIC, &[]);
    d.wait_ready();
    d.signal("INT");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn invalid_config_at_start_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:{port}\"\nnope = 1\n",
        &[],
    );
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(2));
    let log = d.log_text();
    assert!(
        log.contains("postflight.toml:3:1:") && log.contains("unknown field `nope`"),
        "{log}"
    );
}

#[test]
fn port_taken_exits_1_with_one_line_reason() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = BASIC.replace(
        "127.0.0.1:{port}\"\n[storage]",
        &format!("127.0.0.1:{port}\"\n[storage]"),
    );
    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(1));
    let log = d.log_text();
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{log}"
    );
    assert!(log.contains("in use"), "{log}");
}

#[test]
fn store_that_cannot_be_opened_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "not a directory").unwrap();
    let cfg = BASIC.replace("{dir}/data", "{dir}/file/data");
    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(1));
    let log = d.log_text();
    assert!(log.contains("cannot open the store"), "{log}");
}

/// The firing alert `Up`'s summary and activeAt, once it shows `want` in its summary.
fn firing_up(d: &Daemon, want: &str) -> (String, String) {
    let mut last = String::new();
    for _ in 0..200 {
        last = d.get("/api/v1/alerts").1;
        let v: serde_json::Value = serde_json::from_str(&last).unwrap();
        if let Some(a) = v["alerts"].as_array().and_then(|a| {
            a.iter()
                .find(|a| a["labels"]["alertname"] == "Up" && a["state"] == "firing")
        }) {
            let summary = a["annotations"]["summary"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if summary.contains(want) {
                return (summary, a["activeAt"].as_str().unwrap_or("").to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no firing Up alert with {want:?}: {last}");
}

#[test]
fn a_reload_applies_edited_annotations_to_firing_alerts_and_flags_restart_only_settings() {
    let dir = tempfile::tempdir().unwrap();
    let rule = "[[rule]]\nalert = \"Up\"\nexpr = 'vector(1) > 0'\n[rule.annotations]\nsummary = \"first\"\n";
    let mut d = Daemon::start_in(dir.path(), &format!("{BASIC}{rule}"), &[]);
    d.wait_ready();
    let (_, active_at) = firing_up(&d, "first");
    let restart = |d: &Daemon| metric(&d.get("/metrics").1, "postflight_config_restart_required");
    assert_eq!(restart(&d), Some(0.0));

    // Edited annotations and keep_firing_for, and a checkpoint interval only a restart applies.
    let cfg_path = dir.path().join("postflight.toml");
    let good = std::fs::read_to_string(&cfg_path).unwrap();
    let edited = good
        .replace("summary = \"first\"", "summary = \"second: {{ $value }}\"")
        .replace(
            "alert = \"Up\"",
            "alert = \"Up\"\nkeep_firing_for = \"10m\"",
        )
        .replace("[storage]", "[storage]\ncheckpoint_interval = \"7m\"");
    std::fs::write(&cfg_path, &edited).unwrap();
    let (status, body) = http(d.port, "POST", "/-/reload", None, &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    let (summary, still_active_at) = firing_up(&d, "second");
    assert_eq!(summary, "second: 1");
    assert_eq!(
        still_active_at, active_at,
        "the same alert carried over the reload"
    );
    assert_eq!(restart(&d), Some(1.0));
    assert!(
        d.log_text().contains("storage.checkpoint_interval"),
        "the restart-only setting is named in the log"
    );

    // Back to the running value: nothing waits for a restart any more.
    std::fs::write(
        &cfg_path,
        edited.replace("checkpoint_interval = \"7m\"\n", ""),
    )
    .unwrap();
    assert_eq!(http(d.port, "POST", "/-/reload", None, &[]).unwrap().0, 200);
    assert_eq!(restart(&d), Some(0.0));
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn sighup_reload_rejects_invalid_config_and_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), BASIC, &[]);
    d.wait_ready();
    let page = d.get("/metrics").1;
    assert_eq!(
        metric(&page, "postflight_config_last_reload_successful"),
        Some(1.0)
    );

    // A broken file: refused, old config stays in force, metric drops to 0.
    let cfg_path = dir.path().join("postflight.toml");
    let good = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, good.replace("[[rule]]", "[[rule]]\nbogus = 1")).unwrap();
    d.signal("HUP");
    wait_for(|| {
        metric(
            &d.get("/metrics").1,
            "postflight_config_last_reload_successful",
        ) == Some(0.0)
    });
    assert_eq!(
        d.get("/healthz").0,
        200,
        "still serving on the old listen address"
    );
    assert!(d.log_text().contains("previous config stays in force"));

    // The same through the API: 500 with the problem in the JSON error.
    let (status, body) = http(d.port, "POST", "/-/reload", None, &[]).unwrap();
    assert_eq!(status, 500);
    assert!(body.contains("unknown field `bogus`"), "{body}");

    // Fixed again: accepted, metric back to 1.
    std::fs::write(&cfg_path, &good).unwrap();
    let (status, _) = http(d.port, "POST", "/-/reload", None, &[]).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &d.get("/metrics").1,
            "postflight_config_last_reload_successful"
        ),
        Some(1.0)
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn api_token_guards_every_non_get_call() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BASIC.replace("[storage]", "api_token = \"${PF_TEST_TOKEN}\"\n[storage]");
    let mut d = Daemon::start_in(dir.path(), &cfg, &[("PF_TEST_TOKEN", "tok-123")]);
    d.wait_ready();
    let cfg_path = dir.path().join("postflight.toml");
    let good = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, good.replace("[[rule]]", "[[rule]]\nbogus = 1")).unwrap();

    for hdr in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "tok-123")],
    ] {
        let (status, body) = http(d.port, "POST", "/-/reload", None, &hdr).unwrap();
        assert_eq!(status, 401, "{hdr:?}");
        assert!(body.contains("\"error\""));
    }
    // Nothing changed: no reload was attempted.
    assert_eq!(
        metric(
            &d.get("/metrics").1,
            "postflight_config_last_reload_successful"
        ),
        Some(1.0)
    );
    let (status, _) = http(
        d.port,
        "POST",
        "/-/reload",
        None,
        &[("Authorization", "Bearer tok-123")],
    )
    .unwrap();
    assert_eq!(status, 500, "authorised, and the broken file is refused");
    assert_eq!(d.get("/readyz").0, 200, "GET needs no token");
}

#[test]
fn secrets_never_reach_logs_metrics_or_api() {
    // Every receiver of the SPEC §11 types gets a firing alert and is refused by a peer that
    // echoes the request (path, query, credentials) in its error body, so the secrets reach
    // the daemon's error messages and must be removed there.
    let echo = TestServer::start(|req| {
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map_or("", |(_, v)| v.as_str());
        (
            400,
            "text/plain",
            format!("bad request {} {auth}", req.path),
        )
    });
    let e = echo.port;
    let dir = tempfile::tempdir().unwrap();
    let secrets: Vec<(&str, String)> = vec![
        ("PF_T_TOKEN", "apitoken-5ecret-1".into()),
        (
            "PF_T_SLACK",
            "https://hooks.slack.test/services/5ecret-2".into(),
        ),
        ("PF_T_HMAC", "hmac-5ecret-3".into()),
        ("PF_T_PD", "routingkey-5ecret-4".into()),
        ("PF_T_PASS", "smtp-5ecret-5".into()),
        ("PF_T_HDR", "Bearer probe-5ecret-6".into()),
        (
            "PF_T_TEAMS",
            format!("http://127.0.0.1:{e}/workflows/invoke?sig=teams-5ecret-7"),
        ),
        (
            "PF_T_DISCORD",
            format!("http://127.0.0.1:{e}/api/webhooks/1/discord-5ecret-8"),
        ),
        ("PF_T_TG", "123456:telegram-5ecret-9".into()),
        ("PF_T_GENIE", "opsgenie-5ecret-10".into()),
        (
            "PF_T_GCHAT",
            format!("http://127.0.0.1:{e}/v1/spaces/A/messages?key=k&token=gchat-5ecret-11"),
        ),
        (
            "PF_T_NTFY",
            format!("http://127.0.0.1:{e}/ntfy-topic-5ecret-12"),
        ),
        ("PF_T_NTFY_TOKEN", "ntfy-token-5ecret-13".into()),
    ];
    let new_receivers = format!(
        r#"
[[rule]]
alert = "Leak"
expr = 'vector(1)'
[[route]]
matchers = ['alertname="Leak"']
receivers = ["teams", "discord", "telegram", "opsgenie", "googlechat", "ntfy"]
group_wait = "0s"
[[receiver]]
name = "teams"
type = "teams"
url = "${{PF_T_TEAMS}}"
[[receiver]]
name = "discord"
type = "discord"
url = "${{PF_T_DISCORD}}"
[[receiver]]
name = "telegram"
type = "telegram"
bot_token = "${{PF_T_TG}}"
chat_id = -100
url = "http://127.0.0.1:{e}"
[[receiver]]
name = "opsgenie"
type = "opsgenie"
api_key = "${{PF_T_GENIE}}"
url = "http://127.0.0.1:{e}"
[[receiver]]
name = "googlechat"
type = "googlechat"
url = "${{PF_T_GCHAT}}"
[[receiver]]
name = "ntfy"
type = "ntfy"
url = "${{PF_T_NTFY}}"
token = "${{PF_T_NTFY_TOKEN}}"
"#
    );
    let cfg = format!(
        "{BASIC}\n[[probe]]\nname = \"with-header\"\nurl = \"http://127.0.0.1:{{port}}/healthz\"\nheaders = {{ Authorization = \"${{PF_T_HDR}}\" }}\n{new_receivers}{}",
        r#"
[[route]]
receivers = ["s", "w", "p", "m"]
[[receiver]]
name = "s"
type = "slack"
url = "${PF_T_SLACK}"
[[receiver]]
name = "w"
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret = "${PF_T_HMAC}"
[[receiver]]
name = "p"
type = "pagerduty"
routing_key = "${PF_T_PD}"
url = "http://127.0.0.1:9/enqueue"
[[receiver]]
name = "m"
type = "email"
smtp = "127.0.0.1:9"
tls = "none"
username = "u"
password = "${PF_T_PASS}"
from = "a@example.com"
to = ["b@example.com"]
"#
    )
    .replace("[storage]", "api_token = \"${PF_T_TOKEN}\"\n[storage]");
    let mut env: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("RUST_LOG", "trace"));
    let mut d = Daemon::start_in(dir.path(), &cfg, &env);
    d.wait_ready();
    // Each of the six receivers tried and was refused.
    common::wait_until(20, "a refusal logged for each new receiver", || {
        let log = d.log_text();
        [
            "teams",
            "discord",
            "telegram",
            "opsgenie",
            "googlechat",
            "ntfy",
        ]
        .iter()
        .all(|r| {
            log.lines()
                .any(|l| l.contains("refused permanently") && l.contains(&format!("receiver {r}:")))
        })
    });
    let mut seen = String::new();
    for path in [
        "/metrics",
        "/api/v1/targets",
        "/api/v1/alerts",
        "/api/v1/silences",
        "/readyz",
        "/nope",
    ] {
        seen.push_str(&d.get(path).1);
    }
    seen.push_str(
        &http(
            d.port,
            "POST",
            "/-/reload",
            None,
            &[("Authorization", "Bearer bad")],
        )
        .unwrap()
        .1,
    );
    d.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));
    seen.push_str(&d.log_text());
    assert!(
        d.log_text().contains("postflight started"),
        "the log was written"
    );
    assert!(
        seen.contains("bad request"),
        "the peers' answers reached the log"
    );
    for (_, s) in &secrets {
        let needle = s.trim_start_matches("Bearer ");
        assert!(!seen.contains(needle), "secret {needle:?} leaked");
        // Nor the part of a secret that holds the credential.
        if let Some(i) = needle.find("5ecret") {
            let start = needle[..i].rfind(['/', '=', ':']).map_or(0, |j| j + 1);
            let token = &needle[start..];
            assert!(!seen.contains(token), "{token:?} of {needle:?} leaked");
        }
    }
}

/// Listens on a unix datagram socket as systemd does and collects what the daemon says.
#[test]
fn systemd_notify_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sock_str = sock_path.display().to_string();
    let mut d = Daemon::start_in(
        dir.path(),
        BASIC,
        &[("NOTIFY_SOCKET", &sock_str), ("WATCHDOG_USEC", "400000")],
    );
    let mut msgs: Vec<String> = Vec::new();
    let recv_until = |msgs: &mut Vec<String>, pred: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 4096];
        while !pred(msgs) {
            assert!(Instant::now() < deadline, "timed out; got {msgs:?}");
            if let Ok(n) = sock.recv(&mut buf) {
                msgs.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
    };
    recv_until(&mut msgs, &|m| m.iter().any(|s| s.contains("READY=1")));
    assert_eq!(d.get("/readyz").0, 200, "READY=1 only once the API listens");
    recv_until(&mut msgs, &|m| {
        m.iter().filter(|s| s.contains("WATCHDOG=1")).count() >= 3
    });

    d.signal("HUP");
    recv_until(&mut msgs, &|m| m.iter().any(|s| s.contains("RELOADING=1")));
    let reloading = msgs
        .iter()
        .find(|s| s.contains("RELOADING=1"))
        .unwrap()
        .clone();
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let idx = msgs.iter().position(|s| s.contains("RELOADING=1")).unwrap();
    recv_until(&mut msgs, &|m| {
        m[idx + 1..].iter().any(|s| s.contains("READY=1"))
    });

    d.signal("TERM");
    recv_until(&mut msgs, &|m| m.iter().any(|s| s.contains("STOPPING=1")));
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

fn wait_for(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn json_logs_for_log_shippers_and_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cfg = dir.path().join("pf.toml");
    std::fs::write(
        &cfg,
        BASIC
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_postflight"))
        .args(["--log-format", "json", "--log-level", "debug", "run", "-c"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    common::wait_until(15, "ready", || {
        http(port, "GET", "/readyz", None, &[]).is_ok_and(|(s, _)| s == 200)
    });
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI escapes when stderr is not a terminal"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{l}"
        );
    }
    assert!(
        text.contains("\"message\":\"postflight started\""),
        "{text}"
    );
}

/// Probe results reach the series head, where rules and the query API read them: the probe
/// series keep their labels and follow each run's outcome (the sink keeps each probe's series
/// after its first run, so later runs must still land in the same series).
#[test]
fn probe_series_reach_the_head_with_their_labels_and_follow_the_outcome() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    // Healthy for the first three requests, then 503.
    let target = common::TestServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 3 {
            (200, "text/plain", "ok".into())
        } else {
            (503, "text/plain", "down".into())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
[storage]
path = "{{dir}}/data"
[global]
probe_interval = "1s"
evaluation_interval = "1s"
[[probe]]
name = "api"
job = "web"
url = "http://127.0.0.1:{}/health"
failure_threshold = 100
[[rule]]
alert = "ApiDown"
expr = 'probe_success{{probe="api"}} == 0'
"#,
        target.port
    );
    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    d.wait_ready();
    let query = |q: &str| -> serde_json::Value {
        let (st, body) = d.get(&format!("/api/v1/query?query={q}"));
        assert_eq!(st, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    common::wait_until(30, "five probe runs", || hits.load(Ordering::SeqCst) >= 5);
    // Every run landed in one series per family (no duplicates from the kept series).
    let runs = query("count_over_time(probe_success%5B1m%5D)");
    let result = runs["data"]["result"].as_array().unwrap().clone();
    assert_eq!(result.len(), 1, "{runs}");
    let metric = &result[0]["metric"];
    assert_eq!(metric["probe"], "api");
    assert_eq!(metric["job"], "web");
    assert_eq!(
        metric["instance"],
        format!("http://127.0.0.1:{}/health", target.port)
    );
    let n: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n >= 4.0, "{runs}");
    // The daemon counts every sample a run appends (success, duration, status code and four
    // phases), not one per run; read after the query, so at least the runs it counted.
    let page = d.get("/metrics").1;
    let appended: f64 = page
        .lines()
        .find_map(|l| l.strip_prefix(r#"postflight_head_samples_appended_total{source="probe"} "#))
        .expect("probe samples counter")
        .parse()
        .unwrap();
    assert!(appended >= 7.0 * n, "{appended} samples for {n} runs");
    // The first runs succeeded, the latest failed with status 503.
    let best = query("max_over_time(probe_success%5B1m%5D)");
    assert_eq!(best["data"]["result"][0]["value"][1], "1", "{best}");
    let now = query("probe_success");
    assert_eq!(now["data"]["result"][0]["value"][1], "0", "{now}");
    let code = query("probe_http_status_code");
    assert_eq!(code["data"]["result"][0]["value"][1], "503", "{code}");
    let phases = query("probe_http_duration_seconds");
    let mut names: Vec<String> = phases["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"]["phase"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["connect", "processing", "tls", "transfer"]);
    // A rule over the probe series fires.
    common::wait_until(15, "ApiDown firing", || {
        let (_, body) = d.get("/api/v1/alerts");
        body.contains("ApiDown")
    });
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
