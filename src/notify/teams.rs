//! Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is
//! received"): a message with one Adaptive Card. The title is red for firing and failed, amber
//! for inconclusive, green for resolved and passed; each alert is a container of the same
//! colour with its summary, reason, labels (a fact set) and times; a deployment's verdict lists
//! its checks as a fact set.
//!
//! Teams refuses a message over about 28 KB, so alerts are added while the card stays under
//! [`MAX_CARD_BYTES`], then "…and N more alerts". Text is not Markdown-escaped: Teams clients
//! disagree on backslash escapes (some print the backslash), and a card shows no HTML.

use serde_json::{Value, json};

use super::{
    Clients, Delivered, GroupStatus, Notification, NotifiedAlert, NotifyError, Tone, VerdictView,
    capitalised, is_http, json_size, plural, push_fitting, status_word, summary_line,
    truncate_chars,
};
use crate::config::{ReceiverConfig, TeamsConfig};

/// The largest card sent, in bytes of JSON: under Teams' 28 KB per message with room for the
/// envelope.
pub const MAX_CARD_BYTES: usize = 24_000;
/// The Adaptive Card version: 1.4 renders on every Teams client.
pub const CARD_VERSION: &str = "1.4";
/// Characters kept of a summary, reason, description or fact value.
const MAX_FIELD: usize = 2000;
/// Characters kept of the title.
const MAX_TITLE: usize = 256;

/// The colour of text (`color`) and of a container (`style`) for a tone.
fn colours(tone: Tone) -> (&'static str, &'static str) {
    match tone {
        Tone::Bad => ("Attention", "attention"),
        Tone::Warning => ("Warning", "warning"),
        Tone::Good => ("Good", "good"),
    }
}

fn status_tone(s: GroupStatus) -> Tone {
    match s {
        GroupStatus::Firing => Tone::Bad,
        GroupStatus::Resolved => Tone::Good,
    }
}

fn text_block(text: &str) -> Value {
    json!({"type": "TextBlock", "text": truncate_chars(text, MAX_FIELD), "wrap": true})
}

fn subtle(text: &str) -> Value {
    json!({"type": "TextBlock", "text": text, "wrap": true, "isSubtle": true, "size": "Small"})
}

fn fact_set(facts: impl IntoIterator<Item = (String, String)>) -> Value {
    let facts: Vec<Value> = facts
        .into_iter()
        .map(|(t, v)| json!({"title": truncate_chars(&t, 256), "value": truncate_chars(&v, MAX_FIELD)}))
        .collect();
    json!({"type": "FactSet", "facts": facts})
}

/// One alert: a container in the alert's colour.
fn alert_container(a: &NotifiedAlert) -> Value {
    let (colour, style) = colours(status_tone(a.status));
    let mut items = vec![json!({
        "type": "TextBlock",
        "text": truncate_chars(&format!("{} · {}", status_word(a.status), summary_line(a)), MAX_FIELD),
        "weight": "Bolder",
        "color": colour,
        "wrap": true,
    })];
    if let Some(r) = a.shown_annotation("reason") {
        items.push(text_block(&format!("Reason: {r}")));
    }
    if let Some(d) = a.shown_annotation("description") {
        items.push(text_block(d));
    }
    if !a.labels.is_empty() {
        items.push(fact_set(
            a.labels.iter().map(|(k, v)| (k.clone(), v.clone())),
        ));
    }
    let (since, resolved) = a.shown_times();
    let mut times = format!("Since {since}");
    if let Some(end) = resolved {
        times.push_str(&format!(" · Resolved {end}"));
    }
    if is_http(&a.generator_url) && !a.generator_url.contains([')', ' ']) {
        times.push_str(&format!(" · [Source]({})", a.generator_url));
    }
    items.push(subtle(&times));
    json!({"type": "Container", "style": style, "separator": true, "items": items})
}

/// A verdict's body: reason, the checks as a fact set, what the deployment was recorded with.
fn verdict_body(v: &VerdictView<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(r) = v.reason {
        out.push(text_block(&format!("Reason: {r}")));
    }
    if !v.checks.is_empty() {
        out.push(fact_set(v.checks.iter().map(|c| {
            (
                c.name.to_string(),
                format!("**{}** · {}", c.state.to_ascii_uppercase(), c.detail),
            )
        })));
    }
    if !v.details.is_empty() {
        out.push(fact_set(
            v.details
                .iter()
                .map(|(k, val)| (capitalised(k), val.to_string())),
        ));
    }
    out
}

/// The Adaptive Card of a notification, at most [`MAX_CARD_BYTES`] of JSON.
pub fn card(n: &Notification) -> Value {
    let (colour, _) = colours(n.tone());
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": truncate_chars(&n.headline(), MAX_TITLE),
        "size": "Large",
        "weight": "Bolder",
        "color": colour,
        "style": "heading",
        "wrap": true,
    })];
    if n.test {
        body.push(text_block(
            "🧪 This is a test notification from postflight. No action is needed.",
        ));
    }
    let mut actions = Vec::new();
    let verdict = n.verdict();
    if let Some(v) = &verdict
        && is_http(v.link)
    {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Deployment", "url": v.link}));
    }
    if is_http(&n.external_url) {
        actions.push(
            json!({"type": "Action.OpenUrl", "title": "Open postflight", "url": n.external_url}),
        );
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": [],
        "actions": actions,
    });
    let parts: Vec<Value> = match &verdict {
        Some(v) => verdict_body(v),
        None => n.ordered().into_iter().map(alert_container).collect(),
    };
    let more = |hidden: usize| {
        subtle(&format!(
            "…and {hidden} more {}{}",
            if verdict.is_some() { "part" } else { "alert" },
            plural(hidden)
        ))
    };
    let used = json_size(&card) + body.iter().map(|b| json_size(b) + 1).sum::<usize>();
    push_fitting(&mut body, parts, used, MAX_CARD_BYTES, more);
    card["body"] = Value::Array(body);
    card
}

/// The webhook body: a message with the card as its one attachment.
pub fn message(n: &Notification) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card(n),
        }],
    })
}

/// One attempt. A Workflows webhook answers 202 once it has queued the message.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &TeamsConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    super::http::post_value(clients, receiver, c.url.expose(), &message(n)).await
}

#[cfg(test)]
mod tests;
