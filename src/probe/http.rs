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

use hyper::{Method, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::wire::{self, RequestHead};
use super::{Phases, ProbeTls, Progress, checks};
use crate::config::ProbeConfig;

/// Largest body a probe reads: 1 MiB. A health endpoint answers in bytes or kilobytes; anything
/// larger is a misconfigured probe (pointed at a download) and fails rather than eat memory.
pub const BODY_LIMIT: usize = 1 << 20;

/// Redirects followed before the probe fails, as curl's and Go's defaults (10).
pub const MAX_REDIRECTS: usize = 10;

/// Sent unless the probe sets its own `User-Agent`.
const USER_AGENT: &str = concat!("postflight/", env!("CARGO_PKG_VERSION"));

/// Request headers dropped on a redirect to another origin.
const CREDENTIALS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// What to send, and how much of the answer to read, for [`fetch`].
pub(crate) struct Ask<'a> {
    pub method: Method,
    /// Request fields. `Host`, `User-Agent` and `Connection: close` are added unless listed.
    pub fields: &'a [(&'a str, &'a str)],
    /// The most body bytes read.
    pub limit: usize,
    /// Keep the body (otherwise it is read and counted only).
    pub keep_body: bool,
    /// Redirect statuses to answer with rather than follow.
    pub keep_redirects: &'a [u16],
    /// Read the body of a 2xx answer only (a scrape's error page is not its business).
    pub success_bodies_only: bool,
}

/// The last response of a [`fetch`].
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
}

/// Why a [`fetch`] got no answer.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// DNS, TCP connect or TLS handshake: the reason in words.
    Connect(String),
    /// The body is longer than the limit (declared so, or found so while reading).
    TooLarge { declared: Option<u64> },
    /// Anything else (the URL, a redirect, the HTTP exchange): the reason in words.
    Other(String),
}

impl From<wire::BodyError> for FetchError {
    fn from(e: wire::BodyError) -> Self {
        match e {
            wire::BodyError::TooLarge { declared } => FetchError::TooLarge { declared },
            wire::BodyError::Failed(r) => FetchError::Other(r),
        }
    }
}

/// A plain-HTTP connection kept open from one request to the next to the same origin, as
/// Prometheus keeps a scrape target's connection: a scrape loop holds one and hands it to
/// [`fetch`] each time. Probes never keep one (a probe must see a dead listener).
///
/// The connection is kept only when the answer was HTTP/1.1 without `Connection: close` and
/// its body ended by its framing (`Content-Length` or chunked) with nothing after it; a body
/// that runs to the close, an unread error body, a redirect, or any failure drop it. Before
/// reuse, a connection the server has closed while idle is noticed and replaced; one that
/// fails before any answer arrives (the server closed it as the request went out) is replaced
/// and the request sent again, once.
#[derive(Default)]
pub(crate) struct Kept(Option<(String, u16, tokio::net::TcpStream)>);

impl Kept {
    /// The kept connection to `host:port`, if it is still open and quiet.
    fn take(&mut self, host: &str, port: u16) -> Option<tokio::net::TcpStream> {
        let (h, p, stream) = self.0.take()?;
        if h != host || p != port {
            return None;
        }
        // Between answers the server has nothing to say: a readable connection carries its
        // close (or stray bytes), either way it is done.
        match stream.try_read(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(stream),
            _ => None,
        }
    }

    fn put(&mut self, host: &str, port: u16, stream: tokio::net::TcpStream) {
        self.0 = Some((host.to_string(), port, stream));
    }
}

/// One request to `url`, following redirects, each hop on a new connection (the first on the
/// `kept` one when given, see [`Kept`]); the last answer's body is appended to `body` (when
/// `ask.keep_body`). Used by probes and by plain-HTTP scrapes.
pub(crate) async fn fetch(
    url: &str,
    ask: &Ask<'_>,
    tls: &ProbeTls,
    body: &mut Vec<u8>,
    progress: &mut Progress,
    mut kept: Option<&mut Kept>,
) -> Result<Answer, FetchError> {
    let mut method = ask.method.clone();
    let mut uri: Uri = url
        .parse()
        .map_err(|e| FetchError::Other(format!("invalid URL: {e}")))?;
    let mut redirects = 0;
    // Set once a redirect leaves the first origin, and kept for every later hop.
    let mut strip_credentials = false;
    loop {
        // Only the first hop keeps its connection: a redirected target is asked anew each time.
        let first = match redirects {
            0 => kept.take(),
            _ => None,
        };
        let request = request(
            &method,
            &uri,
            ask.fields,
            strip_credentials,
            first.is_none(),
        );
        match hop(&method, &uri, &request, tls, ask, body, progress, first).await? {
            Hop::Final(answer) => return Ok(answer),
            Hop::Redirect(status, location) => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(FetchError::Other(format!(
                        "more than {MAX_REDIRECTS} redirects"
                    )));
                }
                let next = resolve_location(&uri, &location).map_err(FetchError::Other)?;
                if origin(&next) != origin(&uri) {
                    strip_credentials = true;
                }
                // 303 always, and 301/302 after a POST, turn into GET (RFC 9110 §15.4).
                if (status == 303 && method != Method::HEAD)
                    || (method == Method::POST && matches!(status, 301 | 302))
                {
                    method = Method::GET;
                }
                uri = next;
            }
        }
    }
}

/// One hop's answer.
enum Hop {
    /// Follow this `Location`.
    Redirect(u16, String),
    /// The final answer (its body is in the caller's buffer).
    Final(Answer),
}

/// Probes `cfg.url` over HTTP(S). `start` is when the probe began (for the latency check).
pub(crate) async fn probe(
    cfg: &ProbeConfig,
    tls: &ProbeTls,
    start: Instant,
    progress: &mut Progress,
) -> Result<(), String> {
    let method = Method::from_bytes(cfg.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", cfg.method))?;
    check_headers(cfg)?;
    let fields: Vec<(&str, &str)> = cfg
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    let ask = Ask {
        method,
        fields: &fields,
        limit: BODY_LIMIT,
        keep_body: cfg.body_contains.is_some() || cfg.body_regex.is_some() || !cfg.json.is_empty(),
        keep_redirects: &cfg.expect_status,
        success_bodies_only: false,
    };
    let mut body = Vec::new();
    let answer = fetch(&cfg.url, &ask, tls, &mut body, progress, None)
        .await
        .map_err(|e| match e {
            FetchError::Connect(r) | FetchError::Other(r) => r,
            FetchError::TooLarge { .. } => too_large(),
        })?;
    checks::status(answer.status, &cfg.expect_status)?;
    checks::latency(start.elapsed(), cfg.max_latency.map(|d| d.get()))?;
    checks::body(cfg, &body)?;
    if let (Some(min_days), Some(not_after)) = (cfg.cert_min_days, progress.cert_not_after) {
        checks::cert_days(not_after, chrono::Utc::now().timestamp(), min_days)?;
    }
    Ok(())
}

/// Checks the configured headers: names are tokens, values visible ASCII (as
/// `http::HeaderValue::from_str` requires). Errors name the header, never its value.
fn check_headers(cfg: &ProbeConfig) -> Result<(), String> {
    for (name, value) in &cfg.headers {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("invalid header name {name:?}"));
        }
        if !value
            .expose()
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(format!("invalid value for header {name}"));
        }
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The request head for one hop: origin-form target, `Host` from the URL (without user info)
/// unless listed, the fields, `User-Agent` unless listed, and (when `close` and not listed)
/// `Connection: close`.
fn request(
    method: &Method,
    uri: &Uri,
    fields: &[(&str, &str)],
    strip_credentials: bool,
    close: bool,
) -> Vec<u8> {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let has = |name: &str| fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut head = RequestHead::new(method.as_str(), target);
    if !has("host") {
        let authority = uri.authority().map_or("", |a| a.as_str());
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        head.field("Host", host.as_bytes());
    }
    for (name, value) in fields {
        if strip_credentials && CREDENTIALS.iter().any(|c| name.eq_ignore_ascii_case(c)) {
            continue;
        }
        head.field(name, value.as_bytes());
    }
    if !has("user-agent") {
        head.field("User-Agent", USER_AGENT.as_bytes());
    }
    // The connection serves one request: say so (as blackbox_exporter does), and the server
    // closes first. TIME_WAIT then stays on the server's side: a prober opening 100
    // connections a second to one address would otherwise hold ~6,000 sockets in TIME_WAIT
    // and search past them for every ephemeral port (about 28,000 to one address and port).
    if close && !has("connection") {
        head.field("Connection", b"close");
    }
    head.finish()
}

/// One request on a new connection, or on the `kept` one (plain HTTP only).
#[allow(clippy::too_many_arguments)]
async fn hop(
    method: &Method,
    uri: &Uri,
    request: &[u8],
    tls: &ProbeTls,
    ask: &Ask<'_>,
    body: &mut Vec<u8>,
    progress: &mut Progress,
    kept: Option<&mut Kept>,
) -> Result<Hop, FetchError> {
    let https = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        _ => {
            return Err(FetchError::Other(format!(
                "unsupported URL {}",
                short(&uri.to_string())
            )));
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| FetchError::Other("invalid URL: no host".to_string()))?;
    let host = super::tcp::strip_brackets(authority.host());
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let head_request = *method == Method::HEAD;

    // A kept connection first (plain HTTP only), if it is still open.
    let mut kept = kept.filter(|_| !https);
    if let Some(k) = kept.as_deref_mut()
        && let Some(mut tcp) = k.take(host, port)
    {
        let before = body.len();
        match exchange(&mut tcp, request, head_request, ask, body, progress).await {
            Ok((hop, reusable)) => {
                if reusable {
                    k.put(host, port, tcp);
                }
                return Ok(hop);
            }
            // No answer at all: the server closed the connection as the request went out.
            // Again on a new one, below.
            Err(_) if progress.status.is_none() => body.truncate(before),
            Err(e) => return Err(e),
        }
    }

    let t = Instant::now();
    let mut tcp = super::tcp::connect(host, port)
        .await
        .map_err(FetchError::Connect)?;
    Phases::add(&mut progress.phases.connect, t.elapsed());

    if https {
        // Boxed: the TLS handshake and stream are most of the future's size, and every probe
        // task would carry that space (spawned per run) even for plain HTTP.
        Box::pin(tls_exchange(
            host,
            tcp,
            request,
            head_request,
            tls,
            ask,
            body,
            progress,
        ))
        .await
    } else {
        let (hop, reusable) =
            exchange(&mut tcp, request, head_request, ask, body, progress).await?;
        if reusable && let Some(k) = kept {
            k.put(host, port, tcp);
        }
        Ok(hop)
    }
}

/// The TLS handshake (phase `tls`, the peer's certificate expiry), then the exchange.
#[allow(clippy::too_many_arguments)]
async fn tls_exchange(
    host: &str,
    tcp: tokio::net::TcpStream,
    request: &[u8],
    head_request: bool,
    tls: &ProbeTls,
    ask: &Ask<'_>,
    body: &mut Vec<u8>,
    progress: &mut Progress,
) -> Result<Hop, FetchError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| FetchError::Connect(format!("TLS: invalid server name {host:?}")))?;
    let t = Instant::now();
    let mut stream = tokio_rustls::TlsConnector::from(tls.config().clone())
        .connect(name, tcp)
        .await
        .map_err(|e| FetchError::Connect(format!("TLS: {e}")))?;
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
    Ok(
        exchange(&mut stream, request, head_request, ask, body, progress)
            .await?
            .0,
    )
}

/// HTTP/1.1 over an open connection: send, read the head, then the body within the limit.
/// Also says whether the connection can carry another request ([`Kept`]).
async fn exchange<IO>(
    io: &mut IO,
    request: &[u8],
    head_request: bool,
    ask: &Ask<'_>,
    body: &mut Vec<u8>,
    progress: &mut Progress,
) -> Result<(Hop, bool), FetchError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let t = Instant::now();
    let (head, rest) = wire::send_and_read_head(io, request)
        .await
        .map_err(FetchError::Other)?;
    Phases::add(&mut progress.phases.processing, t.elapsed());
    progress.status = Some(head.status);
    if (300..400).contains(&head.status) && !ask.keep_redirects.contains(&head.status) {
        // A redirect without a usable Location is the final answer; the status check then
        // says what came back.
        if let Some(loc) = &head.location
            && is_followed(head.status)
        {
            return Ok((Hop::Redirect(head.status, loc.clone()), false));
        }
    }
    if ask.success_bodies_only && !(200..300).contains(&head.status) {
        let answer = Answer {
            status: head.status,
            content_type: head.content_type,
        };
        return Ok((Hop::Final(answer), false));
    }
    let t = Instant::now();
    let clean = wire::read_body(
        io,
        &head,
        head_request,
        rest,
        ask.limit,
        ask.keep_body,
        body,
    )
    .await?;
    Phases::add(&mut progress.phases.transfer, t.elapsed());
    let reusable = clean && head.persistent;
    let answer = Answer {
        status: head.status,
        content_type: head.content_type,
    };
    Ok((Hop::Final(answer), reusable))
}

fn is_followed(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn too_large() -> String {
    "body larger than 1 MiB".to_string()
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
mod tests;
