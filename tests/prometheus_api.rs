//! Prometheus' own clients against a running postflight: `promtool query` (instant, range,
//! series, labels), and a real Prometheus federating postflight's series through `/federate`.
//! Bad input to the new endpoints is a 400 `bad_data`, never a 500, also when it is random.

mod common;

use std::process::Command;

use common::{Daemon, encode, http, prometheus, require, wait_until};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

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

/// A label name: valid ones, names the daemon has, and anything at all.
fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        Just("__name__".to_string()),
        Just("job".to_string()),
        Just("probe".to_string()),
        ".{0,12}",
    ]
}

/// A label value or regex: plain text, regex syntax (valid or not), quotes and escapes.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,10}",
        "[.*+?()\\[\\]{}|^$a-z]{0,8}",
        Just("self".to_string()),
        Just(".+".to_string()),
        ".{0,16}",
    ]
}

/// A series selector built from random parts, sometimes with its value left unescaped.
fn selector() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(String::new()), Just("up".to_string()), label_name()],
        proptest::collection::vec(
            (
                label_name(),
                prop_oneof![Just("="), Just("!="), Just("=~"), Just("!~"), Just("==")],
                label_value(),
                any::<bool>(),
            ),
            0..3,
        ),
    )
        .prop_map(|(name, matchers)| {
            let inner: Vec<String> = matchers
                .into_iter()
                .map(|(n, op, v, escape)| {
                    let v = if escape {
                        v.replace('\\', "\\\\").replace('"', "\\\"")
                    } else {
                        v
                    };
                    format!("{n}{op}\"{v}\"")
                })
                .collect();
            format!("{name}{{{}}}", inner.join(","))
        })
}

/// A time: Unix seconds, RFC 3339, out of range, or garbage.
fn time() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..2_000_000_000).prop_map(|t| t.to_string()),
        Just("2026-12-06T10:00:00Z".to_string()),
        Just("-1e300".to_string()),
        Just("NaN".to_string()),
        Just("Inf".to_string()),
        "[0-9a-zA-Z.:+-]{0,12}",
    ]
}

#[test]
fn random_label_names_values_and_matchers_never_make_a_panic_or_a_500() {
    let dir = tempfile::tempdir().unwrap();
    let d = started(dir.path());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let input = (
        selector(),
        label_name(),
        time(),
        time(),
        prop_oneof![Just("15".to_string()), time()],
        any::<bool>(),
    );
    runner
        .run(&input, |(sel, name, start, end, step, post)| {
            let m = encode(&sel);
            let (s, e) = (encode(&start), encode(&end));
            let requests = [
                (
                    "/api/v1/series".to_string(),
                    format!("match[]={m}&start={s}&end={e}"),
                ),
                (
                    "/api/v1/labels".to_string(),
                    format!("match[]={m}&start={s}"),
                ),
                (
                    format!("/api/v1/label/{}/values", encode(&name)),
                    format!("match[]={m}"),
                ),
                ("/federate".to_string(), format!("match[]={m}")),
                ("/api/v1/query".to_string(), format!("query={m}&time={e}")),
                (
                    "/api/v1/query_range".to_string(),
                    format!("query={m}&start={s}&end={e}&step={}", encode(&step)),
                ),
                (
                    "/api/v1/metadata".to_string(),
                    format!("metric={}", encode(&name)),
                ),
                (
                    "/api/v1/query_exemplars".to_string(),
                    format!("query={m}&start={s}&end={e}"),
                ),
            ];
            for (path, params) in requests {
                let form = [("Content-Type", "application/x-www-form-urlencoded")];
                // Prometheus takes these three by GET only.
                let get_only = ["/federate", "/api/v1/metadata", "/values"];
                let (status, body) = if post && !get_only.iter().any(|g| path.ends_with(g)) {
                    http(d.port, "POST", &path, Some(&params), &form)
                } else {
                    http(d.port, "GET", &format!("{path}?{params}"), None, &[])
                }
                .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
                let what = format!("{path}?{params} -> {status} {body}");
                prop_assert!(
                    [200, 400, 422].contains(&status),
                    "an answer for any input: {what}"
                );
                if status == 400 {
                    prop_assert!(body.contains("\"errorType\":\"bad_data\""), "{what}");
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(d.get("/healthz").0, 200, "the daemon is still up");
}
