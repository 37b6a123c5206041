use super::*;
use crate::notify::GroupStatus;
use crate::notify::tests::{alert, sample, verdict_sample};

/// Checks `html` as Telegram's parser would: only its tags, each closed in order, entities
/// known; returns the text Telegram would count.
fn parse(html: &str) -> Result<String, String> {
    let mut open: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').ok_or("unclosed <")?;
                let tag = &rest[1..end];
                if let Some(name) = tag.strip_prefix('/') {
                    if open.pop().as_deref() != Some(name) {
                        return Err(format!("</{name}> closes nothing open"));
                    }
                } else {
                    let name = tag.split(' ').next().unwrap_or("");
                    if !["b", "i", "code", "pre", "a"].contains(&name) {
                        return Err(format!("unsupported tag <{name}>"));
                    }
                    open.push(name.to_string());
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest.find(';').ok_or("bare &")?;
                text.push(match &rest[..=end] {
                    "&amp;" => '&',
                    "&lt;" => '<',
                    "&gt;" => '>',
                    "&quot;" => '"',
                    e => return Err(format!("unknown entity {e}")),
                });
                rest = &rest[end + 1..];
            }
            '>' => return Err("bare >".into()),
            c => {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if let Some(t) = open.pop() {
        return Err(format!("<{t}> never closed"));
    }
    Ok(text)
}

#[test]
fn firing_resolved_and_verdicts_look_different() {
    let mut n = sample();
    let firing = text(&n);
    assert!(
        firing.starts_with("🔴 <b>[FIRING:1] HighErrorRate api</b>"),
        "{firing}"
    );
    assert!(firing.contains("🔴 <b>FIRING</b> · error rate 5% on &lt;api&gt;"));
    assert!(firing.contains("<b>Reason:</b> status 503, expected 200"));
    assert!(firing.contains("<code>job=api</code>"));
    assert!(
        firing
            .contains("<a href=\"http://monitor.example.com:7980/rules/HighErrorRate\">Source</a>")
    );
    assert!(firing.ends_with("<a href=\"http://monitor.example.com:7980\">Open postflight</a>"));
    parse(&firing).unwrap();

    n.status = GroupStatus::Resolved;
    n.alerts.retain(|a| a.status == GroupStatus::Resolved);
    let resolved = text(&n);
    assert!(resolved.starts_with("✅ <b>[RESOLVED] HighErrorRate api</b>"));
    assert!(!resolved.contains("FIRING"));

    let fail = text(&verdict_sample("fail"));
    assert!(
        fail.starts_with("🔴 <b>Deployment api v2.0.1: FAIL</b>"),
        "{fail}"
    );
    assert!(
        fail.contains("<pre>error-rate   fail    value 0.02, bound &lt;= 0.005"),
        "{fail}"
    );
    assert!(fail.contains("\np99-latency  pass    value 0.21"), "{fail}");
    assert!(fail.contains("<b>Commit:</b> abc123"));
    assert!(!fail.contains("RESOLVED") && !fail.contains("FIRING"));
    parse(&fail).unwrap();
    let pass = text(&verdict_sample("pass"));
    assert!(pass.starts_with("✅ <b>Deployment api v2.0.1: PASS</b>"));
    assert!(!pass.contains("RESOLVED"));
    let inconclusive = text(&verdict_sample("inconclusive"));
    assert!(inconclusive.starts_with("🟠 <b>Deployment api v2.0.1: INCONCLUSIVE</b>"));
}

#[test]
fn a_huge_annotation_is_cut_and_the_html_still_parses() {
    let mut n = sample();
    n.alerts[0]
        .annotations
        .insert("description".into(), "<&>é😀".repeat(5000));
    let t = text(&n);
    let visible = parse(&t).unwrap();
    assert!(units(&t) <= MAX_TEXT, "{}", units(&t));
    assert!(units(&visible) <= MAX_TEXT);
    assert!(t.contains("…and 1 more alert"), "the resolved one left out");
    assert!(t.ends_with("Open postflight</a>"));
}

#[test]
fn many_alerts_are_cut_between_alerts() {
    let mut n = sample();
    n.alerts = (0..200)
        .map(|i| alert(&format!("10.0.0.{i}:80"), GroupStatus::Firing))
        .collect();
    let t = text(&n);
    parse(&t).unwrap();
    assert!(units(&t) <= MAX_TEXT);
    let shown = t.matches("<b>FIRING</b>").count();
    assert!(shown > 5, "{shown}");
    assert!(
        t.contains(&format!("…and {} more alerts", 200 - shown)),
        "{t}"
    );
}

#[test]
fn cut_html_closes_what_it_opened() {
    let html = "<b>bold <code>a&amp;b</code> <a href=\"http://x\">link text</a></b>";
    for max in 0..units(html) {
        let cut = cut_html(html, max);
        assert!(units(&cut) <= max.max(1), "{max}: {cut}");
        parse(&cut).unwrap_or_else(|e| panic!("{max}: {cut}: {e}"));
        assert!(!cut.contains("&amp") || cut.contains("&amp;"), "{cut}");
    }
    assert_eq!(cut_html(html, 1000), html);
}

#[test]
fn body_has_the_send_message_fields() {
    let b = body(&ChatId::Id(-100123), &sample());
    assert_eq!(b["chat_id"], -100123);
    assert_eq!(b["parse_mode"], "HTML");
    assert_eq!(b["link_preview_options"]["is_disabled"], true);
    let b = body(&ChatId::Username("@alerts".into()), &sample());
    assert_eq!(b["chat_id"], "@alerts");
}

#[test]
fn test_message_is_marked() {
    let t = text(&Notification::test_notification("tg", ""));
    assert!(t.contains("[TEST]") && t.contains("test notification"));
    parse(&t).unwrap();
}
