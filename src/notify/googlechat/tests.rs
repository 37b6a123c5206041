use super::*;
use crate::notify::tests::{alert, sample, verdict_sample};

#[test]
fn card_header_and_sections_by_state() {
    let m = message(&sample());
    assert_eq!(m["text"], "[FIRING:1] HighErrorRate api");
    let c = &m["cardsV2"][0];
    assert_eq!(c["cardId"], "postflight");
    assert_eq!(c["card"]["header"]["title"], "[FIRING:1] HighErrorRate api");
    assert_eq!(
        c["card"]["header"]["subtitle"],
        "postflight · 1 firing, 1 resolved"
    );
    let sections = c["card"]["sections"].as_array().unwrap();
    let first = sections[0]["widgets"][0]["textParagraph"]["text"]
        .as_str()
        .unwrap();
    assert!(
        first.starts_with(
            "<font color=\"#d93025\"><b>FIRING</b></font> · <b>error rate 5% on &lt;api&gt;</b>"
        ),
        "{first}"
    );
    assert!(first.contains("<br><b>Reason:</b> status 503, expected 200"));
    let second = sections[1]["widgets"][0]["textParagraph"]["text"]
        .as_str()
        .unwrap();
    assert!(second.starts_with("<font color=\"#1e8e3e\"><b>RESOLVED</b></font>"));
    let buttons = &sections[2]["widgets"][0]["buttonList"]["buttons"];
    assert_eq!(
        buttons[0]["onClick"]["openLink"]["url"],
        "http://monitor.example.com:7980"
    );
}

#[test]
fn verdicts_have_a_row_per_check() {
    let c = card(&verdict_sample("fail"));
    assert_eq!(c["card"]["header"]["title"], "Deployment api v2.0.1: FAIL");
    let sections = c["card"]["sections"].as_array().unwrap();
    let row = &sections[1]["widgets"][0]["decoratedText"];
    assert_eq!(row["topLabel"], "error-rate");
    assert!(
        row["text"].as_str().unwrap().starts_with(
            "<font color=\"#d93025\"><b>FAIL</b></font> · value 0.02, bound &lt;= 0.005"
        )
    );
    let pass = card(&verdict_sample("pass"));
    assert!(
        !pass["card"]["header"]["title"]
            .as_str()
            .unwrap()
            .contains("RESOLVED")
    );
}

#[test]
fn a_card_stays_under_the_size_limit() {
    let mut n = sample();
    n.alerts = (0..200)
        .map(|i| {
            let mut a = alert(&format!("i{i}"), GroupStatus::Firing);
            a.annotations
                .insert("description".into(), "<&>".repeat(10_000));
            a
        })
        .collect();
    let m = message(&n);
    assert!(json_size(&m) <= 32_000, "{}", json_size(&m));
    let sections = m["cardsV2"][0]["card"]["sections"].as_array().unwrap();
    let more = sections[sections.len() - 2]["widgets"][0]["textParagraph"]["text"]
        .as_str()
        .unwrap();
    assert!(
        more.starts_with("…and ") && more.ends_with("more alerts"),
        "{more}"
    );
}
