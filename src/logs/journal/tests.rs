use super::*;

#[test]
fn resumes_after_the_cursor_else_after_the_start_time_else_from_the_beginning() {
    let dir = Some(PathBuf::from("/srv/other-host/journal"));
    let j = Journal::new(
        "app.service".into(),
        dir,
        Some("s=1;i=2".into()),
        Some(5_000),
    );
    let a = j.args();
    assert!(a.contains(&"--unit=app.service".to_string()));
    assert!(a.contains(&"--directory=/srv/other-host/journal".to_string()));
    assert!(a.contains(&"--after-cursor=s=1;i=2".to_string()));
    assert!(!a.iter().any(|x| x.starts_with("--since")));
    let j = Journal::new("app.service".into(), None, None, Some(5_999));
    assert!(j.args().contains(&"--since=@5".to_string()));
    let j = Journal::new("app.service".into(), None, None, None);
    assert!(!j.args().iter().any(|x| x.starts_with("--since")
        || x.starts_with("--after-cursor")
        || x.starts_with("--directory")));
}

#[test]
fn entries_keep_binary_messages_and_their_time() {
    let e = parse_entry(
        br#"{"__CURSOR":"c1","MESSAGE":[104,105,255],"__REALTIME_TIMESTAMP":"1700000000123456","_SYSTEMD_UNIT":"x.service"}"#,
        "app.service",
    )
    .unwrap();
    assert_eq!(e.message, b"hi\xff");
    assert_eq!(e.t, Some(1_700_000_000_123));
    assert_eq!(e.unit, "x.service");
    let e = parse_entry(br#"{"__CURSOR":"c2","MESSAGE":"plain"}"#, "app.service").unwrap();
    assert_eq!(
        (e.message.as_slice(), e.unit.as_str()),
        (&b"plain"[..], "app.service")
    );
    assert_eq!(parse_entry(br#"{"MESSAGE":"no cursor"}"#, "u"), None);
    assert_eq!(parse_entry(b"not json", "u"), None);
}
