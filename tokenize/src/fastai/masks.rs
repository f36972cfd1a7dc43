//! Per-byte character-class bitmaps of a text, for scans that only need to
//! visit a few positions (word starts, ends of whitespace runs) instead of every
//! byte.
//!
//! Bit `i % 64` of `word[i / 64]` is set when byte `i` belongs to a Python `\w`
//! char, of `space[i / 64]` when it belongs to a Python whitespace char; a
//! multi-byte char sets the bits of all its bytes, so runs of set bits are
//! exactly the runs of such chars. ASCII is classified 64 bytes at a time
//! with branch-free arithmetic the compiler vectorizes; only non-ASCII chars are
//! decoded one by one.

use super::chars::{is_py_space, is_py_word};

/// Word and whitespace bitmaps of one text (see the module docs). Reused
/// between texts: [`ClassMasks::build`] allocates only when a text is longer
/// than any before.
#[derive(Debug, Default)]
pub struct ClassMasks {
    pub word: Vec<u64>,
    pub space: Vec<u64>,
    len: usize,
}

/// Word, whitespace and non-ASCII bits of 64 ASCII-classified bytes.
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn block_portable(chunk: &[u8; 64]) -> (u64, u64, u64) {
    let (mut w, mut s, mut h) = (0u64, 0u64, 0u64);
    for (j, &x) in chunk.iter().enumerate() {
        let lower = x | 0x20;
        let is_w = lower.wrapping_sub(b'a') < 26 || x.wrapping_sub(b'0') < 10 || x == b'_';
        // Python's ASCII whitespace: \t \n \v \f \r, \x1c..\x1f and ' '.
        let is_s = x.wrapping_sub(9) < 5 || x.wrapping_sub(28) < 5;
        w |= (is_w as u64) << j;
        s |= (is_s as u64) << j;
        h |= ((x >> 7) as u64) << j;
    }
    (w, s, h)
}

/// [`block_portable`] 16 bytes at a time with SSE2 and `movemask`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn block_sse2(chunk: &[u8; 64]) -> (u64, u64, u64) {
    use std::arch::x86_64::*;
    // Signed byte compares: ASCII is 0..=127, non-ASCII bytes are negative and
    // fall outside every range below.
    let between = |x: __m128i, lo: u8, hi: u8| {
        _mm_and_si128(
            _mm_cmpgt_epi8(x, _mm_set1_epi8(lo as i8 - 1)),
            _mm_cmplt_epi8(x, _mm_set1_epi8(hi as i8 + 1)),
        )
    };
    let (mut w, mut s, mut h) = (0u64, 0u64, 0u64);
    for (k, c) in chunk.chunks_exact(16).enumerate() {
        let lo = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
        let hi = u64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
        let x = _mm_set_epi64x(hi as i64, lo as i64);
        let alpha = between(_mm_or_si128(x, _mm_set1_epi8(0x20)), b'a', b'z');
        let word = _mm_or_si128(
            _mm_or_si128(alpha, between(x, b'0', b'9')),
            _mm_cmpeq_epi8(x, _mm_set1_epi8(b'_' as i8)),
        );
        // Python's ASCII whitespace: \t \n \v \f \r, \x1c..\x1f and ' '.
        let space = _mm_or_si128(between(x, 9, 13), between(x, 28, 32));
        let at = 16 * k;
        w |= (_mm_movemask_epi8(word) as u16 as u64) << at;
        s |= (_mm_movemask_epi8(space) as u16 as u64) << at;
        h |= (_mm_movemask_epi8(x) as u16 as u64) << at;
    }
    (w, s, h)
}

/// Appends the ASCII classes of `b` to `word` and `space`, 64 bytes a word
/// (the last one zero-padded); `true` when `b` has non-ASCII bytes.
#[inline(always)]
fn classify_with(
    b: &[u8],
    word: &mut Vec<u64>,
    space: &mut Vec<u64>,
    block: impl Fn(&[u8; 64]) -> (u64, u64, u64),
) -> bool {
    let mut any_hi = 0u64;
    let mut chunks = b.chunks_exact(64);
    for c in &mut chunks {
        let (w, sp, h) = block(c.try_into().expect("64-byte chunk"));
        word.push(w);
        space.push(sp);
        any_hi |= h;
    }
    let mut last = [0u8; 64];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    let (w, sp, h) = block(&last);
    word.push(w);
    space.push(sp);
    any_hi | h != 0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn classify_sse2(b: &[u8], word: &mut Vec<u64>, space: &mut Vec<u64>) -> bool {
    classify_with(b, word, space, |c| block_sse2(c))
}

fn classify(b: &[u8], word: &mut Vec<u64>, space: &mut Vec<u64>) -> bool {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: SSE2 is part of the x86-64 baseline; every x86-64 CPU has it.
    return unsafe { classify_sse2(b, word, space) };
    #[cfg(not(target_arch = "x86_64"))]
    return classify_with(b, word, space, block_portable);
}

impl ClassMasks {
    /// Classifies `s`. One extra zero word at the end lets run scans stop at
    /// `s.len()` without a bounds test.
    pub fn build(&mut self, s: &str) {
        let b = s.as_bytes();
        let words = b.len() / 64 + 2;
        self.word.clear();
        self.space.clear();
        self.word.reserve(words);
        self.space.reserve(words);
        self.len = b.len();
        let any_hi = classify(b, &mut self.word, &mut self.space);
        self.word.push(0);
        self.space.push(0);
        if any_hi {
            for (i, c) in s.char_indices().filter(|&(_, c)| !c.is_ascii()) {
                let bits = if is_py_word(c) {
                    &mut self.word
                } else if is_py_space(c) {
                    &mut self.space
                } else {
                    continue;
                };
                for k in i..i + c.len_utf8() {
                    bits[k / 64] |= 1 << (k % 64);
                }
            }
        }
    }

    /// Whether byte `i` (< len) belongs to a whitespace char.
    #[cfg(test)]
    pub fn is_space(&self, i: usize) -> bool {
        self.space[i / 64] >> (i % 64) & 1 != 0
    }

    /// The end of the run of set bits in `bits` that starts at `i` (`i` itself
    /// when bit `i` is clear); never past the text's length.
    #[inline]
    pub fn run_end(bits: &[u64], i: usize) -> usize {
        let mut w = i / 64;
        let mut clear = !bits[w] >> (i % 64);
        if clear != 0 {
            return i + clear.trailing_zeros() as usize;
        }
        loop {
            w += 1;
            clear = !bits[w];
            if clear != 0 {
                return w * 64 + clear.trailing_zeros() as usize;
            }
        }
    }

    /// Starts of `\w` runs that follow a whitespace char or begin the text, in
    /// increasing order: where a regex `(?:\s|^)\w` can match its `\w`.
    pub fn word_starts_after_space(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.len;
        (0..self.word.len() - 1).flat_map(move |k| {
            let w = self.word[k];
            let (pw, ps) = if k == 0 {
                (0, 1) // byte -1 acts as a space: `^`
            } else {
                (self.word[k - 1] >> 63, self.space[k - 1] >> 63)
            };
            let starts = w & !(w << 1 | pw) & (self.space[k] << 1 | ps);
            BitIter(starts)
                .map(move |j| k * 64 + j)
                .take_while(move |&i| i < n)
        })
    }
}

/// The positions of the set bits of a word, lowest first.
struct BitIter(u64);

impl Iterator for BitIter {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let j = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same classes char by char.
    fn naive(s: &str) -> (Vec<bool>, Vec<bool>) {
        let mut w = vec![false; s.len()];
        let mut sp = vec![false; s.len()];
        for (i, c) in s.char_indices() {
            for k in i..i + c.len_utf8() {
                w[k] = is_py_word(c);
                sp[k] = is_py_space(c);
            }
        }
        (w, sp)
    }

    #[test]
    fn sse2_and_portable_blocks_agree() {
        let mut chunk = [0u8; 64];
        for start in (0..256).step_by(64) {
            for (j, x) in chunk.iter_mut().enumerate() {
                *x = (start + j) as u8;
            }
            let (mut w, mut s) = (vec![], vec![]);
            let hi = classify(&chunk, &mut w, &mut s);
            let (pw, ps, ph) = block_portable(&chunk);
            assert_eq!((w[0], s[0], hi), (pw, ps, ph != 0), "bytes {start}..");
        }
    }

    #[test]
    fn masks_match_char_classes() {
        let mut m = ClassMasks::default();
        let texts = [
            String::new(),
            "a".into(),
            "Hello, world!\tfoo_bar 42\x1c\x1f\x0b\x7f".repeat(5),
            "café\u{a0}naïve\u{2003}日本語 x\u{85}y —".repeat(7),
            "x".repeat(64),
            " ".repeat(128),
        ];
        for t in &texts {
            m.build(t);
            let (w, sp) = naive(t);
            for i in 0..t.len() {
                assert_eq!(
                    m.word[i / 64] >> (i % 64) & 1 != 0,
                    w[i],
                    "word {i} of {t:?}"
                );
                assert_eq!(m.is_space(i), sp[i], "space {i} of {t:?}");
            }
            for i in 0..=t.len() {
                let mut e = i;
                while e < t.len() && w[e] {
                    e += 1;
                }
                assert_eq!(ClassMasks::run_end(&m.word, i), e, "run_end {i} of {t:?}");
            }
            let starts: Vec<usize> = m.word_starts_after_space().collect();
            let expect: Vec<usize> = (0..t.len())
                .filter(|&i| w[i] && (i == 0 || sp[i - 1]))
                .collect();
            assert_eq!(starts, expect, "{t:?}");
        }
    }
}
