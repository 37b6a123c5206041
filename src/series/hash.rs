//! The hashes of the head's tables: FxHash for label text, series text and precomputed hashes.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::Labels;

/// FxHash (rustc's hasher): a multiply and a rotate per word. Fast on the short keys here
/// (label text, series text, precomputed hashes); not DoS-resistant, which is acceptable for
/// keys that come from configured targets.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const FX_K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(FX_K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Mix the high bits down: hashbrown indexes with the low bits.
        self.0 ^ (self.0 >> 32)
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// The hash that keys the series map.
pub fn labels_hash(labels: &Labels) -> u64 {
    let mut h = FastHasher::default();
    for l in labels.iter() {
        h.write(l.name().as_bytes());
        h.write_u8(0xff);
        h.write(l.value().as_bytes());
        h.write_u8(0xfe);
    }
    h.finish()
}
