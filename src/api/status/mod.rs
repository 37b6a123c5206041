//! The public side of postflight: the status page (`/status`, SPEC §8), its SVG badges
//! (`/badge/...`) and the uptime API (`/api/v1/uptime`), all read from the probes' hourly
//! uptime counts ([`crate::store::Uptime`]) and never from raw results.
//!
//! Pages are written with [`html::Html`], which lets only literals be markup; the page and
//! badges send the page headers of [`crate::api::headers`].

mod badge;
pub mod html;
pub mod page;
pub mod uptime;

use axum::Router;
use axum::routing::get;

use super::Api;

/// The routes of this area, for [`crate::api::router`] to merge.
pub fn routes() -> Router<Api> {
    let pages = Router::new()
        .route("/status", get(page::status))
        .route("/status/style.css", get(page::style))
        .route("/badge/{probe}/health.svg", get(badge::health))
        .route("/badge/{probe}/uptime/{file}", get(badge::uptime))
        .layer(axum::middleware::from_fn(super::headers::page_headers));
    Router::new()
        .route("/api/v1/uptime", get(uptime::get))
        .merge(pages)
}

#[cfg(test)]
mod tests;
