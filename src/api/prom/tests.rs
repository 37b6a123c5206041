use super::*;

#[test]
fn parameters_repeat_and_decode_as_prometheus_takes_them() {
    let p = Params::from(
        &Method::POST,
        Some("match[]=up&start=1"),
        b"match%5B%5D=%7Bjob%3D%22a%22%7D&end=2",
    );
    assert_eq!(p.all("match[]"), ["up", "{job=\"a\"}"]);
    assert_eq!(p.get("start"), Some("1"));
    assert_eq!(p.get("end"), Some("2"));
    let get = Params::from(&Method::GET, Some("a=1"), b"a=2");
    assert_eq!(get.all("a"), ["1"], "a GET body is not a form");
}

#[test]
fn steps_are_seconds_or_durations() {
    assert_eq!(parse_step("15"), Some(15_000));
    assert_eq!(parse_step("0.5"), Some(500));
    assert_eq!(parse_step("1m30s"), Some(90_000));
    assert_eq!(parse_step("NaN"), None);
    assert_eq!(parse_step("1e300"), None);
    assert_eq!(parse_step("soon"), None);
}

#[test]
fn selectors_must_select_something() {
    let p = |q: &str| Params::from(&Method::GET, Some(q), &[]);
    assert_eq!(selectors(&p("match[]=up"), true).unwrap().len(), 1);
    for bad in [
        "",
        "match[]=%7B%7D",
        "match[]=up%2B1",
        "match[]=%7Bjob%3D%22%22%7D",
        "match[]=%7B",
    ] {
        let e = selectors(&p(bad), true).expect_err(bad);
        assert!(e.contains("match[]"), "{bad}: {e}");
    }
    assert!(selectors(&p(""), false).unwrap().is_empty());
}
