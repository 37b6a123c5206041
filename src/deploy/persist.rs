//! Where deployments are kept: the store's state in the daemon ([`Kind::Deployments`],
//! durable writes), [`MemoryDeploymentStore`] in tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::store::{Kind, StateStore, StoreError};

use chrono::{DateTime, Utc};

use super::{Deployment, Verdict};

/// What the gate engine persists. A real boundary: the store implements it for the daemon, the
/// in-memory fake for tests.
pub trait DeploymentStore: Send + Sync {
    /// Every stored deployment.
    fn load_all(&self) -> Result<Vec<Deployment>, StoreError>;
    /// One deployment by id.
    fn get(&self, id: &str) -> Result<Option<Deployment>, StoreError>;
    /// Saves a deployment durably: on disk when this returns `Ok`.
    fn save(&self, d: &Deployment) -> Result<(), StoreError>;
    /// The newest deployments (of `job`, if given) started before the deployment `before`
    /// (ids sort by start time), newest first, at most `limit`: one page of the list.
    fn page(
        &self,
        job: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError>;
    /// Deletes the finished deployments (verdict given and sent) started before `cutoff`;
    /// returns how many.
    fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError>;
    /// The `log_excerpt` of a check expression: the last kept lines of the log matches it
    /// reads (none where the store keeps no log lines).
    fn log_excerpt(
        &self,
        _config: &crate::config::Config,
        _expr: &promql_parser::parser::Expr,
    ) -> Option<String> {
        None
    }
}

/// The smallest id of a deployment started at or after `t`: ids are the start time in
/// milliseconds as 12 hex digits, then 8 random ones.
fn id_bound(t: DateTime<Utc>) -> String {
    format!("{:012x}", t.timestamp_millis().max(0))
}

/// Whether a deployment may go: its verdict is in and every receiver has it.
fn finished(d: &Deployment) -> bool {
    d.verdict != Verdict::Watching && d.pending_receivers().is_empty()
}

impl DeploymentStore for StateStore {
    fn log_excerpt(
        &self,
        config: &crate::config::Config,
        expr: &promql_parser::parser::Expr,
    ) -> Option<String> {
        crate::logs::excerpt(self, config, expr, None)
    }
    fn load_all(&self) -> Result<Vec<Deployment>, StoreError> {
        self.scan::<Deployment>(Kind::Deployments)
            .map(|v| v.into_iter().map(|(_, d)| d).collect())
    }
    fn get(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        StateStore::get(self, Kind::Deployments, id)
    }
    fn save(&self, d: &Deployment) -> Result<(), StoreError> {
        self.put_durable(Kind::Deployments, &d.id, d)
    }
    fn page(
        &self,
        job: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError> {
        let mut out = Vec::new();
        self.scan_back::<Deployment>(Kind::Deployments, before, |_, d| {
            if job.is_none_or(|j| d.job == j) {
                out.push(d);
            }
            out.len() < limit
        })?;
        Ok(out)
    }
    fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let bound = id_bound(cutoff);
        let mut old = Vec::new();
        self.scan_back::<Deployment>(Kind::Deployments, Some(&bound), |id, d| {
            if finished(&d) {
                old.push(id.to_string());
            }
            true
        })?;
        if old.is_empty() {
            return Ok(0);
        }
        let mut batch = self.batch(Kind::Deployments);
        for id in &old {
            batch.remove(id);
        }
        self.apply_durable(batch)?;
        Ok(old.len())
    }
}

/// An in-memory [`DeploymentStore`] for tests; `fail` makes every save fail.
#[derive(Default)]
pub struct MemoryDeploymentStore {
    /// Deployments by id.
    pub deployments: Mutex<BTreeMap<String, Deployment>>,
    /// When true, saves fail as if the disk were full.
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryDeploymentStore {
    /// The deployments; a test that panicked while holding the lock has failed already.
    fn deployments(&self) -> MutexGuard<'_, BTreeMap<String, Deployment>> {
        self.deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl DeploymentStore for MemoryDeploymentStore {
    fn load_all(&self) -> Result<Vec<Deployment>, StoreError> {
        Ok(self.deployments().values().cloned().collect())
    }
    fn get(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        Ok(self.deployments().get(id).cloned())
    }
    fn page(
        &self,
        job: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError> {
        let all = self.deployments();
        Ok(all
            .iter()
            .rev()
            .filter(|(id, _)| before.is_none_or(|b| id.as_str() < b))
            .map(|(_, d)| d)
            .filter(|d| job.is_none_or(|j| d.job == j))
            .take(limit)
            .cloned()
            .collect())
    }
    fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let bound = id_bound(cutoff);
        let mut all = self.deployments();
        let before = all.len();
        all.retain(|id, d| id.as_str() >= bound.as_str() || !finished(d));
        Ok(before - all.len())
    }
    fn save(&self, d: &Deployment) -> Result<(), StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Io {
                op: "writing a deployment",
                source: std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "injected write failure",
                ),
            });
        }
        self.deployments().insert(d.id.clone(), d.clone());
        Ok(())
    }
}
