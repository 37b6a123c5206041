//! An Alertmanager cluster: the alerts of a notification POSTed to every URL's
//! `/api/v2/alerts`, as Prometheus sends them. A firing alert's `endsAt` is now + 4 ×
//! max(`resend_interval`, evaluation interval), so Alertmanager resolves it on its own if
//! postflight stops resending; a resolved alert's `endsAt` is when it resolved. Grouping,
//! silences, inhibition and paging are then the cluster's, and the two instances of an HA pair
//! send identical alerts, which Alertmanager merges.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use serde::Serialize;

use super::{Clients, Delivered, GroupStatus, Notification, NotifyError};
use crate::config::{AlertmanagerConfig, ReceiverConfig};

/// One alert of `POST /api/v2/alerts` (Alertmanager's `postableAlert`).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert<'a> {
    /// The alert's labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The alert's annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339: the resolve time, or a time a few resends ahead while firing.
    pub ends_at: String,
    /// Link to the rule or probe.
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The body for `n` at `now`.
pub fn alerts<'a>(
    c: &AlertmanagerConfig,
    n: &'a Notification,
    now: DateTime<Utc>,
) -> Vec<PostableAlert<'a>> {
    let ahead = chrono::Duration::from_std(4 * c.resend_interval.get().max(c.evaluation_interval))
        .unwrap_or(chrono::Duration::hours(1));
    n.alerts
        .iter()
        .map(|a| PostableAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339(a.starts_at),
            ends_at: rfc3339(match (a.status, a.ends_at) {
                (GroupStatus::Resolved, Some(at)) => at,
                (GroupStatus::Resolved, None) => now,
                (GroupStatus::Firing, _) => now + ahead,
            }),
            generator_url: &a.generator_url,
        })
        .collect()
}

/// The `/api/v2/alerts` URL of a base URL.
fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// One attempt: POSTs to every URL. Delivered when at least one Alertmanager took it (the
/// cluster shares alerts between its members, as Prometheus counts it); a retry posts to all
/// again, which Alertmanager takes as the same alerts.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &AlertmanagerConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    // Serialising maps of strings cannot fail.
    let body = serde_json::to_vec(&alerts(c, n, Utc::now())).expect("alerts serialise");
    let mut ok: Vec<Delivered> = Vec::new();
    let mut errors: Vec<NotifyError> = Vec::new();
    let urls: Vec<String> = c.urls.iter().map(|u| alerts_url(u)).collect();
    let posts = urls
        .iter()
        .map(|u| super::http::post_json(clients, receiver, u, HeaderMap::new(), body.clone()));
    for r in futures_join(posts).await {
        match r {
            Ok(d) => ok.push(d),
            Err(e) => errors.push(e),
        }
    }
    if !ok.is_empty() {
        let mut detail = format!("{} of {} Alertmanagers took it", ok.len(), c.urls.len());
        for e in &errors {
            detail.push_str(&format!("; {e}"));
        }
        return Ok(Delivered {
            status: ok[0].status,
            detail,
        });
    }
    // Retryable if any failure is: a cluster member that comes back takes it.
    match errors.iter().position(NotifyError::is_retryable) {
        Some(i) => Err(errors.swap_remove(i)),
        None => Err(errors.pop().unwrap_or_else(|| {
            NotifyError::permanent(format!("receiver {}: no urls", receiver.name))
        })),
    }
}

/// Runs the posts concurrently on this task.
async fn futures_join<F: std::future::Future>(posts: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = posts.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests;
