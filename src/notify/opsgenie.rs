//! Opsgenie Alert API v2: create an alert while the group fires, close it when the group
//! resolves, both by the same `alias`, so every notification of a group lands on one Opsgenie
//! alert and the resolve closes it. The priority follows the severity (P1 for page or
//! critical, P3 for warning, P5 for info).
//!
//! A deployment's verdict is keyed by its job, not its deployment: a `fail` opens an alert
//! (P1), an `inconclusive` one is sent at P3, and the next `pass` of that job closes it.
//!
//! Opsgenie cuts nothing for us; the fields are cut here to its limits: [`MAX_MESSAGE`],
//! [`MAX_DESCRIPTION`], [`MAX_TAGS`] tags of [`MAX_TAG`] characters and [`MAX_DETAILS`]
//! characters of details.

use std::collections::BTreeMap;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::pagerduty::dedup_key;
use super::{
    Clients, Delivered, GroupStatus, Notification, NotifyError, char_len, fit_blocks, is_http,
    plain_alert, plain_verdict, summary_line, truncate_chars,
};
use crate::config::{OpsgenieConfig, ReceiverConfig};

/// Opsgenie's limit on `message`.
pub const MAX_MESSAGE: usize = 130;
/// Opsgenie's limit on `description`.
pub const MAX_DESCRIPTION: usize = 15_000;
/// Opsgenie's limit on the number of tags.
pub const MAX_TAGS: usize = 20;
/// Opsgenie's limit on one tag.
pub const MAX_TAG: usize = 50;
/// Opsgenie's limit on `details`, keys and values together.
pub const MAX_DETAILS: usize = 8000;
/// Opsgenie's limit on `entity`.
const MAX_ENTITY: usize = 512;
/// Characters kept of one detail's value.
const MAX_DETAIL_VALUE: usize = 500;
/// What the alert's `source` says.
const SOURCE: &str = "postflight";

/// The alias of a notification's alert: PagerDuty's dedup key (hex SHA-256 of the receiver and
/// [`Notification::incident_key`]), so a verdict of a job finds the alert a failed one opened.
pub fn alias(n: &Notification) -> String {
    dedup_key(&n.receiver, &n.incident_key())
}

/// The priority: P1 for a failed verdict, P3 for an inconclusive one, P5 for a test; else the
/// highest severity among the firing alerts (page or critical P1, error P2, warning P3, info
/// P5; P3, Opsgenie's default, when none says).
pub fn priority(n: &Notification) -> &'static str {
    if n.test {
        return "P5";
    }
    if let Some(v) = n.verdict() {
        return if v.verdict == "fail" { "P1" } else { "P3" };
    }
    let rank = |s: Option<&String>| match s.map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("page" | "critical") => 1,
        Some("error" | "high") => 2,
        Some("info" | "low") => 5,
        _ => 3,
    };
    match n.firing().map(|a| rank(a.labels.get("severity"))).min() {
        Some(1) => "P1",
        Some(2) => "P2",
        Some(5) => "P5",
        _ => "P3",
    }
}

/// `message`: the title, plus the alert's own summary when the group has exactly one firing
/// alert; at most [`MAX_MESSAGE`] characters.
pub fn message(n: &Notification) -> String {
    let mut s = n.headline();
    let mut firing = n.firing();
    if n.verdict().is_none()
        && let (Some(only), None) = (firing.next(), firing.next())
    {
        s.push_str(": ");
        s.push_str(&summary_line(only));
    }
    truncate_chars(&s, MAX_MESSAGE)
}

/// `description`: every alert (or the verdict's checks) as text, whole alerts while they fit,
/// and the link to postflight; at most [`MAX_DESCRIPTION`] characters.
pub fn description(n: &Notification) -> String {
    let blocks: Vec<String> = match n.verdict() {
        Some(v) => vec![plain_verdict(&v)],
        None => n.ordered().into_iter().map(plain_alert).collect(),
    };
    let head = n
        .test
        .then_some("This is a test notification from postflight. No action is needed.");
    let foot = is_http(&n.external_url).then(|| format!("postflight: {}", n.external_url));
    let fixed: usize = head
        .iter()
        .map(|h| char_len(h) + 2)
        .chain(foot.iter().map(|f| char_len(f) + 2))
        .sum();
    let body = fit_blocks(
        &blocks,
        MAX_DESCRIPTION.saturating_sub(fixed),
        "alert",
        char_len,
        truncate_chars,
    );
    let parts: Vec<&str> = head
        .into_iter()
        .chain(Some(body.as_str()).filter(|b| !b.is_empty()))
        .chain(foot.as_deref())
        .collect();
    parts.join("\n\n")
}

/// `tags`: `postflight`, then the group's labels as `name:value`; at most [`MAX_TAGS`] of
/// [`MAX_TAG`] characters.
pub fn tags(n: &Notification) -> Vec<String> {
    let mut t = vec![SOURCE.to_string()];
    if let Some(v) = n.verdict() {
        t.push("deployment".into());
        t.push(truncate_chars(&format!("verdict:{}", v.verdict), MAX_TAG));
    }
    for (k, v) in &n.group_labels {
        t.push(truncate_chars(&format!("{k}:{v}"), MAX_TAG));
    }
    t.dedup();
    t.truncate(MAX_TAGS);
    t
}

/// `details`: the counts, the labels the alerts share, and the link; at most [`MAX_DETAILS`]
/// characters of keys and values.
pub fn details(n: &Notification) -> BTreeMap<String, String> {
    let mut d = BTreeMap::new();
    let mut used = 0;
    let mut add = |k: String, v: String| {
        let v = truncate_chars(&v, MAX_DETAIL_VALUE);
        let cost = k.chars().count() + v.chars().count();
        if used + cost <= MAX_DETAILS {
            used += cost;
            d.insert(k, v);
        }
    };
    add("firing".into(), n.firing_count().to_string());
    add("resolved".into(), n.resolved_count().to_string());
    if is_http(&n.external_url) {
        add("postflight".into(), n.external_url.clone());
    }
    for (k, v) in &n.common_labels {
        add(k.clone(), v.clone());
    }
    d
}

/// The create request's body.
pub fn create_body(n: &Notification) -> Value {
    let mut b = json!({
        "message": message(n),
        "alias": alias(n),
        "description": description(n),
        "tags": tags(n),
        "details": details(n),
        "source": SOURCE,
        "priority": priority(n),
    });
    if let Some(job) = n.label("job") {
        b["entity"] = Value::String(truncate_chars(job, MAX_ENTITY));
    }
    b
}

/// The close request's body.
pub fn close_body(n: &Notification) -> Value {
    json!({
        "source": SOURCE,
        "note": truncate_chars(&format!("Resolved: {}", n.headline()), MAX_DESCRIPTION),
    })
}

/// One attempt: create (`POST /v2/alerts`) while firing, close
/// (`POST /v2/alerts/{alias}/close?identifierType=alias`) once resolved. Opsgenie answers 202.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &OpsgenieConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    let mut key =
        HeaderValue::from_str(&format!("GenieKey {}", c.api_key.expose())).map_err(|_| {
            NotifyError::permanent(format!(
                "receiver {}: the api_key is not a valid header value",
                receiver.name
            ))
        })?;
    key.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, key);
    let base = c.url.trim_end_matches('/');
    let (url, body) = match n.status {
        GroupStatus::Firing => (format!("{base}/v2/alerts"), create_body(n)),
        // The alias is hex: nothing in it needs escaping in a path.
        GroupStatus::Resolved => (
            format!("{base}/v2/alerts/{}/close?identifierType=alias", alias(n)),
            close_body(n),
        ),
    };
    // Serialising a serde_json::Value cannot fail.
    let body = serde_json::to_vec(&body).expect("opsgenie request serialises");
    super::http::post_json(clients, receiver, &url, headers, body).await
}

#[cfg(test)]
mod tests;
