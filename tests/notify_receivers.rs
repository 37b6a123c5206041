//! The notification channels against real peers on loopback: hyper servers playing Slack, a
//! webhook consumer and PagerDuty, and a small SMTP server speaking STARTTLS, implicit TLS and
//! AUTH PLAIN/LOGIN over rustls with a CA made by rcgen.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use postflight::config::{
    EmailConfig, PagerdutyConfig, ReceiverConfig, ReceiverKind, Secret, SlackConfig, SmtpTls,
    WebhookConfig,
};
use postflight::notify::{
    self, Clients, GroupStatus, Notification, NotifiedAlert, NotifyError, group_key,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// Shared fixtures

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn alert(instance: &str, status: GroupStatus) -> NotifiedAlert {
    let firing = status == GroupStatus::Firing;
    NotifiedAlert {
        status,
        labels: map(&[
            ("alertname", "HighErrorRate"),
            ("job", "api"),
            ("instance", instance),
            ("severity", "page"),
            ("path", "<b>/v1</b>"),
        ]),
        annotations: map(&[
            ("summary", "error rate 5% on api"),
            ("reason", "status 503, expected 200"),
        ]),
        starts_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        ends_at: (!firing).then(|| Utc.with_ymd_and_hms(2024, 5, 1, 12, 10, 0).unwrap()),
        generator_url: "http://monitor.example.com:7980/rules".into(),
        fingerprint: "00000000000000aa".into(),
    }
}

fn notification(receiver: &str, statuses: &[GroupStatus]) -> Notification {
    let group_labels = map(&[("alertname", "HighErrorRate"), ("job", "api")]);
    let alerts = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| alert(&format!("10.0.0.{i}:80"), *s))
        .collect();
    Notification::new(
        receiver,
        group_key("{}/{severity=\"page\"}", &group_labels),
        group_labels,
        alerts,
        "http://monitor.example.com:7980",
    )
}

fn receiver(name: &str, timeout: Duration, kind: ReceiverKind) -> ReceiverConfig {
    ReceiverConfig {
        name: name.into(),
        send_resolved: true,
        timeout,
        kind,
    }
}

fn clients() -> Clients {
    notify::install_crypto_provider();
    Clients::new().expect("clients")
}

/// A request as the peer saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// An HTTP peer answering every request with `status`, `headers` and `body`, recording what it got.
async fn http_peer(
    status: u16,
    headers: &[(&'static str, &'static str)],
    reply: &'static str,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    https_peer(status, headers, reply, None).await
}

/// [`http_peer`], over TLS when `tls` is given.
async fn https_peer(
    status: u16,
    headers: &[(&'static str, &'static str)],
    reply: &'static str,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let headers: Vec<(&'static str, &'static str)> = headers.to_vec();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            let headers = headers.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let io: Box<dyn Io> = match tls {
                    Some(cfg) => match tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                    None => Box::new(stream),
                };
                let svc = service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    let headers = headers.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let _ = tx.send(Seen {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body,
                        });
                        let mut resp =
                            Response::new(Full::new(Bytes::from_static(reply.as_bytes())));
                        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                        for (k, v) in &headers {
                            resp.headers_mut().insert(*k, v.parse().unwrap());
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

/// A peer that accepts connections and never answers.
async fn silent_peer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Webhook

#[tokio::test]
async fn webhook_posts_signed_alertmanager_payload() {
    let (addr, mut seen) = http_peer(200, &[], "").await;
    let secret = "hmac-key-123";
    let r = receiver(
        "hooks",
        Duration::from_secs(5),
        ReceiverKind::Webhook(WebhookConfig {
            url: Secret::new(format!("http://{addr}/hooks/postflight")),
            secret: Some(Secret::new(secret)),
            headers: [("X-Team".to_string(), Secret::new("core"))].into(),
        }),
    );
    let n = notification("hooks", &[GroupStatus::Firing, GroupStatus::Resolved]);
    let d = notify::send(&clients(), &r, &n).await.expect("delivered");
    assert_eq!(d.status, Some(200));
    assert_eq!(d.detail, "HTTP 200");

    let req = seen.recv().await.unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/postflight");
    assert_eq!(req.header("content-type"), "application/json");
    assert!(
        req.header("user-agent").starts_with("postflight/"),
        "{}",
        req.header("user-agent")
    );
    assert_eq!(req.header("x-team"), "core");
    let expected = format!("sha256={}", hmac_hex(secret.as_bytes(), &req.body));
    assert_eq!(req.header("x-postflight-signature"), expected);

    let v = req.json();
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "hooks");
    assert_eq!(v["groupKey"], n.group_key.as_str());
    assert_eq!(v["truncatedAlerts"], 0);
    assert_eq!(
        v["groupLabels"],
        serde_json::json!({"alertname": "HighErrorRate", "job": "api"})
    );
    assert_eq!(v["commonLabels"]["severity"], "page");
    assert_eq!(v["commonAnnotations"]["reason"], "status 503, expected 200");
    assert_eq!(v["externalURL"], "http://monitor.example.com:7980");
    assert_eq!(v["alerts"][0]["status"], "firing");
    assert_eq!(v["alerts"][0]["startsAt"], "2024-05-01T12:00:00Z");
    assert_eq!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(v["alerts"][1]["status"], "resolved");
    assert_eq!(v["alerts"][1]["endsAt"], "2024-05-01T12:10:00Z");
    assert_eq!(
        v["alerts"][1]["generatorURL"],
        "http://monitor.example.com:7980/rules"
    );
}

#[tokio::test]
async fn webhook_without_secret_is_unsigned() {
    let (addr, mut seen) = http_peer(204, &[], "").await;
    let r = receiver(
        "hooks",
        Duration::from_secs(5),
        ReceiverKind::Webhook(WebhookConfig {
            url: Secret::new(format!("http://{addr}/")),
            secret: None,
            headers: BTreeMap::new(),
        }),
    );
    let d = notify::send(
        &clients(),
        &r,
        &notification("hooks", &[GroupStatus::Resolved]),
    )
    .await
    .unwrap();
    assert_eq!(d.status, Some(204));
    let req = seen.recv().await.unwrap();
    assert!(req.headers.get("x-postflight-signature").is_none());
    assert_eq!(req.json()["status"], "resolved");
}

#[tokio::test]
async fn webhook_over_https_trusts_extra_roots_only() {
    let pki = test_pki();
    let (addr, mut seen) = https_peer(200, &[], "", Some(pki.server.clone())).await;
    let r = receiver(
        "hooks",
        Duration::from_secs(5),
        ReceiverKind::Webhook(WebhookConfig {
            url: Secret::new(format!("https://{addr}/hook?token=T0KEN")),
            secret: None,
            headers: BTreeMap::new(),
        }),
    );
    let n = notification("hooks", &[GroupStatus::Firing]);
    notify::send(&clients_trusting(&pki), &r, &n)
        .await
        .expect("delivered over TLS");
    assert_eq!(seen.recv().await.unwrap().json()["version"], "4");

    // Without the test CA the certificate is refused, and the URL's token stays out of the error.
    let e = notify::send(&clients(), &r, &n).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        e.to_string().contains("hooks") && !e.to_string().contains("T0KEN"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Slack

fn slack(addr: SocketAddr, timeout: Duration) -> ReceiverConfig {
    receiver(
        "devops",
        timeout,
        ReceiverKind::Slack(SlackConfig {
            url: Secret::new(format!("http://{addr}/services/T000/B000/XOXSECRETTOKEN")),
            channel: Some("#alerts".into()),
        }),
    )
}

#[tokio::test]
async fn slack_posts_text_and_blocks() {
    let (addr, mut seen) = http_peer(200, &[], "ok").await;
    let r = slack(addr, Duration::from_secs(5));
    let n = notification("devops", &[GroupStatus::Firing, GroupStatus::Resolved]);
    notify::send(&clients(), &r, &n).await.expect("delivered");
    let req = seen.recv().await.unwrap();
    assert_eq!(req.path, "/services/T000/B000/XOXSECRETTOKEN");
    let v = req.json();
    assert_eq!(v["channel"], "#alerts");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("[FIRING:1] HighErrorRate api")
    );
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("🔴 [FIRING:1]")
    );
    let firing = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        firing.contains("*FIRING*") && firing.contains("error rate 5% on api"),
        "{firing}"
    );
    assert!(
        firing.contains("*Reason:* status 503, expected 200"),
        "{firing}"
    );
    assert!(firing.contains("`path=&lt;b&gt;/v1&lt;/b&gt;`"), "{firing}");
    let resolved = blocks[2]["text"]["text"].as_str().unwrap();
    assert!(resolved.starts_with("✅ *RESOLVED*"), "{resolved}");

    // A resolved group looks different at first glance.
    let n = notification("devops", &[GroupStatus::Resolved]);
    notify::send(&clients(), &r, &n).await.expect("delivered");
    let v = seen.recv().await.unwrap().json();
    assert!(
        v["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ [RESOLVED]")
    );
}

#[tokio::test]
async fn notify_test_message_is_marked() {
    let (addr, mut seen) = http_peer(200, &[], "ok").await;
    let r = slack(addr, Duration::from_secs(5));
    notify::send_test(&clients(), &r, "http://monitor.example.com:7980")
        .await
        .expect("delivered");
    let v = seen.recv().await.unwrap().json();
    assert!(v["text"].as_str().unwrap().contains("[TEST]"));
    assert!(
        v["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("[TEST]")
    );
}

// ---------------------------------------------------------------------------------------------
// Error classification (same code path for Slack, webhook and PagerDuty)

fn assert_no_secret(e: &NotifyError) {
    let m = e.to_string();
    assert!(
        !m.contains("XOXSECRETTOKEN") && !m.contains("/services/"),
        "secret leaked: {m}"
    );
    assert!(m.contains("devops"), "message names the receiver: {m}");
}

#[tokio::test]
async fn http_500_is_retryable() {
    let (addr, _seen) = http_peer(500, &[], "internal trouble").await;
    let e = notify::send(
        &clients(),
        &slack(addr, Duration::from_secs(5)),
        &notification("devops", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.retry_after(), None);
    assert!(e.to_string().contains("500"), "{e}");
    assert_no_secret(&e);
}

#[tokio::test]
async fn http_429_honours_retry_after() {
    let (addr, _seen) = http_peer(429, &[("retry-after", "7")], "slow down").await;
    let e = notify::send(
        &clients(),
        &slack(addr, Duration::from_secs(5)),
        &notification("devops", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert_no_secret(&e);
}

#[tokio::test]
async fn http_400_is_permanent() {
    let (addr, _seen) = http_peer(400, &[], "invalid_payload").await;
    let e = notify::send(
        &clients(),
        &slack(addr, Duration::from_secs(5)),
        &notification("devops", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(matches!(e, NotifyError::Permanent { .. }));
    assert!(e.to_string().contains("400"), "{e}");
    assert_no_secret(&e);
}

#[tokio::test]
async fn redirect_to_another_host_is_not_followed() {
    let (addr, mut seen) =
        http_peer(307, &[("location", "http://localhost:9/elsewhere")], "").await;
    let e = notify::send(
        &clients(),
        &slack(addr, Duration::from_secs(5)),
        &notification("devops", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("307"), "{e}");
    assert_no_secret(&e);
    seen.recv().await.unwrap();
    assert!(seen.try_recv().is_err(), "asked once, not followed");
}

#[tokio::test]
async fn silent_peer_times_out_within_receiver_timeout() {
    let addr = silent_peer().await;
    let timeout = Duration::from_millis(500);
    let start = Instant::now();
    let e = notify::send(
        &clients(),
        &slack(addr, timeout),
        &notification("devops", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    let took = start.elapsed();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "took {took:?}"
    );
    assert_no_secret(&e);
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let e = notify::send(
        &clients(),
        &slack(addr, Duration::from_secs(5)),
        &notification("devops", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_no_secret(&e);
}

// ---------------------------------------------------------------------------------------------
// PagerDuty

#[tokio::test]
async fn pagerduty_triggers_then_resolves_same_incident() {
    let (addr, mut seen) = http_peer(
        202,
        &[("content-type", "application/json")],
        r#"{"status":"success"}"#,
    )
    .await;
    let r = receiver(
        "oncall",
        Duration::from_secs(5),
        ReceiverKind::Pagerduty(PagerdutyConfig {
            routing_key: Secret::new("R0UT1NGKEY"),
            url: format!("http://{addr}/v2/enqueue"),
        }),
    );
    let c = clients();
    let d = notify::send(&c, &r, &notification("oncall", &[GroupStatus::Firing]))
        .await
        .unwrap();
    assert_eq!(d.status, Some(202));
    let trigger = seen.recv().await.unwrap();
    assert_eq!(trigger.path, "/v2/enqueue");
    let t = trigger.json();
    assert_eq!(t["routing_key"], "R0UT1NGKEY");
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(t["payload"]["severity"], "critical");
    assert_eq!(t["payload"]["source"], "10.0.0.0:80");
    assert_eq!(
        t["payload"]["summary"],
        "[FIRING:1] HighErrorRate api: error rate 5% on api"
    );
    assert_eq!(t["payload"]["timestamp"], "2024-05-01T12:00:00Z");

    notify::send(&c, &r, &notification("oncall", &[GroupStatus::Resolved]))
        .await
        .unwrap();
    let resolve = seen.recv().await.unwrap().json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], t["dedup_key"]);
    assert_eq!(t["dedup_key"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn pagerduty_errors_hide_the_routing_key() {
    let (addr, _seen) = http_peer(
        400,
        &[],
        r#"{"status":"invalid event","message":"Event object is invalid"}"#,
    )
    .await;
    let r = receiver(
        "oncall",
        Duration::from_secs(5),
        ReceiverKind::Pagerduty(PagerdutyConfig {
            routing_key: Secret::new("R0UT1NGKEY"),
            url: format!("http://{addr}/v2/enqueue"),
        }),
    );
    let e = notify::send(
        &clients(),
        &r,
        &notification("oncall", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable());
    assert!(!e.to_string().contains("R0UT1NGKEY"));
    assert!(e.to_string().contains("oncall"));
}

// ---------------------------------------------------------------------------------------------
// Email: a small SMTP server

/// A test CA and a certificate for localhost/127.0.0.1 signed by it.
struct TestPki {
    ca: CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

fn test_pki() -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "postflight test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
    .unwrap();
    TestPki {
        ca: ca_cert.der().clone(),
        server: Arc::new(server),
    }
}

/// How the test SMTP server behaves.
#[derive(Clone)]
struct SmtpBehaviour {
    /// TLS from the first byte (port 465 style).
    implicit_tls: bool,
    /// Offer STARTTLS on a plain connection.
    offer_starttls: bool,
    /// AUTH mechanisms offered (after TLS when TLS is in use), e.g. "PLAIN LOGIN".
    auth: Option<&'static str>,
    /// Answer AUTH with 535.
    reject_auth: bool,
    /// Reply to MAIL FROM, e.g. "451 4.3.0 try again later"; 250 when None.
    mail_reply: Option<&'static str>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl SmtpBehaviour {
    fn plain() -> Self {
        SmtpBehaviour {
            implicit_tls: false,
            offer_starttls: false,
            auth: None,
            reject_auth: false,
            mail_reply: None,
            tls: None,
        }
    }
}

/// One SMTP session as the server saw it.
#[derive(Debug, Default)]
struct Session {
    tls: bool,
    /// (mechanism, decoded credentials as sent).
    auth: Vec<(String, String)>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
    /// Every command line, decoded AUTH payloads excluded.
    commands: Vec<String>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn b64_decode(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim().bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn smtp_server(b: SmtpBehaviour) -> (SocketAddr, mpsc::UnboundedReceiver<Session>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (b, tx) = (b.clone(), tx.clone());
            tokio::spawn(async move {
                let mut session = Session::default();
                let _ = smtp_session(stream, &b, &mut session).await;
                let _ = tx.send(session);
            });
        }
    });
    (addr, rx)
}

async fn smtp_session(
    stream: TcpStream,
    b: &SmtpBehaviour,
    s: &mut Session,
) -> std::io::Result<()> {
    let mut io: Box<dyn Io> = if b.implicit_tls {
        s.tls = true;
        let acceptor = tokio_rustls::TlsAcceptor::from(b.tls.clone().unwrap());
        Box::new(acceptor.accept(stream).await?)
    } else {
        Box::new(stream)
    };
    io.write_all(b"220 localhost ESMTP postflight-test\r\n")
        .await?;
    let mut r = BufReader::new(io);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        if verb != "AUTH" {
            s.commands.push(line.clone());
        } else {
            s.commands.push("AUTH ...".into());
        }
        let reply: String = match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut caps = vec!["localhost".to_string()];
                if b.offer_starttls && !s.tls {
                    caps.push("STARTTLS".into());
                }
                if let Some(mechs) = b.auth {
                    // Like real servers: no AUTH in clear when TLS is on offer.
                    if s.tls || !b.offer_starttls {
                        caps.push(format!("AUTH {mechs}"));
                    }
                }
                caps.push("8BITMIME".into());
                let n = caps.len();
                caps.iter()
                    .enumerate()
                    .map(|(i, c)| format!("250{}{c}\r\n", if i + 1 == n { ' ' } else { '-' }))
                    .collect()
            }
            "STARTTLS" => {
                r.get_mut()
                    .write_all(b"220 2.0.0 ready to start TLS\r\n")
                    .await?;
                let plain = r.into_inner();
                let acceptor = tokio_rustls::TlsAcceptor::from(b.tls.clone().unwrap());
                let tls = acceptor.accept(plain).await?;
                s.tls = true;
                r = BufReader::new(Box::new(tls));
                continue;
            }
            "AUTH" => {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let mech = parts.get(1).unwrap_or(&"").to_ascii_uppercase();
                let decoded = match mech.as_str() {
                    "PLAIN" => {
                        let payload = match parts.get(2) {
                            Some(p) => p.to_string(),
                            None => {
                                r.get_mut().write_all(b"334 \r\n").await?;
                                read_line(&mut r).await?
                            }
                        };
                        b64_decode(&payload)
                    }
                    "LOGIN" => {
                        r.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                        let user = b64_decode(&read_line(&mut r).await?);
                        r.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        let pass = b64_decode(&read_line(&mut r).await?);
                        format!("{user}\0{pass}")
                    }
                    _ => String::new(),
                };
                s.auth.push((mech, decoded));
                if b.reject_auth {
                    "535 5.7.8 Authentication credentials invalid\r\n".into()
                } else {
                    "235 2.7.0 Authentication successful\r\n".into()
                }
            }
            "MAIL" => {
                s.mail_from = line[10..].to_string();
                match b.mail_reply {
                    Some(reply) => format!("{reply}\r\n"),
                    None => "250 2.1.0 OK\r\n".into(),
                }
            }
            "RCPT" => {
                s.rcpt_to.push(line[8..].to_string());
                "250 2.1.5 OK\r\n".into()
            }
            "DATA" => {
                r.get_mut()
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    s.data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                "250 2.0.0 OK queued as 42\r\n".into()
            }
            "RSET" | "NOOP" => "250 2.0.0 OK\r\n".into(),
            "QUIT" => {
                r.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not recognised\r\n".into(),
        };
        r.get_mut().write_all(reply.as_bytes()).await?;
        r.get_mut().flush().await?;
    }
}

async fn read_line(r: &mut BufReader<Box<dyn Io>>) -> std::io::Result<String> {
    let mut l = String::new();
    r.read_line(&mut l).await?;
    Ok(l.trim_end().to_string())
}

const SMTP_PASSWORD: &str = "hunter2-very-secret";

fn email(addr: SocketAddr, tls: SmtpTls, auth: bool) -> ReceiverConfig {
    receiver(
        "dba",
        Duration::from_secs(5),
        ReceiverKind::Email(EmailConfig {
            smtp: addr.to_string(),
            tls,
            username: auth.then(|| "postflight".to_string()),
            password: auth.then(|| Secret::new(SMTP_PASSWORD)),
            from: "postflight@example.com".into(),
            to: vec![
                "dba@example.com".into(),
                "Ops Team <ops@example.com>".into(),
            ],
        }),
    )
}

fn clients_trusting(pki: &TestPki) -> Clients {
    notify::install_crypto_provider();
    Clients::with_extra_roots(vec![pki.ca.clone()]).unwrap()
}

/// The message with its quoted-printable parts decoded (lettre picks quoted-printable or 7bit per
/// part, depending on line lengths).
fn decode_message(data: &str) -> String {
    data.split("\r\n--")
        .map(|part| {
            if part.contains("Content-Transfer-Encoding: quoted-printable") {
                decode_qp(part)
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n--")
}

/// Undoes quoted-printable: soft line breaks and `=XX`.
fn decode_qp(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'='
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// What every delivered email must look like.
fn assert_message(s: &Session, subject: &str) {
    assert_eq!(s.mail_from, "<postflight@example.com>");
    assert_eq!(s.rcpt_to, vec!["<dba@example.com>", "<ops@example.com>"]);
    let d = &decode_message(&s.data);
    assert!(d.contains(&format!("Subject: {subject}\r\n")), "{d}");
    assert!(
        d.contains("To: dba@example.com, \"Ops Team\" <ops@example.com>")
            || d.contains("To: dba@example.com, Ops Team <ops@example.com>"),
        "{d}"
    );
    assert!(d.contains("Content-Type: multipart/alternative"), "{d}");
    assert!(d.contains("Content-Type: text/plain; charset=utf-8"), "{d}");
    assert!(d.contains("Content-Type: text/html; charset=utf-8"), "{d}");
    assert!(d.contains("- error rate 5% on api"), "{d}");
    assert!(d.contains("<b>error rate 5% on api</b>"), "{d}");
    // The label value is markup in the text part, escaped in the HTML part.
    assert!(d.contains("path=<b>/v1</b>"), "{d}");
    assert!(
        d.contains("<code>path=&lt;b&gt;/v1&lt;/b&gt;</code>"),
        "{d}"
    );
}

#[tokio::test]
async fn email_plain_smtp() {
    let (addr, mut sessions) = smtp_server(SmtpBehaviour::plain()).await;
    let n = notification("dba", &[GroupStatus::Firing, GroupStatus::Firing]);
    let d = notify::send(&clients(), &email(addr, SmtpTls::None, false), &n)
        .await
        .expect("delivered");
    assert_eq!(d.status, Some(250));
    assert!(d.detail.starts_with("250"), "{}", d.detail);
    let s = sessions.recv().await.unwrap();
    assert!(!s.tls);
    assert!(s.auth.is_empty());
    assert_message(&s, "[FIRING:2] HighErrorRate api");
}

#[tokio::test]
async fn email_starttls_with_auth_plain() {
    let pki = test_pki();
    let b = SmtpBehaviour {
        offer_starttls: true,
        auth: Some("PLAIN LOGIN"),
        tls: Some(pki.server.clone()),
        ..SmtpBehaviour::plain()
    };
    let (addr, mut sessions) = smtp_server(b).await;
    let n = notification("dba", &[GroupStatus::Resolved]);
    notify::send(
        &clients_trusting(&pki),
        &email(addr, SmtpTls::Starttls, true),
        &n,
    )
    .await
    .expect("delivered");
    let s = sessions.recv().await.unwrap();
    assert!(s.tls, "upgraded with STARTTLS");
    assert!(
        s.commands
            .iter()
            .any(|c| c.eq_ignore_ascii_case("STARTTLS"))
    );
    assert_eq!(
        s.auth,
        vec![(
            "PLAIN".to_string(),
            format!("\0postflight\0{SMTP_PASSWORD}")
        )]
    );
    assert_message(&s, "[RESOLVED] HighErrorRate api");
}

#[tokio::test]
async fn email_implicit_tls_with_auth_login() {
    let pki = test_pki();
    let b = SmtpBehaviour {
        implicit_tls: true,
        auth: Some("LOGIN"),
        tls: Some(pki.server.clone()),
        ..SmtpBehaviour::plain()
    };
    let (addr, mut sessions) = smtp_server(b).await;
    let n = notification("dba", &[GroupStatus::Firing]);
    notify::send(
        &clients_trusting(&pki),
        &email(addr, SmtpTls::Tls, true),
        &n,
    )
    .await
    .expect("delivered");
    let s = sessions.recv().await.unwrap();
    assert!(s.tls);
    assert_eq!(
        s.auth,
        vec![("LOGIN".to_string(), format!("postflight\0{SMTP_PASSWORD}"))]
    );
    assert_message(&s, "[FIRING:1] HighErrorRate api");
}

#[tokio::test]
async fn email_test_message_is_marked() {
    let (addr, mut sessions) = smtp_server(SmtpBehaviour::plain()).await;
    notify::send_test(&clients(), &email(addr, SmtpTls::None, false), "")
        .await
        .expect("delivered");
    let s = sessions.recv().await.unwrap();
    assert!(
        s.data.contains("Subject: [TEST] [FIRING:1] PostflightTest"),
        "{}",
        s.data
    );
    assert!(
        decode_message(&s.data).contains("This is a test notification from postflight"),
        "{}",
        s.data
    );
}

#[tokio::test]
async fn email_rejected_auth_is_permanent_and_hides_the_password() {
    let pki = test_pki();
    let b = SmtpBehaviour {
        offer_starttls: true,
        auth: Some("PLAIN"),
        reject_auth: true,
        tls: Some(pki.server.clone()),
        ..SmtpBehaviour::plain()
    };
    let (addr, mut sessions) = smtp_server(b).await;
    let e = notify::send(
        &clients_trusting(&pki),
        &email(addr, SmtpTls::Starttls, true),
        &notification("dba", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let m = e.to_string();
    assert!(m.contains("535") && m.contains("dba"), "{m}");
    assert!(!m.contains(SMTP_PASSWORD), "{m}");
    assert!(!format!("{e:?}").contains(SMTP_PASSWORD));
    let s = sessions.recv().await.unwrap();
    assert!(
        s.auth[0].1.contains(SMTP_PASSWORD),
        "the password was offered"
    );
}

#[tokio::test]
async fn email_4xx_is_retryable() {
    let b = SmtpBehaviour {
        mail_reply: Some("451 4.3.0 mailbox busy, try later"),
        ..SmtpBehaviour::plain()
    };
    let (addr, _sessions) = smtp_server(b).await;
    let e = notify::send(
        &clients(),
        &email(addr, SmtpTls::None, false),
        &notification("dba", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("451"), "{e}");
}

#[tokio::test]
async fn email_5xx_is_permanent() {
    let b = SmtpBehaviour {
        mail_reply: Some("550 5.7.1 sender rejected"),
        ..SmtpBehaviour::plain()
    };
    let (addr, _sessions) = smtp_server(b).await;
    let e = notify::send(
        &clients(),
        &email(addr, SmtpTls::None, false),
        &notification("dba", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
}

#[tokio::test]
async fn email_starttls_is_required_not_opportunistic() {
    // A server (or a man in the middle) that does not offer STARTTLS must not get the password.
    let b = SmtpBehaviour {
        auth: Some("PLAIN LOGIN"),
        ..SmtpBehaviour::plain()
    };
    let (addr, mut sessions) = smtp_server(b).await;
    let pki = test_pki();
    let e = notify::send(
        &clients_trusting(&pki),
        &email(addr, SmtpTls::Starttls, true),
        &notification("dba", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(!e.to_string().contains(SMTP_PASSWORD));
    let s = sessions.recv().await.unwrap();
    assert!(s.auth.is_empty(), "no AUTH in clear: {:?}", s.commands);
    assert!(s.mail_from.is_empty());
}

#[tokio::test]
async fn email_untrusted_certificate_fails() {
    // Same server, but the client does not trust the test CA.
    let pki = test_pki();
    let b = SmtpBehaviour {
        implicit_tls: true,
        tls: Some(pki.server.clone()),
        ..SmtpBehaviour::plain()
    };
    let (addr, _sessions) = smtp_server(b).await;
    let e = notify::send(
        &clients(),
        &email(addr, SmtpTls::Tls, true),
        &notification("dba", &[GroupStatus::Firing]),
    )
    .await
    .unwrap_err();
    assert!(!e.to_string().contains(SMTP_PASSWORD), "{e}");
}

#[tokio::test]
async fn email_to_silent_server_times_out() {
    let addr = silent_peer().await;
    let mut r = email(addr, SmtpTls::None, false);
    r.timeout = Duration::from_millis(500);
    let start = Instant::now();
    let e = notify::send(&clients(), &r, &notification("dba", &[GroupStatus::Firing]))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(start.elapsed() < Duration::from_millis(1500));
}
