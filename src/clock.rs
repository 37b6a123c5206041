//! The injected clock. Production reads the system clock; tests run on tokio's paused clock,
//! so grouping, `for`, repeat intervals, backoff and gates can be tested without sleeping.

use chrono::{DateTime, Utc};

/// Wall-clock time source.
#[derive(Clone, Debug)]
pub enum Clock {
    /// `Utc::now()`.
    System,
    /// Wall time that follows tokio's clock from a fixed start, so `tokio::time::advance` moves
    /// it too.
    Tokio {
        /// Wall time at `base`.
        start: DateTime<Utc>,
        /// The tokio instant that corresponds to `start`.
        base: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that follows tokio's (paused or not) from `start`.
    pub fn tokio_from(start: DateTime<Utc>) -> Clock {
        Clock::Tokio {
            start,
            base: tokio::time::Instant::now(),
        }
    }

    /// The current wall time.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio { start, base } => {
                *start
                    + chrono::Duration::from_std(base.elapsed()).unwrap_or(chrono::Duration::zero())
            }
        }
    }

    /// The current time in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}
