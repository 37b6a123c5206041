//! Slack incoming webhooks: a plain `text` fallback (what phones and screen readers show) and
//! Block Kit `blocks` (what people read). Firing groups carry a red marker and "FIRING", resolved
//! ones a green marker and "RESOLVED"; every alert shows its summary, reason and labels. A
//! deployment's verdict reads as a verdict, with the table of its checks in a code block.
//!
//! Slack rejects a message over its limits instead of cutting it, so the message is cut here:
//! at most [`MAX_BLOCKS`] blocks and [`MAX_TEXT`] characters per text field, with an
//! "and N more" line saying what was left out.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{
    Clients, Delivered, GroupStatus, Notification, NotifiedAlert, NotifyError, Tone, VerdictView,
    capitalised, escape_with, is_http, markup_entity, plural, summary_line, truncate_chars,
    verdict_table,
};
use crate::config::{ReceiverConfig, SlackConfig};

/// Slack's limit on blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Slack's limit on the text of a section block.
pub const MAX_TEXT: usize = 3000;
/// Slack's limit on the text of a header block.
const MAX_HEADER: usize = 150;

/// Red for firing.
const FIRING_MARK: &str = "🔴";
/// Green for resolved.
const RESOLVED_MARK: &str = "✅";
/// Amber for an inconclusive verdict.
const WARNING_MARK: &str = "⚠️";

/// Escapes the three characters Slack's mrkdwn treats as control characters.
pub fn escape(s: &str) -> String {
    escape_with(s, markup_entity)
}

/// A link in mrkdwn, or nothing for a URL that is empty or not http(s) (Slack would refuse it).
fn link(url: &str, label: &str) -> Option<String> {
    // `|` and `>` end the URL part of a mrkdwn link; such a URL is not worth a broken message.
    (is_http(url) && !url.contains(['|', '>', '<', ' ']))
        .then(|| format!("<{}|{}>", url.replace('&', "&amp;"), escape(label)))
}

fn mark(status: GroupStatus) -> (&'static str, &'static str) {
    match status {
        GroupStatus::Firing => (FIRING_MARK, "FIRING"),
        GroupStatus::Resolved => (RESOLVED_MARK, "RESOLVED"),
    }
}

/// The mrkdwn of one alert's section.
fn alert_text(a: &NotifiedAlert) -> String {
    let (m, word) = mark(a.status);
    let mut t = format!("{m} *{word}* · {}", escape(&summary_line(a)));
    if let Some(reason) = a.shown_annotation("reason") {
        let _ = write!(t, "\n*Reason:* {}", escape(reason));
    }
    if let Some(d) = a.shown_annotation("description") {
        let _ = write!(t, "\n{}", escape(d));
    }
    if let Some(x) = a.shown_annotation("log_excerpt") {
        let _ = write!(t, "\n*Log lines:*\n```{}```", escape(x));
    }
    if !a.labels.is_empty() {
        let labels: Vec<String> = a
            .labels
            .iter()
            .map(|(k, v)| format!("`{}={}`", escape(k), escape(v)))
            .collect();
        let _ = write!(t, "\n*Labels:* {}", labels.join(" "));
    }
    let (since, resolved) = a.shown_times();
    let _ = write!(t, "\n*Since:* {since}");
    if let Some(end) = resolved {
        let _ = write!(t, " · *Resolved:* {end}");
    }
    if let Some(l) = link(&a.generator_url, "Source") {
        let _ = write!(t, " · {l}");
    }
    truncate_chars(&t, MAX_TEXT)
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate_chars(&text, MAX_TEXT)}})
}

/// The marker of a verdict or a deployment notice, by how it reads.
fn tone_mark(t: Tone) -> &'static str {
    match t {
        Tone::Bad => FIRING_MARK,
        Tone::Warning => WARNING_MARK,
        Tone::Good => RESOLVED_MARK,
    }
}

/// A deployment's verdict (or the notice that one started): the verdict as the header, its
/// reason, the table of checks (value, bound, baseline) in a code block with the reason of
/// each check that did not pass, then what it was recorded with and the links. Never
/// "RESOLVED": a pass is a verdict, not an alert that ended.
fn deployment_message(n: &Notification, v: Option<&VerdictView<'_>>) -> Value {
    let title = format!("{} {}", tone_mark(n.tone()), n.headline());
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate_chars(&title, MAX_HEADER), "emoji": true}
    })];
    let mut text = title.clone();
    let Some(v) = v else {
        // A deployment that started: who and what, then the link.
        let a = &n.alerts[0];
        let mut t = String::new();
        for k in ["commit", "author", "url", "baseline"] {
            if let Some(val) = a.shown_annotation(k) {
                let _ = writeln!(t, "*{}:* {}", capitalised(k), escape(val));
            }
        }
        if let Some(l) = link(&a.generator_url, "Deployment") {
            t.push_str(&l);
        }
        if !t.trim().is_empty() {
            blocks.push(section(t.trim_end().to_string()));
        }
        return json!({ "text": truncate_chars(&text, MAX_TEXT), "blocks": blocks });
    };
    if let Some(r) = v.reason {
        blocks.push(section(format!("*Reason:* {}", escape(r))));
        let _ = write!(text, " — {r}");
    }
    if !v.checks.is_empty() {
        // A code block keeps the columns aligned; cut inside it so the fence survives.
        let table = truncate_chars(&escape(&verdict_table(v)), MAX_TEXT - 8);
        blocks.push(section(format!("```{table}```")));
    }
    if let Some(x) = n
        .alerts
        .first()
        .and_then(|a| a.shown_annotation("log_excerpt"))
    {
        let lines = truncate_chars(&escape(x), MAX_TEXT - 32);
        blocks.push(section(format!("*Log lines:*\n```{lines}```")));
    }
    let mut foot = String::new();
    for (k, val) in &v.details {
        let _ = write!(foot, "*{}:* {}  ", capitalised(k), escape(val));
    }
    if let Some(l) = link(v.link, "Deployment") {
        foot.push_str(&l);
    }
    if !foot.trim().is_empty() {
        blocks.push(section(foot.trim_end().to_string()));
    }
    json!({ "text": truncate_chars(&text, MAX_TEXT), "blocks": blocks })
}

/// The message body (without `channel`).
pub fn message(n: &Notification) -> Value {
    let verdict = n.verdict();
    if verdict.is_some() || n.deployment_started().is_some() {
        return deployment_message(n, verdict.as_ref());
    }
    let (m, _) = mark(n.status);
    let title = n.title();
    let mut blocks: Vec<Value> = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate_chars(&format!("{m} {title}"), MAX_HEADER), "emoji": true}
    })];
    if n.test {
        blocks.push(section(
            ":test_tube: *This is a test notification from postflight.* No action is needed."
                .to_string(),
        ));
    }
    let footer = link(&n.external_url, "Open postflight").map(section);

    // Firing first: they are what the reader must act on.
    let ordered: Vec<&NotifiedAlert> = n.firing().chain(n.resolved()).collect();
    let room = MAX_BLOCKS - blocks.len() - usize::from(footer.is_some());
    let shown = if ordered.len() <= room {
        ordered.len()
    } else {
        room - 1
    };
    for a in &ordered[..shown] {
        blocks.push(section(alert_text(a)));
    }
    let hidden = ordered.len() - shown;
    if hidden > 0 {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("…and {hidden} more alert{}", plural(hidden))}]
        }));
    }
    blocks.extend(footer);

    let mut text = format!("{m} {title}");
    for a in &ordered {
        let line = format!("\n• {}: {}", mark(a.status).1, summary_line(a));
        // Keep room for the "more" line.
        if text.chars().count() + line.chars().count() > MAX_TEXT - 40 {
            let _ = write!(text, "\n…and more");
            break;
        }
        text.push_str(&line);
    }
    json!({ "text": truncate_chars(&text, MAX_TEXT), "blocks": blocks })
}

/// One attempt.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &SlackConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    let mut msg = message(n);
    if let Some(ch) = &c.channel {
        msg["channel"] = Value::String(ch.clone());
    }
    super::http::post_value(clients, receiver, c.url.expose(), &msg).await
}

#[cfg(test)]
mod tests;
