//! The limits of one query, as Prometheus' `--query.max-samples` and `--query.timeout`: the
//! source counts the samples it loads, the evaluator checks between steps of its work, and
//! either stops the query with the error Prometheus gives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::EvalError;

/// What one query may use. Shared by the evaluator and the source it reads (the source counts
/// what it loads with [`QueryLimits::charge`], the evaluator asks [`QueryLimits::check`]).
#[derive(Debug)]
pub struct QueryLimits {
    /// Samples the query may load at once, at most.
    max_samples: u64,
    /// When the query has to be done.
    deadline: Option<Instant>,
    /// Samples loaded so far.
    loaded: AtomicU64,
    /// Set once `loaded` went past `max_samples`: the source stops loading.
    over: AtomicBool,
}

impl QueryLimits {
    /// Limits of `max_samples` samples and a deadline.
    pub fn new(max_samples: u64, deadline: Option<Instant>) -> QueryLimits {
        QueryLimits {
            max_samples,
            deadline,
            loaded: AtomicU64::new(0),
            over: AtomicBool::new(false),
        }
    }

    /// No limit at all (rules and gates read the head, which is bounded by its window).
    pub fn none() -> QueryLimits {
        QueryLimits::new(u64::MAX, None)
    }

    /// Counts `n` samples loaded; false once the query is over its sample limit or past its
    /// deadline, after which the caller stops loading (what it returns is thrown away).
    pub fn charge(&self, n: usize) -> bool {
        let loaded = self.loaded.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if loaded > self.max_samples {
            self.over.store(true, Ordering::Relaxed);
            return false;
        }
        !self.late()
    }

    /// Samples loaded so far.
    pub fn loaded(&self) -> u64 {
        self.loaded.load(Ordering::Relaxed)
    }

    fn late(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The error that stops the query, if any: too many samples loaded, or the deadline passed.
    pub fn check(&self) -> Result<(), EvalError> {
        if self.over.load(Ordering::Relaxed) {
            return Err(EvalError::TooManySamples);
        }
        if self.late() {
            return Err(EvalError::Timeout);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
