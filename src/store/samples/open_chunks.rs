//! The head's open chunks, so that a crash loses at most one checkpoint interval of samples
//! instead of every sample not yet in a closed chunk.
//!
//! Files `open-0.snap` … `open-7.snap` in the segment directory hold every series' open chunk
//! as of the last checkpoint, split by fingerprint; each checkpoint replaces them: a snapshot,
//! not a log. Series whose label set is already in the series index (they have a closed chunk
//! on disk) are written by fingerprint only; the others carry their labels.
//!
//! A snapshot is several megabytes rewritten every checkpoint: as sled values it would all be
//! garbage in sled's log until its cleaner came by. A file is replaced in place instead:
//! written to `open-<n>.snap.tmp`, fsynced, renamed over the old one, and the directory
//! fsynced, so that a crash leaves the old snapshot or the new one,
//! never a mix (a left-over temporary file is deleted at open). sled is flushed first if
//! chunks were stored since its last flush, so that the chunks that closed since the previous
//! snapshot (whose samples it held, and the new one no longer does) are durable, and every
//! series the snapshot names by fingerprint is in the durable index.
//!
//! File: magic `pfop` · format byte [`SNAPSHOT_V1`] · CRC-32 of the body (u32 BE) · body. Body:
//! format byte · entry count · per entry: 0 · fingerprint (varint) or 1 · label set, then the
//! chunk's bytes (length-prefixed). A shard whose file does not check out is skipped and
//! counted.

use super::super::StoreError;
use super::super::codec::{DecodeError, Decoder, Encoder};
use super::super::shared::sync_dir;
use super::SampleStore;
use super::segments::TMP_SUFFIX;
use crate::series::Labels;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The snapshot is written in this many parts (by series fingerprint).
pub const OPEN_SHARDS: usize = 8;
/// Format byte of a snapshot's body.
const OPEN_V1: u8 = 1;
/// Format byte of snapshot files.
const SNAPSHOT_V1: u8 = 1;
/// Start of every snapshot file, followed by the format byte.
const MAGIC: &[u8; 4] = b"pfop";
/// Magic, format byte and CRC.
const HEADER_LEN: usize = MAGIC.len() + 1 + 4;

/// One open chunk to snapshot.
pub struct OpenChunk<'a> {
    /// The series.
    pub labels: &'a Labels,
    /// Its [`Labels::fingerprint`]: the caller has it, and hashing every label set again at
    /// every checkpoint is a large share of the checkpoint's time.
    pub fingerprint: u64,
    /// Whether the series index already knows the labels (a closed chunk was stored).
    pub indexed: bool,
    /// The chunk's bytes (the head's encoding).
    pub bytes: &'a [u8],
}

impl SampleStore {
    fn snapshot_path(&self, shard: usize) -> PathBuf {
        self.inner.segments.dir().join(format!("open-{shard}.snap"))
    }

    /// Replaces shard `shard` (of [`OPEN_SHARDS`]) of the snapshot of open chunks; durable when
    /// it returns. Written in shards so that no single file, and no single buffer, holds every
    /// series' open chunk at once.
    pub fn put_open_chunks(
        &self,
        shard: usize,
        chunks: &[OpenChunk<'_>],
    ) -> Result<(), StoreError> {
        const OP: &str = "writing open chunks";
        self.shared.check_writable(OP)?;
        if shard >= OPEN_SHARDS {
            return Err(StoreError::InvalidRecord {
                reason: format!("open-chunk shard {shard} is not below {OPEN_SHARDS}"),
            });
        }
        // Sized up front: a shard is largest at first, when every series is written with its
        // labels until it has a stored chunk.
        let bound = 1
            + 10
            + chunks
                .iter()
                .map(|c| {
                    let series = match c.indexed {
                        true => 10,
                        false => Encoder::labels_len_bound(c.labels),
                    };
                    1 + series + 10 + c.bytes.len()
                })
                .sum::<usize>();
        let mut e = Encoder::with_format_and_capacity(OPEN_V1, bound);
        e.uvarint(chunks.len() as u64);
        for c in chunks {
            if c.indexed {
                e.u8(0).uvarint(c.fingerprint);
            } else {
                e.u8(1).labels(c.labels);
            }
            e.bytes(c.bytes);
        }
        let body = e.finish();
        // The chunks closed since the last snapshot, and the series named by fingerprint, must
        // outlive a crash that keeps this snapshot (see the module doc).
        if self.shared.index_unflushed()
            && let Err(e) = self.shared.flush_sled()
        {
            return Err(StoreError::engine(OP)(e));
        }
        let path = self.snapshot_path(shard);
        write_snapshot(&path, &body).map_err(|source| StoreError::File {
            op: OP,
            path,
            source,
        })?;
        Ok(())
    }

    /// The open chunks of the last snapshot, with their labels. Shards and entries that do not
    /// decode, or whose series is unknown, are skipped and counted.
    pub fn open_chunks(&self) -> Result<Vec<(Labels, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..OPEN_SHARDS {
            let path = self.snapshot_path(shard);
            let body = match std::fs::read(&path) {
                Ok(bytes) => match check_snapshot(&bytes) {
                    Ok(body) => body.to_vec(),
                    Err(e) => {
                        self.shared.skip("open_chunks", &e);
                        continue;
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.shared
                        .skip("open_chunks", &format_args!("{}: {e}", path.display()));
                    continue;
                }
            };
            match self.decode_open(&body) {
                Ok(part) => out.extend(part),
                Err(e) => self.shared.skip("open_chunks", &e),
            }
        }
        Ok(out)
    }

    fn decode_open(&self, v: &[u8]) -> Result<Vec<(Labels, Vec<u8>)>, DecodeError> {
        let (format, mut d): (u8, Decoder<'_>) = Decoder::with_format(v)?;
        if format != OPEN_V1 {
            return Err(DecodeError::UnknownFormat(format));
        }
        let n = d.uvarint()? as usize;
        // Series by fingerprint or by labels, and the chunk.
        let mut entries: Vec<(Result<Labels, u64>, &[u8])> = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let series = match d.u8()? {
                0 => Err(d.uvarint()?),
                _ => Ok(d.labels()?),
            };
            entries.push((series, d.bytes()?));
        }
        d.finish()?;
        let fps = entries
            .iter()
            .filter_map(|(s, _)| s.as_ref().err().copied());
        // A series the index does not know (any more) is dropped, as its chunk cannot be
        // labelled.
        let known = self.lock_index().labels(fps).unwrap_or_default();
        Ok(entries
            .into_iter()
            .filter_map(|(series, bytes)| {
                let labels = match series {
                    Ok(labels) => labels,
                    Err(fp) => known.get(&fp)?.as_ref().ok()?.clone(),
                };
                Some((labels, bytes.to_vec()))
            })
            .collect())
    }
}

/// Replaces the file at `path` with a snapshot of `body`: temporary file, fsync, rename,
/// directory fsync. The temporary file is removed if any step fails.
fn write_snapshot(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        let mut header = MAGIC.to_vec();
        header.push(SNAPSHOT_V1);
        header.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
        f.write_all(&header)?;
        f.write_all(body)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// The body of a snapshot file, if its header and CRC check out.
fn check_snapshot(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let (header, body) = bytes
        .split_at_checked(HEADER_LEN)
        .ok_or(DecodeError::Truncated)?;
    if header[..MAGIC.len()] != *MAGIC {
        return Err(DecodeError::OutOfRange);
    }
    if header[MAGIC.len()] != SNAPSHOT_V1 {
        return Err(DecodeError::UnknownFormat(header[MAGIC.len()]));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&header[MAGIC.len() + 1..]);
    if crc32fast::hash(body) != u32::from_be_bytes(crc) {
        return Err(DecodeError::Checksum);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
