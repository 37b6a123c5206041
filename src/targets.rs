//! The health of every scrape target and probe: written by their loops, read by the rules
//! engine (its first round waits until each has run once) and by `GET /api/v1/targets`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One target's last run.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    /// `scrape`, `probe` or `log`.
    pub kind: &'static str,
    /// The job (scrape job, or the probe's `job`).
    pub job: String,
    /// The probe's name, for probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// The log source's name, for logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The URL scraped or probed.
    pub url: String,
    /// `up`, `down` or `unknown` (not run yet).
    pub health: &'static str,
    /// Why the last run failed; empty when it succeeded.
    pub last_error: String,
    /// When the last run started.
    pub last_run: Option<DateTime<Utc>>,
    /// How long it took, in seconds.
    pub last_duration_seconds: f64,
    /// Samples scraped (scrapes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
}

/// One run, for [`TargetsView::record_run`].
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// Whether it succeeded.
    pub up: bool,
    /// Why it failed; empty when it succeeded.
    pub error: &'a str,
    /// When it started.
    pub at: DateTime<Utc>,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// Samples scraped (scrapes only).
    pub samples: Option<usize>,
}

/// Every target's health, by a stable key. Hashed, not ordered: a thousand probes every 10 s
/// record their runs here, and a B-tree of string keys costs each run a chain of cache misses;
/// [`TargetsView::list`] sorts instead. Boxed: 1,100 targets
/// take a table of 2,048 slots, and an empty slot then costs a pointer, not 168 bytes.
pub struct TargetsView {
    all: RwLock<HashMap<String, Box<TargetHealth>>>,
    /// The generation of what [`TargetsView::health_json`] shows: raised, under the write lock,
    /// when a target's health or reason changes or a target comes or goes, never by a run that
    /// only moves `lastRun` (every target changes that every interval). It starts at the clock's
    /// nanoseconds, so a restarted daemon never hands out a generation of its previous life.
    generation: AtomicU64,
    /// The last [`TargetsView::health_json`] answer and its generation, shared by every reader
    /// until the next change.
    health: Mutex<Option<(u64, Bytes)>>,
}

impl Default for TargetsView {
    fn default() -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX >> 1));
        TargetsView {
            all: RwLock::default(),
            generation: AtomicU64::new(start),
            health: Mutex::new(None),
        }
    }
}

/// One target as [`TargetsView::health_json`] lists it: what it is and its state, without the
/// time and duration of its last run.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthEntry<'a> {
    kind: &'a str,
    job: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a str>,
    url: &'a str,
    health: &'a str,
    last_error: &'a str,
}

impl TargetsView {
    /// Records one run of target `key`: in place when it is known (no allocation unless the
    /// error text grows; a thousand probes every 10 s run through here), else the entry
    /// `fallback` builds.
    pub fn record_run(&self, key: &str, run: Run<'_>, fallback: impl FnOnce() -> TargetHealth) {
        let mut all = self.all.write().unwrap_or_else(|p| p.into_inner());
        match all.get_mut(key) {
            Some(h) => {
                let health = if run.up { "up" } else { "down" };
                if h.health != health || h.last_error != run.error {
                    self.generation.fetch_add(1, Ordering::Release);
                }
                h.health = health;
                h.last_error.clear();
                h.last_error.push_str(run.error);
                h.last_run = Some(run.at);
                h.last_duration_seconds = run.duration_seconds;
                h.samples = run.samples;
            }
            None => {
                all.insert(key.to_string(), Box::new(fallback()));
                self.generation.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Keeps only these keys (after a reload).
    pub fn retain(&self, keys: &[String]) {
        let mut all = self.all.write().unwrap_or_else(|p| p.into_inner());
        let before = all.len();
        all.retain(|k, _| keys.contains(k));
        if all.len() != before {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
    /// True when every known target has run at least once.
    pub fn all_ran(&self) -> bool {
        self.all
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .all(|h| h.last_run.is_some())
    }

    /// Registers a target that has not run yet (health `unknown`), keeping a known one.
    pub fn register(&self, key: &str, h: TargetHealth) {
        let mut all = self.all.write().unwrap_or_else(|p| p.into_inner());
        if !all.contains_key(key) {
            all.insert(key.to_string(), Box::new(h));
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// The current generation of [`TargetsView::health_json`]: equal generations, equal
    /// answers. One atomic load, so an unchanged list is told apart without reading it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Every target's kind, job, name, URL, health and reason, in key order, as a JSON array,
    /// with its generation. Serialised once per generation: until a target's state changes,
    /// every call returns the same bytes.
    pub fn health_json(&self) -> (u64, Bytes) {
        let mut cached = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.generation();
        if let Some((generation, body)) = &*cached
            && *generation == now
        {
            return (now, body.clone());
        }
        let all = self.all.read().unwrap_or_else(|p| p.into_inner());
        // Writers raise the generation under the write lock: under the read lock it is the
        // one of the entries read here.
        let generation = self.generation();
        let mut keyed: Vec<(&String, &TargetHealth)> = all.iter().map(|(k, h)| (k, &**h)).collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let entries: Vec<HealthEntry<'_>> = keyed
            .into_iter()
            .map(|(_, h)| HealthEntry {
                kind: h.kind,
                job: &h.job,
                probe: h.probe.as_deref(),
                log: h.log.as_deref(),
                url: &h.url,
                health: h.health,
                last_error: &h.last_error,
            })
            .collect();
        // Strings and plain fields only: serialising cannot fail.
        let body = Bytes::from(serde_json::to_vec(&entries).unwrap_or_default());
        drop(all);
        *cached = Some((generation, body.clone()));
        (generation, body)
    }

    /// Every target, in key order.
    pub fn list(&self) -> Vec<TargetHealth> {
        let all = self.all.read().unwrap_or_else(|p| p.into_inner());
        let mut keyed: Vec<(&String, &TargetHealth)> = all.iter().map(|(k, h)| (k, &**h)).collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        keyed.into_iter().map(|(_, h)| h.clone()).collect()
    }
}

#[cfg(test)]
mod tests;
