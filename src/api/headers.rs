//! The headers every page sends (SPEC §8): a Content-Security-Policy that allows no inline
//! script and no framing, no MIME sniffing, no referrer. Pages (the status page, badges, the
//! dashboard) add [`page_headers`] as a layer on their routes:
//! `.layer(axum::middleware::from_fn(crate::api::headers::page_headers))`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, HeaderName, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::middleware::Next;
use axum::response::Response;

/// Scripts, styles and images only from postflight itself (images also as `data:` URLs for
/// inline SVG); no plugins, no framing, forms only back to postflight.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers of a page, as name and value.
pub const PAGE_HEADERS: [(HeaderName, &str); 3] = [
    (CONTENT_SECURITY_POLICY, CSP),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (REFERRER_POLICY, "no-referrer"),
];

/// Middleware adding [`PAGE_HEADERS`] to every response of the routes it wraps (a handler's
/// own value wins).
pub async fn page_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    for (name, value) in PAGE_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    resp
}
