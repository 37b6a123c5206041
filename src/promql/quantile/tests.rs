use super::*;

fn b(upper: f64, count: f64) -> Bucket {
    Bucket { upper, count }
}

#[test]
fn bucket_quantile_interpolates_and_handles_edges() {
    let mut bs = vec![b(0.1, 10.0), b(f64::INFINITY, 20.0), b(0.2, 15.0)];
    // rank 10 of 20 falls at the top of the first bucket (lower bound 0).
    assert_eq!(bucket_quantile(0.5, &mut bs.clone()), 0.1);
    // rank 12: 2 of the 5 in (0.1, 0.2].
    assert!((bucket_quantile(0.6, &mut bs) - 0.14).abs() < 1e-12);
    // Falls into +Inf: the upper bound of the second-highest bucket.
    let mut bs = vec![b(1.0, 1.0), b(f64::INFINITY, 10.0)];
    assert_eq!(bucket_quantile(0.99, &mut bs), 1.0);
    // No +Inf bucket.
    assert!(bucket_quantile(0.5, &mut vec![b(1.0, 1.0), b(2.0, 2.0)]).is_nan());
    // Non-monotonic counts are fixed rather than producing nonsense.
    let mut bs = vec![b(1.0, 5.0), b(2.0, 3.0), b(f64::INFINITY, 10.0)];
    assert_eq!(bucket_quantile(0.5, &mut bs), 1.0);
}

#[test]
fn bucket_fraction_interpolates_like_prometheus() {
    // Positive buckets: the first one starts at 0.
    let bs = vec![
        b(1.0, 1.0),
        b(2.0, 3.0),
        b(3.0, 6.0),
        b(f64::INFINITY, 100.0),
    ];
    assert!((bucket_fraction(0.0, 1.5, &mut bs.clone()) - 0.02).abs() < 1e-12);
    // Nothing is interpolated inside the +Inf bucket.
    assert!((bucket_fraction(2.0, 5.0, &mut bs.clone()) - 0.03).abs() < 1e-12);
    assert!((bucket_fraction(400.0, f64::INFINITY, &mut bs.clone()) - 0.94).abs() < 1e-12);
    assert_eq!(bucket_fraction(2.0, 2.0, &mut bs.clone()), 0.0);
    assert!(bucket_fraction(f64::NAN, 1.0, &mut bs.clone()).is_nan());
    // Negative buckets: the first one reaches down to -Inf and counts whole.
    let bs = vec![
        b(-3.0, 10.0),
        b(-2.0, 12.0),
        b(-1.0, 15.0),
        b(f64::INFINITY, 100.0),
    ];
    assert!((bucket_fraction(-4.0, -2.0, &mut bs.clone()) - 0.02).abs() < 1e-12);
    assert!((bucket_fraction(f64::NEG_INFINITY, -1.5, &mut bs.clone()) - 0.135).abs() < 1e-12);
    // No +Inf bucket, no observations, no buckets.
    assert!(bucket_fraction(0.0, 1.0, &mut vec![b(1.0, 1.0)]).is_nan());
    assert!(bucket_fraction(0.0, 1.0, &mut vec![b(f64::INFINITY, 0.0)]).is_nan());
    assert!(bucket_fraction(0.0, 1.0, &mut Vec::new()).is_nan());
}

#[test]
fn go_min_max_propagate_nan() {
    assert!(go_max(1.0, f64::NAN).is_nan());
    assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
    assert!(go_min(f64::NAN, 1.0).is_nan());
    assert_eq!(go_min(f64::NEG_INFINITY, f64::NAN), f64::NEG_INFINITY);
}

#[test]
fn go_min_max_order_values_and_signed_zeros() {
    assert_eq!((go_max(1.0, 2.0), go_max(2.0, 1.0)), (2.0, 2.0));
    assert_eq!((go_min(1.0, 2.0), go_min(2.0, 1.0)), (1.0, 1.0));
    // Go: Max(+0, -0) = +0 and Min(+0, -0) = -0, whichever comes first.
    assert!(go_max(-0.0, 0.0).is_sign_positive() && go_max(0.0, -0.0).is_sign_positive());
    assert!(go_min(-0.0, 0.0).is_sign_negative() && go_min(0.0, -0.0).is_sign_negative());
}

#[test]
fn quantile_sorts_nan_first() {
    let mut v = vec![3.0, f64::NAN, 1.0];
    assert_eq!(quantile(1.0, &mut v), 3.0);
    assert!(quantile(0.0, &mut v).is_nan());
}
