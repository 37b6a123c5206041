//! The health of every scrape target and probe: written by their loops, read by the rules
//! engine (its first round waits until each has run once) and by `GET /api/v1/targets`.

use std::collections::HashMap;
use std::sync::RwLock;

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
#[derive(Default)]
pub struct TargetsView {
    all: RwLock<HashMap<String, Box<TargetHealth>>>,
}

impl TargetsView {
    /// Records one run of target `key`: in place when it is known (no allocation unless the
    /// error text grows; a thousand probes every 10 s run through here), else the entry
    /// `fallback` builds.
    pub fn record_run(&self, key: &str, run: Run<'_>, fallback: impl FnOnce() -> TargetHealth) {
        let mut all = self.all.write().unwrap_or_else(|p| p.into_inner());
        match all.get_mut(key) {
            Some(h) => {
                h.health = if run.up { "up" } else { "down" };
                h.last_error.clear();
                h.last_error.push_str(run.error);
                h.last_run = Some(run.at);
                h.last_duration_seconds = run.duration_seconds;
                h.samples = run.samples;
            }
            None => {
                all.insert(key.to_string(), Box::new(fallback()));
            }
        }
    }

    /// Keeps only these keys (after a reload).
    pub fn retain(&self, keys: &[String]) {
        self.all
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| keys.contains(k));
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
        self.all
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_insert_with(|| Box::new(h));
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
