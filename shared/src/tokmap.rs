//! A token → id map tuned for the hot loop of numericalization.
//!
//! Most tokens are short: in IMDb, over 99% are at most 15 bytes. Those are packed into a
//! `u128` (bytes + length), so a lookup hashes and compares one integer instead of calling
//! `memcmp` on a heap string; longer tokens go to an ordinary string map.

use std::hash::{BuildHasherDefault, Hasher};

use ahash::AHashMap;

#[inline]
fn pack(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() > 15 {
        return None;
    }
    let mut k = [0u8; 16];
    for (d, &c) in k.iter_mut().zip(b) {
        *d = c;
    }
    k[15] = b.len() as u8;
    Some(u128::from_le_bytes(k))
}

/// Folded-multiply hash of a packed key (as wyhash/aHash fold): one 128-bit multiply.
#[derive(Default)]
struct PackedHasher(u64);

impl Hasher for PackedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here; keep a correct (slow) path anyway.
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    #[inline]
    fn write_u128(&mut self, k: u128) {
        let (lo, hi) = (k as u64, (k >> 64) as u64);
        let m = ((lo ^ 0x243f_6a88_85a3_08d3) as u128) * ((hi ^ 0x1319_8a2e_0370_7344) as u128);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type ShortMap = std::collections::HashMap<u128, u32, BuildHasherDefault<PackedHasher>>;

#[derive(Debug, Clone, Default)]
pub struct TokenMap {
    short: ShortMap,
    long: AHashMap<Box<str>, u32>,
}

impl TokenMap {
    pub fn with_capacity(n: usize) -> Self {
        TokenMap { short: ShortMap::with_capacity_and_hasher(n, Default::default()), long: AHashMap::new() }
    }

    #[inline]
    pub fn get(&self, s: &str) -> Option<u32> {
        match pack(s) {
            Some(k) => self.short.get(&k).copied(),
            None => self.long.get(s).copied(),
        }
    }

    /// Inserts `s → id` unless `s` is present; returns the id now stored.
    #[inline]
    pub fn get_or_insert(&mut self, s: &str, id: u32) -> u32 {
        match pack(s) {
            Some(k) => *self.short.entry(k).or_insert(id),
            None => {
                if let Some(&v) = self.long.get(s) {
                    return v;
                }
                self.long.insert(s.into(), id);
                id
            }
        }
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_tokens() {
        let mut m = TokenMap::default();
        assert_eq!(m.get_or_insert("a", 0), 0);
        assert_eq!(m.get_or_insert("a\0", 1), 1); // a NUL does not collide with padding
        assert_eq!(m.get_or_insert("exactly15bytes!", 2), 2);
        assert_eq!(m.get_or_insert("sixteen_bytes_xx", 3), 3);
        assert_eq!(m.get_or_insert("a", 9), 0);
        assert_eq!(m.get("sixteen_bytes_xx"), Some(3));
        assert_eq!(m.get(""), None);
        assert_eq!(m.get_or_insert("", 4), 4);
        assert_eq!(m.get("a\0"), Some(1));
        assert_eq!(m.len(), 5);
    }
}
