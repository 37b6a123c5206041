use super::*;
use crate::notify::tests::{alert, sample, verdict_sample};

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
fn a_verdict_reads_as_a_verdict_with_its_table_of_checks() {
    for (verdict, header) in [
        ("fail", "🔴 Deployment api v2.0.1: FAIL"),
        ("inconclusive", "⚠️ Deployment api v2.0.1: INCONCLUSIVE"),
        ("pass", "✅ Deployment api v2.0.1: PASS"),
    ] {
        let m = message(&verdict_sample(verdict));
        assert_eq!(m["blocks"][0]["text"]["text"], header);
        let all = all_texts(&m).join("\n") + m["text"].as_str().unwrap();
        assert!(
            !all.contains("RESOLVED") && !all.contains("FIRING"),
            "{all}"
        );
    }
    let m = message(&verdict_sample("fail"));
    let texts = all_texts(&m);
    assert_eq!(
        texts[1],
        "*Reason:* check error-rate failed 3 evaluations in a row"
    );
    let table = &texts[2];
    assert!(
        table.starts_with("```check        state  value  bound     baseline\n"),
        "{table}"
    );
    assert!(
        table.contains("\nerror-rate   FAIL   0.02   &lt;= 0.005  0.001\n"),
        "{table}"
    );
    assert!(
        table.contains("\np99-latency  PASS   0.21   &lt;= 0.5    0.2"),
        "{table}"
    );
    assert!(
        table.contains("error-rate fail: above the bound (0 pass, 3 fail, 0 no data)```"),
        "the failing check's reason in words: {table}"
    );
    assert!(texts[3].contains("*Commit:* abc123"), "{}", texts[3]);
    assert!(texts[3].contains("/api/v1/deployments/18f0a|Deployment>"));
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
