//! The store's error type: every failure at the store's edge, without naming the storage engine.

use std::path::PathBuf;

use super::codec::DecodeError;

/// The storage engine's own error, boxed so that callers never depend on it.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in the store. Messages are one line and name the path or operation; the
/// cause is kept as the `source`, so print the chain (`{:#}` with anyhow) to see both.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configured store path exists and is a file (or something else that is not a
    /// directory).
    #[error("store path {} exists and is not a directory", path.display())]
    NotADirectory {
        /// The configured path.
        path: PathBuf,
    },
    /// The store directory could not be created or inspected (a parent is a file, permission
    /// denied, read-only file system).
    #[error("cannot create or access the store directory {}", path.display())]
    Directory {
        /// The configured path.
        path: PathBuf,
        /// Why the file system refused.
        #[source]
        source: std::io::Error,
    },
    /// A read, write or flush failed at the file system: disk full, I/O error, or the store's
    /// lock is held by another running process.
    #[error("store I/O failed while {op}")]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file system's error; [`std::io::ErrorKind::StorageFull`] for injected failures.
        #[source]
        source: std::io::Error,
    },
    /// A file the store keeps beside the engine's (a segment of chunk blocks, the open-chunk
    /// snapshot) could not be created, written, synced or deleted: disk full, I/O error,
    /// permissions.
    #[error("store I/O failed while {op} ({})", path.display())]
    File {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// The storage engine found corrupt data while running (at open, corruption is handled by
    /// moving the store aside instead; see [`crate::store::Opened`]).
    #[error("store data is corrupt (detected while {op})")]
    Corrupt {
        /// What the store was doing.
        op: &'static str,
        /// The engine's description.
        #[source]
        source: BackendError,
    },
    /// Any other storage engine failure.
    #[error("store engine failed while {op}")]
    Backend {
        /// What the store was doing.
        op: &'static str,
        /// The engine's description.
        #[source]
        source: BackendError,
    },
    /// The store was written by a newer postflight whose format this version cannot read;
    /// it is left untouched so that the newer version can still be run on it.
    #[error("store at {} has format {found}, newer than the {supported} this postflight reads", path.display())]
    NewerFormat {
        /// The store path.
        path: PathBuf,
        /// The format found on disk.
        found: u8,
        /// The newest format this build reads.
        supported: u8,
    },
    /// The store was corrupt and could not be renamed aside.
    #[error("store at {} is corrupt and could not be moved to {}", path.display(), to.display())]
    Quarantine {
        /// The store path.
        path: PathBuf,
        /// Where it was to be moved.
        to: PathBuf,
        /// Why the rename failed.
        #[source]
        source: std::io::Error,
    },
    /// A single stored record could not be decoded (returned by point reads; scans skip and
    /// count such records instead).
    #[error("cannot decode a stored {tree} record")]
    Decode {
        /// The tree the record lives in.
        tree: &'static str,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },
    /// A JSON record could not be encoded or decoded as the requested type.
    #[error("cannot convert a {tree} record to or from JSON")]
    Json {
        /// The tree the record lives in.
        tree: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The caller asked to store something the key layout cannot hold.
    #[error("invalid record: {reason}")]
    InvalidRecord {
        /// What was wrong, in words.
        reason: String,
    },
    /// Two different label sets share a 64-bit fingerprint. Astronomically rare; reported
    /// rather than silently mixing two series' chunks.
    #[error("series fingerprint {fp:016x} collides: stored {stored}, new {new}")]
    FingerprintCollision {
        /// The shared fingerprint.
        fp: u64,
        /// The label set already stored under it.
        stored: String,
        /// The label set that was being written.
        new: String,
    },
}

impl StoreError {
    /// Maps an engine error from operation `op`, keeping I/O errors as [`StoreError::Io`] so
    /// that "disk full" looks the same whether it came from the engine or from injection.
    /// Maps a file system error on `path` (a file the store keeps beside sled's) to
    /// [`StoreError::File`], for `map_err`.
    pub(super) fn file<'a>(
        op: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
        move |source| StoreError::File {
            op,
            path: path.to_owned(),
            source,
        }
    }

    pub(super) fn engine(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
        move |e| match e {
            sled::Error::Io(source) => StoreError::Io { op, source },
            e @ sled::Error::Corruption { .. } => StoreError::Corrupt {
                op,
                source: Box::new(e),
            },
            e => StoreError::Backend {
                op,
                source: Box::new(e),
            },
        }
    }

    /// True when the failure is the disk refusing writes (full or read-only): the daemon keeps
    /// running and alerts instead of exiting.
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Io { .. } | StoreError::File { .. })
    }
}
