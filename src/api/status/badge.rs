//! SVG badges for probes on the status page: `/badge/<probe>/health.svg` and
//! `/badge/<probe>/uptime/<24h|7d|30d|90d>.svg`. Each says its value in text (the colour only
//! repeats it) and is a self-contained SVG document.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::html::escape;
use super::page::{Health, WINDOWS, listed_health, percent};
use crate::api::Api;

const GREEN: &str = "#2e7d32";
const AMBER: &str = "#a15c00";
const RED: &str = "#c62828";
const GREY: &str = "#6b7280";

/// A two-part badge: `label` on grey, `value` on `colour`. Widths are estimated from the
/// characters (Verdana 11 px is about 7 px a character).
pub fn svg(label: &str, value: &str, colour: &str) -> String {
    let w = |s: &str| 10 + 7 * s.chars().count();
    let (lw, vw) = (w(label), w(value));
    let (label, value) = (escape(label), escape(value));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"20\" role=\"img\" aria-label=\"{label}: {value}\">\
<title>{label}: {value}</title>\
<rect width=\"{lw}\" height=\"20\" fill=\"#555\"/>\
<rect x=\"{lw}\" width=\"{vw}\" height=\"20\" fill=\"{colour}\"/>\
<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\">\
<text x=\"{lx}\" y=\"14\">{label}</text><text x=\"{vx}\" y=\"14\">{value}</text></g></svg>",
        total = lw + vw,
        lx = lw / 2,
        vx = lw + vw / 2,
    )
}

fn respond(body: String) -> Response {
    (
        [(CONTENT_TYPE, "image/svg+xml"), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "no such badge\n",
    )
        .into_response()
}

/// `GET /badge/{probe}/health.svg`.
pub async fn health(State(api): State<Api>, Path(probe): Path<String>) -> Response {
    let Some((_, h)) = listed_health(&api, &probe) else {
        return not_found();
    };
    let colour = match h {
        Health::Up => GREEN,
        Health::Degraded => AMBER,
        Health::Down => RED,
        Health::NoData => GREY,
    };
    respond(svg("health", &h.word().to_lowercase(), colour))
}

/// `GET /badge/{probe}/uptime/{window}.svg`.
pub async fn uptime(
    State(api): State<Api>,
    Path((probe, file)): Path<(String, String)>,
) -> Response {
    let Some((label, ms)) = file
        .strip_suffix(".svg")
        .and_then(|w| WINDOWS.iter().find(|(l, _)| *l == w))
    else {
        return not_found();
    };
    if listed_health(&api, &probe).is_none() {
        return not_found();
    }
    let c = api.probes.uptime().window(&probe, *ms, api.clock.now_ms());
    let (value, colour) = match (percent(c), c.uptime()) {
        (Some(p), Some(u)) if u >= 0.999 => (p, GREEN),
        (Some(p), Some(u)) if u >= 0.99 => (p, AMBER),
        (Some(p), _) => (p, RED),
        _ => ("no data".to_owned(), GREY),
    };
    respond(svg(&format!("uptime {label}"), &value, colour))
}
