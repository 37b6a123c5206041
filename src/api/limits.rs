//! How queries run: off the runtime's workers (on tokio's blocking pool, so a long query never
//! delays a probe or a scrape), at most `[query] max_concurrent` at once (the others wait for a
//! turn, as behind Prometheus' active query tracker), each within `[query] timeout` and
//! `max_samples`, with Prometheus' errors: 503 `timeout`, 422 `execution`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::http::StatusCode;
use tokio::sync::Notify;

use super::{Resp, json};
use crate::config::QueryConfig;
use crate::promql::{EvalError, QueryLimits};
use crate::series::head::Head;
use crate::store::SampleStore;
use crate::store::query::QuerySource;

/// Turns for queries: how many run, and a wake-up for those waiting.
#[derive(Debug, Default)]
pub struct QueryGate {
    /// Queries running now.
    running: Mutex<usize>,
    /// Notified whenever a query ends.
    ended: Notify,
}

/// A query's turn; the next one waiting gets it when this is dropped.
struct Turn(Arc<QueryGate>);

impl Drop for Turn {
    fn drop(&mut self) {
        *self.0.lock() -= 1;
        self.0.ended.notify_waiters();
    }
}

impl QueryGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        // A count, consistent at every step: a panic elsewhere leaves it usable.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        *self.lock()
    }

    /// Waits until fewer than `max` queries run, then counts this one in.
    async fn turn(self: &Arc<Self>, max: usize) -> Turn {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before the count is read: an end in between is not missed.
            ended.as_mut().enable();
            {
                let mut running = self.lock();
                if *running < max {
                    *running += 1;
                    return Turn(self.clone());
                }
            }
            ended.await;
        }
    }
}

/// An error in Prometheus' API shape.
pub(super) fn prom_error(status: StatusCode, kind: &str, msg: &str) -> Resp {
    json(
        status,
        &serde_json::json!({ "status": "error", "errorType": kind, "error": msg }),
    )
}

/// The answer to a query that ran out of time.
fn timed_out(r#where: &str) -> Resp {
    prom_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        &format!("query timed out in {where}"),
    )
}

/// What a query needs to run: the sources it reads and the limits in force.
pub(super) struct Run {
    pub head: Arc<Head>,
    pub samples: SampleStore,
    pub gate: Arc<QueryGate>,
    pub config: QueryConfig,
}

impl Run {
    /// Runs `f` over the head and the store on the blocking pool, in its turn and within the
    /// limits; an evaluation error is handed back for the caller to shape, a limit or a
    /// failure is answered here.
    pub(super) async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&QuerySource<'_>, &QueryLimits) -> Result<T, EvalError> + Send + 'static,
    ) -> Result<Result<T, EvalError>, Resp> {
        let timeout = self.config.timeout.get();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let turn =
            tokio::time::timeout_at(deadline, self.gate.turn(self.config.max_concurrent.get()))
                .await
                .map_err(|_| timed_out("query queue"))?;
        let (head, samples) = (self.head, self.samples);
        let max_samples = self.config.max_samples.get();
        let task = tokio::task::spawn_blocking(move || {
            // Held until the evaluation really ends, also when the caller stopped waiting: the
            // limit is on what runs, not on what is awaited.
            let _turn = turn;
            let limits = QueryLimits::new(max_samples, started.checked_add(timeout));
            let src = QuerySource::new(&head, &samples, &limits);
            // A panic in the engine is a bug, but one query must not take the daemon down.
            crate::rt::contained(|| f(&src, &limits))
        });
        match tokio::time::timeout_at(deadline, task).await {
            Err(_) => Err(timed_out("expression evaluation")),
            Ok(Ok(Ok(Err(EvalError::TooManySamples)))) => Err(prom_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "execution",
                &EvalError::TooManySamples.to_string(),
            )),
            Ok(Ok(Ok(Err(EvalError::Timeout)))) => Err(timed_out("expression evaluation")),
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(_))) | Ok(Err(_)) => Err(prom_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "the query engine failed",
            )),
        }
    }
}

impl axum::extract::FromRef<super::Api> for Run {
    fn from_ref(api: &super::Api) -> Run {
        Run {
            head: api.head.clone(),
            samples: api.samples.clone(),
            gate: api.queries.clone(),
            config: api.config.get().query.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
