//! The real binary killed with SIGKILL at random moments, again and again: the store always
//! opens, everything that was flushed is still there, and the daemon becomes ready. A store
//! damaged on disk is moved aside and the daemon starts empty, raising StoreCorrupted.

mod common;

use std::time::Duration;

use common::{Daemon, TestServer, http};

fn config(target: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
[storage]
path = "{{dir}}/data"
[global]
scrape_interval = "1s"
probe_interval = "1s"
evaluation_interval = "1s"
[[job]]
name = "app"
targets = ["127.0.0.1:{target}"]
[[probe]]
name = "app-health"
url = "http://127.0.0.1:{target}/health"
job = "app"
[[rule]]
alert = "Flapping"
expr = 'flap > 0'
for = "0s"
[[rule]]
alert = "AlwaysOn"
expr = 'vector(1)'
"#
    )
}

/// Counts in the JSON answer of the history API.
fn count(d: &Daemon, path: &str, key: &str) -> usize {
    let (st, body) = d.get(path);
    assert_eq!(st, 200, "{path}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v[key].as_array().map_or(0, |a| a.len())
}

#[test]
fn twenty_sigkills_lose_nothing_that_was_flushed() {
    // A target whose `flap` gauge changes every second, so alerts keep transitioning.
    let target = TestServer::start(|_| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        (
            200,
            "text/plain",
            format!("flap {}\nrequests_total {secs}\n", secs % 2),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(target.port);
    let port = common::free_port();
    let cfg = cfg.replace("{port}", &port.to_string());
    let silence_ends = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();

    let mut seen_transitions = 0;
    let mut seen_probes = 0;
    let mut silences: Vec<String> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..20 {
        let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
        d.port = port;
        d.wait_ready();
        // Everything seen before the last kill is still there.
        let transitions = count(
            &d,
            "/api/v1/history?alert=Flapping&limit=100000",
            "transitions",
        );
        assert!(
            transitions >= seen_transitions,
            "round {round}: alert transitions went from {seen_transitions} to {transitions}"
        );
        let probes = count(
            &d,
            "/api/v1/history?probe=app-health&limit=100000",
            "results",
        );
        assert!(
            probes >= seen_probes,
            "round {round}: probe results went from {seen_probes} to {probes}"
        );
        // ...and nothing is there twice (a result read back from the journal after a kill
        // and from its block as well would be).
        let (_, body) = d.get("/api/v1/history?probe=app-health&limit=100000");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut times: Vec<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["time"].as_str().unwrap())
            .collect();
        let n = times.len();
        times.dedup();
        assert_eq!(times.len(), n, "round {round}: a probe result repeated");
        let (_, list) = d.get("/api/v1/silences");
        for id in &silences {
            assert!(
                list.contains(id.as_str()),
                "round {round}: silence {id} lost"
            );
        }
        // A durable write: a silence.
        let body = format!(
            r#"{{"matchers":["alertname=\"Round{round}\""],"endsAt":"{silence_ends}","comment":"c","createdBy":"t"}}"#
        );
        let (st, created) = http(port, "POST", "/api/v1/silences", Some(&body), &[]).unwrap();
        assert_eq!(st, 200, "{created}");
        silences.push(
            serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );

        // Run for a random 1.5–4 s (rules start after a 2 s warm-up), note what is durable,
        // then kill at once.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(1500 + rng % 2500));
        seen_transitions = count(
            &d,
            "/api/v1/history?alert=Flapping&limit=100000",
            "transitions",
        );
        // Probe results are journaled every half second: count only those older than that
        // (with a margin for a slow machine).
        let (_, body) = d.get("/api/v1/history?probe=app-health&limit=100000");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let cutoff = chrono::Utc::now() - chrono::Duration::milliseconds(2500);
        seen_probes = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                chrono::DateTime::parse_from_rfc3339(r["time"].as_str().unwrap()).unwrap() < cutoff
            })
            .count();
        d.signal("KILL");
        d.wait_exit(Duration::from_secs(5));
    }
    assert!(seen_transitions > 0, "the test exercised alert transitions");
}

#[test]
fn a_damaged_store_is_moved_aside_and_the_daemon_starts_with_store_corrupted() {
    let target = TestServer::start(|_| (200, "text/plain", "flap 1\n".to_string()));
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &config(target.port), &[]);
    d.wait_ready();
    std::thread::sleep(Duration::from_millis(1500));
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));

    std::fs::write(dir.path().join("data/db"), vec![0x5a; 100_000]).unwrap();
    let port = d.port;
    let mut d = Daemon::start_in(
        dir.path(),
        &config(target.port).replace("{port}", &port.to_string()),
        &[],
    );
    d.port = port;
    d.wait_ready();
    let log = d.log_text();
    assert!(log.contains("the store was corrupt"), "{log}");
    let moved: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("data.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "moved aside: {moved:?}");
    let (_, alerts) = d.get("/api/v1/alerts");
    assert!(
        alerts.contains("StoreCorrupted") && alerts.contains("\"state\":\"firing\""),
        "{alerts}"
    );
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.contains("alertname=\"StoreCorrupted\""),
        "ALERTS shows it too"
    );
}

#[test]
fn samples_survive_sigkill_within_one_checkpoint_interval() {
    let target = TestServer::start(|_| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        (200, "text/plain", format!("requests_total {}\n", ms / 100))
    });
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cfg = config(target.port)
        .replace("{port}", &port.to_string())
        .replace("[global]", "checkpoint_interval = \"1s\"\n[global]");
    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    d.port = port;
    d.wait_ready();
    std::thread::sleep(Duration::from_millis(6500));
    let killed_at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(5));

    let mut d = Daemon::start_in(dir.path(), &cfg, &[]);
    d.port = port;
    d.wait_ready();
    // What the head holds about the minute before the kill, right after the restart.
    let q = format!("/api/v1/query?query=count_over_time(requests_total%5B1m%5D)&time={killed_at}");
    let (st, body) = d.get(&q);
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let n: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap();
    assert!(
        n >= 4.0,
        "only {n} samples of the ~6 before the kill came back: {body}"
    );
    let (_, rate) = d.get(&format!(
        "/api/v1/query?query=rate(requests_total%5B5s%5D)&time={killed_at}"
    ));
    assert!(
        rate.contains("\"result\":[{"),
        "rate() over the window before the crash has its data: {rate}"
    );
    // The head's own gauges, set at the next checkpoint (1 s), count what came back.
    let gauge = |body: &str, name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = d.get("/metrics").1;
        if gauge(&metrics, "postflight_head_samples") >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gauge(&metrics, "postflight_head_samples") >= n, "{metrics}");
    assert!(
        gauge(&metrics, "postflight_head_chunks") >= 1.0,
        "{metrics}"
    );
    assert!(
        gauge(&metrics, "postflight_head_chunk_bytes") > 0.0,
        "{metrics}"
    );
}
