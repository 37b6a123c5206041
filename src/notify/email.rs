//! Email over SMTP (lettre): a multipart/alternative message with a plain-text and an HTML part,
//! subject `[FIRING:N] alertname job` or `[RESOLVED] alertname job`.
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
    Clients, Delivered, GroupStatus, Notification, NotifiedAlert, NotifyError, USER_AGENT,
    escape_with, is_http, markup_entity, summary_line,
};
use crate::config::{EmailConfig, ReceiverConfig, SmtpTls};

/// Alerts listed in one email; the rest are counted.
const MAX_LISTED: usize = 200;

/// The subject line.
pub fn subject(n: &Notification) -> String {
    n.title()
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
