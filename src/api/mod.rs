//! The HTTP server on `server.listen`: the exporter (`/metrics`), health endpoints, and the JSON
//! API (SPEC §4).
//!
//! Reads are served from the owners' views; writes (silences, deployments, reload) are commands
//! to the component that owns the state. With `api_token` set, every non-GET call needs the
//! bearer token and is refused with 401 before anything changes.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::daemon::Context;

/// Largest request body the API reads.
const MAX_BODY: usize = 1 << 20;

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

/// Accepts connections until `shutdown`, then lets open requests finish.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, shutdown: CancellationToken) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let heartbeat = ctx.liveness.register("api", Duration::from_secs(3600));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        heartbeat.beat();
        let ctx = ctx.clone();
        let svc = hyper::service::service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, Infallible>(handle(ctx, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(peer = %peer, error = %e, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        warn!("API connections still open after 5 s; closing them");
    }
}

/// Routes one request.
pub async fn handle(ctx: Arc<Context>, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if method != Method::GET && method != Method::HEAD && !authorized(&ctx, &req) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            // Thousands of probe series: milliseconds, off the runtime's worker.
            crate::rt::blocking(|| ctx.telemetry.render()),
        ),
        (&Method::GET | &Method::HEAD, "/healthz") => {
            text(StatusCode::OK, "text/plain", "ok\n".into())
        }
        (&Method::GET | &Method::HEAD, "/readyz") => {
            if ctx.ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".into(),
                )
            }
        }
        (&Method::POST | &Method::PUT, "/-/reload") => match ctx.reload().await {
            Ok(()) => json(StatusCode::OK, &serde_json::json!({"status": "success"})),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("reload failed: {e}"),
            ),
        },
        (&Method::GET, "/api/v1/alerts") => {
            let alerts: Vec<serde_json::Value> = ctx
                .all_alerts()
                .into_iter()
                .filter(|a| a.state != crate::alert::AlertState::Resolved)
                .map(|a| {
                    serde_json::json!({
                        "labels": a.labels,
                        "annotations": a.annotations,
                        "state": a.state.as_str(),
                        "activeAt": a.active_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        "value": crate::promql::format_value(a.value),
                    })
                })
                .collect();
            json(
                StatusCode::OK,
                &serde_json::json!({ "status": "success", "alerts": alerts }),
            )
        }
        (&Method::GET, "/api/v1/targets") => json(
            StatusCode::OK,
            &serde_json::json!({ "status": "success", "targets": ctx.targets.list() }),
        ),
        (&Method::GET | &Method::POST, "/api/v1/query") => query(&ctx, req).await,
        (&Method::GET, "/api/v1/history") => history(&ctx, req.uri().query().unwrap_or("")).await,
        (&Method::GET, "/api/v1/silences") => {
            let list: Vec<serde_json::Value> = ctx
                .dispatch
                .silences()
                .await
                .into_iter()
                .map(|(s, state)| {
                    let mut v = serde_json::to_value(&s).unwrap_or_default();
                    v["status"] = serde_json::json!({ "state": state });
                    v
                })
                .collect();
            json(
                StatusCode::OK,
                &serde_json::json!({ "status": "success", "silences": list }),
            )
        }
        (&Method::POST, "/api/v1/silences") => {
            let body: crate::dispatch::NewSilence = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match ctx.dispatch.add_silence(body).await {
                Ok(id) => json(StatusCode::OK, &serde_json::json!({ "id": id })),
                Err(e) => error(StatusCode::BAD_REQUEST, &e),
            }
        }
        (&Method::DELETE, p) if p.starts_with("/api/v1/silences/") => {
            let id = &p["/api/v1/silences/".len()..];
            match ctx.dispatch.expire_silence(id).await {
                Ok(()) => json(StatusCode::OK, &serde_json::json!({ "status": "expired" })),
                Err(e) if e == "not found" => {
                    error(StatusCode::NOT_FOUND, &format!("no silence {id}"))
                }
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
            }
        }
        (&Method::POST, "/api/v1/deployments") => crate::deploy::api::create(&ctx.gates, req).await,
        (&Method::GET | &Method::HEAD, "/api/v1/deployments") => {
            crate::deploy::api::list(&ctx.gates, req.uri().query()).await
        }
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/api/v1/deployments/") => {
            crate::deploy::api::get(&ctx.gates, &p["/api/v1/deployments/".len()..]).await
        }
        (
            _,
            "/metrics"
            | "/healthz"
            | "/readyz"
            | "/-/reload"
            | "/api/v1/silences"
            | "/api/v1/alerts"
            | "/api/v1/targets"
            | "/api/v1/history"
            | "/api/v1/query"
            | "/api/v1/deployments",
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{method} is not allowed on {path}"),
        ),
        _ => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
    }
}

/// `GET /api/v1/query`: an instant query in Prometheus' HTTP API format.
async fn query(ctx: &Arc<Context>, req: Request<Incoming>) -> Resp {
    let mut params = parse_query(req.uri().query().unwrap_or(""));
    if req.method() == Method::POST {
        let body = Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes());
        if let Ok(b) = body {
            params.extend(parse_query(&String::from_utf8_lossy(&b)));
        }
    }
    let prom_error = |status: StatusCode, kind: &str, msg: &str| {
        json(
            status,
            &serde_json::json!({ "status": "error", "errorType": kind, "error": msg }),
        )
    };
    let Some(q) = params.get("query") else {
        return prom_error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "missing parameter: query",
        );
    };
    let t_ms = match params.get("time") {
        None => ctx.clock.now_ms(),
        Some(t) => match parse_time(t) {
            Some(t) => t,
            None => {
                return prom_error(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    &format!("invalid parameter \"time\": cannot parse {t:?} to a valid timestamp"),
                );
            }
        },
    };
    let expr = match crate::promql::parse(q) {
        Ok(e) => e,
        Err(e) => {
            return prom_error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                &format!("invalid parameter \"query\": {e}"),
            );
        }
    };
    if let Err(e) = crate::promql::check_supported(&expr) {
        return prom_error(StatusCode::BAD_REQUEST, "bad_data", &e);
    }
    let head = ctx.head.clone();
    let r = tokio::task::spawn_blocking(move || {
        crate::promql::Engine::default().instant(&*head, &expr, t_ms)
    })
    .await;
    match r {
        Ok(Ok(v)) => json(StatusCode::OK, &crate::promql::value_to_api_json(&v)),
        Ok(Err(e)) => prom_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
            &e.to_string(),
        ),
        Err(e) => prom_error(StatusCode::SERVICE_UNAVAILABLE, "internal", &e.to_string()),
    }
}

/// `GET /api/v1/history?probe=NAME|alert=NAME[&since=T&until=T&limit=N]`, newest last.
async fn history(ctx: &Arc<Context>, q: &str) -> Resp {
    let p = parse_query(q);
    let time = |k: &str, default: i64| -> Result<i64, String> {
        match p.get(k) {
            None => Ok(default),
            Some(v) => parse_time(v)
                .ok_or_else(|| format!("invalid {k}: {v:?} is neither RFC 3339 nor Unix time")),
        }
    };
    let (since, until) = match (time("since", 0), time("until", i64::MAX)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => 1000,
        Some(Ok(l)) if l > 0 => l.min(100_000),
        Some(_) => return error(StatusCode::BAD_REQUEST, "invalid limit: a positive integer"),
    };
    let store = ctx.store.clone();
    let rfc = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    if let Some(name) = p.get("probe").cloned() {
        let r =
            tokio::task::spawn_blocking(move || store.probe_history(&name, since, until, limit))
                .await;
        match r {
            Ok(Ok(records)) => {
                let v: Vec<serde_json::Value> = records
                    .iter()
                    .map(|r| serde_json::json!({"time": rfc(r.t), "success": r.success, "duration": r.duration_seconds, "status": r.status, "reason": r.reason}))
                    .collect();
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "status": "success", "probe": p.get("probe"), "results": v }),
                )
            }
            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    } else if let Some(name) = p.get("alert").cloned() {
        let r =
            tokio::task::spawn_blocking(move || store.alert_history(&name, since, until, limit))
                .await;
        match r {
            Ok(Ok(records)) => {
                let v: Vec<serde_json::Value> = records
                    .iter()
                    .map(|r| serde_json::json!({"time": rfc(r.t), "labels": r.labels, "from": r.from, "to": r.to, "value": crate::promql::format_value(r.value)}))
                    .collect();
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "status": "success", "alert": p.get("alert"), "transitions": v }),
                )
            }
            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    } else {
        error(StatusCode::BAD_REQUEST, "give probe=NAME or alert=NAME")
    }
}

/// RFC 3339 or Unix seconds (with a fraction) to ms.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        return f.is_finite().then(|| (f * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Decodes one query-string component: `%XX` escapes and `+` for space. Works on bytes, so a
/// malformed escape next to a multi-byte character is kept as text, never a panic.
pub fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes `a=b&c=d` with percent-escapes and `+` for space.
pub fn parse_query(q: &str) -> std::collections::HashMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(kv), String::new()),
        })
        .collect()
}

/// True when no token is configured or the request carries the right one. The comparison takes
/// the same time wherever the first difference is.
fn authorized(ctx: &Context, req: &Request<Incoming>) -> bool {
    let config = ctx.config();
    let Some(token) = &config.server.api_token else {
        return true;
    };
    let Some(given) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a JSON body of at most `MAX_BODY` bytes.
pub async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Resp> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

/// A JSON answer.
pub fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A JSON error `{"error": "..."}`.
pub fn error(status: StatusCode, msg: &str) -> Resp {
    json(status, &serde_json::json!({ "error": msg }))
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_without_panicking_on_odd_input() {
        let q = parse_query("query=up%7Bjob%3D%22a%22%7D&time=1.5&x=%C3%A9+b&bad=%%C3%A9&t=%4");
        assert_eq!(q["query"], "up{job=\"a\"}");
        assert_eq!(q["time"], "1.5");
        assert_eq!(q["x"], "é b");
        assert_eq!(
            q["bad"], "%é",
            "a broken escape before a multi-byte character stays text"
        );
        assert_eq!(q["t"], "%4");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        assert_eq!(parse_time("1.5"), Some(1500));
        assert_eq!(parse_time("2026-11-22T00:00:00Z"), Some(1_795_305_600_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
