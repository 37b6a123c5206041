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
mod tests {
    use super::*;
    use crate::notify::tests::{alert, sample};

    fn all_texts(v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for b in v["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                out.push(t.to_string());
            }
            for e in b["elements"].as_array().into_iter().flatten() {
                out.push(e["text"].as_str().unwrap().to_string());
            }
        }
        out
    }

    #[test]
    fn firing_and_resolved_look_different() {
        let mut n = sample();
        let firing = message(&n);
        let header = firing["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header, "🔴 [FIRING:1] HighErrorRate api");
        assert!(
            firing["text"]
                .as_str()
                .unwrap()
                .starts_with("🔴 [FIRING:1] HighErrorRate api")
        );

        n.status = GroupStatus::Resolved;
        for a in &mut n.alerts {
            a.status = GroupStatus::Resolved;
        }
        let resolved = message(&n);
        let header = resolved["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header, "✅ [RESOLVED] HighErrorRate api");
        assert!(
            all_texts(&resolved)
                .iter()
                .any(|t| t.contains("✅ *RESOLVED*"))
        );
        assert!(!all_texts(&resolved).iter().any(|t| t.contains("FIRING")));
    }

    #[test]
    fn alerts_show_summary_reason_labels_and_link() {
        let v = message(&sample());
        let texts = all_texts(&v);
        let first = &texts[1];
        assert!(
            first.starts_with("🔴 *FIRING* · error rate 5% on &lt;api&gt;"),
            "{first}"
        );
        assert!(
            first.contains("*Reason:* status 503, expected 200"),
            "{first}"
        );
        assert!(first.contains("`job=api`"), "{first}");
        assert!(first.contains("<http://monitor.example.com:7980/rules/HighErrorRate|Source>"));
        assert!(texts[2].contains("✅ *RESOLVED*"));
        assert_eq!(
            texts.last().unwrap(),
            "<http://monitor.example.com:7980|Open postflight>"
        );
        // Plain fallback names each alert.
        let text = v["text"].as_str().unwrap();
        assert!(text.contains("• FIRING: error rate 5% on <api>"), "{text}");
    }

    #[test]
    fn no_link_without_external_url() {
        let mut n = sample();
        n.external_url.clear();
        let texts = all_texts(&message(&n));
        assert!(!texts.iter().any(|t| t.contains("Open postflight")));
    }

    #[test]
    fn capped_to_slack_limits() {
        let mut n = sample();
        let long = "x".repeat(5000);
        n.alerts = (0..120)
            .map(|i| {
                let mut a = alert(&format!("i{i}"), GroupStatus::Firing);
                a.annotations.insert("summary".into(), long.clone());
                a
            })
            .collect();
        let v = message(&n);
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        for t in all_texts(&v) {
            assert!(t.chars().count() <= MAX_TEXT);
        }
        assert!(v["text"].as_str().unwrap().chars().count() <= MAX_TEXT);
        // header + 47 alerts + "more" + link
        let more = blocks[MAX_BLOCKS - 2]["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert_eq!(more, "…and 73 more alerts");
    }

    #[test]
    fn test_message_is_marked() {
        let n = Notification::test_notification("devops", "");
        let v = message(&n);
        assert!(
            v["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("[TEST]")
        );
        assert!(
            all_texts(&v)
                .iter()
                .any(|t| t.contains("test notification"))
        );
        assert!(v["text"].as_str().unwrap().contains("[TEST]"));
    }
}
