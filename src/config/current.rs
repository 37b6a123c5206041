//! The config in force, shared by the daemon and the API, and the command that reloads it.

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use super::Config;

/// The config in force: replaced whole on a successful reload, read by whoever needs the
/// latest (the API's token check, the daemon's housekeeping).
#[derive(Clone, Debug)]
pub struct Current(Arc<RwLock<Arc<Config>>>);

impl Current {
    /// Starts with `c`.
    pub fn new(c: Arc<Config>) -> Self {
        Current(Arc::new(RwLock::new(c)))
    }

    /// The config in force.
    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `c` in force.
    pub fn set(&self, c: Arc<Config>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = c;
    }
}

/// A request to reload the config, from SIGHUP or `POST /-/reload`.
pub struct ReloadRequest {
    /// Where the outcome goes (None for SIGHUP).
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// Asks the daemon's reload loop for a reload.
#[derive(Clone, Debug)]
pub struct Reloader(mpsc::Sender<ReloadRequest>);

impl Reloader {
    /// A reloader and the receiving end the reload loop reads.
    pub fn channel() -> (Reloader, mpsc::Receiver<ReloadRequest>) {
        let (tx, rx) = mpsc::channel(4);
        (Reloader(tx), rx)
    }

    /// Asks for a reload and waits for its outcome.
    pub async fn reload(&self) -> Result<(), String> {
        crate::rt::ask(&self.0, |tx| ReloadRequest { reply: Some(tx) })
            .await
            .unwrap_or_else(|| Err("the daemon is shutting down".to_string()))
    }

    /// Queues a reload without waiting for it; false when one is already queued.
    pub fn request(&self) -> bool {
        self.0.try_send(ReloadRequest { reply: None }).is_ok()
    }
}
