//! The dashboard at `/` (SPEC §8): one HTML page and its assets, every byte inside the binary.
//!
//! The page is a small hash-routed app in plain ES modules (`web/app.js`) that reads the JSON
//! API the way any client does; the server only hands out files. Assets are served under
//! `/ui/<name>.<hash>.<ext>`, the hash taken from their content, so they cache for a year and a
//! new binary's page asks for new names. Every answer of this area carries the page headers of
//! [`super::headers`]: a Content-Security-Policy without inline script or style, `nosniff` and
//! `frame-ancestors 'none'`. The area also answers `GET /api/v1/maintenance`,
//! the configured windows with the current or next occurrence, which the silences list cannot
//! show before a window starts, and `GET /api/v1/targets/health`, the targets' states with an
//! `ETag`, which the overview asks for every 10 s and which answers `304 Not Modified` while no
//! state changed.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::SecondsFormat;

use super::{Api, Resp, json};
use crate::clock::Clock;
use crate::config::Current;
use crate::targets::TargetsView;

/// One embedded file.
struct Asset {
    /// Its name in `web/` (`app.js`), as the page template refers to it.
    name: &'static str,
    /// The name it is served under, with its content hash (`app.1a2b3c4d.js`).
    served: String,
    body: &'static [u8],
    content_type: &'static str,
}

/// Every file of the dashboard, in the binary.
static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let files: [(&'static str, &'static [u8], &'static str); 5] = [
        (
            "app.js",
            include_bytes!("../../../web/app.js"),
            "text/javascript; charset=utf-8",
        ),
        (
            "app.css",
            include_bytes!("../../../web/app.css"),
            "text/css; charset=utf-8",
        ),
        (
            "uPlot.js",
            include_bytes!("../../../web/vendor/uplot/uPlot.iife.min.js"),
            "text/javascript; charset=utf-8",
        ),
        (
            "uPlot.css",
            include_bytes!("../../../web/vendor/uplot/uPlot.min.css"),
            "text/css; charset=utf-8",
        ),
        (
            "icon.svg",
            include_bytes!("../../../web/icon.svg"),
            "image/svg+xml",
        ),
    ];
    files
        .into_iter()
        .map(|(name, body, content_type)| Asset {
            name,
            served: hashed_name(name, body),
            body,
            content_type,
        })
        .collect()
});

/// `index.html` with each `{{name}}` replaced by the asset's served path.
static INDEX: LazyLock<String> = LazyLock::new(|| {
    ASSETS.iter().fold(
        include_str!("../../../web/index.html").to_string(),
        |page, a| page.replace(&format!("{{{{{}}}}}", a.name), &format!("/ui/{}", a.served)),
    )
});

/// `app.js` → `app.<8 hex digits of the content's CRC-32>.js`.
fn hashed_name(name: &str, body: &[u8]) -> String {
    let hash = crc32fast::hash(body);
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash:08x}.{ext}"),
        None => format!("{name}.{hash:08x}"),
    }
}

/// The dashboard's routes, merged into [`super::router`].
pub fn router() -> Router<Api> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/ui/{file}", get(asset))
        .route("/api/v1/maintenance", get(maintenance))
        .route("/api/v1/targets/health", get(targets_health))
        .layer(middleware::from_fn(super::headers::page_headers))
}

/// `GET /`: the page, never cached (it names the assets of this binary and says whether
/// writes need the API token, so the page asks for it before the first write).
async fn index(State(config): State<Current>) -> Resp {
    let token = match config.get().server.api_token {
        Some(_) => "required",
        None => "none",
    };
    let page = INDEX.replace("{{token}}", token);
    let mut r = Response::new(axum::body::Body::from(page));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /ui/{file}`: an asset by its hashed name, cached for a year.
async fn asset(Path(file): Path<String>) -> Resp {
    match ASSETS.iter().find(|a| a.served == file) {
        Some(a) => {
            let mut r = Response::new(axum::body::Body::from(a.body));
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
            h.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            r
        }
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

/// `GET /api/v1/maintenance`: every `[[maintenance]]` window with its schedule, matchers and
/// either the occurrence in progress (`active: true`, `startsAt`/`endsAt`) or the next one
/// within a week.
async fn maintenance(State(config): State<Current>, State(clock): State<Clock>) -> Resp {
    let config = config.get();
    let now = clock.now();
    let t = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
    let list: Vec<serde_json::Value> = config
        .maintenance
        .iter()
        .map(|m| {
            let active = m.schedule.active_at(m.timezone, now);
            let next = active.or_else(|| m.schedule.next_after(m.timezone, now));
            serde_json::json!({
                "name": m.name,
                "matchers": m.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "schedule": m.schedule.as_str(),
                "timezone": m.timezone.name(),
                "active": active.is_some(),
                "startsAt": next.map(|(s, _)| t(s)),
                "endsAt": next.map(|(_, e)| t(e)),
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({ "status": "success", "maintenance": list }),
    )
}

/// `GET /api/v1/targets/health`: every target's kind, job, name, URL, health and last reason
/// (the entries of `/api/v1/targets` without `lastRun`, `lastDurationSeconds` and `samples`),
/// with `ETag: "<generation>"`. A request whose `If-None-Match` names the current generation is
/// answered `304 Not Modified` from one atomic load, without reading the targets; a changed list
/// is serialised once per generation, however many tabs ask.
async fn targets_health(State(view): State<Arc<TargetsView>>, headers: HeaderMap) -> Resp {
    let tag = |generation: u64| format!("\"{generation:x}\"");
    let current = tag(view.generation());
    if headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| names_tag(v, &current)))
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&current) {
            r.headers_mut().insert(ETAG, v);
        }
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return r;
    }
    let (generation, list) = view.health_json();
    let mut body = Vec::with_capacity(list.len() + 40);
    body.extend_from_slice(br#"{"status":"success","targets":"#);
    body.extend_from_slice(&list);
    body.push(b'}');
    let mut r = Response::new(axum::body::Body::from(body));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag(generation)) {
        h.insert(ETAG, v);
    }
    r
}

/// True when an `If-None-Match` value (`*`, or a list of tags, weak ones included) names `tag`.
fn names_tag(if_none_match: &str, tag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

#[cfg(test)]
mod tests;
