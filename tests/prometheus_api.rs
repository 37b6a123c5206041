//! Prometheus' own clients against a running postflight: `promtool query` (instant, range,
//! series, labels), and a real Prometheus federating postflight's series through `/federate`.
//! Bad input to the new endpoints is a 400 `bad_data`, never a 500.

mod common;

use std::process::Command;

use common::{Daemon, http, prometheus, require, wait_until};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/data"
[global]
probe_interval = "1s"
scrape_interval = "1s"
evaluation_interval = "1s"
labels = { site = "lab" }
external_labels = { replica = "a" }
[[job]]
name = "self"
targets = ["127.0.0.1:{port}"]
[[probe]]
name = "self-health"
url = "http://127.0.0.1:{port}/healthz"
"#;

fn started(dir: &std::path::Path) -> Daemon {
    let mut d = Daemon::start_in(dir, CONFIG, &[]);
    d.wait_ready();
    wait_until(20, "three scrapes and probe runs", || {
        d.get("/api/v1/query?query=count_over_time(probe_success%5B1m%5D)%20%3E%3D%203")
            .1
            .contains("\"value\":[")
    });
    d
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtool_queries_instant_range_series_and_labels() {
    if !require("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = started(dir.path());
    let url = format!("http://127.0.0.1:{}", d.port);

    let (ok, out) = promtool(&["query", "instant", &url, "up{job=\"self\"}"]);
    assert!(ok && out.contains("up{instance="), "{out}");

    let now = chrono::Utc::now().timestamp();
    let (ok, out) = promtool(&[
        "query",
        "range",
        "--start",
        &(now - 30).to_string(),
        "--end",
        &now.to_string(),
        "--step",
        "1s",
        &url,
        "probe_success",
    ]);
    assert!(
        ok && out.contains("probe_success{") && out.contains(" @["),
        "{out}"
    );

    let (ok, out) = promtool(&["query", "series", "--match", "up", &url]);
    assert!(
        ok && out.contains("__name__=\"up\"") && out.contains("job=\"self\""),
        "{out}"
    );

    let (ok, out) = promtool(&["query", "labels", &url, "job"]);
    assert!(ok && out.lines().any(|l| l.trim() == "self"), "{out}");
}

#[test]
fn the_endpoints_answer_bad_input_with_400_bad_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = started(dir.path());
    for path in [
        "/api/v1/query_range?query=up&start=10&end=5&step=1",
        "/api/v1/query_range?query=up&start=0&end=100000&step=1",
        "/api/v1/query_range?query=up&start=0&end=10&step=0",
        "/api/v1/query_range?query=up&start=x&end=10&step=1",
        "/api/v1/query_range?query=rate(&start=0&end=10&step=1",
        "/api/v1/series",
        "/api/v1/series?match[]=%7B%7D",
        "/api/v1/series?match[]=%7Bjob%3D~%22(%22%7D",
        "/api/v1/labels?match[]=1%2B1",
        "/api/v1/label/1bad/values",
        "/api/v1/label/%F0%9F%92%A5/values",
        "/federate",
        "/federate?match[]=%ZZ",
    ] {
        let (status, body) = d.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.contains("\"errorType\":\"bad_data\""),
            "{path}: {body}"
        );
    }
    let (status, body) = d.get("/api/v1/status/buildinfo");
    assert!(status == 200 && body.contains("\"version\""), "{body}");
    let (status, body) = d.get("/api/v1/query_exemplars?query=up&start=0&end=1");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, v),
        (200, serde_json::json!({"status": "success", "data": []}))
    );
    let (status, body) = http(
        d.port,
        "POST",
        "/api/v1/labels",
        Some("match%5B%5D=up"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    )
    .unwrap();
    assert!(status == 200 && body.contains("\"instance\""), "{body}");
}

/// Stops a child process by its pid when the test ends, whatever happens.
#[test]
fn a_real_prometheus_federates_postflights_series() {
    if !require("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = started(dir.path());
    let (_prom, prom_port) = prometheus(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n    params:\n      'match[]': ['{{job=\"self\"}}', 'probe_success']\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            d.port
        ),
        None,
        &[],
    );
    let mut last = String::new();
    wait_until(40, "Prometheus holds the federated series", || {
        last = http(
            prom_port,
            "GET",
            "/api/v1/query?query=probe_success%7Bprobe%3D%22self-health%22%2Csite%3D%22lab%22%7D",
            None,
            &[],
        )
        .map(|r| r.1)
        .unwrap_or_default();
        last.contains("\"value\":[")
    });
    let up = http(
        prom_port,
        "GET",
        "/api/v1/query?query=up%7Bjob%3D%22self%22%7D",
        None,
        &[],
    )
    .unwrap()
    .1;
    assert!(
        up.contains("\"instance\"") && up.contains("\"site\":\"lab\""),
        "postflight's own up series, with the external label: {up}"
    );
    // The federation page itself: the external label added, one TYPE line per family.
    let page = d.get("/federate?match[]=up").1;
    assert!(page.starts_with("# TYPE up untyped\nup{"), "{page}");
    assert!(page.contains("site=\"lab\""), "{page}");
    assert!(
        page.contains("replica=\"a\""),
        "external_labels too: {page}"
    );
}
