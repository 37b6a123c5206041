//! Scrapes against real hyper 1 servers on loopback, driving [`ScrapeManager`] with a real
//! [`Head`]: what a user sees in `/api/v1/targets` (health, last error), in the synthetic series
//! (`up`, `scrape_samples_scraped`), in the daemon's own metrics, and in instant queries.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use postflight::clock::Clock;
use postflight::config::load_str;
use postflight::liveness::Liveness;
use postflight::promql::{Engine, Value, parse};
use postflight::scrape::manager::ScrapeManager;
use postflight::series::head::Head;
use postflight::targets::{TargetHealth, TargetsView};
use postflight::telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod common;

type Body = BoxBody<Bytes, Infallible>;
type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// A server on 127.0.0.1:0; dropping it stops accepting and closes its connections.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

fn page(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

fn text(body: impl Into<Bytes>) -> Response<Body> {
    page(200, "text/plain; version=0.0.4; charset=utf-8", body)
}

async fn serve(h: Handler) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Connections live in this set, so aborting the server ends them too.
        let mut conns = JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let h = h.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Server { addr, task }
}

/// A body of `chunks` chunks of `chunk` each, produced one per poll, counting what was sent:
/// a scrape that stops reading early shows as a count well below `chunks`.
struct Stream {
    chunk: Bytes,
    left: usize,
    sent: Arc<AtomicUsize>,
}

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

/// A running scrape manager over a fresh head.
struct Scraping {
    head: Arc<Head>,
    view: Arc<TargetsView>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _liveness: Liveness,
}

impl Drop for Scraping {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}

/// Starts scraping the `[[job]]` sections in `jobs` (`{addr}`-style placeholders already
/// filled in by the caller).
fn start(jobs: &str) -> Scraping {
    let config = load_str(jobs, "test.toml").unwrap_or_else(|e| panic!("{e}\n{jobs}"));
    let head = Arc::new(Head::new());
    let view = Arc::new(TargetsView::default());
    let telemetry = Telemetry::new();
    let liveness = Liveness::new();
    let shutdown = CancellationToken::new();
    let manager = ScrapeManager {
        config: Arc::new(config),
        ingest: Arc::new(postflight::ingest::Ingest::new(head.clone())),
        targets: view.clone(),
        telemetry: telemetry.clone(),
        clock: Clock::System,
        heartbeat: Arc::new(liveness.register("scrape", Duration::from_secs(60))),
        tls: postflight::probe::ProbeTls::with_roots(Vec::new()).unwrap(),
    };
    let task = tokio::spawn(manager.run(shutdown.clone()));
    Scraping {
        head,
        view,
        telemetry,
        shutdown,
        task,
        _liveness: liveness,
    }
}

impl Scraping {
    fn find(&self, job: &str) -> Option<TargetHealth> {
        self.view.list().into_iter().find(|t| t.job == job)
    }

    fn target(&self, job: &str) -> TargetHealth {
        self.find(job)
            .unwrap_or_else(|| panic!("no target of job {job}"))
    }

    /// Waits until the target of `job` has run `runs` more times than when called (checking
    /// every 20 ms, giving up after `limit`), and returns its health.
    async fn after_runs(&self, job: &str, runs: usize, limit: Duration) -> TargetHealth {
        // The manager registers its targets once its task has started.
        let mut last = self.find(job).and_then(|t| t.last_run);
        let mut seen = 0;
        let deadline = Instant::now() + limit;
        loop {
            let t = self.find(job).unwrap_or_else(|| TargetHealth {
                kind: "scrape",
                job: job.into(),
                probe: None,
                log: None,
                url: String::new(),
                health: "unknown",
                last_error: String::new(),
                last_run: None,
                last_duration_seconds: 0.0,
                samples: None,
            });
            if t.last_run != last {
                seen += 1;
                last = t.last_run;
                if seen >= runs {
                    return t;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{job}: {seen} of {runs} scrapes within {limit:?}; last {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The instant vector of `expr` now, as (labels in Prometheus notation, value), sorted.
    fn query(&self, expr: &str) -> Vec<(String, f64)> {
        let now = chrono::Utc::now().timestamp_millis();
        let e = parse(expr).unwrap();
        match Engine::default().instant(&*self.head, &e, now).unwrap() {
            Value::Vector(v) => {
                let mut out: Vec<_> = v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect();
                out.sort_by(|a, b| a.0.cmp(&b.0));
                out
            }
            other => panic!("{expr}: not a vector: {other:?}"),
        }
    }

    fn value(&self, expr: &str) -> Option<f64> {
        let v = self.query(expr);
        assert!(v.len() <= 1, "{expr}: {v:?}");
        v.first().map(|s| s.1)
    }

    fn errors(&self, job: &str, reason: &str) -> u64 {
        self.telemetry
            .scrape_errors_total
            .with_label_values(&[job, reason])
            .get()
    }
}

/// A `[[job]]` with one target, scraped every 300ms unless `extra` sets another interval.
fn job(name: &str, addr: SocketAddr, extra: &str) -> String {
    let interval = if extra.contains("scrape_interval") {
        ""
    } else {
        "scrape_interval = \"300ms\"\n"
    };
    format!("[[job]]\nname = \"{name}\"\ntargets = [\"{addr}\"]\n{interval}{extra}\n")
}

const WAIT: Duration = Duration::from_secs(5);

const TEXT_PAGE: &str = "# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code=\"200\",method=\"get\"} 1027
http_requests_total{code=\"500\",method=\"get\"} 3
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.5e+07
";

const OPENMETRICS_PAGE: &str = "# TYPE jobs counter
# HELP jobs Jobs run.
jobs_total{queue=\"a\"} 17
jobs_created{queue=\"a\"} 1.7e9
# TYPE temperature_celsius gauge
# UNIT temperature_celsius celsius
temperature_celsius 21.5
# EOF
";

#[tokio::test]
async fn text_and_openmetrics_pages_are_scraped_with_accept_negotiation() {
    let plain = serve(handler(|_| async { text(TEXT_PAGE) })).await;
    let accepts = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = accepts.clone();
    let connections = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen_connection = connections.clone();
    let om = serve(handler(move |req: Request<Incoming>| {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let accept = header("accept");
        seen.lock().unwrap().push(accept.clone());
        seen_connection.lock().unwrap().push(header("connection"));
        async move {
            if accept.contains("application/openmetrics-text") {
                page(
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    OPENMETRICS_PAGE,
                )
            } else {
                text("only_text_format 1\n")
            }
        }
    }))
    .await;
    let s = start(&format!(
        "{}{}",
        job("plain", plain.addr, ""),
        job("om", om.addr, "")
    ));

    let t = s.after_runs("plain", 1, WAIT).await;
    assert_eq!((t.health, t.last_error.as_str()), ("up", ""), "{t:?}");
    assert_eq!(t.samples, Some(3));
    assert_eq!(t.url, format!("http://{}/metrics", plain.addr));
    let inst = plain.addr.to_string();
    assert_eq!(
        s.query(r#"http_requests_total{job="plain"}"#),
        vec![
            (
                format!(
                    r#"http_requests_total{{code="200", instance="{inst}", job="plain", method="get"}}"#
                ),
                1027.0
            ),
            (
                format!(
                    r#"http_requests_total{{code="500", instance="{inst}", job="plain", method="get"}}"#
                ),
                3.0
            ),
        ]
    );
    assert_eq!(s.value(r#"up{job="plain"}"#), Some(1.0));
    assert_eq!(s.value(r#"scrape_samples_scraped{job="plain"}"#), Some(3.0));
    assert_eq!(
        s.value(r#"process_resident_memory_bytes{job="plain"}"#),
        Some(2.5e7)
    );

    let t = s.after_runs("om", 1, WAIT).await;
    assert_eq!((t.health, t.last_error.as_str()), ("up", ""), "{t:?}");
    let accept = accepts.lock().unwrap()[0].clone();
    // A plain-HTTP target's connection is kept for the next scrape, as Prometheus keeps it:
    // no `Connection: close`.
    assert_eq!(connections.lock().unwrap()[0], "");
    assert!(
        accept.starts_with("application/openmetrics-text;version=1.0.0"),
        "OpenMetrics is asked for first: {accept}"
    );
    // The OpenMetrics parser ran: `jobs_total` keeps its name, the `# EOF` is accepted.
    assert_eq!(s.value(r#"jobs_total{job="om"}"#), Some(17.0));
    assert_eq!(s.value(r#"temperature_celsius{job="om"}"#), Some(21.5));
    assert_eq!(s.value(r#"only_text_format{job="om"}"#), None);
    assert_eq!(s.value(r#"up{job="om"}"#), Some(1.0));
    assert!(s.value(r#"scrape_samples_scraped{job="om"}"#).unwrap() >= 2.0);
}

#[tokio::test]
async fn garbage_and_non_utf8_pages_mark_the_target_down_with_the_line() {
    let garbage = serve(handler(|_| async {
        text("ok_metric 1\nthis is { not an exposition\n")
    }))
    .await;
    let binary = serve(handler(|_| async {
        text(&b"ok_metric 1\nbad_\xff\xfe_metric 2\n"[..])
    }))
    .await;
    let s = start(&format!(
        "{}{}",
        job("garbage", garbage.addr, ""),
        job("binary", binary.addr, "")
    ));
    let t = s.after_runs("garbage", 1, WAIT).await;
    assert_eq!(t.health, "down");
    assert!(
        t.last_error.starts_with("invalid exposition: line 2: "),
        "{}",
        t.last_error
    );
    assert_eq!(s.value(r#"up{job="garbage"}"#), Some(0.0));
    assert_eq!(
        s.value(r#"scrape_samples_scraped{job="garbage"}"#),
        Some(0.0)
    );
    // Nothing of a rejected page is stored, not even the valid line before the error.
    assert_eq!(s.value(r#"ok_metric{job="garbage"}"#), None);
    assert!(s.errors("garbage", "parse") >= 1);

    let t = s.after_runs("binary", 1, WAIT).await;
    assert_eq!(t.health, "down");
    assert_eq!(t.last_error, "invalid exposition: line 2: invalid UTF-8");
    assert_eq!(s.value(r#"up{job="binary"}"#), Some(0.0));
    assert_eq!(s.value(r#"ok_metric{job="binary"}"#), None);
}

#[tokio::test]
async fn a_hanging_target_times_out_and_others_keep_their_schedule() {
    // Accepts connections and never answers.
    let hang = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_addr = hang.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = hang.accept().await {
            held.push(c);
        }
    });
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let good = serve(handler(move |_| {
        h.fetch_add(1, Ordering::Relaxed);
        async { text("fine 1\n") }
    }))
    .await;
    let s = start(&format!(
        "{}{}",
        job("hang", hang_addr, "scrape_timeout = \"250ms\""),
        job("good", good.addr, "")
    ));

    let t = s.after_runs("hang", 1, WAIT).await;
    assert_eq!(t.health, "down");
    assert_eq!(t.last_error, "timed out after 250ms");
    assert!(
        t.last_duration_seconds >= 0.25 && t.last_duration_seconds < 0.6,
        "gave up after {}s",
        t.last_duration_seconds
    );
    assert_eq!(s.value(r#"up{job="hang"}"#), Some(0.0));
    assert!(s.errors("hang", "timeout") >= 1);

    // Meanwhile the good target is scraped every 300ms: 2 s give ~6 scrapes.
    let before = hits.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let scraped = hits.load(Ordering::Relaxed) - before;
    assert!((4..=9).contains(&scraped), "{scraped} scrapes in 2 s");
    assert_eq!(s.target("good").health, "up");
    // And the hanging one kept timing out on its own schedule too.
    let t = s.after_runs("hang", 2, WAIT).await;
    assert_eq!(t.last_error, "timed out after 250ms");
    holder.abort();
}

#[tokio::test]
async fn a_body_over_the_limit_is_cut_off_while_streaming() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    // 64 MiB of valid exposition in 64 KiB chunks, no Content-Length.
    let line = "filler_metric_with_a_long_name{label=\"value\"} 1\n";
    let chunk = Bytes::from(line.repeat(65536 / line.len()));
    let big = serve(handler(move |_| {
        let body = Stream {
            chunk: chunk.clone(),
            left: 1024,
            sent: counter.clone(),
        };
        async move {
            Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(body.boxed())
                .unwrap()
        }
    }))
    .await;
    let s = start(&job(
        "big",
        big.addr,
        "body_size_limit = 1000000\nscrape_interval = \"2s\"",
    ));
    let t = s.after_runs("big", 1, WAIT).await;
    assert_eq!(t.health, "down");
    assert!(t.last_error.contains("1000000 bytes"), "{}", t.last_error);
    assert_eq!(s.value(r#"up{job="big"}"#), Some(0.0));
    assert!(s.errors("big", "body_size") >= 1);
    // The scrape hung up early: the server produced far less than the 64 MiB page (what
    // it did produce is the ~1 MB read plus what the socket buffers held).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chunks = sent.load(Ordering::Relaxed);
    assert!(
        chunks < 512,
        "the server got to send {chunks} of 1024 chunks"
    );
}

#[tokio::test]
async fn a_page_over_the_sample_limit_keeps_the_first_samples_and_counts_the_error() {
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!("series_{i:02} {i}\n"));
    }
    let many = serve(handler(move |_| {
        let body = body.clone();
        async move { text(body) }
    }))
    .await;
    let s = start(&job("many", many.addr, "sample_limit = 5"));
    let t = s.after_runs("many", 1, WAIT).await;
    assert_eq!(t.samples, Some(5));
    assert!(
        t.last_error.contains("sample limit 5 exceeded"),
        "{}",
        t.last_error
    );
    assert_eq!(s.errors("many", "sample_limit"), 1);
    let page = s.telemetry.render();
    assert!(
        page.contains(r#"postflight_scrape_errors_total{job="many",reason="sample_limit"} 1"#),
        "{page}"
    );
    assert_eq!(s.value(r#"scrape_samples_scraped{job="many"}"#), Some(5.0));
    let stored: Vec<String> = s
        .query(r#"{job="many", __name__=~"series_.*"}"#)
        .into_iter()
        .map(|(l, _)| l.split('{').next().unwrap().to_string())
        .collect();
    assert_eq!(
        stored,
        [
            "series_00",
            "series_01",
            "series_02",
            "series_03",
            "series_04"
        ]
    );
    s.after_runs("many", 1, WAIT).await;
    assert_eq!(s.errors("many", "sample_limit"), 2);
}

#[tokio::test]
async fn refused_connections_and_http_errors_mark_the_target_down() {
    let failing = serve(handler(|_| async {
        page(500, "text/plain", "internal error")
    }))
    .await;
    // A port nobody listens on, taken after the failing server's: the other way round, the
    // server could be handed the port just freed (it happened), and "refused" would get a 500.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = start(&format!(
        "{}{}",
        job("refused", closed, ""),
        job("failing", failing.addr, "")
    ));
    let t = s.after_runs("refused", 1, WAIT).await;
    assert_eq!(t.health, "down");
    assert_eq!(t.last_error, "connection refused");
    assert_eq!(s.value(r#"up{job="refused"}"#), Some(0.0));
    assert!(s.errors("refused", "connect") >= 1);

    let t = s.after_runs("failing", 1, WAIT).await;
    assert_eq!(t.health, "down");
    assert!(t.last_error.contains("500"), "{}", t.last_error);
    assert_eq!(s.value(r#"up{job="failing"}"#), Some(0.0));
    assert!(s.errors("failing", "http_status") >= 1);
}

#[tokio::test]
async fn a_redirected_target_is_scraped_where_it_points() {
    // Prometheus follows a target's redirects (follow_redirects defaults to true): so does
    // postflight, with the job and instance of the target as configured.
    let s = serve(handler(|req| async move {
        match req.uri().path() {
            "/metrics" => Response::builder()
                .status(302)
                .header("Location", "/moved/metrics")
                .body(Full::new(Bytes::new()).boxed())
                .unwrap(),
            "/moved/metrics" => text(TEXT_PAGE),
            _ => page(404, "text/plain", "no"),
        }
    }))
    .await;
    let scraping = start(&job("moved", s.addr, ""));
    let t = scraping.after_runs("moved", 1, WAIT).await;
    assert_eq!(t.health, "up", "{}", t.last_error);
    assert_eq!(
        scraping.value(r#"process_resident_memory_bytes{job="moved"}"#),
        Some(2.5e7)
    );
}

#[tokio::test]
async fn a_late_scrape_does_not_move_the_target_off_its_timestamp_grid() {
    // Samples are stamped on the target's schedule when a scrape starts within 2 ms of it
    // (Prometheus' timestamp tolerance), which makes a timestamp cost 1 bit in a chunk. A
    // scrape that starts late must not shift the schedule for the scrapes after it.
    let s = serve(handler(|_| async { text(TEXT_PAGE) })).await;
    let scraping = start(&job("grid", s.addr, ""));
    scraping.after_runs("grid", 2, WAIT).await;
    // Stall the runtime (the test's one thread) for longer than an interval: a tick falls
    // inside, and fires late by far more than tokio's 5 ms "missed tick" mark.
    std::thread::sleep(Duration::from_millis(350));
    scraping.after_runs("grid", 6, WAIT).await;
    let now = chrono::Utc::now().timestamp_millis();
    let e = parse(r#"up{job="grid"}[1m]"#).unwrap();
    let Value::Matrix(m) = Engine::default().instant(&*scraping.head, &e, now).unwrap() else {
        panic!("not a matrix")
    };
    let ts: Vec<i64> = m[0].samples.iter().map(|x| x.t).collect();
    assert!(ts.len() >= 8, "{ts:?}");
    // The late scrape itself is off the grid; every other one is on it or, when a loaded
    // machine started it more than the 2 ms tolerance late, within a few ms of it (it gets its
    // own time, as in Prometheus). A schedule moved by the late scrape would put every later
    // timestamp tens of ms off.
    let off_by = |t: i64| {
        let r = (t - ts[0]).rem_euclid(300);
        r.min(300 - r)
    };
    let far = ts.iter().filter(|&&t| off_by(t) > 25).count();
    let on = ts.iter().filter(|&&t| off_by(t) == 0).count();
    assert!(
        far <= 1 && on * 2 >= ts.len(),
        "{far} of {} timestamps far off the grid, {on} on it: {ts:?}",
        ts.len()
    );
}

/// What the switchable target serves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Both,
    OnlyA,
    Error,
    Garbage,
}

async fn switchable() -> (Server, Arc<Mutex<Mode>>) {
    let mode = Arc::new(Mutex::new(Mode::Both));
    let m = mode.clone();
    let s = serve(handler(move |_| {
        let mode = *m.lock().unwrap();
        async move {
            match mode {
                Mode::Both => text("a_metric 1\nb_metric 2\n"),
                Mode::OnlyA => text("a_metric 1\n"),
                Mode::Error => page(503, "text/plain", "unavailable"),
                Mode::Garbage => text("a_metric one\n"),
            }
        }
    }))
    .await;
    (s, mode)
}

#[tokio::test]
async fn a_series_that_leaves_the_page_is_gone_after_the_next_scrape() {
    let (srv, mode) = switchable().await;
    let s = start(&job("flip", srv.addr, ""));
    s.after_runs("flip", 1, WAIT).await;
    assert_eq!(s.value(r#"b_metric{job="flip"}"#), Some(2.0));
    *mode.lock().unwrap() = Mode::OnlyA;
    // The scrape in flight may have been served the old page; the one after is not.
    s.after_runs("flip", 2, WAIT).await;
    assert_eq!(s.value(r#"b_metric{job="flip"}"#), None);
    assert_eq!(s.value(r#"a_metric{job="flip"}"#), Some(1.0));
    *mode.lock().unwrap() = Mode::Both;
    s.after_runs("flip", 2, WAIT).await;
    assert_eq!(s.value(r#"b_metric{job="flip"}"#), Some(2.0));
}

#[tokio::test]
async fn a_target_that_goes_down_has_its_series_stale_at_once() {
    for down in [Mode::Error, Mode::Garbage] {
        let (srv, mode) = switchable().await;
        let s = start(&job("flaky", srv.addr, ""));
        s.after_runs("flaky", 1, WAIT).await;
        assert_eq!(s.value(r#"a_metric{job="flaky"}"#), Some(1.0));
        *mode.lock().unwrap() = down;
        let t = s.after_runs("flaky", 2, WAIT).await;
        assert_eq!(t.health, "down");
        assert_eq!(
            s.value(r#"a_metric{job="flaky"}"#),
            None,
            "{}",
            t.last_error
        );
        assert_eq!(s.value(r#"b_metric{job="flaky"}"#), None);
        assert_eq!(s.value(r#"up{job="flaky"}"#), Some(0.0));
        // Back up: the series return with the next good scrape.
        *mode.lock().unwrap() = Mode::Both;
        let t = s.after_runs("flaky", 2, WAIT).await;
        assert_eq!(t.health, "up");
        assert_eq!(s.value(r#"a_metric{job="flaky"}"#), Some(1.0));
        assert_eq!(s.value(r#"up{job="flaky"}"#), Some(1.0));
    }
}

#[tokio::test]
async fn the_real_daemon_reports_a_down_target_in_its_api() {
    // One end-to-end pass through the binary: the targets API shows what the manager saw.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n[storage]\npath = \"{{dir}}/data\"\n{}",
        job("gone", closed, "")
    );
    let mut d = common::Daemon::start_in(dir.path(), &cfg, &[]);
    tokio::task::spawn_blocking(move || {
        d.wait_ready();
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = d.get("/api/v1/targets");
            assert_eq!(status, 200);
            if body.contains("connection refused") {
                assert!(body.contains(r#""health":"down""#), "{body}");
                break;
            }
            assert!(Instant::now() < deadline, "{body}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (_, q) = d.get("/api/v1/query?query=up%7Bjob%3D%22gone%22%7D");
        assert!(q.contains(r#""value":["#) && q.contains(r#""0"]"#), "{q}");
    })
    .await
    .unwrap();
}

/// How the hand-written HTTP/1.1 server of [`raw_server`] treats a connection.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Conn {
    /// Answers every request on it (HTTP/1.1, `Content-Length`).
    KeepAlive,
    /// Answers with `Connection: close` and closes.
    Close,
    /// Answers without saying anything, then closes (an idle timeout shorter than the
    /// scrape interval).
    IdleClose,
    /// Answers the first request; closes on reading the second without answering it.
    DropSecond,
}

/// What [`raw_server`] saw: connections accepted, requests answered, requests that asked for
/// `Connection: close`, requests dropped unanswered.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    answered: AtomicUsize,
    asked_close: AtomicUsize,
    dropped: AtomicUsize,
}

/// A server on 127.0.0.1:0 speaking HTTP/1.1 by hand, so that it can close connections where
/// a real server might: the scrape target for the kept-connection tests.
async fn raw_server(mode: Conn) -> (Server, Arc<Seen>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            s.accepted.fetch_add(1, Ordering::Relaxed);
            let s = s.clone();
            conns.spawn(async move {
                let mut buf = Vec::new();
                let mut answered = 0;
                loop {
                    // One request head (a scrape has no body).
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 1024];
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let req = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    buf.drain(..end);
                    if req.contains("\r\nconnection: close\r\n") {
                        s.asked_close.fetch_add(1, Ordering::Relaxed);
                    }
                    if mode == Conn::DropSecond && answered == 1 {
                        s.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    let close = if mode == Conn::Close {
                        "Connection: close\r\n"
                    } else {
                        ""
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n{close}Content-Length: {}\r\n\r\n{TEXT_PAGE}",
                        TEXT_PAGE.len()
                    );
                    if tcp.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    answered += 1;
                    s.answered.fetch_add(1, Ordering::Relaxed);
                    if matches!(mode, Conn::Close | Conn::IdleClose) {
                        return;
                    }
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    (Server { addr, task }, seen)
}

#[tokio::test]
async fn a_target_keeps_its_connection_between_scrapes_as_prometheus_does() {
    // Prometheus keeps a scrape target's connection open; so does postflight for plain HTTP,
    // and it must never turn a server's close into a failed scrape.
    for mode in [
        Conn::KeepAlive,
        Conn::Close,
        Conn::IdleClose,
        Conn::DropSecond,
    ] {
        let (srv, seen) = raw_server(mode).await;
        let name = format!("{mode:?}").to_ascii_lowercase();
        let s = start(&job(&name, srv.addr, ""));
        let t = s.after_runs(&name, 6, WAIT).await;
        // Every scrape of the target succeeded.
        let failed = s
            .telemetry
            .scrapes_total
            .with_label_values(&[name.as_str(), "failure"])
            .get();
        drop(s);
        assert_eq!(failed, 0, "{mode:?}: {failed} scrapes failed");
        assert_eq!(t.health, "up", "{mode:?}: {}", t.last_error);
        let answered = seen.answered.load(Ordering::Relaxed);
        let accepted = seen.accepted.load(Ordering::Relaxed);
        assert!(answered >= 6, "{mode:?}: {answered} answered");
        match mode {
            Conn::KeepAlive => {
                assert_eq!(accepted, 1, "one connection for {answered} scrapes");
                assert_eq!(
                    seen.asked_close.load(Ordering::Relaxed),
                    0,
                    "a kept connection does not ask the server to close it"
                );
            }
            // A new connection each time, and no scrape lost to a closed one.
            Conn::Close | Conn::IdleClose => assert!(accepted >= answered, "{mode:?}"),
            Conn::DropSecond => {
                // Each dropped request was sent again on a new connection.
                let dropped = seen.dropped.load(Ordering::Relaxed);
                assert!(dropped >= 5, "{dropped} dropped");
                assert!(accepted >= answered, "{accepted} accepted");
            }
        }
    }
}
