//! PagerDuty Events API v2: `trigger` while the group fires, `resolve` when it resolves, both with
//! a `dedup_key` derived from the receiver and the group key, so every notification of a group
//! lands on the same incident and the resolve closes it.
//!
//! A deployment's verdict is keyed by its job's gate, not its deployment
//! ([`Notification::incident_key`]): a `fail` triggers (critical), an `inconclusive` triggers
//! with severity warning, and the next `pass` of that job resolves the incident.

use chrono::SecondsFormat;
use reqwest::header::HeaderMap;
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
    // Serialising a serde_json::Value cannot fail.
    let body = serde_json::to_vec(&ev).expect("pagerduty event serialises");
    super::http::post_json(clients, receiver, &c.url, HeaderMap::new(), body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::{sample, verdict_sample};

    #[test]
    fn severity_mapping() {
        assert_eq!(severity(Some("page")), "critical");
        assert_eq!(severity(Some("critical")), "critical");
        assert_eq!(severity(Some("Critical")), "critical");
        assert_eq!(severity(Some("warning")), "warning");
        assert_eq!(severity(Some("ticket")), "info");
        assert_eq!(severity(None), "info");
    }

    #[test]
    fn dedup_key_is_stable_per_group() {
        let a = dedup_key("oncall", "{}:{alertname=\"X\"}");
        assert_eq!(a, dedup_key("oncall", "{}:{alertname=\"X\"}"));
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(a, dedup_key("oncall", "{}:{alertname=\"Y\"}"));
        assert_ne!(a, dedup_key("devops", "{}:{alertname=\"X\"}"));
        // SHA-256 of the single separator byte.
        assert_eq!(
            dedup_key("", ""),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn a_group_mixing_severities_pages_with_the_highest_firing_one() {
        let mut n = sample();
        n.common_labels.remove("severity");
        let template = n.alerts[0].clone();
        let with = |severity: &str, status: GroupStatus| {
            let mut a = template.clone();
            a.status = status;
            a.labels.insert("severity".into(), severity.into());
            a
        };
        n.alerts = vec![
            with("info", GroupStatus::Firing),
            with("warning", GroupStatus::Firing),
            with("critical", GroupStatus::Resolved),
        ];
        assert_eq!(event("rk", &n)["payload"]["severity"], "warning");
        n.alerts.push(with("page", GroupStatus::Firing));
        assert_eq!(event("rk", &n)["payload"]["severity"], "critical");
        // Without a severity on any alert, the group's label decides.
        for a in &mut n.alerts {
            a.labels.remove("severity");
        }
        n.common_labels.insert("severity".into(), "warning".into());
        assert_eq!(event("rk", &n)["payload"]["severity"], "warning");
    }

    #[test]
    fn trigger_event_fields() {
        let mut n = sample();
        n.common_labels.insert("severity".into(), "page".into());
        let ev = event("rk-123", &n);
        assert_eq!(ev["routing_key"], "rk-123");
        assert_eq!(ev["event_action"], "trigger");
        assert_eq!(ev["dedup_key"], dedup_key(&n.receiver, &n.group_key));
        let p = &ev["payload"];
        assert_eq!(
            p["summary"],
            "[FIRING:1] HighErrorRate api: error rate 5% on <api>"
        );
        assert_eq!(p["source"], "api");
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["timestamp"], "2024-05-01T12:00:00Z");
        assert_eq!(p["custom_details"]["firing"], 1);
        assert_eq!(p["custom_details"]["resolved"], 1);
        assert_eq!(ev["links"][0]["href"], "http://monitor.example.com:7980");
    }

    #[test]
    fn resolve_event_reuses_dedup_key() {
        let mut n = sample();
        let trigger = event("rk", &n);
        n.status = GroupStatus::Resolved;
        let resolve = event("rk", &n);
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        assert!(resolve.get("payload").is_none());
    }

    #[test]
    fn a_pass_of_the_next_deployment_resolves_the_incident_a_fail_opened() {
        let fail = verdict_sample("fail");
        let mut pass = verdict_sample("pass");
        // Another deployment of the same job, with a group key of its own.
        pass.group_key = format!("{}@another-deployment", pass.group_key);
        pass.alerts[0].generator_url = pass.alerts[0].generator_url.replace("18f0a", "19a2b");
        let trigger = event("rk", &fail);
        let resolve = event("rk", &pass);
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(
            trigger["payload"]["summary"],
            "Deployment api v2.0.1: FAIL: check error-rate failed 3 evaluations in a row"
        );
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        assert_eq!(trigger["dedup_key"], dedup_key("hooks", "deploy:api"));
        assert_eq!(
            trigger["dedup_key"],
            crate::notify::opsgenie::alias(&fail),
            "PagerDuty and Opsgenie key a job's incident alike"
        );

        let inconclusive = event("rk", &verdict_sample("inconclusive"));
        assert_eq!(inconclusive["event_action"], "trigger");
        assert_eq!(inconclusive["payload"]["severity"], "warning");
        assert_eq!(inconclusive["dedup_key"], trigger["dedup_key"]);
    }

    #[test]
    fn summary_truncated_on_char_boundary() {
        let mut n = sample();
        n.alerts.truncate(1);
        n.alerts[0]
            .annotations
            .insert("summary".into(), "é".repeat(2000));
        let s = summary(&n);
        assert_eq!(s.chars().count(), MAX_SUMMARY);
        assert!(s.ends_with('…'));
        assert!(s.starts_with("[FIRING:1] HighErrorRate api: é"));
    }
}
