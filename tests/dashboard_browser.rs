//! The dashboard in a real browser: the daemon as a process, headless Chromium driven through
//! chromedriver (WebDriver). The tests click through the pages as a person would, read what
//! the page shows, and fail on any error in the browser's console (CSP violations included).
//!
//! With `POSTFLIGHT_SCREENSHOTS=<dir>` the walk also saves a PNG of each main page there
//! (`docs/img/` holds the ones the README shows).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, TestServer, free_port, http, require, wait_until};
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "s3cret-token";
/// How long one page may take to show what is waited for.
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on a free port, stopped by pid when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        wait_until(15, "chromedriver listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium with its console collected.
async fn browser(driver: &Driver) -> Client {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut args = vec![
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
        "--lang=en-US",
    ];
    if root {
        args.push("--no-sandbox");
    }
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// chromedriver's browser log (console messages, failed loads, CSP violations) since the last
/// call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Panics on any error the browser logged: a script error, a failed request, a CSP violation.
async fn assert_no_console_errors(c: &Client, page: &str) {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    let errors: Vec<&Value> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors on {page}: {errors:#?}");
}

async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
}

/// Waits until the element at `css` shows `needle`; returns its text.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
        {
            if t.contains(needle) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never showed {needle:?}; it showed {last:?}");
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("POSTFLIGHT_SCREENSHOTS") {
        // Charts finish their first frame after the element appears.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let png = c.screenshot().await.expect("a screenshot");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// A maintenance schedule, every day, from `from` to `to` minutes away from now (UTC).
fn window(from: i64, to: i64) -> String {
    let now = chrono::Utc::now();
    let at = |m: i64| {
        (now + chrono::Duration::minutes(m))
            .format("%H:%M")
            .to_string()
    };
    format!("Mon-Sun {}-{}", at(from), at(to))
}

/// Two probes (one answering 500), a gate, an active and an upcoming maintenance window, and
/// an API token.
fn config(ok: u16, broken: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
api_token = "{TOKEN}"
[storage]
path = "{{dir}}/data"
[global]
scrape_interval = "1s"
probe_interval = "1s"
probe_timeout = "900ms"
evaluation_interval = "1s"
[[job]]
name = "postflight"
targets = ["127.0.0.1:{{port}}"]
[[probe]]
name = "web-ok"
url = "http://127.0.0.1:{ok}/health"
job = "web"
slo = 99.9
[[probe]]
name = "web-broken"
url = "http://127.0.0.1:{broken}/health"
job = "web"
failure_threshold = 1
slo = 99.9
[[gate]]
job = "web"
watch = "10m"
baseline = "5s"
warmup = "0s"
interval = "1s"
[[gate.check]]
name = "latency"
expr = 'max(probe_duration_seconds{{job="web"}})'
max = 5
[[maintenance]]
name = "db-upgrade"
matchers = ['job="db"']
schedule = "{active}"
[[maintenance]]
name = "network-work"
matchers = ['job="edge"']
schedule = "{upcoming}"
"#,
        active = window(-60, 120),
        upcoming = window(180, 240),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_probe_alert_silence_deployment_and_query_in_a_browser() {
    if !require(CHROMEDRIVER) || !require(CHROMIUM) {
        return;
    }
    tokio::time::timeout(Duration::from_secs(420), walk())
        .await
        .expect("the walk through the dashboard finishes within 7 minutes");
}

async fn walk() {
    let ok = TestServer::start(|_| (200, "text/plain", "ok".into()));
    let broken = TestServer::start(|_| (500, "text/plain", "down".into()));
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &config(ok.port, broken.port), &[]);
    d.wait_ready();
    wait_until(20, "ProbeFailed firing for web-broken", || {
        d.get("/api/v1/alerts").1.contains("\"firing\"")
    });
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = http(
        d.port,
        "POST",
        "/api/v1/deployments",
        Some(r#"{"job":"web","version":"v2.0.1","commit":"abc123"}"#),
        &[("Authorization", auth.as_str())],
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let deployment = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    if std::env::var_os("POSTFLIGHT_SCREENSHOTS").is_some() {
        // Pictures of pages with some history in their charts.
        tokio::time::sleep(Duration::from_secs(180)).await;
    }
    let driver = Driver::start();
    let c = browser(&driver).await;
    let base = format!("http://127.0.0.1:{}/", d.port);

    // Overview: both probes with their state in words, the failing one's reason, the alert
    // and the watch on top, the maintenance in progress.
    c.goto(&base).await.unwrap();
    let broken_row = wait_text(&c, "tr[data-name='web-broken']", "down").await;
    assert!(broken_row.contains("status 500"), "{broken_row}");
    // Uptime over 24 h from /api/v1/uptime: every run of web-ok succeeded.
    wait_text(&c, "tr[data-name='web-ok']", "100 %").await;
    wait_text(&c, "#firing", "1 firing").await;
    wait_text(&c, "#watches", "web v2.0.1").await;
    wait_text(&c, "#maintenance-now", "db-upgrade").await;
    // The state filter keeps only what is down.
    find(&c, "#filter-state")
        .await
        .select_by_value("down")
        .await
        .unwrap();
    let counts = wait_text(&c, "#counts", "1 of").await;
    assert!(counts.starts_with("1 of"), "{counts}");
    assert!(
        c.find(Locator::Css("tr[data-name='web-ok']"))
            .await
            .is_err()
    );
    find(&c, "#filter-state")
        .await
        .select_by_value("")
        .await
        .unwrap();
    screenshot(&c, "overview").await;
    assert_no_console_errors(&c, "the overview").await;

    // The probe's page, reached by its link: reason, latency chart, timeline, failures.
    find(&c, "tr[data-name='web-broken'] a")
        .await
        .click()
        .await
        .unwrap();
    find(&c, "#latency-chart .uplot canvas").await;
    let reason = wait_text(&c, "#probe-reason", "status 500").await;
    assert_eq!(reason, "status 500, expected 2xx");
    wait_text(&c, "#failures", "status 500").await;
    find(&c, "#timeline .bad").await;
    wait_text(&c, "#cert", "no certificate").await;
    // Every run failed: no uptime, the budget of a 99.9 % SLO overspent.
    let uptime = wait_text(&c, "#uptime", "99.9 %").await;
    assert!(uptime.contains("Uptime 24 h\n0 %"), "{uptime}");
    assert!(
        uptime.contains("Error budget left (30 d)\noverspent: 1000× the failures allowed"),
        "{uptime}"
    );
    screenshot(&c, "probe").await;
    assert_no_console_errors(&c, "the probe page").await;

    // Alerts: the firing ProbeFailed with its labels; silence it from its card.
    find(&c, "nav a[data-nav='alerts']")
        .await
        .click()
        .await
        .unwrap();
    let card = wait_text(&c, "article[data-alertname='ProbeFailed']", "firing").await;
    assert!(card.contains("probe=\"web-broken\""), "{card}");
    assert!(card.contains("status 500"), "{card}");
    screenshot(&c, "alerts").await;
    find(&c, "article[data-alertname='ProbeFailed'] .silence-btn")
        .await
        .click()
        .await
        .unwrap();
    let matchers = find(&c, "#silence-matchers")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(matchers.contains("probe=\"web-broken\""), "{matchers}");
    assert!(matchers.contains("alertname=\"ProbeFailed\""), "{matchers}");
    find(&c, "#silence-submit").await.click().await.unwrap();
    // The token is set: the page asks for it before the first write, once.
    find(&c, "#token-input")
        .await
        .send_keys(TOKEN)
        .await
        .unwrap();
    find(&c, "#token-dialog button[type='submit']")
        .await
        .click()
        .await
        .unwrap();
    let row = wait_text(&c, "#silences tr[data-created-by='dashboard']", "dashboard").await;
    assert!(row.contains("active"), "{row}");
    let silences: Value = serde_json::from_str(&d.get("/api/v1/silences").1).unwrap();
    let made = silences["silences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["createdBy"] == "dashboard")
        .expect("the silence reached the daemon");
    assert!(
        made["matchers"]
            .as_array()
            .unwrap()
            .contains(&json!("probe=\"web-broken\""))
    );
    // Expire it: the token kept for the tab is sent without asking again.
    find(&c, "#silences tr[data-created-by='dashboard'] .expire-btn")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "#silences tr[data-created-by='dashboard']", "expired").await;
    assert!(c.find(Locator::Css("#token-input")).await.is_err());
    let silences: Value = serde_json::from_str(&d.get("/api/v1/silences").1).unwrap();
    let state = silences["silences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["createdBy"] == "dashboard")
        .map(|s| s["status"]["state"].clone());
    assert_eq!(state, Some(json!("expired")));
    assert_no_console_errors(&c, "the alerts page").await;

    // Deployments: the list, then the deployment with its check drawn over the watch.
    find(&c, "nav a[data-nav='deployments']")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "#deployments table", "watching").await;
    find(&c, &format!("a[href='#/deployment/{deployment}']"))
        .await
        .click()
        .await
        .unwrap();
    let why = wait_text(&c, "#why", "Under watch").await;
    assert!(why.contains("No check is failing"), "{why}");
    let check = wait_text(&c, "section[data-check='latency']", "pass").await;
    assert!(check.contains("<= 5"), "{check}");
    find(&c, "section[data-check='latency'] .uplot canvas").await;
    screenshot(&c, "deployment").await;
    assert_no_console_errors(&c, "the deployment page").await;

    // Maintenance: the active window and the upcoming one.
    find(&c, "nav a[data-nav='maintenance']")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "tr[data-maintenance='db-upgrade']", "active").await;
    wait_text(&c, "tr[data-maintenance='network-work']", "upcoming").await;
    assert_no_console_errors(&c, "the maintenance page").await;

    // Query: a graph and a table, typed into the box and run with Enter.
    find(&c, "nav a[data-nav='query']")
        .await
        .click()
        .await
        .unwrap();
    find(&c, "#query-expr")
        .await
        .send_keys("probe_success\u{E007}")
        .await
        .unwrap();
    find(&c, "#query-graph .uplot canvas").await;
    let table = wait_text(&c, "#query-table", "web-broken").await;
    assert!(table.contains("web-ok"), "{table}");
    screenshot(&c, "query").await;
    assert_no_console_errors(&c, "the query page").await;

    // On a phone's width nothing runs off the side: wide tables scroll within their box.
    c.set_window_size(390, 844).await.unwrap();
    let pages = [
        ("#/", "overview"),
        ("#/probe/web-broken", "probe"),
        ("#/alerts", "alerts"),
        (&format!("#/deployment/{deployment}"), "deployment"),
    ];
    for (hash, page) in pages {
        c.goto(&format!("{base}{hash}")).await.unwrap();
        find(&c, &format!("body[data-page='{page}']")).await;
        let overflow = js(
            &c,
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        )
        .await;
        assert_eq!(overflow, json!(0), "{hash} is wider than a phone");
    }
    assert_no_console_errors(&c, "the pages on a phone's width").await;

    c.close().await.unwrap();
}

/// Markup in a probe's reason and in label values is shown as text: no element is made from
/// it and no script of it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_reasons_and_labels_stays_text() {
    if !require(CHROMEDRIVER) || !require(CHROMIUM) {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), xss())
        .await
        .expect("the XSS walk finishes within 3 minutes");
}

const IMG: &str = "<img src=x onerror=window.__xss=1>";
const SCRIPT: &str = "\"><script>window.__xss=2</script>";

async fn xss() {
    let target = TestServer::start(|_| (200, "text/plain", "plain body".into()));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
[storage]
path = "{{dir}}/data"
[global]
probe_interval = "1s"
probe_timeout = "900ms"
evaluation_interval = "1s"
labels = {{ team = '{IMG}' }}
[[probe]]
name = "xss"
url = "http://127.0.0.1:{port}/"
job = '{SCRIPT}'
body_contains = '{IMG}'
failure_threshold = 1
"#,
        port = target.port
    );
    let mut d = Daemon::start_in(dir.path(), &config, &[]);
    d.wait_ready();
    wait_until(20, "the xss probe's alert firing", || {
        d.get("/api/v1/alerts").1.contains("\"firing\"")
    });
    let driver = Driver::start();
    let c = browser(&driver).await;
    let base = format!("http://127.0.0.1:{}/", d.port);

    // Each page, what it shows literally: the reason (with the `team` label's markup) and
    // the job label's markup.
    let pages = [
        (
            "",
            "tr[data-name='xss']",
            [IMG, "<script>window.__xss=2</script>"],
        ),
        ("#/probe/xss", "#probe-reason", [IMG, IMG]),
        (
            "#/alerts",
            "article[data-alertname='ProbeFailed']",
            [IMG, "<script>window.__xss=2</script>"],
        ),
        (
            "#/query?q=probe_success",
            "#query-table",
            ["<script>window.__xss=2</script>", "probe=\"xss\""],
        ),
    ];
    for (hash, shows, literal) in pages {
        c.goto(&format!("{base}{hash}")).await.unwrap();
        for needle in literal {
            wait_text(&c, shows, needle).await;
        }
        let made = js(
            &c,
            "return { imgs: document.querySelectorAll('img').length, \
                      scripts: [...document.scripts].filter(s => !s.src).length, \
                      ran: window.__xss === undefined ? null : window.__xss };",
        )
        .await;
        assert_eq!(
            made,
            json!({ "imgs": 0, "scripts": 0, "ran": null }),
            "{hash}: an element was made from data"
        );
        assert_no_console_errors(&c, hash).await;
    }
    c.close().await.unwrap();
}

/// The raw head and body of `GET path`.
fn get_raw(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

/// The page and its assets come with the headers that keep injected markup inert and the page
/// out of frames; assets have content-hashed names and cache for a year.
#[test]
fn the_page_forbids_inline_script_and_framing_and_assets_cache_forever() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{dir}/data\"\n",
        &[],
    );
    d.wait_ready();
    let (head, page) = get_raw(d.port, "/");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let csp = head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a CSP header");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(
        !page.contains("<script>") && !page.contains(" onclick="),
        "{page}"
    );

    let js = page
        .split('"')
        .find(|p| p.starts_with("/ui/app.") && p.ends_with(".js"))
        .expect("the page names app.<hash>.js");
    let (head, body) = get_raw(d.port, js);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("immutable"), "{head}");
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(body.contains("textContent"));
    let (head, _) = get_raw(d.port, "/ui/app.js");
    assert!(head.starts_with("http/1.1 404"), "{head}");
    // No external origin anywhere in the page or its script.
    assert!(!page.contains("https://") && !body.contains("https://"));
}

/// A probe of a server that answers 503 while `failing` is set, else 200.
fn flaky_server(failing: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> TestServer {
    let failing = failing.clone();
    TestServer::start(move |_| {
        if failing.load(std::sync::atomic::Ordering::SeqCst) {
            (503, "text/plain", "busy".into())
        } else {
            (200, "text/plain", "ok".into())
        }
    })
}

/// Probes `flaky` and `steady`, run every second.
fn two_probes(flaky: u16, steady: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
[storage]
path = "{{dir}}/data"
[global]
probe_interval = "1s"
probe_timeout = "900ms"
evaluation_interval = "1s"
[[probe]]
name = "flaky"
url = "http://127.0.0.1:{flaky}/"
job = "web"
[[probe]]
name = "steady"
url = "http://127.0.0.1:{steady}/"
job = "web"
"#
    )
}

/// The status, head (lower case) and body of `GET path` with extra request headers.
fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn etag(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_string()
}

/// `GET /api/v1/targets/health` answers 304 to a tab that has the current list while probes
/// only run again, and the new list once one changes state; `/api/v1/targets` keeps its shape.
#[test]
fn targets_health_is_not_modified_until_a_probe_changes_state() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flaky = flaky_server(&failing);
    let steady = TestServer::start(|_| (200, "text/plain", "ok".into()));
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &two_probes(flaky.port, steady.port), &[]);
    d.wait_ready();
    const PATH: &str = "/api/v1/targets/health";
    wait_until(20, "both probes up", || {
        d.get(PATH).1.matches(r#""health":"up""#).count() == 2
    });
    let (status, head, body) = get_with(d.port, PATH, &[]);
    assert_eq!(status, 200, "{head}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list["targets"][0],
        json!({"kind": "probe", "job": "web", "probe": "flaky",
               "url": format!("http://127.0.0.1:{}/", flaky.port), "health": "up", "lastError": ""})
    );
    let up = etag(&head);
    let run_of_flaky = || {
        let all: Value = serde_json::from_str(&d.get("/api/v1/targets").1).unwrap();
        all["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["probe"] == "flaky")
            .cloned()
            .unwrap()
    };
    let before = run_of_flaky();
    wait_until(10, "flaky probed again", || {
        run_of_flaky()["lastRun"] != before["lastRun"]
    });
    let (status, head, body) = get_with(d.port, PATH, &[("If-None-Match", &up)]);
    assert_eq!((status, body.as_str()), (304, ""), "{head}");
    assert_eq!(etag(&head), up);

    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut changed = None;
    wait_until(20, "a 200 with flaky down", || {
        let (status, head, body) = get_with(d.port, PATH, &[("If-None-Match", &up)]);
        changed = (status == 200).then_some((head, body));
        changed.is_some()
    });
    let (head, body) = changed.unwrap();
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["targets"][0]["health"], "down", "{body}");
    assert!(
        list["targets"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("status 503"),
        "{body}"
    );
    assert_eq!(list["targets"][1]["health"], "up", "{body}");
    let down = etag(&head);
    assert_ne!(down, up);
    let (status, _, _) = get_with(d.port, PATH, &[("If-None-Match", &down)]);
    assert_eq!(status, 304);

    // The full list is what it was for API clients: every field, timing included.
    let mut keys: Vec<String> = run_of_flaky()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "health",
            "job",
            "kind",
            "lastDurationSeconds",
            "lastError",
            "lastRun",
            "probe",
            "url"
        ]
    );
}

/// The overview shows a probe going down and up again (read from the 304-answering state
/// list), and a refresh replaces only the rows that changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_follows_state_changes_and_keeps_unchanged_rows() {
    if !require(CHROMEDRIVER) || !require(CHROMIUM) {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), follow())
        .await
        .expect("the overview follows within 3 minutes");
}

async fn follow() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flaky = flaky_server(&failing);
    let steady = TestServer::start(|_| (200, "text/plain", "ok".into()));
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &two_probes(flaky.port, steady.port), &[]);
    d.wait_ready();
    wait_until(20, "both probes up", || {
        d.get("/api/v1/targets/health")
            .1
            .matches(r#""health":"up""#)
            .count()
            == 2
    });
    let driver = Driver::start();
    let c = browser(&driver).await;
    c.goto(&format!("http://127.0.0.1:{}/", d.port))
        .await
        .unwrap();
    wait_text(&c, "tr[data-name='flaky'] .state", "up").await;
    wait_text(&c, "tr[data-name='steady'] .state", "up").await;
    js(
        &c,
        "document.querySelector(\"tr[data-name='steady']\").__kept = true;",
    )
    .await;

    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_text(&c, "tr[data-name='flaky'] .state", "down").await;
    wait_text(&c, "tr[data-name='flaky']", "status 503").await;
    let counts = wait_text(&c, "#counts", "1 down").await;
    assert!(counts.contains("1 up"), "{counts}");
    assert_eq!(
        js(
            &c,
            "return document.querySelector(\"tr[data-name='steady']\").__kept === true;"
        )
        .await,
        json!(true),
        "the unchanged row was rebuilt"
    );

    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_text(&c, "tr[data-name='flaky'] .state", "up").await;
    let counts = wait_text(&c, "#counts", "2 up").await;
    assert!(!counts.contains("down"), "{counts}");
    assert_no_console_errors(&c, "the overview").await;
    c.close().await.unwrap();
}
