//! A token → id map tuned for the hot loop of numericalization.
//!
//! Most tokens are short: in IMDb, over 99% are at most 15 bytes. Those are packed into a
//! `u128` (bytes + length), so a lookup hashes and compares one integer instead of calling
//! `memcmp` on a heap string; longer tokens go to an ordinary string map.

use std::hash::{BuildHasherDefault, Hasher};

use ahash::AHashMap;

/// Tokens of 1 to 8 bytes (the most frequent ones: "the", ",", "xxmaj") get one small table
/// per length, keyed by a u64 read without a length-dependent loop: for 4..=8 bytes the first
/// and last four bytes (overlapping; together they determine the token for a known length),
/// for 1..=3 bytes the first, middle and last byte. No stack round trip, no mispredicted loop.
#[inline]
fn pack8(s: &str) -> Option<(usize, u64)> {
    let b = s.as_bytes();
    let n = b.len();
    if n == 0 || n > 8 {
        return None;
    }
    let k = if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        lo | (hi << 32)
    } else {
        b[0] as u64 | (b[n / 2] as u64) << 8 | (b[n - 1] as u64) << 16
    };
    Some((n, k))
}

#[inline]
fn pack(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() > 15 {
        return None;
    }
    let mut k = (b.len() as u128) << 120;
    for (i, &c) in b.iter().enumerate() {
        k |= (c as u128) << (8 * i);
    }
    Some(k)
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
    fn write_u64(&mut self, k: u64) {
        let m = ((k ^ 0x243f_6a88_85a3_08d3) as u128) * 0x1319_8a2e_0370_7344_u128;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
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

type TinyMap = std::collections::HashMap<u64, u32, BuildHasherDefault<PackedHasher>>;
type ShortMap = std::collections::HashMap<u128, u32, BuildHasherDefault<PackedHasher>>;

#[derive(Debug, Clone, Default)]
pub struct TokenMap {
    tiny: [TinyMap; 9],
    short: ShortMap,
    long: AHashMap<Box<str>, u32>,
}

impl TokenMap {
    pub fn with_capacity(n: usize) -> Self {
        TokenMap {
            tiny: Default::default(),
            short: ShortMap::with_capacity_and_hasher(n / 2, Default::default()),
            long: AHashMap::new(),
        }
    }

    #[inline]
    pub fn get(&self, s: &str) -> Option<u32> {
        if let Some((n, k)) = pack8(s) {
            return self.tiny[n].get(&k).copied();
        }
        match pack(s) {
            Some(k) => self.short.get(&k).copied(),
            None => self.long.get(s).copied(),
        }
    }

    /// Inserts `s → id` unless `s` is present; returns the id now stored.
    #[inline]
    pub fn get_or_insert(&mut self, s: &str, id: u32) -> u32 {
        if let Some((n, k)) = pack8(s) {
            return *self.tiny[n].entry(k).or_insert(id);
        }
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
        self.tiny.iter().map(|m| m.len()).sum::<usize>() + self.short.len() + self.long.len()
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
        assert_eq!(m.get_or_insert("seven77", 5), 5);
        assert_eq!(m.get_or_insert("eight888", 6), 6);
        assert_eq!(m.get("seven77"), Some(5));
        assert_eq!(m.get("eight888"), Some(6));
        assert_eq!(m.get_or_insert("sixteen_bytes_xx", 3), 3);
        assert_eq!(m.get_or_insert("a", 9), 0);
        assert_eq!(m.get("sixteen_bytes_xx"), Some(3));
        assert_eq!(m.get(""), None);
        assert_eq!(m.get_or_insert("", 4), 4);
        assert_eq!(m.get("a\0"), Some(1));
        assert_eq!(m.len(), 7);
        // same first/last four bytes, different lengths
        assert_eq!(m.get_or_insert("aaaaa", 10), 10);
        assert_eq!(m.get_or_insert("aaaaaa", 11), 11);
        assert_eq!(m.get_or_insert("abcdbcd", 12), 12);
        assert_eq!(m.get_or_insert("abcd", 13), 13);
        assert_eq!(m.get("aaaaa"), Some(10));
        assert_eq!(m.get("abc"), None);
    }
}
