//! The store's little binary encoder and decoder: varints, floats, strings and label sets.
//!
//! Every value the store writes is `[format byte][body]`; this module writes and reads the body.
//! It is deliberately tiny and hand-written: the layouts are part of the on-disk format, so they
//! must not move when a serialization library changes its defaults.
//!
//! Decoding never panics: a short buffer, an overlong varint or invalid UTF-8 is a
//! [`DecodeError`], which the store turns into a skipped, counted record.

use crate::series::labels::LabelStr;

use crate::series::{Label, Labels};

/// Why a stored value could not be read back. Carries no data: the caller knows which record and
/// tree it was reading, and a corrupt record is reported by count, not content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The value ended in the middle of a field.
    #[error("value truncated")]
    Truncated,
    /// A varint ran over 10 bytes or overflowed 64 bits.
    #[error("varint overflow")]
    VarintOverflow,
    /// A string was not UTF-8.
    #[error("string is not UTF-8")]
    Utf8,
    /// A field held a value outside its range (e.g. a length or an enum tag).
    #[error("field out of range")]
    OutOfRange,
    /// The value starts with a format byte this version does not know.
    #[error("unknown format byte {0}")]
    UnknownFormat(u8),
    /// Bytes were left after the last field.
    #[error("trailing bytes")]
    Trailing,
    /// Labels were not sorted by name, duplicated or had an empty value.
    #[error("label set not canonical")]
    BadLabels,
    /// The bytes do not match the checksum stored with them.
    #[error("checksum mismatch")]
    Checksum,
}

/// Appends fields to a byte buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An encoder whose value starts with `format`.
    pub fn with_format(format: u8) -> Self {
        let mut buf = Vec::with_capacity(32);
        buf.push(format);
        Encoder { buf }
    }

    /// [`with_format`](Self::with_format) with room for `capacity` bytes: a large value sized
    /// up front is written once, instead of growing by doubling (at the last step the old and
    /// the new buffer, up to three times the value, are live at once).
    pub fn with_format_and_capacity(format: u8, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(32));
        buf.push(format);
        Encoder { buf }
    }

    /// At least the number of bytes [`labels`](Self::labels) writes for `labels`.
    pub fn labels_len_bound(labels: &Labels) -> usize {
        // A varint of a count or a length below 2^35 takes at most 5 bytes.
        5 + labels
            .iter()
            .map(|l| l.name().len() + l.value().len() + 10)
            .sum::<usize>()
    }

    /// One raw byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// An unsigned LEB128 varint: small numbers (lengths, counts) take one byte.
    pub fn uvarint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            // Truncation intended: the low 7 bits go out, the high bit says "more follows".
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }

    /// A fixed-width big-endian u64, for values that are random (fingerprints) and would take
    /// ten bytes as a varint.
    pub fn u64_be(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Bytes encoded so far, format byte included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True before anything, even a format byte, was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A signed varint, zigzag-encoded so that small negative numbers stay short.
    pub fn ivarint(&mut self, v: i64) -> &mut Self {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64)
    }

    /// An f64 as its 8 IEEE-754 bytes, little-endian: NaN payloads (the staleness marker) and
    /// infinities survive bit for bit.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
        self
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.uvarint(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// Length-prefixed UTF-8.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// A label set: count, then name and value of each label in order.
    pub fn labels(&mut self, labels: &Labels) -> &mut Self {
        self.uvarint(labels.len() as u64);
        for l in labels.iter() {
            self.str(l.name());
            self.str(l.value());
        }
        self
    }

    /// The encoded value.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from a stored value, front to back.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// A decoder over a whole value; returns it with the format byte split off.
    pub fn with_format(value: &'a [u8]) -> Result<(u8, Self), DecodeError> {
        match value.split_first() {
            Some((format, rest)) => Ok((*format, Decoder { buf: rest })),
            None => Err(DecodeError::Truncated),
        }
    }

    /// A decoder over a body without a format byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// One raw byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned LEB128 varint.
    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            // The tenth byte may only carry the single top bit of a u64.
            if i == 9 && part > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    /// A u64 written by [`Encoder::u64_be`].
    pub fn u64_be(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// A zigzag-encoded signed varint.
    pub fn ivarint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// An unsigned varint that must fit in a `u32`.
    pub fn u32varint(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.uvarint()?).map_err(|_| DecodeError::OutOfRange)
    }

    /// An f64 from its 8 little-endian bytes.
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_bits(u64::from_le_bytes(a)))
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.uvarint()?;
        // A length larger than what is left is corruption; checking before the cast keeps a
        // huge length from wrapping on 32-bit targets.
        if n > self.buf.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        self.take(n as usize)
    }

    /// Length-prefixed UTF-8.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Utf8)
    }

    /// A label set written by [`Encoder::labels`]; it must be canonical (sorted, unique names,
    /// no empty values) so that its fingerprint is the one it was stored under.
    pub fn labels(&mut self) -> Result<Labels, DecodeError> {
        let n = self.uvarint()?;
        // Each label takes at least two bytes, which bounds the allocation by the input size.
        if n > (self.buf.len() / 2) as u64 {
            return Err(DecodeError::Truncated);
        }
        let mut v: Vec<Label> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let name: LabelStr = self.str()?.into();
            let value: LabelStr = self.str()?.into();
            if value.is_empty() || v.last().is_some_and(|prev| *prev.name() >= name) {
                return Err(DecodeError::BadLabels);
            }
            v.push(Label::new(name, value));
        }
        Ok(Labels::from_sorted(v))
    }

    /// Fails unless every byte was read, so that a record with garbage after its fields is
    /// not mistaken for a good one.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

/// Encodes a timestamp so that byte order is time order, negative times included: big-endian
/// with the sign bit flipped.
pub fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`time_key`].
pub fn time_from_key(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

#[cfg(test)]
mod tests;
