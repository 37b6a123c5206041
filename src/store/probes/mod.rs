//! The probe-result log: every probe run, per probe, read back by time range for
//! `/api/v1/history`. [`ProbeLog`] is its handle.
//!
//! Results go to the history files (see the `files` module), in the compact block format of
//! this module ([`PROBE_BLOCK_V3`]): until its block is written a result is buffered in memory
//! and, within half a second, in a *journal* record of the current log file
//! ([`ProbeLog::write_probe_journal`], every [`PROBE_JOURNAL_EVERY`]); once a minute the buffer
//! becomes one block per probe, all in one blocks record ([`ProbeLog::write_probe_results`]).
//! A block holds at most [`BLOCK_MAX_RECORDS`] results over at most [`BLOCK_MAX_SPAN_MS`].
//!
//! Probe results are kept out of sled because sled's memory grows with the keys it holds, and
//! a key per probe and minute would grow without bound with the history.

mod files;

pub use files::{HISTORY_MAX_SPAN_MS, LOG_MAX_BYTES};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{info, warn};

use crate::series::Timestamp;

use super::StoreError;
use super::codec::{DecodeError, Decoder, Encoder};
use super::shared::{Bulk, Shared};
use files::{HistoryFiles, KIND_BLOCKS, KIND_JOURNAL, Written, encode_blocks_record};

/// Format byte of a block of one probe's results (see [`encode_probe_block`]): ~7 bytes a
/// result.
const PROBE_BLOCK_V3: u8 = 3;
/// [`PROBE_BLOCK_V3`] flags of one result.
const V3_SUCCESS: u8 = 1;
/// The result has a status...
const V3_STATUS: u8 = 1 << 1;
/// ...the same as the previous result's, not written again.
const V3_SAME_STATUS: u8 = 1 << 2;
/// The result has a reason (a string follows).
const V3_REASON: u8 = 1 << 3;
/// The duration is a whole number of nanoseconds (a uvarint follows) rather than an f64.
const V3_NANOS: u8 = 1 << 4;
/// Format byte of a journal record: uvarint count, then per result the probe's name, its time
/// (varint) and its fields ([`encode_fields`]).
const JOURNAL_V1: u8 = 1;
/// The buffer becomes blocks once its oldest result is this old.
pub const PROBE_BLOCK_AGE_MS: i64 = 60_000;
/// How often the daemon writes the journal ([`ProbeLog::write_probe_journal`]), synced: a
/// result is on disk within about half a second.
pub const PROBE_JOURNAL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Results per block at most.
const BLOCK_MAX_RECORDS: usize = 64;
/// Time between a block's first and last result at most.
const BLOCK_MAX_SPAN_MS: i64 = 300_000;
/// Buffered results beyond which an append writes the blocks itself (no block write came).
const MAX_BUFFERED: usize = 100_000;
/// Probe names are at most this long, as alert names in the alert history are.
const NAME_MAX: usize = u16::MAX as usize;

/// Handle to the probe-result log: cheap to clone, every clone the same log. Its owner is the
/// probe runner's sink (appends); the daemon's journal loop writes the journal and the blocks,
/// the API reads.
#[derive(Clone)]
pub struct ProbeLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Results not written as blocks yet: each probe's are written together as one block (see
    /// [`ProbeLog::append_probe`]).
    buffer: Mutex<ProbeBuffer>,
    /// The files holding the results.
    files: HistoryFiles,
}

/// The last handle writes the buffered results (the daemon flushes explicitly on stop; this
/// covers tools and tests that just drop the store).
impl Drop for ProbeLog {
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            let _ = self.write_probe_results(None);
        }
    }
}

impl std::fmt::Debug for ProbeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeLog")
            .field("dir", &self.inner.files.dir())
            .finish_non_exhaustive()
    }
}

/// Probe results not in blocks yet.
#[derive(Default)]
struct ProbeBuffer {
    /// Every buffered result, per probe, in the order it came.
    by_probe: std::collections::HashMap<String, Vec<ProbeRecord>>,
    /// Results in `by_probe` that no journal record holds yet.
    unjournaled: Vec<ProbeRecord>,
    /// The oldest buffered result's time.
    oldest: Option<Timestamp>,
    /// Results in `by_probe`.
    len: usize,
}

impl ProbeBuffer {
    fn push(&mut self, r: ProbeRecord) {
        self.oldest = Some(self.oldest.map_or(r.t, |o| o.min(r.t)));
        self.len += 1;
        match self.by_probe.get_mut(r.probe.as_str()) {
            Some(list) => list.push(r),
            None => {
                self.by_probe.insert(r.probe.clone(), vec![r]);
            }
        }
    }

    /// After a failed write the log was abandoned with the journal records in it (see
    /// `files`): every buffered result goes to the next journal record again.
    fn journal_all_again(&mut self) {
        self.unjournaled = self.by_probe.values().flatten().cloned().collect();
        self.unjournaled.sort_by_key(|r| r.t);
    }
}

/// One probe's block, encoded.
pub(super) struct EncodedBlock<'a> {
    pub(super) name: &'a str,
    /// Its first and last result's time.
    pub(super) first: Timestamp,
    pub(super) last: Timestamp,
    pub(super) bytes: Vec<u8>,
}

/// `records` (of any probes, in any order; sorted by this) as blocks of at most
/// [`BLOCK_MAX_RECORDS`] results over at most [`BLOCK_MAX_SPAN_MS`].
pub(super) fn encode_blocks(records: &mut [ProbeRecord]) -> Vec<EncodedBlock<'_>> {
    records.sort_by(|a, b| a.probe.cmp(&b.probe).then(a.t.cmp(&b.t)));
    let mut out = Vec::new();
    let mut rest: &[ProbeRecord] = records;
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .position(|r| r.probe != first.probe)
            .unwrap_or(rest.len());
        let (one, tail) = rest.split_at(n);
        split_blocks(one, &mut out);
        rest = tail;
    }
    out
}

/// One probe's `records`, sorted by time, as blocks appended to `out`.
fn split_blocks<'a>(records: &'a [ProbeRecord], out: &mut Vec<EncodedBlock<'a>>) {
    let mut rest = records;
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take(BLOCK_MAX_RECORDS)
            .take_while(|r| r.t - first.t <= BLOCK_MAX_SPAN_MS)
            .count();
        let (block, tail) = rest.split_at(n);
        out.push(EncodedBlock {
            name: &first.probe,
            first: first.t,
            last: block.last().map_or(first.t, |r| r.t),
            bytes: encode_probe_block(block),
        });
        rest = tail;
    }
}

/// A result's fields after its name and time: success byte, duration (f64), status + 1 (0 for
/// none), reason.
fn encode_fields(e: &mut Encoder, r: &ProbeRecord) {
    e.u8(u8::from(r.success))
        .f64(r.duration_seconds)
        // 0 means "no status", so that a record without one costs a single byte.
        .uvarint(r.status.map_or(0, |s| u64::from(s) + 1))
        .str(&r.reason);
}

fn encode_journal(records: &[ProbeRecord]) -> Vec<u8> {
    let mut e = Encoder::with_format(JOURNAL_V1);
    e.uvarint(records.len() as u64);
    for r in records {
        e.str(&r.probe).ivarint(r.t);
        encode_fields(&mut e, r);
    }
    e.finish()
}

fn decode_journal(value: &[u8]) -> Result<Vec<ProbeRecord>, DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    if format != JOURNAL_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let n = d.uvarint()?;
    if n > d.remaining() as u64 / 13 {
        return Err(DecodeError::OutOfRange);
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let name = d.str()?.to_owned();
        let t = d.ivarint()?;
        let mut r = decode_probe_fields("", t, &mut d)?;
        r.probe = name;
        out.push(r);
    }
    d.finish()?;
    Ok(out)
}

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The nanoseconds a duration in seconds is exactly, if it is a whole number of them that
/// converts back to the same f64 (a measured duration is: it came from nanoseconds).
fn whole_nanos(seconds: f64) -> Option<u64> {
    if !(0.0..1e6).contains(&seconds) {
        return None;
    }
    let n = (seconds * 1e9).round() as u64;
    ((n as f64 / 1e9).to_bits() == seconds.to_bits()).then_some(n)
}

/// One block of a probe's results, sorted by time, timed by the first ([`PROBE_BLOCK_V3`]).
/// Per result: its time as the change of the interval since the previous one (zigzag
/// varint; a probe runs at a steady interval, so this is a byte), a flags byte (success,
/// status, same status as the previous result, reason, duration in nanoseconds), the status
/// when it changed (uvarint), the duration (uvarint nanoseconds, or the f64 when it is not a
/// whole number of them), the reason when there is one. A stored result takes ~7 bytes: the
/// history is what grows the store on disk over days.
fn encode_probe_block(records: &[ProbeRecord]) -> Vec<u8> {
    let mut e = Encoder::with_format(PROBE_BLOCK_V3);
    e.uvarint(records.len() as u64);
    let (mut prev_t, mut prev_dt) = (records.first().map_or(0, |r| r.t), 0i64);
    let mut prev_status = None;
    for r in records {
        let dt = r.t.wrapping_sub(prev_t);
        e.ivarint(dt.wrapping_sub(prev_dt));
        (prev_t, prev_dt) = (r.t, dt);
        let nanos = whole_nanos(r.duration_seconds);
        let mut flags = 0;
        if r.success {
            flags |= V3_SUCCESS;
        }
        if r.status.is_some() {
            flags |= V3_STATUS;
            if r.status == prev_status {
                flags |= V3_SAME_STATUS;
            }
        }
        if !r.reason.is_empty() {
            flags |= V3_REASON;
        }
        if nanos.is_some() {
            flags |= V3_NANOS;
        }
        e.u8(flags);
        if let Some(s) = r.status.filter(|_| flags & V3_SAME_STATUS == 0) {
            e.uvarint(u64::from(s));
        }
        match nanos {
            Some(n) => e.uvarint(n),
            None => e.f64(r.duration_seconds),
        };
        if !r.reason.is_empty() {
            e.str(&r.reason);
        }
        prev_status = r.status;
    }
    e.finish()
}

/// The results of a [`PROBE_BLOCK_V3`] block after its format byte; the first at `t`.
fn decode_probe_block_v3(
    probe: &str,
    t: Timestamp,
    mut d: Decoder<'_>,
) -> Result<Vec<ProbeRecord>, DecodeError> {
    let n = d.uvarint()?;
    // Every result takes at least 3 bytes: a count beyond that is corrupt.
    if n > d.remaining() as u64 / 3 {
        return Err(DecodeError::OutOfRange);
    }
    let mut out = Vec::with_capacity(n as usize);
    let (mut prev_t, mut prev_dt) = (t, 0i64);
    let mut prev_status = None;
    for _ in 0..n {
        let dt = prev_dt.wrapping_add(d.ivarint()?);
        let at = prev_t.checked_add(dt).ok_or(DecodeError::OutOfRange)?;
        (prev_t, prev_dt) = (at, dt);
        let flags = d.u8()?;
        if flags & !(V3_SUCCESS | V3_STATUS | V3_SAME_STATUS | V3_REASON | V3_NANOS) != 0 {
            return Err(DecodeError::OutOfRange);
        }
        let status = match (flags & V3_STATUS != 0, flags & V3_SAME_STATUS != 0) {
            (false, false) => None,
            (true, true) => Some(prev_status.ok_or(DecodeError::OutOfRange)?),
            (true, false) => {
                Some(u16::try_from(d.uvarint()?).map_err(|_| DecodeError::OutOfRange)?)
            }
            (false, true) => return Err(DecodeError::OutOfRange),
        };
        let duration_seconds = if flags & V3_NANOS != 0 {
            d.uvarint()? as f64 / 1e9
        } else {
            d.f64()?
        };
        let reason = if flags & V3_REASON != 0 {
            d.str()?.to_owned()
        } else {
            String::new()
        };
        prev_status = status;
        out.push(ProbeRecord {
            probe: probe.to_owned(),
            t: at,
            success: flags & V3_SUCCESS != 0,
            duration_seconds,
            status,
            reason,
        });
    }
    d.finish()?;
    Ok(out)
}

/// The results in a block of `probe`'s results whose first is at `t`.
pub(super) fn decode_probes(
    probe: &str,
    t: Timestamp,
    value: &[u8],
) -> Result<Vec<ProbeRecord>, DecodeError> {
    let (format, d) = Decoder::with_format(value)?;
    match format {
        PROBE_BLOCK_V3 => decode_probe_block_v3(probe, t, d),
        f => Err(DecodeError::UnknownFormat(f)),
    }
}

fn decode_probe_fields(
    probe: &str,
    t: Timestamp,
    d: &mut Decoder<'_>,
) -> Result<ProbeRecord, DecodeError> {
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
    Ok(ProbeRecord {
        probe: probe.to_owned(),
        t,
        success,
        duration_seconds,
        status,
        reason,
    })
}

impl ProbeLog {
    /// Opens the history directory of the store, sealing the logs a previous run left.
    pub(super) fn open(shared: Arc<Shared>) -> Result<ProbeLog, StoreError> {
        let (files, report) = HistoryFiles::open(shared.path.join(files::DIR_NAME))?;
        for damage in &report.damaged {
            warn!(%damage, "probe history damaged: read up to the damage");
        }
        shared.count_skipped(report.damaged.len() as u64);
        if report.sealed_logs > 0 {
            info!(
                files = report.sealed_logs,
                journaled = report.journaled,
                "sealed the probe history files left by the previous run"
            );
        }
        Ok(ProbeLog {
            inner: Arc::new(Inner {
                shared,
                buffer: Mutex::new(ProbeBuffer::default()),
                files,
            }),
        })
    }

    /// Takes one probe result: buffered, in the journal at the next
    /// [`ProbeLog::write_probe_journal`], in its probe's block within a minute
    /// ([`ProbeLog::write_probe_results`]). Reads see it at once.
    pub fn append_probe(&self, r: &ProbeRecord) -> Result<(), StoreError> {
        const OP: &str = "appending a probe result";
        self.inner.shared.check_writable(OP)?;
        if r.probe.len() > NAME_MAX {
            return Err(StoreError::InvalidRecord {
                reason: format!("name of {} bytes is longer than 65535", r.probe.len()),
            });
        }
        let written = {
            let mut buf = lock(&self.inner.buffer);
            buf.push(r.clone());
            buf.unjournaled.push(r.clone());
            if buf.len > MAX_BUFFERED {
                Some(self.write_blocks(&mut buf, OP)?.1)
            } else {
                None
            }
        };
        if let Some(w) = written {
            w.sync(self.inner.files.dir())?;
            self.seal_history();
        }
        Ok(())
    }

    /// Writes the results no journal record holds yet as one journal record of the history
    /// log, synced: on disk when this returns. Returns how many.
    pub fn write_probe_journal(&self) -> Result<usize, StoreError> {
        let r = self.write_probe_journal_inner();
        self.inner.shared.note_bulk(Bulk::Probes, r)
    }

    fn write_probe_journal_inner(&self) -> Result<usize, StoreError> {
        const OP: &str = "journaling probe results";
        let (n, written) = {
            let mut buf = lock(&self.inner.buffer);
            if buf.unjournaled.is_empty() {
                return Ok(0);
            }
            self.inner.shared.check_writable(OP)?;
            let body = encode_journal(&buf.unjournaled);
            let min_t = buf.unjournaled.iter().map(|r| r.t).min().unwrap_or(0);
            let max_t = buf.unjournaled.iter().map(|r| r.t).max().unwrap_or(0);
            let written = self.append_record(&mut buf, KIND_JOURNAL, &body, (min_t, max_t), OP)?;
            let n = buf.unjournaled.len();
            buf.unjournaled.clear();
            (n, written)
        };
        // Synced without the buffer's lock: probes append while the disk works.
        written.sync(self.inner.files.dir())?;
        Ok(n)
    }

    /// Writes every buffered result as blocks, one or more per probe, in one blocks record of
    /// the history log (which supersedes the journal records before it) — when the oldest is
    /// `PROBE_BLOCK_AGE_MS` older than `now`, or always with `None` — and seals the log if that
    /// completed it. The daemon's journal loop calls it at every tick; the store's flush with
    /// `None`.
    /// Returns the results written; on an error they stay buffered (and journaled again).
    pub fn write_probe_results(&self, now: Option<Timestamp>) -> Result<usize, StoreError> {
        let r = self.write_probe_results_inner(now);
        self.inner.shared.note_bulk(Bulk::Probes, r)
    }

    fn write_probe_results_inner(&self, now: Option<Timestamp>) -> Result<usize, StoreError> {
        const OP: &str = "writing probe results";
        let (n, written) = {
            let mut buf = lock(&self.inner.buffer);
            match (now, buf.oldest) {
                (_, None) => return Ok(0),
                (Some(now), Some(oldest)) if now - oldest < PROBE_BLOCK_AGE_MS => return Ok(0),
                _ => {
                    self.inner.shared.check_writable(OP)?;
                    self.write_blocks(&mut buf, OP)?
                }
            }
        };
        written.sync(self.inner.files.dir())?;
        self.seal_history();
        Ok(n)
    }

    /// Seals the retired history logs. A failure leaves them retired, still read, for the
    /// next call: the results are on disk either way, so it is a warning, not a failed write
    /// (a full disk shows in the next journal write).
    fn seal_history(&self) {
        if let Err(e) = self.inner.files.seal_retired() {
            warn!(error = %e, "cannot seal a probe history file yet; it stays readable as it is");
        }
    }

    /// Writes the buffer as one blocks record and empties it; the record is to be synced.
    fn write_blocks(
        &self,
        buf: &mut ProbeBuffer,
        op: &'static str,
    ) -> Result<(usize, Written), StoreError> {
        let mut blocks = Vec::new();
        for records in buf.by_probe.values_mut() {
            records.sort_by_key(|r| r.t);
        }
        for records in buf.by_probe.values() {
            split_blocks(records, &mut blocks);
        }
        let body = encode_blocks_record(&blocks);
        let min_t = blocks.iter().map(|b| b.first).min().unwrap_or(0);
        let max_t = blocks.iter().map(|b| b.last).max().unwrap_or(0);
        drop(blocks);
        let written = self.append_record(buf, KIND_BLOCKS, &body, (min_t, max_t), op)?;
        let n = buf.len;
        *buf = ProbeBuffer::default();
        Ok((n, written))
    }

    /// Appends one record of `kind` holding results from `min_t` to `max_t` to the history
    /// log. A failed write abandons the log with the journal records in it, so every result
    /// `buf` holds goes to the next journal record again.
    fn append_record(
        &self,
        buf: &mut ProbeBuffer,
        kind: u8,
        body: &[u8],
        (min_t, max_t): (Timestamp, Timestamp),
        op: &'static str,
    ) -> Result<Written, StoreError> {
        let mut new_id = || self.inner.shared.generate_id(op);
        let written = self
            .inner
            .files
            .append(kind, body, min_t, max_t, &mut new_id);
        if written.is_err() {
            buf.journal_all_again();
        }
        written
    }

    /// The results of `probe` with `since <= t <= until`, oldest first and newest last; with
    /// more than `limit` of them, the newest `limit`. Buffered results included.
    pub fn probe_history(
        &self,
        probe: &str,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<ProbeRecord>, StoreError> {
        if since > until || limit == 0 {
            return Ok(Vec::new());
        }
        let mut out: Vec<ProbeRecord> = lock(&self.inner.buffer)
            .by_probe
            .get(probe)
            .into_iter()
            .flatten()
            .filter(|r| since <= r.t && r.t <= until)
            .cloned()
            .collect();
        if out.len() < limit {
            let skip = |e: &dyn std::fmt::Display| self.inner.shared.skip("history", e);
            out.extend(
                self.inner
                    .files
                    .read(probe, since, until, limit - out.len(), &skip),
            );
        }
        // Sources are read newest first and stop once they have `limit` results; the sort
        // orders the buffered, logged and sealed results among each other.
        out.sort_by_key(|r| r.t);
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        Ok(out)
    }

    /// Caps the span of results one history file holds (see [`HISTORY_MAX_SPAN_MS`]).
    pub(super) fn set_max_span(&self, ms: i64) {
        self.inner.files.set_max_span(ms);
    }

    /// Deletes up to `budget` history files whose newest result is older than `before`;
    /// returns how many, the regions (one probe's results in one file) they held, and whether
    /// more are left.
    pub(super) fn prune_files(
        &self,
        before: Timestamp,
        budget: usize,
    ) -> Result<(u64, u64, bool), StoreError> {
        self.inner.files.prune(before, budget)
    }

    /// Makes the next write to the history log fail half-way, as a full disk would (for
    /// tests).
    #[cfg(test)]
    pub(super) fn fail_next_append(&self) {
        self.inner
            .files
            .fail_next_append
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Retires the current log and seals it, as a full span does (for tests).
    #[cfg(test)]
    pub(super) fn roll(&self) {
        self.inner.files.roll();
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
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
            store
                .probes
                .append_probe(&probe("api", t, t != 2_000))
                .unwrap();
        }
        store
            .probes
            .append_probe(&probe("api2", 3_500, true))
            .unwrap();
        store.probes.append_probe(&probe("", 3_500, true)).unwrap();

        // Buffered, written as blocks, and read back after a reopen: the same answers.
        let check = |store: &Store| {
            let all = store
                .probes
                .probe_history("api", i64::MIN, i64::MAX, usize::MAX)
                .unwrap();
            let ts: Vec<i64> = all.iter().map(|r| r.t).collect();
            assert_eq!(ts, [-1_000, 1_000, 2_000, 3_000, 3_000, 4_000, 5_000]);
            assert!(all.iter().all(|r| r.probe == "api"));
            assert_eq!(all[2], probe("api", 2_000, false));

            let window = store
                .probes
                .probe_history("api", 2_000, 4_000, usize::MAX)
                .unwrap();
            let ts: Vec<i64> = window.iter().map(|r| r.t).collect();
            assert_eq!(
                ts,
                [2_000, 3_000, 3_000, 4_000],
                "since and until are inclusive"
            );

            let newest = store
                .probes
                .probe_history("api", i64::MIN, i64::MAX, 2)
                .unwrap();
            let ts: Vec<i64> = newest.iter().map(|r| r.t).collect();
            assert_eq!(
                ts,
                [4_000, 5_000],
                "the limit keeps the newest, still newest last"
            );

            assert!(
                store
                    .probes
                    .probe_history("api", 6_000, 7_000, 10)
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .probes
                    .probe_history("api", 4_000, 2_000, 10)
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .probes
                    .probe_history("nope", i64::MIN, i64::MAX, 10)
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                store
                    .probes
                    .probe_history("", i64::MIN, i64::MAX, 10)
                    .unwrap()
                    .len(),
                1
            );
        };
        check(&store);
        store.probes.write_probe_journal().unwrap();
        check(&store);
        assert_eq!(store.probes.write_probe_results(None).unwrap(), 9);
        assert_eq!(
            store.probes.inner.files.logged_blocks().len(),
            3,
            "one block a probe"
        );
        assert_eq!(store.probes.inner.files.file_counts(), (0, 1), "in the log");
        check(&store);
        let path = store.path().to_owned();
        drop(store);
        let store = Store::open(&path).unwrap().store;
        assert_eq!(
            store.probes.inner.files.file_counts(),
            (1, 0),
            "the log is sealed at open"
        );
        check(&store);
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
        store.probes.append_probe(&r).unwrap();
        let nan = ProbeRecord {
            t: r.t + 1,
            duration_seconds: f64::NAN,
            status: Some(0),
            ..r.clone()
        };
        store.probes.append_probe(&nan).unwrap();
        for written in [false, true] {
            if written {
                store.probes.write_probe_results(None).unwrap();
                assert_eq!(store.probes.inner.files.logged_blocks().len(), 1);
            }
            let back = store
                .probes
                .probe_history(&r.probe, 0, i64::MAX, 10)
                .unwrap();
            assert_eq!(back[0], r);
            assert!(back[1].duration_seconds.is_nan());
            assert_eq!(back[1].status, Some(0));
        }
    }

    /// Decoded results, with durations as bits (NaN compares unequal to itself).
    fn bitwise(v: &[ProbeRecord]) -> Vec<(ProbeRecord, u64)> {
        v.iter()
            .map(|r| {
                let bits = r.duration_seconds.to_bits();
                (
                    ProbeRecord {
                        duration_seconds: 0.0,
                        ..r.clone()
                    },
                    bits,
                )
            })
            .collect()
    }

    #[test]
    fn compact_probe_blocks_give_back_every_field_bit_exactly() {
        let base = ProbeRecord {
            probe: "api".into(),
            t: 1_700_000_000_000,
            success: true,
            duration_seconds: 0.003_456_789,
            status: Some(200),
            reason: String::new(),
        };
        let mut records = Vec::new();
        // Irregular times (jitter, a long gap, a step back of the interval), every kind of
        // status sequence, reasons, and durations that are and are not whole nanoseconds.
        let times = [
            0,
            10_003,
            19_998,
            30_000,
            1_000_000,
            1_000_001,
            1_010_001,
            9_000_000_000,
        ];
        let durations = [
            0.003_456_789,
            1.0 / 3.0,
            12.345_678_901,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            2.5e9,
            0.0,
        ];
        let statuses = [
            Some(200),
            Some(200),
            None,
            Some(503),
            Some(503),
            Some(0),
            None,
            Some(u16::MAX),
        ];
        for i in 0..times.len() {
            records.push(ProbeRecord {
                t: base.t + times[i],
                success: i % 3 != 1,
                duration_seconds: durations[i],
                status: statuses[i],
                reason: if i % 2 == 1 {
                    format!("status {i}, expected 200")
                } else {
                    String::new()
                },
                ..base.clone()
            });
        }
        let bytes = encode_probe_block(&records);
        assert_eq!(bytes[0], PROBE_BLOCK_V3);
        let back = decode_probes("api", base.t, &bytes).expect("decodes");
        assert_eq!(bitwise(&back), bitwise(&records));
        // Damage is an error, never a panic or a wrong answer: every truncation, and flag
        // bits no version writes.
        for n in 0..bytes.len() {
            assert!(
                decode_probes("api", base.t, &bytes[..n]).is_err(),
                "{n} bytes"
            );
        }
        let mut bad = encode_probe_block(&records[..1]);
        bad[3] |= 0x80;
        assert!(decode_probes("api", base.t, &bad).is_err());
    }

    #[test]
    fn a_minute_of_healthy_results_takes_about_seven_bytes_a_result() {
        // A typical probe: every 10 s with a few ms of jitter, status 200, a latency
        // of a few ms measured in nanoseconds.
        let records: Vec<ProbeRecord> = (0..6)
            .map(|i| ProbeRecord {
                probe: "health-17".into(),
                t: 1_700_000_000_000 + i * 10_000 + (i * 7) % 5,
                success: true,
                duration_seconds: std::time::Duration::from_nanos(2_000_000 + i as u64 * 123_457)
                    .as_secs_f64(),
                status: Some(200),
                reason: String::new(),
            })
            .collect();
        let v3 = encode_probe_block(&records);
        assert!(v3.len() <= 2 + 6 * 7, "{} bytes", v3.len());
        let back = decode_probes("health-17", records[0].t, &v3).expect("decodes");
        assert_eq!(back, records);
    }

    #[test]
    fn buffered_results_become_blocks_once_the_oldest_is_a_minute_old() {
        let (_dir, store) = temp_store();
        for t in [0, 10_000, 20_000] {
            store.probes.append_probe(&probe("slow", t, true)).unwrap();
        }
        store
            .probes
            .append_probe(&probe("fresh", 50_000, true))
            .unwrap();
        assert_eq!(store.probes.write_probe_results(Some(59_999)).unwrap(), 0);
        assert!(store.probes.inner.files.logged_blocks().is_empty());
        assert_eq!(store.probes.write_probe_results(Some(60_000)).unwrap(), 4);
        let mut blocks = store.probes.inner.files.logged_blocks();
        blocks.sort();
        assert_eq!(
            blocks,
            [
                ("fresh".to_owned(), 50_000, 50_000),
                ("slow".to_owned(), 0, 20_000)
            ],
            "one block a probe"
        );
        // A written block and a buffered result read together, in order.
        store
            .probes
            .append_probe(&probe("slow", 30_000, false))
            .unwrap();
        let ts = |since, limit| -> Vec<i64> {
            store
                .probes
                .probe_history("slow", since, i64::MAX, limit)
                .unwrap()
                .iter()
                .map(|r| r.t)
                .collect()
        };
        assert_eq!(
            ts(5_000, 10),
            [10_000, 20_000, 30_000],
            "a block that began before since"
        );
        assert_eq!(ts(i64::MIN, 2), [20_000, 30_000]);
        // A clean stop writes everything.
        store.flush().unwrap();
        assert_eq!(store.probes.inner.files.logged_blocks().len(), 3);
    }

    #[test]
    fn the_journal_holds_what_is_not_in_blocks_until_the_blocks_are_written() {
        let (_dir, store) = temp_store();
        store.probes.append_probe(&probe("a", 1_000, true)).unwrap();
        store
            .probes
            .append_probe(&probe("b", 1_500, false))
            .unwrap();
        assert_eq!(store.probes.write_probe_journal().unwrap(), 2);
        assert_eq!(
            store.probes.write_probe_journal().unwrap(),
            0,
            "nothing new"
        );
        store.probes.append_probe(&probe("a", 2_000, true)).unwrap();
        assert_eq!(store.probes.write_probe_journal().unwrap(), 1);
        // What a restart after a crash reads back: every journaled result.
        let mut journaled = store.probes.inner.files.journaled();
        journaled.sort_by_key(|r| r.t);
        assert_eq!(
            journaled,
            [
                probe("a", 1_000, true),
                probe("b", 1_500, false),
                probe("a", 2_000, true)
            ]
        );
        assert_eq!(
            store
                .probes
                .probe_history("a", 0, 10_000, 10)
                .unwrap()
                .len(),
            2
        );
        // Blocks written: the journal records before them are superseded.
        store.probes.write_probe_results(None).unwrap();
        assert!(store.probes.inner.files.journaled().is_empty());
        assert_eq!(store.probes.inner.files.logged_blocks().len(), 2);
        assert_eq!(
            store
                .probes
                .probe_history("a", 0, 10_000, 10)
                .unwrap()
                .len(),
            2
        );
        store.probes.append_probe(&probe("b", 3_000, true)).unwrap();
        store.probes.write_probe_journal().unwrap();
        assert_eq!(
            store.probes.inner.files.journaled(),
            [probe("b", 3_000, true)]
        );
    }

    /// The store directory as a crash would leave it: sled as last flushed, the files as
    /// written (copied while the store is open: dropping it would write the buffer).
    fn crash_copy(store: &Store, to: &std::path::Path) -> Store {
        crash_copy_with(store, to, |_| {})
    }

    #[test]
    fn a_crash_loses_no_journaled_result_and_repeats_none() {
        let (dir, store) = temp_store();
        // A minute in blocks, then results only journaled, then one not even journaled.
        for t in [0, 10_000, 20_000] {
            store.probes.append_probe(&probe("api", t, true)).unwrap();
            store
                .probes
                .append_probe(&probe("db", t + 1, t != 10_000))
                .unwrap();
        }
        store.probes.write_probe_journal().unwrap();
        store.probes.write_probe_results(None).unwrap();
        for t in [30_000, 40_000] {
            store.probes.append_probe(&probe("api", t, true)).unwrap();
            store.probes.write_probe_journal().unwrap();
        }
        store
            .probes
            .append_probe(&probe("api", 50_000, false))
            .unwrap();
        let crashed = crash_copy(&store, &dir.path().join("crashed"));
        let ts = |s: &Store, name| -> Vec<i64> {
            s.probes
                .probe_history(name, i64::MIN, i64::MAX, 100)
                .unwrap()
                .iter()
                .map(|r| r.t)
                .collect()
        };
        assert_eq!(ts(&crashed, "api"), [0, 10_000, 20_000, 30_000, 40_000]);
        assert_eq!(ts(&crashed, "db"), [1, 10_001, 20_001]);
        assert_eq!(crashed.probes.inner.files.file_counts(), (1, 0));
        // A second open after the crash finds the sealed file alone: nothing twice.
        let path = crashed.path().to_owned();
        drop(crashed);
        let again = Store::open(&path).unwrap().store;
        assert_eq!(ts(&again, "api"), [0, 10_000, 20_000, 30_000, 40_000]);
        assert_eq!(again.skipped_records(), 0);
        drop(again);
        // The store that did not crash writes its last result on a clean stop.
        assert_eq!(ts(&store, "api").len(), 6);
    }

    #[test]
    fn a_torn_log_tail_loses_only_the_torn_record() {
        let (dir, store) = temp_store();
        store.probes.append_probe(&probe("api", 0, true)).unwrap();
        store.probes.write_probe_results(None).unwrap();
        store
            .probes
            .append_probe(&probe("api", 10_000, true))
            .unwrap();
        store.probes.write_probe_journal().unwrap();
        store
            .probes
            .append_probe(&probe("api", 20_000, true))
            .unwrap();
        store.probes.write_probe_journal().unwrap();
        let log = store.probes.inner.files.log_file().unwrap();
        // The last journal record cut short, as a crash during its write leaves it.
        let crashed = crash_copy_with(&store, &dir.path().join("crashed"), |history| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(history.join(log.file_name().unwrap()))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len - 5).unwrap();
        });
        let ts: Vec<i64> = crashed
            .probes
            .probe_history("api", i64::MIN, i64::MAX, 100)
            .unwrap()
            .iter()
            .map(|r| r.t)
            .collect();
        assert_eq!(
            ts,
            [0, 10_000],
            "the torn record's result is lost, no other"
        );
        assert_eq!(crashed.skipped_records(), 1, "the damage is counted");
    }

    #[test]
    fn a_failed_write_journals_everything_again_in_a_new_log() {
        let (dir, store) = temp_store();
        store
            .probes
            .append_probe(&probe("api", 1_000, true))
            .unwrap();
        store.probes.write_probe_journal().unwrap();
        store
            .probes
            .append_probe(&probe("api", 2_000, true))
            .unwrap();
        store
            .probes
            .inner
            .files
            .fail_next_append
            .store(true, std::sync::atomic::Ordering::Relaxed);
        store.probes.write_probe_journal().unwrap_err();
        assert_eq!(
            store.probes.inner.files.file_counts(),
            (0, 1),
            "the log is retired"
        );
        // The next journal record goes to a new log and holds both results.
        assert_eq!(store.probes.write_probe_journal().unwrap(), 2);
        assert_eq!(store.probes.inner.files.file_counts(), (0, 2));
        // A crash now: each result comes back once (the retired log's journal is not read).
        let crashed = crash_copy(&store, &dir.path().join("crashed"));
        let ts: Vec<i64> = crashed
            .probes
            .probe_history("api", i64::MIN, i64::MAX, 10)
            .unwrap()
            .iter()
            .map(|r| r.t)
            .collect();
        assert_eq!(ts, [1_000, 2_000]);
        // Without a crash, the blocks go to the new log and the retired one is sealed empty.
        assert_eq!(store.probes.write_probe_results(None).unwrap(), 2);
        assert_eq!(store.probes.inner.files.file_counts(), (0, 1));
        assert_eq!(
            store
                .probes
                .probe_history("api", 0, 10_000, 10)
                .unwrap()
                .len(),
            2
        );
    }

    /// [`crash_copy`], with `damage` applied to the copied history directory before the open.
    fn crash_copy_with(
        store: &Store,
        to: &std::path::Path,
        damage: impl FnOnce(&std::path::Path),
    ) -> Store {
        store.shared.flush_durable("test").unwrap();
        let copy = |from: &std::path::Path, to: &std::path::Path| {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
                }
            }
        };
        copy(store.path(), to);
        for sub in [files::DIR_NAME, "segments"] {
            if store.path().join(sub).is_dir() {
                copy(&store.path().join(sub), &to.join(sub));
            }
        }
        let history = to.join(files::DIR_NAME);
        damage(&history);
        let opened = Store::open(to).unwrap();
        assert!(opened.recovered_from_corruption.is_none());
        opened.store
    }

    #[test]
    fn blocks_hold_at_most_64_results_within_five_minutes() {
        let (_dir, store) = temp_store();
        for i in 0..130 {
            store
                .probes
                .append_probe(&probe("fast", i * 1_000, true))
                .unwrap();
        }
        for t in [100_000, 200_000, 300_000, 400_000, 500_000] {
            store.probes.append_probe(&probe("rare", t, true)).unwrap();
        }
        store.probes.write_probe_results(None).unwrap();
        let starts = |name: &str| -> Vec<i64> {
            let mut ts: Vec<i64> = store
                .probes
                .inner
                .files
                .logged_blocks()
                .into_iter()
                .filter(|(n, _, _)| n == name)
                .map(|(_, first, _)| first)
                .collect();
            ts.sort_unstable();
            ts
        };
        assert_eq!(starts("fast"), [0, 64_000, 128_000]);
        assert_eq!(starts("rare"), [100_000, 500_000]);
        let all = store
            .probes
            .probe_history("fast", i64::MIN, i64::MAX, 1_000)
            .unwrap();
        assert_eq!(all.len(), 130);
        assert!(all.windows(2).all(|w| w[1].t == w[0].t + 1_000));
        let ts = |since, until| -> Vec<i64> {
            store
                .probes
                .probe_history("rare", since, until, 10)
                .unwrap()
                .iter()
                .map(|r| r.t)
                .collect()
        };
        assert_eq!(ts(450_000, 500_000), [500_000]);
        assert_eq!(ts(250_000, 350_000), [300_000]);
    }

    #[test]
    fn results_that_could_not_be_written_wait_for_the_next_write() {
        let (_dir, store) = temp_store();
        store.probes.append_probe(&probe("api", 0, false)).unwrap();
        store.probes.write_probe_journal().unwrap();
        store.fail_writes(true);
        assert!(store.probes.write_probe_results(None).is_err());
        assert_eq!(
            store.probes.probe_history("api", 0, 10, 10).unwrap().len(),
            1
        );
        store.fail_writes(false);
        assert_eq!(store.probes.write_probe_results(None).unwrap(), 1);
        assert_eq!(
            store.probes.inner.files.logged_blocks().len(),
            1,
            "one block"
        );
        assert!(
            store.probes.inner.files.journaled().is_empty(),
            "no journal after it"
        );
        assert_eq!(
            store.probes.probe_history("api", 0, 10, 10).unwrap().len(),
            1
        );
    }

    #[test]
    fn results_written_out_of_order_read_back_in_order() {
        let (_dir, store) = temp_store();
        for t in [300, -5, 100, 200] {
            store.probes.append_probe(&probe("p", t, true)).unwrap();
            store.probes.write_probe_results(None).unwrap();
        }
        store.probes.inner.files.roll();
        store.probes.append_probe(&probe("p", 250, true)).unwrap();
        let ts: Vec<i64> = store
            .probes
            .probe_history("p", i64::MIN, i64::MAX, 10)
            .unwrap()
            .iter()
            .map(|r| r.t)
            .collect();
        assert_eq!(ts, [-5, 100, 200, 250, 300]);
    }

    #[test]
    fn overlong_names_are_refused() {
        let (_dir, store) = temp_store();
        let e = store
            .probes
            .append_probe(&probe(&"x".repeat(70_000), 1, true))
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidRecord { .. }));
    }
}
