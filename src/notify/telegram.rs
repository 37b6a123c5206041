//! Telegram: the Bot API's `sendMessage` to one chat, in HTML mode. A firing group starts with a
//! red marker and "FIRING", a resolved one with a green marker and "RESOLVED"; a deployment's
//! verdict is titled with its outcome and lists its checks in a monospace table.
//!
//! Telegram refuses a text over [`MAX_TEXT`] characters and HTML it cannot parse, so the message
//! is cut here: whole alerts while they fit, then "…and N more alerts"; a part too long on its
//! own is cut inside, closing every tag it opened. The limit is counted on the HTML itself in
//! UTF-16 code units (what Telegram counts), which is never less than the text Telegram sees.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{
    Clients, Delivered, Notification, NotifiedAlert, NotifyError, Tone, VerdictView, capitalised,
    escape_with, is_http, markup_entity, plural, status_word, summary_line, truncate_chars,
};
use crate::config::{ChatId, ReceiverConfig, TelegramConfig};

/// Telegram's limit on a message's text.
pub const MAX_TEXT: usize = 4096;
/// Characters of the title kept before escaping: the title alone can never fill the message.
const MAX_TITLE: usize = 256;
/// The width of the name column of a verdict's table of checks.
const MAX_CHECK_NAME: usize = 24;

/// Escapes the three characters Telegram's HTML mode reads as markup.
pub fn escape(s: &str) -> String {
    escape_with(s, markup_entity)
}

/// Escapes a value for an attribute in double quotes.
fn attribute(s: &str) -> String {
    escape_with(s, |c| match c {
        '"' => Some("&quot;"),
        c => markup_entity(c),
    })
}

/// A link, or nothing for a URL that is empty or not http(s).
fn link(url: &str, label: &str) -> Option<String> {
    is_http(url).then(|| format!("<a href=\"{}\">{}</a>", attribute(url), escape(label)))
}

fn mark(tone: Tone) -> &'static str {
    match tone {
        Tone::Bad => "🔴",
        Tone::Warning => "🟠",
        Tone::Good => "✅",
    }
}

/// What Telegram counts: UTF-16 code units.
fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// One alert: status and summary, reason, description, labels, times and source.
fn alert_block(a: &NotifiedAlert) -> String {
    let tone = match a.status {
        super::GroupStatus::Firing => Tone::Bad,
        super::GroupStatus::Resolved => Tone::Good,
    };
    let mut t = format!(
        "{} <b>{}</b> · {}",
        mark(tone),
        status_word(a.status),
        escape(&summary_line(a))
    );
    if let Some(reason) = a.shown_annotation("reason") {
        let _ = write!(t, "\n<b>Reason:</b> {}", escape(reason));
    }
    if let Some(d) = a.shown_annotation("description") {
        let _ = write!(t, "\n{}", escape(d));
    }
    if !a.labels.is_empty() {
        let labels: Vec<String> = a
            .labels
            .iter()
            .map(|(k, v)| format!("<code>{}={}</code>", escape(k), escape(v)))
            .collect();
        let _ = write!(t, "\n<b>Labels:</b> {}", labels.join(" "));
    }
    let (since, resolved) = a.shown_times();
    let _ = write!(t, "\n<b>Since:</b> {since}");
    if let Some(end) = resolved {
        let _ = write!(t, " · <b>Resolved:</b> {end}");
    }
    if let Some(l) = link(&a.generator_url, "Source") {
        let _ = write!(t, " · {l}");
    }
    t
}

/// A verdict's parts: its reason, the table of checks, what the deployment was recorded with.
fn verdict_blocks(v: &VerdictView<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = v.reason {
        out.push(format!("<b>Reason:</b> {}", escape(r)));
    }
    if !v.checks.is_empty() {
        let width = v
            .checks
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(MAX_CHECK_NAME);
        let mut table = String::from("<pre>");
        for (i, c) in v.checks.iter().enumerate() {
            if i > 0 {
                table.push('\n');
            }
            let name = truncate_chars(c.name, MAX_CHECK_NAME);
            let pad = width.saturating_sub(name.chars().count());
            let _ = write!(
                table,
                "{}{:pad$}  {:<6}  {}",
                escape(&name),
                "",
                c.state,
                escape(c.detail)
            );
        }
        table.push_str("</pre>");
        out.push(table);
    }
    let mut details: Vec<String> = v
        .details
        .iter()
        .map(|(k, val)| match (*k, link(val, val)) {
            ("url", Some(l)) => format!("<b>Link:</b> {l}"),
            _ => format!("<b>{}:</b> {}", capitalised(k), escape(val)),
        })
        .collect();
    details.extend(link(v.link, "Deployment"));
    if !details.is_empty() {
        out.push(details.join("\n"));
    }
    out
}

/// The message's HTML text, at most [`MAX_TEXT`] UTF-16 code units, every tag closed.
pub fn text(n: &Notification) -> String {
    let verdict = n.verdict();
    let mut head = format!(
        "{} <b>{}</b>",
        mark(n.tone()),
        escape(&truncate_chars(&n.headline(), MAX_TITLE))
    );
    if n.test {
        head.push_str("\n<i>This is a test notification from postflight. No action is needed.</i>");
    }
    let (blocks, noun) = match &verdict {
        Some(v) => (verdict_blocks(v), "part"),
        None => (n.ordered().into_iter().map(alert_block).collect(), "alert"),
    };
    let footer = link(&n.external_url, "Open postflight")
        .map(|l| format!("\n\n{l}"))
        .unwrap_or_default();
    fit(head, blocks, noun, &footer)
}

/// `head`, then as many whole blocks as fit with `footer` in [`MAX_TEXT`] and a line saying
/// how many were left out; the first block is cut inside rather than left out.
fn fit(head: String, blocks: Vec<String>, noun: &str, footer: &str) -> String {
    let mut out = head;
    let more = |hidden: usize| format!("\n\n…and {hidden} more {noun}{}", plural(hidden));
    let total = blocks.len();
    for (i, block) in blocks.into_iter().enumerate() {
        let piece = format!("\n\n{block}");
        let left_after = total - i - 1;
        let reserve = units(footer)
            + if left_after > 0 {
                units(&more(total))
            } else {
                0
            };
        let room = MAX_TEXT.saturating_sub(units(&out) + reserve);
        if units(&piece) <= room {
            out.push_str(&piece);
            continue;
        }
        let hidden = if i == 0 {
            // Nothing shown yet: show the start of this one rather than nothing.
            let room = MAX_TEXT.saturating_sub(units(&out) + units(footer) + units(&more(total)));
            out.push_str(&cut_html(&piece, room));
            left_after
        } else {
            total - i
        };
        if hidden > 0 {
            out.push_str(&more(hidden));
        }
        break;
    }
    out.push_str(footer);
    out
}

/// Cuts HTML this module wrote (balanced tags, every `&` an entity) to at most `max` UTF-16
/// code units, ending with "…" and closing every tag still open, so it still parses.
pub fn cut_html(html: &str, max: usize) -> String {
    if units(html) <= max {
        return html.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    // Names of the open tags and the units their closing tags take.
    let mut open: Vec<&str> = Vec::new();
    let closing = |open: &[&str]| open.iter().map(|t| t.len() + 3).sum::<usize>();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        let len = match c {
            '<' => rest.find('>').map_or(rest.len(), |i| i + 1),
            // Our entities are short; `;` is ASCII, so its index is a char boundary.
            '&' => rest
                .bytes()
                .take(8)
                .position(|b| b == b';')
                .map_or(1, |i| i + 1),
            c => c.len_utf8(),
        };
        let token = &rest[..len];
        let (closes, name) = match token.strip_prefix('<') {
            Some(t) => {
                let t = t.trim_end_matches('>');
                let closes = t.starts_with('/');
                let name = t
                    .trim_start_matches('/')
                    .split([' ', '>'])
                    .next()
                    .unwrap_or("");
                (Some(closes), name)
            }
            None => (None, ""),
        };
        let closing_after = match closes {
            Some(false) => closing(&open) + name.len() + 3,
            Some(true) => closing(&open).saturating_sub(name.len() + 3),
            None => closing(&open),
        };
        // One unit for the "…".
        if used + units(token) + closing_after + 1 > max {
            break;
        }
        out.push_str(token);
        used += units(token);
        match closes {
            Some(false) => open.push(name),
            Some(true) => {
                open.pop();
            }
            None => {}
        }
        rest = &rest[len..];
    }
    out.push('…');
    for name in open.iter().rev() {
        let _ = write!(out, "</{name}>");
    }
    out
}

/// The `sendMessage` body.
pub fn body(chat: &ChatId, n: &Notification) -> Value {
    let chat_id = match chat {
        ChatId::Id(id) => json!(id),
        ChatId::Username(name) => json!(name),
    };
    json!({
        "chat_id": chat_id,
        "text": text(n),
        "parse_mode": "HTML",
        // Links to postflight would otherwise grow a preview card under every alert. Both
        // spellings: `link_preview_options` since Bot API 7.0, the older one for self-hosted
        // Bot API servers from before it (Telegram ignores fields it does not know).
        "link_preview_options": {"is_disabled": true},
        "disable_web_page_preview": true,
    })
}

/// One attempt: `POST {url}/bot{token}/sendMessage`. The token is in the path, so the URL is
/// never shown: errors name the receiver only.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &TelegramConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    let url = format!(
        "{}/bot{}/sendMessage",
        c.url.trim_end_matches('/'),
        c.bot_token.expose()
    );
    super::http::post_value(clients, receiver, &url, &body(&c.chat_id, n)).await
}

#[cfg(test)]
mod tests;
