//! spaCy 3.8's English tokenizer (`spacy.blank('en').tokenizer`), as fastai's
//! `SpacyTokenizer` configures it (fastai's special tokens added as special cases).
//!
//! This follows `spacy/tokenizer.pyx`:
//! * `_tokenize_affixes`: split on `str.isspace()` runs; a single `' '` after a
//!   token is dropped, every other whitespace run is itself a token.
//! * per substring: special cases, then `_split_affixes` (prefix/suffix loop),
//!   then `_attach_tokens` (special case, `url_match`, infixes).
//! * `_apply_special_cases`: the `PhraseMatcher` pass that retokenizes sequences
//!   matching special cases that contain affixes (e.g. `''`, `a.` inside `x-a.`).
//!
//! The prefix/suffix/infix regexes (spacy/lang/punctuation.py,
//! spacy/lang/en/punctuation.py) use look-arounds, so they are hand-coded here
//! with Python `re`'s alternation semantics: prefixes take the first alternative
//! that matches, suffixes the leftmost (= longest) one, infixes are found with
//! `finditer` (leftmost, first alternative, non-overlapping). The URL pattern
//! (spacy/lang/tokenizer_exceptions.py) is a real regex, minus its IP look-aheads
//! which are checked separately.
//!
//! spaCy's cache is not reproduced: it only memoizes results that the algorithm
//! recomputes identically.
//!
//! Tokens are byte ranges into the processed text: every token spaCy produces
//! is a substring of it (special cases' pieces concatenate to the key).

use super::chars::{in_ranges, is_alpha, is_alpha_upper, is_icon};
use super::masks::ClassMasks;
use super::tables;
use ahash::AHashMap;
use regex::Regex;

/// A token: byte range `start..end` in the text.
pub type Tok = (usize, usize);

#[derive(Debug, Clone)]
struct UrlMatch {
    host: Regex,
    ip_rest: Regex,
    ip_pre: Regex,
    ip_excluded: Regex,
}

/// Builds a regex character-class body from code point ranges.
fn class_body(ranges: &[(u32, u32)]) -> String {
    let mut s = String::new();
    for &(a, b) in ranges {
        if a == b {
            s.push_str(&format!("\\x{{{a:X}}}"));
        } else {
            s.push_str(&format!("\\x{{{a:X}}}-\\x{{{b:X}}}"));
        }
    }
    s
}

impl UrlMatch {
    fn new() -> Self {
        // spaCy's URL_PATTERN; `\w` and ALPHA_LOWER spelled out from the Python
        // tables so that they mean exactly what they mean in Python.
        let w = class_body(tables::PY_WORD);
        let al = class_body(tables::ALPHA_LOWER);
        let proto = format!(r"(?:(?:[{w}\+\-\.]{{2,}})://)?");
        let auth = r"(?:\S+(?::\S*)?@)?";
        let tail = r"(?::\d{2,5})?(?:[/?#]\S*)?$";
        let host = format!(
            r"^{proto}{auth}(?:(?:(?:[A-Za-z0-9\x{{a1}}-\x{{ffff}}][A-Za-z0-9\x{{a1}}-\x{{ffff}}_-]{{0,62}})?[A-Za-z0-9\x{{a1}}-\x{{ffff}}]\.)+(?:[{al}]{{2,63}})){tail}"
        );
        let ip_rest = format!(
            r"^(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{{1,2}}|2[0-4]\d|25[0-5])){{2}}(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4])){tail}"
        );
        let ip_pre = format!(r"^{proto}{auth}$");
        let ip_excluded = r"^(?:(?:10|127)(?:\.\d{1,3}){3}|(?:169\.254|192\.168)(?:\.\d{1,3}){2}|172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})";
        let build = |p: &str| {
            regex::RegexBuilder::new(p)
                .size_limit(1 << 27)
                .dfa_size_limit(1 << 26)
                .build()
                .expect("URL regex")
        };
        UrlMatch {
            host: build(&host),
            ip_rest: build(&ip_rest),
            ip_pre: build(&ip_pre),
            ip_excluded: build(ip_excluded),
        }
    }

    /// spaCy `URL_MATCH(s)` for a substring without whitespace.
    fn is_match(&self, s: &str) -> bool {
        // Both alternatives of the host part need a '.'.
        if !s.as_bytes().contains(&b'.') {
            return false;
        }
        if self.host.is_match(s) {
            return true;
        }
        if !s.bytes().any(|b| b.is_ascii_digit()) {
            return false;
        }
        // IP branch: `^proto? auth? (?!excluded) IP port? path? $`. The IP part can
        // only start at 0, after an '@' or after "://"; try each split.
        let b = s.as_bytes();
        let mut cands = vec![0];
        for i in 0..b.len() {
            if b[i] == b'@' {
                cands.push(i + 1);
            }
            if b[i..].starts_with(b"://") {
                cands.push(i + 3);
            }
        }
        cands.into_iter().any(|p| {
            self.ip_pre.is_match(&s[..p])
                && self.ip_rest.is_match(&s[p..])
                && !self.ip_excluded.is_match(&s[p..])
        })
    }
}

/// A small set of chars: ASCII as a bit mask, the rest as a sorted list.
#[derive(Debug, Clone, Default)]
struct CharSet {
    ascii: u128,
    other: Vec<char>,
}

impl CharSet {
    fn extend(&mut self, it: impl IntoIterator<Item = char>) {
        for c in it {
            if c.is_ascii() {
                self.ascii |= 1u128 << (c as u32);
            } else if let Err(p) = self.other.binary_search(&c) {
                self.other.insert(p, c);
            }
        }
    }

    #[inline]
    fn contains(&self, c: char) -> bool {
        if c.is_ascii() {
            self.ascii & (1u128 << (c as u32)) != 0
        } else {
            self.other.binary_search(&c).is_ok()
        }
    }
}

/// A special case that the `PhraseMatcher` pass looks for.
#[derive(Debug, Clone)]
struct Pattern {
    /// The token texts of `_tokenize_affixes(key, False)`.
    toks: Vec<&'static str>,
}

/// The special cases (`EXCEPTIONS`, a later key replacing an earlier one) as
/// open-addressing hash tables with cheap hashes: most look-ups are misses on
/// short words, which a general `HashMap` (SipHash/aHash, then `memcmp` on every
/// probe) makes expensive.
///
/// Keys of at most 8 bytes (nearly all, and all the words of running text that
/// come close) are packed into a `u64` (little-endian, zero-padded: two different
/// keys without NUL bytes never pack alike). A 32 Kibit Bloom filter (4 KiB, so
/// it stays in L1) rejects most misses with one probe; the rest look in `short`.
#[derive(Debug, Clone)]
struct SpecialMap {
    bloom: Vec<u64>,
    /// Packed short keys (0: empty slot), `short_idx` the matching `entries` index.
    short: Vec<u64>,
    short_idx: Vec<u32>,
    /// Longer keys: 0 empty, else 1 + an index into `entries`.
    long: Vec<u32>,
    entries: Vec<(&'static str, &'static [&'static str])>,
}

/// Bits of the hash that pick a slot in `SpecialMap::short` / `long`.
const SPECIAL_SLOT_BITS: u32 = 12;
/// Bits of the hash that pick a Bloom filter word (512 words: 32 Kibit, 4 KiB).
const SPECIAL_BLOOM_WORD_BITS: u32 = 9;

/// The Bloom filter word and its two bits for hash `h` (a blocked filter: both
/// bits in one word, so one memory access; about 1.5% false positives here).
#[inline(always)]
fn bloom_probe(h: u64) -> (usize, u64) {
    let w = (h >> (64 - SPECIAL_BLOOM_WORD_BITS)) as usize;
    (w, 1 << ((h >> 20) & 63) | 1 << ((h >> 26) & 63))
}

impl SpecialMap {
    fn new(items: &[(&'static str, &'static [&'static str])]) -> Self {
        let mut m = SpecialMap {
            bloom: vec![0; 1 << SPECIAL_BLOOM_WORD_BITS],
            short: vec![0; 1 << SPECIAL_SLOT_BITS],
            short_idx: vec![0; 1 << SPECIAL_SLOT_BITS],
            long: vec![0; 1 << SPECIAL_SLOT_BITS],
            entries: Vec::with_capacity(items.len()),
        };
        assert!(
            items.len() * 2 < 1 << SPECIAL_SLOT_BITS,
            "special-case tables too full"
        );
        let mask = (1 << SPECIAL_SLOT_BITS) - 1;
        for &(k, v) in items {
            if let Some(e) = m.find(k) {
                m.entries[e].1 = v; // a later duplicate replaces, as in a dict
                continue;
            }
            m.entries.push((k, v));
            let e = m.entries.len() - 1;
            let b = k.as_bytes();
            if let Some(p) = pack(b) {
                let h = mix(p);
                let (w, bits) = bloom_probe(h);
                m.bloom[w] |= bits;
                let mut i = (h as usize) & mask;
                while m.short[i] != 0 {
                    i = (i + 1) & mask;
                }
                m.short[i] = p;
                m.short_idx[i] = e as u32;
            } else {
                let mut i = long_slot(b) & mask;
                while m.long[i] != 0 {
                    i = (i + 1) & mask;
                }
                m.long[i] = e as u32 + 1;
            }
        }
        m
    }

    /// The index in `entries` of key `s`.
    #[inline]
    fn find(&self, s: &str) -> Option<usize> {
        let b = s.as_bytes();
        match pack(b) {
            Some(p) => self.find_packed(p, b.len()),
            None => self.find_long(b),
        }
    }

    /// [`Self::find`] for a key of `len` (1 to 8) bytes packed by [`pack`].
    #[inline(always)]
    fn find_packed(&self, p: u64, len: usize) -> Option<usize> {
        let h = mix(p);
        let (w, bits) = bloom_probe(h);
        if self.bloom[w] & bits != bits {
            return None;
        }
        let mask = (1 << SPECIAL_SLOT_BITS) - 1;
        let mut i = (h as usize) & mask;
        loop {
            let k = self.short[i];
            if k == 0 {
                return None;
            }
            if k == p {
                let e = self.short_idx[i] as usize;
                // equal packing, so equal unless the key ends in NUL bytes
                return (self.entries[e].0.len() == len).then_some(e);
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn find_long(&self, b: &[u8]) -> Option<usize> {
        let mask = (1 << SPECIAL_SLOT_BITS) - 1;
        let mut i = long_slot(b) & mask;
        loop {
            let e = self.long[i];
            if e == 0 {
                return None;
            }
            if self.entries[e as usize - 1].0.as_bytes() == b {
                return Some(e as usize - 1);
            }
            i = (i + 1) & mask;
        }
    }
}

/// `b` (1 to 8 bytes) as a little-endian `u64`, zero-padded.
#[inline]
fn pack(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    // (a byte loop: a variable-length copy into a buffer would call memcpy)
    let mut p = 0u64;
    for (j, &x) in b.iter().enumerate() {
        p |= (x as u64) << (8 * j);
    }
    Some(p)
}

/// A 64-bit mix of a packed key (the Bloom bit comes from the high bits, the
/// slot from the low ones).
#[inline]
fn mix(p: u64) -> u64 {
    let h = (p ^ (p >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 32)
}

/// FxHash-style hash of a longer key: rotate, xor a byte, multiply.
#[inline]
fn long_slot(b: &[u8]) -> usize {
    let mut h = (b.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &x in b {
        h = (h.rotate_left(5) ^ x as u64).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
    (h >> 32) as usize
}

#[derive(Debug, Clone)]
pub struct SpacyEn {
    specials: SpecialMap,
    /// Prefilter for `specials`: bit `min(len, 31)` of `[0][first byte]` and of
    /// `[1][last byte]` is set for every key (most words fail it, saving a hash).
    special_filter: Box<[[u32; 256]; 2]>,
    prefix_chars: CharSet,
    suffix_chars: CharSet,
    /// `LIST_CURRENCY` and `UNITS`: suffixes after an ASCII digit (none of them
    /// contains an ASCII digit, checked in `new`).
    after_digit: ahash::AHashSet<&'static str>,
    /// The longest of `after_digit`, in bytes.
    after_digit_max_bytes: usize,
    url: UrlMatch,
    patterns: Vec<Pattern>,
    /// First token text -> indices into `patterns`.
    by_first: AHashMap<&'static str, Vec<usize>>,
    /// Patterns of one token whose special case is not that token (none in
    /// spaCy 3.8 English; kept general).
    single_nontrivial: bool,
}

impl Default for SpacyEn {
    fn default() -> Self {
        Self::new()
    }
}

impl SpacyEn {
    pub fn new() -> Self {
        Self::with_exceptions(tables::EXCEPTIONS)
    }

    /// spaCy's English tokenizer without the apostrophe-less contractions among its
    /// special cases (`youre` → `you re`, `hed` → `he d`, `wont` → `wo nt`, ...): in Middle
    /// English those are ordinary words (`youre` is *your*, `hed` *head*, `wont` *used to*).
    pub fn without_bare_contractions() -> Self {
        let keep: Vec<(&'static str, &'static [&'static str])> = tables::EXCEPTIONS
            .iter()
            .copied()
            .filter(|(k, v)| !(v.len() > 1 && k.bytes().all(|b| b.is_ascii_alphabetic())))
            .collect();
        Self::with_exceptions(&keep)
    }

    /// The tokenizer with these special cases (spaCy's `tokenizer_exceptions`).
    fn with_exceptions(exceptions: &[(&'static str, &'static [&'static str])]) -> Self {
        let specials = SpecialMap::new(exceptions);
        let mut special_filter = Box::new([[0u32; 256]; 2]);
        for &(k, _) in exceptions {
            let b = k.as_bytes();
            let bit = 1u32 << b.len().min(31);
            special_filter[0][b[0] as usize] |= bit;
            special_filter[1][b[b.len() - 1] as usize] |= bit;
        }
        let single = |v: &[&'static str]| -> Vec<char> {
            v.iter()
                .filter(|s| s.chars().count() == 1)
                .map(|s| s.chars().next().unwrap_or('\0'))
                .collect()
        };
        // TOKENIZER_PREFIXES = ["§", "%", "=", "—", "–", r"\+(?![0-9])"] + LIST_PUNCT
        // + LIST_ELLIPSES + LIST_QUOTES + LIST_CURRENCY + LIST_ICONS
        let mut prefix_chars = CharSet::default();
        prefix_chars.extend("§%=—–".chars());
        prefix_chars.extend(single(tables::LIST_PUNCT));
        prefix_chars.extend(single(tables::LIST_QUOTES));
        prefix_chars.extend(single(tables::LIST_CURRENCY));
        // TOKENIZER_SUFFIXES = LIST_PUNCT + LIST_ELLIPSES + LIST_QUOTES + LIST_ICONS
        // + ["'s", "'S", "’s", "’S", "—", "–"] + look-behind rules
        let mut suffix_chars = CharSet::default();
        suffix_chars.extend("…—–".chars());
        suffix_chars.extend(single(tables::LIST_PUNCT));
        suffix_chars.extend(single(tables::LIST_QUOTES));
        let after_digit: ahash::AHashSet<&'static str> = tables::LIST_CURRENCY
            .iter()
            .chain(tables::LIST_UNITS.iter())
            .copied()
            .collect();
        assert!(
            after_digit
                .iter()
                .all(|u| !u.bytes().any(|b| b.is_ascii_digit())),
            "find_suffix assumes that no unit or currency contains an ASCII digit"
        );
        let after_digit_max_bytes = after_digit.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut sp = SpacyEn {
            specials,
            special_filter,
            prefix_chars,
            suffix_chars,
            after_digit,
            after_digit_max_bytes,
            url: UrlMatch::new(),
            patterns: Vec::new(),
            by_first: AHashMap::new(),
            single_nontrivial: false,
        };
        // Tokenizer.add_special_case: a special case goes to the PhraseMatcher when
        // `find_prefix(s) or find_infix(s) or find_suffix(s) or " " in s`, as the
        // token sequence `_tokenize_affixes(s, False)`.
        let mut toks = Vec::new();
        for &(key, pieces) in exceptions {
            let mut infixes = Vec::new();
            sp.find_infixes(key, &mut infixes);
            if sp.find_prefix(key) == 0
                && sp.find_suffix(key) == 0
                && infixes.is_empty()
                && !key.contains(' ')
            {
                continue;
            }
            toks.clear();
            ClassMasks::with(key, |m| sp.tokenize_affixes(key, m, false, &mut toks));
            let pat: Vec<&'static str> = toks.iter().map(|&(a, b)| &key[a..b]).collect();
            if pat.len() == 1 && pieces != [pat[0]] {
                sp.single_nontrivial = true;
            }
            let idx = sp.patterns.len();
            sp.by_first.entry(pat[0]).or_default().push(idx);
            sp.patterns.push(Pattern { toks: pat });
        }
        sp
    }

    /// The matcher patterns as (special-case key, token texts), for tests.
    pub fn matcher_patterns(&self) -> Vec<(String, Vec<String>)> {
        self.patterns
            .iter()
            .map(|p| {
                (
                    p.toks.concat(),
                    p.toks.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect()
    }

    /// `Tokenizer.__call__`: tokens of `text` as byte ranges (appended to `out`).
    pub fn tokenize(&self, text: &str, out: &mut Vec<Tok>) {
        let first = out.len();
        ClassMasks::with(text, |m| self.tokenize_affixes(text, m, true, out));
        self.apply_special_cases(text, out, first);
    }

    /// `_tokenize_affixes`: whitespace splitting, then each substring.
    ///
    /// A run of whitespace is itself a substring, except that a `' '` starting it is
    /// dropped (where it follows a non-space run; not at the very start of the text).
    ///
    /// `m` holds `text`'s class bitmaps: the runs are found a word at a time
    /// (no per-byte loop whose exit the branch predictor misses at every word).
    fn tokenize_affixes(
        &self,
        text: &str,
        m: &ClassMasks,
        with_special_cases: bool,
        out: &mut Vec<Tok>,
    ) {
        let b = text.as_bytes();
        let n = b.len();
        let mut sufs: Vec<Tok> = Vec::new();
        let mut i = 0;
        while i < n {
            let start = i;
            if m.is_space(i) {
                i = ClassMasks::run_end(&m.space, i);
                let lo = if start > 0 && b[start] == b' ' {
                    start + 1
                } else {
                    start
                };
                if lo < i {
                    self.tokenize_span(text, lo, i, with_special_cases, out, &mut sufs);
                }
                continue;
            }
            i = m.next_space(i);
            if ClassMasks::all(&m.alpha, start, i) || ClassMasks::all(&m.digit, start, i) {
                // Only ASCII letters, or only ASCII digits: no prefix, suffix or infix
                // rule can match (none has a letter or digit alone; the unit suffixes
                // need a digit then a letter), nor the URL pattern (it needs a '.'),
                // so the substring is one token unless it is a special case.
                if !(with_special_cases && self.push_special(text, start, i, out)) {
                    out.push((start, i));
                }
            } else {
                self.tokenize_span(text, start, i, with_special_cases, out, &mut sufs);
            }
        }
    }

    /// `_try_specials_and_cache` + `_tokenize` for `text[lo..hi]`.
    fn tokenize_span(
        &self,
        text: &str,
        mut lo: usize,
        mut hi: usize,
        with_special_cases: bool,
        out: &mut Vec<Tok>,
        sufs: &mut Vec<Tok>,
    ) {
        if with_special_cases && self.push_special(text, lo, hi, out) {
            return;
        }
        // Ranges already known not to be special cases (saves re-hashing the same
        // string in the loop below and in the attach step).
        let mut not_special = [(lo, hi), (usize::MAX, 0)];
        let mut is_special = |a: usize, b: usize| -> bool {
            if !with_special_cases || not_special.contains(&(a, b)) {
                return false;
            }
            let r = self.special_at(text, a, b).is_some();
            if !r {
                not_special[1] = (a, b);
            }
            r
        };
        // _split_affixes
        sufs.clear();
        let mut last_size = 0;
        while lo < hi && hi - lo != last_size {
            let cur = &text[lo..hi];
            if is_special(lo, hi) {
                break;
            }
            last_size = hi - lo;
            let pre = self.find_prefix(cur);
            if pre != 0 && pre < cur.len() && is_special(lo + pre, hi) {
                out.push((lo, lo + pre));
                lo += pre;
                break;
            }
            let suf = self.find_suffix(&cur[pre..]);
            if suf != 0 && cur.len() > suf && is_special(lo, hi - suf) {
                sufs.push((hi - suf, hi));
                hi -= suf;
                break;
            }
            // (pre + suf <= len always holds: the suffix is searched after the prefix)
            if pre != 0 {
                out.push((lo, lo + pre));
                lo += pre;
            }
            if suf != 0 {
                sufs.push((hi - suf, hi));
                hi -= suf;
            }
        }
        // _attach_tokens
        if lo < hi {
            let cur = &text[lo..hi];
            if is_special(lo, hi) {
                self.push_special(text, lo, hi, out);
            } else if self.url.is_match(cur) {
                out.push((lo, hi));
            } else {
                let mut start = 0;
                let mut any = false;
                self.for_each_infix(cur, |ms, me| {
                    any = true;
                    if ms == 0 {
                        // `if infix_start == start_before_infixes: continue`
                        return;
                    }
                    if ms != start {
                        out.push((lo + start, lo + ms));
                    }
                    if ms != me {
                        out.push((lo + ms, lo + me));
                    }
                    start = me;
                });
                if !any {
                    out.push((lo, hi));
                } else if start < cur.len() {
                    out.push((lo + start, hi));
                }
            }
        }
        out.extend(sufs.iter().rev());
    }

    /// The special case for `s`, if there is one.
    #[inline]
    fn special(&self, s: &str) -> Option<&'static [&'static str]> {
        self.special_at(s, 0, s.len())
    }

    /// The special case for `text[lo..hi]`, if there is one. A key of up to 8
    /// bytes (almost every word) is read as one masked 8-byte load and goes
    /// straight to the Bloom filter, whose test almost always fails the same way
    /// (well predicted); longer ones pass a first/last-byte filter first.
    #[inline]
    fn special_at(&self, text: &str, lo: usize, hi: usize) -> Option<&'static [&'static str]> {
        let b = text.as_bytes();
        let len = hi - lo;
        let e = if len.wrapping_sub(1) < 8 {
            let p = match b.get(lo..lo + 8) {
                Some(w) => {
                    let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                    w & (u64::MAX >> (64 - 8 * len as u32))
                }
                None => pack(&b[lo..hi])?,
            };
            self.specials.find_packed(p, len)
        } else {
            let k = &b[lo..hi];
            let bit = 1u32 << len.min(31);
            if k.is_empty()
                || self.special_filter[0][k[0] as usize] & bit == 0
                || self.special_filter[1][k[len - 1] as usize] & bit == 0
            {
                return None;
            }
            self.specials.find_long(k)
        };
        e.map(|e| self.specials.entries[e].1)
    }

    /// Pushes the special case for `text[lo..hi]`, if there is one.
    #[inline]
    fn push_special(&self, text: &str, lo: usize, hi: usize, out: &mut Vec<Tok>) -> bool {
        match self.special_at(text, lo, hi) {
            Some(pieces) => {
                let mut p = lo;
                for piece in pieces.iter() {
                    out.push((p, p + piece.len()));
                    p += piece.len();
                }
                true
            }
            None => false,
        }
    }

    /// `find_prefix`: byte length of the prefix of `s` (0 if none).
    /// `^§|^%|^=|^—|^–|^\+(?![0-9])|^…|^……|^,|...|^\.\.+|^…|^'|...|^\$|...|^US\$|^C\$|^A\$|...|^[ICONS]`:
    /// the first alternative that matches wins, and every alternative before the
    /// multi-char ones is a single char that cannot start them.
    pub fn find_prefix(&self, s: &str) -> usize {
        let mut it = s.chars();
        let c = match it.next() {
            Some(c) => c,
            None => return 0,
        };
        match c {
            '+' => match it.next() {
                Some(d) if d.is_ascii_digit() => 0,
                _ => 1,
            },
            '.' => {
                let n = s.bytes().take_while(|&b| b == b'.').count();
                if n >= 2 {
                    n
                } else {
                    0
                }
            }
            'U' if s.starts_with("US$") => 3,
            'C' | 'A' if s[1..].starts_with('$') => 2,
            _ => {
                if self.prefix_chars.contains(c) || is_icon(c) {
                    c.len_utf8()
                } else {
                    0
                }
            }
        }
    }

    /// `find_suffix`: byte length of the suffix of `s` (0 if none). The suffix
    /// regex is `alt1$|alt2$|...` used with `search`, so the leftmost start, i.e.
    /// the longest matching suffix, wins. Look-behinds only see `s`.
    pub fn find_suffix(&self, s: &str) -> usize {
        let b = s.as_bytes();
        let n = b.len();
        let Some((last, lw)) = char_before(s, n) else {
            return 0;
        };
        let prev = char_before(s, n - lw);
        let mut best = 0;
        if self.suffix_chars.contains(last) || is_icon(last) {
            best = lw;
        }
        match last {
            '.' => {
                let dots = b.iter().rev().take_while(|&&x| x == b'.').count();
                if dots >= 2 {
                    // `\.\.+$`; nothing longer can end in dots
                    return dots;
                }
                if let Some((p, pw)) = prev {
                    let pp = char_before(s, n - lw - pw).map(|c| c.0);
                    // (?<=[0-9{al}{e}{p}(?:{q})])\.  |  (?<=[{au}][{au}])\.  |  (?<=°[FfCcKk])\.
                    if in_ranges(tables::SUFFIX_DOT_AFTER, p)
                        || (is_alpha_upper(p) && pp.is_some_and(is_alpha_upper))
                        || (matches!(p, 'F' | 'f' | 'C' | 'c' | 'K' | 'k') && pp == Some('°'))
                    {
                        best = best.max(1);
                    }
                }
            }
            '+' if prev.is_some_and(|p| p.0.is_ascii_digit()) => best = best.max(1),
            's' | 'S' if matches!(prev, Some(('\'', _)) | Some(('’', _))) => {
                best = best.max(1 + prev.map_or(0, |p| p.1));
            }
            '…' if prev.is_some_and(|p| p.0 == '…') => best = best.max(6),
            _ => {}
        }
        // (?<=[0-9])(?:CURRENCY)$ and (?<=[0-9])(?:UNITS)$: the suffix is what follows
        // an ASCII digit, and as no unit contains one, that digit is the last one in
        // `s` (so a string ending in a digit has no such suffix). Only the last
        // `after_digit_max_bytes + 1` bytes can hold it.
        if !b[n - 1].is_ascii_digit() {
            let lo = n.saturating_sub(self.after_digit_max_bytes + 1);
            if let Some(d) = b[lo..n - 1].iter().rposition(u8::is_ascii_digit) {
                let d = lo + d;
                // b[d] is ASCII, so d + 1 is a char boundary
                if self.after_digit.contains(&s[d + 1..]) {
                    best = best.max(n - d - 1);
                }
            }
        }
        best
    }

    /// `find_infix` as a list (used for the matcher condition).
    fn find_infixes(&self, s: &str, out: &mut Vec<Tok>) {
        self.for_each_infix(s, |a, b| out.push((a, b)));
    }

    /// `infix_finditer`: English TOKENIZER_INFIXES =
    /// `\.\.+ | … | [ICONS] | (?<=[0-9])[+\-\*^](?=[0-9-]) | (?<=[{al}{q}])\.(?=[{au}{q}])
    ///  | (?<=[{a}]),(?=[{a}]) | (?<=[{a}0-9])(?:-|–|—|--|---|——|~)(?=[{a}])
    ///  | (?<=[{a}0-9])[:<>=/](?=[{a}])`, scanned left to right, non-overlapping.
    fn for_each_infix(&self, s: &str, mut f: impl FnMut(usize, usize)) {
        let b = s.as_bytes();
        // Fast reject for ASCII strings without any infix character.
        if s.is_ascii()
            && !b.iter().any(|&x| {
                matches!(
                    x,
                    b'.' | b'+'
                        | b'-'
                        | b'*'
                        | b'^'
                        | b','
                        | b'~'
                        | b':'
                        | b'<'
                        | b'>'
                        | b'='
                        | b'/'
                )
            })
        {
            return;
        }
        let mut prev: Option<char> = None;
        let mut pos = 0;
        while pos < b.len() {
            let c = match s[pos..].chars().next() {
                Some(c) => c,
                None => break,
            };
            if let Some(end) = self.infix_at(s, pos, c, prev) {
                f(pos, end);
                prev = s[..end].chars().next_back();
                pos = end;
            } else {
                prev = Some(c);
                pos += c.len_utf8();
            }
        }
    }

    #[inline]
    fn infix_at(&self, s: &str, pos: usize, c: char, prev: Option<char>) -> Option<usize> {
        let next_at = |i: usize| s[i..].chars().next();
        let clen = c.len_utf8();
        match c {
            '.' => {
                let n = s[pos..].bytes().take_while(|&x| x == b'.').count();
                if n >= 2 {
                    return Some(pos + n);
                }
            }
            '…' => return Some(pos + clen),
            _ => {}
        }
        if is_icon(c) {
            return Some(pos + clen);
        }
        let prev = prev?;
        let next = next_at(pos + clen);
        match c {
            '+' | '-' | '*' | '^'
                if prev.is_ascii_digit()
                    && next.is_some_and(|n| n.is_ascii_digit() || n == '-') =>
            {
                return Some(pos + clen)
            }
            '.' if in_ranges(tables::INFIX_DOT_BEFORE, prev)
                && next.is_some_and(|n| in_ranges(tables::INFIX_DOT_AFTER, n)) =>
            {
                return Some(pos + clen)
            }
            ',' if is_alpha(prev) && next.is_some_and(is_alpha) => return Some(pos + clen),
            _ => {}
        }
        if !(is_alpha(prev) || prev.is_ascii_digit()) {
            return None;
        }
        // hyphens, in alternation order; each must be followed by an ALPHA char
        if matches!(c, '-' | '–' | '—' | '~') {
            for h in tables::LIST_HYPHENS {
                if s[pos..].starts_with(h) && next_at(pos + h.len()).is_some_and(is_alpha) {
                    return Some(pos + h.len());
                }
            }
        }
        if matches!(c, ':' | '<' | '>' | '=' | '/') && next.is_some_and(is_alpha) {
            return Some(pos + clen);
        }
        None
    }

    /// `_apply_special_cases`: find all matches of the special-case patterns among
    /// the tokens (`PhraseMatcher`, on token texts), keep them longest first then
    /// leftmost, skipping any whose first or last token is already covered by a
    /// previously considered span; then replace each kept span whose text is a
    /// special case by that special case's tokens.
    fn apply_special_cases(&self, text: &str, toks: &mut Vec<Tok>, first: usize) {
        let n = toks.len();
        let t = |i: usize, toks: &Vec<Tok>| &text[toks[i].0..toks[i].1];
        // Quick check: only a span of adjacent tokens (no whitespace between) can
        // have a special case as its text; if none of them changes anything,
        // nothing changes (other matches only replace tokens by themselves).
        let mut effective = false;
        for i in first..n {
            let single = self.single_nontrivial;
            if !(single || (i + 1 < n && toks[i].1 == toks[i + 1].0)) {
                continue;
            }
            if let Some(ps) = self.by_first.get(t(i, toks)) {
                for &pi in ps {
                    let p = &self.patterns[pi].toks;
                    if i + p.len() <= n && (1..p.len()).all(|k| t(i + k, toks) == p[k]) {
                        let (a, b) = (toks[i].0, toks[i + p.len() - 1].1);
                        if let Some(pieces) = self.special(&text[a..b]) {
                            if pieces.len() != p.len()
                                || pieces.iter().zip(p.iter()).any(|(x, y)| x != y)
                            {
                                effective = true;
                            }
                        }
                    }
                }
            }
        }
        if !effective {
            return;
        }
        // Full pass: all matches (start, len).
        let mut matches: Vec<(usize, usize)> = Vec::new();
        for i in first..n {
            if let Some(ps) = self.by_first.get(t(i, toks)) {
                for &pi in ps {
                    let p = &self.patterns[pi].toks;
                    if i + p.len() <= n && (1..p.len()).all(|k| t(i + k, toks) == p[k]) {
                        matches.push((i, p.len()));
                    }
                }
            }
        }
        // len_start_cmp, iterated from the end: longest first, then smallest start.
        matches.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        matches.dedup();
        let mut seen = vec![false; n];
        let mut kept: Vec<(usize, usize)> = Vec::new();
        for &(s, l) in &matches {
            if !seen[s] && !seen[s + l - 1] {
                kept.push((s, l));
            }
            for x in seen.iter_mut().skip(s).take(l) {
                *x = true;
            }
        }
        kept.sort_unstable();
        let mut new_toks: Vec<Tok> = Vec::with_capacity(n + 4);
        new_toks.extend_from_slice(&toks[..first]);
        let mut i = first;
        let mut k = 0;
        while i < n {
            if k < kept.len() && kept[k].0 == i {
                let (s, l) = kept[k];
                k += 1;
                let (a, b) = (toks[s].0, toks[s + l - 1].1);
                // span.text: tokens joined with their whitespace = the text slice
                if let Some(pieces) = self.special(&text[a..b]) {
                    let mut p = a;
                    for piece in pieces.iter() {
                        new_toks.push((p, p + piece.len()));
                        p += piece.len();
                    }
                } else {
                    new_toks.extend_from_slice(&toks[s..s + l]);
                }
                i = s + l;
            } else {
                new_toks.push(toks[i]);
                i += 1;
            }
        }
        *toks = new_toks;
    }
}

/// The char ending at byte `end` of `s` and its width (`None` at 0). ASCII, the
/// common case, needs no UTF-8 decoding.
#[inline]
fn char_before(s: &str, end: usize) -> Option<(char, usize)> {
    let x = *s.as_bytes().get(end.checked_sub(1)?)?;
    if x < 0x80 {
        Some((x as char, 1))
    } else {
        s[..end].chars().next_back().map(|c| (c, c.len_utf8()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(sp: &SpacyEn, s: &str) -> Vec<String> {
        let mut v = Vec::new();
        sp.tokenize(s, &mut v);
        v.iter().map(|&(a, b)| s[a..b].to_string()).collect()
    }

    // Expected outputs checked against `spacy.blank('en')` (spaCy 3.8.18).
    #[test]
    fn spacy_cases() {
        let sp = SpacyEn::new();
        let cases: &[(&str, &[&str])] = &[
            (
                "don't can't won't",
                &["do", "n't", "ca", "n't", "wo", "n't"],
            ),
            (
                "i'm gonna (don't)",
                &["i", "'m", "gon", "na", "(", "do", "n't", ")"],
            ),
            (
                "the u.s. and e.g. U.S.",
                &["the", "u.s", ".", "and", "e.g.", "U.S."],
            ),
            (
                "mail me at john.doe@example.com!",
                &["mail", "me", "at", "john.doe@example.com", "!"],
            ),
            (
                "see www.imdb.com/title/tt0111161/ now",
                &["see", "www.imdb.com/title/tt0111161/", "now"],
            ),
            ("http://example.org.", &["http://example.org", "."]),
            ("wait... what?!", &["wait", "...", "what", "?", "!"]),
            ("nice :) :-( <3 ^_^", &["nice", ":)", ":-(", "<3", "^_^"]),
            (
                "1,000,000 dollars $5 5$ 10km 3.5",
                &[
                    "1,000,000",
                    "dollars",
                    "$",
                    "5",
                    "5",
                    "$",
                    "10",
                    "km",
                    "3.5",
                ],
            ),
            (
                "well-known a-b-c 5-6 x--y",
                &[
                    "well", "-", "known", "a", "-", "b", "-", "c", "5", "-", "6", "x", "--", "y",
                ],
            ),
            ("a\n\nb \n c", &["a", "\n\n", "b", "\n ", "c"]),
            ("a\u{85}b", &["a", "\u{85}", "b"]),
            ("''hello'' x-a.", &["''", "hello", "''", "x", "-", "a."]),
            ("movie.the end.", &["movie.the", "end", "."]),
            ("xxbos xxmaj it 's", &["xxbos", "xxmaj", "it", "'s"]),
        ];
        for (s, exp) in cases {
            assert_eq!(tok(&sp, s), *exp, "{s:?}");
        }
    }
}
