//! Uptime counts: per probe, how many runs and how many of them failed in each clock hour
//! (UTC), kept as results are written, so that a probe's uptime over 90 days is a sum of a few
//! hundred numbers instead of a scan of months of results.
//!
//! In memory each probe has the last [`HOURS_KEPT`] hours by the hour and every day (UTC) by
//! the day: a window up to a week long is counted in whole clock hours, a longer one in whole
//! days, the current one included in both cases. A thousand probes over 90 days take about
//! 2 MB.
//!
//! On disk the counts live in the sled tree `uptime`, one row per closed hour holding every
//! probe that ran in it, written by [`Uptime::persist`] once the hour is [`GRACE_MS`] past its
//! end, in one sled batch together with the *watermark*: every result before it is in a row.
//! At open the rows are read back and the results from the watermark on are counted again
//! from the probe history, which holds every result that was journaled: the counts after a
//! crash are the ones of the results the store kept, no more and no fewer. Probe names are
//! written once, as a dictionary of small ids the rows refer to.
//!
//! Keys: `n` · probe name → id (u32 BE); `h` · time key of the hour's start → format byte
//! [`ROW_V1`] · count · per probe: id, runs, failures (uvarints); `w` → the watermark (time
//! key).
//!
//! An hour without runs has no data: it is neither up nor down. Counts are kept for the
//! longer of the retention and [`MIN_KEPT_MS`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::series::Timestamp;

use super::StoreError;
use super::codec::{DecodeError, Decoder, Encoder, time_from_key, time_key};

/// One hour, in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// One day, in ms.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Hours kept by the hour: windows up to a week are counted by the hour.
pub const HOURS_KEPT: i64 = 7 * 24;
/// Counts are kept at least this long whatever `storage.retention`: the status page shows 90
/// days.
pub const MIN_KEPT_MS: i64 = 91 * DAY_MS;
/// A closed hour's row is written once the hour ended this long ago: a result carries its
/// probe's start time and arrives up to its timeout later.
pub const GRACE_MS: i64 = 10 * 60_000;
/// Format byte of an hour's row.
const ROW_V1: u8 = 1;
/// The tree's name, for messages.
const TREE: &str = "uptime";
const NAME_PREFIX: u8 = b'n';
const HOUR_PREFIX: u8 = b'h';
const WATERMARK_KEY: &[u8] = b"w";

/// Runs and failures over some time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Probe runs.
    pub checks: u64,
    /// Runs that failed.
    pub failures: u64,
}

impl Counts {
    /// Successful runs over runs; `None` without runs (no data, never up).
    pub fn uptime(&self) -> Option<f64> {
        (self.checks > 0).then(|| (self.checks - self.failures) as f64 / self.checks as f64)
    }

    fn add(&mut self, s: Slot) {
        self.checks += u64::from(s.checks);
        self.failures += u64::from(s.failures);
    }
}

/// A probe's latest runs, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastRuns {
    /// When the newest run started.
    pub at: Timestamp,
    /// Whether it succeeded.
    pub success: bool,
    /// When the newest failed run started, if one was counted since open.
    pub last_failure: Option<Timestamp>,
}

/// One hour's or day's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    checks: u32,
    failures: u32,
}

/// Consecutive hours or days: slot `i` is index `first + i`.
#[derive(Debug, Default)]
struct Tier {
    first: i64,
    slots: VecDeque<Slot>,
}

impl Tier {
    /// Adds to slot `idx`, keeping at most `cap` slots (the newest). Returns false when `idx`
    /// is too old to be kept.
    fn add(&mut self, idx: i64, checks: u32, failures: u32, cap: i64) -> bool {
        if self.slots.is_empty() {
            self.first = idx;
        }
        let last = self.first + self.slots.len() as i64 - 1;
        if idx > last {
            if idx - self.first >= cap {
                let keep_from = idx - cap + 1;
                let drop = (keep_from - self.first).min(self.slots.len() as i64);
                self.slots.drain(..drop as usize);
                self.first = keep_from;
            }
            let len = idx - self.first + 1;
            self.slots.resize(len as usize, Slot::default());
        } else if idx < self.first {
            let newest = self.first + self.slots.len() as i64 - 1;
            if newest - idx >= cap {
                return false;
            }
            for _ in idx..self.first {
                self.slots.push_front(Slot::default());
            }
            self.first = idx;
        }
        let s = &mut self.slots[(idx - self.first) as usize];
        s.checks = s.checks.saturating_add(checks);
        s.failures = s.failures.saturating_add(failures);
        true
    }

    fn get(&self, idx: i64) -> Slot {
        usize::try_from(idx - self.first)
            .ok()
            .and_then(|i| self.slots.get(i))
            .copied()
            .unwrap_or_default()
    }

    /// The sum of slots `from..=to`.
    fn sum(&self, from: i64, to: i64) -> Counts {
        let mut c = Counts::default();
        let lo = (from - self.first).max(0);
        let hi = (to - self.first).min(self.slots.len() as i64 - 1);
        if lo <= hi {
            for s in self.slots.range(lo as usize..=hi as usize) {
                c.add(*s);
            }
        }
        c
    }

    /// Drops the slots before `idx`.
    fn trim_before(&mut self, idx: i64) {
        let n = (idx - self.first).clamp(0, self.slots.len() as i64);
        self.slots.drain(..n as usize);
        self.first += n;
    }
}

/// One probe's counts.
#[derive(Debug)]
struct ProbeCounts {
    /// Its id in the rows.
    id: u32,
    hours: Tier,
    days: Tier,
    last: Option<LastRuns>,
}

struct State {
    probes: HashMap<String, ProbeCounts>,
    /// Names by id, for decoding rows.
    next_id: u32,
    /// Names whose id is not written yet.
    new_names: Vec<(String, u32)>,
    /// Hours whose row differs from memory.
    dirty: BTreeSet<i64>,
    /// Every result before this is in a row.
    watermark: Timestamp,
    /// How long counts are kept: the longer of the retention and [`MIN_KEPT_MS`].
    kept_ms: i64,
    /// `storage.retention`, once told.
    retention_ms: Option<i64>,
}

impl State {
    fn days_cap(&self) -> i64 {
        self.kept_ms / DAY_MS + 2
    }

    fn probe(&mut self, name: &str) -> &mut ProbeCounts {
        if !self.probes.contains_key(name) {
            let id = self.next_id;
            self.next_id += 1;
            self.new_names.push((name.to_owned(), id));
            self.probes.insert(name.to_owned(), ProbeCounts::new(id));
        }
        self.probes
            .get_mut(name)
            .expect("inserted above when it was missing")
    }

    /// Counts `checks` runs with `failures` failures in `hour`; false when the hour is older
    /// than the hours kept (a result a week late is not counted).
    fn add(&mut self, name: &str, hour: i64, checks: u32, failures: u32) -> bool {
        let days_cap = self.days_cap();
        let p = self.probe(name);
        if !p.hours.add(hour, checks, failures, HOURS_KEPT) {
            return false;
        }
        p.days.add(hour.div_euclid(24), checks, failures, days_cap);
        true
    }
}

impl ProbeCounts {
    fn new(id: u32) -> ProbeCounts {
        ProbeCounts {
            id,
            hours: Tier::default(),
            days: Tier::default(),
            last: None,
        }
    }
}

/// The uptime counts of every probe; the probe log owns it and counts every result it takes.
pub struct Uptime {
    tree: sled::Tree,
    state: Mutex<State>,
}

impl std::fmt::Debug for Uptime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uptime").finish_non_exhaustive()
    }
}

fn hour_of(t: Timestamp) -> i64 {
    t.div_euclid(HOUR_MS)
}

fn hour_key(hour: i64) -> Vec<u8> {
    let mut k = vec![HOUR_PREFIX];
    k.extend_from_slice(&time_key(hour.saturating_mul(HOUR_MS)));
    k
}

fn encode_row(entries: &[(u32, Slot)]) -> Vec<u8> {
    let mut e = Encoder::with_format(ROW_V1);
    e.uvarint(entries.len() as u64);
    for (id, s) in entries {
        e.uvarint(u64::from(*id))
            .uvarint(u64::from(s.checks))
            .uvarint(u64::from(s.failures));
    }
    e.finish()
}

fn decode_row(value: &[u8]) -> Result<Vec<(u32, Slot)>, DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    if format != ROW_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let n = d.uvarint()?;
    if n > d.remaining() as u64 / 3 {
        return Err(DecodeError::OutOfRange);
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let id = d.u32varint()?;
        let checks = d.u32varint()?;
        let failures = d.u32varint()?;
        if failures > checks {
            return Err(DecodeError::OutOfRange);
        }
        out.push((id, Slot { checks, failures }));
    }
    d.finish()?;
    Ok(out)
}

impl Uptime {
    /// Reads the counts back from `tree`; records that do not decode are passed to `skip`.
    /// The caller then counts the results from [`Uptime::watermark`] on again.
    pub(super) fn open(
        tree: sled::Tree,
        skip: &dyn Fn(&dyn std::fmt::Display),
    ) -> Result<Uptime, StoreError> {
        const OP: &str = "reading uptime counts";
        let mut names: HashMap<u32, String> = HashMap::new();
        let mut next_id = 0;
        for kv in tree.scan_prefix([NAME_PREFIX]) {
            let (k, v) = kv.map_err(StoreError::engine(OP))?;
            let name = std::str::from_utf8(&k[1..]);
            let id: Result<[u8; 4], _> = (&*v).try_into();
            match (name, id) {
                (Ok(name), Ok(id)) => {
                    let id = u32::from_be_bytes(id);
                    next_id = next_id.max(id.saturating_add(1));
                    names.insert(id, name.to_owned());
                }
                _ => skip(&format_args!("{TREE}: malformed name entry")),
            }
        }
        let watermark = match tree.get(WATERMARK_KEY).map_err(StoreError::engine(OP))? {
            Some(v) => match <[u8; 8]>::try_from(&*v) {
                Ok(b) => time_from_key(b),
                Err(_) => {
                    skip(&format_args!("{TREE}: malformed watermark"));
                    i64::MIN
                }
            },
            None => i64::MIN,
        };
        let mut state = State {
            probes: HashMap::new(),
            next_id,
            new_names: Vec::new(),
            dirty: BTreeSet::new(),
            watermark,
            kept_ms: MIN_KEPT_MS,
            retention_ms: None,
        };
        for (id, name) in &names {
            state.probes.insert(name.clone(), ProbeCounts::new(*id));
        }
        for kv in tree.scan_prefix([HOUR_PREFIX]) {
            let (k, v) = kv.map_err(StoreError::engine(OP))?;
            let Ok(t) = <[u8; 8]>::try_from(&k[1..]) else {
                skip(&format_args!("{TREE}: malformed hour key"));
                continue;
            };
            let start = time_from_key(t);
            if start >= watermark {
                // Counted again from the history below.
                continue;
            }
            let hour = hour_of(start);
            match decode_row(&v) {
                Ok(entries) => {
                    for (id, s) in entries {
                        match names.get(&id) {
                            Some(name) => {
                                state.add(name, hour, s.checks, s.failures);
                            }
                            None => skip(&format_args!("{TREE}: row names unknown probe id {id}")),
                        }
                    }
                }
                Err(e) => skip(&format_args!("{TREE}: {e}")),
            }
        }
        state.probes.retain(|_, p| !p.days.slots.is_empty());
        Ok(Uptime {
            tree,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent: a panic half-way loses at most one count.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every result at or after this time is counted again from the history at open.
    pub(super) fn watermark(&self) -> Timestamp {
        self.lock().watermark
    }

    /// Counts one run of `probe` started at `t`.
    pub fn record(&self, probe: &str, t: Timestamp, success: bool) {
        let mut st = self.lock();
        let hour = hour_of(t);
        if !st.add(probe, hour, 1, u32::from(!success)) {
            return;
        }
        st.dirty.insert(hour);
        let p = st.probe(probe);
        let last_failure = p.last.and_then(|l| l.last_failure);
        let last_failure = if success {
            last_failure
        } else {
            Some(last_failure.map_or(t, |f| f.max(t)))
        };
        match &mut p.last {
            Some(l) if l.at > t => l.last_failure = last_failure,
            l => {
                *l = Some(LastRuns {
                    at: t,
                    success,
                    last_failure,
                })
            }
        }
    }

    /// `probe`'s runs in the window of `window_ms` ending at `now`: up to [`HOURS_KEPT`] hours
    /// long, the last `ceil(window / 1h)` clock hours; longer, the last `ceil(window / 1d)`
    /// UTC days; the current hour or day included.
    pub fn window(&self, probe: &str, window_ms: i64, now: Timestamp) -> Counts {
        let st = self.lock();
        let Some(p) = st.probes.get(probe) else {
            return Counts::default();
        };
        window_of(p, window_ms, now)
    }

    /// [`Uptime::window`] for many probes at once, in their order.
    pub fn windows<S: AsRef<str>>(
        &self,
        probes: &[S],
        window_ms: i64,
        now: Timestamp,
    ) -> Vec<Counts> {
        let st = self.lock();
        probes
            .iter()
            .map(|name| {
                st.probes
                    .get(name.as_ref())
                    .map_or_else(Counts::default, |p| window_of(p, window_ms, now))
            })
            .collect()
    }

    /// `probe`'s runs per UTC day over the last `n` days, oldest first, today last.
    pub fn days(&self, probe: &str, n: usize, now: Timestamp) -> Vec<Counts> {
        let st = self.lock();
        let today = now.div_euclid(DAY_MS);
        let from = today - n as i64 + 1;
        (from..=today)
            .map(|d| {
                let mut c = Counts::default();
                if let Some(p) = st.probes.get(probe) {
                    c.add(p.days.get(d));
                }
                c
            })
            .collect()
    }

    /// `probe`'s latest runs, once one was counted since open.
    pub fn last(&self, probe: &str) -> Option<LastRuns> {
        self.lock().probes.get(probe).and_then(|p| p.last)
    }

    /// Writes the rows of the closed hours that changed (an hour is closed [`GRACE_MS`] after
    /// its end) and moves the watermark to the end of the newest closed hour, in one batch.
    /// The batch rides sled's next flush: a crash before it leaves the older watermark, and
    /// the results after it are counted again at open.
    pub(super) fn persist(&self, now: Timestamp) -> Result<usize, StoreError> {
        const OP: &str = "writing uptime counts";
        let mut st = self.lock();
        let closed = hour_of(now - GRACE_MS);
        let watermark = closed.saturating_mul(HOUR_MS);
        let hours: Vec<i64> = st.dirty.range(..closed).copied().collect();
        if hours.is_empty() && watermark <= st.watermark {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        for (name, id) in &st.new_names {
            let mut k = vec![NAME_PREFIX];
            k.extend_from_slice(name.as_bytes());
            batch.insert(k, &id.to_be_bytes());
        }
        // An hour older than the hours kept in memory cannot be written whole any more (only
        // when rows could not be written for a week): its row stays as it was.
        // Every probe keeps the hours from its newest on back: all of them hold the hours
        // from the newest of all on back.
        let oldest_kept = st
            .probes
            .values()
            .filter(|p| !p.hours.slots.is_empty())
            .map(|p| p.hours.first + p.hours.slots.len() as i64 - HOURS_KEPT)
            .max();
        for &h in hours
            .iter()
            .filter(|h| oldest_kept.is_some_and(|o| **h >= o))
        {
            let mut entries: Vec<(u32, Slot)> = st
                .probes
                .values()
                .map(|p| (p.id, p.hours.get(h)))
                .filter(|(_, s)| s.checks > 0)
                .collect();
            entries.sort_unstable_by_key(|(id, _)| *id);
            batch.insert(hour_key(h), encode_row(&entries));
        }
        let watermark = watermark.max(st.watermark);
        batch.insert(WATERMARK_KEY, &time_key(watermark));
        self.tree
            .apply_batch(batch)
            .map_err(StoreError::engine(OP))?;
        st.new_names.clear();
        for h in &hours {
            st.dirty.remove(h);
        }
        st.watermark = watermark;
        Ok(hours.len())
    }

    /// Sets how long counts are kept from the retention (at least [`MIN_KEPT_MS`]).
    pub(super) fn set_retention(&self, retention_ms: i64) {
        let mut st = self.lock();
        st.kept_ms = retention_ms.max(MIN_KEPT_MS);
        st.retention_ms = Some(retention_ms);
    }

    /// How much longer than the retention the counts are kept ([`MIN_KEPT_MS`] while the
    /// retention is not known).
    pub(super) fn kept_beyond_retention(&self) -> i64 {
        let st = self.lock();
        match st.retention_ms {
            Some(r) => (st.kept_ms - r).max(0),
            None => MIN_KEPT_MS,
        }
    }

    /// Deletes up to `budget` rows of hours that ended before `before`, and the counts of
    /// days that ended before it; a probe left without counts leaves the dictionary. Returns
    /// the rows deleted and whether more are left.
    pub(super) fn prune(
        &self,
        before: Timestamp,
        budget: usize,
    ) -> Result<(u64, bool), StoreError> {
        const OP: &str = "pruning uptime counts";
        let hi = hour_key(hour_of(before));
        let mut deleted = 0;
        let mut more = false;
        for k in self.tree.range(vec![HOUR_PREFIX]..hi).keys() {
            let k = k.map_err(StoreError::engine(OP))?;
            if deleted as usize == budget {
                more = true;
                break;
            }
            self.tree.remove(k).map_err(StoreError::engine(OP))?;
            deleted += 1;
        }
        if !more {
            let mut st = self.lock();
            let first_day = before.div_euclid(DAY_MS);
            let first_hour = hour_of(before);
            let mut gone = Vec::new();
            for (name, p) in st.probes.iter_mut() {
                p.days.trim_before(first_day);
                p.hours.trim_before(first_hour);
                if p.days.slots.is_empty() {
                    gone.push(name.clone());
                }
            }
            for name in gone {
                st.probes.remove(&name);
                st.new_names.retain(|(n, _)| *n != name);
                let mut k = vec![NAME_PREFIX];
                k.extend_from_slice(name.as_bytes());
                self.tree.remove(k).map_err(StoreError::engine(OP))?;
            }
        }
        Ok((deleted, more))
    }

    /// Names of the probes with counts, for tests.
    #[cfg(test)]
    pub(super) fn probe_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().probes.keys().cloned().collect();
        v.sort();
        v
    }
}

fn window_of(p: &ProbeCounts, window_ms: i64, now: Timestamp) -> Counts {
    let window_ms = window_ms.max(1);
    let hours = (window_ms + HOUR_MS - 1) / HOUR_MS;
    if hours <= HOURS_KEPT {
        let last = hour_of(now);
        p.hours.sum(last - hours + 1, last)
    } else {
        let days = (window_ms + DAY_MS - 1) / DAY_MS;
        let last = now.div_euclid(DAY_MS);
        p.days.sum(last - days + 1, last)
    }
}

#[cfg(test)]
mod tests;
