//! Notifications and the channels that deliver them (SPEC §5).
//!
//! A [`Notification`] is one message to one receiver about one alert group, shaped like
//! Alertmanager's webhook payload so every channel renders the same facts. [`send`] makes exactly
//! one delivery attempt through the receiver's channel and classifies the outcome: [`Delivered`],
//! or a [`NotifyError`] that says whether retrying can help (and how long the peer asked us to
//! wait). Retries, backoff, grouping and the durable outbox belong to the dispatcher.
//!
//! One file per channel: [`webhook`] (Alertmanager webhook v4), [`slack`] (incoming webhook with
//! blocks), [`email`] (SMTP through lettre), [`pagerduty`] (Events API v2), [`teams`] (Workflows
//! webhook, Adaptive Card), [`discord`] (webhook, embeds), [`telegram`] (Bot API, HTML),
//! [`opsgenie`] (Alert API v2), [`googlechat`] (webhook, cardsV2) and [`ntfy`] (a topic). The
//! HTTP plumbing they share (status classification, `Retry-After`, bounded error bodies) lives
//! in `http`. A deployment's verdict is read back from its notification ([`VerdictView`]) so
//! the chat channels show it as a verdict with its checks, not as an alert that resolved.
//!
//! Secrets (webhook URLs, routing keys, HMAC keys, SMTP passwords, bot tokens, API keys) are
//! exposed only where they are sent, and every error message is scrubbed of them: messages name
//! the receiver, never its URL.

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod googlechat;
mod http;
pub mod ntfy;
pub mod opsgenie;
pub mod pagerduty;
pub mod slack;
pub mod teams;
pub mod telegram;
pub mod webhook;

pub use http::{MAX_RETRY_AFTER, parse_retry_after};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertState};
use crate::config::{ReceiverConfig, ReceiverKind};

/// The `User-Agent` of every HTTP request and the mailer name of every email.
pub const USER_AGENT: &str = concat!("postflight/", env!("CARGO_PKG_VERSION"));

/// Whether a group (or one alert of it) is firing or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    /// At least one alert is firing.
    Firing,
    /// Every alert has resolved.
    Resolved,
}

impl GroupStatus {
    /// `"firing"` or `"resolved"`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Firing => "firing",
            GroupStatus::Resolved => "resolved",
        }
    }
}

/// One alert inside a [`Notification`], frozen at the time the notification was built so that a
/// retry after a restart sends exactly what the first attempt sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    /// Firing or resolved.
    pub status: GroupStatus,
    /// The alert's identity (`alertname`, `job`, `severity`, ...).
    pub labels: BTreeMap<String, String>,
    /// Already-templated annotations; `summary` and `reason` are shown by every channel.
    pub annotations: BTreeMap<String, String>,
    /// When the alert started (Prometheus' `activeAt`).
    #[serde(with = "rfc3339")]
    pub starts_at: DateTime<Utc>,
    /// When it resolved; `None` while firing.
    #[serde(default, with = "rfc3339::option")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Link back to the rule or probe that raised it.
    pub generator_url: String,
    /// Stable fingerprint of the labels (16 hex digits).
    pub fingerprint: String,
}

impl NotifiedAlert {
    /// Freezes an alert for a notification. A pending alert never pages, so the dispatcher should
    /// not pass one; if it does, it is shown as firing rather than dropped.
    pub fn from_alert(alert: &Alert) -> Self {
        let status = match alert.state {
            AlertState::Resolved => GroupStatus::Resolved,
            AlertState::Firing | AlertState::Pending => GroupStatus::Firing,
        };
        NotifiedAlert {
            status,
            labels: alert
                .labels
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect(),
            annotations: alert.annotations.clone(),
            starts_at: alert.active_at,
            ends_at: if status == GroupStatus::Resolved {
                alert.resolved_at
            } else {
                None
            },
            generator_url: alert.generator_url.clone(),
            fingerprint: alert.fingerprint(),
        }
    }

    /// The alert's `alertname` label, or "".
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// An annotation a channel shows on its own line (`reason`, `description`); `None` when it
    /// is missing or empty, so that no channel prints an empty one.
    pub fn shown_annotation(&self, name: &str) -> Option<&str> {
        self.annotations
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// When the alert started and, once resolved, when it ended, written alike in every channel.
    pub fn shown_times(&self) -> (String, Option<String>) {
        const FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";
        (
            self.starts_at.format(FORMAT).to_string(),
            self.ends_at.map(|t| t.format(FORMAT).to_string()),
        )
    }
}

/// Only http(s) URLs become links; anything else (`javascript:` included) stays text.
pub(crate) fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// `s` with every character `entity` names replaced by that entity: the loop of the HTML and
/// the mrkdwn escapers.
pub(crate) fn escape_with(s: &str, entity: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match entity(c) {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
    }
    out
}

/// The entities of the three characters both HTML and Slack's mrkdwn read as markup.
pub(crate) fn markup_entity(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

/// Times as RFC 3339 strings in the stored form of a notification (chrono is built without its
/// serde feature; this keeps the outbox format explicit and readable).
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(s) => DateTime::parse_from_rfc3339(&s)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

/// One message to one receiver about one alert group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Name of the receiver it goes to.
    pub receiver: String,
    /// Stable identity of the group (Alertmanager style, see [`group_key`]); PagerDuty's
    /// dedup key is derived from it.
    pub group_key: String,
    /// Firing if any alert is firing, else resolved.
    pub status: GroupStatus,
    /// The route's `group_by` labels and their values for this group.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert of the group shares.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert of the group shares.
    pub common_annotations: BTreeMap<String, String>,
    /// `server.external_url`, for links; may be empty.
    pub external_url: String,
    /// The alerts of the group, firing and resolved.
    pub alerts: Vec<NotifiedAlert>,
    /// A `notify-test` message: every channel marks it clearly as a test.
    pub test: bool,
}

impl Notification {
    /// Builds a notification for a group, computing its status and common labels and annotations
    /// from the alerts as Alertmanager does.
    pub fn new(
        receiver: &str,
        group_key: String,
        group_labels: BTreeMap<String, String>,
        alerts: Vec<NotifiedAlert>,
        external_url: &str,
    ) -> Self {
        let status = if alerts.iter().any(|a| a.status == GroupStatus::Firing) {
            GroupStatus::Firing
        } else {
            GroupStatus::Resolved
        };
        Notification {
            receiver: receiver.to_string(),
            group_key,
            status,
            common_labels: common(alerts.iter().map(|a| &a.labels)),
            common_annotations: common(alerts.iter().map(|a| &a.annotations)),
            group_labels,
            external_url: external_url.to_string(),
            alerts,
            test: false,
        }
    }

    /// The message `postflight notify-test RECEIVER` sends: one firing alert `PostflightTest`,
    /// marked as a test, with a dedup key of its own so it never merges with a real incident.
    pub fn test_notification(receiver: &str, external_url: &str) -> Self {
        let now = Utc::now();
        let labels: BTreeMap<String, String> = [
            ("alertname".to_string(), "PostflightTest".to_string()),
            ("receiver".to_string(), receiver.to_string()),
        ]
        .into();
        let annotations: BTreeMap<String, String> = [(
            "summary".to_string(),
            format!("Test notification from postflight to receiver {receiver}; no action needed"),
        )]
        .into();
        let alert = NotifiedAlert {
            status: GroupStatus::Firing,
            // The same fingerprint a real alert with these labels would have.
            fingerprint: format!(
                "{:016x}",
                crate::series::Labels::new(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .fingerprint()
            ),
            labels: labels.clone(),
            annotations,
            starts_at: now,
            ends_at: None,
            generator_url: external_url.to_string(),
        };
        let group_labels: BTreeMap<String, String> =
            [("alertname".to_string(), "PostflightTest".to_string())].into();
        // The time makes every test its own group: PagerDuty would otherwise fold a second test
        // into the still-open incident of the first.
        let key = format!(
            "{{}}/test:{}@{}",
            format_labels(&group_labels),
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        let mut n = Notification::new(receiver, key, group_labels, vec![alert], external_url);
        n.test = true;
        n
    }

    /// Number of firing alerts.
    pub fn firing_count(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.status == GroupStatus::Firing)
            .count()
    }

    /// Number of resolved alerts.
    pub fn resolved_count(&self) -> usize {
        self.alerts.len() - self.firing_count()
    }

    /// The firing alerts, in order.
    pub fn firing(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts
            .iter()
            .filter(|a| a.status == GroupStatus::Firing)
    }

    /// The resolved alerts, in order.
    pub fn resolved(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts
            .iter()
            .filter(|a| a.status == GroupStatus::Resolved)
    }

    /// A label of the group: from the group labels, else from the labels all alerts share.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.group_labels
            .get(name)
            .or_else(|| self.common_labels.get(name))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The alerts to show, firing first: they are what the reader must act on.
    pub fn ordered(&self) -> Vec<&NotifiedAlert> {
        self.firing().chain(self.resolved()).collect()
    }

    /// The verdict this notification carries, when it is a deployment's `DeploymentVerdict`.
    pub fn verdict(&self) -> Option<VerdictView<'_>> {
        let [a] = self.alerts.as_slice() else {
            return None;
        };
        if a.name() != VERDICT_ALERTNAME {
            return None;
        }
        let label = |k: &str| a.labels.get(k).map(String::as_str).unwrap_or("");
        let verdict = label("verdict");
        if verdict.is_empty() {
            return None;
        }
        let checks = a
            .annotations
            .iter()
            .filter(|(k, _)| !VERDICT_FIELDS.contains(&k.as_str()))
            .filter_map(|(k, v)| {
                let (state, detail) = v.split_once(": ")?;
                matches!(state, "pass" | "fail" | "nodata" | "pending").then(|| VerdictCheck {
                    name: k.strip_prefix("check:").unwrap_or(k),
                    state,
                    detail,
                })
            })
            .collect();
        Some(VerdictView {
            job: label("job"),
            version: label("version"),
            verdict,
            reason: a.shown_annotation("reason"),
            checks,
            details: ["commit", "author", "url"]
                .into_iter()
                .filter_map(|k| a.shown_annotation(k).map(|v| (k, v)))
                .collect(),
            link: &a.generator_url,
        })
    }

    /// What identifies the incident this notification opens or closes in PagerDuty (its
    /// `dedup_key`) and Opsgenie (its `alias`): the group key, but for a verdict the job's gate,
    /// so that the next `pass` of the job resolves what a `fail` of an earlier deployment
    /// opened.
    pub fn incident_key(&self) -> String {
        match self.verdict() {
            Some(v) => format!("deploy:{}", v.job),
            None => self.group_key.clone(),
        }
    }

    /// The title a channel shows: the verdict's for a verdict, else [`Notification::title`].
    pub fn headline(&self) -> String {
        if let Some(s) = self.deployment_started() {
            return s
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
        }
        match self.verdict() {
            Some(v) => v.title(),
            None => self.title(),
        }
    }

    /// The summary of a `DeploymentStarted` notice ("v2.0.1 of api deployed, watching for
    /// 30m"), when this notification is one: channels show it as their title.
    pub fn deployment_started(&self) -> Option<&str> {
        match self.alerts.as_slice() {
            [a] if a.name() == STARTED_ALERTNAME => Some(a.shown_annotation("summary")?),
            _ => None,
        }
    }

    /// How the message reads at first glance: a verdict by its outcome, else firing is Bad and
    /// resolved Good.
    pub fn tone(&self) -> Tone {
        if self.deployment_started().is_some() {
            return Tone::Good;
        }
        match (self.verdict(), self.status) {
            (Some(v), _) => v.tone(),
            (None, GroupStatus::Firing) => Tone::Bad,
            (None, GroupStatus::Resolved) => Tone::Good,
        }
    }

    /// The one-line title every channel uses: `[FIRING:N] alertname job` or
    /// `[RESOLVED] alertname job` (missing parts left out), prefixed `[TEST]` for a test.
    pub fn title(&self) -> String {
        let mut t = String::new();
        if self.test {
            t.push_str("[TEST] ");
        }
        match self.status {
            GroupStatus::Firing => {
                let _ = write!(t, "[FIRING:{}]", self.firing_count());
            }
            GroupStatus::Resolved => t.push_str("[RESOLVED]"),
        }
        for part in [self.label("alertname"), self.label("job")]
            .into_iter()
            .flatten()
        {
            t.push(' ');
            // Labels come from scraped targets: a newline here would end up in an email header.
            t.extend(part.chars().map(|c| if c.is_control() { ' ' } else { c }));
        }
        t
    }
}

/// The labels shared, with the same value, by every map; empty for no maps.
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// Formats labels as `{a="1",b="2"}` with Go-style quoting, as Alertmanager prints label sets.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// An Alertmanager-style group key: the route's identity, `:`, then the group labels, e.g.
/// `{}/{severity="page"}:{alertname="X",job="api"}`. Stable for as long as the route and the
/// group labels are, which is what PagerDuty deduplication and the notification log need.
pub fn group_key(route: &str, group_labels: &BTreeMap<String, String>) -> String {
    format!("{route}:{}", format_labels(group_labels))
}

/// The one line that says what an alert is about: its `summary` annotation, else its alertname
/// and job.
pub fn summary_line(alert: &NotifiedAlert) -> String {
    if let Some(s) = alert
        .annotations
        .get("summary")
        .filter(|s| !s.trim().is_empty())
    {
        return s.trim().to_string();
    }
    let parts: Vec<&str> = ["alertname", "job"]
        .iter()
        .filter_map(|k| alert.labels.get(*k).map(String::as_str))
        .filter(|v| !v.is_empty())
        .collect();
    if parts.is_empty() {
        "alert".to_string()
    } else {
        parts.join(" ")
    }
}

/// `FIRING` or `RESOLVED`, as every chat channel marks an alert.
pub(crate) fn status_word(status: GroupStatus) -> &'static str {
    match status {
        GroupStatus::Firing => "FIRING",
        GroupStatus::Resolved => "RESOLVED",
    }
}

/// One alert as plain text, for channels without markup (ntfy, Opsgenie's description): its
/// status and summary, then its reason, description, labels, times and source, a line each.
pub(crate) fn plain_alert(a: &NotifiedAlert) -> String {
    let mut t = format!("{} · {}", status_word(a.status), summary_line(a));
    if let Some(r) = a.shown_annotation("reason") {
        let _ = write!(t, "\nReason: {r}");
    }
    if let Some(d) = a.shown_annotation("description") {
        let _ = write!(t, "\n{d}");
    }
    if !a.labels.is_empty() {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(t, "\nLabels: {}", labels.join(", "));
    }
    let (since, resolved) = a.shown_times();
    let _ = write!(t, "\nSince: {since}");
    if let Some(end) = resolved {
        let _ = write!(t, " · Resolved: {end}");
    }
    if is_http(&a.generator_url) {
        let _ = write!(t, "\nSource: {}", a.generator_url);
    }
    t
}

/// A verdict as plain text: its reason, a line per check, then what the deployment was
/// recorded with and its link.
pub(crate) fn plain_verdict(v: &VerdictView<'_>) -> String {
    let mut t = String::new();
    if let Some(r) = v.reason {
        let _ = writeln!(t, "Reason: {r}");
    }
    if !v.checks.is_empty() {
        t.push_str("Checks:\n");
        for c in &v.checks {
            let _ = writeln!(
                t,
                "- {}: {} · {}",
                c.name,
                c.state.to_ascii_uppercase(),
                c.detail
            );
        }
    }
    for (k, val) in &v.details {
        let _ = writeln!(t, "{}: {val}", capitalised(k));
    }
    if is_http(v.link) {
        let _ = writeln!(t, "Deployment: {}", v.link);
    }
    t.truncate(t.trim_end().len());
    t
}

/// `commit` → `Commit`.
pub(crate) fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// As many whole `blocks` as fit in `max` (as `len` measures), separated by blank lines, then
/// "…and N more {noun}s" for the rest. A first block too long on its own is cut by `cut` (to
/// a length) rather than left out, so the reader always sees something.
pub(crate) fn fit_blocks(
    blocks: &[String],
    max: usize,
    noun: &str,
    len: fn(&str) -> usize,
    cut: fn(&str, usize) -> String,
) -> String {
    let more = |hidden: usize| format!("…and {hidden} more {noun}{}", plural(hidden));
    let mut out = String::new();
    for (i, block) in blocks.iter().enumerate() {
        let sep = if i == 0 { "" } else { "\n\n" };
        let reserve = if i + 1 < blocks.len() {
            2 + len(&more(blocks.len()))
        } else {
            0
        };
        if len(&out) + len(sep) + len(block) + reserve <= max {
            out.push_str(sep);
            out.push_str(block);
            continue;
        }
        let hidden = if i == 0 {
            out.push_str(&cut(
                block,
                max.saturating_sub(2 + len(&more(blocks.len()))),
            ));
            blocks.len() - 1
        } else {
            blocks.len() - i
        };
        if hidden > 0 {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&more(hidden));
        }
        break;
    }
    out
}

/// The length in characters, for [`fit_blocks`].
pub(crate) fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// "s" for a count other than one.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The bytes of a JSON value once serialised: what Google Chat and Teams count against their
/// limits on a message.
pub(crate) fn json_size(v: &serde_json::Value) -> usize {
    // Serialising a serde_json::Value cannot fail.
    serde_json::to_vec(v).expect("JSON serialises").len()
}

/// Appends `parts` to `out` while the JSON stays within `max` bytes (`used` already spent, each
/// part costing its size and a comma); at the first that does not fit, appends `more(hidden)`
/// instead, room for which is kept while parts follow.
pub(crate) fn push_fitting(
    out: &mut Vec<serde_json::Value>,
    parts: Vec<serde_json::Value>,
    mut used: usize,
    max: usize,
    more: impl Fn(usize) -> serde_json::Value,
) {
    let total = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        let reserve = if i + 1 < total {
            json_size(&more(total)) + 1
        } else {
            0
        };
        let cost = json_size(&part) + 1;
        if used + cost + reserve > max {
            out.push(more(total - i));
            break;
        }
        used += cost;
        out.push(part);
    }
}

/// Cuts `s` to at most `max` characters, ending with "…" when it had to cut. Cuts on a char
/// boundary, never inside a UTF-8 sequence.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The alert name of a deployment's verdict, as `deploy::verdict::ALERTNAME` writes it (the
/// gate engine sits above this module, so the name is repeated here and a test ties the two).
pub const VERDICT_ALERTNAME: &str = "DeploymentVerdict";

/// The alert name of the notice that a deployment was recorded, as
/// `deploy::verdict::STARTED` writes it.
pub const STARTED_ALERTNAME: &str = "DeploymentStarted";

/// The annotations of a verdict that are not checks: `deploy::verdict::annotations` writes a
/// check named like one of them as `check:NAME`.
pub const VERDICT_FIELDS: [&str; 6] = [
    "summary",
    "reason",
    "description",
    "commit",
    "author",
    "url",
];

/// How a message reads at first glance; each channel turns it into its own colour and mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Firing, or a failed deployment: someone must act.
    Bad,
    /// An inconclusive deployment: look, but nothing is known to be broken.
    Warning,
    /// Resolved, or a deployment that passed.
    Good,
}

/// One check of a verdict, read back from its annotation (`state: value V, bound B, ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictCheck<'a> {
    /// The check's name, without the `check:` prefix a reserved name gets.
    pub name: &'a str,
    /// `pass`, `fail`, `nodata` or `pending`.
    pub state: &'a str,
    /// The rest: value, bound, baseline, reason and counts.
    pub detail: &'a str,
}

/// A check's detail cut into the columns of a verdict's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckColumns<'a> {
    /// The last value, or `none`.
    pub value: &'a str,
    /// The bound in force (`<= 0.003 (baseline 0.001 +0.002)`).
    pub bound: &'a str,
    /// The baseline, or `none`.
    pub baseline: &'a str,
    /// Why the state, in words, with the counts.
    pub reason: &'a str,
}

impl<'a> VerdictCheck<'a> {
    /// The detail (`value V, bound B, baseline X; reason (counts)`) as columns; a detail of
    /// another shape is all reason.
    pub fn columns(&self) -> CheckColumns<'a> {
        let parsed = self.detail.split_once("; ").and_then(|(head, reason)| {
            let (rest, baseline) = head.rsplit_once(", baseline ")?;
            let (value, bound) = rest.strip_prefix("value ")?.split_once(", bound ")?;
            Some(CheckColumns {
                value,
                bound,
                baseline,
                reason,
            })
        });
        parsed.unwrap_or(CheckColumns {
            value: "",
            bound: "",
            baseline: "",
            reason: self.detail,
        })
    }
}

/// A verdict's checks as a plain-text table (check, state, value, bound, baseline), columns
/// aligned, then a line in words for each check that did not pass, for channels that show
/// monospace text (Slack's code block, an email's text part).
pub(crate) fn verdict_table(v: &VerdictView<'_>) -> String {
    let head = ["check", "state", "value", "bound", "baseline"];
    let rows: Vec<[String; 5]> = v
        .checks
        .iter()
        .map(|c| {
            let col = c.columns();
            [
                c.name.to_string(),
                c.state.to_ascii_uppercase(),
                col.value.to_string(),
                col.bound.to_string(),
                col.baseline.to_string(),
            ]
        })
        .collect();
    let mut width = head.map(char_len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(char_len(cell));
        }
    }
    let mut t = String::new();
    let line = |t: &mut String, cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let _ = write!(l, "{cell:<w$}");
        }
        t.push_str(l.trim_end());
        t.push('\n');
    };
    line(&mut t, &head);
    for r in &rows {
        line(&mut t, &r.each_ref().map(String::as_str));
    }
    for c in v.checks.iter().filter(|c| c.state != "pass") {
        let _ = writeln!(t, "{} {}: {}", c.name, c.state, c.columns().reason);
    }
    t.truncate(t.trim_end().len());
    t
}

/// A deployment's verdict as the channels show it: read back from the one alert of a
/// `DeploymentVerdict` notification, so that a verdict reads as a verdict (not as an alert that
/// fired or resolved) with its table of checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictView<'a> {
    /// The job deployed.
    pub job: &'a str,
    /// The version deployed.
    pub version: &'a str,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: &'a str,
    /// Why the verdict.
    pub reason: Option<&'a str>,
    /// The checks, by name.
    pub checks: Vec<VerdictCheck<'a>>,
    /// What the deployment was recorded with (`commit`, `author`, `url`), in that order.
    pub details: Vec<(&'a str, &'a str)>,
    /// The deployment in postflight's API.
    pub link: &'a str,
}

impl VerdictView<'_> {
    /// `Deployment api v2.0.1: FAIL`.
    pub fn title(&self) -> String {
        let mut t = String::from("Deployment");
        for part in [self.job, self.version] {
            if !part.is_empty() {
                t.push(' ');
                t.extend(part.chars().map(|c| if c.is_control() { ' ' } else { c }));
            }
        }
        t.push_str(": ");
        t.push_str(&self.verdict.to_ascii_uppercase());
        t
    }

    /// Bad for fail, Warning for inconclusive, Good for pass.
    pub fn tone(&self) -> Tone {
        match self.verdict {
            "fail" => Tone::Bad,
            "pass" => Tone::Good,
            _ => Tone::Warning,
        }
    }
}

/// Why one delivery attempt failed, and whether another attempt can help.
///
/// Messages name the receiver and what went wrong, never the URL, routing key or password: the
/// dispatcher logs them as they are. That is also why no `#[source]` is kept: reqwest's and
/// lettre's errors print request URLs, and those embed tokens.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NotifyError {
    /// The peer is down, slow, rate limiting or failing on its side: try again later.
    #[error("{message}")]
    Retryable {
        /// What happened, secrets removed.
        message: String,
        /// How long the peer asked us to wait (`Retry-After` on 429/503).
        retry_after: Option<Duration>,
    },
    /// The peer refused the message for good (bad request, bad credentials, bad config): retrying
    /// the same message will fail the same way.
    #[error("{message}")]
    Permanent {
        /// What happened, secrets removed.
        message: String,
    },
}

impl NotifyError {
    /// Whether another attempt can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::Retryable { .. })
    }

    /// The wait the peer asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NotifyError::Retryable { retry_after, .. } => *retry_after,
            NotifyError::Permanent { .. } => None,
        }
    }

    /// The message, secrets removed.
    pub fn message(&self) -> &str {
        match self {
            NotifyError::Retryable { message, .. } | NotifyError::Permanent { message } => message,
        }
    }

    pub(crate) fn retryable(message: impl Into<String>) -> Self {
        NotifyError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        NotifyError::Permanent {
            message: message.into(),
        }
    }

    /// Removes every secret of the receiver from the message, as a last line of defence behind
    /// building messages without them in the first place.
    fn redacted(self, secrets: &[&str]) -> Self {
        match self {
            NotifyError::Retryable {
                message,
                retry_after,
            } => NotifyError::Retryable {
                message: redact(&message, secrets),
                retry_after,
            },
            NotifyError::Permanent { message } => NotifyError::Permanent {
                message: redact(&message, secrets),
            },
        }
    }
}

/// A delivery the peer accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// HTTP status or SMTP reply code.
    pub status: Option<u16>,
    /// Human-readable outcome, e.g. `HTTP 202` or `250 OK: queued as 1234`.
    pub detail: String,
}

/// The clients every channel shares, built once per process: one HTTP connection pool and the
/// TLS trust settings for SMTP.
#[derive(Clone, Debug)]
pub struct Clients {
    /// Shared by every HTTP channel, so connections are reused across notifications. rustls with the platform verifier; redirects only to the same host.
    http: reqwest::Client,
    /// Roots trusted on top of the platform's, for HTTPS and SMTP: a private CA in tests or an
    /// internal mail relay. Empty in a normal deployment.
    extra_roots: Vec<CertificateDer<'static>>,
}

/// The HTTP client could not be built (no usable TLS roots, bad extra root).
#[derive(Debug, thiserror::Error)]
#[error("building the notification HTTP client: {0}")]
pub struct ClientsError(#[source] reqwest::Error);

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 3;

impl Clients {
    /// Clients that trust the platform's roots.
    pub fn new() -> Result<Self, ClientsError> {
        Self::with_extra_roots(Vec::new())
    }

    /// Clients that also trust these roots (DER certificates), for HTTPS and SMTP over TLS.
    pub fn with_extra_roots(
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, ClientsError> {
        install_crypto_provider();
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            // A redirect to another host would carry our payload (and signature) somewhere the
            // operator did not configure; same-host redirects (http→https, trailing slash) are
            // fine. Only 307/308 are followed: they keep the POST and its body, where 301-303
            // would turn it into a GET that "succeeds" with nothing delivered.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_host = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.host_str() == attempt.url().host_str());
                let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
                if same_host && keeps_body && attempt.previous().len() <= MAX_REDIRECTS {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }));
        for der in &extra_roots {
            b = b.add_root_certificate(reqwest::Certificate::from_der(der).map_err(ClientsError)?);
        }
        Ok(Clients {
            http: b.build().map_err(ClientsError)?,
            extra_roots,
        })
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The roots trusted on top of the platform's.
    pub fn extra_roots(&self) -> &[CertificateDer<'static>] {
        &self.extra_roots
    }
}

/// Installs rustls' ring provider as the process default, once. reqwest is built without a
/// provider of its own, so this must run before the first HTTPS request; later calls (and a
/// provider installed by someone else first) are fine.
pub fn install_crypto_provider() {
    crate::install_crypto_provider();
}

/// Makes one delivery attempt of `n` through `receiver`, bounded by `receiver.timeout`.
///
/// Sends what it is given: whether a resolved group is notified at all (`send_resolved`) and
/// when to retry are the dispatcher's decisions.
pub async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    let attempt = async {
        match &receiver.kind {
            ReceiverKind::Slack(c) => slack::send(clients, receiver, c, n).await,
            ReceiverKind::Email(c) => email::send(clients, receiver, c, n).await,
            ReceiverKind::Webhook(c) => webhook::send(clients, receiver, c, n).await,
            ReceiverKind::Pagerduty(c) => pagerduty::send(clients, receiver, c, n).await,
            ReceiverKind::Teams(c) => teams::send(clients, receiver, c, n).await,
            ReceiverKind::Discord(c) => discord::send(clients, receiver, c, n).await,
            ReceiverKind::Telegram(c) => telegram::send(clients, receiver, c, n).await,
            ReceiverKind::Opsgenie(c) => opsgenie::send(clients, receiver, c, n).await,
            ReceiverKind::Googlechat(c) => googlechat::send(clients, receiver, c, n).await,
            ReceiverKind::Ntfy(c) => ntfy::send(clients, receiver, c, n).await,
            ReceiverKind::Alertmanager(c) => alertmanager::send(clients, receiver, c, n).await,
        }
    };
    // Each channel also sets its own timeouts; this one bounds the whole attempt (DNS, TLS,
    // every SMTP command) so a stuck peer can never hold the sender longer than configured.
    let result = match tokio::time::timeout(receiver.timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(NotifyError::retryable(format!(
            "receiver {}: timed out after {}",
            receiver.name,
            crate::config::format_duration(receiver.timeout)
        ))),
    };
    let result = result.map_err(|e| e.redacted(&receiver.secrets()));
    match &result {
        Ok(d) => tracing::debug!(receiver = %receiver.name, kind = receiver.kind.type_name(),
            group = %n.group_key, detail = %d.detail, "notification delivered"),
        Err(e) => tracing::debug!(receiver = %receiver.name, kind = receiver.kind.type_name(),
            group = %n.group_key, retryable = e.is_retryable(), error = %e, "notification attempt failed"),
    }
    result
}

/// Sends the `notify-test` message through a receiver.
pub async fn send_test(
    clients: &Clients,
    receiver: &ReceiverConfig,
    external_url: &str,
) -> Result<Delivered, NotifyError> {
    send(
        clients,
        receiver,
        &Notification::test_notification(&receiver.name, external_url),
    )
    .await
}

/// Replaces every occurrence of each secret in `message` with `<secret>`, and of the parts of
/// a secret URL a peer may echo on their own (see [`secret_parts`]).
fn redact(message: &str, secrets: &[&str]) -> String {
    let mut all: Vec<String> = Vec::new();
    for s in secrets {
        all.push(s.to_string());
        all.extend(secret_parts(s));
    }
    // Longest first, so a whole URL becomes one `<secret>` rather than a patchwork.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut m = message.to_string();
    for s in &all {
        if !s.is_empty() && m.contains(s.as_str()) {
            m = m.replace(s.as_str(), "<secret>");
        }
    }
    m
}

/// The parts of a secret URL that carry its credential and that an error body may quote
/// without the rest ("unknown webhook /api/webhooks/1/TOKEN"): its path with the query, and
/// each path segment and query value long enough to be a token. Short words (`api`, `hook`)
/// are left, so messages (and receiver names) stay readable.
fn secret_parts(secret: &str) -> Vec<String> {
    /// The shortest part redacted on its own.
    const MIN_TOKEN: usize = 8;
    let Ok(url) = reqwest::Url::parse(secret) else {
        return Vec::new();
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let path = url.path();
    if path != "/" {
        out.push(path.to_string());
    }
    if let Some(q) = url.query() {
        out.push(format!("{path}?{q}"));
        out.push(q.to_string());
        out.extend(
            url.query_pairs()
                .map(|(_, v)| v.into_owned())
                .filter(|v| v.len() >= MIN_TOKEN),
        );
    }
    out.extend(
        path.split('/')
            .filter(|s| s.len() >= MIN_TOKEN)
            .map(str::to_string),
    );
    out
}

#[cfg(test)]
pub(crate) mod tests;
