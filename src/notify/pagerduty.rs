//! PagerDuty Events API v2: `trigger` while the group fires, `resolve` when it resolves, both with
//! a `dedup_key` derived from the receiver and the group key, so every notification of a group
//! lands on the same incident and the resolve closes it.
//!
//! A deployment's verdict is keyed by its job's gate, not its deployment
//! ([`Notification::incident_key`]): a `fail` triggers (critical), an `inconclusive` triggers
//! with severity warning, and the next `pass` of that job resolves the incident.

use chrono::SecondsFormat;
use ring::digest;
use serde_json::{Value, json};

use super::webhook::hex;
use super::{
    Clients, Delivered, GroupStatus, Notification, NotifiedAlert, NotifyError, is_http,
    summary_line, truncate_chars,
};
use crate::config::{PagerdutyConfig, ReceiverConfig};

/// PagerDuty's limit on `payload.summary`, in characters.
pub const MAX_SUMMARY: usize = 1024;
/// Alerts listed in `custom_details`; PagerDuty caps an event at 512 KB.
const MAX_DETAILED_ALERTS: usize = 50;
/// Links sent with an event.
const MAX_LINKS: usize = 5;

/// The dedup key of a group: hex SHA-256 of receiver and group key. Stable across restarts and
/// config reloads that keep the route; opaque so it reveals nothing of the labels.
pub fn dedup_key(receiver: &str, group_key: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(receiver.as_bytes());
    // The separator keeps ("ab","c") and ("a","bc") apart.
    ctx.update(b"\0");
    ctx.update(group_key.as_bytes());
    hex(ctx.finish().as_ref())
}

/// PagerDuty's severity for a `severity` label: `page`/`critical` → critical, `warning` →
/// warning, anything else (or none) → info.
pub fn severity(label: Option<&str>) -> &'static str {
    match label.map(str::to_ascii_lowercase).as_deref() {
        Some("page" | "critical") => "critical",
        Some("warning") => "warning",
        _ => "info",
    }
}

/// The severity of a whole group: the highest among its firing alerts (all of them once the
/// group is resolved), as Alertmanager users expect when a group mixes severities; critical
/// beats warning beats info. The group's own label decides when no alert carries one.
pub fn group_severity(n: &Notification) -> &'static str {
    let rank = |s: &str| match s {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    };
    let firing: Vec<&NotifiedAlert> = n.firing().collect();
    let alerts: Vec<&NotifiedAlert> = match firing.is_empty() {
        true => n.alerts.iter().collect(),
        false => firing,
    };
    alerts
        .iter()
        .filter_map(|a| a.labels.get("severity"))
        .map(|s| severity(Some(s)))
        .max_by_key(|s| rank(s))
        .unwrap_or_else(|| severity(n.label("severity")))
}

/// `payload.summary`: the title, plus the alert's own summary when the group has exactly one
/// firing alert; at most [`MAX_SUMMARY`] characters.
pub fn summary(n: &Notification) -> String {
    if let Some(v) = n.verdict() {
        // "Deployment api v2: FAIL: check error-rate failed 3 evaluations in a row: ...".
        let s = match v.reason {
            Some(r) => format!("{}: {r}", v.title()),
            None => v.title(),
        };
        return truncate_chars(&s, MAX_SUMMARY);
    }
    let mut s = n.title();
    let mut firing = n.firing();
    if let (Some(only), None) = (firing.next(), firing.next()) {
        s.push_str(": ");
        s.push_str(&summary_line(only));
    }
    truncate_chars(&s, MAX_SUMMARY)
}

/// `payload.source`: where the problem is, as specific as the group allows.
fn source(n: &Notification) -> String {
    n.label("instance")
        .or_else(|| n.label("job"))
        .unwrap_or("postflight")
        .to_string()
}

/// The event for a notification.
pub fn event(routing_key: &str, n: &Notification) -> Value {
    let key = dedup_key(&n.receiver, &n.incident_key());
    if n.status == GroupStatus::Resolved {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": key});
    }
    let mut links: Vec<Value> = Vec::new();
    if is_http(&n.external_url) {
        links.push(json!({"href": n.external_url, "text": "postflight"}));
    }
    for a in n.firing() {
        if links.len() >= MAX_LINKS {
            break;
        }
        if is_http(&a.generator_url) && !links.iter().any(|l| l["href"] == a.generator_url.as_str())
        {
            links.push(json!({"href": a.generator_url, "text": format!("Source: {}", a.name())}));
        }
    }
    let timestamp = n
        .firing()
        .map(|a| a.starts_at)
        .min()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .take(MAX_DETAILED_ALERTS)
        .map(|a| {
            json!({
                "status": a.status.as_str(),
                "summary": summary_line(a),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            })
        })
        .collect();
    let mut payload = json!({
        "summary": summary(n),
        "source": source(n),
        "severity": group_severity(n),
        "custom_details": {
            "firing": n.firing_count(),
            "resolved": n.resolved_count(),
            "group_labels": n.group_labels,
            "common_labels": n.common_labels,
            "common_annotations": n.common_annotations,
            "alerts": alerts,
            "truncated_alerts": n.alerts.len().saturating_sub(MAX_DETAILED_ALERTS),
            "test": n.test,
        },
    });
    if let Some(ts) = timestamp {
        payload["timestamp"] = Value::String(ts);
    }
    if let Some(job) = n.label("job") {
        payload["component"] = Value::String(job.to_string());
    }
    if let Some(alertname) = n.label("alertname") {
        payload["class"] = Value::String(alertname.to_string());
    }
    let mut ev = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "client": "postflight",
        "payload": payload,
        "links": links,
    });
    if is_http(&n.external_url) {
        ev["client_url"] = Value::String(n.external_url.clone());
    }
    ev
}

/// One attempt. PagerDuty answers 202 when it accepted the event.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &PagerdutyConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    let ev = event(c.routing_key.expose(), n);
    super::http::post_value(clients, receiver, &c.url, &ev).await
}

#[cfg(test)]
mod tests;
