//! The notification channels against real peers on loopback: hyper servers playing Slack, a
//! webhook consumer, PagerDuty, Teams, Discord, Telegram, Opsgenie, Google Chat and ntfy, and a
//! small SMTP server speaking STARTTLS, implicit TLS and AUTH PLAIN/LOGIN over rustls with a CA
//! made by rcgen.

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
    ChatId, DiscordConfig, EmailConfig, GooglechatConfig, NtfyConfig, OpsgenieConfig,
    PagerdutyConfig, ReceiverConfig, ReceiverKind, Secret, SlackConfig, SmtpTls, TeamsConfig,
    TelegramConfig, WebhookConfig,
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
    /// The query string, without `?`.
    query: String,
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
                            query: parts.uri.query().unwrap_or("").to_string(),
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
async fn pagerduty_a_fail_opens_an_incident_per_job_that_the_next_pass_resolves() {
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
    let mut events = Vec::new();
    // d1 fails, d2 (the fix) passes, d3 has no traffic.
    for (v, d) in [("fail", "d1"), ("pass", "d2"), ("inconclusive", "d3")] {
        let mut n = verdict("oncall", v, d);
        if v == "inconclusive" {
            n.alerts[0]
                .labels
                .insert("severity".into(), "warning".into());
        }
        notify::send(&c, &r, &n).await.unwrap();
        events.push(seen.recv().await.unwrap().json());
    }
    let (fail, pass, blind) = (&events[0], &events[1], &events[2]);
    assert_eq!(fail["event_action"], "trigger");
    assert_eq!(fail["payload"]["severity"], "critical");
    assert!(
        fail["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Deployment api v2.0.1: FAIL: check error-rate failed"),
        "{fail}"
    );
    assert_eq!(pass["event_action"], "resolve");
    assert_eq!(
        pass["dedup_key"], fail["dedup_key"],
        "another deployment of the job resolves the incident"
    );
    assert_eq!(blind["event_action"], "trigger");
    assert_eq!(blind["payload"]["severity"], "warning");
    assert_eq!(blind["dedup_key"], fail["dedup_key"]);
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

// ---------------------------------------------------------------------------------------------
// Teams, Discord, Telegram, Opsgenie, Google Chat and ntfy (SPEC §11): each receives a firing,
// a resolved and a verdict message, checked against the shapes of the service's API.

/// A `DeploymentVerdict` notification as the gate engine sends it: one alert, `fail` and
/// `inconclusive` firing, `pass` resolved, one annotation per check.
fn verdict(receiver: &str, verdict: &str, deployment: &str) -> Notification {
    let status = if verdict == "pass" {
        GroupStatus::Resolved
    } else {
        GroupStatus::Firing
    };
    let check = if verdict == "fail" {
        "fail: value 0.02, bound <= 0.005, baseline 0.001; above the bound (0 pass, 3 fail, 0 no data)"
    } else {
        "pass: value 0.001, bound <= 0.005, baseline 0.001; within bounds (3 pass, 0 fail, 0 no data)"
    };
    let alert = NotifiedAlert {
        status,
        labels: map(&[
            ("alertname", "DeploymentVerdict"),
            ("job", "api"),
            ("version", "v2.0.1"),
            ("verdict", verdict),
            ("severity", if verdict == "fail" { "page" } else { "info" }),
        ]),
        annotations: map(&[
            ("error-rate", check),
            ("summary", "api v2.0.1: verdict after 3 evaluations"),
            ("reason", "check error-rate failed 3 evaluations in a row"),
            ("commit", "abc123"),
        ]),
        starts_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        ends_at: (status == GroupStatus::Resolved)
            .then(|| Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 0).unwrap()),
        generator_url: format!("http://monitor.example.com:7980/api/v1/deployments/{deployment}"),
        fingerprint: "00000000000000cc".into(),
    };
    let group_labels = map(&[("alertname", "DeploymentVerdict"), ("job", "api")]);
    let key = format!(
        "{{}}/deploy:{}@{deployment}",
        notify::format_labels(&group_labels)
    );
    Notification::new(
        receiver,
        key,
        group_labels,
        vec![alert],
        "http://monitor.example.com:7980",
    )
}

/// A firing group whose alert carries a description far over every service's limit.
fn huge(receiver: &str) -> Notification {
    let mut n = notification(receiver, &[GroupStatus::Firing, GroupStatus::Firing]);
    n.alerts[0]
        .annotations
        .insert("description".into(), "<&>*_é😀 ".repeat(4000));
    n
}

/// Sends each notification and returns what the peer got for each.
async fn deliver_all(
    r: &ReceiverConfig,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    ns: &[Notification],
) -> Vec<Seen> {
    let c = clients();
    let mut out = Vec::new();
    for n in ns {
        notify::send(&c, r, n)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", n.group_key));
        out.push(seen.recv().await.unwrap());
    }
    out
}

fn str_of<'a>(v: &'a serde_json::Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

#[tokio::test]
async fn teams_posts_adaptive_cards_for_firing_resolved_and_verdicts() {
    let (addr, mut seen) = http_peer(202, &[], "").await;
    let r = receiver(
        "msteams",
        Duration::from_secs(5),
        ReceiverKind::Teams(TeamsConfig {
            url: Secret::new(format!(
                "http://{addr}/workflows/abc/triggers/manual/paths/invoke?sig=T3AMSSIG"
            )),
        }),
    );
    let got = deliver_all(
        &r,
        &mut seen,
        &[
            notification("msteams", &[GroupStatus::Firing, GroupStatus::Resolved]),
            notification("msteams", &[GroupStatus::Resolved]),
            verdict("msteams", "fail", "d1"),
            huge("msteams"),
        ],
    )
    .await;
    assert_eq!(got[0].path, "/workflows/abc/triggers/manual/paths/invoke");
    assert_eq!(got[0].query, "sig=T3AMSSIG");
    assert_eq!(got[0].header("content-type"), "application/json");
    let cards: Vec<serde_json::Value> = got
        .iter()
        .map(|s| {
            let v = s.json();
            assert_eq!(v["type"], "message");
            let a = &v["attachments"][0];
            assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
            let c = a["content"].clone();
            assert_eq!(c["type"], "AdaptiveCard");
            assert_eq!(
                c["$schema"],
                "http://adaptivecards.io/schemas/adaptive-card.json"
            );
            assert!(str_of(&c["version"], "version") >= "1.4");
            for b in c["body"].as_array().unwrap() {
                let t = str_of(&b["type"], "body[].type");
                assert!(["TextBlock", "Container", "FactSet"].contains(&t), "{t}");
            }
            c
        })
        .collect();
    let (firing, resolved, fail) = (&cards[0], &cards[1], &cards[2]);
    assert_eq!(firing["body"][0]["text"], "[FIRING:1] HighErrorRate api");
    assert_eq!(firing["body"][0]["color"], "Attention");
    assert_eq!(firing["body"][1]["style"], "attention");
    assert_eq!(
        firing["body"][1]["items"][0]["text"],
        "FIRING · error rate 5% on api"
    );
    let facts = &firing["body"][1]["items"][2]["facts"];
    assert!(
        facts
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"title": "path", "value": "<b>/v1</b>"}))
    );
    assert_eq!(firing["body"][2]["style"], "good");
    assert_eq!(firing["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(resolved["body"][0]["text"], "[RESOLVED] HighErrorRate api");
    assert_eq!(resolved["body"][0]["color"], "Good");
    assert_eq!(fail["body"][0]["text"], "Deployment api v2.0.1: FAIL");
    assert_eq!(fail["body"][0]["color"], "Attention");
    assert_eq!(fail["body"][2]["facts"][0]["title"], "error-rate");
    assert!(
        str_of(&fail["body"][2]["facts"][0]["value"], "check").starts_with("**FAIL** · value 0.02")
    );
    // Under Teams' 28 KB per message, however long the annotation.
    assert!(got[3].body.len() < 28 * 1024, "{}", got[3].body.len());
}

#[tokio::test]
async fn discord_posts_embeds_within_its_limits() {
    let (addr, mut seen) = http_peer(204, &[], "").await;
    let r = receiver(
        "chat",
        Duration::from_secs(5),
        ReceiverKind::Discord(DiscordConfig {
            url: Secret::new(format!("http://{addr}/api/webhooks/123/D1SCORDTOKEN")),
        }),
    );
    let mut many_checks = verdict("chat", "fail", "d1");
    for i in 0..40 {
        many_checks.alerts[0].annotations.insert(
            format!("check-{i:02}"),
            format!("fail: {}", "v".repeat(1500)),
        );
    }
    let got = deliver_all(
        &r,
        &mut seen,
        &[
            notification("chat", &[GroupStatus::Firing, GroupStatus::Resolved]),
            notification("chat", &[GroupStatus::Resolved]),
            verdict("chat", "pass", "d1"),
            huge("chat"),
            many_checks,
        ],
    )
    .await;
    assert_eq!(got[0].path, "/api/webhooks/123/D1SCORDTOKEN");
    let msgs: Vec<serde_json::Value> = got.iter().map(Seen::json).collect();
    for m in &msgs {
        assert_eq!(m["allowed_mentions"]["parse"], serde_json::json!([]));
        let embeds = m["embeds"].as_array().unwrap();
        assert!(!embeds.is_empty() && embeds.len() <= 10);
        let mut total = 0;
        let len = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
        for e in embeds {
            assert!(len(&e["title"]) <= 256);
            assert!(len(&e["description"]) <= 4096);
            assert!(e["color"].is_u64());
            assert!(len(&e["footer"]["text"]) <= 2048);
            let fields = e["fields"].as_array().cloned().unwrap_or_default();
            assert!(fields.len() <= 25);
            for f in &fields {
                assert!((1..=256).contains(&len(&f["name"])), "{f}");
                assert!((1..=1024).contains(&len(&f["value"])), "{f}");
                total += len(&f["name"]) + len(&f["value"]);
            }
            total += len(&e["title"]) + len(&e["description"]) + len(&e["footer"]["text"]);
        }
        assert!(total <= 6000, "{total} characters");
    }
    let e = |i: usize| &msgs[i]["embeds"][0];
    assert_eq!(e(0)["title"], "[FIRING:1] HighErrorRate api");
    assert_eq!(e(0)["color"], 0xD93025);
    assert_eq!(e(0)["timestamp"], "2024-05-01T12:00:00Z");
    let d = str_of(&e(0)["description"], "description");
    assert!(d.starts_with("🔴 **FIRING** · error rate 5% on api"), "{d}");
    assert!(d.contains("`path=<b>/v1</b>`"), "{d}");
    assert_eq!(e(1)["title"], "[RESOLVED] HighErrorRate api");
    assert_eq!(e(1)["color"], 0x1E8E3E);
    assert_eq!(e(2)["title"], "Deployment api v2.0.1: PASS");
    assert_eq!(e(2)["color"], 0x1E8E3E);
    assert_eq!(e(2)["fields"][0]["name"], "error-rate");
    assert!(str_of(&e(3)["description"], "description").ends_with("…and 1 more alert"));
    let fields = e(4)["fields"].as_array().unwrap();
    assert!(str_of(&fields.last().unwrap()["value"], "more").starts_with("and "));
}

/// Checks Telegram HTML as its parser would (only its tags, each closed, known entities) and
/// returns the text Telegram counts.
fn telegram_text(html: &str) -> String {
    let mut open: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').expect("closed <");
                let tag = &rest[1..end];
                if let Some(name) = tag.strip_prefix('/') {
                    assert_eq!(open.pop().as_deref(), Some(name), "in {html}");
                } else {
                    let name = tag.split(' ').next().unwrap();
                    assert!(
                        ["b", "i", "u", "s", "code", "pre", "a"].contains(&name),
                        "<{name}>"
                    );
                    open.push(name.to_string());
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest.find(';').expect("entity");
                text.push(match &rest[..=end] {
                    "&amp;" => '&',
                    "&lt;" => '<',
                    "&gt;" => '>',
                    "&quot;" => '"',
                    e => panic!("unknown entity {e}"),
                });
                rest = &rest[end + 1..];
            }
            c => {
                assert_ne!(c, '>', "bare > in {html}");
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    assert!(open.is_empty(), "unclosed {open:?}");
    text
}

#[tokio::test]
async fn telegram_sends_html_within_4096_characters() {
    let (addr, mut seen) = http_peer(
        200,
        &[("content-type", "application/json")],
        r#"{"ok":true,"result":{"message_id":1}}"#,
    )
    .await;
    let r = receiver(
        "tg",
        Duration::from_secs(5),
        ReceiverKind::Telegram(TelegramConfig {
            bot_token: Secret::new("123456:T3LEGRAMT0KEN"),
            chat_id: ChatId::Id(-1001234567890),
            url: format!("http://{addr}/"),
        }),
    );
    let got = deliver_all(
        &r,
        &mut seen,
        &[
            notification("tg", &[GroupStatus::Firing, GroupStatus::Resolved]),
            notification("tg", &[GroupStatus::Resolved]),
            verdict("tg", "inconclusive", "d1"),
            huge("tg"),
        ],
    )
    .await;
    for s in &got {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/bot123456:T3LEGRAMT0KEN/sendMessage");
        let v = s.json();
        assert_eq!(v["chat_id"], -1001234567890i64);
        assert_eq!(v["parse_mode"], "HTML");
        let html = str_of(&v["text"], "text");
        let text = telegram_text(html);
        assert!(!text.is_empty());
        assert!(text.encode_utf16().count() <= 4096, "{}", text.len());
    }
    let html = |i: usize| got[i].json()["text"].as_str().unwrap().to_string();
    assert!(html(0).starts_with("🔴 <b>[FIRING:1] HighErrorRate api</b>"));
    assert!(html(0).contains("<code>path=&lt;b&gt;/v1&lt;/b&gt;</code>"));
    assert!(html(1).starts_with("✅ <b>[RESOLVED] HighErrorRate api</b>"));
    assert!(html(2).starts_with("🟠 <b>Deployment api v2.0.1: INCONCLUSIVE</b>"));
    assert!(
        html(2).contains("<pre>error-rate  pass    value 0.001"),
        "{}",
        html(2)
    );
    assert!(html(3).contains("…and 1 more alert"));

    // A username chat id is sent as a string.
    let r = receiver(
        "tg",
        Duration::from_secs(5),
        ReceiverKind::Telegram(TelegramConfig {
            bot_token: Secret::new("123456:T3LEGRAMT0KEN"),
            chat_id: ChatId::Username("@alerts".into()),
            url: format!("http://{addr}"),
        }),
    );
    let got = deliver_all(&r, &mut seen, &[notification("tg", &[GroupStatus::Firing])]).await;
    assert_eq!(got[0].json()["chat_id"], "@alerts");
}

#[tokio::test]
async fn opsgenie_creates_then_closes_by_alias() {
    let (addr, mut seen) = http_peer(
        202,
        &[("content-type", "application/json")],
        r#"{"result":"Request will be processed","took":0.1,"requestId":"x"}"#,
    )
    .await;
    let r = receiver(
        "genie",
        Duration::from_secs(5),
        ReceiverKind::Opsgenie(OpsgenieConfig {
            api_key: Secret::new("0PSG3NIEKEY"),
            url: format!("http://{addr}"),
        }),
    );
    let got = deliver_all(
        &r,
        &mut seen,
        &[
            notification("genie", &[GroupStatus::Firing]),
            notification("genie", &[GroupStatus::Resolved]),
            verdict("genie", "fail", "d1"),
            verdict("genie", "pass", "d2"),
            huge("genie"),
        ],
    )
    .await;
    for s in &got {
        assert_eq!(s.header("authorization"), "GenieKey 0PSG3NIEKEY");
        assert_eq!(s.header("content-type"), "application/json");
    }
    let (create, close) = (&got[0], &got[1]);
    assert_eq!(create.path, "/v2/alerts");
    let c = create.json();
    assert_eq!(
        c["message"],
        "[FIRING:1] HighErrorRate api: error rate 5% on api"
    );
    assert_eq!(c["priority"], "P1", "severity page");
    assert_eq!(c["source"], "postflight");
    assert_eq!(c["entity"], "api");
    assert!(c["tags"].as_array().unwrap().iter().all(|t| t.is_string()));
    assert!(
        c["details"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.is_string())
    );
    let alias = str_of(&c["alias"], "alias").to_string();
    assert!(alias.len() <= 512);
    assert_eq!(close.path, format!("/v2/alerts/{alias}/close"));
    assert_eq!(close.query, "identifierType=alias");
    assert_eq!(close.json()["source"], "postflight");

    // A failed deployment opens an alert that the next pass of the job closes.
    let (fail, pass) = (&got[2], &got[3]);
    assert_eq!(fail.path, "/v2/alerts");
    let f = fail.json();
    assert_eq!(f["message"], "Deployment api v2.0.1: FAIL");
    assert_eq!(f["priority"], "P1");
    let verdict_alias = str_of(&f["alias"], "alias");
    assert_ne!(verdict_alias, alias);
    assert_eq!(pass.path, format!("/v2/alerts/{verdict_alias}/close"));

    let h = got[4].json();
    assert!(str_of(&h["message"], "message").chars().count() <= 130);
    assert!(str_of(&h["description"], "description").chars().count() <= 15_000);
    let tags = h["tags"].as_array().unwrap();
    assert!(tags.len() <= 20 && tags.iter().all(|t| str_of(t, "tag").chars().count() <= 50));
}

#[tokio::test]
async fn googlechat_posts_cards_v2() {
    let (addr, mut seen) = http_peer(200, &[("content-type", "application/json")], "{}").await;
    let r = receiver(
        "gchat",
        Duration::from_secs(5),
        ReceiverKind::Googlechat(GooglechatConfig {
            url: Secret::new(format!(
                "http://{addr}/v1/spaces/AAAA/messages?key=K3Y&token=GCHATT0KEN"
            )),
        }),
    );
    let got = deliver_all(
        &r,
        &mut seen,
        &[
            notification("gchat", &[GroupStatus::Firing, GroupStatus::Resolved]),
            notification("gchat", &[GroupStatus::Resolved]),
            verdict("gchat", "fail", "d1"),
            huge("gchat"),
        ],
    )
    .await;
    assert_eq!(got[0].path, "/v1/spaces/AAAA/messages");
    assert_eq!(got[0].query, "key=K3Y&token=GCHATT0KEN");
    for s in &got {
        assert!(s.body.len() <= 32_000, "{}", s.body.len());
        let v = s.json();
        assert!(v["text"].is_string());
        let card = &v["cardsV2"][0];
        assert!(card["cardId"].is_string());
        assert!(card["card"]["header"]["title"].is_string());
        for section in card["card"]["sections"].as_array().unwrap() {
            for w in section["widgets"].as_array().unwrap() {
                let kind: Vec<&String> = w.as_object().unwrap().keys().collect();
                assert!(
                    ["textParagraph", "decoratedText", "buttonList"].contains(&kind[0].as_str()),
                    "{kind:?}"
                );
            }
        }
    }
    let v = |i: usize| got[i].json();
    let sections = |i: usize| v(i)["cardsV2"][0]["card"]["sections"].clone();
    assert_eq!(
        v(0)["cardsV2"][0]["card"]["header"]["title"],
        "[FIRING:1] HighErrorRate api"
    );
    let first = str_of(
        &sections(0)[0]["widgets"][0]["textParagraph"]["text"],
        "text",
    )
    .to_string();
    assert!(first.contains("<b>FIRING</b>") && first.contains("path=&lt;b&gt;/v1&lt;/b&gt;"));
    assert_eq!(
        v(1)["cardsV2"][0]["card"]["header"]["title"],
        "[RESOLVED] HighErrorRate api"
    );
    assert_eq!(
        v(2)["cardsV2"][0]["card"]["header"]["title"],
        "Deployment api v2.0.1: FAIL"
    );
    assert_eq!(
        sections(2)[1]["widgets"][0]["decoratedText"]["topLabel"],
        "error-rate"
    );
}

#[tokio::test]
async fn ntfy_posts_text_with_title_priority_and_tags() {
    let (addr, mut seen) = http_peer(200, &[("content-type", "application/json")], "{}").await;
    let r = receiver(
        "phone",
        Duration::from_secs(5),
        ReceiverKind::Ntfy(NtfyConfig {
            url: Secret::new(format!("http://{addr}/pf-alerts-S3CRETTOPIC")),
            token: Some(Secret::new("tk_NTFYT0KEN")),
        }),
    );
    let mut unicode = notification("phone", &[GroupStatus::Firing]);
    unicode.group_labels.insert("job".into(), "café".into());
    let got = deliver_all(
        &r,
        &mut seen,
        &[
            notification("phone", &[GroupStatus::Firing, GroupStatus::Resolved]),
            notification("phone", &[GroupStatus::Resolved]),
            verdict("phone", "fail", "d1"),
            huge("phone"),
            unicode,
        ],
    )
    .await;
    for s in &got {
        assert_eq!(s.path, "/pf-alerts-S3CRETTOPIC");
        assert_eq!(s.header("authorization"), "Bearer tk_NTFYT0KEN");
        assert!(s.header("content-type").starts_with("text/plain"));
        assert!(s.body.len() <= 4096, "{}", s.body.len());
        let p: u8 = s.header("priority").parse().unwrap();
        assert!((1..=5).contains(&p));
    }
    let (firing, resolved, fail) = (&got[0], &got[1], &got[2]);
    assert_eq!(firing.header("title"), "[FIRING:1] HighErrorRate api");
    assert_eq!(firing.header("priority"), "5", "severity page");
    assert_eq!(firing.header("tags"), "rotating_light");
    assert_eq!(
        firing.header("click"),
        "http://monitor.example.com:7980/rules"
    );
    let body = std::str::from_utf8(&firing.body).unwrap();
    assert!(
        body.starts_with("FIRING · error rate 5% on api\nReason: status 503"),
        "{body}"
    );
    assert_eq!(resolved.header("title"), "[RESOLVED] HighErrorRate api");
    assert_eq!(resolved.header("priority"), "2");
    assert_eq!(resolved.header("tags"), "white_check_mark");
    assert_eq!(fail.header("title"), "Deployment api v2.0.1: FAIL");
    assert_eq!(fail.header("tags"), "rotating_light,deployment");
    assert!(
        std::str::from_utf8(&fail.body)
            .unwrap()
            .contains("- error-rate: FAIL · value 0.02")
    );
    assert!(
        std::str::from_utf8(&got[3].body)
            .unwrap()
            .ends_with("…and 1 more alert")
    );
    // A title that is not ASCII is an RFC 2047 encoded word.
    assert_eq!(
        got[4].header("title"),
        "=?UTF-8?B?W0ZJUklORzoxXSBIaWdoRXJyb3JSYXRlIGNhZsOp?="
    );
}

/// A peer that refuses every request and echoes it back in its error body, as a careless
/// service might: the path, the query and the credentials.
async fn echo_peer(status: u16) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let echo = format!(
                        "bad request {} {:?}",
                        req.uri(),
                        req.headers().get("authorization")
                    );
                    let mut resp = Response::new(Full::new(Bytes::from(echo)));
                    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// One receiver of each new type pointing at `addr`, with its secrets.
fn new_receivers(addr: SocketAddr) -> Vec<(ReceiverConfig, Vec<&'static str>)> {
    let t = Duration::from_secs(5);
    vec![
        (
            receiver(
                "msteams",
                t,
                ReceiverKind::Teams(TeamsConfig {
                    url: Secret::new(format!("http://{addr}/invoke?sig=T3AMSSIG")),
                }),
            ),
            vec!["T3AMSSIG"],
        ),
        (
            receiver(
                "chat",
                t,
                ReceiverKind::Discord(DiscordConfig {
                    url: Secret::new(format!("http://{addr}/api/webhooks/1/D1SCORDTOKEN")),
                }),
            ),
            vec!["D1SCORDTOKEN"],
        ),
        (
            receiver(
                "tg",
                t,
                ReceiverKind::Telegram(TelegramConfig {
                    bot_token: Secret::new("123456:T3LEGRAMT0KEN"),
                    chat_id: ChatId::Id(1),
                    url: format!("http://{addr}"),
                }),
            ),
            vec!["T3LEGRAMT0KEN"],
        ),
        (
            receiver(
                "genie",
                t,
                ReceiverKind::Opsgenie(OpsgenieConfig {
                    api_key: Secret::new("0PSG3NIEKEY"),
                    url: format!("http://{addr}"),
                }),
            ),
            vec!["0PSG3NIEKEY"],
        ),
        (
            receiver(
                "gchat",
                t,
                ReceiverKind::Googlechat(GooglechatConfig {
                    url: Secret::new(format!(
                        "http://{addr}/v1/spaces/A/messages?token=GCHATT0KEN"
                    )),
                }),
            ),
            vec!["GCHATT0KEN"],
        ),
        (
            receiver(
                "phone",
                t,
                ReceiverKind::Ntfy(NtfyConfig {
                    url: Secret::new(format!("http://{addr}/S3CRETTOPIC")),
                    token: Some(Secret::new("tk_NTFYT0KEN")),
                }),
            ),
            vec!["S3CRETTOPIC", "tk_NTFYT0KEN"],
        ),
    ]
}

#[tokio::test]
async fn new_receivers_keep_their_secrets_out_of_errors() {
    let c = clients();
    for status in [400, 401, 500] {
        let addr = echo_peer(status).await;
        for (r, secrets) in new_receivers(addr) {
            for n in [
                notification(&r.name, &[GroupStatus::Firing]),
                notification(&r.name, &[GroupStatus::Resolved]),
            ] {
                let e = notify::send(&c, &r, &n).await.unwrap_err();
                let m = e.to_string();
                assert_eq!(e.is_retryable(), status == 500, "{m}");
                assert!(m.contains(&r.name) && m.contains("bad request"), "{m}");
                for s in &secrets {
                    assert!(!m.contains(s), "{} leaked {s}: {m}", r.name);
                }
            }
        }
    }
    // A connection refused says so, without the URL.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    for (r, secrets) in new_receivers(closed) {
        let e = notify::send(&c, &r, &notification(&r.name, &[GroupStatus::Firing]))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        for s in &secrets {
            assert!(!e.to_string().contains(s), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_command_delivers_through_each_new_receiver() {
    let (addr, mut seen) = http_peer(200, &[("content-type", "application/json")], "{}").await;
    let configs = [
        (
            "msteams",
            format!("type = \"teams\"\nurl = \"http://{addr}/invoke?sig=S\""),
        ),
        (
            "chat",
            format!("type = \"discord\"\nurl = \"http://{addr}/api/webhooks/1/T\""),
        ),
        (
            "tg",
            format!(
                "type = \"telegram\"\nbot_token = \"1:T\"\nchat_id = -100\nurl = \"http://{addr}\""
            ),
        ),
        (
            "genie",
            format!("type = \"opsgenie\"\napi_key = \"K\"\nurl = \"http://{addr}\""),
        ),
        (
            "gchat",
            format!("type = \"googlechat\"\nurl = \"http://{addr}/v1/spaces/A/messages\""),
        ),
        (
            "phone",
            format!("type = \"ntfy\"\nurl = \"http://{addr}/topic\"\ntoken = \"tk\""),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in configs {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("[[receiver]]\nname = \"{name}\"\n{body}\ntimeout = \"5s\"\n"),
        )
        .unwrap();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_postflight"))
                .args(["notify-test", name, "-c"])
                .arg(&path)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let req = seen.recv().await.unwrap();
        let body = String::from_utf8_lossy(&req.body);
        assert!(
            body.contains("[TEST]") || req.header("title").contains("[TEST]"),
            "{name}: {body}"
        );
        assert!(body.contains("test notification"), "{name}: {body}");
    }
}
