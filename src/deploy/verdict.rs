//! The notifications of a deployment, queued durably for each of the gate's `notify` receivers:
//! `DeploymentStarted` when it is recorded ([`started`]) and `DeploymentVerdict` when its watch
//! ends ([`notification`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::config::format_duration;

use crate::dispatch::nlog::NlogEntry;
use crate::notify::{GroupStatus, Notification, NotifiedAlert, VERDICT_FIELDS};
use crate::series::Labels;

use super::Deployment;
use super::judge::{Verdict, describe_bounds, fmt_num};

/// The alert name of verdict notifications.
pub const ALERTNAME: &str = "DeploymentVerdict";
/// The alert name of the notification that a deployment was recorded.
pub const STARTED: &str = "DeploymentStarted";

/// The notification-log key of the verdict of deployment `id` for `receiver`. Its own prefix,
/// so it never meets a dispatcher key (`receiver\x1fgroup`).
pub fn nlog_key(id: &str, receiver: &str) -> String {
    format!("deploy\u{1f}{id}\u{1f}{receiver}")
}

/// The labels of the verdict alert: the global labels, then `alertname`, `job`, `version`,
/// `verdict` and `severity` (`page` for fail, `warning` for inconclusive, `info` otherwise).
pub fn labels(d: &Deployment, global: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = global.clone();
    let severity = match d.verdict {
        Verdict::Fail => "page",
        Verdict::Inconclusive => "warning",
        _ => "info",
    };
    for (k, v) in [
        ("alertname", ALERTNAME),
        ("job", &d.job),
        ("version", &d.version),
        ("verdict", d.verdict.as_str()),
        ("severity", severity),
    ] {
        l.insert(k.to_string(), v.to_string());
    }
    l.retain(|_, v| !v.is_empty());
    l
}

/// One annotation per check (`state: value V, bound B, baseline X; reason`), then `summary`,
/// `reason`, and the deployment's commit, author and url when given. A check named like one of
/// those keys is prefixed with `check:`.
pub fn annotations(d: &Deployment) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    for (spec, c) in d.gate.checks.iter().zip(&d.checks) {
        let key = if VERDICT_FIELDS.contains(&c.name.as_str()) {
            format!("check:{}", c.name)
        } else {
            c.name.clone()
        };
        let opt = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "none".into());
        a.insert(
            key,
            format!(
                "{}: value {}, bound {}, baseline {}; {} ({} pass, {} fail, {} no data)",
                c.state.as_str(),
                opt(c.value),
                describe_bounds(spec, c.baseline),
                opt(c.baseline),
                c.reason,
                c.passes,
                c.failures,
                c.nodata
            ),
        );
    }
    a.insert("summary".into(), summary(d));
    a.insert("reason".into(), d.reason.clone());
    for (k, v) in [
        ("commit", &d.commit),
        ("author", &d.author),
        ("url", &d.url),
    ] {
        if let Some(v) = v {
            a.insert(k.into(), v.clone());
        }
    }
    a
}

/// `"api v2.0.1: fail — check error-rate failed 3 evaluations in a row: ..."`.
pub fn summary(d: &Deployment) -> String {
    format!(
        "{} {}: {} after {} evaluations — {}",
        d.job,
        d.version,
        d.verdict.as_str(),
        d.evaluations,
        d.reason
    )
}

/// The notification of `d`'s verdict for `receiver`, with the log entry queued with it. A fail
/// or inconclusive verdict is a firing alert; a pass is sent as resolved, so that it reads as
/// "all clear", never opens an incident (PagerDuty resolves a key it never saw as a no-op) and
/// closes the one an earlier fail of the job opened.
pub fn notification(
    d: &Deployment,
    receiver: &str,
    external_url: &str,
    global_labels: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> (Notification, NlogEntry) {
    let labels = labels(d, global_labels);
    let fp = Labels::new(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))).fingerprint();
    let status = if d.verdict == Verdict::Pass {
        GroupStatus::Resolved
    } else {
        GroupStatus::Firing
    };
    let alert = NotifiedAlert {
        status,
        labels,
        annotations: annotations(d),
        starts_at: d.started_at,
        ends_at: (status == GroupStatus::Resolved).then(|| d.finished_at.unwrap_or(now)),
        generator_url: deployment_link(external_url, d),
        fingerprint: format!("{fp:016x}"),
    };
    // Keyed by the job's gate, not the deployment: the outbox sends a job's verdicts in order,
    // and PagerDuty's dedup key (and Opsgenie's alias) lets the next pass resolve a fail.
    let n = job_notification(receiver, ALERTNAME, "deploy", d, alert, external_url);
    let set: BTreeSet<u64> = [fp].into();
    let entry = if status == GroupStatus::Firing {
        NlogEntry {
            at: now,
            firing: set,
            resolved: BTreeSet::new(),
        }
    } else {
        NlogEntry {
            at: now,
            firing: BTreeSet::new(),
            resolved: set,
        }
    };
    (n, entry)
}

/// The notification-log key of the `DeploymentStarted` of deployment `id` for `receiver`.
pub fn started_nlog_key(id: &str, receiver: &str) -> String {
    format!("deploy-started\u{1f}{id}\u{1f}{receiver}")
}

/// `"v2.0.1 of api deployed, watching for 30m"`.
pub fn started_summary(d: &Deployment) -> String {
    format!(
        "{} of {} deployed, watching for {}",
        d.version,
        d.job,
        ms_text(d.gate.watch_ms)
    )
}

fn ms_text(ms: i64) -> String {
    format_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// The notification that `d` was recorded, for `receiver`: the alert `DeploymentStarted` with
/// labels `{alertname, job, version, severity="info"}` (plus the global labels) and annotations
/// `summary`, `watch`, `baseline` and the `commit`, `author` and `url` it was recorded with.
/// Sent as firing (an event, like Alertmanager's webhook shows one), never resolved.
pub fn started(
    d: &Deployment,
    receiver: &str,
    external_url: &str,
    global_labels: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> (Notification, NlogEntry) {
    let mut labels = global_labels.clone();
    for (k, v) in [
        ("alertname", STARTED),
        ("job", &d.job),
        ("version", &d.version),
        ("severity", "info"),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    labels.retain(|_, v| !v.is_empty());
    let fp = Labels::new(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))).fingerprint();
    let mut annotations: BTreeMap<String, String> = [
        ("summary".to_string(), started_summary(d)),
        ("watch".to_string(), ms_text(d.gate.watch_ms)),
        ("baseline".to_string(), ms_text(d.gate.baseline_ms)),
    ]
    .into();
    for (k, v) in [
        ("commit", &d.commit),
        ("author", &d.author),
        ("url", &d.url),
    ] {
        if let Some(v) = v {
            annotations.insert(k.into(), v.clone());
        }
    }
    let alert = NotifiedAlert {
        status: GroupStatus::Firing,
        labels,
        annotations,
        starts_at: d.started_at,
        ends_at: None,
        generator_url: deployment_link(external_url, d),
        fingerprint: format!("{fp:016x}"),
    };
    let n = job_notification(receiver, STARTED, "deploy-started", d, alert, external_url);
    let entry = NlogEntry {
        at: now,
        firing: [fp].into(),
        resolved: BTreeSet::new(),
    };
    (n, entry)
}

/// The API address of a deployment, where its notifications link to.
fn deployment_link(external_url: &str, d: &Deployment) -> String {
    format!(
        "{}/api/v1/deployments/{}",
        external_url.trim_end_matches('/'),
        d.id
    )
}

/// A deployment's one-alert notification to `receiver`, in the group of its job
/// (`{}/<kind>:{alertname, job}`), so that a job's notices follow each other.
fn job_notification(
    receiver: &str,
    alertname: &str,
    kind: &str,
    d: &Deployment,
    alert: NotifiedAlert,
    external_url: &str,
) -> Notification {
    let group_labels: BTreeMap<String, String> = [
        ("alertname".to_string(), alertname.to_string()),
        ("job".to_string(), d.job.clone()),
    ]
    .into();
    let group_key = format!(
        "{{}}/{kind}:{}",
        crate::notify::format_labels(&group_labels)
    );
    Notification::new(receiver, group_key, group_labels, vec![alert], external_url)
}
