//! The health of every scrape target and probe, for `GET /api/v1/targets`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One target's last run.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    /// `scrape` or `probe`.
    pub kind: &'static str,
    /// The job (scrape job, or the probe's `job`).
    pub job: String,
    /// The probe's name, for probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
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

/// Every target's health, by a stable key.
#[derive(Default)]
pub struct TargetsView {
    all: RwLock<BTreeMap<String, TargetHealth>>,
}

impl TargetsView {
    /// Records a target's state.
    pub fn set(&self, key: &str, h: TargetHealth) {
        self.all
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), h);
    }
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
                all.insert(key.to_string(), fallback());
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
            .or_insert(h);
    }

    /// Every target, in key order.
    pub fn list(&self) -> Vec<TargetHealth> {
        self.all
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
