//! Probe results and alert transitions: append-only, per-name histories read back by time
//! range for `/api/v1/history`.
//!
//! Key: name length (u16 BE) · name · time key · sequence (u64 BE). The length prefix keeps one
//! name's range from running into another's even when a name contains any byte; the sequence
//! (a store-wide id) keeps two records with the same millisecond apart.

use crate::series::{Labels, Timestamp};

use super::codec::{Decoder, Encoder, time_from_key, time_key};
use super::{Store, StoreError};

/// Format byte of [`ProbeRecord`] values.
const PROBE_V1: u8 = 1;
/// Format byte of [`AlertTransition`] values.
const TRANSITION_V1: u8 = 1;

/// One probe run, as kept in the history.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeRecord {
    /// The probe's configured name.
    pub probe: String,
    /// When the probe ran, in ms since the epoch.
    pub t: Timestamp,
    /// Whether every check of the probe passed.
    pub success: bool,
    /// How long the probe took, in seconds (as `probe_duration_seconds`).
    pub duration_seconds: f64,
    /// The HTTP status, when the probe got one.
    pub status: Option<u16>,
    /// Why it failed, in words ("status 503, expected 200"); empty on success.
    pub reason: String,
}

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

/// The key prefix of one name: u16 BE length, then the name.
pub(super) fn name_prefix(name: &str) -> Result<Vec<u8>, StoreError> {
    let len = u16::try_from(name.len()).map_err(|_| StoreError::InvalidRecord {
        reason: format!("name of {} bytes is longer than 65535", name.len()),
    })?;
    let mut k = Vec::with_capacity(2 + name.len() + 16);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    Ok(k)
}

/// Splits a history key into name prefix length, name and time.
pub(super) fn split_key(key: &[u8]) -> Option<(usize, &str, Timestamp)> {
    let len = usize::from(u16::from_be_bytes(key.get(..2)?.try_into().ok()?));
    let name = std::str::from_utf8(key.get(2..2 + len)?).ok()?;
    let t: [u8; 8] = key.get(2 + len..2 + len + 8)?.try_into().ok()?;
    if key.len() != 2 + len + 16 {
        return None;
    }
    Some((2 + len, name, time_from_key(t)))
}

fn encode_probe(r: &ProbeRecord) -> Vec<u8> {
    let mut e = Encoder::with_format(PROBE_V1);
    e.u8(u8::from(r.success))
        .f64(r.duration_seconds)
        // 0 means "no status", so that a record without one costs a single byte.
        .uvarint(r.status.map_or(0, |s| u64::from(s) + 1))
        .str(&r.reason);
    e.finish()
}

fn decode_probe(
    probe: &str,
    t: Timestamp,
    value: &[u8],
) -> Result<ProbeRecord, super::codec::DecodeError> {
    use super::codec::DecodeError;
    let (format, mut d) = Decoder::with_format(value)?;
    if format != PROBE_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let success = match d.u8()? {
        0 => false,
        1 => true,
        _ => return Err(DecodeError::OutOfRange),
    };
    let duration_seconds = d.f64()?;
    let status = match d.uvarint()? {
        0 => None,
        s => Some(u16::try_from(s - 1).map_err(|_| DecodeError::OutOfRange)?),
    };
    let reason = d.str()?.to_owned();
    d.finish()?;
    Ok(ProbeRecord {
        probe: probe.to_owned(),
        t,
        success,
        duration_seconds,
        status,
        reason,
    })
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
) -> Result<AlertTransition, super::codec::DecodeError> {
    use super::codec::DecodeError;
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

impl Store {
    /// Appends one probe result. Bulk write: durable within the periodic flush (see the module
    /// doc).
    pub fn append_probe(&self, r: &ProbeRecord) -> Result<(), StoreError> {
        const OP: &str = "appending a probe result";
        self.check_writable(OP)?;
        let key = self.history_key(&r.probe, r.t, OP)?;
        self.inner
            .trees
            .probes
            .insert(key, encode_probe(r))
            .map_err(StoreError::engine(OP))?;
        Ok(())
    }

    /// The results of `probe` with `since <= t <= until`, oldest first and newest last; with
    /// more than `limit` of them, the newest `limit`.
    pub fn probe_history(
        &self,
        probe: &str,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<ProbeRecord>, StoreError> {
        self.history(
            &self.inner.trees.probes,
            "probes",
            probe,
            since,
            until,
            limit,
            decode_probe,
        )
    }

    /// Appends one alert transition and flushes: on disk when this returns.
    pub fn append_alert_transition_durable(&self, r: &AlertTransition) -> Result<(), StoreError> {
        const OP: &str = "appending an alert transition";
        self.check_writable(OP)?;
        let key = self.history_key(&r.alertname, r.t, OP)?;
        let tree = &self.inner.trees.transitions;
        tree.insert(key, encode_transition(r))
            .map_err(StoreError::engine(OP))?;
        self.flush_durable(OP)
    }

    /// The transitions of alerts named `alertname` with `since <= t <= until`, newest last;
    /// with more than `limit` of them, the newest `limit`.
    pub fn alert_history(
        &self,
        alertname: &str,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, StoreError> {
        let tree = &self.inner.trees.transitions;
        self.history(
            tree,
            "alert_transitions",
            alertname,
            since,
            until,
            limit,
            decode_transition,
        )
    }

    fn history_key(
        &self,
        name: &str,
        t: Timestamp,
        op: &'static str,
    ) -> Result<Vec<u8>, StoreError> {
        let mut key = name_prefix(name)?;
        key.extend_from_slice(&time_key(t));
        let seq = self
            .inner
            .db
            .generate_id()
            .map_err(StoreError::engine(op))?;
        key.extend_from_slice(&seq.to_be_bytes());
        Ok(key)
    }

    #[allow(clippy::too_many_arguments)]
    fn history<R>(
        &self,
        tree: &sled::Tree,
        tree_name: &'static str,
        name: &str,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
        decode: fn(&str, Timestamp, &[u8]) -> Result<R, super::codec::DecodeError>,
    ) -> Result<Vec<R>, StoreError> {
        if since > until || limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = name_prefix(name)?;
        let mut lo = prefix.clone();
        lo.extend_from_slice(&time_key(since));
        lo.extend_from_slice(&[0; 8]);
        let mut hi = prefix;
        hi.extend_from_slice(&time_key(until));
        hi.extend_from_slice(&[0xff; 8]);
        let mut out = Vec::new();
        // Walk backwards from `until` so that the limit keeps the newest records without
        // reading the older ones at all.
        for kv in tree.range(lo..=hi).rev() {
            let (k, v) = kv.map_err(StoreError::engine("reading history"))?;
            let Some((_, _, t)) = split_key(&k) else {
                self.skip(tree_name, &"malformed key");
                continue;
            };
            match decode(name, t, &v) {
                Ok(r) => out.push(r),
                Err(e) => self.skip(tree_name, &e),
            }
            if out.len() == limit {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn probe(name: &str, t: i64, success: bool) -> ProbeRecord {
        ProbeRecord {
            probe: name.into(),
            t,
            success,
            duration_seconds: 0.25,
            status: if success { Some(200) } else { None },
            reason: if success {
                String::new()
            } else {
                "connection refused".into()
            },
        }
    }

    #[test]
    fn probe_history_is_newest_last_within_bounds_and_limit() {
        let (_dir, store) = temp_store();
        // Out of order, two at the same millisecond, a neighbour whose name extends this one.
        for t in [5_000, 1_000, 3_000, 3_000, 2_000, 4_000, -1_000] {
            store.append_probe(&probe("api", t, t != 2_000)).unwrap();
        }
        store.append_probe(&probe("api2", 3_500, true)).unwrap();
        store.append_probe(&probe("", 3_500, true)).unwrap();

        let all = store
            .probe_history("api", i64::MIN, i64::MAX, usize::MAX)
            .unwrap();
        let ts: Vec<i64> = all.iter().map(|r| r.t).collect();
        assert_eq!(ts, [-1_000, 1_000, 2_000, 3_000, 3_000, 4_000, 5_000]);
        assert!(all.iter().all(|r| r.probe == "api"));
        assert_eq!(all[2], probe("api", 2_000, false));

        let window = store
            .probe_history("api", 2_000, 4_000, usize::MAX)
            .unwrap();
        let ts: Vec<i64> = window.iter().map(|r| r.t).collect();
        assert_eq!(
            ts,
            [2_000, 3_000, 3_000, 4_000],
            "since and until are inclusive"
        );

        let newest = store.probe_history("api", i64::MIN, i64::MAX, 2).unwrap();
        let ts: Vec<i64> = newest.iter().map(|r| r.t).collect();
        assert_eq!(
            ts,
            [4_000, 5_000],
            "the limit keeps the newest, still newest last"
        );

        assert!(
            store
                .probe_history("api", 6_000, 7_000, 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .probe_history("api", 4_000, 2_000, 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .probe_history("nope", i64::MIN, i64::MAX, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .probe_history("", i64::MIN, i64::MAX, 10)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn probe_records_round_trip_odd_values() {
        let (_dir, store) = temp_store();
        let r = ProbeRecord {
            probe: "ünï\0code 🚀".into(),
            t: 1_700_000_000_123,
            success: false,
            duration_seconds: f64::INFINITY,
            status: Some(u16::MAX),
            reason: "json database = \"disconnected\"".into(),
        };
        store.append_probe(&r).unwrap();
        let nan = ProbeRecord {
            t: r.t + 1,
            duration_seconds: f64::NAN,
            status: Some(0),
            ..r.clone()
        };
        store.append_probe(&nan).unwrap();
        let back = store.probe_history(&r.probe, 0, i64::MAX, 10).unwrap();
        assert_eq!(back[0], r);
        assert!(back[1].duration_seconds.is_nan());
        assert_eq!(back[1].status, Some(0));
    }

    #[test]
    fn alert_history_round_trips() {
        let (_dir, store) = temp_store();
        let labels = Labels::new([
            ("alertname", "HighErrors"),
            ("job", "api"),
            ("severity", "page"),
        ]);
        let tr = |t, from: &str, to: &str| AlertTransition {
            t,
            alertname: "HighErrors".into(),
            labels: labels.clone(),
            from: from.into(),
            to: to.into(),
            value: 0.07,
        };
        store
            .append_alert_transition_durable(&tr(10, "inactive", "pending"))
            .unwrap();
        store
            .append_alert_transition_durable(&tr(20, "pending", "firing"))
            .unwrap();
        store
            .append_alert_transition_durable(&tr(30, "firing", "resolved"))
            .unwrap();
        let h = store.alert_history("HighErrors", 0, 100, 100).unwrap();
        assert_eq!(
            h,
            vec![
                tr(10, "inactive", "pending"),
                tr(20, "pending", "firing"),
                tr(30, "firing", "resolved")
            ]
        );
        assert_eq!(
            store.alert_history("HighErrors", 15, 25, 100).unwrap(),
            vec![tr(20, "pending", "firing")]
        );
        assert!(
            store
                .alert_history("Other", 0, 100, 100)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unknown_format_byte_is_skipped_and_counted() {
        let (_dir, store) = temp_store();
        store.append_probe(&probe("api", 1_000, true)).unwrap();
        store.append_probe(&probe("api", 3_000, true)).unwrap();
        let mut key = name_prefix("api").unwrap();
        key.extend_from_slice(&time_key(2_000));
        key.extend_from_slice(&7u64.to_be_bytes());
        put_raw(&store, "probes", &key, &[99, 1, 2, 3]);
        // A truncated value and a malformed key are skipped the same way.
        key.extend_from_slice(b"junk");
        put_raw(&store, "probes", &key, &[PROBE_V1, 1]);
        let h = store.probe_history("api", 0, 10_000, 10).unwrap();
        assert_eq!(h.iter().map(|r| r.t).collect::<Vec<_>>(), [1_000, 3_000]);
        assert_eq!(store.skipped_records(), 2);
    }

    #[test]
    fn keys_order_by_time() {
        let (_dir, store) = temp_store();
        for t in [300, -5, 100, 200] {
            store.append_probe(&probe("p", t, true)).unwrap();
        }
        let ts: Vec<i64> = raw_keys(&store, "probes")
            .iter()
            .map(|k| split_key(k).unwrap().2)
            .collect();
        assert_eq!(ts, [-5, 100, 200, 300]);
    }

    #[test]
    fn overlong_names_are_refused() {
        let (_dir, store) = temp_store();
        let e = store
            .append_probe(&probe(&"x".repeat(70_000), 1, true))
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidRecord { .. }));
    }
}
