//! Segment files: the bytes of chunk blocks, outside sled.
//!
//! sled 0.34 keeps roughly twice the live bytes on disk (leaves are rewritten as keys arrive
//! and the old copies linger). Chunk blocks are most of the
//! store, written once and deleted whole by retention: what an append-only file does with no
//! amplification at all. So their bytes live in files under `<store>/segments/`, and sled
//! keeps a small index entry per block (see [`super::chunks`]).
//!
//! # Format
//!
//! A segment is `<id>.seg`, the id in 16 hex digits, taken from sled's id counter (persistent
//! and crash-safe, so an id is never handed out twice). The file starts with a header, magic
//! `pfsg` and the format byte [`SEGMENT_V1`], then holds records:
//!
//! | field | size |
//! |---|---|
//! | block length | u32 BE |
//! | CRC-32 (IEEE) of the block | u32 BE |
//! | block | the length: the `chunks` block encoding |
//!
//! # Writing
//!
//! Only the current segment is appended to. A new one is started at the first write after
//! every open (a crash may have torn the tail of the previous one: nothing is ever appended
//! after it), once the current one holds [`SEGMENT_MAX_BYTES`], and once it spans
//! [`SEGMENT_MAX_SPAN_MS`] of sample time, or an eighth of the retention when that is shorter
//! (so that a small installation, which takes months to fill 32 MiB, does not keep data past
//! its retention in one file that is never complete, and a short retention is not outlived by
//! an hour-long segment).
//! An append is one positional write followed by `fdatasync`, and it returns before the caller
//! indexes the blocks; a new segment's header and directory entry are synced before its first
//! record. A failed write abandons the segment (the next append starts a new one), so a
//! record is always where its index entry says, never behind a torn one.
//!
//! # Deleting
//!
//! The index is the only record of which blocks are alive. For each segment the store counts in
//! memory the index entries that point into it (rebuilt from the index at open). Retention
//! removes index entries ([`Segments::release`]); a segment whose count drops to zero, and that
//! is no longer appended to, is deleted once sled has flushed those removals, so that a crash
//! never brings back an index entry whose file is gone. At open, every segment no index entry
//! refers to is deleted: a segment whose entries were lost with the last second of bulk writes
//! before a crash, or one torn while it was being started.
//!
//! # Reading
//!
//! Positional reads through the index's offset and length. A missing or unreadable file, a
//! header of another format, a record cut short, a length that disagrees with the index or a
//! CRC mismatch is a [`ReadError`]: the caller skips the block and counts it, like a block
//! that does not decode.
//!
//! Positional I/O is `std::os::unix::fs::FileExt`: postflight runs on Linux (systemd unit,
//! container image); another Unix works too.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tracing::warn;

use super::super::StoreError;
use super::super::shared::sync_dir;
use crate::series::Timestamp;

/// The directory, inside the store's, that holds segments and the open-chunk snapshot.
pub(super) const DIR_NAME: &str = "segments";
/// Format byte of segment files.
pub(super) const SEGMENT_V1: u8 = 1;
/// Start of every segment file, followed by the format byte.
const MAGIC: &[u8; 4] = b"pfsg";
/// Bytes before the first record.
const HEADER_LEN: u64 = MAGIC.len() as u64 + 1;
/// Bytes before a record's block: length and CRC.
pub(super) const RECORD_HEADER_LEN: usize = 8;
/// File name suffix of segments; other files in the directory are not segments.
const SUFFIX: &str = ".seg";
/// Suffix of files being written by write-then-rename; one left over is a crash's debris.
pub(super) const TMP_SUFFIX: &str = ".tmp";

/// A segment takes no more records once it holds this much: large enough that a busy store
/// makes a few files an hour, small enough that retention frees space in steps that matter
/// little next to the whole.
pub const SEGMENT_MAX_BYTES: u64 = 32 << 20;
/// A segment takes no more records once they span this much sample time, so that retention
/// deletes a quiet store's data within about an hour of its cutoff.
pub const SEGMENT_MAX_SPAN_MS: i64 = 3_600_000;

/// Where a block's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BlockLoc {
    /// The segment's id.
    pub(super) segment: u64,
    /// Offset of the record (its length field) in the file.
    pub(super) offset: u64,
    /// Length of the block, without the record header.
    pub(super) len: u32,
}

/// Why a block could not be read back. Cloneable, so that a file that cannot be opened fails
/// every block in it with the same error without opening it again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum ReadError {
    /// The file is missing or cannot be opened or read.
    #[error("segment {segment:016x}: {kind}")]
    Io {
        /// The segment.
        segment: u64,
        /// What the file system said.
        kind: io::ErrorKind,
    },
    /// The file does not start with a segment header this version reads.
    #[error("segment {segment:016x} has an unknown header")]
    Header {
        /// The segment.
        segment: u64,
    },
    /// The file ends before the record does (a torn write or a truncated file).
    #[error("segment {segment:016x}: record at {offset} is cut short")]
    Truncated {
        /// The segment.
        segment: u64,
        /// The record's offset.
        offset: u64,
    },
    /// The record's length field disagrees with the index.
    #[error(
        "segment {segment:016x}: record at {offset} has length {found}, the index says {expected}"
    )]
    Length {
        /// The segment.
        segment: u64,
        /// The record's offset.
        offset: u64,
        /// The length in the file.
        found: u32,
        /// The length in the index.
        expected: u32,
    },
    /// The block's bytes do not match the record's CRC.
    #[error("segment {segment:016x}: record at {offset} fails its CRC")]
    Crc {
        /// The segment.
        segment: u64,
        /// The record's offset.
        offset: u64,
    },
}

/// A record read back: header and block.
pub(super) struct Record(Vec<u8>);

impl Record {
    /// The block's bytes.
    pub(super) fn block(&self) -> &[u8] {
        self.0.get(RECORD_HEADER_LEN..).unwrap_or_default()
    }
}

/// The segment files of one store.
pub(super) struct Segments {
    /// `<store>/segments`.
    dir: PathBuf,
    /// Appends, counts and deletions, one at a time.
    state: Mutex<State>,
}

struct State {
    /// The segment appends go to; `None` until the first append after open or after a failed
    /// write.
    current: Option<Current>,
    /// Segment id → index entries pointing into it. A segment absent here has none.
    live: HashMap<u64, u64>,
    /// Segments with no index entry left and no more appends: deleted after the next sled flush
    /// (see the module doc).
    doomed: BTreeSet<u64>,
    /// The span of sample time after which the current segment takes no more records:
    /// [`SEGMENT_MAX_SPAN_MS`] or less (see [`Segments::set_max_span`]).
    max_span_ms: i64,
}

/// The segment being appended to.
struct Current {
    id: u64,
    file: File,
    /// Bytes in the file: where the next record goes.
    len: u64,
    /// Newest sample time of the first append, for [`SEGMENT_MAX_SPAN_MS`].
    first_t: Timestamp,
}

impl Segments {
    /// Opens the segment directory `dir` (creating it), given `live`: segment id → index
    /// entries that point into it. Deletes every segment not in `live` and any left-over
    /// temporary file; returns the segments and how many files were deleted.
    pub(super) fn open(dir: PathBuf, live: HashMap<u64, u64>) -> io::Result<(Segments, u64)> {
        if !dir.is_dir() {
            std::fs::create_dir(&dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let mut deleted = 0;
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let orphan = match parse_name(&name) {
                Some(id) => !live.contains_key(&id),
                None => name.ends_with(TMP_SUFFIX),
            };
            if orphan {
                match std::fs::remove_file(dir.join(&*name)) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if deleted > 0 {
            sync_dir(&dir)?;
        }
        let segments = Segments {
            dir,
            state: Mutex::new(State {
                current: None,
                live,
                doomed: BTreeSet::new(),
                max_span_ms: SEGMENT_MAX_SPAN_MS,
            }),
        };
        Ok((segments, deleted))
    }

    /// Caps the sample time one segment spans (at most [`SEGMENT_MAX_SPAN_MS`], at least one
    /// millisecond): retention frees a segment only once its newest block is past the cutoff,
    /// so the span is how much expired data the store can hold beyond its retention.
    pub(super) fn set_max_span(&self, ms: i64) {
        self.lock().max_span_ms = ms.clamp(1, SEGMENT_MAX_SPAN_MS);
    }

    /// The segment directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of segment `id`.
    pub(super) fn path_of(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}{SUFFIX}"))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means an append panicked; the worst left behind is a current segment
        // with a torn tail, and every error path abandons it. Carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `blocks` to the current segment (starting a new one first when needed, with an id
    /// from `new_id`) and syncs it; returns where each block is. `newest` is the newest sample
    /// time in the blocks. On success each block counts as indexed (see [`Segments::release`]):
    /// the caller indexes them next.
    pub(super) fn append(
        &self,
        newest: Timestamp,
        blocks: &[Vec<u8>],
        new_id: &mut dyn FnMut() -> Result<u64, StoreError>,
    ) -> Result<Vec<BlockLoc>, StoreError> {
        let mut st = self.lock();
        let mut cur = match st.current.take() {
            Some(c)
                if c.len < SEGMENT_MAX_BYTES
                    && newest.saturating_sub(c.first_t) <= st.max_span_ms =>
            {
                c
            }
            old => {
                if let Some(old) = old {
                    retire(&mut st, old);
                }
                self.create(newest, new_id)?
            }
        };
        let total: usize = blocks.iter().map(|b| RECORD_HEADER_LEN + b.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut locs = Vec::with_capacity(blocks.len());
        for b in blocks {
            let Ok(len) = u32::try_from(b.len()) else {
                st.current = Some(cur);
                return Err(StoreError::InvalidRecord {
                    reason: format!("a block of {} bytes does not fit a segment record", b.len()),
                });
            };
            locs.push(BlockLoc {
                segment: cur.id,
                offset: cur.len + buf.len() as u64,
                len,
            });
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&crc32fast::hash(b).to_be_bytes());
            buf.extend_from_slice(b);
        }
        let written = cur
            .file
            .write_all_at(&buf, cur.len)
            .and_then(|()| cur.file.sync_data());
        if let Err(source) = written {
            let path = self.path_of(cur.id);
            self.abandon(&st, cur);
            return Err(StoreError::File {
                op: "appending to a segment",
                path,
                source,
            });
        }
        cur.len += buf.len() as u64;
        *st.live.entry(cur.id).or_insert(0) += blocks.len() as u64;
        st.current = Some(cur);
        Ok(locs)
    }

    /// Creates a new segment file with its header, synced with its directory entry.
    fn create(
        &self,
        newest: Timestamp,
        new_id: &mut dyn FnMut() -> Result<u64, StoreError>,
    ) -> Result<Current, StoreError> {
        const OP: &str = "creating a segment";
        // Ids are never reused, so a taken name means a file this store did not write; try
        // another id rather than touch it.
        for _ in 0..8 {
            let id = new_id()?;
            let path = self.path_of(id);
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(StoreError::File {
                        op: OP,
                        path,
                        source,
                    });
                }
            };
            let mut header = MAGIC.to_vec();
            header.push(SEGMENT_V1);
            let synced = file
                .write_all_at(&header, 0)
                .and_then(|()| file.sync_data())
                .and_then(|()| sync_dir(&self.dir));
            if let Err(source) = synced {
                drop(file);
                // A full disk must not leave an empty file behind at every checkpoint.
                let _ = std::fs::remove_file(&path);
                return Err(StoreError::File {
                    op: OP,
                    path,
                    source,
                });
            }
            return Ok(Current {
                id,
                file,
                len: HEADER_LEN,
                first_t: newest,
            });
        }
        Err(StoreError::File {
            op: OP,
            path: self.dir.clone(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "segment ids are taken"),
        })
    }

    /// Gives up the current segment after a failed write: the next append starts a new one.
    /// A segment with no indexed block is deleted at once (nothing can refer to it); otherwise
    /// the torn tail is cut off if the disk lets us, and is harmless if not (no index entry
    /// points past the last good record).
    fn abandon(&self, st: &State, cur: Current) {
        if st.live.get(&cur.id).is_none_or(|n| *n == 0) {
            drop(cur.file);
            let _ = std::fs::remove_file(self.path_of(cur.id));
        } else {
            let _ = cur.file.set_len(cur.len);
        }
    }

    /// One index entry pointing into segment `id` was removed. A segment left with none is
    /// deleted by the next [`Segments::take_doomed`] / [`Segments::delete`], unless it is still
    /// being appended to (then when it is retired).
    pub(super) fn release(&self, id: u64) {
        let mut st = self.lock();
        let Some(n) = st.live.get_mut(&id) else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            st.live.remove(&id);
            if st.current.as_ref().is_none_or(|c| c.id != id) {
                st.doomed.insert(id);
            }
        }
    }

    /// The segments waiting to be deleted. Flush sled (the index removals) before deleting them
    /// with [`Segments::delete`].
    pub(super) fn take_doomed(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock().doomed)
            .into_iter()
            .collect()
    }

    /// Puts back segments that could not be deleted, to try again at the next prune.
    pub(super) fn restore_doomed(&self, ids: &[u64]) {
        self.lock().doomed.extend(ids);
    }

    /// Deletes segments returned by [`Segments::take_doomed`]; returns how many. Those that
    /// cannot be deleted are kept for the next prune, and the first error is returned.
    pub(super) fn delete(&self, ids: &[u64]) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut failed = Vec::new();
        let mut first = None;
        for &id in ids {
            let path = self.path_of(id);
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    failed.push(id);
                    first.get_or_insert(StoreError::File {
                        op: "deleting a segment",
                        path,
                        source,
                    });
                }
            }
        }
        if deleted > 0
            && let Err(e) = sync_dir(&self.dir)
        {
            // The files are gone for this process; after a power loss they would come back as
            // orphans and be deleted at open.
            warn!(error = %e, "cannot sync the segment directory after deleting segments");
        }
        self.restore_doomed(&failed);
        match first {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// A reader for many blocks, keeping their files open.
    pub(super) fn reader(&self) -> Reader<'_> {
        Reader {
            segments: self,
            files: HashMap::new(),
        }
    }

    /// Segment ids with at least one index entry, and their counts (for tests).
    #[cfg(test)]
    pub(super) fn live(&self) -> HashMap<u64, u64> {
        self.lock().live.clone()
    }

    /// The segment being appended to (for tests).
    #[cfg(test)]
    pub(super) fn current(&self) -> Option<u64> {
        self.lock().current.as_ref().map(|c| c.id)
    }
}

/// Retires the current segment (no more appends); if no index entry points into it, it is
/// garbage.
fn retire(st: &mut State, cur: Current) {
    if st.live.get(&cur.id).is_none_or(|n| *n == 0) {
        st.doomed.insert(cur.id);
    }
}

/// Reads blocks from segments, opening each file once.
pub(super) struct Reader<'a> {
    segments: &'a Segments,
    /// Segment id → open file, or why it could not be opened.
    files: HashMap<u64, Result<File, ReadError>>,
}

impl Reader<'_> {
    /// Reads the record at `loc` and checks it.
    pub(super) fn read(&mut self, loc: BlockLoc) -> Result<Record, ReadError> {
        let segments = self.segments;
        let file = self
            .files
            .entry(loc.segment)
            .or_insert_with(|| open_checked(&segments.path_of(loc.segment), loc.segment))
            .as_ref()
            .map_err(Clone::clone)?;
        let io = |e: io::Error| ReadError::Io {
            segment: loc.segment,
            kind: e.kind(),
        };
        let truncated = ReadError::Truncated {
            segment: loc.segment,
            offset: loc.offset,
        };
        // Checked against the file's size first: a damaged index entry must not make us
        // allocate gigabytes.
        let size = file.metadata().map_err(io)?.len();
        let end = loc
            .offset
            .checked_add(RECORD_HEADER_LEN as u64 + u64::from(loc.len));
        if end.is_none_or(|end| end > size) || loc.offset < HEADER_LEN {
            return Err(truncated);
        }
        let mut buf = vec![0; RECORD_HEADER_LEN + loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                truncated.clone()
            } else {
                io(e)
            }
        })?;
        let field = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&buf[at..at + 4]);
            u32::from_be_bytes(b)
        };
        let (found, crc) = (field(0), field(4));
        if found != loc.len {
            return Err(ReadError::Length {
                segment: loc.segment,
                offset: loc.offset,
                found,
                expected: loc.len,
            });
        }
        if crc32fast::hash(&buf[RECORD_HEADER_LEN..]) != crc {
            return Err(ReadError::Crc {
                segment: loc.segment,
                offset: loc.offset,
            });
        }
        Ok(Record(buf))
    }
}

/// Opens a segment and checks its header.
fn open_checked(path: &Path, segment: u64) -> Result<File, ReadError> {
    let file = File::open(path).map_err(|e| ReadError::Io {
        segment,
        kind: e.kind(),
    })?;
    let mut header = [0u8; HEADER_LEN as usize];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) if header[..MAGIC.len()] == *MAGIC && header[MAGIC.len()] == SEGMENT_V1 => Ok(file),
        Ok(()) => Err(ReadError::Header { segment }),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadError::Header { segment }),
        Err(e) => Err(ReadError::Io {
            segment,
            kind: e.kind(),
        }),
    }
}

/// A segment file name's id.
fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(SUFFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests;
