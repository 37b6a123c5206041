//! The HTTP server on `server.listen`: the exporter (`/metrics`), health endpoints, and the JSON
//! API.
//!
//! Routes are declared in one place, [`router`]; each handler takes only the handles it needs
//! from [`Api`] (axum's `State` extractor). Reads are served from the owners' views; writes
//! (silences, deployments, reload) are commands to the component that owns the state. With
//! `api_token` set, every call other than GET and HEAD needs the bearer token and is refused
//! with 401 before anything changes.

pub mod deployments;
pub mod headers;
mod limits;
mod logs;
mod prom;
mod query;
mod rules;
pub mod status;
pub mod ui;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::alert::{AlertState, AlertsView};
use crate::clock::Clock;
use crate::config::{Current, Reloader};
use crate::deploy::GateHandle;
use crate::dispatch::DispatcherHandle;
use crate::ingest::metadata::Metadata;
use crate::liveness::Liveness;
use crate::series::head::Head;
use crate::store::{ProbeLog, StateStore};
use crate::targets::TargetsView;
use crate::telemetry::Telemetry;
pub use limits::QueryGate;

/// Largest request body the API reads.
const MAX_BODY: usize = 1 << 20;

/// The response type of every handler.
pub type Resp = Response;

/// The handles the API serves from; each handler extracts the ones it needs.
#[derive(Clone, FromRef)]
pub struct Api {
    /// The config in force (the API token).
    pub config: Current,
    /// The daemon's own metrics (`/metrics`).
    pub telemetry: Arc<Telemetry>,
    /// True once the store is open and the config loaded (`/readyz`).
    pub ready: Ready,
    /// Reloads the config (`/-/reload`).
    pub reloader: Reloader,
    /// Every current alert: rules, probes and postflight's own.
    pub alerts: AlertsView,
    /// Health of every scrape target and probe.
    pub targets: Arc<TargetsView>,
    /// The series head queries read.
    pub head: Arc<Head>,
    /// Wall time for queries without a time.
    pub clock: Clock,
    /// Probe results (`/api/v1/history?probe=`).
    pub probes: ProbeLog,
    /// Alert transitions (`/api/v1/history?alert=`).
    pub state: StateStore,
    /// Silences.
    pub dispatch: DispatcherHandle,
    /// Deployments and their verdicts.
    pub gates: GateHandle,
    /// The stored chunks queries read besides the head.
    pub samples: crate::store::SampleStore,
    /// Turns for queries (`[query] max_concurrent`).
    pub queries: Arc<QueryGate>,
    /// Rule groups and rules (`/api/v1/rules`).
    pub rules: Arc<crate::rules::engine::RulesState>,
    /// The scraped metric families' `# TYPE`, `# HELP` and `# UNIT` (`/api/v1/metadata`).
    pub metadata: Arc<Metadata>,
}

/// The `/readyz` flag, set by the daemon once it serves.
#[derive(Clone, Debug, Default)]
pub struct Ready(pub Arc<AtomicBool>);

/// Every route of the API.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { text("text/plain", "ok\n".into()) }),
        )
        .route("/readyz", get(readyz))
        .route("/-/reload", post(reload).put(reload))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/history", get(query::history))
        .route("/api/v1/logs", get(logs::lines))
        .route(
            "/api/v1/query_range",
            get(prom::query_range).post(prom::query_range),
        )
        .route("/api/v1/series", get(prom::series).post(prom::series))
        .route("/api/v1/labels", get(prom::labels).post(prom::labels))
        .route("/api/v1/label/{name}/values", get(prom::label_values))
        .route("/api/v1/status/buildinfo", get(prom::buildinfo))
        .route(
            "/api/v1/query_exemplars",
            get(prom::query_exemplars).post(prom::query_exemplars),
        )
        .route("/federate", get(prom::federate))
        .route("/api/v1/rules", get(rules::list))
        .route("/api/v1/metadata", get(prom::metadata))
        .route("/api/v1/silences", get(silences).post(add_silence))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(expire_silence),
        )
        .route(
            "/api/v1/deployments",
            get(deployments::list_route).post(deployments::create),
        )
        .route("/api/v1/deployments/{id}", get(deployments::get_route))
        .merge(ui::router())
        .merge(status::routes())
        .fallback(|req: Request| async move {
            error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {}", req.uri().path()),
            )
        })
        .method_not_allowed_fallback(|req: Request| async move {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{} is not allowed on {}", req.method(), req.uri().path()),
            )
        })
        .layer(middleware::from_fn_with_state(
            api.config.clone(),
            authorize,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// Accepts connections until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    liveness: Liveness,
    shutdown: CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let heartbeat = liveness.register("api", Duration::from_secs(3600));
    let app = router(api);
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
        let svc = TowerToHyperService::new(app.clone());
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

/// Refuses a call other than GET and HEAD without the configured token. The comparison takes
/// the same time wherever the first difference is.
async fn authorize(State(config): State<Current>, req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let config = config.get();
    if let Some(token) = &config.server.api_token {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|g| g.trim().as_bytes())
            .unwrap_or_default();
        let want = token.expose().as_bytes();
        let same = given.len() == want.len()
            && given
                .iter()
                .zip(want)
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0;
        if !same {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(req).await
}

/// `GET /metrics`.
async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Resp {
    // Thousands of probe series: milliseconds, off the runtime's worker.
    let page = crate::rt::blocking(|| telemetry.render());
    text("text/plain; version=0.0.4; charset=utf-8", page)
}

/// `GET /readyz`.
async fn readyz(State(ready): State<Ready>) -> Resp {
    match ready.0.load(Ordering::SeqCst) {
        true => text("text/plain", "ready\n".into()),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            text("text/plain", "not ready\n".into()),
        )
            .into_response(),
    }
}

/// `POST /-/reload`.
async fn reload(State(reloader): State<Reloader>) -> Resp {
    match reloader.reload().await {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({"status": "success"})),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reload failed: {e}"),
        ),
    }
}

/// `GET /api/v1/alerts`: pending and firing alerts, as Prometheus lists them.
async fn alerts(State(alerts): State<AlertsView>) -> Resp {
    let alerts: Vec<serde_json::Value> = alerts()
        .into_iter()
        .filter(|a| a.state != AlertState::Resolved)
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

/// `GET /api/v1/targets`.
async fn targets(State(view): State<Arc<TargetsView>>) -> Resp {
    json(
        StatusCode::OK,
        &serde_json::json!({ "status": "success", "targets": view.list() }),
    )
}

/// `GET /api/v1/silences`.
async fn silences(State(dispatch): State<DispatcherHandle>) -> Resp {
    let list: Vec<serde_json::Value> = dispatch
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

/// `POST /api/v1/silences`.
async fn add_silence(State(dispatch): State<DispatcherHandle>, body: Bytes) -> Resp {
    let body: crate::dispatch::NewSilence = match parse_json(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match dispatch.add_silence(body).await {
        Ok(id) => json(StatusCode::OK, &serde_json::json!({ "id": id })),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

/// `DELETE /api/v1/silences/{id}`.
async fn expire_silence(State(dispatch): State<DispatcherHandle>, Path(id): Path<String>) -> Resp {
    match dispatch.expire_silence(&id).await {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({ "status": "expired" })),
        Err(e) if e == "not found" => error(StatusCode::NOT_FOUND, &format!("no silence {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// The earliest and latest time a request may name, in ms (about 285,000 years either side of
/// 1970): a time beyond is taken as the bound, so that "from the beginning" works and no
/// arithmetic on times can overflow.
const TIME_BOUND_MS: i64 = 1 << 53;

/// RFC 3339 or Unix seconds (with a fraction) to ms, within about 285,000 years of 1970.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let bound = TIME_BOUND_MS as f64;
        return f
            .is_finite()
            .then(|| (f * 1000.0).round().clamp(-bound, bound) as i64);
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

/// Decodes `a=b&c=d` with percent-escapes and `+` for space. Lenient where axum's `Query`
/// would refuse: a broken escape stays text instead of failing the request.
pub fn parse_query(q: &str) -> HashMap<String, String> {
    query_pairs(q).into_iter().collect()
}

/// Every `name=value` pair of a query string or form body, in order, decoded.
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Parses a JSON body; the error is the 400 answer, boxed (a response is large).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Resp>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("invalid JSON body: {e}"),
        ))
    })
}

/// A JSON answer.
pub fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(axum::body::Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A JSON answer serialised straight from `v`, without a `serde_json::Value` tree in between.
pub fn json_from(status: StatusCode, v: &impl serde::Serialize) -> Resp {
    match serde_json::to_vec(v) {
        Ok(body) => {
            let mut r = Response::new(axum::body::Body::from(body));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A JSON error `{"error": "..."}`.
pub fn error(status: StatusCode, msg: &str) -> Resp {
    json(status, &serde_json::json!({ "error": msg }))
}

fn text(content_type: &'static str, body: String) -> Resp {
    let mut r = Response::new(axum::body::Body::from(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests;
