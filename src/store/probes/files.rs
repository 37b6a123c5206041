//! Probe history files: the probe results, outside sled.
//!
//! sled 0.34 keeps in memory a record for every page it ever wrote, so its memory grows with
//! the number of keys it holds (spacejam/sled#1093), and a key per probe and minute grows
//! without bound with the history. Probe results are written once, read rarely and deleted by
//! age: what append-only files do in constant memory. So they live in files under
//! `<store>/history/`, and sled holds nothing per result.
//!
//! # Files
//!
//! - `<id>.hlog`, the *log*: the one file appended to (id in 16 hex digits, from sled's id
//!   counter). Header `pfhl` and the format byte [`FILE_V1`], then records: payload length
//!   (u32 BE), CRC-32 of the payload (u32 BE), payload. The payload's first byte is its kind:
//!   - [`KIND_JOURNAL`]: the results since the previous journal record, of every probe, in the
//!     journal encoding of the `history` module. Written every
//!     [`super::PROBE_JOURNAL_EVERY`] and `fdatasync`ed, so a result is on disk within about
//!     half a second.
//!   - [`KIND_BLOCKS`]: every result not in a blocks record yet, as one compact block per
//!     probe (up to 64 results over at most 5 minutes; the `history` module's block format):
//!     first and last result time of the record, then per block the probe's name, its first
//!     and last result time and the block. Written once a minute. It holds every result of
//!     the journal records before it, so those are dead from then on.
//! - `<id>.hist`, a *sealed* file: a log rewritten once it spans an hour of results (or an
//!   eighth of the retention when that is shorter) or holds [`LOG_MAX_BYTES`]. Header `pfhs`
//!   and [`FILE_V1`]; one *region* per probe, holding its blocks of the hour back to back (per
//!   block: first time as a varint from the region's first, last time from the first, length,
//!   the block); a footer listing, sorted by name, each region's probe, first and last time,
//!   offset, length and CRC-32; then a trailer: footer offset (u64 BE), footer length and CRC
//!   (u32 BE each) and the magic `pfhe`. A read for one probe reads the footer and one region.
//!   Written to `<id>.hist.tmp`, synced, renamed, and the directory synced before the log is
//!   deleted: at every instant either the log or the sealed file is complete.
//!
//! # Open
//!
//! Left-over `.tmp` files are deleted. A log whose sealed file exists is deleted (the seal
//! completed; the crash came before the delete). Every other log is sealed now: the results
//! of its blocks records, and for the newest log also those of the journal records after its
//! last blocks record (the results that were only journaled when the process stopped). Older
//! logs' trailing journal records are never used: a log is left behind either by a roll,
//! right after a blocks record, or by a failed write, after which the buffered results are
//! journaled again into the next log. A record cut short or failing its CRC ends the log
//! there (a torn tail).
//!
//! # Memory
//!
//! Per sealed file, its id and time span; for the log, where its blocks records are. A read
//! opens the files whose span meets the range, newest first, until it has enough results.
//!
//! # Retention
//!
//! A sealed file whose last result is older than the cutoff is deleted whole; a log never is
//! (it is sealed within its span first).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::warn;

use super::super::StoreError;
use super::super::codec::{DecodeError, Decoder, Encoder};
use super::super::shared::sync_dir;
use super::{self as history, ProbeRecord};
use crate::series::Timestamp;

/// The directory, inside the store's, that holds the history files.
pub(super) const DIR_NAME: &str = "history";
/// Format byte of log and sealed files.
const FILE_V1: u8 = 1;
/// Start of a log file, followed by the format byte.
const LOG_MAGIC: &[u8; 4] = b"pfhl";
/// Start of a sealed file, followed by the format byte.
const SEALED_MAGIC: &[u8; 4] = b"pfhs";
/// End of a sealed file.
const TRAILER_MAGIC: &[u8; 4] = b"pfhe";
/// Bytes before the first record or region.
const HEADER_LEN: u64 = 5;
/// Bytes before a log record's payload: length and CRC.
const RECORD_HEADER_LEN: usize = 8;
/// Footer offset, length, CRC, magic.
const TRAILER_LEN: usize = 8 + 4 + 4 + 4;
/// Kind byte of a log record of journaled results.
pub(super) const KIND_JOURNAL: u8 = 1;
/// Kind byte of a log record of per-probe blocks.
pub(super) const KIND_BLOCKS: u8 = 2;
/// Format byte of a sealed file's footer.
const FOOTER_V1: u8 = 1;
const LOG_SUFFIX: &str = ".hlog";
const SEALED_SUFFIX: &str = ".hist";
const TMP_SUFFIX: &str = ".tmp";
/// A log takes no more records once it holds this much (the journal records make it about
/// four times its sealed size).
pub const LOG_MAX_BYTES: u64 = 64 << 20;
/// A log is sealed once its results span this much, or an eighth of the retention when that
/// is shorter (see [`crate::store::Store::set_retention`]).
pub const HISTORY_MAX_SPAN_MS: i64 = 3_600_000;
/// No record or footer is larger: a length beyond it is damage, not a reason to allocate.
const MAX_PAYLOAD: u32 = 1 << 30;

/// Where a blocks record is in the log, and the time it spans.
#[derive(Clone, Copy, Debug)]
struct RecLoc {
    /// Offset of the record (its length field).
    offset: u64,
    /// Length of the payload.
    len: u32,
    min_t: Timestamp,
    max_t: Timestamp,
}

/// A log no longer appended to, waiting for its seal; still read until then.
struct Retired {
    id: u64,
    file: Arc<File>,
    blocks: Vec<RecLoc>,
}

/// A sealed file, as memory knows it.
#[derive(Clone, Copy, Debug)]
struct Sealed {
    min_t: Timestamp,
    max_t: Timestamp,
    /// Regions: one per probe with results in the file.
    regions: u64,
}

/// The log being appended to.
struct Log {
    id: u64,
    file: Arc<File>,
    /// Where the next record goes.
    len: u64,
    /// The oldest result in it.
    first_t: Option<Timestamp>,
    blocks: Vec<RecLoc>,
}

struct State {
    /// `None` until the first write after open, a roll or a failed write.
    log: Option<Log>,
    /// Logs waiting for [`HistoryFiles::seal_retired`], oldest first.
    retired: Vec<Arc<Retired>>,
    /// Sealed files by id.
    sealed: BTreeMap<u64, Sealed>,
    max_span_ms: i64,
}

/// The history files of one store.
pub(super) struct HistoryFiles {
    dir: PathBuf,
    state: Mutex<State>,
    /// Held while sealing, so that one log is sealed once.
    sealer: Mutex<()>,
    /// Test hook: the next append's write fails as if the disk had.
    #[cfg(test)]
    pub(super) fail_next_append: std::sync::atomic::AtomicBool,
}

/// What [`HistoryFiles::append`] wrote: sync it once the caller's locks are released.
pub(super) struct Written(Arc<File>);

impl Written {
    /// `fdatasync`s the log the record went to.
    pub(super) fn sync(self, dir: &Path) -> Result<(), StoreError> {
        self.0.sync_data().map_err(|source| StoreError::File {
            op: "syncing the probe history",
            path: dir.to_owned(),
            source,
        })
    }
}

/// What [`HistoryFiles::open`] found.
#[derive(Debug, Default)]
pub(super) struct OpenReport {
    /// Logs sealed (left by the previous run).
    pub(super) sealed_logs: usize,
    /// Results of those logs that were only journaled, now in their sealed file.
    pub(super) journaled: usize,
    /// Damage met: torn tails, records or files that do not read.
    pub(super) damaged: Vec<String>,
}

/// What a seal gathers: the blocks records' payloads, read whole, and per probe where its
/// blocks are in them: a copy per block would take twice the memory, in one small allocation
/// per block.
#[derive(Default)]
struct Pieces {
    payloads: Vec<Vec<u8>>,
    by_probe: BTreeMap<String, Vec<Piece>>,
}

/// One block of a probe, in [`Pieces::payloads`].
struct Piece {
    first: Timestamp,
    last: Timestamp,
    payload: u32,
    start: u32,
    end: u32,
}

impl Pieces {
    /// Takes the blocks of one blocks record's payload (or of anything [`each_block`] reads).
    fn add(&mut self, payload: Vec<u8>) -> Result<(), DecodeError> {
        let index = u32::try_from(self.payloads.len()).map_err(|_| DecodeError::OutOfRange)?;
        let base = payload.as_ptr() as usize;
        let by_probe = &mut self.by_probe;
        let walked = each_block(&payload, |name, first, last, block| {
            // Payloads are at most `MAX_PAYLOAD` (2^30) bytes: offsets fit a u32.
            let start = (block.as_ptr() as usize - base) as u32;
            let piece = Piece {
                first,
                last,
                payload: index,
                start,
                end: start + block.len() as u32,
            };
            match by_probe.get_mut(name) {
                Some(v) => v.push(piece),
                None => {
                    by_probe.insert(name.to_owned(), vec![piece]);
                }
            }
        });
        // Blocks before the damage are kept.
        self.payloads.push(payload);
        walked
    }

    fn bytes(&self, p: &Piece) -> &[u8] {
        &self.payloads[p.payload as usize][p.start as usize..p.end as usize]
    }
}

impl HistoryFiles {
    /// Opens the history directory `dir` (creating it) and seals the logs a previous run left.
    pub(super) fn open(dir: PathBuf) -> Result<(HistoryFiles, OpenReport), StoreError> {
        const OP: &str = "opening the probe history";
        if !dir.is_dir() {
            std::fs::create_dir(&dir).map_err(StoreError::file(OP, &dir))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent).map_err(StoreError::file(OP, &dir))?;
            }
        }
        let mut report = OpenReport::default();
        let mut logs = Vec::new();
        let mut sealed = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(StoreError::file(OP, &dir))? {
            let name = entry.map_err(StoreError::file(OP, &dir))?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(TMP_SUFFIX) {
                remove(&dir.join(&*name)).map_err(StoreError::file(OP, &dir))?;
            } else if let Some(id) = parse_name(&name, LOG_SUFFIX) {
                logs.push(id);
            } else if let Some(id) = parse_name(&name, SEALED_SUFFIX) {
                let path = dir.join(&*name);
                match read_footer(&path).and_then(|(_, footer)| summarize(&footer)) {
                    Ok(s) => {
                        sealed.insert(id, s);
                    }
                    // Left in place: it may be readable by a later version, or by hand.
                    Err(e) => report.damaged.push(format!("{}: {e}", path.display())),
                }
            }
        }
        logs.sort_unstable();
        let files = HistoryFiles {
            dir,
            state: Mutex::new(State {
                log: None,
                retired: Vec::new(),
                sealed,
                max_span_ms: HISTORY_MAX_SPAN_MS,
            }),
            sealer: Mutex::new(()),
            #[cfg(test)]
            fail_next_append: std::sync::atomic::AtomicBool::new(false),
        };
        let newest = logs.last().copied();
        for id in logs {
            let path = files.log_path(id);
            if files.lock().sealed.contains_key(&id) {
                remove(&path).map_err(StoreError::file(OP, &path))?;
                continue;
            }
            let file = File::open(&path).map_err(StoreError::file(OP, &path))?;
            let scan = scan_log(&file, Some(id) == newest).map_err(StoreError::file(OP, &path))?;
            if let Some(damage) = scan.damage {
                report.damaged.push(format!("{}: {damage}", path.display()));
            }
            report.journaled += scan.journaled.len();
            let retired = Retired {
                id,
                file: Arc::new(file),
                blocks: scan.blocks,
            };
            files.seal(&retired, &scan.journaled, &mut report.damaged)?;
            report.sealed_logs += 1;
        }
        Ok((files, report))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a write panicked half-way; every step leaves the state usable
        // (at worst a log with a torn tail, which the next write abandons).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The history directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}{LOG_SUFFIX}"))
    }

    fn sealed_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}{SEALED_SUFFIX}"))
    }

    /// Caps the span of results one log holds before it is sealed (at most
    /// [`HISTORY_MAX_SPAN_MS`], at least a millisecond): retention deletes a sealed file once
    /// its newest result is past the cutoff, so the span is how much expired history the
    /// store can hold beyond its retention.
    pub(super) fn set_max_span(&self, ms: i64) {
        self.lock().max_span_ms = ms.clamp(1, HISTORY_MAX_SPAN_MS);
    }

    /// Appends one record of `kind` to the log (starting one first, with an id from `new_id`,
    /// when there is none) holding results from `min_t` to `max_t`. After a blocks record,
    /// a log that spans the maximum or holds [`LOG_MAX_BYTES`] is retired: the next record
    /// starts a new one, and [`HistoryFiles::seal_retired`] seals it. A failed write retires
    /// the log too (nothing is appended after a torn record); the caller must then journal
    /// every result it still buffers again.
    pub(super) fn append(
        &self,
        kind: u8,
        body: &[u8],
        min_t: Timestamp,
        max_t: Timestamp,
        new_id: &mut dyn FnMut() -> Result<u64, StoreError>,
    ) -> Result<Written, StoreError> {
        const OP: &str = "writing the probe history";
        let mut st = self.lock();
        let max_span_ms = st.max_span_ms;
        if st.log.is_none() {
            // An id is never handed out twice, but a file of that name may exist all the same
            // (a store directory put together by hand): take the next.
            let mut id = new_id()?;
            for _ in 0..16 {
                if !st.sealed.contains_key(&id)
                    && !self.log_path(id).exists()
                    && !self.sealed_path(id).exists()
                {
                    break;
                }
                id = new_id()?;
            }
            st.log = Some(self.create(id)?);
        }
        let Some(log) = st.log.as_mut() else {
            unreachable!("a log was just created")
        };
        let len = u32::try_from(body.len() + 1)
            .ok()
            .filter(|n| *n <= MAX_PAYLOAD)
            .ok_or_else(|| StoreError::InvalidRecord {
                reason: format!("a probe history record of {} bytes", body.len()),
            })?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(body);
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + 1 + body.len());
        record.extend_from_slice(&len.to_be_bytes());
        record.extend_from_slice(&crc.finalize().to_be_bytes());
        record.push(kind);
        record.extend_from_slice(body);
        let offset = log.len;
        #[cfg(test)]
        let record = if self
            .fail_next_append
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            // Half a record, then the error: a torn write.
            let _ = log.file.write_all_at(&record[..record.len() / 2], offset);
            Vec::new()
        } else {
            record
        };
        let written = if record.is_empty() {
            Err(io::Error::other("injected write failure"))
        } else {
            log.file.write_all_at(&record, offset)
        };
        if let Err(source) = written {
            let path = self.log_path(log.id);
            retire(&mut st);
            return Err(StoreError::File {
                op: OP,
                path,
                source,
            });
        }
        log.len += record.len() as u64;
        log.first_t = Some(log.first_t.map_or(min_t, |t| t.min(min_t)));
        let written = Written(log.file.clone());
        if kind == KIND_BLOCKS {
            log.blocks.push(RecLoc {
                offset,
                len,
                min_t,
                max_t,
            });
            let span = log.first_t.map_or(0, |first| max_t.saturating_sub(first));
            if span >= max_span_ms || log.len >= LOG_MAX_BYTES {
                retire(&mut st);
            }
        }
        Ok(written)
    }

    /// A new log: header written and synced, directory entry synced.
    fn create(&self, id: u64) -> Result<Log, StoreError> {
        const OP: &str = "starting a probe history file";
        let path = self.log_path(id);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::file(OP, &path))?;
        let mut header = LOG_MAGIC.to_vec();
        header.push(FILE_V1);
        if let Err(e) = file
            .write_all(&header)
            .and_then(|()| file.sync_all())
            .and_then(|()| sync_dir(&self.dir))
        {
            // Not left behind: a full disk would otherwise collect a file per attempt.
            let _ = remove(&path);
            return Err(StoreError::file(OP, &path)(e));
        }
        Ok(Log {
            id,
            file: Arc::new(file),
            len: HEADER_LEN,
            first_t: None,
            blocks: Vec::new(),
        })
    }

    /// Seals every retired log (see the module doc); a log that fails stays retired (and
    /// readable) for the next call. Blocks for the reads, writes and syncs: call it without
    /// holding other locks.
    pub(super) fn seal_retired(&self) -> Result<usize, StoreError> {
        let _sealer = self.sealer.lock().unwrap_or_else(|p| p.into_inner());
        let mut sealed = 0;
        loop {
            let Some(retired) = self.lock().retired.first().cloned() else {
                return Ok(sealed);
            };
            let mut damage = Vec::new();
            self.seal(&retired, &[], &mut damage)?;
            for d in damage {
                warn!(damage = %d, "a probe history record could not be read while sealing");
            }
            sealed += 1;
        }
    }

    /// Writes the sealed file of `log` (its blocks records, plus `journaled` results), records
    /// it, and deletes the log.
    fn seal(
        &self,
        log: &Retired,
        journaled: &[ProbeRecord],
        damage: &mut Vec<String>,
    ) -> Result<(), StoreError> {
        const OP: &str = "sealing a probe history file";
        let log_path = self.log_path(log.id);
        let mut pieces = Pieces::default();
        for loc in &log.blocks {
            let added = read_record(&log.file, loc.offset, loc.len)
                .map_err(|e| e.to_string())
                .and_then(|payload| pieces.add(payload).map_err(|e| e.to_string()));
            if let Err(e) = added {
                damage.push(format!("{}: {e}", log_path.display()));
            }
        }
        if !journaled.is_empty() {
            // The journaled results as one more blocks record.
            let mut journaled = journaled.to_vec();
            let mut payload = vec![KIND_BLOCKS];
            payload.extend(encode_blocks_record(&history::encode_blocks(
                &mut journaled,
            )));
            pieces
                .add(payload)
                .map_err(|e| StoreError::file(OP, &log_path)(io::Error::other(e)))?;
        }
        let path = self.sealed_path(log.id);
        let summary = if pieces.by_probe.is_empty() {
            None
        } else {
            Some(write_sealed(&path, &pieces).map_err(StoreError::file(OP, &path))?)
        };
        {
            let mut st = self.lock();
            if let Some(s) = summary {
                st.sealed.insert(log.id, s);
            }
            st.retired.retain(|r| r.id != log.id);
        }
        remove(&log_path)
            .and_then(|()| sync_dir(&self.dir))
            .map_err(StoreError::file(OP, &log_path))
    }

    /// `probe`'s results with `since <= t <= until` in the files, newest files first, until
    /// `limit` of them are found (a file's results are all taken: the caller sorts and
    /// trims). Damage is passed to `skip` and read past.
    pub(super) fn read(
        &self,
        probe: &str,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
        skip: &dyn Fn(&dyn std::fmt::Display),
    ) -> Vec<ProbeRecord> {
        enum Source {
            Log(Arc<File>, Vec<RecLoc>),
            Sealed(u64),
        }
        let overlaps = |min_t: Timestamp, max_t: Timestamp| min_t <= until && since <= max_t;
        // Newest first: the log, the retired logs, the sealed files by id.
        let sources: Vec<Source> = {
            let st = self.lock();
            let logs = st
                .log
                .iter()
                .map(|l| (l.file.clone(), &l.blocks))
                .chain(st.retired.iter().rev().map(|r| (r.file.clone(), &r.blocks)));
            logs.map(|(file, blocks)| {
                let blocks = blocks
                    .iter()
                    .rev()
                    .filter(|b| overlaps(b.min_t, b.max_t))
                    .copied()
                    .collect();
                Source::Log(file, blocks)
            })
            .chain(
                st.sealed
                    .iter()
                    .rev()
                    .filter(|(_, s)| overlaps(s.min_t, s.max_t))
                    .map(|(id, _)| Source::Sealed(*id)),
            )
            .collect()
        };
        let mut out = Vec::new();
        for source in sources {
            match source {
                Source::Log(file, blocks) => {
                    for loc in blocks {
                        let payload = match read_record(&file, loc.offset, loc.len) {
                            Ok(p) => p,
                            Err(e) => {
                                skip(&format_args!("probe history log: {e}"));
                                continue;
                            }
                        };
                        let walked = each_block(&payload, |name, first, last, block| {
                            if name == probe {
                                take(&mut out, probe, (since, until), (first, last), block, skip);
                            }
                        });
                        if let Err(e) = walked {
                            skip(&format_args!("probe history log: {e}"));
                        }
                    }
                }
                Source::Sealed(id) => {
                    let path = self.sealed_path(id);
                    match read_region(&path, probe) {
                        Ok(Some((region_first, region))) => {
                            let walked = each_piece(&region, region_first, |first, last, block| {
                                take(&mut out, probe, (since, until), (first, last), block, skip);
                            });
                            if let Err(e) = walked {
                                skip(&format_args!("{}: {e}", path.display()));
                            }
                        }
                        Ok(None) => {}
                        // Retention may delete it between the listing and the open.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => skip(&format_args!("{}: {e}", path.display())),
                    }
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// The time of the newest result in the files, if any.
    pub(super) fn newest(&self) -> Option<Timestamp> {
        let st = self.lock();
        let logs = st
            .log
            .iter()
            .flat_map(|l| l.blocks.iter())
            .chain(st.retired.iter().flat_map(|r| r.blocks.iter()))
            .map(|b| b.max_t);
        logs.chain(st.sealed.values().map(|s| s.max_t)).max()
    }

    /// The names of the probes with results at or after `since` in the files (and maybe a
    /// few with results only before it): what the uptime counts read again at open. Damage
    /// is passed to `skip` and read past.
    pub(super) fn names_since(
        &self,
        since: Timestamp,
        skip: &dyn Fn(&dyn std::fmt::Display),
    ) -> std::collections::BTreeSet<String> {
        type Logs = Vec<(Arc<File>, Vec<RecLoc>)>;
        let (logs, sealed): (Logs, Vec<u64>) = {
            let st = self.lock();
            let logs = st
                .log
                .iter()
                .map(|l| (l.file.clone(), &l.blocks))
                .chain(st.retired.iter().map(|r| (r.file.clone(), &r.blocks)))
                .map(|(f, b)| (f, b.iter().filter(|b| b.max_t >= since).copied().collect()))
                .collect();
            let sealed = st
                .sealed
                .iter()
                .filter(|(_, s)| s.max_t >= since)
                .map(|(id, _)| *id)
                .collect();
            (logs, sealed)
        };
        let mut names = std::collections::BTreeSet::new();
        for (file, blocks) in logs {
            for loc in blocks {
                let walked = read_record(&file, loc.offset, loc.len)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        each_block(&p, |name, _, last, _| {
                            if last >= since {
                                names.insert(name.to_owned());
                            }
                        })
                        .map_err(|e| e.to_string())
                    });
                if let Err(e) = walked {
                    skip(&format_args!("probe history log: {e}"));
                }
            }
        }
        for id in sealed {
            let path = self.sealed_path(id);
            let listed = read_footer(&path).and_then(|(_, footer)| {
                each_entry(&footer, |e| {
                    if e.last >= since {
                        names.insert(e.name.to_owned());
                    }
                })
                .map_err(|e| damaged(format!("footer: {e}")))
            });
            match listed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => skip(&format_args!("{}: {e}", path.display())),
            }
        }
        names
    }

    /// Deletes up to `budget` sealed files whose newest result is older than `before`, oldest
    /// first; returns how many files, the regions (one probe's results in one file) they held,
    /// and whether more are left.
    pub(super) fn prune(
        &self,
        before: Timestamp,
        budget: usize,
    ) -> Result<(u64, u64, bool), StoreError> {
        const OP: &str = "deleting old probe history";
        let doomed: Vec<(u64, Sealed)> = self
            .lock()
            .sealed
            .iter()
            .filter(|(_, s)| s.max_t < before)
            .map(|(id, s)| (*id, *s))
            .collect();
        let more = doomed.len() > budget;
        let (mut files, mut regions) = (0, 0);
        for (id, s) in doomed.into_iter().take(budget) {
            let path = self.sealed_path(id);
            remove(&path).map_err(StoreError::file(OP, &path))?;
            self.lock().sealed.remove(&id);
            files += 1;
            regions += s.regions;
        }
        if files > 0 {
            sync_dir(&self.dir).map_err(StoreError::file(OP, &self.dir))?;
        }
        Ok((files, regions, more))
    }

    /// Every block of the current and retired logs: (probe, first time, last time), for tests.
    #[cfg(test)]
    pub(super) fn logged_blocks(&self) -> Vec<(String, Timestamp, Timestamp)> {
        let st = self.lock();
        let mut out = Vec::new();
        let logs = st
            .retired
            .iter()
            .map(|r| (&r.file, &r.blocks))
            .chain(st.log.iter().map(|l| (&l.file, &l.blocks)));
        for (file, blocks) in logs {
            for loc in blocks {
                let payload = read_record(file, loc.offset, loc.len).expect("record");
                each_block(&payload, |name, first, last, _| {
                    out.push((name.to_owned(), first, last));
                })
                .expect("blocks");
            }
        }
        out
    }

    /// The results of the current log's journal records after its last blocks record: what
    /// an open after a crash would take from it. For tests.
    #[cfg(test)]
    pub(super) fn journaled(&self) -> Vec<ProbeRecord> {
        let st = self.lock();
        st.log.as_ref().map_or_else(Vec::new, |l| {
            scan_log(&l.file, true).expect("scan").journaled
        })
    }

    /// The paths of the sealed files, oldest first; for tests.
    #[cfg(test)]
    pub(super) fn sealed_paths(&self) -> Vec<PathBuf> {
        let ids: Vec<u64> = self.lock().sealed.keys().copied().collect();
        ids.into_iter().map(|id| self.sealed_path(id)).collect()
    }

    /// The path of the current log, if any; for tests.
    #[cfg(test)]
    pub(super) fn log_file(&self) -> Option<PathBuf> {
        self.lock().log.as_ref().map(|l| self.log_path(l.id))
    }

    /// Retires the log and seals it now: what a full span does, for tests.
    #[cfg(test)]
    pub(super) fn roll(&self) {
        retire(&mut self.lock());
        self.seal_retired().expect("seal");
    }

    /// Sealed files, and logs (current and retired): for tests and the benchmark.
    #[cfg(test)]
    pub(super) fn file_counts(&self) -> (usize, usize) {
        let st = self.lock();
        (
            st.sealed.len(),
            st.retired.len() + usize::from(st.log.is_some()),
        )
    }
}

/// Adds the results of `block` (of `probe`, spanning `first..=last`) within `since..=until`
/// to `out`.
fn take(
    out: &mut Vec<ProbeRecord>,
    probe: &str,
    (since, until): (Timestamp, Timestamp),
    (first, last): (Timestamp, Timestamp),
    block: &[u8],
    skip: &dyn Fn(&dyn std::fmt::Display),
) {
    if first > until || last < since {
        return;
    }
    match history::decode_probes(probe, first, block) {
        Ok(rs) => out.extend(rs.into_iter().filter(|r| since <= r.t && r.t <= until)),
        Err(e) => skip(&format_args!("probe history block of {probe:?}: {e}")),
    }
}

/// Moves the log to the retired list.
fn retire(st: &mut State) {
    if let Some(log) = st.log.take() {
        st.retired.push(Arc::new(Retired {
            id: log.id,
            file: log.file,
            blocks: log.blocks,
        }));
    }
}

/// Removes a file; one already gone is fine.
fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A history file name's id.
fn parse_name(name: &str, suffix: &str) -> Option<u64> {
    let hex = name.strip_suffix(suffix)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn damaged(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads the log record at `offset` with payload length `len` and checks it; the payload.
fn read_record(file: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; RECORD_HEADER_LEN + len as usize];
    file.read_exact_at(&mut buf, offset)?;
    let (header, payload) = buf.split_at(RECORD_HEADER_LEN);
    let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if found != len {
        return Err(damaged(format!(
            "record at {offset} is {found} bytes, expected {len}"
        )));
    }
    if crc32fast::hash(payload) != crc {
        return Err(damaged(format!("record at {offset} fails its CRC")));
    }
    buf.drain(..RECORD_HEADER_LEN);
    Ok(buf)
}

/// The body of a blocks record holding `blocks`: (probe, first time, last time, block).
pub(super) fn encode_blocks_record(blocks: &[history::EncodedBlock<'_>]) -> Vec<u8> {
    let mut e = Encoder::default();
    let min_t = blocks.iter().map(|b| b.first).min().unwrap_or(0);
    let max_t = blocks.iter().map(|b| b.last).max().unwrap_or(0);
    e.ivarint(min_t).ivarint(max_t).uvarint(blocks.len() as u64);
    for b in blocks {
        e.str(b.name)
            .ivarint(b.first.wrapping_sub(min_t))
            .uvarint(b.last.wrapping_sub(b.first) as u64)
            .bytes(&b.bytes);
    }
    e.finish()
}

/// Calls `f(probe, first, last, block)` for every block of a blocks record's payload (kind
/// byte included).
fn each_block(
    payload: &[u8],
    mut f: impl FnMut(&str, Timestamp, Timestamp, &[u8]),
) -> Result<(), DecodeError> {
    let mut d = Decoder::new(payload);
    if d.u8()? != KIND_BLOCKS {
        return Err(DecodeError::OutOfRange);
    }
    let min_t = d.ivarint()?;
    let _max_t = d.ivarint()?;
    let n = d.uvarint()?;
    for _ in 0..n {
        let name = d.str()?;
        let (first, last) = decode_span(&mut d, min_t)?;
        f(name, first, last, d.bytes()?);
    }
    d.finish()
}

/// What a log holds, as [`scan_log`] read it.
struct LogScan {
    blocks: Vec<RecLoc>,
    /// Results of the journal records after the last blocks record (if asked for).
    journaled: Vec<ProbeRecord>,
    /// Why the scan stopped before the end, if it did.
    damage: Option<String>,
}

/// Reads a log from the start up to its end or its first damaged record.
fn scan_log(file: &File, want_journal: bool) -> io::Result<LogScan> {
    let size = file.metadata()?.len();
    let mut scan = LogScan {
        blocks: Vec::new(),
        journaled: Vec::new(),
        damage: None,
    };
    let mut header = [0u8; HEADER_LEN as usize];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) if header[..4] == *LOG_MAGIC && header[4] == FILE_V1 => {}
        Ok(()) => {
            scan.damage = Some("unknown header".into());
            return Ok(scan);
        }
        // Torn while being started: nothing in it.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(scan),
        Err(e) => return Err(e),
    }
    let mut offset = HEADER_LEN;
    // Journal records since the last blocks record: (offset, len).
    let mut tail: Vec<(u64, u32)> = Vec::new();
    while offset < size {
        let mut h = [0u8; RECORD_HEADER_LEN];
        if offset + RECORD_HEADER_LEN as u64 > size {
            scan.damage = Some(format!("record at {offset} is cut short"));
            break;
        }
        file.read_exact_at(&mut h, offset)?;
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let end = offset + RECORD_HEADER_LEN as u64 + u64::from(len);
        if len == 0 || len > MAX_PAYLOAD || end > size {
            scan.damage = Some(format!("record at {offset} is cut short"));
            break;
        }
        let payload = match read_record(file, offset, len) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                scan.damage = Some(e.to_string());
                break;
            }
            Err(e) => return Err(e),
        };
        match payload[0] {
            KIND_BLOCKS => {
                let mut d = Decoder::new(&payload[1..]);
                let (Ok(min_t), Ok(max_t)) = (d.ivarint(), d.ivarint()) else {
                    scan.damage = Some(format!("blocks record at {offset} does not decode"));
                    break;
                };
                scan.blocks.push(RecLoc {
                    offset,
                    len,
                    min_t,
                    max_t,
                });
                tail.clear();
            }
            KIND_JOURNAL => tail.push((offset, len)),
            k => {
                scan.damage = Some(format!("record at {offset} has unknown kind {k}"));
                break;
            }
        }
        offset = end;
    }
    if want_journal {
        for (offset, len) in tail {
            let payload = read_record(file, offset, len)?;
            match history::decode_journal(&payload[1..]) {
                Ok(rs) => scan.journaled.extend(rs),
                Err(e) => {
                    scan.damage = Some(format!("journal record at {offset}: {e}"));
                }
            }
        }
    }
    Ok(scan)
}

/// Writes a sealed file of `pieces` at `path` (through a temporary file, synced and renamed,
/// the directory synced).
fn write_sealed(path: &Path, pieces: &Pieces) -> io::Result<Sealed> {
    let tmp = {
        let mut s = path.as_os_str().to_owned();
        s.push(TMP_SUFFIX);
        PathBuf::from(s)
    };
    let written = write_sealed_to(&tmp, path, pieces);
    if written.is_err() {
        let _ = remove(&tmp);
    }
    written
}

fn write_sealed_to(tmp: &Path, path: &Path, pieces: &Pieces) -> io::Result<Sealed> {
    let mut out = io::BufWriter::new(File::create(tmp)?);
    out.write_all(SEALED_MAGIC)?;
    out.write_all(&[FILE_V1])?;
    let mut offset = HEADER_LEN;
    let mut footer = Encoder::with_format(FOOTER_V1);
    footer.uvarint(pieces.by_probe.len() as u64);
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    for (name, blocks) in &pieces.by_probe {
        let mut blocks: Vec<&Piece> = blocks.iter().collect();
        blocks.sort_by_key(|b| b.first);
        let first = blocks.first().map_or(0, |b| b.first);
        let last = blocks.iter().map(|b| b.last).max().unwrap_or(first);
        let mut region = Encoder::default();
        for b in blocks {
            region
                .ivarint(b.first.wrapping_sub(first))
                .uvarint(b.last.wrapping_sub(b.first) as u64)
                .bytes(pieces.bytes(b));
        }
        let region = region.finish();
        let bytes = region.as_slice();
        out.write_all(bytes)?;
        footer
            .str(name)
            .ivarint(first)
            .ivarint(last)
            .uvarint(offset)
            .uvarint(bytes.len() as u64)
            .uvarint(u64::from(crc32fast::hash(bytes)));
        offset += bytes.len() as u64;
        min_t = min_t.min(first);
        max_t = max_t.max(last);
    }
    let footer = footer.finish();
    let footer_len = u32::try_from(footer.len())
        .ok()
        .filter(|n| *n <= MAX_PAYLOAD)
        .ok_or_else(|| damaged("footer too large"))?;
    out.write_all(&footer)?;
    out.write_all(&offset.to_be_bytes())?;
    out.write_all(&footer_len.to_be_bytes())?;
    out.write_all(&crc32fast::hash(&footer).to_be_bytes())?;
    out.write_all(TRAILER_MAGIC)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(Sealed {
        min_t,
        max_t,
        regions: pieces.by_probe.len() as u64,
    })
}

/// One footer entry.
struct Entry<'a> {
    name: &'a str,
    first: Timestamp,
    last: Timestamp,
    offset: u64,
    len: u64,
    crc: u32,
}

/// Reads and checks a sealed file's footer; the open file and the footer's bytes.
fn read_footer(path: &Path) -> io::Result<(File, Vec<u8>)> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)?;
    if header[..4] != *SEALED_MAGIC || header[4] != FILE_V1 {
        return Err(damaged("unknown header"));
    }
    if size < HEADER_LEN + TRAILER_LEN as u64 {
        return Err(damaged("cut short"));
    }
    let mut t = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut t, size - TRAILER_LEN as u64)?;
    if t[16..] != *TRAILER_MAGIC {
        return Err(damaged("no trailer (cut short?)"));
    }
    let offset = u64::from_be_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
    let len = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    let crc = u32::from_be_bytes([t[12], t[13], t[14], t[15]]);
    if offset < HEADER_LEN || offset + u64::from(len) != size - TRAILER_LEN as u64 {
        return Err(damaged("footer out of bounds"));
    }
    let mut footer = vec![0; len as usize];
    file.read_exact_at(&mut footer, offset)?;
    if crc32fast::hash(&footer) != crc {
        return Err(damaged("footer fails its CRC"));
    }
    Ok((file, footer))
}

/// Calls `f` with every entry of a footer.
fn each_entry(footer: &[u8], mut f: impl FnMut(Entry<'_>)) -> Result<(), DecodeError> {
    let (format, mut d) = Decoder::with_format(footer)?;
    if format != FOOTER_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let n = d.uvarint()?;
    for _ in 0..n {
        f(Entry {
            name: d.str()?,
            first: d.ivarint()?,
            last: d.ivarint()?,
            offset: d.uvarint()?,
            len: d.uvarint()?,
            crc: u32::try_from(d.uvarint()?).map_err(|_| DecodeError::OutOfRange)?,
        });
    }
    d.finish()
}

/// A sealed file's span and regions, from its footer.
fn summarize(footer: &[u8]) -> io::Result<Sealed> {
    let mut s = Sealed {
        min_t: i64::MAX,
        max_t: i64::MIN,
        regions: 0,
    };
    each_entry(footer, |e| {
        s.min_t = s.min_t.min(e.first);
        s.max_t = s.max_t.max(e.last);
        s.regions += 1;
    })
    .map_err(|e| damaged(format!("footer: {e}")))?;
    Ok(s)
}

/// `probe`'s region in the sealed file at `path`, checked, with its first time.
fn read_region(path: &Path, probe: &str) -> io::Result<Option<(Timestamp, Vec<u8>)>> {
    let (file, footer) = read_footer(path)?;
    let mut found = None;
    each_entry(&footer, |e| {
        if e.name == probe {
            found = Some((e.first, e.offset, e.len, e.crc));
        }
    })
    .map_err(|e| damaged(format!("footer: {e}")))?;
    let Some((first, offset, len, crc)) = found else {
        return Ok(None);
    };
    let size = file.metadata()?.len();
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(damaged(format!("region of {probe:?} out of bounds")));
    }
    let mut region = vec![0; len as usize];
    file.read_exact_at(&mut region, offset)?;
    if crc32fast::hash(&region) != crc {
        return Err(damaged(format!("region of {probe:?} fails its CRC")));
    }
    Ok(Some((first, region)))
}

/// Calls `f(first, last, block)` for every block of a region whose first block starts at
/// `region_first`.
fn each_piece(
    region: &[u8],
    region_first: Timestamp,
    mut f: impl FnMut(Timestamp, Timestamp, &[u8]),
) -> Result<(), DecodeError> {
    let mut d = Decoder::new(region);
    while d.remaining() > 0 {
        let (first, last) = decode_span(&mut d, region_first)?;
        f(first, last, d.bytes()?);
    }
    Ok(())
}

/// A block's first time (a varint from `base`) and last time (a uvarint from its first), as
/// blocks records and regions write them.
fn decode_span(
    d: &mut Decoder<'_>,
    base: Timestamp,
) -> Result<(Timestamp, Timestamp), DecodeError> {
    let first = base
        .checked_add(d.ivarint()?)
        .ok_or(DecodeError::OutOfRange)?;
    let last = i64::try_from(d.uvarint()?)
        .ok()
        .and_then(|span| first.checked_add(span))
        .ok_or(DecodeError::OutOfRange)?;
    Ok((first, last))
}

/// Sealed regions per probe in a footer: used by tests to look inside.
#[cfg(test)]
pub(super) fn sealed_probes(
    path: &Path,
) -> io::Result<std::collections::HashMap<String, (Timestamp, Timestamp)>> {
    let (_, footer) = read_footer(path)?;
    let mut out = std::collections::HashMap::new();
    each_entry(&footer, |e| {
        out.insert(e.name.to_owned(), (e.first, e.last));
    })
    .map_err(|e| damaged(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
