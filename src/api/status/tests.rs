use super::html::{Html, escape};
use super::page::{Health, Incident, health, incidents, percent};
use super::uptime::{error_budget_remaining, parse_window};
use crate::config::load_str;
use crate::series::Labels;
use crate::store::{AlertTransition, Counts, HOUR_MS, LastRuns};

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn error_budget_is_the_fraction_of_allowed_failures_left() {
    let c = |checks, failures| Counts { checks, failures };
    // 99.9 % of 100,000 runs allows 100 failures.
    assert!(close(
        error_budget_remaining(Some(0.999), c(100_000, 0)),
        1.0
    ));
    assert!(close(
        error_budget_remaining(Some(0.999), c(100_000, 50)),
        0.5
    ));
    assert!(close(
        error_budget_remaining(Some(0.999), c(100_000, 100)),
        0.0
    ));
    // Overspent: negative.
    assert!(close(
        error_budget_remaining(Some(0.999), c(100_000, 150)),
        -0.5
    ));
    // No objective, or no runs: no budget to speak of.
    assert_eq!(error_budget_remaining(None, c(100, 1)), None);
    assert_eq!(error_budget_remaining(Some(0.99), c(0, 0)), None);
}

#[test]
fn percent_never_rounds_a_failure_up_to_100() {
    let c = |checks, failures| Counts { checks, failures };
    assert_eq!(percent(c(10, 0)).as_deref(), Some("100%"));
    assert_eq!(percent(c(100_000, 1)).as_deref(), Some("99.99%"));
    assert_eq!(percent(c(4, 1)).as_deref(), Some("75.00%"));
    assert_eq!(percent(c(0, 0)), None);
}

#[test]
fn windows_are_durations_up_to_90_days() {
    assert_eq!(parse_window("24h"), Ok(24 * HOUR_MS));
    assert_eq!(parse_window("90d"), Ok(90 * 24 * HOUR_MS));
    assert!(parse_window("91d").is_err());
    assert!(parse_window("30s").is_err());
    assert!(parse_window("soon").is_err());
}

fn probe(extra: &str) -> std::sync::Arc<crate::config::ProbeConfig> {
    let c = load_str(
        &format!("[[probe]]\nname = \"p\"\nurl = \"http://127.0.0.1:1/\"\n{extra}"),
        "t.toml",
    )
    .expect("valid");
    c.probes[0].clone()
}

#[test]
fn health_is_down_degraded_up_or_no_data() {
    let p = probe("");
    let now = 10 * HOUR_MS;
    let last = |success, last_failure| {
        Some(LastRuns {
            at: now - 1_000,
            success,
            last_failure,
        })
    };
    assert_eq!(health(&p, false, None, now), Health::NoData);
    assert_eq!(health(&p, true, last(false, Some(now)), now), Health::Down);
    // Failing below the threshold: degraded, not down.
    assert_eq!(
        health(&p, false, last(false, Some(now - 1_000)), now),
        Health::Degraded
    );
    // Recovered, but failed within the hour.
    assert_eq!(
        health(&p, false, last(true, Some(now - HOUR_MS / 2)), now),
        Health::Degraded
    );
    assert_eq!(
        health(&p, false, last(true, Some(now - 2 * HOUR_MS)), now),
        Health::Up
    );
    // Without its alert, a failed last run is down.
    let quiet = probe("alert = false\n");
    assert_eq!(
        health(&quiet, false, last(false, Some(now - 1_000)), now),
        Health::Down
    );
}

#[test]
fn incidents_pair_firing_and_resolved_per_listed_probe() {
    let t = |t, probe: &str, to: &str| AlertTransition {
        t,
        alertname: "ProbeFailed".into(),
        labels: Labels::new([("alertname", "ProbeFailed"), ("probe", probe)]),
        from: String::new(),
        to: to.into(),
        value: 1.0,
    };
    let history = [
        t(1, "web", "resolved"),
        t(2, "web", "firing"),
        t(3, "secret", "firing"),
        t(4, "web", "resolved"),
        t(5, "api", "firing"),
    ];
    let listed = ["web", "api"].into_iter().collect();
    let got = incidents(&history, &listed);
    let want = [
        Incident {
            probe: "api".into(),
            start: Some(5),
            end: None,
        },
        Incident {
            probe: "web".into(),
            start: Some(2),
            end: Some(4),
        },
        Incident {
            probe: "web".into(),
            start: None,
            end: Some(1),
        },
    ];
    assert_eq!(got, want);
}

#[test]
fn text_is_escaped_in_content_and_attributes() {
    let evil = "\"><script>alert('x')</script>&";
    let mut h = Html::default();
    h.raw("<p title=\"")
        .text(evil)
        .raw("\">")
        .text(evil)
        .raw("</p>");
    let out = h.finish();
    assert!(!out.contains("<script>"), "{out}");
    let doc = roxmltree::Document::parse(&out).expect("well-formed");
    let p = doc.root_element();
    assert_eq!(p.attribute("title"), Some(evil));
    assert_eq!(p.text(), Some(evil));
    assert_eq!(escape("a<b"), "a&lt;b");
}

#[test]
fn badges_are_svg_documents_that_say_their_value() {
    let svg = super::badge::svg("uptime 30d", "99.95%", "#2e7d32");
    let doc = roxmltree::Document::parse(&svg).expect("badge is XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let texts: Vec<&str> = root
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(texts, ["uptime 30d", "99.95%"]);
    let odd = super::badge::svg("<x>&", "\"y\"", "#000");
    roxmltree::Document::parse(&odd).expect("escaped badge is XML");
}
