//! Google Chat incoming webhooks: a `text` line (what notifications show) and one card
//! (`cardsV2`) whose header carries the title. A section per alert starts with a red "FIRING"
//! or a green "RESOLVED"; a deployment's verdict has a row per check, its state in colour.
//!
//! Card text is Google Chat's small HTML subset (`<b>`, `<font color>`, `<a href>`, `<br>`), so
//! every value is HTML-escaped. Google Chat refuses a message over 32,000 bytes: alerts are
//! added while the card stays under [`MAX_CARD_BYTES`], then "…and N more alerts".

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{
    Clients, Delivered, GroupStatus, Notification, NotifiedAlert, NotifyError, Tone, VerdictView,
    capitalised, escape_with, is_http, json_size, markup_entity, plural, push_fitting, status_word,
    summary_line, truncate_chars,
};
use crate::config::{GooglechatConfig, ReceiverConfig};

/// The largest card sent, in bytes of JSON: under Google Chat's 32,000 bytes per message with
/// room for the text line.
pub const MAX_CARD_BYTES: usize = 28_000;
/// Characters kept of one value (a summary, a reason, a description, a check's detail).
const MAX_VALUE: usize = 2000;
/// Characters kept of the header's title and of the text line.
const MAX_TITLE: usize = 256;

/// Escapes the characters Google Chat's card HTML reads as markup.
pub fn escape(s: &str) -> String {
    escape_with(s, |c| match c {
        '"' => Some("&quot;"),
        c => markup_entity(c),
    })
}

fn escaped(s: &str) -> String {
    escape(&truncate_chars(s, MAX_VALUE))
}

/// The colour of a state's word.
pub fn colour(tone: Tone) -> &'static str {
    match tone {
        Tone::Bad => "#d93025",
        Tone::Warning => "#e37400",
        Tone::Good => "#1e8e3e",
    }
}

fn coloured(tone: Tone, word: &str) -> String {
    format!("<font color=\"{}\"><b>{word}</b></font>", colour(tone))
}

fn status_tone(s: GroupStatus) -> Tone {
    match s {
        GroupStatus::Firing => Tone::Bad,
        GroupStatus::Resolved => Tone::Good,
    }
}

fn link(url: &str, label: &str) -> Option<String> {
    is_http(url).then(|| format!("<a href=\"{}\">{}</a>", escape(url), escape(label)))
}

fn paragraph(text: String) -> Value {
    json!({"textParagraph": {"text": text}})
}

/// One alert: a section with one paragraph.
fn alert_section(a: &NotifiedAlert) -> Value {
    let mut t = format!(
        "{} · <b>{}</b>",
        coloured(status_tone(a.status), status_word(a.status)),
        escaped(&summary_line(a))
    );
    if let Some(r) = a.shown_annotation("reason") {
        let _ = write!(t, "<br><b>Reason:</b> {}", escaped(r));
    }
    if let Some(d) = a.shown_annotation("description") {
        let _ = write!(t, "<br>{}", escaped(d));
    }
    if !a.labels.is_empty() {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(t, "<br><b>Labels:</b> {}", escaped(&labels.join(", ")));
    }
    let (since, resolved) = a.shown_times();
    let _ = write!(t, "<br><b>Since:</b> {since}");
    if let Some(end) = resolved {
        let _ = write!(t, " · <b>Resolved:</b> {end}");
    }
    if let Some(l) = link(&a.generator_url, "Source") {
        let _ = write!(t, " · {l}");
    }
    json!({"widgets": [paragraph(t)]})
}

/// A verdict: its reason and details, then a row per check.
fn verdict_sections(v: &VerdictView<'_>) -> Vec<Value> {
    let mut lines = Vec::new();
    if let Some(r) = v.reason {
        lines.push(format!("<b>Reason:</b> {}", escaped(r)));
    }
    for (k, val) in &v.details {
        lines.push(match (*k, link(val, val)) {
            ("url", Some(l)) => format!("<b>Link:</b> {l}"),
            _ => format!("<b>{}:</b> {}", capitalised(k), escaped(val)),
        });
    }
    let mut out = Vec::new();
    if !lines.is_empty() {
        out.push(json!({"widgets": [paragraph(lines.join("<br>"))]}));
    }
    for c in &v.checks {
        let tone = match c.state {
            "fail" => Tone::Bad,
            "pass" => Tone::Good,
            _ => Tone::Warning,
        };
        out.push(json!({"widgets": [{"decoratedText": {
            "topLabel": truncate_chars(c.name, MAX_TITLE),
            "text": format!("{} · {}", coloured(tone, &c.state.to_ascii_uppercase()), escaped(c.detail)),
            "wrapText": true,
        }}]}));
    }
    out
}

/// The `cardsV2` card of a notification, at most [`MAX_CARD_BYTES`] of JSON.
pub fn card(n: &Notification) -> Value {
    let verdict = n.verdict();
    let subtitle = match &verdict {
        Some(_) => "postflight · deployment verdict".to_string(),
        None => format!(
            "postflight · {} firing, {} resolved",
            n.firing_count(),
            n.resolved_count()
        ),
    };
    let mut sections: Vec<Value> = Vec::new();
    if n.test {
        sections.push(json!({"widgets": [paragraph(
            "🧪 <b>This is a test notification from postflight.</b> No action is needed.".into()
        )]}));
    }
    let mut buttons = Vec::new();
    if let Some(v) = &verdict
        && is_http(v.link)
    {
        buttons.push(json!({"text": "Deployment", "onClick": {"openLink": {"url": v.link}}}));
    }
    if is_http(&n.external_url) {
        buttons.push(
            json!({"text": "Open postflight", "onClick": {"openLink": {"url": n.external_url}}}),
        );
    }
    let footer =
        (!buttons.is_empty()).then(|| json!({"widgets": [{"buttonList": {"buttons": buttons}}]}));
    let mut card = json!({
        "cardId": "postflight",
        "card": {
            "header": {"title": truncate_chars(&n.headline(), MAX_TITLE), "subtitle": subtitle},
            "sections": [],
        },
    });
    let parts: Vec<Value> = match &verdict {
        Some(v) => verdict_sections(v),
        None => n.ordered().into_iter().map(alert_section).collect(),
    };
    let noun = if verdict.is_some() { "check" } else { "alert" };
    let more = |hidden: usize| json!({"widgets": [paragraph(format!("…and {hidden} more {noun}{}", plural(hidden)))]});
    let used = json_size(&card)
        + sections.iter().map(|s| json_size(s) + 1).sum::<usize>()
        + footer.as_ref().map_or(0, |f| json_size(f) + 1);
    push_fitting(&mut sections, parts, used, MAX_CARD_BYTES, more);
    sections.extend(footer);
    card["card"]["sections"] = Value::Array(sections);
    card
}

/// The webhook body.
pub fn message(n: &Notification) -> Value {
    json!({
        "text": truncate_chars(&n.headline(), MAX_TITLE),
        "cardsV2": [card(n)],
    })
}

/// One attempt.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &GooglechatConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    super::http::post_value(clients, receiver, c.url.expose(), &message(n)).await
}

#[cfg(test)]
mod tests;
