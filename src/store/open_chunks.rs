//! The head's open chunks, so that a crash loses at most one checkpoint interval of samples
//! instead of every sample not yet in a closed chunk.
//!
//! The `meta` tree's keys `head.open.0` … `head.open.7` hold every series' open chunk as of the
//! last checkpoint, split by fingerprint; each checkpoint replaces them: a snapshot, not a log. Series whose label set is already in the series index (they have a closed chunk on
//! disk) are written by fingerprint only; the others carry their labels.

use super::codec::{DecodeError, Decoder, Encoder};
use super::{Store, StoreError};
use crate::series::Labels;

/// The snapshot is written in this many parts (by series fingerprint).
pub const OPEN_SHARDS: usize = 8;
const OPEN_V1: u8 = 1;

/// One open chunk to snapshot.
pub struct OpenChunk<'a> {
    /// The series.
    pub labels: &'a Labels,
    /// Whether the series index already knows the labels (a closed chunk was stored).
    pub indexed: bool,
    /// The chunk's bytes (the head's encoding).
    pub bytes: &'a [u8],
}

impl Store {
    /// Replaces shard `shard` (of [`OPEN_SHARDS`]) of the snapshot of open chunks. Bulk
    /// durability (the periodic flush). Written in shards so no single value, and no single
    /// buffer, holds every series' open chunk at once.
    pub fn put_open_chunks(
        &self,
        shard: usize,
        chunks: &[OpenChunk<'_>],
    ) -> Result<(), StoreError> {
        const OP: &str = "writing open chunks";
        self.check_writable(OP)?;
        let mut e = Encoder::with_format(OPEN_V1);
        e.uvarint(chunks.len() as u64);
        for c in chunks {
            if c.indexed {
                e.u8(0).uvarint(c.labels.fingerprint());
            } else {
                e.u8(1).labels(c.labels);
            }
            e.bytes(c.bytes);
        }
        let key = format!("head.open.{shard}");
        self.inner
            .trees
            .meta
            .insert(key.as_bytes(), e.finish())
            .map_err(StoreError::engine(OP))?;
        Ok(())
    }

    /// The open chunks of the last snapshot, with their labels. Entries that do not decode, or
    /// whose series is unknown, are skipped and counted.
    pub fn open_chunks(&self) -> Result<Vec<(Labels, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..OPEN_SHARDS {
            let key = format!("head.open.{shard}");
            let Some(v) = self
                .inner
                .trees
                .meta
                .get(key.as_bytes())
                .map_err(StoreError::engine("reading open chunks"))?
            else {
                continue;
            };
            match self.decode_open(&v) {
                Ok(part) => out.extend(part),
                Err(e) => self.skip("open_chunks", &e),
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
        let mut out = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let labels = match d.u8()? {
                0 => {
                    let fp = d.uvarint()?;
                    match self.inner.trees.series.get(fp.to_be_bytes()) {
                        Ok(Some(stored)) => {
                            super::chunks::decode_series(&stored).ok().map(|e| e.labels)
                        }
                        _ => None,
                    }
                }
                _ => Some(d.labels()?),
            };
            let bytes = d.bytes()?.to_vec();
            if let Some(l) = labels {
                out.push((l, bytes));
            }
        }
        Ok(out)
    }
}
