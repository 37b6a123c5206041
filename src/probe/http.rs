//! HTTP(S) probes: one new connection per request, so a probe notices a dead listener (a pooled
//! keep-alive connection would hide a restarted or crashed server).
//!
//! Each hop: DNS → TCP connect (phase `connect`) → TLS with SNI for https (phase `tls`; the
//! peer's certificates give the expiry) → HTTP/1.1 request, response head (phase `processing`)
//! → body, up to [`BODY_LIMIT`] (phase `transfer`). Redirects (301, 302, 303, 307, 308) are
//! followed up to [`MAX_REDIRECTS`], each on a new connection, unless the redirect status is
//! itself listed in `expect_status` (then the probe checks the redirect). Then the checks run on
//! the last response, first failure wins: status, latency, body contains, body regex, json,
//! certificate days.
//!
//! Configured header values are secrets: they are marked sensitive, never logged and never put
//! into a reason. On a redirect to another origin, `Authorization`, `Proxy-Authorization` and
//! `Cookie` are dropped, as curl and browsers do, so a token is not handed to a third party.

use std::future::Future;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{Phases, ProbeTls, Progress, checks};
use crate::config::ProbeConfig;

/// Largest body a probe reads: 1 MiB. A health endpoint answers in bytes or kilobytes; anything
/// larger is a misconfigured probe (pointed at a download) and fails rather than eat memory.
pub const BODY_LIMIT: usize = 1 << 20;

/// Redirects followed before the probe fails, as curl's and Go's defaults (10).
pub const MAX_REDIRECTS: usize = 10;

/// Sent unless the probe sets its own `User-Agent`.
const USER_AGENT: &str = concat!("postflight/", env!("CARGO_PKG_VERSION"));

/// One hop's answer.
enum Hop {
    /// Follow this `Location`.
    Redirect(StatusCode, String),
    /// The final answer; the body is kept only when a check needs it.
    Final(StatusCode, Vec<u8>),
}

/// Probes `cfg.url` over HTTP(S). `start` is when the probe began (for the latency check).
pub(crate) async fn probe(
    cfg: &ProbeConfig,
    tls: &ProbeTls,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), String> {
    let mut method = Method::from_bytes(cfg.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", cfg.method))?;
    let mut headers = request_headers(cfg)?;
    let mut uri: Uri = cfg.url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let keep_body = cfg.body_contains.is_some() || cfg.body_regex.is_some() || !cfg.json.is_empty();
    let mut redirects = 0;
    let (status, body) = loop {
        match hop(&method, &uri, &headers, tls, cfg, keep_body, progress).await? {
            Hop::Final(status, body) => break (status, body),
            Hop::Redirect(status, location) => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(format!("more than {MAX_REDIRECTS} redirects"));
                }
                let next = resolve_location(&uri, &location)?;
                if origin(&next) != origin(&uri) {
                    for h in [
                        header::AUTHORIZATION,
                        header::PROXY_AUTHORIZATION,
                        header::COOKIE,
                    ] {
                        headers.remove(h);
                    }
                }
                // 303 always, and 301/302 after a POST, turn into GET (RFC 9110 §15.4).
                if (status == StatusCode::SEE_OTHER && method != Method::HEAD)
                    || (method == Method::POST
                        && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
                {
                    method = Method::GET;
                }
                uri = next;
            }
        }
    };
    checks::status(status.as_u16(), &cfg.expect_status)?;
    checks::latency(start.elapsed(), cfg.max_latency.map(|d| d.get()))?;
    checks::body(cfg, &body)?;
    if let (Some(min_days), Some(not_after)) = (cfg.cert_min_days, progress.cert_not_after) {
        checks::cert_days(not_after, chrono::Utc::now().timestamp(), min_days)?;
    }
    Ok(())
}

/// The configured headers, parsed once per probe. Errors name the header, never its value.
fn request_headers(cfg: &ProbeConfig) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(cfg.headers.len() + 2);
    for (name, value) in &cfg.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let mut v = HeaderValue::from_str(value.expose())
            .map_err(|_| format!("invalid value for header {name}"))?;
        v.set_sensitive(true);
        map.append(n, v);
    }
    if !map.contains_key(header::USER_AGENT) {
        map.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    }
    Ok(map)
}

/// One request on a new connection.
async fn hop(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    tls: &ProbeTls,
    cfg: &ProbeConfig,
    keep_body: bool,
    progress: &mut Progress,
) -> Result<Hop, String> {
    let https = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        _ => return Err(format!("unsupported URL {}", short(&uri.to_string()))),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| "invalid URL: no host".to_string())?;
    let host = super::tcp::strip_brackets(authority.host());
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });

    let t = Instant::now();
    let tcp = super::tcp::connect(host, port).await?;
    Phases::add(&mut progress.phases.connect, t.elapsed());

    let req = build_request(method, uri, authority.as_str(), headers)?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| format!("TLS: invalid server name {host:?}"))?;
        let t = Instant::now();
        let stream = tokio_rustls::TlsConnector::from(tls.config().clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        Phases::add(&mut progress.phases.tls, t.elapsed());
        let earliest = stream
            .get_ref()
            .1
            .peer_certificates()
            .into_iter()
            .flatten()
            .filter_map(|c| super::cert::not_after(c))
            .min();
        if let Some(t) = earliest {
            progress.cert_not_after = Some(progress.cert_not_after.map_or(t, |p| p.min(t)));
        }
        exchange(stream, req, cfg, keep_body, progress).await
    } else {
        exchange(tcp, req, cfg, keep_body, progress).await
    }
}

/// The request for one hop: origin-form target, `Host` from the URL (without user info).
fn build_request(
    method: &Method,
    uri: &Uri,
    authority: &str,
    headers: &HeaderMap,
) -> Result<Request<Empty<Bytes>>, String> {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut req = Request::builder()
        .method(method.clone())
        .uri(target)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid request: {e}"))?;
    *req.headers_mut() = headers.clone();
    if !req.headers().contains_key(header::HOST) {
        let v = HeaderValue::from_str(host).map_err(|_| "invalid URL host".to_string())?;
        req.headers_mut().insert(header::HOST, v);
    }
    // The connection serves one request: say so (as blackbox_exporter does), and the server
    // closes first. TIME_WAIT then stays on the server's side: a prober opening 100
    // connections a second to one address would otherwise hold ~6,000 sockets in TIME_WAIT
    // and search past them for every ephemeral port (about 28,000 to one address and port).
    if !req.headers().contains_key(header::CONNECTION) {
        req.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(req)
}

/// HTTP/1.1 over an open connection: send, read the head, then the body within the limit.
async fn exchange<IO>(
    io: IO,
    req: Request<Empty<Bytes>>,
    cfg: &ProbeConfig,
    keep_body: bool,
    progress: &mut Progress,
) -> Result<Hop, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let t = Instant::now();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| http_reason(&e))?;
    let work = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| http_reason(&e))?;
        Phases::add(&mut progress.phases.processing, t.elapsed());
        let status = resp.status();
        progress.status = Some(status.as_u16());
        if status.is_redirection() && !cfg.expect_status.contains(&status.as_u16()) {
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            // A redirect without a usable Location is the final answer; the status check
            // then says what came back.
            if let Some(loc) = location
                && is_followed(status)
            {
                return Ok(Hop::Redirect(status, loc.to_string()));
            }
        }
        let t = Instant::now();
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(too_large());
        }
        let mut body = resp.into_body();
        let mut kept = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading body: {}", http_reason(&e)))?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total > BODY_LIMIT {
                    // Stop here: dropping the body closes the connection unread.
                    return Err(too_large());
                }
                if keep_body {
                    kept.extend_from_slice(&data);
                }
            }
        }
        Phases::add(&mut progress.phases.transfer, t.elapsed());
        Ok(Hop::Final(status, kept))
    };
    drive(conn, work).await
}

fn is_followed(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn too_large() -> String {
    "body larger than 1 MiB".to_string()
}

/// Polls hyper's connection next to the request inside the probe's own task (no spawned task
/// per connection). The connection may finish first (the server closed after the last byte):
/// the buffered body is still there for `work` to read, so only `work` decides the result.
async fn drive<C, W, T>(conn: C, work: W) -> T
where
    C: Future<Output = hyper::Result<()>>,
    W: Future<Output = T>,
{
    let mut conn = std::pin::pin!(conn);
    let mut work = std::pin::pin!(work);
    let mut conn_done = false;
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            // An error here also fails the request or body, which `work` reports.
            _ = &mut conn, if !conn_done => conn_done = true,
        }
    }
}

/// hyper's error with its cause: `connection closed before message completed`, ...
fn http_reason(e: &hyper::Error) -> String {
    use std::error::Error;
    match e.source() {
        Some(src) => format!("HTTP: {e}: {src}"),
        None => format!("HTTP: {e}"),
    }
}

/// `scheme://authority` of a URI, lower-cased, for same-origin checks.
fn origin(uri: &Uri) -> (String, String) {
    (
        uri.scheme_str().unwrap_or("").to_ascii_lowercase(),
        uri.authority()
            .map(|a| a.as_str().to_ascii_lowercase())
            .unwrap_or_default(),
    )
}

/// A `Location` for display in a reason: at most 200 characters.
fn short(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// Resolves a `Location` against the URL it came from (RFC 3986 §5.2, for the forms servers
/// send: absolute, scheme-relative `//host/p`, absolute path, relative path, query only).
pub fn resolve_location(base: &Uri, location: &str) -> Result<Uri, String> {
    let bad = || format!("invalid redirect Location {:?}", short(location));
    let loc = location.split('#').next().unwrap_or("").trim();
    if loc.is_empty() {
        return Err(bad());
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map_or("", |a| a.as_str());
    let has_scheme = loc.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
    });
    let joined = if has_scheme {
        loc.to_string()
    } else if let Some(rest) = loc.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if loc.starts_with('/') {
        let (path, query) = split_query(loc);
        format!("{scheme}://{authority}{}{query}", remove_dot_segments(path))
    } else if loc.starts_with('?') {
        format!("{scheme}://{authority}{}{loc}", base.path())
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let (path, query) = split_query(loc);
        let merged = format!("{}{path}", if dir.is_empty() { "/" } else { dir });
        format!(
            "{scheme}://{authority}{}{query}",
            remove_dot_segments(&merged)
        )
    };
    let uri: Uri = joined.parse().map_err(|_| bad())?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => Ok(uri),
        _ => Err(format!("redirect to unsupported URL {:?}", short(location))),
    }
}

fn split_query(s: &str) -> (&str, &str) {
    match s.find('?') {
        Some(i) => s.split_at(i),
        None => (s, ""),
    }
}

/// Removes `.` and `..` segments from an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing_slash || s.is_empty() {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(base: &str, loc: &str) -> String {
        resolve_location(&base.parse().unwrap(), loc)
            .unwrap()
            .to_string()
    }

    #[test]
    fn resolves_locations() {
        let b = "http://h:8/a/b/c?x=1";
        assert_eq!(res(b, "https://o/p"), "https://o/p");
        assert_eq!(res(b, "//o:9/p"), "http://o:9/p");
        assert_eq!(res(b, "/p?q=2"), "http://h:8/p?q=2");
        assert_eq!(res(b, "d"), "http://h:8/a/b/d");
        assert_eq!(res(b, "../d"), "http://h:8/a/d");
        assert_eq!(res(b, "./"), "http://h:8/a/b/");
        assert_eq!(res(b, "?y=2"), "http://h:8/a/b/c?y=2");
        assert_eq!(res(b, "d#frag"), "http://h:8/a/b/d");
        assert_eq!(res("http://h/", "../../x"), "http://h/x");
        assert!(resolve_location(&b.parse().unwrap(), "ftp://x/").is_err());
        assert!(resolve_location(&b.parse().unwrap(), "").is_err());
        assert!(resolve_location(&b.parse().unwrap(), "http://bad host/").is_err());
    }

    #[test]
    fn header_errors_never_show_values() {
        let cfg: ProbeConfig = toml::from_str(
            "name = \"p\"\nurl = \"http://x/\"\nheaders = { Authorization = \"Bearer s3cr3t\\n\" }",
        )
        .unwrap();
        let err = request_headers(&cfg).unwrap_err();
        assert_eq!(err, "invalid value for header Authorization");
        assert!(!err.contains("s3cr3t"));
    }
}
