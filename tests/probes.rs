//! Probes against real servers on loopback: hyper 1 servers (plain and TLS with an rcgen CA),
//! closed ports, hanging listeners, redirect chains, oversized bodies, and the runner.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Datelike;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use postflight::config::{GlobalConfig, ProbeConfig};
use postflight::liveness::Liveness;
use postflight::probe::{
    AlertChange, ProbeOutcome, ProbeRunner, ProbeSink, ProbeStates, ProbeTls, probe_once,
};
use postflight::telemetry::{Exposer, Telemetry};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

async fn serve(h: Handler) -> Server {
    serve_with(h, None).await
}

async fn serve_with(h: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
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
            let tls = tls.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Server { addr, task }
}

fn probe_cfg(url: &str, extra: &str) -> ProbeConfig {
    toml::from_str(&format!("name = \"p\"\nurl = \"{url}\"\n{extra}")).unwrap()
}

/// TLS settings for plain-HTTP tests. An extra (unused) root keeps them working on a machine
/// without a system CA store, where `ProbeTls::system()` would refuse to start.
fn no_tls() -> ProbeTls {
    ProbeTls::with_roots(vec![pki(30, false).ca]).unwrap()
}

async fn run(url: &str, extra: &str) -> ProbeOutcome {
    probe_once(&probe_cfg(url, extra), Duration::from_secs(2), &no_tls()).await
}

#[tokio::test]
async fn ok_with_json_body_passes_with_phases() {
    let s = serve(handler(|_| async {
        full(200, r#"{"database":"connected","checks":[{"ok":true}]}"#)
    }))
    .await;
    let o = run(
        &s.url("/health"),
        r#"expect_status = [200]
json = { database = "connected", "checks.0.ok" = true }"#,
    )
    .await;
    assert!(o.success, "{}", o.reason);
    assert_eq!(o.reason, "");
    assert_eq!(o.status, Some(200));
    assert!(o.phases.connect.is_some());
    assert!(o.phases.processing.is_some());
    assert!(o.phases.transfer.is_some());
    assert_eq!(o.phases.tls, None);
    assert_eq!(o.cert_not_after, None);
}

#[tokio::test]
async fn status_503_fails_with_the_spec_reason() {
    let s = serve(handler(|_| async { full(503, "down") })).await;
    let o = run(&s.url("/"), "expect_status = [200]").await;
    assert!(!o.success);
    assert_eq!(o.status, Some(503));
    assert_eq!(o.reason, "status 503, expected 200");
    let o = run(&s.url("/"), "").await;
    assert_eq!(o.reason, "status 503, expected 2xx");
    let o = run(&s.url("/"), "expect_status = [200, 204]").await;
    assert_eq!(o.reason, "status 503, expected 200 or 204");
}

#[tokio::test]
async fn json_and_body_checks_say_what_was_wrong() {
    let s = serve(handler(|_| async {
        full(200, r#"{"database":"disconnected","checks":[]}"#)
    }))
    .await;
    let o = run(&s.url("/"), r#"json = { database = "connected" }"#).await;
    assert_eq!(
        o.reason,
        r#"json database = "disconnected", expected "connected""#
    );
    let o = run(&s.url("/"), r#"json = { "checks.0.ok" = true }"#).await;
    assert_eq!(o.reason, "json checks.0.ok missing");
    let o = run(&s.url("/"), r#"body_contains = "ok""#).await;
    assert_eq!(o.reason, r#"body does not contain "ok""#);
    let o = run(&s.url("/"), r#"body_contains = "database""#).await;
    assert!(o.success);
    let o = run(&s.url("/"), r#"body_regex = '"database":\s*"connected"'"#).await;
    assert_eq!(
        o.reason,
        r#"body does not match /"database":\s*"connected"/"#
    );
    let o = run(&s.url("/"), r#"body_regex = '"database":\s*"\w+"'"#).await;
    assert!(o.success, "{}", o.reason);

    let html = serve(handler(|_| async { full(200, "<html>ok</html>") })).await;
    let o = run(&html.url("/"), r#"json = { database = "connected" }"#).await;
    assert_eq!(o.reason, "body is not JSON");
}

#[tokio::test]
async fn max_latency_fails_a_slow_server() {
    let s = serve(handler(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        full(200, "ok")
    }))
    .await;
    let o = run(&s.url("/"), r#"max_latency = "100ms""#).await;
    assert!(!o.success);
    assert!(
        o.reason.starts_with("latency ") && o.reason.ends_with("ms, expected at most 100ms"),
        "{}",
        o.reason
    );
    let o = run(&s.url("/"), r#"max_latency = "5s""#).await;
    assert!(o.success, "{}", o.reason);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_on_time() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, holds the connection, never writes.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let cfg = probe_cfg(&format!("http://{addr}/"), "");
    let t = Instant::now();
    let o = probe_once(&cfg, Duration::from_millis(700), &no_tls()).await;
    let took = t.elapsed();
    assert!(!o.success);
    assert_eq!(o.reason, "timed out after 700ms");
    assert!(
        o.phases.connect.is_some(),
        "phases before the timeout are kept"
    );
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(1000),
        "{took:?}"
    );
    let o = probe_once(&cfg, Duration::from_secs(2), &no_tls()).await;
    assert_eq!(o.reason, "timed out after 2s");
    hold.abort();
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = run(&format!("http://127.0.0.1:{port}/"), "").await;
    assert!(!o.success);
    assert_eq!(o.reason, "connection refused");
    assert_eq!(o.status, None);
    let o = run(&format!("tcp://127.0.0.1:{port}"), "").await;
    assert_eq!(o.reason, "connection refused");
}

#[tokio::test]
async fn dns_failure_is_a_reason() {
    let o = run("http://no-such-host.invalid/", "").await;
    assert!(!o.success);
    assert!(
        o.reason
            .starts_with("DNS lookup of no-such-host.invalid failed: "),
        "{}",
        o.reason
    );
}

/// `/r/N` redirects to `/r/N-1` (relative Location every other hop), `/r/0` answers 200.
async fn redirect_server() -> Server {
    serve(handler(|req| async move {
        let n: u32 = req
            .uri()
            .path()
            .strip_prefix("/r/")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if n == 0 {
            return full(200, "landed");
        }
        let location = if n.is_multiple_of(2) {
            format!("/r/{}", n - 1)
        } else {
            format!("{}", n - 1) // relative to /r/
        };
        Response::builder()
            .status(302)
            .header("location", location)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap()
    }))
    .await
}

#[tokio::test]
async fn redirects_are_followed_up_to_ten() {
    let s = redirect_server().await;
    let o = run(&s.url("/r/3"), r#"body_contains = "landed""#).await;
    assert!(o.success, "{}", o.reason);
    assert_eq!(o.status, Some(200));
    let o = run(&s.url("/r/10"), "").await;
    assert!(o.success, "{}", o.reason);
    let o = run(&s.url("/r/11"), "").await;
    assert!(!o.success);
    assert_eq!(o.reason, "more than 10 redirects");
    // A probe that expects the redirect checks it instead of following it.
    let o = run(&s.url("/r/1"), "expect_status = [302]").await;
    assert!(o.success, "{}", o.reason);
    assert_eq!(o.status, Some(302));
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let seen = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let log = seen.clone();
    let other = serve(handler(move |req| {
        let log = log.clone();
        async move {
            let auth = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string());
            log.lock().unwrap().push(auth);
            full(200, "ok")
        }
    }))
    .await;
    let target = other.url("/landing");
    let first = serve(handler(move |req| {
        let target = target.clone();
        async move {
            if req.uri().path() == "/same" {
                return Response::builder()
                    .status(307)
                    .header("location", "/landing")
                    .body(Full::new(Bytes::new()).boxed())
                    .unwrap();
            }
            if req.uri().path() == "/landing" {
                let ok = req.headers().contains_key("authorization");
                return full(if ok { 200 } else { 401 }, "");
            }
            Response::builder()
                .status(302)
                .header("location", target)
                .body(Full::new(Bytes::new()).boxed())
                .unwrap()
        }
    }))
    .await;
    let headers = r#"headers = { Authorization = "Bearer t0ps3cret", X-Team = "core" }"#;
    // Same origin: the token goes along.
    let o = run(&first.url("/same"), headers).await;
    assert!(o.success, "{}", o.reason);
    // Another origin: it does not.
    let o = run(&first.url("/elsewhere"), headers).await;
    assert!(o.success, "{}", o.reason);
    assert_eq!(*seen.lock().unwrap(), vec![None]);
}

#[tokio::test]
async fn a_body_delimited_by_close_is_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            // HTTP/1.0-style: no length, the body ends when the connection closes.
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}")
                .await;
            let _ = s.shutdown().await;
        }
    });
    let o = run(&format!("http://{addr}/"), r#"json = { status = "ok" }"#).await;
    assert!(o.success, "{}", o.reason);
    server.abort();
}

/// A raw TCP server that reads the request head and writes `parts` with a pause between them
/// (so they arrive as separate segments), then keeps the connection open for `hold`.
async fn raw_server(parts: Vec<Vec<u8>>, hold: Duration) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let parts = parts.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                for p in parts {
                    if s.write_all(&p).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(hold).await;
            });
        }
    });
    (format!("http://{addr}/health"), task)
}

#[tokio::test]
async fn odd_but_valid_answers_are_read_as_http_says() {
    let json = r#"json = { status = "ok" }"#;
    let cases: Vec<(&str, Vec<&[u8]>)> = vec![
        // Chunked, split inside a size line and inside the data, with an extension and a trailer.
        (
            "chunked",
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"9;x=y\r\n{\"statu",
                b"s\"\r\n",
                b"6\r\n:\"ok\"}\r\n0\r\nX-T: 1\r\n",
                b"\r\n",
            ],
        ),
        // An interim 100 Continue before the answer.
        (
            "100 first",
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}",
            ],
        ),
        // The head arrives a few bytes at a time.
        (
            "head in pieces",
            vec![
                b"HTTP/1.1 2",
                b"00 OK\r\nContent-Len",
                b"gth: 15\r\n\r",
                b"\n{\"status\":\"ok\"}",
            ],
        ),
    ];
    for (what, parts) in cases {
        // The server holds the connection open afterwards: the framing ends the body.
        let (url, task) = raw_server(
            parts.into_iter().map(<[u8]>::to_vec).collect(),
            Duration::from_secs(30),
        )
        .await;
        let started = Instant::now();
        let o = run(&url, json).await;
        assert!(o.success, "{what}: {}", o.reason);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: waited for the close"
        );
        task.abort();
    }
}

#[tokio::test]
async fn hostile_answers_fail_with_a_reason() {
    // 80 fields, 5 KiB: long but legal.
    let big_head = format!(
        "HTTP/1.1 200 OK\r\n{}Content-Length: 0\r\n\r\n",
        "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(80)
    );
    let many_fields = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X: y\r\n".repeat(101));
    let huge_head = format!(
        "HTTP/1.1 200 OK\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            "HTTP: invalid response: invalid HTTP version",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
            "HTTP: connection closed after 5 of 100 body bytes",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab".to_vec(),
            "HTTP: connection closed in the middle of a chunked body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n".to_vec(),
            "HTTP: invalid chunked body: no chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
            "HTTP: conflicting Content-Length values",
        ),
        (
            b"HTTP/1.1 200 OK\r\nConn".to_vec(),
            "HTTP: connection closed in the middle of the response head",
        ),
        (Vec::new(), "HTTP: connection closed before a response"),
        (
            many_fields.into_bytes(),
            "HTTP: more than 100 fields in the response head",
        ),
        (
            huge_head.into_bytes(),
            "HTTP: response head larger than 64 KiB",
        ),
    ];
    for (answer, reason) in cases {
        // The server closes right after its answer.
        let (url, task) = raw_server(vec![answer], Duration::ZERO).await;
        let o = run(&url, "").await;
        assert!(!o.success);
        assert_eq!(o.reason, reason);
        task.abort();
    }
    let (url, task) = raw_server(vec![big_head.into_bytes()], Duration::ZERO).await;
    let o = run(&url, "").await;
    assert!(o.success, "{}", o.reason);
    task.abort();
}

/// A body that streams `total` bytes in 64 KiB chunks, counting what the client pulled.
struct Counting {
    left: usize,
    sent: Arc<AtomicUsize>,
}

impl hyper::body::Body for Counting {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        self.sent.fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }
}

#[tokio::test]
async fn bodies_over_the_limit_fail_without_being_read_whole() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let s = serve(handler(move |_| {
        let sent = counter.clone();
        async move {
            // Chunked, no Content-Length: the client has to stop reading by itself.
            Response::new(
                Counting {
                    left: 256 << 20,
                    sent,
                }
                .boxed(),
            )
        }
    }))
    .await;
    let o = run(&s.url("/"), r#"body_contains = "never""#).await;
    assert!(!o.success);
    assert_eq!(o.reason, "body larger than 1 MiB");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pulled = sent.load(Ordering::Relaxed);
    assert!(
        pulled < 64 << 20,
        "the server wrote {pulled} bytes: the probe kept reading"
    );

    // A declared Content-Length over the limit fails before reading.
    let big = serve(handler(|_| async { full(200, vec![b'y'; (1 << 20) + 1]) })).await;
    let o = run(&big.url("/"), "").await;
    assert_eq!(o.reason, "body larger than 1 MiB");
    // Exactly the limit is fine.
    let fits = serve(handler(|_| async { full(200, vec![b'y'; 1 << 20]) })).await;
    let o = run(&fits.url("/"), "").await;
    assert!(o.success, "{}", o.reason);
}

#[tokio::test]
async fn a_dead_listener_is_noticed_on_the_next_probe() {
    let s = serve(handler(|_| async { full(200, "ok") })).await;
    let url = s.url("/health");
    let cfg = probe_cfg(&url, "");
    let tls = no_tls();
    let o = probe_once(&cfg, Duration::from_secs(2), &tls).await;
    assert!(o.success, "{}", o.reason);
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let o = probe_once(&cfg, Duration::from_secs(2), &tls).await;
    assert!(!o.success);
    assert_eq!(o.reason, "connection refused");
}

#[tokio::test]
async fn headers_are_sent_and_secrets_stay_out_of_reasons() {
    let s = serve(handler(|req| async move {
        match req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        {
            Some("Bearer t0ps3cret") => full(200, "ok"),
            _ => full(401, "no"),
        }
    }))
    .await;
    let o = run(
        &s.url("/"),
        r#"headers = { Authorization = "Bearer t0ps3cret" }"#,
    )
    .await;
    assert!(o.success, "{}", o.reason);
    let o = run(
        &s.url("/"),
        r#"headers = { Authorization = "Bearer wrong" }"#,
    )
    .await;
    assert_eq!(o.reason, "status 401, expected 2xx");
    assert!(!format!("{o:?}").contains("wrong"));
}

#[tokio::test]
async fn probes_ask_the_server_to_close_the_connection() {
    // One request per connection: the probe says so, unless its headers say otherwise.
    let s = serve(handler(|req| async move {
        let connection = req
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        full(200, connection)
    }))
    .await;
    let o = run(&s.url("/"), r#"body_contains = "close""#).await;
    assert!(o.success, "{}", o.reason);
    let o = run(
        &s.url("/"),
        r#"headers = { Connection = "keep-alive" }
body_contains = "keep-alive""#,
    )
    .await;
    assert!(o.success, "{}", o.reason);
}

#[tokio::test]
async fn method_is_sent() {
    let s = serve(handler(|req| async move {
        if req.method() == hyper::Method::HEAD {
            full(200, "")
        } else {
            full(405, "")
        }
    }))
    .await;
    assert!(run(&s.url("/"), r#"method = "HEAD""#).await.success);
    assert_eq!(
        run(&s.url("/"), "").await.reason,
        "status 405, expected 2xx"
    );
}

struct Pki {
    ca: CertificateDer<'static>,
    server: tokio_rustls::TlsAcceptor,
    not_after: i64,
}

/// A CA and a leaf for 127.0.0.1 that expires `days` days from today's midnight (UTC) plus one
/// day, i.e. between `days` and `days + 1` days from now. With `self_signed`, the leaf is not
/// signed by the CA.
fn pki(days: i64, self_signed: bool) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "postflight test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    let end = (chrono::Utc::now() + chrono::Duration::days(days + 1)).date_naive();
    p.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    let not_after = end.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    let leaf = if self_signed {
        p.self_signed(&leaf_key).unwrap()
    } else {
        p.signed_by(&leaf_key, &ca).unwrap()
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Pki {
        ca: ca.der().clone(),
        server: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
        not_after,
    }
}

#[tokio::test]
async fn https_reports_certificate_expiry_and_checks_min_days() {
    let pki = pki(3, false);
    let s = serve_with(
        handler(|_| async { full(200, "ok") }),
        Some(pki.server.clone()),
    )
    .await;
    let url = format!("https://127.0.0.1:{}/health", s.addr.port());
    let tls = ProbeTls::with_roots(vec![pki.ca.clone()]).unwrap();

    let o = probe_once(&probe_cfg(&url, ""), Duration::from_secs(2), &tls).await;
    assert!(o.success, "{}", o.reason);
    assert_eq!(o.cert_not_after, Some(pki.not_after));
    assert!(o.phases.tls.is_some());

    let o = probe_once(
        &probe_cfg(&url, "cert_min_days = 14"),
        Duration::from_secs(2),
        &tls,
    )
    .await;
    assert!(!o.success);
    assert_eq!(
        o.reason,
        "certificate expires in 3 days, expected at least 14"
    );
    assert_eq!(o.status, Some(200));
    let o = probe_once(
        &probe_cfg(&url, "cert_min_days = 3"),
        Duration::from_secs(2),
        &tls,
    )
    .await;
    assert!(o.success, "{}", o.reason);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_with_a_tls_reason() {
    let trusted = pki(30, false);
    let rogue = pki(30, true);
    let s = serve_with(
        handler(|_| async { full(200, "ok") }),
        Some(rogue.server.clone()),
    )
    .await;
    let url = format!("https://127.0.0.1:{}/", s.addr.port());
    let tls = ProbeTls::with_roots(vec![trusted.ca.clone()]).unwrap();
    let o = probe_once(&probe_cfg(&url, ""), Duration::from_secs(2), &tls).await;
    assert!(!o.success);
    assert!(o.reason.starts_with("TLS: "), "{}", o.reason);
    assert!(o.reason.contains("certificate"), "{}", o.reason);
    assert_eq!(o.status, None);
}

#[tokio::test]
async fn tcp_probe_open() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let o = run(&format!("tcp://{addr}"), "").await;
    assert!(o.success, "{}", o.reason);
    assert!(o.phases.connect.is_some());
    assert_eq!(o.status, None);
}

#[tokio::test]
async fn exposition_passes_promtool() {
    let pki = pki(30, false);
    let https = serve_with(
        handler(|_| async { full(200, "ok") }),
        Some(pki.server.clone()),
    )
    .await;
    let http = serve(handler(|_| async { full(503, "no") })).await;
    let tls = ProbeTls::with_roots(vec![pki.ca.clone()]).unwrap();
    let states = ProbeStates::new();
    let cfgs = [
        toml::from_str::<ProbeConfig>(&format!(
            "name = \"secure\"\njob = \"api\"\nurl = \"https://127.0.0.1:{}/\"",
            https.addr.port()
        ))
        .unwrap(),
        toml::from_str::<ProbeConfig>(&format!("name = \"plain\"\nurl = \"{}\"", http.url("/x")))
            .unwrap(),
        toml::from_str::<ProbeConfig>("name = \"db\"\nurl = \"tcp://127.0.0.1:1\"").unwrap(),
    ];
    for c in &cfgs {
        let o = probe_once(c, Duration::from_secs(2), &tls).await;
        states.observe(c, &o);
    }
    let mut text = String::new();
    states.expose(&mut text);
    assert!(text.contains("probe_ssl_earliest_cert_expiry{instance="));
    assert!(text.contains("probe_success{instance=\"tcp://127.0.0.1:1\",probe=\"db\"} 0"));
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        eprintln!("promtool not installed; skipping the promtool check");
        return;
    }
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Counts outcomes per probe.
#[derive(Default)]
struct CountingSink {
    records: Mutex<HashMap<String, usize>>,
    failures: Mutex<Vec<String>>,
    changes: Mutex<Vec<AlertChange>>,
}

impl ProbeSink for CountingSink {
    fn record(&self, probe: &ProbeConfig, outcome: &ProbeOutcome) {
        if !outcome.success {
            let mut f = self.failures.lock().unwrap();
            if f.len() < 10 {
                f.push(format!("{}: {}", probe.name, outcome.reason));
            }
        }
        *self
            .records
            .lock()
            .unwrap()
            .entry(probe.name.clone())
            .or_default() += 1;
    }
    fn alert_changed(&self, _probe: &ProbeConfig, change: &AlertChange) {
        self.changes.lock().unwrap().push(change.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_probes_everything_within_bounds_and_stops_promptly() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (f, m) = (in_flight.clone(), max_seen.clone());
    let s = serve(handler(move |_| {
        let (f, m) = (f.clone(), m.clone());
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(15)).await;
            f.fetch_sub(1, Ordering::SeqCst);
            full(200, "ok")
        }
    }))
    .await;
    let probes: Vec<ProbeConfig> = (0..50)
        .map(|i| {
            toml::from_str(&format!(
                // A generous timeout: a probe abandoned on a loaded machine would leave its
                // server handler running and blur the concurrency count.
                "name = \"p{i}\"\nurl = \"{}\"\ninterval = \"200ms\"\ntimeout = \"10s\"",
                s.url(&format!("/{i}"))
            ))
            .unwrap()
        })
        .collect();
    let sink = Arc::new(CountingSink::default());
    let states = Arc::new(ProbeStates::new());
    let live = Liveness::new();
    let runner = ProbeRunner::new(
        probes,
        GlobalConfig::default(),
        no_tls(),
        sink.clone(),
        states.clone(),
        live.register("probe", Duration::from_secs(5)),
        Telemetry::new(),
    )
    .with_max_concurrency(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(runner.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(live.wedged().is_empty(), "the runner beats its heartbeat");
    let t = Instant::now();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("runner stops within 1 s of cancel")
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));

    let records = sink.records.lock().unwrap().clone();
    assert_eq!(records.len(), 50, "every probe ran");
    for (name, n) in &records {
        assert!(*n >= 5, "{name} recorded {n} times");
        assert!(*n <= 12, "{name} recorded {n} times: ticks burst");
    }
    let failures = sink.failures.lock().unwrap().clone();
    let max = max_seen.load(Ordering::SeqCst);
    assert!(
        max <= 8,
        "{max} probes ran at once with a limit of 8 (failures: {failures:?})"
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(sink.changes.lock().unwrap().is_empty());
    assert_eq!(states.latest().len(), 50);
    assert!(states.latest().iter().all(|(_, o)| o.success));
}

#[tokio::test]
async fn a_slow_probe_skips_ticks_instead_of_stacking() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (f, m) = (in_flight.clone(), max_seen.clone());
    let s = serve(handler(move |_| {
        let (f, m) = (f.clone(), m.clone());
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(450)).await;
            f.fetch_sub(1, Ordering::SeqCst);
            full(503, "slow")
        }
    }))
    .await;
    let cfg: ProbeConfig = toml::from_str(&format!(
        "name = \"slow\"\nurl = \"{}\"\ninterval = \"100ms\"\ntimeout = \"1s\"\nfailure_threshold = 2",
        s.url("/")
    ))
    .unwrap();
    let sink = Arc::new(CountingSink::default());
    let states = Arc::new(ProbeStates::new());
    let runner = ProbeRunner::new(
        vec![cfg],
        GlobalConfig::default(),
        no_tls(),
        sink.clone(),
        states.clone(),
        Liveness::new().register("probe", Duration::from_secs(5)),
        Telemetry::new(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(runner.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(max_seen.load(Ordering::SeqCst), 1, "runs never overlap");
    let runs = sink.records.lock().unwrap()["slow"];
    assert!(
        (2..=4).contains(&runs),
        "{runs} runs in 1.6 s of 450 ms probes"
    );
    let mut text = String::new();
    states.expose(&mut text);
    let skipped: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("postflight_probe_skipped_ticks_total{probe=\"slow\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(skipped >= 5.0, "skipped {skipped}");
    // Two failures in a row fired the alert, with the reason.
    let changes = sink.changes.lock().unwrap();
    assert!(matches!(changes.first(), Some(AlertChange::Fired(_))));
    let alerts = states.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].annotations["reason"], "status 503, expected 2xx");
}
