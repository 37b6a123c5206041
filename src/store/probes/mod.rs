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
use super::uptime::Uptime;
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
/// At open, the uptime counts take again at most this much of the newest history (see
/// [`ProbeLog::uptime`]).
const RECOUNT_MAX_MS: i64 = super::uptime::DAY_MS;
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
    /// Runs and failures per probe and hour, counted as results come.
    uptime: Uptime,
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
        let skip = |e: &dyn std::fmt::Display| shared.skip("uptime", e);
        let tree = shared
            .db
            .open_tree("uptime")
            .map_err(StoreError::engine("opening the uptime counts"))?;
        let uptime = Uptime::open(tree, &skip)?;
        // The results after the watermark are in no row yet: counted again from the files,
        // at most the last day of them (a store written before the counts existed has no
        // watermark). Damage met here is counted where the history is read.
        let since = match files.newest() {
            Some(newest) => uptime.watermark().max(newest - RECOUNT_MAX_MS),
            None => Timestamp::MAX,
        };
        let quiet = |e: &dyn std::fmt::Display| tracing::debug!(error = %e, "uptime recount");
        let mut recounted = 0;
        for name in files.names_since(since, &quiet) {
            for r in files.read(&name, since, Timestamp::MAX, usize::MAX, &quiet) {
                uptime.record(&r.probe, r.t, r.success);
                recounted += 1;
            }
        }
        if recounted > 0 {
            info!(
                results = recounted,
                "counted the probe results after the last uptime row again"
            );
        }
        Ok(ProbeLog {
            inner: Arc::new(Inner {
                shared,
                buffer: Mutex::new(ProbeBuffer::default()),
                files,
                uptime,
            }),
        })
    }

    /// The uptime counts of every probe.
    pub fn uptime(&self) -> &Uptime {
        &self.inner.uptime
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
        self.inner.uptime.record(&r.probe, r.t, r.success);
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
        // The journal is written before this at every tick: the closed hours' results are on
        // disk before their rows.
        if let Some(now) = now {
            self.inner.shared.check_writable(OP)?;
            self.inner.uptime.persist(now)?;
        }
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

    /// Sets how long the uptime counts are kept (see [`Uptime`]).
    pub(super) fn set_uptime_retention(&self, retention_ms: i64) {
        self.inner.uptime.set_retention(retention_ms);
    }

    /// Deletes uptime counts older than what is kept when the results older than `before`
    /// are deleted (see [`Uptime`]).
    pub(super) fn prune_uptime(
        &self,
        before: Timestamp,
        budget: usize,
    ) -> Result<(u64, bool), StoreError> {
        let u = &self.inner.uptime;
        u.prune(before.saturating_sub(u.kept_beyond_retention()), budget)
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
mod tests;
