use super::*;
use crate::notify::tests::sample;

#[test]
fn subjects() {
    let mut n = sample();
    assert_eq!(subject(&n), "[FIRING:1] HighErrorRate api");
    n.status = GroupStatus::Resolved;
    assert_eq!(subject(&n), "[RESOLVED] HighErrorRate api");
    n.group_labels.clear();
    n.common_labels.clear();
    assert_eq!(subject(&n), "[RESOLVED]");
    n.common_labels
        .insert("alertname".into(), "ProbeFailed".into());
    assert_eq!(subject(&n), "[RESOLVED] ProbeFailed");
    n.common_labels.clear();
    n.common_labels.insert("job".into(), "db".into());
    assert_eq!(subject(&n), "[RESOLVED] db");
    let t = Notification::test_notification("dba", "");
    assert_eq!(subject(&t), "[TEST] [FIRING:1] PostflightTest");
}

#[test]
fn html_escapes_every_value() {
    let mut n = sample();
    n.alerts[0]
        .labels
        .insert("path".into(), "<script>alert('x')</script>".into());
    n.alerts[0]
        .annotations
        .insert("reason".into(), "a & b \"quoted\"".into());
    n.alerts[0].generator_url = "http://x/?a=1&b=\"><script>".into();
    let h = html_body(&n);
    assert!(!h.contains("<script>"), "{h}");
    assert!(
        h.contains("<code>path=&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</code>"),
        "{h}"
    );
    assert!(h.contains("Reason: a &amp; b &quot;quoted&quot;"));
    assert!(h.contains("<b>error rate 5% on &lt;api&gt;</b>"));
    assert!(h.contains("href=\"http://x/?a=1&amp;b=&quot;&gt;&lt;script&gt;\""));
    // The text part keeps values as they are.
    assert!(text_body(&n).contains("path=<script>alert('x')</script>"));
}

#[test]
fn non_http_links_are_not_links() {
    let mut n = sample();
    n.alerts[0].generator_url = "javascript:alert(1)".into();
    n.external_url = "javascript:alert(2)".into();
    let h = html_body(&n);
    assert!(!h.contains("javascript:"));
}

#[test]
fn text_body_lists_firing_then_resolved() {
    let t = text_body(&sample());
    let firing = t.find("Firing (1):").unwrap();
    let resolved = t.find("Resolved (1):").unwrap();
    assert!(firing < resolved);
    assert!(t.contains("- error rate 5% on <api>\n  Reason: status 503, expected 200\n"));
    assert!(t.contains("postflight: http://monitor.example.com:7980"));
}

#[test]
fn both_parts_list_at_most_max_listed_and_count_the_rest() {
    let mut n = sample();
    let firing = n.alerts[0].clone();
    n.alerts.extend(std::iter::repeat_n(firing, MAX_LISTED + 2));
    // 203 firing and 1 resolved: 200 listed, the resolved one among the 4 left out.
    let t = text_body(&n);
    assert!(
        t.contains("Firing (203):") && t.contains("Resolved (1):"),
        "{t}"
    );
    assert_eq!(t.matches("\n- ").count(), MAX_LISTED);
    assert!(t.contains("...and 4 more\n"), "{t}");
    let h = html_body(&n);
    assert_eq!(h.matches("<b>error rate").count(), MAX_LISTED);
    assert!(h.contains("<p>...and 4 more</p>"), "{h}");
    assert!(!h.contains("error rate back to normal"), "{h}");
}

#[test]
fn both_parts_say_when_an_alert_started_and_resolved() {
    let n = sample();
    let t = text_body(&n);
    assert!(t.contains("  Since: 2024-05-01 12:00:00 UTC\n"), "{t}");
    let resolved = "Since: 2024-05-01 12:00:00 UTC, resolved: 2024-05-01 12:10:00 UTC";
    assert!(t.contains(&format!("  {resolved}\n")), "{t}");
    assert!(html_body(&n).contains(resolved));
}

#[test]
fn test_message_is_marked() {
    let n = Notification::test_notification("dba", "");
    assert!(text_body(&n).contains(TEST_NOTE));
    assert!(html_body(&n).contains(TEST_NOTE));
}

#[test]
fn host_port() {
    // A port given is kept; without one, the default of the transport security.
    for (addr, tls, host, port) in [
        (
            "smtp.example.com:587",
            SmtpTls::Starttls,
            "smtp.example.com",
            587,
        ),
        ("smtp.example.com", SmtpTls::Tls, "smtp.example.com", 465),
        ("localhost", SmtpTls::None, "localhost", 25),
        ("[::1]:2525", SmtpTls::None, "::1", 2525),
    ] {
        assert_eq!(
            split_host_port(addr, tls),
            Ok((host.into(), port)),
            "{addr}"
        );
    }
    assert!(split_host_port("host:port", SmtpTls::None).is_err());
    assert!(split_host_port(":25", SmtpTls::None).is_err());
}

#[test]
fn a_verdict_reads_as_a_verdict_with_its_table_of_checks() {
    let n = crate::notify::tests::verdict_sample("pass");
    assert_eq!(subject(&n), "Deployment api v2.0.1: PASS");
    let n = crate::notify::tests::verdict_sample("fail");
    assert_eq!(subject(&n), "Deployment api v2.0.1: FAIL");
    let t = text_body(&n);
    assert!(!t.contains("RESOLVED") && !t.contains("FIRING"), "{t}");
    assert!(
        t.contains("Reason: check error-rate failed 3 evaluations in a row"),
        "{t}"
    );
    assert!(
        t.contains("error-rate   FAIL   0.02   <= 0.005  0.001\n"),
        "{t}"
    );
    assert!(
        t.contains("error-rate fail: above the bound (0 pass, 3 fail, 0 no data)"),
        "{t}"
    );
    assert!(t.contains("Commit: abc123"), "{t}");
    let h = html_body(&n);
    assert!(!h.contains("RESOLVED") && !h.contains("FIRING"), "{h}");
    assert!(h.contains("<th align=\"left\">Baseline</th>"), "{h}");
    assert!(
        h.contains("<td>error-rate</td><td style=\"color: #d00000;\"><b>FAIL</b></td><td>0.02</td><td>&lt;= 0.005</td><td>0.001</td><td>above the bound (0 pass, 3 fail, 0 no data)</td>"),
        "{h}"
    );
}

#[test]
fn log_lines_have_their_own_section_in_both_parts() {
    let mut n = sample();
    n.alerts[0].annotations.insert(
        "log_excerpt".into(),
        "2026-01-01T00:00:00.000Z /var/log/app.log [fatal] FATAL <db> down\nsecond line".into(),
    );
    let t = text_body(&n);
    assert!(t.contains("  Log lines:\n    2026-01-01T00:00:00.000Z /var/log/app.log [fatal] FATAL <db> down\n    second line\n"), "{t}");
    let h = html_body(&n);
    assert!(
        h.contains("Log lines:<pre>2026-01-01T00:00:00.000Z /var/log/app.log [fatal] FATAL &lt;db&gt; down\nsecond line</pre>"),
        "{h}"
    );
}
