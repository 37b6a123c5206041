use std::time::{Duration, Instant};

use super::*;

#[test]
fn loading_past_the_sample_limit_is_too_many_samples() {
    let l = QueryLimits::new(10, None);
    assert!(l.charge(6));
    assert_eq!(l.check(), Ok(()));
    assert!(!l.charge(5));
    assert_eq!(l.check(), Err(EvalError::TooManySamples));
    assert_eq!(
        EvalError::TooManySamples.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
}

#[test]
fn a_passed_deadline_is_a_timeout() {
    let l = QueryLimits::new(u64::MAX, Some(Instant::now() - Duration::from_millis(1)));
    assert!(!l.charge(1));
    assert_eq!(l.check(), Err(EvalError::Timeout));
    assert_eq!(
        QueryLimits::none().check(),
        Ok(()),
        "no limits never stop a query"
    );
}
