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
///
/// 48 bytes, since every series holds one: the sample count and
/// the first timestamp are read from the encoded bytes (its header and first 64 bits) rather
/// than kept beside them, and the buffer is a boxed slice whose length is the capacity.
#[derive(Clone)]
pub struct Chunk {
    /// Header (sample count) and the bit stream in `buf[..len]`; the rest is zeroed room to
    /// grow into.
    buf: Box<[u8]>,
    /// Bytes of `buf` in use.
    len: u32,
    /// Unused low bits in the last byte in use (0 when it is full).
    free: u8,
    /// Leading zeros of the current XOR window (0xff before the first window).
    leading: u8,
    /// Trailing zeros of the current XOR window.
    trailing: u8,
    /// Timestamp of the last sample, the base of the next delta.
    last_t: Timestamp,
    /// Last delta, the base of the next delta-of-delta.
    last_delta: i64,
    /// Bits of the last value, the base of the next XOR.
    last_v: u64,
}

// By content and appender state; spare capacity does not count.
impl PartialEq for Chunk {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
            && (self.free, self.leading, self.trailing)
                == (other.free, other.leading, other.trailing)
            && (self.last_t, self.last_delta, self.last_v)
                == (other.last_t, other.last_delta, other.last_v)
    }
}

impl Eq for Chunk {}

const HEADER: usize = 2;

/// The smallest allocation size class of jemalloc (and of most size-class allocators) that
/// holds `n` bytes: multiples of 16 up to 128, then four classes per doubling (160, 192, 224,
/// 256, 320, …).
fn size_class(n: usize) -> usize {
    if n <= 128 {
        return n.max(1).div_ceil(16) * 16;
    }
    // 2^k < n <= 2^(k+1): the classes of that doubling are 2^(k-2) apart.
    let k = usize::BITS - 1 - (n - 1).leading_zeros();
    let step = 1usize << (k - 2);
    n.div_ceil(step) * step
}

impl Default for Chunk {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("samples", &self.len())
            .field("bytes", &self.len)
            .field("first_t", &self.first_t())
            .field("last_t", &self.last_t)
            .finish()
    }
}

impl Chunk {
    /// An empty chunk.
    pub fn new() -> Self {
        Chunk {
            buf: Box::new([0; HEADER]),
            len: HEADER as u32,
            free: 0,
            leading: 0xff,
            trailing: 0,
            last_t: 0,
            last_delta: 0,
            last_v: 0,
        }
    }

    /// Number of samples.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]))
    }

    /// True when the chunk holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Timestamp of the first sample (meaningless when empty).
    #[inline]
    pub fn first_t(&self) -> Timestamp {
        // The bit stream starts byte-aligned with the first timestamp's 64 bits.
        match self.buf.get(HEADER..HEADER + 8) {
            Some(b) if !self.is_empty() => i64::from_be_bytes(b.try_into().unwrap_or_default()),
            _ => 0,
        }
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
        &self.buf[..self.len as usize]
    }

    /// Heap bytes held, capacity included (for the head's memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Releases spare capacity; done when a chunk is closed.
    pub fn shrink_to_fit(&mut self) {
        if self.buf.len() > self.len as usize {
            self.buf = self.as_bytes().into();
        }
    }

    /// The samples at or after `min_t`, re-encoded into a chunk of their own (no spare
    /// capacity; appends go on after its last sample). The head trims its chunks this way, so
    /// that it holds its window and not the window plus most of a chunk, and the checkpoint
    /// cuts the samples not stored yet out of an open chunk.
    pub fn since(&self, min_t: Timestamp) -> Chunk {
        let mut c = Chunk::new();
        c.grow(self.len as usize);
        let mut it = self.iter();
        while let Some(s) = it.next() {
            let repeats = if it.repeated() { it.take_repeats() } else { 0 };
            let delta = it.delta();
            // The sample and its repeats at or after `min_t`; a run is written as a run again
            // once the new chunk has the run's delta (its second sample sets it).
            let mut t = s.t;
            let mut left = repeats;
            loop {
                if t >= min_t {
                    let repeat = c.len() >= 2
                        && c.last_delta == delta
                        && c.last_v == s.v.to_bits()
                        && t == c.last_t.wrapping_add(delta);
                    if repeat {
                        c.append_repeats(left + 1, s.v.to_bits());
                        break;
                    }
                    // Cannot fail: the samples come in order from a chunk at least as full.
                    if c.append(t, s.v).is_err() {
                        return c.finished();
                    }
                }
                if left == 0 {
                    break;
                }
                left -= 1;
                t = t.wrapping_add(delta);
            }
        }
        c.finished()
    }

    fn finished(mut self) -> Chunk {
        self.shrink_to_fit();
        self
    }

    /// Appends `n` samples that repeat the last one's delta and value (`bits`, its value's
    /// bits, checked): two zero bits each. Only for a chunk of two samples or more.
    fn append_repeats(&mut self, n: u32, bits: u64) {
        if self.len() < 2 || bits != self.last_v {
            return;
        }
        let n = n.min(u32::from(u16::MAX) - self.len() as u32);
        let mut zeros = 2 * n;
        while zeros > 0 {
            let k = zeros.min(64);
            self.write_bits(0, k);
            zeros -= k;
        }
        self.last_t = self
            .last_t
            .wrapping_add(self.last_delta.wrapping_mul(i64::from(n)));
        let count = (self.len() as u32 + n) as u16; // bounded above
        self.buf[..HEADER].copy_from_slice(&count.to_be_bytes());
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
        ChunkIter::over(self.as_bytes(), self.len())
    }

    /// The samples of a stored chunk's bytes within `[mint, maxt]`, checked as
    /// [`Chunk::from_bytes`] checks them but decoded once: a query reads many chunks and needs
    /// none of them as a chunk.
    pub fn samples_in(
        bytes: &[u8],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<Sample>, ChunkError> {
        if bytes.len() < HEADER {
            return Err(ChunkError::Corrupt("shorter than its header"));
        }
        let n = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        let mut it = ChunkIter::over(bytes, n);
        let mut out = Vec::with_capacity(n);
        let mut last: Option<i64> = None;
        for s in it.by_ref() {
            if last.is_some_and(|l| s.t <= l) {
                return Err(ChunkError::Corrupt("timestamps not increasing"));
            }
            last = Some(s.t);
            if s.t >= mint && s.t <= maxt {
                out.push(s);
            }
        }
        if it.read != n {
            return Err(ChunkError::Corrupt("truncated bit stream"));
        }
        if bytes.len() - HEADER != it.r.pos.div_ceil(8) {
            return Err(ChunkError::Corrupt("trailing bytes"));
        }
        Ok(out)
    }

    /// Reads a chunk written by [`Chunk::as_bytes`], checking it decodes completely. The
    /// result can be appended to, as if it had never been persisted.
    pub fn from_bytes(bytes: &[u8]) -> Result<Chunk, ChunkError> {
        if bytes.len() < HEADER {
            return Err(ChunkError::Corrupt("shorter than its header"));
        }
        let mut chunk = Chunk {
            buf: bytes.into(),
            len: u32::try_from(bytes.len())
                .map_err(|_| ChunkError::Corrupt("longer than 4 GiB"))?,
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
        if first.is_some() {
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

    /// Makes room for `extra` more bytes (zeroed).
    fn grow(&mut self, extra: usize) {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(extra);
        v.resize(v.len() + extra, 0);
        self.buf = v.into_boxed_slice();
    }

    /// Writes the low `n` bits of `v`, most significant first.
    fn write_bits(&mut self, v: u64, n: u32) {
        let mut n = n;
        while n > 0 {
            if self.free == 0 {
                if self.len as usize == self.buf.len() {
                    // Grow by a quarter, not double: open chunks are most of the head's
                    // memory and doubling would leave up to half of each one unused. And up
                    // to the allocator's size class: the bytes between the length asked for
                    // and the class are allocated anyway (18 bytes take a 32-byte region).
                    let n = self.buf.len();
                    self.grow(size_class(n + (n / 4).max(16)) - n);
                }
                // The byte is zero already: room is zeroed when it is made.
                self.len += 1;
                self.free = 8;
            }
            let take = n.min(u32::from(self.free));
            let chunk = (v >> (n - take)) & mask(take);
            let shift = u32::from(self.free) - take;
            if let Some(last) = self.buf.get_mut(self.len as usize - 1) {
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

/// Reads the bit stream most significant bit first through a 128-bit accumulator: one
/// big-endian 8-byte load refills 64 bits, so any field (64 bits at most) is a shift or two
/// away and the common sample (delta of delta 0, value unchanged or inside the XOR window)
/// touches memory once every few samples. This loop is most of every range selection.
struct BitReader<'a> {
    b: &'a [u8],
    /// Next byte of `b` to load into `acc`.
    next: usize,
    /// Upcoming bits, left-aligned; the bits below the top `n` are zero.
    acc: u128,
    /// Valid bits at the top of `acc` (at most 127).
    n: u32,
    /// Bits consumed.
    pos: usize,
    /// Bits in `b`.
    total: usize,
}

impl<'a> BitReader<'a> {
    fn new(b: &'a [u8]) -> Self {
        BitReader {
            b,
            next: 0,
            acc: 0,
            n: 0,
            pos: 0,
            total: b.len() * 8,
        }
    }

    /// Adds up to 64 bits to `acc` (called with fewer than 64 valid).
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(w) = self.b.get(self.next..self.next + 8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            self.acc |= u128::from(u64::from_be_bytes(a)) << (64 - self.n);
            self.next += 8;
            self.n += 64;
        } else {
            self.refill_tail();
        }
    }

    /// The last bytes, one at a time.
    #[cold]
    fn refill_tail(&mut self) {
        while self.n <= 120 {
            let Some(&byte) = self.b.get(self.next) else {
                break;
            };
            self.acc |= u128::from(byte) << (120 - self.n);
            self.next += 1;
            self.n += 8;
        }
    }

    /// The next `k` bits (1 to 8) without consuming them, zeros past the end.
    #[inline(always)]
    fn peek(&mut self, k: u32) -> u64 {
        if self.n < k {
            self.refill();
        }
        (self.acc >> (128 - k)) as u64
    }

    /// Consumes `k` bits (at most 64) already seen with [`peek`](Self::peek); `None` past the end.
    #[inline(always)]
    fn skip(&mut self, k: u32) -> Option<()> {
        if self.pos + k as usize > self.total || self.n < k {
            return None;
        }
        self.acc <<= k;
        self.n -= k;
        self.pos += k as usize;
        Some(())
    }

    /// The next `k` bits (at most 64), most significant first; `None` past the end.
    #[inline(always)]
    fn bits(&mut self, k: u32) -> Option<u64> {
        debug_assert!(k <= 64);
        if k == 0 {
            return Some(0);
        }
        if self.pos + k as usize > self.total {
            return None;
        }
        if self.n < k {
            self.refill();
        }
        let v = (self.acc >> (128 - k)) as u64;
        self.acc <<= k;
        self.n -= k;
        self.pos += k as usize;
        Some(v)
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
    /// Whether the last sample read repeated the one before it (the same delta, the same
    /// value): more may follow, for [`take_repeats`](Self::take_repeats).
    repeat: bool,
}

impl<'a> ChunkIter<'a> {
    /// An iterator over the `n` samples of a chunk's bytes (header included).
    fn over(bytes: &'a [u8], n: usize) -> Self {
        ChunkIter {
            r: BitReader::new(&bytes[HEADER..]),
            remaining: n,
            read: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            window_set: false,
            repeat: false,
        }
    }
}

impl ChunkIter<'_> {
    #[inline(always)]
    fn next_sample(&mut self) -> Option<Sample> {
        if self.read == 0 {
            self.t = self.r.bits(64)? as i64;
            self.v = self.r.bits(64)?;
        } else {
            // The delta-of-delta prefix is 0, 10, 110, 1110 or 1111: count its leading ones
            // in one look at the next four bits instead of reading them one by one.
            let ones = (self.r.peek(4) << 60).leading_ones();
            let dod = match ones {
                0 => {
                    self.r.skip(1)?;
                    0
                }
                1 => {
                    self.r.skip(2)?;
                    unbucket(self.r.bits(14)?, 14)
                }
                2 => {
                    self.r.skip(3)?;
                    unbucket(self.r.bits(17)?, 17)
                }
                3 => {
                    self.r.skip(4)?;
                    unbucket(self.r.bits(20)?, 20)
                }
                _ => {
                    self.r.skip(4)?;
                    self.r.bits(64)? as i64
                }
            };
            self.delta = self.delta.wrapping_add(dod);
            self.t = self.t.wrapping_add(self.delta);
            // Value: 0 (unchanged), 10 (XOR inside the current window) or 11 (new window).
            match self.r.peek(2) {
                0 | 1 => {
                    self.r.skip(1)?;
                    self.repeat = dod == 0;
                }
                control => {
                    self.repeat = false;
                    self.r.skip(2)?;
                    if control == 3 {
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
        }
        self.read += 1;
        Some(Sample {
            t: self.t,
            v: f64::from_bits(self.v),
        })
    }
}

impl ChunkIter<'_> {
    /// Reads a run of samples that each repeat the previous one's delta and value (`0` for a
    /// delta-of-delta of 0, `0` for an unchanged value: two zero bits a sample), up to the
    /// samples left, and says how many; `None` when the next sample is not such a repeat.
    /// A regular scrape of a series that does not change (an idle error counter, an unused
    /// histogram bucket, a configuration gauge) is nothing but these, and a range read skips
    /// or copies a run at the cost of an addition a sample instead of two control fields.
    #[inline(always)]
    fn run_of_repeats(&mut self, left: usize) -> Option<u32> {
        // Most samples of a series that changes are not repeats: one look at two bits.
        if self.r.peek(2) != 0 {
            return None;
        }
        if self.r.n < 64 {
            self.r.refill();
        }
        // The bits below the top `n` of the accumulator are zero: they do not count.
        let zeros = self.r.acc.leading_zeros().min(self.r.n);
        let left = u32::try_from(left).unwrap_or(u32::MAX);
        let in_stream = u32::try_from((self.r.total - self.r.pos) / 2).unwrap_or(u32::MAX);
        let run = (zeros / 2).min(left).min(in_stream);
        if run == 0 {
            return None;
        }
        self.r.skip(2 * run)?;
        Some(run)
    }

    /// Consumes the samples right after the one [`next`](Iterator::next) returned last that
    /// repeat it (the same delta, the same value) and says how many: they are at that sample's
    /// time plus 1, 2, … times [`delta`](Self::delta), with its value. A range read skips such a
    /// run with an addition, and [`Chunk::since`] copies it as zero bits.
    #[inline]
    pub fn take_repeats(&mut self) -> u32 {
        if self.read < 2 {
            // After the first sample the delta is not known yet (the second is coded
            // against 0), and before it there is nothing to repeat.
            return 0;
        }
        let mut k = 0;
        let mut left = self.remaining;
        while left > 0 {
            match self.run_of_repeats(left) {
                Some(run) => {
                    k += run;
                    left -= run as usize;
                }
                None => break,
            }
        }
        self.remaining -= k as usize;
        self.read += k as usize;
        self.t = self.t.wrapping_add(self.delta.wrapping_mul(i64::from(k)));
        k
    }

    /// Whether the last sample read repeated the one before it: a run of repeats may follow
    /// ([`take_repeats`](Self::take_repeats)). A series that changes at every sample never
    /// pays more than this look.
    #[inline]
    pub fn repeated(&self) -> bool {
        self.repeat
    }

    /// The delta between the last two samples read (0 before the second).
    pub fn delta(&self) -> i64 {
        self.delta
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Sample;

    #[inline]
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
mod tests;
