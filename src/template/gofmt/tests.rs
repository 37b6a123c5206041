use super::*;

#[test]
fn value_formatting_matches_go() {
    assert_eq!(format_value(1.0), "1");
    assert_eq!(format_value(0.5), "0.5");
    assert_eq!(format_value(1234567.0), "1.234567e+06");
    assert_eq!(format_value(100000.0), "100000");
    assert_eq!(format_value(0.0001), "0.0001");
    assert_eq!(format_value(0.00001), "1e-05");
    assert_eq!(format_value(-2.5), "-2.5");
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(f64::INFINITY), "+Inf");
}

#[test]
fn percent_4g_matches_go() {
    assert_eq!(format_g(1234.5678, Some(4)), "1235");
    assert_eq!(format_g(12345.678, Some(4)), "1.235e+04");
    assert_eq!(format_g(0.012345, Some(4)), "0.01235");
    assert_eq!(format_g(1.5, Some(4)), "1.5");
    assert_eq!(format_g(100.0, Some(4)), "100");
    assert_eq!(format_g(0.0, Some(4)), "0");
}

#[test]
fn sprintf_verbs() {
    assert_eq!(sprintf("%.2f", &[Arg::Num(1.23456)]), "1.23");
    assert_eq!(sprintf("%d requests", &[Arg::Num(42.0)]), "42 requests");
    assert_eq!(
        sprintf("%s is %v", &[Arg::Str("x".into()), Arg::Num(0.5)]),
        "x is 0.5"
    );
    assert_eq!(
        sprintf(
            "%5.1f|%-4s|%05.1f",
            &[Arg::Num(2.25), Arg::Str("a".into()), Arg::Num(-2.5)]
        ),
        "  2.2|a   |-02.5"
    );
    assert_eq!(sprintf("100%%", &[]), "100%");
    assert_eq!(sprintf("%e", &[Arg::Num(1234.5)]), "1.234500e+03");
    assert_eq!(sprintf("%d", &[]), "%!d(MISSING)");
}
