//! ntfy: a plain-text POST to the topic's URL, with the `Title`, `Priority`, `Tags` and `Click`
//! headers. A firing group is tagged 🚨 (`rotating_light`) and pushed with the priority of its
//! severity; a resolved one is tagged ✅ (`white_check_mark`) at low priority, so it does not
//! ring; a deployment's verdict is tagged by its outcome and lists its checks.
//!
//! ntfy turns a body over 4,096 bytes into an attachment, so the text is cut at [`MAX_BODY`]
//! bytes: whole alerts while they fit, then "…and N more alerts". A title that is not ASCII is
//! sent as an RFC 2047 encoded word, which ntfy decodes.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::{
    Clients, Delivered, Notification, NotifyError, Tone, fit_blocks, is_http, plain_alert,
    plain_verdict, truncate_chars,
};
use crate::config::{NtfyConfig, ReceiverConfig};

/// ntfy's default limit on a message body, in bytes.
pub const MAX_BODY: usize = 4096;
/// Characters kept of the title.
const MAX_TITLE: usize = 250;

/// The priority (1 min to 5 max): resolved and passed 2 (no sound), a test 3, firing by the
/// highest severity among its alerts (page or critical 5, warning 4, else 3), inconclusive 4.
pub fn priority(n: &Notification) -> u8 {
    if n.test {
        return 3;
    }
    match n.tone() {
        Tone::Good => 2,
        Tone::Warning => 4,
        Tone::Bad if n.verdict().is_some() => 5,
        Tone::Bad => n
            .firing()
            .filter_map(|a| a.labels.get("severity"))
            .map(|s| match s.to_ascii_lowercase().as_str() {
                "page" | "critical" => 5,
                "warning" => 4,
                _ => 3,
            })
            .max()
            .unwrap_or(3),
    }
}

/// The tags: an emoji for the state (ntfy shows known emoji names as emoji), then `test` or
/// `deployment` when it is one.
pub fn tags(n: &Notification) -> Vec<&'static str> {
    let mut t = vec![match n.tone() {
        Tone::Bad => "rotating_light",
        Tone::Warning => "warning",
        Tone::Good => "white_check_mark",
    }];
    if n.test {
        t.push("test_tube");
    }
    if n.verdict().is_some() {
        t.push("deployment");
    }
    t
}

/// Where a tap on the notification leads: the deployment, the only firing alert's source, or
/// postflight.
fn click(n: &Notification) -> Option<&str> {
    let v = n.verdict().map(|v| v.link);
    let mut firing = n.firing();
    let only = match (firing.next(), firing.next()) {
        (Some(a), None) => Some(a.generator_url.as_str()),
        _ => None,
    };
    [v, only, Some(n.external_url.as_str())]
        .into_iter()
        .flatten()
        .find(|u| is_http(u))
}

/// The message text, at most [`MAX_BODY`] bytes.
pub fn body(n: &Notification) -> String {
    let blocks: Vec<String> = match n.verdict() {
        Some(v) => vec![plain_verdict(&v)],
        None => n.ordered().into_iter().map(plain_alert).collect(),
    };
    let head = if n.test {
        "This is a test notification from postflight. No action is needed."
    } else {
        ""
    };
    let room = MAX_BODY.saturating_sub(head.len() + 2);
    let rest = fit_blocks(&blocks, room, "alert", str::len, cut_bytes);
    match (head.is_empty(), rest.is_empty()) {
        (true, true) => n.headline(),
        (true, false) => rest,
        (false, true) => head.to_string(),
        (false, false) => format!("{head}\n\n{rest}"),
    }
}

/// `s` cut to at most `max` bytes on a char boundary, ending with "…" when it had to cut.
fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let Some(room) = max.checked_sub('…'.len_utf8()) else {
        return String::new();
    };
    let mut end = room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A header value for text: as is when it is visible ASCII, else an RFC 2047 encoded word
/// (`=?UTF-8?B?...?=`), which ntfy decodes.
pub fn header_text(s: &str) -> HeaderValue {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_ascii() {
        // Visible ASCII and spaces are always a valid header value.
        return HeaderValue::from_str(&clean).expect("ASCII without controls");
    }
    let encoded = format!("=?UTF-8?B?{}?=", base64(clean.as_bytes()));
    HeaderValue::from_str(&encoded).expect("base64 is a valid header value")
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The request headers.
pub fn headers(n: &Notification, token: Option<&str>) -> Result<HeaderMap, NotifyError> {
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_static("title"),
        header_text(&truncate_chars(&n.headline(), MAX_TITLE)),
    );
    h.insert(
        HeaderName::from_static("priority"),
        HeaderValue::from(u16::from(priority(n))),
    );
    h.insert(
        HeaderName::from_static("tags"),
        // Emoji names are ASCII.
        HeaderValue::from_str(&tags(n).join(",")).expect("tag names are ASCII"),
    );
    if let Some(url) = click(n)
        && let Ok(v) = HeaderValue::from_str(url)
    {
        h.insert(HeaderName::from_static("click"), v);
    }
    if let Some(token) = token {
        let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            NotifyError::permanent("the token is not a valid header value".to_string())
        })?;
        v.set_sensitive(true);
        h.insert(AUTHORIZATION, v);
    }
    Ok(h)
}

/// One attempt.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &NtfyConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    // An empty token (`token = "${NTFY_TOKEN}"` with the variable set to "") means none.
    let token = c
        .token
        .as_ref()
        .map(|t| t.expose())
        .filter(|t| !t.is_empty());
    let headers = headers(n, token).map_err(|e| {
        NotifyError::permanent(format!("receiver {}: {}", receiver.name, e.message()))
    })?;
    super::http::post(
        clients,
        receiver,
        c.url.expose(),
        headers,
        "text/plain; charset=utf-8",
        body(n).into_bytes(),
    )
    .await
}

#[cfg(test)]
mod tests;
