//! Slack incoming webhooks: a plain `text` fallback (what phones and screen readers show) and
//! Block Kit `blocks` (what people read). Firing groups carry a red marker and "FIRING", resolved
//! ones a green marker and "RESOLVED"; every alert shows its summary, reason and labels.
//!
//! Slack rejects a message over its limits instead of cutting it, so the message is cut here:
//! at most [`MAX_BLOCKS`] blocks and [`MAX_TEXT`] characters per text field, with an
//! "and N more" line saying what was left out.

use std::fmt::Write as _;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{
    Clients, Delivered, GroupStatus, Notification, NotifiedAlert, NotifyError, escape_with,
    is_http, markup_entity, summary_line, truncate_chars,
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

/// The message body (without `channel`).
pub fn message(n: &Notification) -> Value {
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
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
    // Serialising a serde_json::Value cannot fail.
    let body = serde_json::to_vec(&msg).expect("slack message serialises");
    super::http::post_json(clients, receiver, c.url.expose(), HeaderMap::new(), body).await
}

#[cfg(test)]
mod tests;
