//! The generic webhook: Alertmanager's webhook payload, version 4, so anything that consumes
//! Alertmanager webhooks consumes ours. With a `secret`, the body is signed:
//! `X-Postflight-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use ring::hmac;
use serde::Serialize;

use super::{Clients, Delivered, Notification, NotifyError};
use crate::config::{ReceiverConfig, WebhookConfig};

/// The header that carries the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Postflight-Signature";

/// What Alertmanager writes in `endsAt` while an alert is firing (Go's zero time).
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The webhook body, field for field as Alertmanager's `webhook.Message` v4.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload<'a> {
    /// Always `"4"`.
    pub version: &'static str,
    /// The group's key.
    pub group_key: &'a str,
    /// Alerts left out; we never truncate, so always 0.
    pub truncated_alerts: u32,
    /// `"firing"` or `"resolved"`.
    pub status: &'static str,
    /// The receiver's name.
    pub receiver: &'a str,
    /// The route's group labels.
    pub group_labels: &'a BTreeMap<String, String>,
    /// Labels all alerts share.
    pub common_labels: &'a BTreeMap<String, String>,
    /// Annotations all alerts share.
    pub common_annotations: &'a BTreeMap<String, String>,
    /// Link to postflight.
    #[serde(rename = "externalURL")]
    pub external_url: &'a str,
    /// The alerts.
    pub alerts: Vec<PayloadAlert<'a>>,
}

/// One alert of the webhook body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadAlert<'a> {
    /// `"firing"` or `"resolved"`.
    pub status: &'static str,
    /// The alert's labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The alert's annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, or Go's zero time while firing.
    pub ends_at: String,
    /// Link to the rule or probe.
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    /// Label fingerprint.
    pub fingerprint: &'a str,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Builds the payload of a notification.
pub fn payload(n: &Notification) -> Payload<'_> {
    Payload {
        version: "4",
        group_key: &n.group_key,
        truncated_alerts: 0,
        status: n.status.as_str(),
        receiver: &n.receiver,
        group_labels: &n.group_labels,
        common_labels: &n.common_labels,
        common_annotations: &n.common_annotations,
        external_url: &n.external_url,
        alerts: n
            .alerts
            .iter()
            .map(|a| PayloadAlert {
                status: a.status.as_str(),
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: rfc3339(a.starts_at),
                ends_at: a
                    .ends_at
                    .map(rfc3339)
                    .unwrap_or_else(|| ZERO_TIME.to_string()),
                generator_url: &a.generator_url,
                fingerprint: &a.fingerprint,
            })
            .collect(),
    }
}

/// The body bytes sent for a notification.
pub fn body(n: &Notification) -> Vec<u8> {
    // Serialising maps of strings into a Vec cannot fail.
    serde_json::to_vec(&payload(n)).expect("webhook payload serialises")
}

/// `sha256=<lowercase hex HMAC-SHA256(key, body)>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), body);
    format!("sha256={}", hex(tag.as_ref()))
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The request headers: the configured ones, then ours (which win: a configured `Content-Type`
/// or signature header must not break the contract).
fn headers(
    receiver: &ReceiverConfig,
    c: &WebhookConfig,
    body: &[u8],
) -> Result<HeaderMap, NotifyError> {
    let mut h = HeaderMap::new();
    for (name, value) in &c.headers {
        let hn = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            NotifyError::permanent(format!(
                "receiver {}: invalid header name {name:?}",
                receiver.name
            ))
        })?;
        let mut hv = HeaderValue::from_str(value.expose()).map_err(|_| {
            // The value may be a token: name the header, not its value.
            NotifyError::permanent(format!(
                "receiver {}: invalid value for header {name:?}",
                receiver.name
            ))
        })?;
        hv.set_sensitive(true);
        h.insert(hn, hv);
    }
    if let Some(secret) = &c.secret {
        let sig = signature(secret.expose().as_bytes(), body);
        // Hex digits and "sha256=" are always a valid header value.
        h.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sig).expect("hex is a valid header value"),
        );
    }
    Ok(h)
}

/// One attempt.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &WebhookConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    let body = body(n);
    let headers = headers(receiver, c, &body)?;
    super::http::post_json(clients, receiver, c.url.expose(), headers, body).await
}

#[cfg(test)]
mod tests;
