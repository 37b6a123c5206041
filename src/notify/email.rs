//! Email over SMTP (lettre): a multipart/alternative message with a plain-text and an HTML part,
//! subject `[FIRING:N] alertname job` or `[RESOLVED] alertname job`; a deployment's verdict is
//! titled `Deployment api v2.0.1: FAIL` and shows the table of its checks.
//!
//! Transport security follows `tls`: `none` (plain, for loopback relays), `starttls` (the upgrade
//! is *required*: a server that does not offer it fails the attempt instead of receiving the
//! password in clear) and `tls` (implicit TLS, port 465). Certificates are checked with the
//! platform verifier plus [`Clients::extra_roots`]. One connection per attempt: notifications
//! are rare, and a fresh connection never inherits a half-broken session.
//!
//! Every label and annotation value is HTML-escaped in the HTML part: they come from scraped
//! targets and rule templates, and must not be able to inject markup into a mail client.

use std::fmt::Write as _;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{
    Clients, Delivered, GroupStatus, Notification, NotifiedAlert, NotifyError, Tone, USER_AGENT,
    capitalised, escape_with, is_http, markup_entity, summary_line, verdict_table,
};
use crate::config::{EmailConfig, ReceiverConfig, SmtpTls};

/// Alerts listed in one email; the rest are counted.
const MAX_LISTED: usize = 200;

/// The subject line: [`Notification::headline`] (a verdict's `Deployment api v2.0.1: FAIL`,
/// a deployment notice's summary, else the title).
pub fn subject(n: &Notification) -> String {
    n.headline()
}

/// The text part of a verdict or a deployment notice: the reason, the table of checks with the
/// reason of each that did not pass, what it was recorded with, the link.
fn deployment_text(n: &Notification) -> String {
    let mut t = subject(n);
    t.push_str("\n\n");
    match n.verdict() {
        Some(v) => {
            if let Some(r) = v.reason {
                let _ = writeln!(t, "Reason: {r}\n");
            }
            if !v.checks.is_empty() {
                let _ = writeln!(t, "{}\n", verdict_table(&v));
            }
            if let Some(x) = n
                .alerts
                .first()
                .and_then(|a| a.shown_annotation("log_excerpt"))
            {
                let _ = writeln!(t, "Log lines:\n{x}\n");
            }
            for (k, val) in &v.details {
                let _ = writeln!(t, "{}: {val}", capitalised(k));
            }
            if is_http(v.link) {
                let _ = writeln!(t, "Deployment: {}", v.link);
            }
        }
        None => {
            let a = &n.alerts[0];
            for k in ["commit", "author", "url", "watch", "baseline"] {
                if let Some(val) = a.shown_annotation(k) {
                    let _ = writeln!(t, "{}: {val}", capitalised(k));
                }
            }
            if is_http(&a.generator_url) {
                let _ = writeln!(t, "Deployment: {}", a.generator_url);
            }
        }
    }
    t
}

/// The HTML part of a verdict or a deployment notice: as [`deployment_text`], the checks as a
/// table (check, state, value, bound, baseline, reason).
fn deployment_html(n: &Notification) -> String {
    let colour = match n.tone() {
        Tone::Bad => "#d00000",
        Tone::Warning => "#b26a00",
        Tone::Good => "#2e8b57",
    };
    let mut h = String::from("<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"></head>\n");
    h.push_str("<body style=\"font-family: sans-serif; font-size: 14px;\">\n");
    let _ = writeln!(
        h,
        "<h2 style=\"color: {colour};\">{}</h2>",
        html_escape(&subject(n))
    );
    let (details, link) = match n.verdict() {
        Some(v) => {
            if let Some(r) = v.reason {
                let _ = writeln!(h, "<p><b>Reason:</b> {}</p>", html_escape(r));
            }
            if !v.checks.is_empty() {
                h.push_str("<table style=\"border-collapse: collapse;\" cellpadding=\"4\">\n<tr>");
                for c in ["Check", "State", "Value", "Bound", "Baseline", "Reason"] {
                    let _ = write!(h, "<th align=\"left\">{c}</th>");
                }
                h.push_str("</tr>\n");
                for c in &v.checks {
                    let col = c.columns();
                    let state_colour = match c.state {
                        "fail" => "#d00000",
                        "pass" => "#2e8b57",
                        _ => "#b26a00",
                    };
                    let _ = writeln!(
                        h,
                        "<tr><td>{}</td><td style=\"color: {state_colour};\"><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        html_escape(c.name),
                        html_escape(&c.state.to_ascii_uppercase()),
                        html_escape(col.value),
                        html_escape(col.bound),
                        html_escape(col.baseline),
                        html_escape(col.reason),
                    );
                }
                h.push_str("</table>\n");
            }
            if let Some(x) = n
                .alerts
                .first()
                .and_then(|a| a.shown_annotation("log_excerpt"))
            {
                let _ = writeln!(h, "<p><b>Log lines:</b></p><pre>{}</pre>", html_escape(x));
            }
            let details: Vec<(String, String)> = v
                .details
                .iter()
                .map(|(k, val)| (capitalised(k), val.to_string()))
                .collect();
            (details, v.link.to_string())
        }
        None => {
            let a = &n.alerts[0];
            let details = ["commit", "author", "url", "watch", "baseline"]
                .into_iter()
                .filter_map(|k| {
                    a.shown_annotation(k)
                        .map(|v| (capitalised(k), v.to_string()))
                })
                .collect();
            (details, a.generator_url.clone())
        }
    };
    if !details.is_empty() {
        h.push_str("<p>");
        for (k, v) in &details {
            let _ = writeln!(h, "{k}: {}<br>", html_escape(v));
        }
        h.push_str("</p>\n");
    }
    if is_http(&link) {
        let _ = writeln!(
            h,
            "<p><a href=\"{}\">Deployment</a></p>",
            html_escape(&link)
        );
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// Whether `n` is about a deployment (a verdict, or the notice that one started).
fn is_deployment(n: &Notification) -> bool {
    n.verdict().is_some() || n.deployment_started().is_some()
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    escape_with(s, |c| match c {
        '"' => Some("&quot;"),
        '\'' => Some("&#39;"),
        c => markup_entity(c),
    })
}

const TEST_NOTE: &str = "This is a test notification from postflight. No action is needed.";

/// The alerts of one status in an email.
struct Section<'a> {
    status: GroupStatus,
    /// How many alerts have that status, for the heading.
    total: usize,
    /// Those listed.
    alerts: Vec<&'a NotifiedAlert>,
}

/// The alerts an email lists, firing first, [`MAX_LISTED`] in all; and how many were left out.
/// Both parts list the same alerts.
fn sections(n: &Notification) -> (Vec<Section<'_>>, usize) {
    let mut room = MAX_LISTED;
    let mut out = Vec::with_capacity(2);
    for (status, alerts) in [
        (GroupStatus::Firing, n.firing().collect::<Vec<_>>()),
        (GroupStatus::Resolved, n.resolved().collect()),
    ] {
        if alerts.is_empty() {
            continue;
        }
        let total = alerts.len();
        let listed: Vec<&NotifiedAlert> = alerts.into_iter().take(room).collect();
        room -= listed.len();
        out.push(Section {
            status,
            total,
            alerts: listed,
        });
    }
    (out, n.alerts.len().saturating_sub(MAX_LISTED - room))
}

/// "Since: <start>", then ", resolved: <end>" once resolved, in both parts.
fn since(a: &NotifiedAlert) -> String {
    match a.shown_times() {
        (start, Some(end)) => format!("Since: {start}, resolved: {end}"),
        (start, None) => format!("Since: {start}"),
    }
}

impl Section<'_> {
    fn heading(&self) -> String {
        match self.status {
            GroupStatus::Firing => format!("Firing ({})", self.total),
            GroupStatus::Resolved => format!("Resolved ({})", self.total),
        }
    }
}

/// The plain-text part.
pub fn text_body(n: &Notification) -> String {
    if is_deployment(n) {
        return deployment_text(n);
    }
    let mut t = subject(n);
    t.push_str("\n\n");
    if n.test {
        t.push_str(TEST_NOTE);
        t.push_str("\n\n");
    }
    let (sections, more) = sections(n);
    for section in sections {
        let _ = writeln!(t, "{}:\n", section.heading());
        for a in section.alerts {
            let _ = writeln!(t, "- {}", summary_line(a));
            if let Some(r) = a.shown_annotation("reason") {
                let _ = writeln!(t, "  Reason: {r}");
            }
            if let Some(d) = a.shown_annotation("description") {
                let _ = writeln!(t, "  {d}");
            }
            if let Some(x) = a.shown_annotation("log_excerpt") {
                let _ = writeln!(t, "  Log lines:");
                for l in x.lines() {
                    let _ = writeln!(t, "    {l}");
                }
            }
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(t, "  Labels: {}", labels.join(", "));
            let _ = writeln!(t, "  {}", since(a));
            if is_http(&a.generator_url) {
                let _ = writeln!(t, "  Source: {}", a.generator_url);
            }
            t.push('\n');
        }
    }
    if more > 0 {
        let _ = writeln!(t, "...and {more} more\n");
    }
    if is_http(&n.external_url) {
        let _ = writeln!(t, "postflight: {}", n.external_url);
    }
    t
}

/// The HTML part. Every value from an alert goes through [`html_escape`].
pub fn html_body(n: &Notification) -> String {
    if is_deployment(n) {
        return deployment_html(n);
    }
    let colour = |s: GroupStatus| match s {
        GroupStatus::Firing => "#d00000",
        GroupStatus::Resolved => "#2e8b57",
    };
    let mut h = String::from("<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"></head>\n");
    h.push_str("<body style=\"font-family: sans-serif; font-size: 14px;\">\n");
    let _ = writeln!(
        h,
        "<h2 style=\"color: {};\">{}</h2>",
        colour(n.status),
        html_escape(&subject(n))
    );
    if n.test {
        let _ = writeln!(
            h,
            "<p style=\"background: #fff3cd; padding: 8px;\"><b>{TEST_NOTE}</b></p>"
        );
    }
    let (sections, more) = sections(n);
    for section in sections {
        let _ = writeln!(
            h,
            "<h3 style=\"color: {};\">{}</h3>",
            colour(section.status),
            section.heading()
        );
        for a in section.alerts {
            let _ = writeln!(
                h,
                "<div style=\"border-left: 4px solid {}; padding-left: 8px; margin-bottom: 12px;\">",
                colour(section.status)
            );
            let _ = writeln!(h, "<b>{}</b><br>", html_escape(&summary_line(a)));
            if let Some(r) = a.shown_annotation("reason") {
                let _ = writeln!(h, "Reason: {}<br>", html_escape(r));
            }
            if let Some(d) = a.shown_annotation("description") {
                let _ = writeln!(h, "{}<br>", html_escape(d));
            }
            if let Some(x) = a.shown_annotation("log_excerpt") {
                let _ = writeln!(h, "Log lines:<pre>{}</pre>", html_escape(x));
            }
            h.push_str("Labels:");
            for (k, v) in &a.labels {
                let _ = write!(h, "\n<code>{}={}</code>", html_escape(k), html_escape(v));
            }
            h.push_str("<br>\n");
            h.push_str(&since(a));
            if is_http(&a.generator_url) {
                let _ = write!(
                    h,
                    "\n<br><a href=\"{}\">Source</a>",
                    html_escape(&a.generator_url)
                );
            }
            h.push_str("\n</div>\n");
        }
    }
    if more > 0 {
        let _ = writeln!(h, "<p>...and {more} more</p>");
    }
    if is_http(&n.external_url) {
        let _ = writeln!(
            h,
            "<p><a href=\"{}\">Open postflight</a></p>",
            html_escape(&n.external_url)
        );
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// The whole message.
pub fn message(
    receiver: &ReceiverConfig,
    c: &EmailConfig,
    n: &Notification,
) -> Result<Message, NotifyError> {
    let name = &receiver.name;
    let from: Mailbox = c.from.parse().map_err(|e| {
        NotifyError::permanent(format!(
            "receiver {name}: invalid from address {:?}: {e}",
            c.from
        ))
    })?;
    let mut b = Message::builder()
        .from(from)
        .subject(subject(n))
        .user_agent(USER_AGENT.to_string());
    if c.to.is_empty() {
        return Err(NotifyError::permanent(format!(
            "receiver {name}: no recipients"
        )));
    }
    for to in &c.to {
        let mb: Mailbox = to.parse().map_err(|e| {
            NotifyError::permanent(format!("receiver {name}: invalid recipient {to:?}: {e}"))
        })?;
        b = b.to(mb);
    }
    b.multipart(MultiPart::alternative_plain_html(
        text_body(n),
        html_body(n),
    ))
    .map_err(|e| NotifyError::permanent(format!("receiver {name}: cannot build the message: {e}")))
}

/// Splits `host:port` (or `[v6]:port`, or a bare host with the port implied by `tls`).
pub fn split_host_port(smtp: &str, tls: SmtpTls) -> Result<(String, u16), String> {
    let default_port = match tls {
        SmtpTls::None => 25,
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
    };
    let (host, port) = if let Some(rest) = smtp.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid SMTP address {smtp:?}"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("invalid SMTP address {smtp:?}")),
        }
    } else {
        match smtp.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (smtp, None),
        }
    };
    if host.is_empty() {
        return Err(format!("invalid SMTP address {smtp:?}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid SMTP port in {smtp:?}"))?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

/// TLS parameters for `host`: the platform verifier plus the extra roots.
fn tls_parameters(
    clients: &Clients,
    host: &str,
) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    let mut b = TlsParameters::builder(host.to_string());
    for der in clients.extra_roots() {
        b = b.add_root_certificate(Certificate::from_der(der.to_vec())?);
    }
    b.build_rustls()
}

/// Classifies a failed SMTP attempt: 5xx replies and client-side refusals (STARTTLS required but
/// not offered, no common AUTH mechanism) are permanent; 4xx replies, timeouts, network and TLS
/// failures are retryable.
fn smtp_error(name: &str, e: &lettre::transport::smtp::Error) -> NotifyError {
    let message = format!("receiver {name}: SMTP {e}");
    if e.is_permanent() || e.is_client() {
        NotifyError::permanent(message)
    } else {
        NotifyError::retryable(message)
    }
}

/// One attempt.
pub(crate) async fn send(
    clients: &Clients,
    receiver: &ReceiverConfig,
    c: &EmailConfig,
    n: &Notification,
) -> Result<Delivered, NotifyError> {
    let name = &receiver.name;
    let msg = message(receiver, c, n)?;
    let (host, port) = split_host_port(&c.smtp, c.tls)
        .map_err(|e| NotifyError::permanent(format!("receiver {name}: {e}")))?;
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .timeout(Some(receiver.timeout));
    b = match c.tls {
        SmtpTls::None => b.tls(Tls::None),
        SmtpTls::Starttls | SmtpTls::Tls => {
            let params = tls_parameters(clients, &host).map_err(|e| {
                NotifyError::permanent(format!("receiver {name}: TLS setup failed: {e}"))
            })?;
            if c.tls == SmtpTls::Starttls {
                b.tls(Tls::Required(params))
            } else {
                b.tls(Tls::Wrapper(params))
            }
        }
    };
    if let Some(user) = &c.username {
        let password = c.password.as_ref().map(|p| p.expose()).unwrap_or_default();
        b = b
            .credentials(Credentials::new(user.clone(), password.to_string()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    let transport = b.build();
    let resp = transport
        .send(msg)
        .await
        .map_err(|e| smtp_error(name, &e))?;
    let code = u16::from(resp.code());
    let text: Vec<&str> = resp.message().collect();
    Ok(Delivered {
        status: Some(code),
        detail: format!("{code} {}", text.join(" ")).trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests;
