use super::*;

fn res(base: &str, loc: &str) -> String {
    resolve_location(&base.parse().unwrap(), loc)
        .unwrap()
        .to_string()
}

#[test]
fn resolves_locations() {
    let b = "http://h:8/a/b/c?x=1";
    assert_eq!(res(b, "https://o/p"), "https://o/p");
    assert_eq!(res(b, "//o:9/p"), "http://o:9/p");
    assert_eq!(res(b, "/p?q=2"), "http://h:8/p?q=2");
    assert_eq!(res(b, "d"), "http://h:8/a/b/d");
    assert_eq!(res(b, "../d"), "http://h:8/a/d");
    assert_eq!(res(b, "./"), "http://h:8/a/b/");
    assert_eq!(res(b, "?y=2"), "http://h:8/a/b/c?y=2");
    assert_eq!(res(b, "d#frag"), "http://h:8/a/b/d");
    assert_eq!(res("http://h/", "../../x"), "http://h/x");
    assert!(resolve_location(&b.parse().unwrap(), "ftp://x/").is_err());
    assert!(resolve_location(&b.parse().unwrap(), "").is_err());
    assert!(resolve_location(&b.parse().unwrap(), "http://bad host/").is_err());
}

#[test]
fn header_errors_never_show_values() {
    let cfg: ProbeConfig = toml::from_str(
        "name = \"p\"\nurl = \"http://x/\"\nheaders = { Authorization = \"Bearer s3cr3t\\n\" }",
    )
    .unwrap();
    let err = check_headers(&cfg).unwrap_err();
    assert_eq!(err, "invalid value for header Authorization");
    assert!(!err.contains("s3cr3t"));
}
