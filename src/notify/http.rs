//! HTTP plumbing shared by every HTTP channel: one POST, its outcome classified the same way for
//! all of them (SPEC §3: honour `Retry-After` on 429/503).

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use super::{Clients, Delivered, NotifyError};
use crate::config::ReceiverConfig;

/// Bytes of an error body kept for the error message: enough for Slack's `invalid_payload` or
/// PagerDuty's `{"status":"invalid event","errors":[...]}`, never a whole HTML error page.
const ERROR_BODY_LIMIT: usize = 512;

/// The longest `Retry-After` honoured, here and by the outbox; a peer asking for more is treated
/// as asking for this, so one bad header cannot park a receiver for most of a notification's
/// 24 hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// POSTs a JSON body to `url` (a secret: it never appears in a message) and classifies the answer.
pub(crate) async fn post_json(
    clients: &Clients,
    receiver: &ReceiverConfig,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<Delivered, NotifyError> {
    post(clients, receiver, url, headers, "application/json", body).await
}

/// [`post_json`] for a message built as a `serde_json::Value`, with no extra headers.
pub(crate) async fn post_value(
    clients: &Clients,
    receiver: &ReceiverConfig,
    url: &str,
    message: &serde_json::Value,
) -> Result<Delivered, NotifyError> {
    // Serialising a serde_json::Value cannot fail.
    let body = serde_json::to_vec(message).expect("JSON message serialises");
    post_json(clients, receiver, url, HeaderMap::new(), body).await
}

/// [`post_json`] for a body of another type (ntfy's plain text).
pub(crate) async fn post(
    clients: &Clients,
    receiver: &ReceiverConfig,
    url: &str,
    mut headers: HeaderMap,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<Delivered, NotifyError> {
    let name = &receiver.name;
    let url = reqwest::Url::parse(url)
        .map_err(|e| NotifyError::permanent(format!("receiver {name}: invalid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(NotifyError::permanent(format!(
            "receiver {name}: URL scheme must be http or https"
        )));
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let sent = clients
        .http()
        .post(url)
        .headers(headers)
        .timeout(receiver.timeout)
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return Err(request_error(name, receiver.timeout, e)),
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(Delivered {
            status: Some(status.as_u16()),
            detail: format!("HTTP {}", status.as_u16()),
        });
    }
    let retry_after = if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        resp.headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()))
    } else {
        None
    };
    let snippet = error_snippet(resp).await;
    let mut message = format!("receiver {name}: HTTP {status}");
    if !snippet.is_empty() {
        message.push_str(": ");
        message.push_str(&snippet);
    }
    Err(classify_status(status, message, retry_after))
}

/// 408, 429 and 5xx are the peer's passing trouble; any other non-2xx is our message being
/// refused, and sending it again will not change that.
pub(crate) fn classify_status(
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> NotifyError {
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        NotifyError::Retryable {
            message,
            retry_after,
        }
    } else if status.is_redirection() {
        NotifyError::Permanent {
            message: format!("{message} (redirect not followed: only same-host 307/308 are)"),
        }
    } else {
        NotifyError::Permanent { message }
    }
}

/// Turns a failed request into a retryable error. reqwest's own message starts with the URL,
/// so it is dropped (`without_url`) and only the causes are kept.
fn request_error(name: &str, timeout: Duration, e: reqwest::Error) -> NotifyError {
    if e.is_timeout() {
        return NotifyError::retryable(format!(
            "receiver {name}: timed out after {}",
            crate::config::format_duration(timeout)
        ));
    }
    let what = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut causes = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    causes.dedup();
    let detail = if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    };
    if e.is_builder() {
        // A request we could not even build (bad header, bad URL) fails the same way every time.
        return NotifyError::permanent(format!("receiver {name}: invalid request: {detail}"));
    }
    NotifyError::retryable(format!("receiver {name}: {what}: {detail}"))
}

/// The start of an error body on one line, for the error message.
async fn error_snippet(mut resp: reqwest::Response) -> String {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < ERROR_BODY_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            // A body that breaks off or never ends is not worth more than what we have.
            Ok(None) | Err(_) => break,
        }
    }
    buf.truncate(ERROR_BODY_LIMIT);
    let text = String::from_utf8_lossy(&buf);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    super::truncate_chars(&one_line, 200)
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (IMF-fixdate, and the obsolete RFC 850
/// and asctime forms RFC 9110 asks recipients to accept). A date in the past means "now".
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is certainly more than the cap.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at: DateTime<Utc> = if let Ok(d) = DateTime::parse_from_rfc2822(value) {
        d.with_timezone(&Utc)
    } else {
        let naive = NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT")
            .or_else(|_| NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y"))
            .ok()?;
        naive.and_utc()
    };
    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests;
