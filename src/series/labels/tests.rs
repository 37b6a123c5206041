use super::*;

#[test]
fn new_sorts_drops_empty_and_dedups() {
    let l = Labels::new([
        ("job", "api"),
        ("a", ""),
        ("__name__", "up"),
        ("job", "web"),
    ]);
    assert_eq!(l.to_string(), r#"up{job="web"}"#);
    assert_eq!(l.len(), 2);
    assert_eq!(l.get("job"), Some("web"));
    assert_eq!(l.get("a"), None);
}

#[test]
fn with_and_without() {
    let l = Labels::new([("b", "2")]);
    let l2 = l.with("a", "1").with("c", "3").with("b", "");
    assert_eq!(l2.to_string(), r#"{a="1", c="3"}"#);
    assert_eq!(l2.without(&["a"]).to_string(), r#"{c="3"}"#);
    assert_eq!(l2.keep_only(&["a"]).to_string(), r#"{a="1"}"#);
}

#[test]
fn fingerprint_is_stable_and_content_based() {
    let a = Labels::new([("job", "api"), ("instance", "x")]);
    let b = Labels::new([("instance", "x"), ("job", "api")]);
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(
        a.fingerprint(),
        Labels::new([("job", "apix")]).fingerprint()
    );
}
