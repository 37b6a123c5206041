//! Where deployments are kept: the sled store in the daemon ([`Kind::Deployments`], durable
//! writes), [`MemoryDeploymentStore`] in tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::store::{Kind, Store};

use super::Deployment;

/// What the gate engine persists. A real boundary: the store implements it for the daemon, the
/// in-memory fake for tests.
pub trait DeploymentStore: Send + Sync {
    /// Every stored deployment.
    fn load_all(&self) -> Result<Vec<Deployment>, String>;
    /// One deployment by id.
    fn get(&self, id: &str) -> Result<Option<Deployment>, String>;
    /// Saves a deployment durably: on disk when this returns `Ok`.
    fn save(&self, d: &Deployment) -> Result<(), String>;
}

impl DeploymentStore for Store {
    fn load_all(&self) -> Result<Vec<Deployment>, String> {
        self.scan::<Deployment>(Kind::Deployments)
            .map(|v| v.into_iter().map(|(_, d)| d).collect())
            .map_err(|e| e.to_string())
    }
    fn get(&self, id: &str) -> Result<Option<Deployment>, String> {
        Store::get(self, Kind::Deployments, id).map_err(|e| e.to_string())
    }
    fn save(&self, d: &Deployment) -> Result<(), String> {
        self.put_durable(Kind::Deployments, &d.id, d)
            .map_err(|e| e.to_string())
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

impl DeploymentStore for MemoryDeploymentStore {
    fn load_all(&self) -> Result<Vec<Deployment>, String> {
        Ok(self
            .deployments
            .lock()
            .map_err(|e| e.to_string())?
            .values()
            .cloned()
            .collect())
    }
    fn get(&self, id: &str) -> Result<Option<Deployment>, String> {
        Ok(self
            .deployments
            .lock()
            .map_err(|e| e.to_string())?
            .get(id)
            .cloned())
    }
    fn save(&self, d: &Deployment) -> Result<(), String> {
        if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("injected write failure".into());
        }
        self.deployments
            .lock()
            .map_err(|e| e.to_string())?
            .insert(d.id.clone(), d.clone());
        Ok(())
    }
}
