//! The durability witness: a tiny file beside sled's that records how many durable flushes the
//! store has completed, so that damage which sled silently recovers from is noticed.
//!
//! sled treats an unreadable log record as the torn tail of a crash and drops it and
//! everything after it, so a flipped block in the middle of the log would silently lose
//! silences, outbox entries and the notification log. Each durable flush therefore stores a
//! sequence number in the `meta` tree *and then* writes it to this file. The file can only lag
//! behind sled (it is written after sled's fsync), so on open a witness newer than the sequence
//! sled recovered proves that durable records were lost: the store is treated as corrupt.
//!
//! The file needs no fsync of its own: if the OS loses the write, the witness is merely old,
//! which is always safe. Layout: magic, sequence (u64 LE), its complement (torn-write check).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The witness' file name inside the store directory.
pub(super) const FILE_NAME: &str = "postflight.witness";
const MAGIC: &[u8; 4] = b"pfw1";

/// The sequence in the witness file, or `None` when it is missing, short or torn (a witness
/// that cannot be read proves nothing, so it never condemns a store).
pub(super) fn read(dir: &Path) -> Option<u64> {
    let mut buf = [0u8; 20];
    File::open(dir.join(FILE_NAME))
        .ok()?
        .read_exact(&mut buf)
        .ok()?;
    if &buf[..4] != MAGIC {
        return None;
    }
    let seq = u64::from_le_bytes(buf[4..12].try_into().ok()?);
    let check = u64::from_le_bytes(buf[12..20].try_into().ok()?);
    (seq == !check).then_some(seq)
}

/// The open witness file.
#[derive(Debug)]
pub(super) struct Witness {
    file: File,
}

impl Witness {
    /// Opens (or creates) the witness in `dir`.
    pub(super) fn open(dir: &Path) -> std::io::Result<Witness> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(FILE_NAME))?;
        Ok(Witness { file })
    }

    /// Records `seq`; only call after sled's flush of that sequence returned.
    pub(super) fn write(&mut self, seq: u64) -> std::io::Result<()> {
        let mut buf = [0u8; 20];
        buf[..4].copy_from_slice(MAGIC);
        buf[4..12].copy_from_slice(&seq.to_le_bytes());
        buf[12..20].copy_from_slice(&(!seq).to_le_bytes());
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&buf)
    }
}

#[cfg(test)]
mod tests;
