//! Where deployments are kept: the store's state in the daemon ([`Kind::Deployments`],
//! durable writes), [`MemoryDeploymentStore`] in tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::store::{Kind, StateStore, StoreError};

use super::Deployment;

/// What the gate engine persists. A real boundary: the store implements it for the daemon, the
/// in-memory fake for tests.
pub trait DeploymentStore: Send + Sync {
    /// Every stored deployment.
    fn load_all(&self) -> Result<Vec<Deployment>, StoreError>;
    /// One deployment by id.
    fn get(&self, id: &str) -> Result<Option<Deployment>, StoreError>;
    /// Saves a deployment durably: on disk when this returns `Ok`.
    fn save(&self, d: &Deployment) -> Result<(), StoreError>;
}

impl DeploymentStore for StateStore {
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
