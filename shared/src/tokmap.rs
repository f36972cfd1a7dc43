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

/// Folded multiply: the high and low halves of a 64×64-bit product, xored.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = (a as u128) * (b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Tokens of 9 to 16 bytes as two overlapping u64 loads (first and last eight bytes): with
/// the length, they determine the token.
#[inline]
fn pack16(s: &str) -> Option<(usize, u64, u64)> {
    let b = s.as_bytes();
    let n = b.len();
    if !(9..=16).contains(&n) {
        return None;
    }
    let lo = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let hi = u64::from_le_bytes(b[n - 8..].try_into().expect("8 bytes"));
    Some((n, lo, hi))
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot8 {
    key: u64,
    id: u32,
    /// Token length in bytes; 0 marks an empty slot.
    len: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot16 {
    lo: u64,
    hi: u64,
    id: u32,
    len: u32,
}

/// Open addressing with linear probing in a power-of-two array with at least one empty slot.
#[derive(Debug, Clone)]
struct Probe<S> {
    slots: Box<[S]>,
    shift: u32,
}

impl<S: Copy + Default> Probe<S> {
    fn with_entries(n: usize) -> Self {
        // Dense (load factor up to 8/9): the tables stay small enough for the L2 cache, and
        // entries inserted in frequency order still sit in their home slots; only lookups of
        // tokens that are absent (rare: they become xxunk) walk longer runs.
        let size = (n + n / 8 + 1).next_power_of_two().max(8);
        Probe {
            slots: vec![S::default(); size].into_boxed_slice(),
            shift: 64 - size.trailing_zeros(),
        }
    }
    /// Slot index from a hash: its top bits (the well-mixed ones of a multiply).
    #[inline]
    fn home(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;

#[inline]
fn hash8(n: usize, k: u64) -> u64 {
    fold_mul(k ^ K0, K1 ^ (n as u64).wrapping_mul(K2))
}

#[inline]
fn hash16(n: usize, lo: u64, hi: u64) -> u64 {
    fold_mul(lo ^ K0, hi ^ K1 ^ (n as u64))
}

impl Probe<Slot8> {
    #[inline]
    fn get(&self, n: usize, k: u64) -> Option<u32> {
        let mut i = self.home(hash8(n, k));
        loop {
            let s = &self.slots[i];
            if s.key == k && s.len as usize == n {
                return Some(s.id);
            }
            if s.len == 0 {
                return None;
            }
            i = (i + 1) & self.mask();
        }
    }
    fn insert_new(&mut self, n: usize, k: u64, id: u32) {
        let mut i = self.home(hash8(n, k));
        while self.slots[i].len != 0 {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = Slot8 {
            key: k,
            id,
            len: n as u32,
        };
    }
}

impl Probe<Slot16> {
    #[inline]
    fn get(&self, n: usize, lo: u64, hi: u64) -> Option<u32> {
        let mut i = self.home(hash16(n, lo, hi));
        loop {
            let s = &self.slots[i];
            if s.lo == lo && s.hi == hi && s.len as usize == n {
                return Some(s.id);
            }
            if s.len == 0 {
                return None;
            }
            i = (i + 1) & self.mask();
        }
    }
    fn insert_new(&mut self, n: usize, lo: u64, hi: u64, id: u32) {
        let mut i = self.home(hash16(n, lo, hi));
        while self.slots[i].len != 0 {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = Slot16 {
            lo,
            hi,
            id,
            len: n as u32,
        };
    }
}

/// A token of at most 8 bytes as a little-endian u64, zero-padded: with the length, the key
/// of [`FrozenMap`]'s main table. Two overlapping loads and no loop; the overlapping bytes
/// land at the same place in both, so `|` combines them.
#[inline]
pub fn word8(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        lo | (hi << (8 * (n - 4)))
    } else if n > 0 {
        b[0] as u64 | (b[n / 2] as u64) << (8 * (n / 2)) | (b[n - 1] as u64) << (8 * (n - 1))
    } else {
        0
    }
}

/// A read-only token → id map for applying a vocab, where every token of the corpus is looked
/// up once: the hot loop of `numericalize --vocab`.
///
/// Tokens of 1 to 8 bytes (94% of IMDb's occurrences) live in one open-addressing table of
/// 16-byte slots (the token as a zero-padded u64, its length, its id): one cache line per
/// lookup and no string compare. A vocab lists tokens by falling frequency and they are
/// inserted in that order, so with linear probing the frequent ones sit in their home slots
/// and are found at the first probe. Tokens of 9 to 16 bytes get a second such table with
/// two-word keys; longer ones an ordinary string map. A token reader that already holds the
/// token as a word (the JSON scanner in [`crate::stream`] does) passes it to
/// [`FrozenMap::get_word`] and skips the packing.
#[derive(Debug, Clone)]
pub struct FrozenMap {
    short: Probe<Slot8>,
    mid: Probe<Slot16>,
    long: AHashMap<Box<str>, u32>,
    empty: Option<u32>,
}

impl FrozenMap {
    /// The map of `itos[i] → i`; a token listed twice keeps its first id.
    pub fn new<S: AsRef<str>>(itos: &[S]) -> FrozenMap {
        let count = |r: std::ops::RangeInclusive<usize>| {
            itos.iter()
                .filter(|t| r.contains(&t.as_ref().len()))
                .count()
        };
        let mut m = FrozenMap {
            short: Probe::with_entries(count(1..=8)),
            mid: Probe::with_entries(count(9..=16)),
            long: AHashMap::new(),
            empty: None,
        };
        for (i, t) in itos.iter().enumerate() {
            let t = t.as_ref();
            if m.get(t).is_some() {
                continue;
            }
            let id = i as u32;
            let n = t.len();
            if n == 0 {
                m.empty = Some(id);
            } else if n <= 8 {
                m.short.insert_new(n, word8(t.as_bytes()), id);
            } else if let Some((n, lo, hi)) = pack16(t) {
                m.mid.insert_new(n, lo, hi, id);
            } else {
                m.long.insert(t.into(), id);
            }
        }
        m
    }

    #[inline]
    pub fn get(&self, s: &str) -> Option<u32> {
        let n = s.len();
        if n <= 8 {
            return self.get_word(s, word8(s.as_bytes()));
        }
        match pack16(s) {
            Some((n, lo, hi)) => self.mid.get(n, lo, hi),
            None => self.long.get(s).copied(),
        }
    }

    /// [`FrozenMap::get`] for a token of at most 8 bytes whose bytes the caller already holds
    /// as `word` (little-endian, zero-padded: [`word8`]). Longer tokens ignore `word`.
    #[inline]
    pub fn get_word(&self, s: &str, word: u64) -> Option<u32> {
        let n = s.len();
        if n > 8 {
            return self.get(s);
        }
        debug_assert_eq!(word, word8(s.as_bytes()));
        if n == 0 {
            return self.empty;
        }
        self.short.get(n, word)
    }

    pub fn len(&self) -> usize {
        let used = |p: &[Slot8]| p.iter().filter(|s| s.len != 0).count();
        used(&self.short.slots)
            + self.mid.slots.iter().filter(|s| s.len != 0).count()
            + self.long.len()
            + self.empty.is_some() as usize
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

    #[test]
    fn word8_is_the_zero_padded_token() {
        let b = b"abcdefgh";
        for n in 0..=8 {
            let mut pad = [0u8; 8];
            pad[..n].copy_from_slice(&b[..n]);
            assert_eq!(word8(&b[..n]), u64::from_le_bytes(pad), "{n}");
        }
    }

    #[test]
    fn frozen_map_agrees_with_a_hash_map() {
        // Tokens of every length class, near-collisions, a NUL, multi-byte text, duplicates.
        let mut itos: Vec<String> = vec![
            "xxunk".into(),
            "".into(),
            "a".into(),
            "a\0".into(),
            "\0".into(),
            "é".into(),
            "日本".into(),
        ];
        for n in 1..40 {
            itos.push("x".repeat(n));
            itos.push(format!("{}y", "x".repeat(n)));
            itos.push(format!("y{}", "x".repeat(n)));
        }
        for i in 0..5000 {
            itos.push(format!("w{i}"));
            itos.push(format!("longer-token-{i}"));
            itos.push(format!("a-really-quite-long-token-number-{i}"));
        }
        itos.push("a".into()); // a duplicate keeps its first id
        itos.push("".into());
        let m = FrozenMap::new(&itos);
        let mut want = std::collections::HashMap::new();
        for (i, t) in itos.iter().enumerate() {
            want.entry(t.as_str()).or_insert(i as u32);
        }
        assert_eq!(m.len(), want.len());
        for (t, &id) in &want {
            assert_eq!(m.get(t), Some(id), "{t:?}");
            if t.len() <= 8 {
                assert_eq!(m.get_word(t, word8(t.as_bytes())), Some(id), "{t:?}");
            }
        }
        for t in [
            "b",
            "a\0\0",
            "\0\0",
            "xxxxxxxxz",
            "w5000",
            "longer-token-5000",
            "x".repeat(40).as_str(),
            "é\0",
        ] {
            assert_eq!(m.get(t), None, "{t:?}");
        }
        let empty = FrozenMap::new::<&str>(&[]);
        assert_eq!(
            (empty.get("a"), empty.get(""), empty.len()),
            (None, None, 0)
        );
    }
}
