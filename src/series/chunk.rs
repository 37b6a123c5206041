//! Gorilla-compressed chunks of float samples (Facebook's Gorilla paper, as in Prometheus'
//! `tsdb/chunkenc/xor.go`): delta-of-delta timestamps and XOR-ed values in a bit stream.
//!
//! A regular 10 s scrape of a series costs 1 bit per timestamp and, for values that change
//! little, a few bits per value: about 1–2 bytes per sample against 16 raw.
//!
//! # Byte layout (what [`Chunk::as_bytes`] returns and the store persists)
//!
//! ```text
//! [count: u16 big-endian] [bit stream, MSB first, zero-padded to a byte]
//! bit stream: t0 (64 bits, two's complement) v0 (64 bits)
//!             then per sample: dod(t) xor(v)
//! dod:  0 => same delta | 10 + 14 bits | 110 + 17 bits | 1110 + 20 bits | 1111 + 64 bits
//!       (the second sample's delta is coded as a dod against a previous delta of 0)
//! xor:  0 => same value | 10 + bits in the previous window
//!       | 11 + 5 bits leading zeros + 6 bits significant bits (0 means 64) + bits
//! ```
//!
//! Values are kept bit for bit, so the staleness marker and every NaN payload round-trip.

use crate::series::{Sample, Timestamp};

/// Why a chunk refused a sample or a byte string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The sample's timestamp is not after the chunk's last one.
    #[error("sample at {t} is not after the chunk's last sample at {last}")]
    OutOfOrder {
        /// The refused timestamp.
        t: Timestamp,
        /// The chunk's last timestamp.
        last: Timestamp,
    },
    /// The chunk holds `u16::MAX` samples.
    #[error("chunk is full")]
    Full,
    /// Bytes given to [`Chunk::from_bytes`] are not a chunk.
    #[error("corrupt chunk: {0}")]
    Corrupt(&'static str),
}

/// An append-only compressed chunk. Closed chunks are the same type, shrunk to fit.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Header (sample count) and the bit stream.
    buf: Vec<u8>,
    /// Unused low bits in the last byte of `buf` (0 when it is full).
    free: u8,
    /// Leading zeros of the current XOR window (0xff before the first window).
    leading: u8,
    /// Trailing zeros of the current XOR window.
    trailing: u8,
    /// Timestamp of the first sample.
    first_t: Timestamp,
    /// Timestamp of the last sample, the base of the next delta.
    last_t: Timestamp,
    /// Last delta, the base of the next delta-of-delta.
    last_delta: i64,
    /// Bits of the last value, the base of the next XOR.
    last_v: u64,
}

const HEADER: usize = 2;

impl Default for Chunk {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("samples", &self.len())
            .field("bytes", &self.buf.len())
            .field("first_t", &self.first_t)
            .field("last_t", &self.last_t)
            .finish()
    }
}

impl Chunk {
    /// An empty chunk.
    pub fn new() -> Self {
        Chunk {
            buf: vec![0; HEADER],
            free: 0,
            leading: 0xff,
            trailing: 0,
            first_t: 0,
            last_t: 0,
            last_delta: 0,
            last_v: 0,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]))
    }

    /// True when the chunk holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Timestamp of the first sample (meaningless when empty).
    pub fn first_t(&self) -> Timestamp {
        self.first_t
    }

    /// Timestamp of the last sample (meaningless when empty).
    pub fn last_t(&self) -> Timestamp {
        self.last_t
    }

    /// The last sample, if any (kept decoded for out-of-order and duplicate checks).
    pub fn last_sample(&self) -> Option<Sample> {
        (!self.is_empty()).then(|| Sample {
            t: self.last_t,
            v: f64::from_bits(self.last_v),
        })
    }

    /// The encoded chunk, to persist; [`Chunk::from_bytes`] reads it back.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Heap bytes held, capacity included (for the head's memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Releases spare capacity; done when a chunk is closed.
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to_fit();
    }

    /// Appends a sample whose timestamp is after the last one.
    pub fn append(&mut self, t: Timestamp, v: f64) -> Result<(), ChunkError> {
        let n = self.len();
        if n == usize::from(u16::MAX) {
            return Err(ChunkError::Full);
        }
        let bits = v.to_bits();
        if n == 0 {
            self.write_bits(t as u64, 64);
            self.write_bits(bits, 64);
            self.first_t = t;
        } else {
            if t <= self.last_t {
                return Err(ChunkError::OutOfOrder {
                    t,
                    last: self.last_t,
                });
            }
            // Wrapping: timestamps far apart (i64 extremes) must not panic; the decoder
            // wraps the same way.
            let delta = t.wrapping_sub(self.last_t);
            let dod = delta.wrapping_sub(self.last_delta);
            self.write_dod(dod);
            self.write_xor(bits);
            self.last_delta = delta;
        }
        self.last_t = t;
        self.last_v = bits;
        let count = (n + 1) as u16; // bounded by the Full check above
        self.buf[..HEADER].copy_from_slice(&count.to_be_bytes());
        Ok(())
    }

    /// Iterates over the samples in time order.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            r: BitReader {
                b: &self.buf[HEADER..],
                pos: 0,
            },
            remaining: self.len(),
            read: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            window_set: false,
        }
    }

    /// Reads a chunk written by [`Chunk::as_bytes`], checking it decodes completely. The
    /// result can be appended to, as if it had never been persisted.
    pub fn from_bytes(bytes: &[u8]) -> Result<Chunk, ChunkError> {
        if bytes.len() < HEADER {
            return Err(ChunkError::Corrupt("shorter than its header"));
        }
        let mut chunk = Chunk {
            buf: bytes.to_vec(),
            ..Chunk::new()
        };
        let mut it = chunk.iter();
        let mut first = None;
        let mut last: Option<i64> = None;
        for s in it.by_ref() {
            first.get_or_insert(s.t);
            if last.is_some_and(|l| s.t <= l) {
                return Err(ChunkError::Corrupt("timestamps not increasing"));
            }
            last = Some(s.t);
        }
        if it.read != chunk.len() {
            return Err(ChunkError::Corrupt("truncated bit stream"));
        }
        let used_bits = it.r.pos;
        if bytes.len() - HEADER != used_bits.div_ceil(8) {
            return Err(ChunkError::Corrupt("trailing bytes"));
        }
        let (t, delta, v) = (it.t, it.delta, it.v);
        // The decoder learns the encoder's XOR window at the same points the encoder set it.
        let (leading, trailing) = match it.window_set {
            true => (it.leading, it.trailing),
            false => (0xff, 0),
        };
        chunk.free = ((8 - used_bits % 8) % 8) as u8;
        if let Some(first) = first {
            chunk.first_t = first;
            chunk.last_t = t;
            chunk.last_delta = delta;
            chunk.last_v = v;
            chunk.leading = leading;
            chunk.trailing = trailing;
        }
        Ok(chunk)
    }

    fn write_dod(&mut self, dod: i64) {
        if dod == 0 {
            self.write_bits(0, 1);
        } else if fits(dod, 14) {
            self.write_bits(0b10, 2);
            self.write_bits(dod as u64, 14);
        } else if fits(dod, 17) {
            self.write_bits(0b110, 3);
            self.write_bits(dod as u64, 17);
        } else if fits(dod, 20) {
            self.write_bits(0b1110, 4);
            self.write_bits(dod as u64, 20);
        } else {
            self.write_bits(0b1111, 4);
            self.write_bits(dod as u64, 64);
        }
    }

    fn write_xor(&mut self, bits: u64) {
        let x = bits ^ self.last_v;
        if x == 0 {
            self.write_bits(0, 1);
            return;
        }
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.write_bits(0b10, 2);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.write_bits(x >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        self.write_bits(0b11, 2);
        self.write_bits(u64::from(leading), 5);
        // 64 significant bits does not fit in 6 bits; it is written as 0 (0 bits never
        // happens: that is the x == 0 case).
        self.write_bits(u64::from(sig % 64), 6);
        self.write_bits(x >> trailing, sig);
    }

    /// Writes the low `n` bits of `v`, most significant first.
    fn write_bits(&mut self, v: u64, n: u32) {
        let mut n = n;
        while n > 0 {
            if self.free == 0 {
                if self.buf.len() == self.buf.capacity() {
                    // Grow by a quarter, not double: open chunks are most of the head's
                    // memory and doubling would leave up to half of each one unused.
                    self.buf.reserve_exact((self.buf.len() / 4).max(16));
                }
                self.buf.push(0);
                self.free = 8;
            }
            let take = n.min(u32::from(self.free));
            let chunk = (v >> (n - take)) & mask(take);
            let shift = u32::from(self.free) - take;
            if let Some(last) = self.buf.last_mut() {
                *last |= (chunk << shift) as u8;
            }
            self.free -= take as u8;
            n -= take;
        }
    }
}

#[inline]
fn mask(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// Whether `x` fits the `n`-bit bucket (Prometheus' `bitRange`).
#[inline]
fn fits(x: i64, n: u32) -> bool {
    let half = 1i64 << (n - 1);
    -(half - 1) <= x && x <= half
}

/// Sign-extends an `n`-bit bucket value, inverse of the write.
#[inline]
fn unbucket(v: u64, n: u32) -> i64 {
    let half = 1u64 << (n - 1);
    if v > half {
        (v as i64).wrapping_sub(1i64 << n)
    } else {
        v as i64
    }
}

struct BitReader<'a> {
    b: &'a [u8],
    /// Bits consumed.
    pos: usize,
}

impl BitReader<'_> {
    #[inline]
    fn bit(&mut self) -> Option<bool> {
        let byte = *self.b.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    /// The next `n` bits (at most 64), most significant first. Reads one big-endian word
    /// instead of looping over bytes: this is the inner loop of every range selection.
    #[inline]
    fn bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        let end = self.pos + n as usize;
        if end > self.b.len() * 8 {
            return None;
        }
        let byte = self.pos / 8;
        let off = (self.pos % 8) as u32;
        // The word starting at the current byte holds the 64 - off bits after the position.
        let mut v = (self.word(byte) << off) >> (64 - n);
        if n + off > 64 {
            // The last `extra` (1..=7) bits are in the ninth byte; it exists (checked above).
            let extra = n + off - 64;
            v |= u64::from(self.b[byte + 8]) >> (8 - extra);
        }
        self.pos = end;
        Some(v)
    }

    /// Eight bytes from `byte` as a big-endian word, zero-padded past the end.
    #[inline]
    fn word(&self, byte: usize) -> u64 {
        match self.b.get(byte..byte + 8) {
            Some(w) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(w);
                u64::from_be_bytes(a)
            }
            None => {
                let mut a = [0u8; 8];
                let rest = self.b.get(byte..).unwrap_or(&[]);
                a[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(a)
            }
        }
    }
}

/// Iterator over a chunk's samples. Stops early (yielding fewer than the count) on a corrupt
/// stream instead of panicking.
pub struct ChunkIter<'a> {
    r: BitReader<'a>,
    remaining: usize,
    read: usize,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
    /// Whether a `11` control has set the XOR window yet.
    window_set: bool,
}

impl ChunkIter<'_> {
    fn next_sample(&mut self) -> Option<Sample> {
        if self.read == 0 {
            self.t = self.r.bits(64)? as i64;
            self.v = self.r.bits(64)?;
        } else {
            let dod = if !self.r.bit()? {
                0
            } else if !self.r.bit()? {
                unbucket(self.r.bits(14)?, 14)
            } else if !self.r.bit()? {
                unbucket(self.r.bits(17)?, 17)
            } else if !self.r.bit()? {
                unbucket(self.r.bits(20)?, 20)
            } else {
                self.r.bits(64)? as i64
            };
            self.delta = self.delta.wrapping_add(dod);
            self.t = self.t.wrapping_add(self.delta);
            if self.r.bit()? {
                if self.r.bit()? {
                    self.leading = self.r.bits(5)? as u8;
                    let mut sig = self.r.bits(6)? as u8;
                    if sig == 0 {
                        sig = 64;
                    }
                    self.trailing = 64u8.checked_sub(self.leading + sig)?;
                    self.window_set = true;
                }
                let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
                let x = self.r.bits(sig)? << self.trailing;
                self.v ^= x;
            }
        }
        self.read += 1;
        Some(Sample {
            t: self.t,
            v: f64::from_bits(self.v),
        })
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.remaining == 0 {
            return None;
        }
        match self.next_sample() {
            Some(s) => {
                self.remaining -= 1;
                Some(s)
            }
            None => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{STALE_NAN, STALE_NAN_BITS};

    fn roundtrip(samples: &[(i64, f64)]) -> Chunk {
        let mut c = Chunk::new();
        for &(t, v) in samples {
            c.append(t, v).expect("in order");
        }
        let got: Vec<(i64, u64)> = c.iter().map(|s| (s.t, s.v.to_bits())).collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
        let back = Chunk::from_bytes(c.as_bytes()).expect("decodes");
        assert_eq!(
            back.iter()
                .map(|s| (s.t, s.v.to_bits()))
                .collect::<Vec<_>>(),
            want
        );
        assert_eq!(back.len(), samples.len());
        c
    }

    #[test]
    fn regular_scrapes_compress_well() {
        // 120 samples every 10 s: a counter growing by a few units and a gauge jittering a
        // little, the common shapes.
        let t0 = 1_700_000_000_000;
        let counter: Vec<_> = (0..120)
            .map(|i| (t0 + i * 10_000, 1000.0 + (i * 7 + i % 3) as f64))
            .collect();
        let c = roundtrip(&counter);
        let per_sample = c.as_bytes().len() as f64 / 120.0;
        assert!(per_sample < 2.5, "counter: {per_sample} bytes/sample");
        let constant: Vec<_> = (0..120).map(|i| (t0 + i * 10_000, 1.0)).collect();
        let c = roundtrip(&constant);
        assert!(c.as_bytes().len() <= 52, "{} bytes", c.as_bytes().len());
    }

    #[test]
    fn stale_markers_and_special_values_round_trip_bit_exactly() {
        let weird_nan = f64::from_bits(0x7ff8_dead_beef_0001);
        let c = roundtrip(&[
            (1, 1.5),
            (2, STALE_NAN),
            (3, f64::NAN),
            (4, weird_nan),
            (5, f64::INFINITY),
            (6, f64::NEG_INFINITY),
            (7, -0.0),
            (8, f64::MIN_POSITIVE),
            (9, STALE_NAN),
        ]);
        let vals: Vec<u64> = c.iter().map(|s| s.v.to_bits()).collect();
        assert_eq!(vals[1], STALE_NAN_BITS);
        assert_eq!(vals[8], STALE_NAN_BITS);
        assert_ne!(vals[2], STALE_NAN_BITS);
    }

    #[test]
    fn irregular_and_extreme_timestamps() {
        roundtrip(&[
            (i64::MIN, 0.0),
            (-5, 1.0),
            (0, 2.0),
            (1, 3.0),
            (10_000, 4.0),
            (10_001, 5.0),
            (5_000_000_000, 6.0),
            (i64::MAX, 7.0),
        ]);
        roundtrip(&[(42, 1.0)]);
        roundtrip(&[]);
        // Every dod bucket boundary.
        let mut t = 0;
        let mut samples = vec![(0, 0.0)];
        for (i, d) in [1, 8192, 8193, 65536, 65537, 524288, 524289, 1 << 40, 3]
            .iter()
            .enumerate()
        {
            t += d;
            samples.push((t, i as f64 * 1e300));
        }
        roundtrip(&samples);
    }

    #[test]
    fn appending_after_a_load_continues_the_stream() {
        let mut c = Chunk::new();
        for i in 0..50 {
            c.append(i * 15_000, (i * i) as f64 * 0.1).expect("append");
        }
        let mut loaded = Chunk::from_bytes(c.as_bytes()).expect("load");
        for i in 50..100 {
            c.append(i * 15_000, (i * i) as f64 * 0.1).expect("append");
            loaded
                .append(i * 15_000, (i * i) as f64 * 0.1)
                .expect("append");
        }
        assert_eq!(c.as_bytes(), loaded.as_bytes());
    }

    #[test]
    fn out_of_order_is_refused_and_corrupt_bytes_rejected() {
        let mut c = Chunk::new();
        c.append(10, 1.0).expect("first");
        assert!(matches!(
            c.append(10, 2.0),
            Err(ChunkError::OutOfOrder { .. })
        ));
        assert!(matches!(
            c.append(5, 2.0),
            Err(ChunkError::OutOfOrder { .. })
        ));
        c.append(20, 2.0).expect("later");
        let mut bytes = c.as_bytes().to_vec();
        bytes.pop();
        assert!(Chunk::from_bytes(&bytes).is_err());
        assert!(Chunk::from_bytes(&[0]).is_err());
        let mut extra = c.as_bytes().to_vec();
        extra.push(0);
        assert!(Chunk::from_bytes(&extra).is_err());
        // Garbage never panics.
        for seed in 0u64..200 {
            let bytes: Vec<u8> = (0..(seed % 40))
                .map(|i| (seed.wrapping_mul(31).wrapping_add(i * 17) % 251) as u8)
                .collect();
            let _ = Chunk::from_bytes(&bytes);
        }
    }
}
