//! The dispatcher: Alertmanager's routing, grouping, silences, inhibition and notification log,
//! in-process. It owns the groups, the silences and the log; it hands each notification to the
//! durable outbox, which delivers it (see [`outbox`]).
//!
//! Sources (the rules engine, the probe runner, the daemon's self-alerts) send the full list of
//! their current alerts after every evaluation; an alert that disappears from its source's list
//! counts as resolved. Pending alerts never page. Each route groups alerts by `group_by`; a new
//! group is flushed after `group_wait`, then every `group_interval`; at each flush, every
//! receiver of the route gets a notification when the log says something is new, resolved, or
//! `repeat_interval` has passed. The log and the silences are persisted before they are acted
//! on, so a restart neither repeats a page inside `repeat_interval` nor loses a silence.

pub mod nlog;
pub mod outbox;
pub mod route;
pub mod silence;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::alert::{Alert, AlertState};
use crate::clock::Clock;
use crate::config::Config;
use crate::liveness::Heartbeat;
use crate::notify::{Notification, NotifiedAlert};
use crate::rt::{Wake, ask};
use crate::store::StoreError;
use crate::telemetry::Telemetry;
use nlog::{NlogEntry, needs_update};
use silence::{Silence, Silences};

/// How often expired silences and notification-log entries past their retention are deleted.
const GC_EVERY: Duration = Duration::from_secs(600);

/// What a silence command answers when the dispatcher has stopped.
const STOPPED: &str = "dispatcher stopped";

/// The notification log entries (by key) and the silences, as loaded at start.
pub type Persisted = (Vec<(String, NlogEntry)>, Vec<Silence>);

/// What the dispatcher persists, behind the store. A real boundary: the store's state handle
/// implements it for the daemon, [`MemoryDispatchStore`] for tests.
pub trait DispatchStore: Send + Sync {
    /// The notification log and the silences, as last saved.
    fn load(&self) -> Result<Persisted, StoreError>;
    /// Saves one log entry, durably.
    fn save_nlog(&self, key: &str, entry: &NlogEntry) -> Result<(), StoreError>;
    /// Saves a silence, durably.
    fn save_silence(&self, s: &Silence) -> Result<(), StoreError>;
    /// Forgets a silence.
    fn delete_silence(&self, id: &str) -> Result<(), StoreError>;
    /// Forgets log entries (older than the retention), in one durable write.
    fn delete_nlog(&self, keys: &[String]) -> Result<(), StoreError>;
    /// Durably queues a notification for delivery together with its log entry, so that a
    /// crash leaves either both or neither.
    fn enqueue(
        &self,
        n: &Notification,
        nlog_key: &str,
        entry: &NlogEntry,
    ) -> Result<(), StoreError>;
}

/// An in-memory [`DispatchStore`] for tests: keeps what was saved and every notification
/// queued.
#[derive(Default)]
pub struct MemoryDispatchStore {
    /// Log entries by key.
    pub nlog: Mutex<HashMap<String, NlogEntry>>,
    /// Silences by id.
    pub silences: Mutex<HashMap<String, Silence>>,
    /// Every notification queued, in order.
    pub queued: Mutex<Vec<Notification>>,
}

/// A test fake's lock: a test that panicked while holding it has failed already.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DispatchStore for MemoryDispatchStore {
    fn load(&self) -> Result<Persisted, StoreError> {
        let n = lock(&self.nlog).clone().into_iter().collect();
        let s = lock(&self.silences).values().cloned().collect();
        Ok((n, s))
    }
    fn save_nlog(&self, key: &str, entry: &NlogEntry) -> Result<(), StoreError> {
        lock(&self.nlog).insert(key.to_string(), entry.clone());
        Ok(())
    }
    fn save_silence(&self, s: &Silence) -> Result<(), StoreError> {
        lock(&self.silences).insert(s.id.clone(), s.clone());
        Ok(())
    }
    fn delete_nlog(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut nlog = lock(&self.nlog);
        for k in keys {
            nlog.remove(k);
        }
        Ok(())
    }
    fn delete_silence(&self, id: &str) -> Result<(), StoreError> {
        lock(&self.silences).remove(id);
        Ok(())
    }
    fn enqueue(
        &self,
        n: &Notification,
        nlog_key: &str,
        entry: &NlogEntry,
    ) -> Result<(), StoreError> {
        self.save_nlog(nlog_key, entry)?;
        lock(&self.queued).push(n.clone());
        Ok(())
    }
}

/// A new silence from the API.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSilence {
    /// Matchers in Alertmanager syntax.
    pub matchers: Vec<String>,
    /// Default: now.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// Required.
    pub ends_at: DateTime<Utc>,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Who.
    #[serde(default)]
    pub created_by: String,
}

enum Msg {
    Alerts { source: String, alerts: Vec<Alert> },
    Reconfigure(Arc<Config>),
    AddSilence(NewSilence, oneshot::Sender<Result<String, String>>),
    ExpireSilence(String, oneshot::Sender<Result<(), String>>),
    ListSilences(oneshot::Sender<Vec<(Silence, &'static str)>>),
    Flushed(oneshot::Sender<()>),
}

/// How other components talk to the dispatcher.
#[derive(Clone)]
pub struct DispatcherHandle {
    tx: mpsc::Sender<Msg>,
}

impl DispatcherHandle {
    /// Replaces the current alerts of `source` (every firing and resolved alert it holds).
    pub async fn update_alerts(&self, source: &str, alerts: Vec<Alert>) {
        if self
            .tx
            .send(Msg::Alerts {
                source: source.to_string(),
                alerts,
            })
            .await
            .is_err()
        {
            warn!(source, "dispatcher stopped; alerts not routed");
        }
    }
    /// Applies a new config (routes, receivers, inhibitions); groups and the log carry over.
    pub async fn reconfigure(&self, c: Arc<Config>) {
        let _ = self.tx.send(Msg::Reconfigure(c)).await;
    }
    /// Creates a silence; returns its id.
    pub async fn add_silence(&self, s: NewSilence) -> Result<String, String> {
        ask(&self.tx, |tx| Msg::AddSilence(s, tx))
            .await
            .unwrap_or_else(|| Err(STOPPED.to_string()))
    }
    /// Expires a silence now. `Err("not found")` when there is none with that id.
    pub async fn expire_silence(&self, id: &str) -> Result<(), String> {
        ask(&self.tx, |tx| Msg::ExpireSilence(id.to_string(), tx))
            .await
            .unwrap_or_else(|| Err(STOPPED.to_string()))
    }
    /// Every silence with its state.
    pub async fn silences(&self) -> Vec<(Silence, &'static str)> {
        ask(&self.tx, Msg::ListSilences).await.unwrap_or_default()
    }
    /// Waits until every message sent before has been handled and due groups flushed.
    pub async fn sync(&self) {
        // A stopped dispatcher has nothing left to wait for.
        let _ = ask(&self.tx, Msg::Flushed).await;
    }
}

struct Group {
    route: usize,
    labels: BTreeMap<String, String>,
    alerts: HashMap<u64, Alert>,
    next_flush: Instant,
}

/// The dispatcher component.
pub struct Dispatcher {
    rx: mpsc::Receiver<Msg>,
    config: Arc<Config>,
    route_keys: Vec<String>,
    groups: BTreeMap<String, Group>,
    sources: HashMap<String, HashMap<u64, Alert>>,
    silences: Silences,
    nlog: HashMap<String, NlogEntry>,
    store: Arc<dyn DispatchStore>,
    clock: Clock,
    telemetry: Arc<Telemetry>,
    heartbeat: Option<Heartbeat>,
}

impl Dispatcher {
    /// Creates the dispatcher with the persisted log and silences.
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn DispatchStore>,
        clock: Clock,
        telemetry: Arc<Telemetry>,
        heartbeat: Option<Heartbeat>,
    ) -> (Dispatcher, DispatcherHandle) {
        let (tx, rx) = mpsc::channel(256);
        let mut silences = Silences::default();
        let mut nlog = HashMap::new();
        match store.load() {
            Ok((n, s)) => {
                nlog.extend(n);
                for sil in s {
                    let id = sil.id.clone();
                    if let Err(e) = silences.insert(sil) {
                        warn!(silence = %id, error = %e, "stored silence no longer valid; ignored");
                    }
                }
            }
            Err(e) => {
                error!(error = %e, "cannot load the notification log and silences; starting empty")
            }
        }
        let route_keys = route::route_keys(&config.routes);
        let d = Dispatcher {
            rx,
            config,
            route_keys,
            groups: BTreeMap::new(),
            sources: HashMap::new(),
            silences,
            nlog,
            store,
            clock,
            telemetry,
            heartbeat,
        };
        (d, DispatcherHandle { tx })
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut beat = tokio::time::interval(Duration::from_secs(5));
        let mut next_gc = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_gc {
                self.gc();
                next_gc += GC_EVERY;
            }
            let next_flush = self.groups.values().map(|g| g.next_flush).min();
            let deadline = next_flush.map_or(next_gc, |t| t.min(next_gc));
            match crate::rt::next_wake(&mut self.rx, Some(deadline), &mut beat, &shutdown).await {
                Wake::Message(m) => self.handle(m),
                Wake::Timer => {}
                Wake::Stop => break,
            }
            self.flush_due();
            if let Some(h) = &self.heartbeat {
                h.beat();
            }
        }
        debug!("dispatcher stopped");
    }

    /// Deletes silences expired for longer than their retention, and notification-log
    /// entries older than `storage.retention` (a group that has not notified for that long
    /// starts over, as after Alertmanager's log retention).
    fn gc(&mut self) {
        let now = self.clock.now();
        for id in self.silences.gc(now) {
            if let Err(e) = self.store.delete_silence(&id) {
                warn!(error = %e, "cannot delete an old silence");
            }
        }
        let retention = chrono::Duration::from_std(self.config.storage.retention.get())
            .unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = now.checked_sub_signed(retention) else {
            return;
        };
        let old: Vec<String> = self
            .nlog
            .iter()
            .filter(|(_, e)| e.at < cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        if old.is_empty() {
            return;
        }
        match self.store.delete_nlog(&old) {
            Ok(()) => {
                for k in &old {
                    self.nlog.remove(k);
                }
                debug!(
                    entries = old.len(),
                    "notification-log entries past the retention deleted"
                );
            }
            Err(e) => warn!(error = %e, "cannot delete old notification-log entries"),
        }
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Alerts { source, alerts } => self.update(&source, alerts),
            Msg::Reconfigure(c) => {
                self.route_keys = route::route_keys(&c.routes);
                self.config = c;
                // Regroup every alert under the new routes; groups that keep their key keep
                // their timers.
                let old = std::mem::take(&mut self.groups);
                let alerts: Vec<Alert> = old
                    .values()
                    .flat_map(|g| g.alerts.values().cloned())
                    .collect();
                let mut seen = BTreeSet::new();
                for a in alerts {
                    if seen.insert(a.labels.fingerprint()) {
                        self.route_alert(a, false);
                    }
                }
                for (k, g) in &mut self.groups {
                    if let Some(o) = old.get(k) {
                        g.next_flush = o.next_flush;
                    }
                }
            }
            Msg::AddSilence(s, reply) => {
                let _ = reply.send(self.add_silence(s));
            }
            Msg::ExpireSilence(id, reply) => {
                let now = self.clock.now();
                let r = match self.silences.expire(&id, now) {
                    None => Err("not found".to_string()),
                    Some(s) => self
                        .store
                        .save_silence(&s)
                        .map(|_| info!(silence = %id, "silence expired"))
                        .map_err(|e| e.to_string()),
                };
                let _ = reply.send(r);
            }
            Msg::ListSilences(reply) => {
                let now = self.clock.now();
                let mut list: Vec<(Silence, &'static str)> = self
                    .active_maintenance(now)
                    .map(|s| (s, "active"))
                    .collect();
                list.extend(self.silences.list().into_iter().map(|s| {
                    let st = silence::state(&s, now);
                    (s, st)
                }));
                let _ = reply.send(list);
            }
            Msg::Flushed(reply) => {
                self.flush_due();
                let _ = reply.send(());
            }
        }
    }

    /// The maintenance windows active at `now`, as the silences they act as.
    fn active_maintenance(&self, now: DateTime<Utc>) -> impl Iterator<Item = Silence> + '_ {
        self.config.maintenance.iter().filter_map(move |m| {
            let (starts_at, ends_at) = m.schedule.active_at(m.timezone, now)?;
            Some(Silence {
                id: format!("maintenance-{}", m.name),
                matchers: m.matchers.iter().map(ToString::to_string).collect(),
                starts_at,
                ends_at,
                created_by: format!("maintenance:{}", m.name),
                comment: format!(
                    "scheduled maintenance {} ({})",
                    m.schedule.as_str(),
                    m.timezone.name()
                ),
                updated_at: starts_at,
            })
        })
    }

    /// Whether a silence or an active maintenance window mutes these labels.
    fn muted(&self, labels: &crate::series::Labels, now: DateTime<Utc>) -> bool {
        self.silences.mutes(labels, now).is_some()
            || self.config.maintenance.iter().any(|m| {
                crate::alert::matches_all(&m.matchers, labels)
                    && m.schedule.active_at(m.timezone, now).is_some()
            })
    }

    fn add_silence(&mut self, s: NewSilence) -> Result<String, String> {
        let now = self.clock.now();
        let starts_at = s.starts_at.unwrap_or(now);
        if s.ends_at <= starts_at {
            return Err("endsAt must be after startsAt".into());
        }
        if s.ends_at <= now {
            return Err("endsAt is in the past".into());
        }
        let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let sil = Silence {
            id: id.clone(),
            matchers: s.matchers,
            starts_at,
            ends_at: s.ends_at,
            created_by: s.created_by,
            comment: s.comment,
            updated_at: now,
        };
        // Validate before persisting: a silence that cannot be parsed must not be stored.
        let mut probe = Silences::default();
        probe.insert(sil.clone())?;
        self.store
            .save_silence(&sil)
            .map_err(|e| format!("cannot store the silence: {e}"))?;
        self.silences.insert(sil)?;
        info!(silence = %id, "silence created");
        Ok(id)
    }

    fn update(&mut self, source: &str, alerts: Vec<Alert>) {
        let now = self.clock.now();
        let prev = self.sources.remove(source).unwrap_or_default();
        let mut cur: HashMap<u64, Alert> = HashMap::with_capacity(alerts.len());
        for a in alerts {
            if a.state != AlertState::Pending {
                cur.insert(a.labels.fingerprint(), a);
            }
        }
        for (fp, a) in &prev {
            if !cur.contains_key(fp) && a.state == AlertState::Firing {
                let mut r = a.clone();
                r.state = AlertState::Resolved;
                r.resolved_at = Some(now);
                self.route_alert(r, false);
            }
        }
        for (fp, a) in &cur {
            let new = !prev.contains_key(fp);
            self.route_alert(a.clone(), new);
        }
        self.sources.insert(source.to_string(), cur);
    }

    fn route_alert(&mut self, a: Alert, count_unrouted: bool) {
        let routes = route::matching_routes(&self.config.routes, &a.labels);
        if routes.is_empty() {
            if count_unrouted && a.state == AlertState::Firing {
                self.telemetry
                    .alerts_unrouted_total
                    .with_label_values(&[] as &[&str])
                    .inc();
                warn!(alert = %a.labels, "alert matches no route; it is kept in history but nobody is told");
            }
            return;
        }
        let fp = a.labels.fingerprint();
        for r in routes {
            let route = &self.config.routes[r];
            let labels = route::group_labels(route, &a.labels);
            let key = route::group_key(&self.route_keys[r], &labels);
            // A resolved alert that the group does not hold matters only if some receiver was
            // told it is firing (it resolved while the daemon was down, or between flushes).
            if a.state == AlertState::Resolved
                && !self
                    .groups
                    .get(&key)
                    .is_some_and(|g| g.alerts.contains_key(&fp))
                && !route.receivers.iter().any(|rcv| {
                    self.nlog
                        .get(&format!("{rcv}\u{1f}{key}"))
                        .is_some_and(|e| e.firing.contains(&fp))
                })
            {
                continue;
            }
            let wait = route.group_wait.get();
            let g = self.groups.entry(key).or_insert_with(|| Group {
                route: r,
                labels,
                alerts: HashMap::new(),
                next_flush: Instant::now() + wait,
            });
            g.alerts.insert(fp, a.clone());
        }
    }

    fn flush_due(&mut self) {
        let now_i = Instant::now();
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush <= now_i)
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let firing: Vec<crate::series::Labels> = self
            .sources
            .values()
            .flat_map(|m| m.values())
            .filter(|a| a.state == AlertState::Firing)
            .map(|a| a.labels.clone())
            .collect();
        let firing_refs: Vec<&crate::series::Labels> = firing.iter().collect();
        for key in due {
            self.flush(&key, &firing_refs);
        }
    }

    fn flush(&mut self, key: &str, firing_sources: &[&crate::series::Labels]) {
        let now = self.clock.now();
        let Some(g) = self.groups.get(key) else {
            return;
        };
        let route = &self.config.routes[g.route];
        let external_url = self.config.server.link_base();
        let mut failed = false;
        for receiver in &route.receivers {
            let Some(rc) = self.config.receiver(receiver) else {
                continue;
            };
            let mut visible: Vec<&Alert> = g
                .alerts
                .values()
                .filter(|a| {
                    !self.muted(&a.labels, now)
                        && !route::inhibited(&self.config.inhibits, &a.labels, firing_sources)
                })
                .collect();
            if visible.is_empty() {
                continue;
            }
            visible.sort_by(|a, b| a.labels.cmp(&b.labels));
            let firing: BTreeSet<u64> = visible
                .iter()
                .filter(|a| a.state == AlertState::Firing)
                .map(|a| a.labels.fingerprint())
                .collect();
            let resolved: BTreeSet<u64> = visible
                .iter()
                .filter(|a| a.state == AlertState::Resolved)
                .map(|a| a.labels.fingerprint())
                .collect();
            let nkey = format!("{receiver}\u{1f}{key}");
            // An Alertmanager is told of a firing alert again every resend_interval, as
            // Prometheus does, or it resolves the alert when its endsAt passes.
            let repeat = match &rc.kind {
                crate::config::ReceiverKind::Alertmanager(c) => {
                    route.repeat_interval.get().min(c.resend_interval.get())
                }
                _ => route.repeat_interval.get(),
            };
            let repeat = chrono::Duration::from_std(repeat).unwrap_or(chrono::Duration::MAX);
            if !needs_update(
                self.nlog.get(&nkey),
                &firing,
                &resolved,
                rc.send_resolved,
                repeat,
                now,
            ) {
                continue;
            }
            let entry = NlogEntry {
                at: now,
                firing: firing.clone(),
                resolved,
            };
            let to_send: Vec<NotifiedAlert> = visible
                .iter()
                .filter(|a| a.state == AlertState::Firing || rc.send_resolved)
                .map(|a| NotifiedAlert::from_alert(a))
                .collect();
            let result = if to_send.is_empty() {
                self.store.save_nlog(&nkey, &entry)
            } else {
                let n = Notification::new(
                    receiver,
                    key.to_string(),
                    g.labels.clone(),
                    to_send,
                    &external_url,
                );
                info!(receiver = %receiver, group = %key, status = n.status.as_str(), alerts = n.alerts.len(), "notification queued");
                self.store.enqueue(&n, &nkey, &entry)
            };
            match result {
                Ok(()) => {
                    self.nlog.insert(nkey, entry);
                }
                Err(e) => {
                    // Not logged as sent: the next flush tries again.
                    error!(receiver = %receiver, group = %key, error = %e, "cannot queue a notification");
                    self.telemetry
                        .store_write_failures
                        .with_label_values(&["outbox"])
                        .inc();
                    failed = true;
                }
            }
        }
        let interval = route.group_interval.get();
        if let Some(g) = self.groups.get_mut(key) {
            if !failed {
                g.alerts.retain(|_, a| a.state != AlertState::Resolved);
            }
            g.next_flush = Instant::now() + interval;
            if g.alerts.is_empty() {
                self.groups.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
