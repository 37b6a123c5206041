use super::*;
use crate::scrape::parse::{Format, Parser};

fn scrape(tracker: &mut MetaTracker, page: &str, into: &Metadata) {
    tracker.start();
    let body = page.as_bytes();
    Parser::new()
        .parse_with_metadata(body, Format::Text, |_| {}, |m| tracker.line(body, m))
        .unwrap();
    tracker.finish(body, "t", into);
}

#[test]
fn a_page_metadata_is_stored_by_family_and_replaced_only_when_it_changes() {
    let m = Metadata::default();
    let mut tracker = MetaTracker::default();
    let page = "# HELP a_total Requests\\nserved.\n# TYPE a_total counter\na_total 1\n\
                # TYPE b untyped\nb 2\n";
    scrape(&mut tracker, page, &m);
    let all = m.list(None, None, None);
    assert_eq!(
        all["a_total"],
        [MetricMeta {
            kind: "counter".into(),
            help: "Requests\nserved.".into(),
            unit: String::new(),
        }]
    );
    assert_eq!(all["b"][0].kind, "unknown");
    // Dropped behind the loop's back: the next page stores it again.
    m.remove("t");
    scrape(&mut tracker, page, &m);
    assert_eq!(m.list(None, None, None).len(), 2);
    scrape(&mut tracker, &page.replace("Requests", "Calls"), &m);
    assert!(
        m.list(None, None, None)["a_total"][0]
            .help
            .starts_with("Calls")
    );
}
