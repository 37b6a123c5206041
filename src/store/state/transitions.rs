//! Alert transitions: per alert name, in time order, read back by time range for
//! `/api/v1/history`. A few a day, each written durably on its own.
//!
//! Tree `alert_transitions`. Key: name length (u16 BE) · name · time key · sequence (a
//! store-wide id, so two transitions of one millisecond differ). Value: format byte
//! [`TRANSITION_V1`] · label set · from · to · value (f64).

use crate::series::{Labels, Timestamp};

use super::super::StoreError;
use super::super::codec::{DecodeError, Decoder, Encoder, time_from_key, time_key};
use super::StateStore;

/// Format byte of [`AlertTransition`] values.
const TRANSITION_V1: u8 = 1;
/// The tree's name, for messages.
const TREE: &str = "alert_transitions";

/// One change of an alert's state, as kept in the history.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertTransition {
    /// When the transition happened, in ms since the epoch.
    pub t: Timestamp,
    /// The alert's name; the history is kept and queried per name.
    pub alertname: String,
    /// The alert's full label set.
    pub labels: Labels,
    /// The state it left (`inactive`, `pending`, `firing`).
    pub from: String,
    /// The state it entered (`pending`, `firing`, `resolved`, `inactive`).
    pub to: String,
    /// The expression's value at the transition.
    pub value: f64,
}

/// A name's length as its key prefix holds it, or why it cannot be stored.
fn name_len(name: &str) -> Result<u16, StoreError> {
    u16::try_from(name.len()).map_err(|_| StoreError::InvalidRecord {
        reason: format!("name of {} bytes is longer than 65535", name.len()),
    })
}

/// The key prefix of one name: u16 BE length, then the name.
fn name_prefix(name: &str) -> Result<Vec<u8>, StoreError> {
    let len = name_len(name)?;
    let mut k = Vec::with_capacity(2 + name.len() + 16);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    Ok(k)
}

/// Splits a key into name prefix length, name and time.
fn split_key(key: &[u8]) -> Option<(usize, &str, Timestamp)> {
    let len = usize::from(u16::from_be_bytes(key.get(..2)?.try_into().ok()?));
    let name = std::str::from_utf8(key.get(2..2 + len)?).ok()?;
    let t: [u8; 8] = key.get(2 + len..2 + len + 8)?.try_into().ok()?;
    if key.len() != 2 + len + 16 {
        return None;
    }
    Some((2 + len, name, time_from_key(t)))
}

fn encode_transition(r: &AlertTransition) -> Vec<u8> {
    let mut e = Encoder::with_format(TRANSITION_V1);
    e.labels(&r.labels).str(&r.from).str(&r.to).f64(r.value);
    e.finish()
}

fn decode_transition(
    alertname: &str,
    t: Timestamp,
    value: &[u8],
) -> Result<AlertTransition, DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    if format != TRANSITION_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let labels = d.labels()?;
    let from = d.str()?.to_owned();
    let to = d.str()?.to_owned();
    let value = d.f64()?;
    d.finish()?;
    Ok(AlertTransition {
        t,
        alertname: alertname.to_owned(),
        labels,
        from,
        to,
        value,
    })
}

impl StateStore {
    /// Appends one alert transition and flushes: on disk when this returns.
    pub fn append_alert_transition_durable(&self, r: &AlertTransition) -> Result<(), StoreError> {
        const OP: &str = "appending an alert transition";
        self.shared.check_writable(OP)?;
        let mut key = name_prefix(&r.alertname)?;
        key.extend_from_slice(&time_key(r.t));
        key.extend_from_slice(&self.shared.generate_id(OP)?.to_be_bytes());
        self.trees
            .transitions
            .insert(key, encode_transition(r))
            .map_err(StoreError::engine(OP))?;
        self.shared.flush_durable(OP)
    }

    /// The transitions of alerts named `alertname` with `since <= t <= until`, newest last;
    /// with more than `limit` of them, the newest `limit`. Records that do not decode are
    /// skipped and counted.
    pub fn alert_history(
        &self,
        alertname: &str,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, StoreError> {
        if since > until || limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = name_prefix(alertname)?;
        let mut lo = prefix.clone();
        lo.extend_from_slice(&time_key(since));
        lo.extend_from_slice(&[0; 8]);
        let mut hi = prefix;
        hi.extend_from_slice(&time_key(until));
        hi.extend_from_slice(&[0xff; 8]);
        let mut out = Vec::new();
        // Walk backwards from `until` so that the limit keeps the newest records without
        // reading the older ones at all.
        for kv in self.trees.transitions.range(lo..=hi).rev() {
            let (k, v) = kv.map_err(StoreError::engine("reading history"))?;
            let Some((_, _, t)) = split_key(&k) else {
                self.shared.skip(TREE, &"malformed key");
                continue;
            };
            match decode_transition(alertname, t, &v) {
                Ok(r) => out.push(r),
                Err(e) => self.shared.skip(TREE, &e),
            }
            if out.len() == limit {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Deletes transitions older than `before`, name by name from `resume` (where the previous
    /// step stopped; the caller keeps it between steps), at most `budget` of them (counted
    /// down). Returns how many it deleted and whether none older is left. Single-key removes:
    /// sled's atomic batches take a store-wide write lock.
    pub(in crate::store) fn prune_transitions(
        &self,
        before: Timestamp,
        resume: &mut Vec<u8>,
        budget: &mut usize,
    ) -> Result<(u64, bool), StoreError> {
        const OP: &str = "pruning old records";
        let tree = &self.trees.transitions;
        let mut deleted = 0;
        while *budget > 0 {
            // The next name at or after the resume point.
            let first = tree
                .range(resume.as_slice()..)
                .next()
                .transpose()
                .map_err(StoreError::engine(OP))?;
            let Some((key, _)) = first else {
                return Ok((deleted, true));
            };
            let Some((prefix_len, _, _)) = split_key(&key) else {
                // A key of no known shape: step over it rather than guess what it holds.
                self.shared.skip("prune", &"malformed key");
                *resume = key.to_vec();
                resume.push(0);
                continue;
            };
            let prefix = &key[..prefix_len];
            let mut end = prefix.to_vec();
            end.extend_from_slice(&time_key(before));
            for k in tree.range(prefix..end.as_slice()).keys() {
                if *budget == 0 {
                    *resume = prefix.to_vec();
                    return Ok((deleted, false));
                }
                let k = k.map_err(StoreError::engine(OP))?;
                if tree.remove(&k).map_err(StoreError::engine(OP))?.is_some() {
                    deleted += 1;
                }
                *budget -= 1;
            }
            // Past every key of this name: suffixes are 16 bytes, and no other name's prefix
            // starts with this one (names are length-prefixed).
            *resume = prefix.to_vec();
            resume.extend_from_slice(&[0xff; 17]);
        }
        Ok((deleted, false))
    }
}

#[cfg(test)]
mod tests;
