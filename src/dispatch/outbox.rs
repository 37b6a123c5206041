//! The durable outbox and the senders that drain it.
//!
//! Every notification is written to the store before its first attempt. One sender per
//! receiver delivers that receiver's notifications, retrying with exponential backoff and
//! jitter (honouring `Retry-After` on 429 and 503, up to an hour), until the receiver accepts
//! it, answers with a permanent error (any other 4xx: the message itself is refused, and
//! sending it again will not change that), or the notification is older than 24 hours; then
//! it is removed from the store. Order is kept within a group (a group's resolution never
//! overtakes its firing), not across groups: a message the receiver keeps refusing delays
//! only its own group's later messages. A receiver that is down holds only its own queue:
//! every other sender goes on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::DispatchStore;
use super::nlog::NlogEntry;
use crate::clock::Clock;
use crate::config::Config;
use crate::notify::{Clients, Notification, NotifyError};
use crate::store::{Kind, StateStore, StoreError};
use crate::telemetry::Telemetry;

/// How long a notification is retried before it is dropped.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// First retry delay.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay (a `Retry-After` may ask for more, up to
/// [`crate::notify::MAX_RETRY_AFTER`]).
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A queued notification with its delivery state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// What to send.
    pub notification: Notification,
    /// When it was queued.
    pub created: DateTime<Utc>,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_attempt: DateTime<Utc>,
    /// The last error, for the log and the API.
    pub last_error: String,
}

struct Shared {
    store: StateStore,
    queues: Mutex<HashMap<String, BTreeMap<u64, OutboxEntry>>>,
    config: RwLock<Arc<Config>>,
    wake: watch::Sender<u64>,
    clients: Clients,
    telemetry: Arc<Telemetry>,
    clock: Clock,
}

/// The outbox: the dispatcher queues into it, its senders deliver.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Outbox {
    /// Loads what the store still holds (notifications queued before a restart).
    pub fn new(
        store: StateStore,
        config: Arc<Config>,
        clients: Clients,
        telemetry: Arc<Telemetry>,
        clock: Clock,
    ) -> Outbox {
        let mut queues: HashMap<String, BTreeMap<u64, OutboxEntry>> = HashMap::new();
        match store.outbox_all::<OutboxEntry>() {
            Ok(all) => {
                if !all.is_empty() {
                    info!(
                        pending = all.len(),
                        "notifications from before the restart are queued"
                    );
                }
                for (id, e) in all {
                    queues
                        .entry(e.notification.receiver.clone())
                        .or_default()
                        .insert(id, e);
                }
            }
            Err(e) => {
                error!(error = %e, "cannot read the outbox; pending notifications from before the restart are lost")
            }
        }
        let (wake, _) = watch::channel(0);
        let o = Outbox {
            shared: Arc::new(Shared {
                store,
                queues: Mutex::new(queues),
                config: RwLock::new(config),
                wake,
                clients,
                telemetry,
                clock,
            }),
        };
        o.update_depth();
        o
    }

    /// Applies a new config: senders for new receivers start, settings change in place.
    pub fn reconfigure(&self, c: Arc<Config>) {
        *self
            .shared
            .config
            .write()
            .unwrap_or_else(|p| p.into_inner()) = c;
        self.shared.wake.send_modify(|v| *v += 1);
    }

    fn update_depth(&self) {
        let q = self.shared.queues.lock().unwrap_or_else(|p| p.into_inner());
        for (r, entries) in q.iter() {
            self.shared
                .telemetry
                .notification_queue_depth
                .with_label_values(&[r])
                .set(entries.len() as i64);
        }
    }

    /// Notifications waiting, per receiver.
    pub fn depth(&self) -> HashMap<String, usize> {
        let q = self.shared.queues.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().map(|(k, v)| (k.clone(), v.len())).collect()
    }

    fn push(&self, id: u64, e: OutboxEntry) {
        let receiver = e.notification.receiver.clone();
        self.shared
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(receiver)
            .or_default()
            .insert(id, e);
        self.update_depth();
        self.shared.wake.send_modify(|v| *v += 1);
    }

    /// Runs one sender per receiver until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut senders: JoinSet<()> = JoinSet::new();
        let mut running: Vec<String> = Vec::new();
        let mut wake = self.shared.wake.subscribe();
        loop {
            let names: Vec<String> = {
                let c = self.shared.config.read().unwrap_or_else(|p| p.into_inner());
                let mut n: Vec<String> = c.receivers.iter().map(|r| r.name.clone()).collect();
                let q = self.shared.queues.lock().unwrap_or_else(|p| p.into_inner());
                n.extend(
                    q.keys()
                        .filter(|k| !c.receivers.iter().any(|r| &r.name == *k))
                        .cloned(),
                );
                n
            };
            for name in names {
                if !running.contains(&name) {
                    running.push(name.clone());
                    senders.spawn(sender(self.shared.clone(), name, shutdown.clone()));
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = wake.changed() => if r.is_err() { break },
            }
        }
        while senders.join_next().await.is_some() {}
    }
}

impl DispatchStore for (StateStore, Outbox) {
    fn load(&self) -> Result<super::Persisted, StoreError> {
        let nlog = self.0.scan::<NlogEntry>(Kind::Nlog)?;
        let silences = self.0.scan::<super::Silence>(Kind::Silences)?;
        Ok((nlog, silences.into_iter().map(|(_, s)| s).collect()))
    }
    fn save_nlog(&self, key: &str, entry: &NlogEntry) -> Result<(), StoreError> {
        self.0.put_durable(Kind::Nlog, key, entry)
    }
    fn save_silence(&self, s: &super::Silence) -> Result<(), StoreError> {
        self.0.put_durable(Kind::Silences, &s.id, s)
    }
    fn delete_nlog(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut batch = self.0.batch(Kind::Nlog);
        for k in keys {
            batch.remove(k);
        }
        self.0.apply_durable(batch)
    }
    fn delete_silence(&self, id: &str) -> Result<(), StoreError> {
        self.0.remove_durable(Kind::Silences, id).map(|_| ())
    }
    fn enqueue(
        &self,
        n: &Notification,
        nlog_key: &str,
        entry: &NlogEntry,
    ) -> Result<(), StoreError> {
        let now = self.1.shared.clock.now();
        let e = OutboxEntry {
            notification: n.clone(),
            created: now,
            attempts: 0,
            next_attempt: now,
            last_error: String::new(),
        };
        let id = self.0.outbox_next_id()?;
        self.0
            .outbox_put_with_nlog_durable(id, &e, nlog_key, entry)?;
        self.1.push(id, e);
        Ok(())
    }
}

/// The delay before the next attempt: `Retry-After` when the receiver gave one, else
/// exponential from 1 s to 5 min with ±20 % jitter, so that many postflights do not retry in
/// lockstep.
pub fn backoff(attempts: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(r) = retry_after {
        return r.min(crate::notify::MAX_RETRY_AFTER);
    }
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
    let d = exp.min(BACKOFF_MAX);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    d.mul_f64(jitter)
}

async fn sender(shared: Arc<Shared>, receiver: String, shutdown: CancellationToken) {
    let mut wake = shared.wake.subscribe();
    loop {
        let (head, wait) = {
            let q = shared.queues.lock().unwrap_or_else(|p| p.into_inner());
            match q.get(&receiver) {
                Some(m) => next_due(m, shared.clock.now()),
                None => (None, None),
            }
        };
        if wait != Some(Duration::ZERO) {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = wake.changed() => if r.is_err() { return },
                _ = async { match wait { Some(w) => tokio::time::sleep(w).await, None => std::future::pending().await } } => {}
            }
            continue;
        }
        let Some((id, mut entry)) = head else {
            continue;
        };
        let rc = {
            let c = shared.config.read().unwrap_or_else(|p| p.into_inner());
            c.receiver(&receiver).cloned()
        };
        let now = shared.clock.now();
        let age = (now - entry.created).to_std().unwrap_or_default();
        let Some(rc) = rc else {
            if age > MAX_AGE {
                drop_entry(&shared, &receiver, id, "receiver removed from the config");
            } else {
                // Kept in case the receiver comes back in a reload; looked at again later.
                set_next(
                    &shared,
                    &receiver,
                    id,
                    &mut entry,
                    Duration::from_secs(60),
                    "receiver not in the config",
                );
            }
            continue;
        };
        entry.attempts += 1;
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = crate::notify::send(&shared.clients, &rc, &entry.notification) => r,
        };
        match result {
            Ok(d) => {
                let latency = (shared.clock.now() - entry.created)
                    .to_std()
                    .unwrap_or_default();
                info!(receiver = %receiver, group = %entry.notification.group_key, status = entry.notification.status.as_str(), detail = %d.detail, attempts = entry.attempts, "notification delivered");
                shared
                    .telemetry
                    .notifications_total
                    .with_label_values(&[receiver.as_str(), "success"])
                    .inc();
                shared
                    .telemetry
                    .notification_latency
                    .with_label_values(&[receiver.as_str()])
                    .observe(latency.as_secs_f64());
                remove(&shared, &receiver, id);
            }
            Err(NotifyError::Permanent { message }) => {
                shared
                    .telemetry
                    .notifications_total
                    .with_label_values(&[receiver.as_str(), "failure"])
                    .inc();
                error!(receiver = %receiver, group = %entry.notification.group_key, error = %message, "notification refused permanently; dropped");
                drop_entry(&shared, &receiver, id, "permanent error");
            }
            Err(NotifyError::Retryable {
                message,
                retry_after,
            }) => {
                shared
                    .telemetry
                    .notifications_total
                    .with_label_values(&[receiver.as_str(), "failure"])
                    .inc();
                if age > MAX_AGE {
                    error!(receiver = %receiver, group = %entry.notification.group_key, error = %message, attempts = entry.attempts, "notification undelivered for 24 hours; dropped");
                    drop_entry(&shared, &receiver, id, "expired");
                } else {
                    let delay = backoff(entry.attempts, retry_after);
                    warn!(receiver = %receiver, error = %message, attempts = entry.attempts, retry_in = ?delay, "notification failed; will retry");
                    set_next(&shared, &receiver, id, &mut entry, delay, &message);
                }
            }
        }
    }
}

/// The next notification to send and how long until it is due: the oldest due one among the
/// oldest of each group (a group's messages go in order; groups do not wait for each other).
/// `None` as the wait when nothing is queued.
fn next_due(
    queue: &BTreeMap<u64, OutboxEntry>,
    now: DateTime<Utc>,
) -> (Option<(u64, OutboxEntry)>, Option<Duration>) {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut soonest: Option<DateTime<Utc>> = None;
    for (id, e) in queue {
        if !seen.insert(e.notification.group_key.as_str()) {
            continue;
        }
        if e.next_attempt <= now {
            return (Some((*id, e.clone())), Some(Duration::ZERO));
        }
        soonest = Some(soonest.map_or(e.next_attempt, |s| s.min(e.next_attempt)));
    }
    let wait = soonest.map(|t| (t - now).to_std().unwrap_or_default());
    (None, wait)
}

fn set_next(
    shared: &Shared,
    receiver: &str,
    id: u64,
    entry: &mut OutboxEntry,
    delay: Duration,
    err: &str,
) {
    entry.next_attempt =
        shared.clock.now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
    entry.last_error = err.to_string();
    // The attempt count and next time are advisory: losing them in a crash only means an
    // earlier retry, so this write need not wait for a flush... but the store flushes anyway.
    if let Err(e) = shared.store.outbox_put_durable(id, &*entry) {
        warn!(error = %e, "cannot update the outbox entry");
    }
    if let Some(m) = shared
        .queues
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(receiver)
    {
        m.insert(id, entry.clone());
    }
}

fn remove(shared: &Shared, receiver: &str, id: u64) {
    if let Err(e) = shared.store.outbox_remove_durable(id) {
        // Delivered but still stored: it would be sent again after a restart (at-least-once).
        error!(error = %e, "cannot remove a delivered notification from the outbox");
        shared
            .telemetry
            .store_write_failures
            .with_label_values(&["outbox"])
            .inc();
    }
    let mut q = shared.queues.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = q.get_mut(receiver) {
        m.remove(&id);
        shared
            .telemetry
            .notification_queue_depth
            .with_label_values(&[receiver])
            .set(m.len() as i64);
    }
}

fn drop_entry(shared: &Shared, receiver: &str, id: u64, reason: &str) {
    shared
        .telemetry
        .notifications_dropped_total
        .with_label_values(&[receiver, reason])
        .inc();
    remove(shared, receiver, id);
}

#[cfg(test)]
mod tests;
