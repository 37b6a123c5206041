//! The public status page, its badges and the uptime API against the real binary: what a
//! visitor sees (groups, states, 90 day bars, "no data" before postflight ran, incidents),
//! that nothing internal reaches the page, and that the counts survive a crash.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Daemon, TestServer, free_port, wait_until};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{port}"

[storage]
path = "{dir}/data"

[global]
probe_interval = "1s"
probe_timeout = "500ms"
labels = { env = "label-value-secret" }

[[probe]]
name = "web-health"
url = "http://127.0.0.1:FLAKY/health?token=url-secret"
job = "job-secret"
slo = 99.9

[[probe]]
name = "docs"
url = "http://127.0.0.1:OK/docs"

[[probe]]
name = "api-health"
url = "http://127.0.0.1:CLOSED/health"
failure_threshold = 2

[[probe]]
name = "internal-db"
url = "http://127.0.0.1:OK/db"

[[maintenance]]
name = "maintenance-name-secret"
matchers = ['probe="docs"']
schedule = "Mon,Tue,Wed,Thu,Fri,Sat,Sun 00:00-24:00"

STATUS
"#;

const STATUS: &str = r#"
[status_page]
title = "Example status"

[[status_page.group]]
name = "Website"
probes = ["web-health", "docs"]

[[status_page.group]]
name = "API"
probes = ["api-health"]
"#;

/// One GET; returns status, the head (lowercased) and the body.
fn get(port: u16, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    (status, head.to_ascii_lowercase(), body)
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (status, _, body) = get(port, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

#[track_caller]
fn assert_page_headers(head: &str) {
    for want in [
        "content-security-policy: default-src 'self'; script-src 'self'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
    ] {
        assert!(head.contains(want), "missing {want:?} in {head}");
    }
    assert!(!head.contains("unsafe-inline"), "{head}");
}

/// The probe element of `name` on a parsed page.
fn probe_li<'a>(doc: &'a roxmltree::Document, name: &str) -> roxmltree::Node<'a, 'a> {
    doc.descendants()
        .filter(|n| n.has_tag_name("li") && n.attribute("class") == Some("probe"))
        .find(|n| {
            n.descendants()
                .any(|d| d.attribute("class") == Some("name") && d.text() == Some(name))
        })
        .unwrap_or_else(|| panic!("no probe {name} on the page"))
}

fn text_of(n: roxmltree::Node) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect()
}

#[test]
fn status_page_badges_and_uptime_from_the_real_daemon() {
    let dir = tempfile::tempdir().unwrap();
    // Every third answer of this one fails: degraded, never down (threshold 3).
    let hits = Arc::new(AtomicU64::new(0));
    let flaky = {
        let hits = hits.clone();
        TestServer::start(move |_| match hits.fetch_add(1, Ordering::SeqCst) % 3 {
            2 => (503, "text/plain", "down".into()),
            _ => (200, "text/plain", "ok".into()),
        })
    };
    let ok = TestServer::start(|_| (200, "text/plain", "ok".into()));
    let closed = free_port();
    let config = CONFIG
        .replace("FLAKY", &flaky.port.to_string())
        .replace("OK", &ok.port.to_string())
        .replace("CLOSED", &closed.to_string());
    let mut d = Daemon::start_in(dir.path(), &config.replace("STATUS", STATUS), &[]);
    d.wait_ready();
    let port = d.port;

    wait_until(
        30,
        "ProbeFailed of api-health and a failure of web-health",
        || {
            let alerts = json(port, "/api/v1/alerts").to_string();
            let web = json(port, "/api/v1/uptime?probe=web-health&window=24h");
            alerts.contains("api-health") && web["failures"].as_u64().unwrap_or(0) >= 1
        },
    );

    // The uptime API: shape, fractions, the error budget against the slo.
    let web = json(port, "/api/v1/uptime?probe=web-health&window=24h");
    for key in [
        "probe",
        "window",
        "uptime",
        "checks",
        "failures",
        "slo",
        "errorBudgetRemaining",
    ] {
        assert!(web.get(key).is_some(), "{key} missing in {web}");
    }
    assert_eq!(web["probe"], "web-health");
    assert_eq!(web["window"], "24h");
    assert_eq!(web["slo"], 0.999);
    let (checks, failures) = (
        web["checks"].as_u64().unwrap(),
        web["failures"].as_u64().unwrap(),
    );
    assert!(checks >= 2 && failures >= 1, "{web}");
    let uptime = web["uptime"].as_f64().unwrap();
    assert!((uptime - (checks - failures) as f64 / checks as f64).abs() < 1e-9);
    // A third of the runs failing is far beyond 0.1 %: the budget is overspent.
    let budget = web["errorBudgetRemaining"].as_f64().unwrap();
    let want = 1.0 - failures as f64 / (0.001 * checks as f64);
    assert!(budget < 0.0 && (budget - want).abs() < 1e-6, "{web}");
    let docs = json(port, "/api/v1/uptime?probe=docs&window=30d");
    assert_eq!(docs["uptime"], 1.0);
    assert!(docs["slo"].is_null() && docs["errorBudgetRemaining"].is_null());
    let all = json(port, "/api/v1/uptime?window=7d");
    let names: Vec<&str> = all["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["probe"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-health", "docs", "api-health", "internal-db"]);
    assert_eq!(get(port, "/api/v1/uptime?probe=nope").0, 404);
    assert_eq!(get(port, "/api/v1/uptime?probe=docs&window=1y").0, 400);

    // The page.
    let (status, head, page) = get(port, "/status");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert_page_headers(&head);
    assert!(!page.contains("<script"), "a page without script");
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&page, xml).expect("the page is well-formed");
    let h1 = doc.descendants().find(|n| n.has_tag_name("h1")).unwrap();
    assert_eq!(h1.text(), Some("Example status"));
    let groups: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("section") && n.attribute("class") == Some("group"))
        .filter_map(|s| s.children().find(|c| c.has_tag_name("h2")))
        .filter_map(|h| h.text())
        .collect();
    assert_eq!(groups, ["Website", "API"]);
    for (name, state) in [
        ("web-health", "Degraded"),
        ("docs", "Up"),
        ("api-health", "Down"),
    ] {
        let li = probe_li(&doc, name);
        let st = li
            .descendants()
            .find(|n| n.attribute("class").is_some_and(|c| c.starts_with("st ")))
            .unwrap();
        assert!(text_of(st).ends_with(state), "{name}: {}", text_of(st));
        let bars: Vec<_> = li
            .descendants()
            .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("bar ")))
            .collect();
        assert_eq!(bars.len(), 90, "{name}");
        // Before today postflight never ran: no data, never up.
        assert!(
            bars[..89]
                .iter()
                .all(|b| b.attribute("title").unwrap().ends_with("no data")),
            "{name}"
        );
        assert!(!bars[89].attribute("title").unwrap().ends_with("no data"));
        let dds: Vec<String> = li
            .descendants()
            .filter(|n| n.has_tag_name("dd"))
            .map(text_of)
            .collect();
        assert_eq!(dds.len(), 4, "{name}: 24h, 7d, 30d, 90d");
    }
    assert_eq!(
        text_of(
            probe_li(&doc, "docs")
                .descendants()
                .find(|n| n.has_tag_name("dd"))
                .unwrap()
        ),
        "100%"
    );
    assert!(
        page.contains("api-health</span> down from"),
        "incident listed"
    );
    assert!(page.contains("ongoing"));
    assert!(
        page.contains("In progress"),
        "the maintenance window muting docs is announced"
    );
    // Nothing internal in the whole response: URLs, hosts, ports, labels, reasons, other
    // probes, the maintenance window's name.
    let whole = format!("{head}\r\n\r\n{page}");
    for secret in [
        "127.0.0.1",
        "localhost",
        "http://",
        &format!(":{}", flaky.port),
        &format!(":{}", ok.port),
        &format!(":{closed}"),
        "url-secret",
        "/health",
        "job-secret",
        "label-value-secret",
        "connection refused",
        "503",
        "expected",
        "internal-db",
        "maintenance-name-secret",
        "severity",
    ] {
        assert!(!whole.contains(secret), "{secret:?} leaked into the page");
    }
    let (status, head, css) = get(port, "/status/style.css");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/css"));
    assert!(css.contains("prefers-color-scheme: dark"));

    // Badges: SVG for listed probes, 404 for the others.
    for (path, want) in [
        ("/badge/web-health/health.svg", "degraded"),
        ("/badge/api-health/health.svg", "down"),
        ("/badge/docs/uptime/30d.svg", "100%"),
        ("/badge/docs/uptime/24h.svg", "100%"),
    ] {
        let (status, head, svg) = get(port, path);
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains("content-type: image/svg+xml"),
            "{path}: {head}"
        );
        assert_page_headers(&head);
        let doc = roxmltree::Document::parse(&svg).expect("a badge is XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(texts.last(), Some(&want), "{path}");
    }
    for path in [
        "/badge/internal-db/health.svg",
        "/badge/internal-db/uptime/24h.svg",
        "/badge/docs/uptime/1y.svg",
    ] {
        assert_eq!(get(port, path).0, 404, "{path}");
    }

    // A crash: the counts come back from the store, none lost.
    let before = json(port, "/api/v1/uptime?probe=api-health&window=24h");
    // Every counted result is journaled within half a second.
    std::thread::sleep(Duration::from_millis(1_200));
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(5));
    let mut d = Daemon::start_in(dir.path(), &config.replace("STATUS", STATUS), &[]);
    d.wait_ready();
    let after = json(d.port, "/api/v1/uptime?probe=api-health&window=24h");
    assert!(
        after["checks"].as_u64() >= before["checks"].as_u64(),
        "before {before}, after {after}"
    );
    assert!(after["failures"].as_u64() >= before["failures"].as_u64());
    assert!(after["checks"].as_u64().unwrap() >= 2, "{after}");

    // Without [status_page], no page and no badges.
    std::fs::write(
        dir.path().join("postflight.toml"),
        config
            .replace("STATUS", "")
            .replace("{port}", &d.port.to_string())
            .replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    let (status, _) = common::http(d.port, "POST", "/-/reload", None, &[]).unwrap();
    assert_eq!(status, 200);
    assert_eq!(get(d.port, "/status").0, 404);
    assert_eq!(get(d.port, "/badge/docs/health.svg").0, 404);
}
