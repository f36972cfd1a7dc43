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
    /// ASCII letters `[A-Za-z]` and ASCII digits `[0-9]` (no non-ASCII chars).
    pub alpha: Vec<u64>,
    pub digit: Vec<u64>,
    len: usize,
}

/// The bits of 64 bytes: word, space, alpha, digit, non-ASCII.
type Block = [u64; 5];

/// The [`Block`] of 64 bytes, ASCII classes only.
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn block_portable(chunk: &[u8; 64]) -> Block {
    let mut r = [0u64; 5];
    for (j, &x) in chunk.iter().enumerate() {
        let is_a = (x | 0x20).wrapping_sub(b'a') < 26;
        let is_d = x.wrapping_sub(b'0') < 10;
        let is_w = is_a || is_d || x == b'_';
        // Python's ASCII whitespace: \t \n \v \f \r, \x1c..\x1f and ' '.
        let is_s = x.wrapping_sub(9) < 5 || x.wrapping_sub(28) < 5;
        for (k, bit) in [is_w, is_s, is_a, is_d, x >= 0x80].into_iter().enumerate() {
            r[k] |= (bit as u64) << j;
        }
    }
    r
}

/// [`block_portable`] 16 bytes at a time with SSE2 and `movemask`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn block_sse2(chunk: &[u8; 64]) -> Block {
    use std::arch::x86_64::*;
    // Signed byte compares: ASCII is 0..=127, non-ASCII bytes are negative and
    // fall outside every range below.
    let between = |x: __m128i, lo: u8, hi: u8| {
        _mm_and_si128(
            _mm_cmpgt_epi8(x, _mm_set1_epi8(lo as i8 - 1)),
            _mm_cmplt_epi8(x, _mm_set1_epi8(hi as i8 + 1)),
        )
    };
    let mut r = [0u64; 5];
    for (k, c) in chunk.chunks_exact(16).enumerate() {
        let lo = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
        let hi = u64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
        let x = _mm_set_epi64x(hi as i64, lo as i64);
        let alpha = between(_mm_or_si128(x, _mm_set1_epi8(0x20)), b'a', b'z');
        let digit = between(x, b'0', b'9');
        let word = _mm_or_si128(
            _mm_or_si128(alpha, digit),
            _mm_cmpeq_epi8(x, _mm_set1_epi8(b'_' as i8)),
        );
        // Python's ASCII whitespace: \t \n \v \f \r, \x1c..\x1f and ' '.
        let space = _mm_or_si128(between(x, 9, 13), between(x, 28, 32));
        let at = 16 * k;
        for (bits, v) in r.iter_mut().zip([word, space, alpha, digit, x]) {
            *bits |= (_mm_movemask_epi8(v) as u16 as u64) << at;
        }
    }
    r
}

/// Appends the ASCII classes of `b` to `m`'s bitmaps, 64 bytes a word (the last
/// one zero-padded); `true` when `b` has non-ASCII bytes.
#[inline(always)]
fn classify_with(b: &[u8], m: &mut ClassMasks, block: impl Fn(&[u8; 64]) -> Block) -> bool {
    let mut any_hi = 0u64;
    let mut push = |r: Block| {
        m.word.push(r[0]);
        m.space.push(r[1]);
        m.alpha.push(r[2]);
        m.digit.push(r[3]);
        any_hi |= r[4];
    };
    let mut chunks = b.chunks_exact(64);
    for c in &mut chunks {
        push(block(c.try_into().expect("64-byte chunk")));
    }
    let mut last = [0u8; 64];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    push(block(&last));
    any_hi != 0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn classify_sse2(b: &[u8], m: &mut ClassMasks) -> bool {
    classify_with(b, m, |c| block_sse2(c))
}

fn classify(b: &[u8], m: &mut ClassMasks) -> bool {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: SSE2 is part of the x86-64 baseline; every x86-64 CPU has it.
    return unsafe { classify_sse2(b, m) };
    #[cfg(not(target_arch = "x86_64"))]
    return classify_with(b, m, block_portable);
}

impl ClassMasks {
    /// Classifies `s`. One extra zero word at the end lets run scans stop at
    /// `s.len()` without a bounds test.
    pub fn build(&mut self, s: &str) {
        let b = s.as_bytes();
        let words = b.len() / 64 + 2;
        for v in [
            &mut self.word,
            &mut self.space,
            &mut self.alpha,
            &mut self.digit,
        ] {
            v.clear();
            v.reserve(words);
        }
        self.len = b.len();
        let any_hi = classify(b, self);
        for v in [
            &mut self.word,
            &mut self.space,
            &mut self.alpha,
            &mut self.digit,
        ] {
            v.push(0);
        }
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

    /// Runs `f` with the masks of `s`, built in a buffer kept per thread.
    pub fn with<R>(s: &str, f: impl FnOnce(&ClassMasks) -> R) -> R {
        thread_local! {
            static MASKS: std::cell::RefCell<ClassMasks> = std::cell::RefCell::default();
        }
        MASKS.with(|m| {
            let m = &mut m.borrow_mut();
            m.build(s);
            f(m)
        })
    }

    /// Whether byte `i` (< len) belongs to a whitespace char.
    #[inline]
    pub fn is_space(&self, i: usize) -> bool {
        self.space[i / 64] >> (i % 64) & 1 != 0
    }

    /// The first byte at or after `i` that belongs to a whitespace char (the
    /// text's length if none).
    #[inline]
    pub fn next_space(&self, i: usize) -> usize {
        let mut w = i / 64;
        let x = self.space[w] >> (i % 64);
        if x != 0 {
            return i + x.trailing_zeros() as usize;
        }
        loop {
            w += 1;
            match self.space.get(w) {
                None => return self.len,
                Some(&0) => {}
                Some(&y) => return (w * 64 + y.trailing_zeros() as usize).min(self.len),
            }
        }
    }

    /// Whether every byte in `a..b` has its bit set in `bits`.
    #[inline]
    pub fn all(bits: &[u64], a: usize, b: usize) -> bool {
        Self::run_end(bits, a) >= b
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
        // A word byte right after a whitespace byte starts a word; bits past the text's end
        // are clear (zero padding), so nothing past it comes out.
        (0..self.word.len() - 1).flat_map(move |k| {
            let prev_space = if k == 0 {
                1 // byte -1 acts as a space: `^`
            } else {
                self.space[k - 1] >> 63
            };
            let starts = self.word[k] & (self.space[k] << 1 | prev_space);
            BitIter(starts).map(move |j| k * 64 + j)
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

    fn bit(bits: &[u64], i: usize) -> bool {
        bits[i / 64] >> (i % 64) & 1 != 0
    }

    #[test]
    fn sse2_and_portable_blocks_agree() {
        let mut chunk = [0u8; 64];
        for start in (0..256).step_by(64) {
            for (j, x) in chunk.iter_mut().enumerate() {
                *x = (start + j) as u8;
            }
            let mut m = ClassMasks::default();
            let hi = classify(&chunk, &mut m);
            let p = block_portable(&chunk);
            assert_eq!(
                [m.word[0], m.space[0], m.alpha[0], m.digit[0]],
                p[..4],
                "bytes {start}.."
            );
            assert_eq!(hi, p[4] != 0);
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
                let x = t.as_bytes()[i];
                assert_eq!(bit(&m.alpha, i), x.is_ascii_alphabetic(), "alpha {i}");
                assert_eq!(bit(&m.digit, i), x.is_ascii_digit(), "digit {i}");
            }
            for i in 0..=t.len() {
                let e = (i..t.len()).find(|&k| sp[k]).unwrap_or(t.len());
                assert_eq!(m.next_space(i), e, "next_space {i} of {t:?}");
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
