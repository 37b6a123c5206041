//! Discord webhooks: one embed whose colour says the state at a glance (red firing or failed,
//! amber inconclusive, green resolved or passed). An alert group lists its alerts in the
//! description; a deployment's verdict has a field per check.
//!
//! Discord refuses an embed over its limits instead of cutting it, so the message is cut here:
//! [`MAX_TITLE`], [`MAX_DESCRIPTION`], [`MAX_FIELDS`] fields of [`MAX_FIELD_NAME`] and
//! [`MAX_FIELD_VALUE`] characters, and [`MAX_TOTAL`] characters across all of them, with an
//! "and N more" line saying what was left out. Mentions are disabled (`allowed_mentions`), so
//! an `@everyone` in a label pings nobody.

use std::fmt::Write as _;

use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::{
    Clients, Delivered, GroupStatus, Notification, NotifiedAlert, NotifyError, Tone, VerdictView,
    capitalised, char_len, fit_blocks, is_http, plural, status_word, summary_line, truncate_chars,
};
use crate::config::{DiscordConfig, ReceiverConfig};

/// Discord's limit on an embed's title.
pub const MAX_TITLE: usize = 256;
/// Discord's limit on an embed's description.
pub const MAX_DESCRIPTION: usize = 4096;
/// Discord's limit on an embed's fields.
pub const MAX_FIELDS: usize = 25;
/// Discord's limit on a field's name.
pub const MAX_FIELD_NAME: usize = 256;
/// Discord's limit on a field's value.
pub const MAX_FIELD_VALUE: usize = 1024;
/// Discord's limit on the characters of all embeds of a message together (title, description,
/// field names and values, footer, author).
pub const MAX_TOTAL: usize = 6000;
/// The footer of every embed.
const FOOTER: &str = "postflight";

/// Red for firing and failed, amber for inconclusive, green for resolved and passed.
pub fn colour(tone: Tone) -> u32 {
    match tone {
        Tone::Bad => 0xD9_30_25,
        Tone::Warning => 0xF9_AB_00,
        Tone::Good => 0x1E_8E_3E,
    }
}

fn mark(status: GroupStatus) -> &'static str {
    match status {
        GroupStatus::Firing => "🔴",
        GroupStatus::Resolved => "✅",
    }
}

/// Backslash-escapes Discord's markdown characters (any punctuation may be escaped), so a
/// label cannot bold, link or quote.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '#' | '-' | '[' | ']' | '(' | ')'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Inline code; a backtick would end it, so it becomes a look-alike.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "ˋ"))
}

/// A masked link, or nothing for a URL that is not http(s) or would end the link early.
fn link(url: &str, label: &str) -> Option<String> {
    (is_http(url) && !url.contains(['(', ')', ' ', '<', '>']))
        .then(|| format!("[{}]({url})", escape(label)))
}

/// One alert of the description.
fn alert_block(a: &NotifiedAlert) -> String {
    let mut t = format!(
        "{} **{}** · {}",
        mark(a.status),
        status_word(a.status),
        escape(&summary_line(a))
    );
    if let Some(reason) = a.shown_annotation("reason") {
        let _ = write!(t, "\n**Reason:** {}", escape(reason));
    }
    if let Some(d) = a.shown_annotation("description") {
        let _ = write!(t, "\n{}", escape(d));
    }
    if !a.labels.is_empty() {
        let labels: Vec<String> = a
            .labels
            .iter()
            .map(|(k, v)| code(&format!("{k}={v}")))
            .collect();
        let _ = write!(t, "\n{}", labels.join(" "));
    }
    let (since, resolved) = a.shown_times();
    let _ = write!(t, "\nSince {since}");
    if let Some(end) = resolved {
        let _ = write!(t, " · Resolved {end}");
    }
    if let Some(l) = link(&a.generator_url, "Source") {
        let _ = write!(t, " · {l}");
    }
    t
}

/// `head` (may be empty), then as many blocks as fit in `max` characters.
fn description(head: String, blocks: &[String], max: usize) -> String {
    if head.is_empty() {
        return fit_blocks(blocks, max, "alert", char_len, truncate_chars);
    }
    let room = max.saturating_sub(char_len(&head) + 2);
    let rest = fit_blocks(blocks, room, "alert", char_len, truncate_chars);
    if rest.is_empty() {
        head
    } else {
        format!("{head}\n\n{rest}")
    }
}

/// The description and fields of a verdict: reason and details in the description, a field per
/// check while they fit in `budget` characters.
fn verdict_parts(v: &VerdictView<'_>, head: String, budget: usize) -> (String, Vec<Value>) {
    let mut lines = Vec::new();
    if let Some(r) = v.reason {
        lines.push(format!("**Reason:** {}", escape(r)));
    }
    for (k, val) in &v.details {
        lines.push(match (*k, link(val, val)) {
            ("url", Some(l)) => format!("**Link:** {l}"),
            _ => format!("**{}:** {}", capitalised(k), escape(val)),
        });
    }
    lines.extend(link(v.link, "Deployment"));
    let description = description(head, &[lines.join("\n")], MAX_DESCRIPTION);
    let mut left = budget.saturating_sub(description.chars().count());
    let more = |hidden: usize| json!({"name": "…", "value": format!("and {hidden} more check{}", plural(hidden))});
    let mut fields = Vec::new();
    for (i, c) in v.checks.iter().enumerate() {
        let hidden = v.checks.len() - i;
        let name = truncate_chars(c.name, MAX_FIELD_NAME);
        let name = if name.is_empty() {
            "check".into()
        } else {
            name
        };
        let value = truncate_chars(
            &format!(
                "**{}** · {}",
                c.state.to_ascii_uppercase(),
                escape(c.detail)
            ),
            MAX_FIELD_VALUE,
        );
        let cost = name.chars().count() + value.chars().count();
        // Room for this one and, if any follow, for the "more" field.
        let reserve = if hidden > 1 { 30 } else { 0 };
        if fields.len() + 1 + usize::from(hidden > 1) > MAX_FIELDS || cost + reserve > left {
            fields.push(more(hidden));
            break;
        }
        left -= cost;
        fields.push(json!({"name": name, "value": value, "inline": false}));
    }
    (description, fields)
}

/// The embed of a notification.
pub fn embed(n: &Notification) -> Value {
    let title = truncate_chars(&n.headline(), MAX_TITLE);
    let mut head = String::new();
    if n.test {
        head.push_str("🧪 **This is a test notification from postflight.** No action is needed.");
    }
    // Title and footer are counted first; the description and fields share the rest.
    let budget = MAX_TOTAL - title.chars().count() - FOOTER.len();
    let (description, fields) = match n.verdict() {
        Some(v) => verdict_parts(&v, head, budget),
        None => {
            let blocks: Vec<String> = n.ordered().into_iter().map(alert_block).collect();
            (
                description(head, &blocks, MAX_DESCRIPTION.min(budget)),
                Vec::new(),
            )
        }
    };
    let when = match n.status {
        GroupStatus::Firing => n.firing().map(|a| a.starts_at).min(),
        GroupStatus::Resolved => n.alerts.iter().filter_map(|a| a.ends_at).max(),
    };
    let mut e = json!({
        "title": title,
        "color": colour(n.tone()),
        "footer": {"text": FOOTER},
    });
    if !description.is_empty() {
        e["description"] = Value::String(description);
    }
    if !fields.is_empty() {
        e["fields"] = Value::Array(fields);
    }
    if is_http(&n.external_url) {
        e["url"] = Value::String(n.external_url.clone());
    }
    if let Some(t) = when {
        e["timestamp"] = Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    e
}

/// The webhook body.
pub fn message(n: &Notification) -> Value {
    json!({
        "embeds": [embed(n)],
        "allowed_mentions": {"parse": []},
    })
}

/// The characters Discord counts towards [`MAX_TOTAL`] in a message's embeds.
pub fn counted_chars(msg: &Value) -> usize {
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    msg["embeds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            len(&e["title"])
                + len(&e["description"])
                + len(&e["footer"]["text"])
                + len(&e["author"]["name"])
                + e["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| len(&f["name"]) + len(&f["value"]))
                    .sum::<usize>()
        })
        .sum()
}

/// One attempt. Discord answers 204 without `?wait=true`.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &DiscordConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    super::http::post_value(clients, receiver, c.url.expose(), &message(n)).await
}

#[cfg(test)]
mod tests;
