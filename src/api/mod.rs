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
            ctx.telemetry.render(),
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
        (&Method::POST, "/api/v1/deployments") => crate::deploy::api::create(&ctx.gates, req).await,
        (&Method::GET | &Method::HEAD, "/api/v1/deployments") => {
            crate::deploy::api::list(&ctx.gates, req.uri().query()).await
        }
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/api/v1/deployments/") => {
            crate::deploy::api::get(&ctx.gates, &p["/api/v1/deployments/".len()..]).await
        }
        (_, "/metrics" | "/healthz" | "/readyz" | "/-/reload") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{method} is not allowed on {path}"),
        ),
        _ => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
    }
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

/// Reads a JSON body of at most [`MAX_BODY`] bytes.
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
