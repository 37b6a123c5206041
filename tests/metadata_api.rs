//! `GET /api/v1/metadata` from real scrapes, in Prometheus' shape: postflight and a real
//! Prometheus scrape the same two targets (text format and OpenMetrics) and answer the same.

mod common;

use std::collections::BTreeMap;

use common::{Daemon, TestServer, http, prometheus, require, wait_until};
use serde_json::Value;

const TEXT_PAGE: &str = "# HELP go_goroutines Number of goroutines that currently exist.\n\
# TYPE go_goroutines gauge\ngo_goroutines 12\n\
# HELP http_requests_total Requests served, by \\\\ path\\nand code.\n\
# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 5\n\
# TYPE legacy untyped\nlegacy 1\n\
# HELP only_help Has help and no type.\nonly_help 3\n";

const OM_PAGE: &str = "# TYPE temp_celsius gauge\n# UNIT temp_celsius celsius\n\
# HELP temp_celsius Room temperature.\ntemp_celsius 21.5\n\
# TYPE http_requests counter\n# HELP http_requests Requests served.\n\
http_requests_total{code=\"500\"} 1\n# EOF\n";

/// Stops a child process by its pid when the test ends.
fn targets() -> (TestServer, TestServer) {
    let text = TestServer::start(|_| (200, "text/plain; version=0.0.4", TEXT_PAGE.to_string()));
    let om = TestServer::start(|_| {
        (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            OM_PAGE.to_string(),
        )
    });
    (text, om)
}

/// `data` of a metadata answer, each metric's entries sorted (Prometheus' order is its map's).
fn data(body: &str) -> BTreeMap<String, Vec<Value>> {
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["status"], "success", "{body}");
    let mut out: BTreeMap<String, Vec<Value>> = serde_json::from_value(v["data"].clone()).unwrap();
    for entries in out.values_mut() {
        entries.sort_by_key(|e| e.to_string());
    }
    out
}

#[test]
fn metadata_of_real_scrapes_is_answered_as_prometheus_answers_it() {
    let (text, om) = targets();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n[storage]\npath = \"{{dir}}/data\"\n\
         [global]\nscrape_interval = \"1s\"\n\
         [[job]]\nname = \"t\"\ntargets = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
        text.port, om.port
    );
    let mut d = Daemon::start_in(dir.path(), &config, &[]);
    d.wait_ready();
    let mut ours = BTreeMap::new();
    wait_until(20, "postflight has both targets' metadata", || {
        let (code, body) = d.get("/api/v1/metadata");
        assert_eq!(code, 200, "{body}");
        ours = data(&body);
        ours.contains_key("go_goroutines") && ours.contains_key("temp_celsius")
    });
    let want = serde_json::json!({
        "type": "counter",
        "help": "Requests served, by \\ path\nand code.",
        "unit": ""
    });
    assert_eq!(ours["http_requests_total"], [want]);
    assert_eq!(ours["temp_celsius"][0]["unit"], "celsius");
    assert_eq!(ours["legacy"][0]["type"], "unknown");

    // Parameters.
    let (_, body) = d.get("/api/v1/metadata?metric=temp_celsius");
    assert_eq!(data(&body).keys().collect::<Vec<_>>(), ["temp_celsius"]);
    let (_, body) = d.get("/api/v1/metadata?limit=2");
    assert_eq!(data(&body).len(), 2);
    let (_, body) = d.get("/api/v1/metadata?metric=nothing");
    assert!(data(&body).is_empty());
    let (code, body) = d.get("/api/v1/metadata?limit=x");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"errorType\":\"bad_data\""), "{body}");

    if !require("prometheus") {
        return;
    }
    let (_prom, prom_port) = prometheus(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}']\n",
            text.port, om.port
        ),
        None,
        &[],
    );
    let mut theirs = BTreeMap::new();
    wait_until(40, "Prometheus has both targets' metadata", || {
        let Ok((200, body)) = http(prom_port, "GET", "/api/v1/metadata", None, &[]) else {
            return false;
        };
        theirs = data(&body);
        theirs.contains_key("go_goroutines") && theirs.contains_key("temp_celsius")
    });
    assert_eq!(ours, theirs);
}
