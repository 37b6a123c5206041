//! The notification log: per receiver and group, what was last notified and when. It decides
//! what is new, what is a repeat and what is resolved — Alertmanager's `DedupStage`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a receiver was last told about a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NlogEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Fingerprints of the firing alerts in that notification.
    pub firing: BTreeSet<u64>,
    /// Fingerprints of the resolved alerts in it.
    pub resolved: BTreeSet<u64>,
}

/// Whether a group with these firing and resolved alerts must be notified again
/// (Alertmanager's `needsUpdate`).
pub fn needs_update(
    entry: Option<&NlogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat: chrono::Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some(e) = entry else {
        // Never notified: only when something fires (resolved-only groups were never seen).
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: notify if the receiver was told something was firing, so its
        // state is cleared (and the log with it), whatever send_resolved says.
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&e.resolved) {
        return true;
    }
    e.at <= now - repeat
}

#[cfg(test)]
mod tests;
