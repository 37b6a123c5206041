use super::*;

#[test]
fn query_strings_decode_without_panicking_on_odd_input() {
    let q = parse_query("query=up%7Bjob%3D%22a%22%7D&time=1.5&x=%C3%A9+b&bad=%%C3%A9&t=%4");
    assert_eq!(q["query"], "up{job=\"a\"}");
    assert_eq!(q["time"], "1.5");
    assert_eq!(q["x"], "é b");
    assert_eq!(
        q["bad"], "%é",
        "a broken escape before a multi-byte character stays text"
    );
    assert_eq!(q["t"], "%4");
    assert_eq!(percent_decode("%zz%41"), "%zzA");
}

#[test]
fn times_are_rfc3339_or_unix_seconds() {
    assert_eq!(parse_time("1.5"), Some(1500));
    assert_eq!(parse_time("2026-11-22T00:00:00Z"), Some(1_795_305_600_000));
    assert_eq!(parse_time("yesterday"), None);
    assert_eq!(parse_time("-1e300"), Some(-(1 << 53)));
    assert_eq!(parse_time("1e300"), Some(1 << 53));
}
