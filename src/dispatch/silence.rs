//! Silences, with Alertmanager's semantics: a silence mutes every alert whose labels match all
//! its matchers while `startsAt <= now < endsAt`. Expired silences are kept (listed) for a
//! while, then forgotten.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::{Matcher, matches_all};
use crate::series::Labels;

/// How long an expired silence stays listed, as Alertmanager's default data retention.
pub const EXPIRED_RETENTION: chrono::Duration = chrono::Duration::hours(120);

/// A silence as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Random id.
    pub id: String,
    /// Matchers in Alertmanager syntax, as given.
    pub matchers: Vec<String>,
    /// When it starts muting.
    pub starts_at: DateTime<Utc>,
    /// When it stops muting.
    pub ends_at: DateTime<Utc>,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// `pending`, `active` or `expired`.
pub fn state(s: &Silence, now: DateTime<Utc>) -> &'static str {
    if now < s.starts_at {
        "pending"
    } else if now < s.ends_at {
        "active"
    } else {
        "expired"
    }
}

/// The silences, with their matchers parsed.
#[derive(Debug, Default)]
pub struct Silences {
    all: HashMap<String, (Silence, Vec<Matcher>)>,
}

impl Silences {
    /// Adds or replaces a silence; fails when a matcher does not parse.
    pub fn insert(&mut self, s: Silence) -> Result<(), String> {
        let ms = s
            .matchers
            .iter()
            .map(|m| Matcher::parse(m).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if ms.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if ms.iter().all(|m| m.matches_value("")) {
            return Err("a silence must not match every alert: at least one matcher must not match the empty string".into());
        }
        self.all.insert(s.id.clone(), (s, ms));
        Ok(())
    }

    /// The silence with this id.
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.all.get(id).map(|(s, _)| s)
    }

    /// Expires a silence now; returns the changed silence.
    pub fn expire(&mut self, id: &str, now: DateTime<Utc>) -> Option<Silence> {
        let (s, _) = self.all.get_mut(id)?;
        if now < s.starts_at {
            s.starts_at = now;
        }
        if s.ends_at > now {
            s.ends_at = now;
        }
        s.updated_at = now;
        Some(s.clone())
    }

    /// The id of an active silence that mutes these labels.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> Option<&str> {
        self.all
            .values()
            .find(|(s, ms)| s.starts_at <= now && now < s.ends_at && matches_all(ms, labels))
            .map(|(s, _)| s.id.as_str())
    }

    /// Every silence, newest first.
    pub fn list(&self) -> Vec<Silence> {
        let mut v: Vec<Silence> = self.all.values().map(|(s, _)| s.clone()).collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        v
    }

    /// Forgets silences expired longer than the retention; returns their ids.
    pub fn gc(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let old: Vec<String> = self
            .all
            .values()
            .filter(|(s, _)| now - s.ends_at > EXPIRED_RETENTION)
            .map(|(s, _)| s.id.clone())
            .collect();
        for id in &old {
            self.all.remove(id);
        }
        old
    }
}
