//! The embedded store: every byte postflight keeps on disk goes through [`Store`].
//!
//! The store is a sled database with one tree per kind of record, plus append-only files for
//! the bulk of the samples. The rest of the daemon sees only the typed API below; sled and the
//! files never appear outside this module.
//!
//! # Records and layout
//!
//! | tree | key | value |
//! |---|---|---|
//! | `alert_transitions` | alertname len · alertname · time · seq | [`AlertTransition`] (binary) |
//! | `symbols` | first id of the batch (u32 BE) | label names and values (see the `symbols` module) |
//! | `chunk_blocks` | block max time · sequence, newest first | segment id, offset, length of a block of many series' chunks (see [`chunks`]) |
//! | `outbox` | id (u64 BE) | owner's type as JSON |
//! | `nlog`, `silences`, `deployments`, `alert_state` | string | owner's type as JSON ([`Kind`]) |
//! | `meta` | string | bytes |
//!
//! | file | what |
//! |---|---|
//! | `series/<seq>.sidx` | a batch of series index entries: fingerprint, referenced-until time, label set as symbol ids (see the `series_index` module) |
//! | `segments/<id>.seg` | blocks of chunks, append-only, CRC per block (see the `segments` module) |
//! | `history/<id>.hlog` | probe results being written: journal and per-probe blocks records, CRC per record (see the `history_files` module) |
//! | `history/<id>.hist` | probe results of about an hour, one region per probe, footer index |
//! | `segments/open-<n>.snap` | shard `n` of the snapshot of the head's open chunks (see the `open_chunks` module) |
//! | `postflight.witness` | durable flushes completed (see the `witness` module) |
//! | `db`, `conf`, `blobs/`, `snap.*` | sled's |
//!
//! Sample chunks are most of what the store holds, and sled 0.34 keeps about twice the live
//! bytes of its values on disk, and ~170 bytes per key in a tree that grows by random inserts:
//! chunks go to files, where they cost their size, and the series index to a few large files
//! (`bench/RESULTS-store.md`; as sled values, sled kept them in memory). Probe results go to files too: sled's memory grows with the
//! keys it holds, and the history is the one record that grows with time.
//!
//! Times in keys are big-endian with the sign bit flipped, so a range scan walks in time order.
//! Every value and file starts with a format byte; a reader that meets a format it does not
//! know skips the record and counts it ([`Store::skipped_records`]) instead of failing or
//! panicking, and a later version can keep reading what this one wrote.
//!
//! # Durability
//!
//! Two classes of writes:
//!
//! - **Durable** — every method whose name ends in `_durable`: alert transitions, alert state,
//!   the notification log, the outbox, silences, deployments and `meta`. These decide whether
//!   someone is paged, so the method flushes the store (write + fsync) before it returns: once it
//!   returned `Ok`, the record survives SIGKILL and power loss. A flush also makes every earlier
//!   bulk write durable.
//! - **Bulk** — [`Store::put_chunks`] and the probe results. Chunks' index entries ride sled's
//!   periodic flush ([`StoreOptions::flush_every_ms`], 1 s by default): on SIGKILL or power loss
//!   at most the last ~1 s of them is lost, in addition to the samples still in the in-memory
//!   head (not yet cut into a chunk). [`Store::flush`] on SIGTERM makes them durable before a
//!   clean exit. Probe results go to a journal record of the history log every half second,
//!   `fdatasync`ed, and into per-probe blocks once a minute ([`Store::append_probe`],
//!   [`Store::write_probe_journal`], [`Store::write_probe_results`]; see the `history` and
//!   `history_files` modules): at most the last half second of them is lost.
//!   `put_chunks` writes and fsyncs the chunks' bytes to a segment file before it returns;
//!   only their index entries ride the flush (a block whose entry was lost is garbage, deleted
//!   at the next open).
//! - **Snapshot** — [`Store::put_open_chunks`] replaces a snapshot file (write, fsync, rename,
//!   fsync the directory), after flushing sled if chunks were stored since its last flush:
//!   when it returns, the snapshot and every chunk stored before it are durable. The
//!   checkpointer writes the snapshot right after the chunks that closed, so a crash loses at
//!   most the samples since the last checkpoint.
//!
//! A durable write blocks its thread for the fsync (typically around a millisecond on an SSD,
//! far more on a loaded spinning disk): callers on the async runtime should go through
//! `tokio::task::spawn_blocking`. [`Store`] is a cheap handle: clone it into the task.
//!
//! # Corruption
//!
//! [`Store::open`] never trusts the disk. The store is treated as corrupt when sled reports
//! corruption (or panics) while opening, when our format marker is missing from a store that
//! existed, or when the witness file shows that sled recovered fewer durable flushes than had
//! completed (sled drops everything after an unreadable log record as if it were a torn tail;
//! see the `witness` module). A corrupt store's directory is renamed to
//! `<path>.corrupt-<unix seconds>` and a fresh store is opened in its place;
//! [`Opened::recovered_from_corruption`] says where the old one went (sled may already have cut
//! the damaged tail off the moved files; the segment files move with the rest). After open, a
//! record that does not decode is skipped and counted, never a panic; so is a block whose
//! segment file is missing, cut short or fails its CRC, and a snapshot shard that fails its
//! CRC. The files never make the store count as corrupt: sled's index is what decides what
//! exists, and a file is only as good as each record's check.

pub mod chunks;
pub mod codec;
mod error;
mod history;
mod history_files;
mod open_chunks;
mod outbox_txn;
mod prune;
mod segments;
mod series_index;
mod state;
mod symbols;
mod witness;

pub use chunks::{ChunkRef, StoredChunk};
pub use error::StoreError;
pub use history::{AlertTransition, PROBE_JOURNAL_EVERY, ProbeRecord};
pub use history_files::{HISTORY_MAX_SPAN_MS, LOG_MAX_BYTES};
pub use open_chunks::{OPEN_SHARDS, OpenChunk};
pub use prune::{PRUNE_STEP, PruneCursor, PruneStats};
pub use segments::{SEGMENT_MAX_BYTES, SEGMENT_MAX_SPAN_MS};
pub use state::{JsonBatch, Kind};

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{error, info, warn};

use segments::Segments;
use series_index::SeriesIndex;

/// The on-disk format this build writes and the newest it reads.
pub const FORMAT_VERSION: u8 = 1;

/// `meta` key of the format marker written when a store is created; a store that existed but
/// lacks it was damaged.
const FORMAT_KEY: &str = "store.format";
/// Magic prefix of the format marker, followed by [`FORMAT_VERSION`].
const FORMAT_MAGIC: &[u8] = b"postflight-store:";
/// `meta` key of the durable-flush sequence (u64 BE) that the [`witness`] file vouches for.
const SEQ_KEY: &str = "store.seq";

/// Tuning of the store; the defaults suit a small monitoring host.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bytes of sled's page cache. Small on purpose: the in-memory head serves the hot data,
    /// the store is written far more than it is read. 1 MiB: the watch job's RSS was 1.8 MiB
    /// lower on average (2.4 at the end) than with 4 MiB at the same CPU, side by side over 25
    /// minutes.
    pub cache_capacity: u64,
    /// How often sled flushes buffered (bulk) writes, in milliseconds: the window of bulk data
    /// that SIGKILL or power loss can lose.
    pub flush_every_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_capacity: 1024 * 1024,
            flush_every_ms: 1_000,
        }
    }
}

/// The result of [`Store::open`].
#[derive(Debug)]
pub struct Opened {
    /// The open store.
    pub store: Store,
    /// Set when the store at the path was corrupt: where it was moved before a fresh, empty
    /// store was created. The caller logs an error and raises a StoreCorrupted alert.
    pub recovered_from_corruption: Option<PathBuf>,
}

/// Handle to the open store. Cloning is cheap and every clone is the same store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The last handle writes the buffered probe results (the daemon flushes explicitly on stop;
/// this covers tools and tests that just drop the store).
impl Drop for Store {
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            let _ = self.write_probe_results(None);
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// One tree per kind of record, so that scans of one kind never walk another's keys.
struct Trees {
    transitions: sled::Tree,
    /// Label names and values of the series index, in batches (see the `symbols` module).
    symbols: sled::Tree,
    /// Where each block of chunks is in the segment files (see [`chunks`]).
    blocks: sled::Tree,
    outbox: sled::Tree,
    nlog: sled::Tree,
    silences: sled::Tree,
    deployments: sled::Tree,
    alert_state: sled::Tree,
    meta: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> Result<Trees, sled::Error> {
        Ok(Trees {
            transitions: db.open_tree("alert_transitions")?,
            symbols: db.open_tree("symbols")?,
            blocks: db.open_tree("chunk_blocks")?,
            outbox: db.open_tree("outbox")?,
            nlog: db.open_tree("nlog")?,
            silences: db.open_tree("silences")?,
            deployments: db.open_tree("deployments")?,
            alert_state: db.open_tree("alert_state")?,
            meta: db.open_tree("meta")?,
        })
    }
}

struct Inner {
    /// The database; flushes and ids go through it.
    db: sled::Db,
    /// Where the store lives, for messages.
    path: PathBuf,
    trees: Trees,
    /// Test hook: when set, every write fails as if the disk were full.
    fail_writes: AtomicBool,
    /// Records skipped because they did not decode (unknown format byte, truncation...).
    skipped: AtomicU64,
    /// Series in the index, readable without taking the index's lock.
    series_count: AtomicU64,
    /// The series index and the symbol table. The lock serializes every index decision: "is
    /// this series still referenced" between [`Store::put_chunks`] and pruning (so that a
    /// prune never removes the index entry of a chunk being written), batches and symbols'
    /// reference counts.
    index: Mutex<SeriesIndex>,
    /// Set by [`Store::put_chunks`] (series and block index entries written) and cleared by the
    /// flush in [`Store::put_open_chunks`]: a snapshot replaces the previous one only once the
    /// chunks that closed since are durable, and the series it names by fingerprint are in the
    /// durable index. Spares a flush per shard when nothing changed.
    chunks_unflushed: AtomicBool,
    /// The segment files holding the blocks of chunks.
    segments: Segments,
    /// Durable flushes, one at a time: the sequence written to `meta` and then to the witness
    /// file must only grow, so two flushes may not interleave their two steps.
    durable: Mutex<DurableState>,
    /// Probe results not written yet: each probe's are written together as one block (see
    /// [`Store::append_probe`]).
    probe_buffer: Mutex<history::ProbeBuffer>,
    /// The files holding the probe results.
    history: history_files::HistoryFiles,
    /// Bulk writes that failed and have not succeeded since: [`Store::write_check`] reports
    /// them (a full disk can leave sled's small durable writes room for minutes).
    bulk_failures: Mutex<BulkFailures>,
}

/// The last failure of each kind of bulk write, cleared by the next success of that kind.
#[derive(Default)]
struct BulkFailures {
    probes: Option<String>,
    chunks: Option<String>,
}

/// A kind of bulk write, for [`Store::note_bulk`].
#[derive(Clone, Copy)]
enum Bulk {
    Probes,
    Chunks,
}

/// The state behind durable flushes.
struct DurableState {
    /// The last sequence written.
    seq: u64,
    /// The witness file; `None` if it could not be opened (detection is then weaker, writes
    /// still work).
    witness: Option<witness::Witness>,
}

/// Why one attempt at opening failed.
enum OpenFailure {
    /// The data is damaged: move the directory aside and start fresh.
    Corrupt(String),
    /// Anything else (permissions, lock held, newer format): report and leave the data alone.
    Fatal(StoreError),
}

impl Store {
    /// Opens the store at `path` with default options; see [`Store::open_with`].
    pub fn open(path: &Path) -> Result<Opened, StoreError> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens or creates the store in directory `path`.
    ///
    /// A path that is not a directory or cannot be created, or a store locked by another
    /// process, is an error. A corrupt store is moved to `<path>.corrupt-<unix seconds>` and a
    /// fresh one is opened (see [`Opened::recovered_from_corruption`]).
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Opened, StoreError> {
        match std::fs::metadata(path) {
            Ok(m) if !m.is_dir() => {
                return Err(StoreError::NotADirectory {
                    path: path.to_owned(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path).map_err(|source| StoreError::Directory {
                    path: path.to_owned(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(StoreError::Directory {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let existed = ["db", "conf", witness::FILE_NAME]
            .iter()
            .any(|f| path.join(f).exists());
        // sled releases its file lock from a background thread when the previous `Db` (a
        // restart in the same process, or a process that is just exiting) goes away: wait a
        // little for it instead of failing at once. A live holder still fails after 3 s.
        let mut attempt = 0;
        let first = loop {
            match Self::try_open(path, options, existed) {
                Err(OpenFailure::Fatal(StoreError::Io { source, .. }))
                    if attempt < 30 && source.to_string().contains("could not acquire lock") =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => break other,
            }
        };
        match first {
            Ok(store) => Ok(Opened {
                store,
                recovered_from_corruption: None,
            }),
            Err(OpenFailure::Fatal(e)) => Err(e),
            Err(OpenFailure::Corrupt(reason)) => {
                let to = quarantine(path)?;
                error!(path = %path.display(), moved_to = %to.display(), %reason,
                    "store is corrupt; moved it aside and starting with an empty store");
                match Self::try_open(path, options, false) {
                    Ok(store) => Ok(Opened {
                        store,
                        recovered_from_corruption: Some(to),
                    }),
                    Err(OpenFailure::Fatal(e)) => Err(e),
                    // A freshly created store cannot be corrupt unless the disk is failing.
                    Err(OpenFailure::Corrupt(reason)) => Err(StoreError::Io {
                        op: "creating a fresh store after corruption",
                        source: io::Error::other(reason),
                    }),
                }
            }
        }
    }

    fn try_open(path: &Path, options: &StoreOptions, existed: bool) -> Result<Store, OpenFailure> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(Some(options.flush_every_ms));
        // sled 0.34 panics on some damaged files instead of returning an error; a panic here
        // means "corrupt", never a crash of the daemon.
        let db = match crate::rt::contained(|| config.open()) {
            Ok(Ok(db)) => db,
            Ok(Err(sled::Error::Io(source))) => {
                return Err(OpenFailure::Fatal(StoreError::Io {
                    op: "opening the store",
                    source,
                }));
            }
            Ok(Err(e)) => return Err(OpenFailure::Corrupt(e.to_string())),
            Err(panic) => return Err(OpenFailure::Corrupt(panic_message(&panic))),
        };
        let checked = crate::rt::contained(|| Self::check(db.clone(), path, existed));
        let failure = match checked {
            Ok(Ok(store)) => return Ok(store),
            Ok(Err(f)) => f,
            Err(panic) => OpenFailure::Corrupt(panic_message(&panic)),
        };
        // Dropping a damaged database can panic too (it flushes on drop).
        let _ = crate::rt::contained(move || drop(db));
        Err(failure)
    }

    /// Opens the trees, checks the format marker and walks the small trees, so that damage is
    /// found now (and the store moved aside) rather than at the first page.
    fn check(db: sled::Db, path: &Path, existed: bool) -> Result<Store, OpenFailure> {
        let corrupt = |e: sled::Error| match e {
            sled::Error::Io(source) => OpenFailure::Fatal(StoreError::Io {
                op: "checking the store",
                source,
            }),
            e => OpenFailure::Corrupt(e.to_string()),
        };
        let trees = Trees::open(&db).map_err(corrupt)?;
        match trees.meta.get(FORMAT_KEY).map_err(corrupt)? {
            Some(v) => {
                let version = v
                    .strip_prefix(FORMAT_MAGIC)
                    .and_then(|rest| match rest {
                        [version] => Some(*version),
                        _ => None,
                    })
                    .ok_or_else(|| OpenFailure::Corrupt("format marker is damaged".into()))?;
                if version > FORMAT_VERSION {
                    return Err(OpenFailure::Fatal(StoreError::NewerFormat {
                        path: path.to_owned(),
                        found: version,
                        supported: FORMAT_VERSION,
                    }));
                }
            }
            None if existed => {
                return Err(OpenFailure::Corrupt("format marker is missing".into()));
            }
            None => {
                let mut marker = FORMAT_MAGIC.to_vec();
                marker.push(FORMAT_VERSION);
                trees.meta.insert(FORMAT_KEY, marker).map_err(corrupt)?;
                db.flush().map_err(corrupt)?;
            }
        }
        for tree in [
            &trees.outbox,
            &trees.nlog,
            &trees.silences,
            &trees.deployments,
            &trees.alert_state,
            &trees.meta,
        ] {
            for kv in tree.iter() {
                kv.map_err(corrupt)?;
            }
        }
        let seq = match trees.meta.get(SEQ_KEY).map_err(corrupt)? {
            Some(v) => u64::from_be_bytes(
                (&*v)
                    .try_into()
                    .map_err(|_| OpenFailure::Corrupt("durable sequence is damaged".into()))?,
            ),
            None => 0,
        };
        if let Some(witnessed) = witness::read(path)
            && witnessed > seq
        {
            return Err(OpenFailure::Corrupt(format!(
                "durable writes were lost: flush {witnessed} was completed, the store holds up to {seq}"
            )));
        }
        let witness = match witness::Witness::open(path) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot open the store's witness file; silent corruption will go unnoticed");
                None
            }
        };
        let (index, skipped) = SeriesIndex::load(&trees, path.join(series_index::DIR_NAME))
            .map_err(|e| match e {
                StoreError::Corrupt { source, .. } => OpenFailure::Corrupt(source.to_string()),
                e => OpenFailure::Fatal(e),
            })?;
        for (tree, error) in &skipped {
            warn!(tree, %error, "skipping a stored record that does not decode");
        }
        let (history, report) =
            history_files::HistoryFiles::open(path.join(history_files::DIR_NAME))
                .map_err(OpenFailure::Fatal)?;
        for damage in &report.damaged {
            warn!(%damage, "probe history damaged: read up to the damage");
        }
        if report.sealed_logs > 0 {
            info!(
                files = report.sealed_logs,
                journaled = report.journaled,
                "sealed the probe history files left by the previous run"
            );
        }
        // Index entries per segment. An error here must stop the open: the segments not counted
        // would be taken for orphans and deleted.
        let mut live: HashMap<u64, u64> = HashMap::new();
        for v in trees.blocks.iter().values() {
            if let Ok((loc, _)) = chunks::decode_block_ref(&v.map_err(corrupt)?) {
                *live.entry(loc.segment).or_insert(0) += 1;
            }
        }
        let segment_dir = path.join(segments::DIR_NAME);
        let (segments, orphans) = Segments::open(segment_dir.clone(), live).map_err(|source| {
            OpenFailure::Fatal(StoreError::File {
                op: "opening the segment files",
                path: segment_dir,
                source,
            })
        })?;
        if orphans > 0 {
            info!(
                files = orphans,
                "deleted segment files no index entry refers to (left by a crash)"
            );
        }
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                path: path.to_owned(),
                trees,
                fail_writes: AtomicBool::new(false),
                skipped: AtomicU64::new((skipped.len() + report.damaged.len()) as u64),
                series_count: AtomicU64::new(index.len() as u64),
                index: Mutex::new(index),
                chunks_unflushed: AtomicBool::new(false),
                segments,
                durable: Mutex::new(DurableState { seq, witness }),
                probe_buffer: Mutex::new(history::ProbeBuffer::default()),
                history,
                bulk_failures: Mutex::new(BulkFailures::default()),
            }),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writes every buffered record to disk and fsyncs. Called on SIGTERM so that a clean
    /// stop loses nothing; blocks for the fsync (use `spawn_blocking` from async code).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.check_writable("flushing")?;
        self.write_probe_results(None)?;
        self.flush_durable("flushing")
    }

    /// Tells the store its retention, so that a segment file spans at most an eighth of it
    /// (and never more than [`SEGMENT_MAX_SPAN_MS`]): the store then holds at most about
    /// retention × 9/8 plus one prune interval of samples.
    pub fn set_retention(&self, retention: std::time::Duration) {
        let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.inner.segments.set_max_span(ms / 8);
        self.inner.history.set_max_span(ms / 8);
    }

    /// Bytes the store occupies on disk: every file in its directory, sled's (log, blobs,
    /// config, snapshots), the segments and the open-chunk snapshot. (sled's own
    /// `size_on_disk` counts only its log and blobs.)
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        segments::dir_size(&self.inner.path).map_err(|source| StoreError::File {
            op: "measuring size on disk",
            path: self.inner.path.clone(),
            source,
        })
    }

    /// A new id, unique and increasing across restarts (sled persists its id counter). Used for
    /// outbox entries; other components may use it for their own ids.
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        self.check_writable("generating an id")?;
        self.inner
            .db
            .generate_id()
            .map_err(StoreError::engine("generating an id"))
    }

    /// Records skipped since open because they did not decode (for the
    /// `postflight_store_skipped_records_total` metric).
    pub fn skipped_records(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// Makes every later write fail with a "storage full" [`StoreError::Io`] (or succeed again),
    /// so that the daemon's disk-full path can be tested end to end. Not for production use.
    #[doc(hidden)]
    pub fn fail_writes(&self, fail: bool) {
        self.inner.fail_writes.store(fail, Ordering::Relaxed);
    }

    /// Fails with the injected error when [`Store::fail_writes`] is on.
    fn check_writable(&self, op: &'static str) -> Result<(), StoreError> {
        if self.inner.fail_writes.load(Ordering::Relaxed) {
            return Err(StoreError::Io {
                op,
                source: io::Error::new(io::ErrorKind::StorageFull, "injected write failure"),
            });
        }
        Ok(())
    }

    /// Remembers how the last bulk write of `kind` went, for [`Store::write_check`].
    fn note_bulk<T>(&self, kind: Bulk, r: Result<T, StoreError>) -> Result<T, StoreError> {
        let mut f = self
            .inner
            .bulk_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let slot = match kind {
            Bulk::Probes => &mut f.probes,
            Bulk::Chunks => &mut f.chunks,
        };
        *slot = r.as_ref().err().map(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(": ");
                s.push_str(&c.to_string());
                src = c.source();
            }
            s
        });
        r
    }

    /// Whether the store takes writes: one durable write of `value` under the `meta` key
    /// `key`, and no bulk write (probe results, chunks) that failed and has not succeeded
    /// since. The daemon's store watch calls it every 15 s.
    pub fn write_check(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta_put_durable(key, value)?;
        let f = self
            .inner
            .bulk_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let failed = [
            ("writing probe results", &f.probes),
            ("writing chunks", &f.chunks),
        ]
        .into_iter()
        .find_map(|(op, e)| e.as_ref().map(|e| (op, e.clone())));
        match failed {
            Some((op, e)) => Err(StoreError::Io {
                op,
                source: io::Error::other(e),
            }),
            None => Ok(()),
        }
    }

    /// Counts one record that did not decode and says where, once per record.
    fn skip(&self, tree: &'static str, error: &dyn std::fmt::Display) {
        self.inner.skipped.fetch_add(1, Ordering::Relaxed);
        warn!(tree, %error, "skipping a stored record that does not decode");
    }

    /// Flushes everything written so far (write + fsync) and advances the witness (see
    /// [`witness`]): the end of every durable write. On the async runtime's worker it goes
    /// through [`crate::rt::blocking`]: an fsync takes a millisecond, far more on a loaded
    /// disk, and probes on that worker would count it in their latency.
    fn flush_durable(&self, op: &'static str) -> Result<(), StoreError> {
        crate::rt::blocking(|| self.flush_durable_now(op))
    }

    fn flush_durable_now(&self, op: &'static str) -> Result<(), StoreError> {
        // A poisoned lock means a flush panicked half-way; the sequence in it is still one
        // that was written, so carrying on is safe.
        let mut state = self.inner.durable.lock().unwrap_or_else(|p| p.into_inner());
        let seq = state.seq + 1;
        self.inner
            .trees
            .meta
            .insert(SEQ_KEY, &seq.to_be_bytes())
            .map_err(StoreError::engine(op))?;
        // Cleared before the flush: chunks stored during it set it again.
        let unflushed = self.inner.chunks_unflushed.swap(false, Ordering::SeqCst);
        if let Err(e) = self.inner.db.flush() {
            self.inner
                .chunks_unflushed
                .fetch_or(unflushed, Ordering::SeqCst);
            return Err(StoreError::engine(op)(e));
        }
        state.seq = seq;
        if let Some(w) = state.witness.as_mut()
            && let Err(e) = w.write(seq)
        {
            // The records are durable; only the corruption check lags behind.
            warn!(error = %e, "cannot update the store's witness file");
        }
        Ok(())
    }
}

/// Renames a corrupt store to `<path>.corrupt-<unix seconds>` (with a counter if that exists).
fn quarantine(path: &Path) -> Result<PathBuf, StoreError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".corrupt-{secs}"));
        PathBuf::from(s)
    };
    let mut to = base.clone();
    let mut n = 1;
    while to.exists() {
        let mut s = base.as_os_str().to_owned();
        s.push(format!("-{n}"));
        to = PathBuf::from(s);
        n += 1;
    }
    std::fs::rename(path, &to).map_err(|source| StoreError::Quarantine {
        path: path.to_owned(),
        to: to.clone(),
        source,
    })?;
    Ok(to)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("storage engine panicked: {msg}")
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A fresh store in a temp dir; keep the dir alive as long as the store.
    pub fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let opened = Store::open(&dir.path().join("db")).expect("open store");
        assert!(opened.recovered_from_corruption.is_none());
        (dir, opened.store)
    }

    /// Writes a raw value into a tree, bypassing the encoders (to plant bad records).
    pub fn put_raw(store: &Store, tree: &str, key: &[u8], value: &[u8]) {
        let t = store.inner.db.open_tree(tree).expect("tree");
        t.insert(key, value).expect("insert");
    }

    /// Removes a raw key from a tree (to plant the effects of a crash).
    pub fn remove_raw(store: &Store, tree: &str, key: &[u8]) {
        let t = store.inner.db.open_tree(tree).expect("tree");
        t.remove(key).expect("remove");
    }

    /// Every key of a tree, raw.
    pub fn raw_keys(store: &Store, tree: &str) -> Vec<Vec<u8>> {
        let t = store.inner.db.open_tree(tree).expect("tree");
        t.iter().keys().map(|k| k.expect("key").to_vec()).collect()
    }

    /// The series index's batch files, in name order.
    pub fn batch_files(store: &Store) -> Vec<PathBuf> {
        let dir = store.path().join(super::series_index::DIR_NAME);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("series dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn injected_failures_are_storage_full_io_errors() {
        let (_dir, store) = temp_store();
        store.fail_writes(true);
        let e = store.flush().unwrap_err();
        match &e {
            StoreError::Io { source, .. } => assert_eq!(source.kind(), io::ErrorKind::StorageFull),
            other => panic!("unexpected {other:?}"),
        }
        assert!(e.is_io());
        store.fail_writes(false);
        store.flush().unwrap();
    }

    #[test]
    fn the_write_check_fails_while_a_bulk_write_fails() {
        let (_dir, store) = temp_store();
        store.write_check("check", b"1").unwrap();
        let r = ProbeRecord {
            probe: "api".into(),
            t: 1,
            success: true,
            duration_seconds: 0.1,
            status: Some(200),
            reason: String::new(),
        };
        store.append_probe(&r).unwrap();
        store
            .inner
            .history
            .fail_next_append
            .store(true, Ordering::Relaxed);
        store.write_probe_journal().unwrap_err();
        // sled takes the small durable write; the failed journal write is what fails it.
        let e = store.write_check("check", b"2").unwrap_err();
        assert!(e.is_io(), "{e:?}");
        assert!(e.to_string().contains("writing probe results"), "{e}");
        assert!(
            std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("injected write failure")),
            "the cause is kept: {e:?}"
        );
        // The next journal write succeeds: the store is fine again.
        assert_eq!(store.write_probe_journal().unwrap(), 1);
        store.write_check("check", b"3").unwrap();
    }

    #[test]
    fn newer_format_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).unwrap().store;
            let mut marker = FORMAT_MAGIC.to_vec();
            marker.push(FORMAT_VERSION + 1);
            put_raw(&store, "meta", FORMAT_KEY.as_bytes(), &marker);
            store.flush().unwrap();
        }
        let e = Store::open(&path).unwrap_err();
        assert!(
            matches!(e, StoreError::NewerFormat { found: 2, .. }),
            "{e:?}"
        );
        assert!(path.exists());
    }

    #[test]
    fn ids_increase() {
        let (_dir, store) = temp_store();
        let a = store.generate_id().unwrap();
        let b = store.generate_id().unwrap();
        assert!(b > a);
    }
}
