use super::*;

#[test]
fn parses_all_operators() {
    let l = Labels::new([("job", "api"), ("severity", "page")]);
    assert!(Matcher::parse(r#"job="api""#).unwrap().matches(&l));
    assert!(!Matcher::parse(r#"job!="api""#).unwrap().matches(&l));
    assert!(Matcher::parse(r#"severity=~"pa.*""#).unwrap().matches(&l));
    assert!(
        !Matcher::parse(r#"severity=~"pa""#).unwrap().matches(&l),
        "regex is anchored"
    );
    assert!(
        Matcher::parse(r#"team!~".+""#).unwrap().matches(&l),
        "absent label is empty"
    );
    assert!(
        Matcher::parse("job = api").unwrap().matches(&l),
        "unquoted value"
    );
}

#[test]
fn rejects_garbage_with_a_reason() {
    for (bad, why) in [
        ("job", "operator"),
        (r#"="x""#, "label name"),
        (r#"job="x"#, "closing quote"),
        (r#"job=~"(""#, "bad regex"),
        (r#"1job="x""#, "digit"),
    ] {
        let e = Matcher::parse(bad).unwrap_err();
        assert!(e.reason.contains(why), "{bad}: {}", e.reason);
    }
}
