//! What the store's parts share: the one sled database, the switch that fails every write, the
//! count of records skipped because they did not decode, the durable flush with its witness,
//! and the last failure of each kind of bulk write.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::warn;

use super::StoreError;
use super::witness::Witness;

/// `meta` key of the durable-flush sequence (u64 BE) that the witness file vouches for.
pub(super) const SEQ_KEY: &str = "store.seq";

/// Shared by every handle of one open store.
pub(super) struct Shared {
    /// The database: the state's trees, the sample index's trees, and the id counter every
    /// part draws its ids from (outbox entries, segments, history files, index batches).
    pub(super) db: sled::Db,
    /// Where the store lives, for messages and its size.
    pub(super) path: PathBuf,
    /// The `meta` tree, where each durable flush writes its sequence.
    meta: sled::Tree,
    /// Test hook: when set, every write fails as if the disk were full.
    fail_writes: AtomicBool,
    /// Records skipped because they did not decode (unknown format byte, truncation...).
    skipped: AtomicU64,
    /// Set when the sample index's entries (blocks, series) were written and sled has not
    /// flushed since; cleared by every sled flush. A snapshot of open chunks replaces the
    /// previous one only once they are durable, and this spares it a flush when nothing
    /// changed.
    index_unflushed: AtomicBool,
    /// Durable flushes, one at a time: the sequence written to `meta` and then to the witness
    /// file must only grow, so two flushes may not interleave their two steps.
    durable: Mutex<DurableState>,
    /// Bulk writes that failed and have not succeeded since: the store's write check reports
    /// them (a full disk can leave sled's small durable writes room for minutes).
    bulk_failures: Mutex<BulkFailures>,
}

/// The state behind durable flushes.
struct DurableState {
    /// The last sequence written.
    seq: u64,
    /// The witness file; `None` if it could not be opened (detection is then weaker, writes
    /// still work).
    witness: Option<Witness>,
}

/// The last failure of each kind of bulk write, cleared by the next success of that kind.
#[derive(Default)]
struct BulkFailures {
    probes: Option<String>,
    chunks: Option<String>,
}

/// A kind of bulk write, for [`Shared::note_bulk`].
#[derive(Clone, Copy)]
pub(super) enum Bulk {
    Probes,
    Chunks,
}

impl Shared {
    /// The shared state of a store just opened: `seq` is the durable-flush sequence found in
    /// `meta`.
    pub(super) fn new(
        db: sled::Db,
        path: PathBuf,
        meta: sled::Tree,
        seq: u64,
        witness: Option<Witness>,
    ) -> Shared {
        Shared {
            db,
            path,
            meta,
            fail_writes: AtomicBool::new(false),
            skipped: AtomicU64::new(0),
            index_unflushed: AtomicBool::new(false),
            durable: Mutex::new(DurableState { seq, witness }),
            bulk_failures: Mutex::new(BulkFailures::default()),
        }
    }

    /// Makes every later write fail with a "storage full" [`StoreError::Io`] (or succeed again).
    pub(super) fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::Relaxed);
    }

    /// Fails with the injected error when [`Shared::fail_writes`] is on.
    pub(super) fn check_writable(&self, op: &'static str) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::Relaxed) {
            return Err(StoreError::Io {
                op,
                source: io::Error::new(io::ErrorKind::StorageFull, "injected write failure"),
            });
        }
        Ok(())
    }

    /// A new id, unique and increasing across restarts (sled persists its id counter).
    pub(super) fn generate_id(&self, op: &'static str) -> Result<u64, StoreError> {
        self.db.generate_id().map_err(StoreError::engine(op))
    }

    /// Records skipped since open.
    pub(super) fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Counts `n` damaged records that the caller has reported already.
    pub(super) fn count_skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one record that did not decode and says where, once per record.
    pub(super) fn skip(&self, tree: &'static str, error: &dyn std::fmt::Display) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        warn!(tree, %error, "skipping a stored record that does not decode");
    }

    /// Notes that sample index entries were written to sled (see `index_unflushed`).
    pub(super) fn mark_index_unflushed(&self) {
        self.index_unflushed.store(true, Ordering::SeqCst);
    }

    /// Whether sample index entries were written since sled's last flush.
    pub(super) fn index_unflushed(&self) -> bool {
        self.index_unflushed.load(Ordering::SeqCst)
    }

    /// Flushes sled (write + fsync) without advancing the witness: what makes bulk index
    /// entries durable.
    pub(super) fn flush_sled(&self) -> Result<(), sled::Error> {
        // Cleared before the flush: entries written during it set it again.
        let unflushed = self.index_unflushed.swap(false, Ordering::SeqCst);
        if let Err(e) = self.db.flush() {
            self.index_unflushed.fetch_or(unflushed, Ordering::SeqCst);
            return Err(e);
        }
        Ok(())
    }

    /// Flushes everything written so far (write + fsync) and advances the witness (see the
    /// `witness` module): the end of every durable write. On the async runtime's worker it goes
    /// through [`crate::rt::blocking`]: an fsync takes a millisecond, far more on a loaded
    /// disk, and probes on that worker would count it in their latency.
    pub(super) fn flush_durable(&self, op: &'static str) -> Result<(), StoreError> {
        crate::rt::blocking(|| self.flush_durable_now(op))
    }

    fn flush_durable_now(&self, op: &'static str) -> Result<(), StoreError> {
        // A poisoned lock means a flush panicked half-way; the sequence in it is still one
        // that was written, so carrying on is safe.
        let mut state = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        let seq = state.seq + 1;
        self.meta
            .insert(SEQ_KEY, &seq.to_be_bytes())
            .map_err(StoreError::engine(op))?;
        self.flush_sled().map_err(StoreError::engine(op))?;
        state.seq = seq;
        if let Some(w) = state.witness.as_mut()
            && let Err(e) = w.write(seq)
        {
            // The records are durable; only the corruption check lags behind.
            warn!(error = %e, "cannot update the store's witness file");
        }
        Ok(())
    }

    /// Remembers how the last bulk write of `kind` went, for [`Shared::bulk_failure`].
    pub(super) fn note_bulk<T>(
        &self,
        kind: Bulk,
        r: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut f = self.bulk_failures.lock().unwrap_or_else(|p| p.into_inner());
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

    /// A bulk write that failed and has not succeeded since, as the error the write check
    /// reports.
    pub(super) fn bulk_failure(&self) -> Option<StoreError> {
        let f = self.bulk_failures.lock().unwrap_or_else(|p| p.into_inner());
        [
            ("writing probe results", &f.probes),
            ("writing chunks", &f.chunks),
        ]
        .into_iter()
        .find_map(|(op, e)| {
            e.as_ref().map(|e| StoreError::Io {
                op,
                source: io::Error::other(e.clone()),
            })
        })
    }
}

/// Fsyncs a directory, so that files created, renamed or deleted in it stay so after a power
/// loss.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes of every file under `dir`, recursively; files that vanish while walking count zero.
pub(super) fn dir_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        total += if meta.is_dir() {
            match dir_size(&entry.path()) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                other => other?,
            }
        } else {
            meta.len()
        };
    }
    Ok(total)
}
