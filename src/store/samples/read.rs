//! Reading stored samples for queries: the stored series a selector matches, and their samples
//! in a time range.
//!
//! A query reads only what it needs: the series index is matched on symbol ids (labels are
//! built only for the series that match), a block is read only when its time span (kept in
//! its index entry) overlaps the range, and in a block only the chunks of wanted series in the
//! range are decoded; the others are skipped by their length prefix. A query counts the
//! samples it decodes as it goes and stops at its limit, so what a read holds is bounded by
//! the caller, not by the store.

use std::collections::HashMap;

use promql_parser::label::Matcher;

use super::SampleStore;
use super::chunks::{
    SERIES_REFRESH_MS, decode_block, decode_block_ref_span, last_block_key, split_block_key,
};
use super::segments::ReadError;
use super::series_index::UNREFERENCED;
use crate::series::chunk::Chunk;
use crate::series::{Labels, Sample, Timestamp};
use crate::store::StoreError;

/// A stored series that a selector matches.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSeries {
    /// Its fingerprint ([`Labels::fingerprint`]).
    pub fp: u64,
    /// Its labels.
    pub labels: Labels,
    /// No stored chunk of it is newer than this (from the index's referenced-until time; see
    /// the `chunks` module): a query for a later range need not read it.
    pub until: Timestamp,
}

/// Why a read stopped before its end: the caller's `charge` said no (a query over its limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadStopped;

impl SampleStore {
    /// Every stored series whose labels match all `matchers`.
    pub fn series_matching(&self, matchers: &[Matcher]) -> Result<Vec<StoredSeries>, StoreError> {
        let found = self.lock_index().matching(matchers)?;
        Ok(found
            .into_iter()
            .map(|(fp, referenced_until, labels)| StoredSeries {
                fp,
                labels,
                until: match referenced_until {
                    UNREFERENCED => Timestamp::MIN,
                    r => r.saturating_add(SERIES_REFRESH_MS),
                },
            })
            .collect())
    }

    /// The stored samples of the series `fps` (sorted) in `[mint, maxt]`, in time order, a
    /// sample stored twice (a chunk written again) once. `charge(n)` is called with the number
    /// of samples of each chunk as it is decoded; when it returns false the read stops.
    /// Blocks and chunks that cannot be read are skipped and counted, as at load.
    pub fn samples_of(
        &self,
        fps: &[u64],
        mint: Timestamp,
        maxt: Timestamp,
        charge: &mut dyn FnMut(usize) -> bool,
    ) -> Result<HashMap<u64, Vec<Sample>>, ReadStopped> {
        let mut pieces: HashMap<u64, Vec<Vec<Sample>>> = HashMap::new();
        if fps.is_empty() || maxt < mint {
            return Ok(HashMap::new());
        }
        let mut reader = self.inner.segments.reader();
        // Newest block first: every block with a max time at or after `mint`.
        for kv in self.inner.trees.blocks.range(..=last_block_key(mint)) {
            let Ok((k, v)) = kv else {
                // The iterator cannot go on past an engine error; what was read stands.
                self.shared
                    .skip("chunk_blocks", &"the block index could not be read further");
                break;
            };
            let Ok((max_t, _)) = split_block_key(&k) else {
                continue;
            };
            let Ok((loc, _, span)) = decode_block_ref_span(&v) else {
                continue;
            };
            let starts_after =
                span.is_some_and(|s| i128::from(max_t) - i128::from(s) > i128::from(maxt));
            if starts_after {
                continue;
            }
            let record = match reader.read(loc) {
                Ok(r) => r,
                // Retention deleted the segment since the index was read: its data is expired.
                Err(ReadError::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }) => continue,
                Err(e) => {
                    self.shared.skip("chunk_blocks", &e);
                    continue;
                }
            };
            let chunks = match decode_block(max_t, record.block()) {
                Ok(c) => c,
                Err(e) => {
                    self.shared.skip("chunk_blocks", &e);
                    continue;
                }
            };
            for c in chunks {
                if c.max_t < mint || c.min_t > maxt || fps.binary_search(&c.fp).is_err() {
                    continue;
                }
                let piece = match Chunk::samples_in(c.bytes, mint, maxt) {
                    Ok(piece) => piece,
                    Err(e) => {
                        self.shared.skip("chunk_blocks", &e);
                        continue;
                    }
                };
                if !charge(piece.len()) {
                    return Err(ReadStopped);
                }
                if !piece.is_empty() {
                    pieces.entry(c.fp).or_default().push(piece);
                }
            }
        }
        Ok(pieces
            .into_iter()
            .map(|(fp, mut pieces)| {
                pieces.sort_by_key(|p| p.first().map(|x| x.t));
                let mut samples: Vec<Sample> = pieces.concat();
                if samples.windows(2).any(|w| w[0].t >= w[1].t) {
                    // Copies of a chunk (a write retried after a failure) overlap.
                    samples.sort_by_key(|x| x.t);
                    samples.dedup_by_key(|x| x.t);
                }
                (fp, samples)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
