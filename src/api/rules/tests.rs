use super::*;

#[test]
fn alert_values_are_written_as_go_writes_them() {
    assert_eq!(go_exponent(1.0), "1e+00");
    assert_eq!(go_exponent(0.25), "2.5e-01");
    assert_eq!(go_exponent(123456.0), "1.23456e+05");
    assert_eq!(go_exponent(-3e-120), "-3e-120");
    assert_eq!(go_exponent(0.0), "0e+00");
    assert_eq!(go_exponent(f64::NAN), "NaN");
    assert_eq!(go_exponent(f64::NEG_INFINITY), "-Inf");
}
