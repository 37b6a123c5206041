use super::*;

#[test]
fn names_the_first_unsupported_function() {
    let e = crate::promql::parse("sum(rate(x[5m])) + mad_over_time(y[5m])").unwrap();
    assert_eq!(
        check_supported(&e),
        Err("function \"mad_over_time\" is not supported".into())
    );
    let e = crate::promql::parse("histogram_fraction(0, 0.5, rate(x_bucket[5m]))").unwrap();
    assert_eq!(check_supported(&e), Ok(()));
    let e = crate::promql::parse("limitk(2, x)").unwrap();
    assert!(check_supported(&e).unwrap_err().contains("limitk"));
    let e =
        crate::promql::parse("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m]))) > bool 1")
            .unwrap();
    assert_eq!(check_supported(&e), Ok(()));
}
