use super::*;

fn meta(kind: &str, help: &str) -> MetricMeta {
    MetricMeta {
        kind: kind.into(),
        help: help.into(),
        unit: String::new(),
    }
}

#[test]
fn entries_are_distinct_across_targets_and_go_with_their_target() {
    let m = Metadata::default();
    m.set(
        "a",
        vec![
            ("up".into(), meta("gauge", "Up.")),
            ("x".into(), meta("counter", "X.")),
        ],
    );
    m.set(
        "b",
        vec![
            ("up".into(), meta("gauge", "Up.")),
            ("x".into(), meta("counter", "Other.")),
        ],
    );
    let all = m.list(None, None, None);
    assert_eq!(all["up"], [meta("gauge", "Up.")]);
    assert_eq!(all["x"].len(), 2);
    assert_eq!(m.list(Some("x"), None, Some(1))["x"].len(), 1);
    assert_eq!(m.list(None, Some(1), None).len(), 1);
    assert!(m.list(Some("nope"), None, None).is_empty());
    m.remove("b");
    assert_eq!(m.list(None, None, None)["x"], [meta("counter", "X.")]);
}
