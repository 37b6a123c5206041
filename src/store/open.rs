//! Opening the store: the directory, sled, the format marker, the witness, then each part's
//! own check of its files. A store found corrupt is moved aside and a fresh one opened.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{error, warn};

use super::probes::ProbeLog;
use super::samples::SampleStore;
use super::shared::{SEQ_KEY, Shared};
use super::state::StateStore;
use super::{Opened, Store, StoreError, StoreOptions, samples, state, witness};

/// The on-disk format this build writes and the newest it reads.
pub const FORMAT_VERSION: u8 = 1;

/// `meta` key of the format marker written when a store is created; a store that existed but
/// lacks it was damaged.
pub(super) const FORMAT_KEY: &str = "store.format";
/// Magic prefix of the format marker, followed by [`FORMAT_VERSION`].
pub(super) const FORMAT_MAGIC: &[u8] = b"postflight-store:";

/// Why one attempt at opening failed.
pub(super) enum OpenFailure {
    /// The data is damaged: move the directory aside and start fresh.
    Corrupt(String),
    /// Anything else (permissions, lock held, newer format): report and leave the data alone.
    Fatal(StoreError),
}

impl OpenFailure {
    /// A sled error met while checking the store: I/O is fatal, anything else is damage.
    pub(super) fn sled(e: sled::Error) -> OpenFailure {
        match e {
            sled::Error::Io(source) => OpenFailure::Fatal(StoreError::Io {
                op: "checking the store",
                source,
            }),
            e => OpenFailure::Corrupt(e.to_string()),
        }
    }

    /// A store error met while a part reads its files: corruption moves the store aside,
    /// anything else is reported.
    pub(super) fn store(e: StoreError) -> OpenFailure {
        match e {
            StoreError::Corrupt { source, .. } => OpenFailure::Corrupt(source.to_string()),
            e => OpenFailure::Fatal(e),
        }
    }
}

/// See [`Store::open_with`].
pub(super) fn open(path: &Path, options: &StoreOptions) -> Result<Opened, StoreError> {
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
    // sled releases its file lock from a background thread when the previous `Db` (a restart
    // in the same process, or a process that is just exiting) goes away: wait a little for it
    // instead of failing at once. A live holder still fails after 3 s.
    let mut attempt = 0;
    let first = loop {
        match try_open(path, options, existed) {
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
            match try_open(path, options, false) {
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
    // sled 0.34 panics on some damaged files instead of returning an error; a panic here means
    // "corrupt", never a crash of the daemon.
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
    let checked = crate::rt::contained(|| check(db.clone(), path, existed));
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
/// found now (and the store moved aside) rather than at the first page; then each part reads
/// its files.
fn check(db: sled::Db, path: &Path, existed: bool) -> Result<Store, OpenFailure> {
    let state_trees = state::Trees::open(&db).map_err(OpenFailure::sled)?;
    let sample_trees = samples::Trees::open(&db).map_err(OpenFailure::sled)?;
    let meta = &state_trees.meta;
    match meta.get(FORMAT_KEY).map_err(OpenFailure::sled)? {
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
            meta.insert(FORMAT_KEY, marker).map_err(OpenFailure::sled)?;
            db.flush().map_err(OpenFailure::sled)?;
        }
    }
    state_trees.walk().map_err(OpenFailure::sled)?;
    let seq = match meta.get(SEQ_KEY).map_err(OpenFailure::sled)? {
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
    let shared = Arc::new(Shared::new(db, path.to_owned(), meta.clone(), seq, witness));
    let samples = SampleStore::open(shared.clone(), sample_trees)?;
    let probes = ProbeLog::open(shared.clone()).map_err(OpenFailure::Fatal)?;
    let state = StateStore::new(shared.clone(), state_trees);
    Ok(Store {
        state,
        samples,
        probes,
        shared,
    })
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
