//! Sample chunks: the head's compressed chunks, kept so that the head can be rebuilt on start.
//!
//! The store does not look inside a chunk: the head's encoder owns that format. It keeps the
//! bytes with the chunk's time span and sample count, keyed by series fingerprint and chunk max
//! time, and a series index from fingerprint to label set.

use crate::series::{Labels, Timestamp};

use super::codec::{DecodeError, Decoder, Encoder, time_key};
use super::{Store, StoreError};

/// Format byte of chunk values.
const CHUNK_V1: u8 = 1;
/// Format byte of series index values.
const SERIES_V1: u8 = 1;

/// One stored chunk with its series' labels.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredChunk {
    /// The series the chunk belongs to.
    pub labels: Labels,
    /// Time of the chunk's first sample, in ms.
    pub min_t: Timestamp,
    /// Time of the chunk's last sample, in ms; part of the key, so a chunk re-written with the
    /// same max time replaces the earlier copy.
    pub max_t: Timestamp,
    /// Number of samples in the chunk.
    pub count: u32,
    /// The encoded samples, as the head's encoder produced them.
    pub bytes: Vec<u8>,
}

pub(super) fn chunk_key(fp: u64, max_t: Timestamp) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&fp.to_be_bytes());
    k[8..].copy_from_slice(&time_key(max_t));
    k
}

fn encode_chunk(min_t: Timestamp, max_t: Timestamp, count: u32, bytes: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_format(CHUNK_V1);
    // The span, not min_t itself: a two-hour chunk's span takes 3 bytes instead of 6.
    e.uvarint(max_t.abs_diff(min_t))
        .uvarint(u64::from(count))
        .raw_tail(bytes);
    e.finish()
}

fn decode_chunk(labels: &Labels, key: &[u8], value: &[u8]) -> Result<StoredChunk, DecodeError> {
    let t: [u8; 8] = key
        .get(8..16)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::OutOfRange)?;
    let max_t = super::codec::time_from_key(t);
    let (format, mut d) = Decoder::with_format(value)?;
    if format != CHUNK_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let span = i64::try_from(d.uvarint()?).map_err(|_| DecodeError::OutOfRange)?;
    let min_t = max_t.checked_sub(span).ok_or(DecodeError::OutOfRange)?;
    let count = d.u32varint()?;
    let bytes = d.rest().to_vec();
    Ok(StoredChunk {
        labels: labels.clone(),
        min_t,
        max_t,
        count,
        bytes,
    })
}

pub(super) fn decode_series(value: &[u8]) -> Result<Labels, DecodeError> {
    let (format, mut d) = Decoder::with_format(value)?;
    if format != SERIES_V1 {
        return Err(DecodeError::UnknownFormat(format));
    }
    let labels = d.labels()?;
    d.finish()?;
    Ok(labels)
}

impl Store {
    /// Stores one chunk of the series `labels` (and indexes the series on its first chunk).
    /// Bulk write: durable within the periodic flush (see the module doc). Writing a chunk
    /// with the same series and `max_t` again replaces it.
    pub fn put_chunk(
        &self,
        labels: &Labels,
        min_t: Timestamp,
        max_t: Timestamp,
        count: u32,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        const OP: &str = "writing a chunk";
        self.check_writable(OP)?;
        if min_t > max_t {
            return Err(StoreError::InvalidRecord {
                reason: format!("chunk min time {min_t} is after its max time {max_t}"),
            });
        }
        let fp = labels.fingerprint();
        let trees = &self.inner.trees;
        // Held across the index check and the chunk insert: see `Inner::series_lock`.
        // A poisoned lock only means another writer panicked; the index itself is consistent.
        let _guard = self
            .inner
            .series_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match trees
            .series
            .get(fp.to_be_bytes())
            .map_err(StoreError::engine(OP))?
        {
            Some(stored) => match decode_series(&stored) {
                Ok(stored) if stored == *labels => {}
                Ok(stored) => {
                    return Err(StoreError::FingerprintCollision {
                        fp,
                        stored: stored.to_string(),
                        new: labels.to_string(),
                    });
                }
                // A damaged index entry is replaced by the labels we know are right.
                Err(e) => {
                    self.skip("series", &e);
                    self.index_series(fp, labels, OP)?;
                }
            },
            None => {
                self.index_series(fp, labels, OP)?;
                self.inner
                    .series_count
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        trees
            .chunks
            .insert(
                chunk_key(fp, max_t),
                encode_chunk(min_t, max_t, count, bytes),
            )
            .map_err(StoreError::engine(OP))?;
        Ok(())
    }

    fn index_series(&self, fp: u64, labels: &Labels, op: &'static str) -> Result<(), StoreError> {
        let mut e = Encoder::with_format(SERIES_V1);
        e.labels(labels);
        self.inner
            .trees
            .series
            .insert(fp.to_be_bytes(), e.finish())
            .map_err(StoreError::engine(op))?;
        Ok(())
    }

    /// Every stored chunk with `max_t >= min_t` (that is, holding samples at or after `min_t`
    /// when chunks are contiguous), series by series and in time order within a series. For
    /// rebuilding the head on start; chunks that do not decode are skipped and counted.
    pub fn chunks_since(
        &self,
        min_t: Timestamp,
    ) -> impl Iterator<Item = Result<StoredChunk, StoreError>> + Send + 'static {
        let store = self.clone();
        let series = self.inner.trees.series.iter();
        series.flat_map(
            move |kv| -> Box<dyn Iterator<Item = Result<StoredChunk, StoreError>> + Send> {
                let (k, v) = match kv {
                    Ok(kv) => kv,
                    Err(e) => {
                        return Box::new(std::iter::once(Err(StoreError::engine(
                            "reading the series index",
                        )(e))));
                    }
                };
                let fp = match <[u8; 8]>::try_from(&*k) {
                    Ok(fp) => u64::from_be_bytes(fp),
                    Err(_) => {
                        store.skip("series", &"malformed key");
                        return Box::new(std::iter::empty());
                    }
                };
                let labels = match decode_series(&v) {
                    Ok(l) => l,
                    Err(e) => {
                        store.skip("series", &e);
                        return Box::new(std::iter::empty());
                    }
                };
                let store = store.clone();
                let range = store
                    .inner
                    .trees
                    .chunks
                    .range(chunk_key(fp, min_t)..=chunk_key(fp, i64::MAX));
                Box::new(range.filter_map(move |kv| match kv {
                    Ok((k, v)) => match decode_chunk(&labels, &k, &v) {
                        Ok(c) => Some(Ok(c)),
                        Err(e) => {
                            store.skip("chunks", &e);
                            None
                        }
                    },
                    Err(e) => Some(Err(StoreError::engine("reading chunks")(e))),
                }))
            },
        )
    }

    /// Number of series in the index (series with at least one stored chunk).
    pub fn series_count(&self) -> u64 {
        self.inner
            .series_count
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn labels(job: &str) -> Labels {
        Labels::new([("__name__", "up"), ("job", job)])
    }

    #[test]
    fn chunks_round_trip_and_filter_by_max_time() {
        let (_dir, store) = temp_store();
        let (a, b) = (labels("a"), labels("b"));
        store.put_chunk(&a, 0, 1_190_000, 120, &[1, 2, 3]).unwrap();
        store
            .put_chunk(&a, 1_200_000, 2_390_000, 120, &[4, 5])
            .unwrap();
        store.put_chunk(&b, -50, -10, 5, &[]).unwrap();
        store.put_chunk(&b, 2_000_000, 2_000_000, 1, &[9]).unwrap();
        assert_eq!(store.series_count(), 2);

        let all: Vec<StoredChunk> = store.chunks_since(i64::MIN).map(Result::unwrap).collect();
        assert_eq!(all.len(), 4);
        let a_chunks: Vec<&StoredChunk> = all.iter().filter(|c| c.labels == a).collect();
        assert_eq!(
            a_chunks[0],
            &StoredChunk {
                labels: a.clone(),
                min_t: 0,
                max_t: 1_190_000,
                count: 120,
                bytes: vec![1, 2, 3]
            }
        );
        assert_eq!(a_chunks[1].min_t, 1_200_000);
        let b_chunks: Vec<&StoredChunk> = all.iter().filter(|c| c.labels == b).collect();
        assert_eq!(
            (b_chunks[0].min_t, b_chunks[0].max_t, b_chunks[0].count),
            (-50, -10, 5)
        );

        let recent: Vec<(Labels, i64)> = store
            .chunks_since(1_190_000)
            .map(|c| c.map(|c| (c.labels, c.max_t)).unwrap())
            .collect();
        assert_eq!(recent.len(), 3, "{recent:?}");
        assert!(
            recent.contains(&(a.clone(), 1_190_000)),
            "max_t == min_t is included"
        );
        assert!(!recent.contains(&(b.clone(), -10)));
    }

    #[test]
    fn rewriting_a_chunk_replaces_it() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        store.put_chunk(&a, 0, 100, 2, &[1]).unwrap();
        store.put_chunk(&a, 0, 100, 3, &[1, 2]).unwrap();
        let all: Vec<StoredChunk> = store.chunks_since(0).map(Result::unwrap).collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].count, 3);
        assert_eq!(store.series_count(), 1);
    }

    #[test]
    fn bad_chunks_and_series_are_skipped_and_counted() {
        let (_dir, store) = temp_store();
        let a = labels("a");
        store.put_chunk(&a, 0, 100, 2, &[1]).unwrap();
        let fp = a.fingerprint();
        put_raw(&store, "chunks", &chunk_key(fp, 200), &[42, 0, 0]);
        put_raw(&store, "series", &7u64.to_be_bytes(), &[SERIES_V1, 5]);
        put_raw(
            &store,
            "chunks",
            &chunk_key(7, 200),
            &encode_chunk(0, 200, 1, &[]),
        );
        let all: Vec<StoredChunk> = store.chunks_since(0).map(Result::unwrap).collect();
        assert_eq!(all.len(), 1);
        assert_eq!(store.skipped_records(), 2);
    }

    #[test]
    fn invalid_span_is_refused() {
        let (_dir, store) = temp_store();
        assert!(matches!(
            store.put_chunk(&labels("a"), 10, 5, 1, &[]),
            Err(StoreError::InvalidRecord { .. })
        ));
        assert_eq!(store.series_count(), 0);
    }
}
