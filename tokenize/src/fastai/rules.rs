//! fastai's pre-tokenization rules (`defaults.text_proc_rules`, fastai/text/core.py,
//! fastai 2.8.12), each as a single hand-written scan that reproduces the
//! behaviour of the original Python regex under `re.sub`'s left-to-right,
//! non-overlapping matching.

#[cfg(test)]
use super::chars::C_WORD;
use super::chars::{is_py_space, is_py_word, ASCII_CLASS, C_SPACE};
use super::masks::ClassMasks;
use super::tables;
use ahash::AHashMap;
use std::borrow::Cow;
use std::fmt::Write as _;

/// fastai special tokens.
pub const TK_REP: &str = "xxrep";
pub const TK_WREP: &str = "xxwrep";
pub const TK_UP: &str = "xxup";
pub const TK_MAJ: &str = "xxmaj";
pub const BOS: &str = "xxbos";

/// The `str.replace` chain of `fix_html`, in fastai's order (the order matters:
/// e.g. `&amp;quot;` -> `&&quot;` -> `&&'`).
const FIX_HTML_REPLACEMENTS: [(&str, &str); 13] = [
    ("#39;", "'"),
    ("amp;", "&"),
    ("#146;", "'"),
    ("nbsp;", " "),
    ("#36;", "$"),
    ("\\n", "\n"),
    ("quot;", "'"),
    ("<br />", "\n"),
    ("\\\"", "\""),
    ("<unk>", "xxunk"),
    (" @.@ ", "."),
    (" @-@ ", "-"),
    ("...", " …"),
];

/// Python's `html.unescape` with the HTML5 named-reference table.
#[derive(Debug, Clone)]
pub struct HtmlUnescaper {
    entities: AHashMap<&'static str, &'static str>,
}

impl Default for HtmlUnescaper {
    fn default() -> Self {
        Self::new()
    }
}

impl HtmlUnescaper {
    pub fn new() -> Self {
        HtmlUnescaper {
            entities: tables::HTML5.iter().copied().collect(),
        }
    }

    /// `html.unescape(s)` (CPython 3.11 `html/__init__.py`): finds
    /// `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` left to right and
    /// replaces each per `_replace_charref`.
    pub fn unescape<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = String::new();
        if self.unescape_into(s, &mut out) {
            Cow::Owned(out)
        } else {
            Cow::Borrowed(s)
        }
    }

    /// [`Self::unescape`] into a reused buffer: when a reference is replaced, `out`
    /// is overwritten with the result and `true` returned; otherwise `out` is left
    /// in an unspecified state and the result is `s` itself.
    pub fn unescape_into(&self, s: &str, out: &mut String) -> bool {
        let b = s.as_bytes();
        let Some(mut i) = b.iter().position(|&x| x == b'&') else {
            return false;
        };
        let mut copied = 0; // s[..copied] has been written to out
        let mut changed = false;
        while i < b.len() {
            if b[i] != b'&' {
                i += 1;
                continue;
            }
            let (end, rep) = match self.charref_at(s, i + 1) {
                Some(x) => x,
                None => {
                    i += 1;
                    continue;
                }
            };
            if !changed {
                changed = true;
                out.clear();
                out.reserve(s.len());
            }
            out.push_str(&s[copied..i]);
            out.push_str(&rep);
            copied = end;
            i = end;
        }
        if changed {
            out.push_str(&s[copied..]);
        }
        changed
    }

    /// Tries the charref regex right after an `&` at byte `j`; returns the end of
    /// the match and its replacement.
    fn charref_at(&self, s: &str, j: usize) -> Option<(usize, Cow<'static, str>)> {
        let b = s.as_bytes();
        if j < b.len() && b[j] == b'#' {
            // numeric: `#[0-9]+;?` or `#[xX][0-9a-fA-F]+;?`
            let (radix, digits_start) = if j + 1 < b.len() && (b[j + 1] == b'x' || b[j + 1] == b'X')
            {
                (16, j + 2)
            } else {
                (10, j + 1)
            };
            let mut k = digits_start;
            while k < b.len()
                && (if radix == 16 {
                    b[k].is_ascii_hexdigit()
                } else {
                    b[k].is_ascii_digit()
                })
            {
                k += 1;
            }
            if k == digits_start {
                // `#x` without hex digits: the decimal alternative already failed
                // (x is not a digit), and the named alternative excludes `#`.
                return None;
            }
            let num = s[digits_start..k]
                .bytes()
                .try_fold(0u32, |acc, d| {
                    let v = (d as char).to_digit(radix)?;
                    acc.checked_mul(radix)?.checked_add(v)
                })
                .unwrap_or(u32::MAX);
            let end = if k < b.len() && b[k] == b';' {
                k + 1
            } else {
                k
            };
            return Some((end, Cow::Owned(numeric_charref(num))));
        }
        // named: `[^\t\n\f <&#;]{1,32};?` (32 *characters*)
        let mut k = j;
        let mut n = 0;
        for c in s[j..].chars() {
            if n == 32 || matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';') {
                break;
            }
            k += c.len_utf8();
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let end = if k < b.len() && b[k] == b';' {
            k + 1
        } else {
            k
        };
        let name = &s[j..end];
        if let Some(rep) = self.entities.get(name) {
            return Some((end, Cow::Borrowed(rep)));
        }
        // "find the longest matching name (as defined by the standard)":
        // prefixes of 2 ..= len-1 characters, longest first.
        let idx: Vec<usize> = name.char_indices().map(|(p, _)| p).collect();
        for x in (2..idx.len()).rev() {
            if let Some(rep) = self.entities.get(&name[..idx[x]]) {
                let mut r = String::with_capacity(rep.len() + name.len());
                r.push_str(rep);
                r.push_str(&name[idx[x]..]);
                return Some((end, Cow::Owned(r)));
            }
        }
        let mut r = String::with_capacity(name.len() + 1);
        r.push('&');
        r.push_str(name);
        Some((end, Cow::Owned(r)))
    }
}

/// `_replace_charref` for numeric references (HTML5 rules, as in CPython).
fn numeric_charref(num: u32) -> String {
    const INVALID_CHARREFS: [(u32, char); 34] = [
        (0x00, '\u{fffd}'),
        (0x0d, '\r'),
        (0x80, '\u{20ac}'),
        (0x81, '\u{81}'),
        (0x82, '\u{201a}'),
        (0x83, '\u{0192}'),
        (0x84, '\u{201e}'),
        (0x85, '\u{2026}'),
        (0x86, '\u{2020}'),
        (0x87, '\u{2021}'),
        (0x88, '\u{02c6}'),
        (0x89, '\u{2030}'),
        (0x8a, '\u{0160}'),
        (0x8b, '\u{2039}'),
        (0x8c, '\u{0152}'),
        (0x8d, '\u{8d}'),
        (0x8e, '\u{017d}'),
        (0x8f, '\u{8f}'),
        (0x90, '\u{90}'),
        (0x91, '\u{2018}'),
        (0x92, '\u{2019}'),
        (0x93, '\u{201c}'),
        (0x94, '\u{201d}'),
        (0x95, '\u{2022}'),
        (0x96, '\u{2013}'),
        (0x97, '\u{2014}'),
        (0x98, '\u{02dc}'),
        (0x99, '\u{2122}'),
        (0x9a, '\u{0161}'),
        (0x9b, '\u{203a}'),
        (0x9c, '\u{0153}'),
        (0x9d, '\u{9d}'),
        (0x9e, '\u{017e}'),
        (0x9f, '\u{0178}'),
    ];
    if let Some(&(_, c)) = INVALID_CHARREFS.iter().find(|&&(n, _)| n == num) {
        return c.to_string();
    }
    if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
        return '\u{fffd}'.to_string();
    }
    let invalid_codepoint = matches!(num, 0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f..=0x9f | 0xfdd0..=0xfdef)
        || (num & 0xFFFE) == 0xFFFE;
    if invalid_codepoint {
        return String::new();
    }
    char::from_u32(num).map(String::from).unwrap_or_default()
}

/// `fix_html`: the `str.replace` chain, then `html.unescape`.
pub fn fix_html<'a>(s: &'a str, unescaper: &HtmlUnescaper) -> Cow<'a, str> {
    let (mut out, mut tmp) = (String::new(), String::new());
    if fix_html_into(s, unescaper, &mut out, &mut tmp) {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// [`fix_html`] into a reused buffer: `true` when the text changed (the result is
/// then in `out`), else `false` (`out` unspecified, the result is `s`); `tmp` is
/// scratch space. With reused buffers the common case allocates nothing.
pub fn fix_html_into(
    s: &str,
    unescaper: &HtmlUnescaper,
    out: &mut String,
    tmp: &mut String,
) -> bool {
    // Every pattern but "..." contains one of `; \ < @`, which no replacement
    // produces: so such a pattern is searched for only when its key byte occurs in
    // `s`. "..." can also be made by " @.@ " -> "." (as in "x. @.@ .y"), so it is
    // searched for when "..." or `@` occurs. `html.unescape` needs a `&`, present or
    // made from "amp;" (`;`).
    let mut flags = html_flags(s.as_bytes());
    if flags & H_AT != 0 {
        flags |= H_DOTS;
    }
    if flags == 0 {
        return false;
    }
    let mut changed = false;
    for (pat, rep) in FIX_HTML_REPLACEMENTS {
        let key = match pat.as_bytes()[0] {
            b'<' => H_LT,
            b'\\' => H_BSLASH,
            b' ' => H_AT,
            b'.' => H_DOTS,
            _ => H_SEMI,
        };
        if flags & key == 0 {
            continue;
        }
        if replace_into(if changed { out } else { s }, pat, rep, tmp) {
            std::mem::swap(out, tmp);
            changed = true;
        }
    }
    if flags & (H_AMP | H_SEMI) != 0 && unescaper.unescape_into(if changed { out } else { s }, tmp)
    {
        std::mem::swap(out, tmp);
        changed = true;
    }
    changed
}

/// [`html_flags`] bits.
const H_SEMI: u8 = 1;
const H_BSLASH: u8 = 2;
const H_LT: u8 = 4;
const H_AT: u8 = 8;
const H_AMP: u8 = 16;
const H_DOTS: u8 = 32;

/// Which of `; \ < @ &` and "..." occur in `b`, in one pass.
fn html_flags(b: &[u8]) -> u8 {
    #[inline(always)]
    fn one(x: u8, x1: u8, x2: u8) -> u8 {
        ((x == b';') as u8 * H_SEMI)
            | ((x == b'\\') as u8 * H_BSLASH)
            | ((x == b'<') as u8 * H_LT)
            | ((x == b'@') as u8 * H_AT)
            | ((x == b'&') as u8 * H_AMP)
            | (((x == b'.') & (x1 == b'.') & (x2 == b'.')) as u8 * H_DOTS)
    }
    let mut f = 0u8;
    let mut i = 0;
    // 16 positions at once (a fixed-size block: SIMD compares)
    while let Some(w) = b.get(i..i + 18) {
        for k in 0..16 {
            f |= one(w[k], w[k + 1], w[k + 2]);
        }
        i += 16;
    }
    for k in i..b.len() {
        let at = |j: usize| b.get(j).copied().unwrap_or(0);
        f |= one(b[k], at(k + 1), at(k + 2));
    }
    f
}

/// The first occurrence of `pat` (at least 2 bytes) in `h` at or after `i`.
fn find_from(h: &[u8], pat: &[u8], mut i: usize) -> Option<usize> {
    let (p0, p1) = (pat[0], pat[1]);
    while i + pat.len() <= h.len() {
        // 16 candidate starts at once on the first two bytes (SIMD compares)
        if let Some(w) = h.get(i..i + 17) {
            let mut hit = 0u8;
            for k in 0..16 {
                hit |= ((w[k] == p0) & (w[k + 1] == p1)) as u8;
            }
            if hit == 0 {
                i += 16;
                continue;
            }
        }
        let stop = (i + 16).min(h.len());
        while i < stop {
            if h[i..].starts_with(pat) {
                return Some(i);
            }
            i += 1;
        }
    }
    None
}

/// `str.replace(pat, rep)` (`pat`: ASCII, at least 2 bytes) into `out` when `pat`
/// occurs (returns `true`); otherwise `out` is untouched and `false` returned.
fn replace_into(s: &str, pat: &str, rep: &str, out: &mut String) -> bool {
    let (h, p) = (s.as_bytes(), pat.as_bytes());
    let Some(mut at) = find_from(h, p, 0) else {
        return false;
    };
    out.clear();
    out.reserve(s.len());
    let mut copied = 0;
    loop {
        // `pat` is ASCII, so its matches start and end on char boundaries
        out.push_str(&s[copied..at]);
        out.push_str(rep);
        copied = at + p.len();
        match find_from(h, p, copied) {
            Some(j) => at = j,
            None => break,
        }
    }
    out.push_str(&s[copied..]);
    true
}

/// `replace_rep`: `(\S)(\1{2,})` -> ` xxrep {n} {c} `. Under left-to-right
/// matching the matches are exactly the maximal runs (>= 3) of one non-space char.
pub fn replace_rep(s: &str) -> Cow<'_, str> {
    let mut out = String::new();
    if replace_rep_into(s, &mut out) {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// [`replace_rep`] into a reused buffer: `true` when something was replaced (the
/// result is then in `out`), else `false` (`out` unspecified, the result is `s`).
pub fn replace_rep_into(s: &str, out: &mut String) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    let mut changed = false;
    let mut copied = 0;
    let mut i = 0;
    while i < n {
        // Skip 16 bytes at once when they are ASCII and none starts a run of 3 equal
        // bytes (a fixed-size block, so the test compiles to SIMD compares).
        if let Some(w) = b.get(i..i + 18) {
            let mut hit = 0u8;
            for k in 0..16 {
                hit |= ((w[k] == w[k + 1]) & (w[k] == w[k + 2])) as u8 | (w[k] >> 7);
            }
            if hit == 0 {
                i += 16;
                continue;
            }
        }
        // Otherwise char by char through the block (a run may end beyond it).
        let stop = (i + 16).min(n);
        while i < stop {
            let x = b[i];
            if x < 0x80 && (i + 2 >= n || b[i + 1] != x || b[i + 2] != x) {
                i += 1;
                continue;
            }
            let w = utf8_width(x);
            // The next two chars must be the same bytes.
            let run = w == 1
                || (i + 3 * w <= n
                    && b[i..i + w] == b[i + w..i + 2 * w]
                    && b[i..i + w] == b[i + 2 * w..i + 3 * w]);
            if !run {
                i += w;
                continue;
            }
            let mut j = i + 3 * w;
            let mut count = 3;
            while j + w <= n && b[j..j + w] == b[i..i + w] {
                j += w;
                count += 1;
            }
            let c = char_at(s, i).unwrap_or(' ');
            if !is_py_space(c) {
                if !changed {
                    changed = true;
                    out.clear();
                    out.reserve(n + 32);
                }
                out.push_str(&s[copied..i]);
                let _ = write!(out, " {TK_REP} {count} {c} ");
                copied = j;
            }
            i = j;
        }
    }
    if changed {
        out.push_str(&s[copied..]);
    }
    changed
}

/// Width of the UTF-8 sequence starting with lead byte `x`.
#[inline]
fn utf8_width(x: u8) -> usize {
    if x < 0x80 {
        1
    } else if x >= 0xF0 {
        4
    } else if x >= 0xE0 {
        3
    } else {
        2
    }
}

/// Python whitespace test of the char at byte `i` (which must be a char
/// boundary); returns (is space, byte width).
#[inline(always)]
fn space_at(s: &str, i: usize) -> (bool, usize) {
    let x = s.as_bytes()[i];
    if x < 0x80 {
        (ASCII_CLASS[x as usize] & C_SPACE != 0, 1)
    } else {
        let c = char_at(s, i).unwrap_or('\0');
        (is_py_space(c), c.len_utf8())
    }
}

/// End of the run of `\w` chars starting at byte `i`.
#[cfg(test)]
fn word_end(s: &str, mut i: usize) -> usize {
    let b = s.as_bytes();
    // One table look-up per ASCII byte: 1 word char, 0 not, 2 non-ASCII (decode).
    while let Some(&x) = b.get(i) {
        match WORD_BYTE[x as usize] {
            1 => i += 1,
            0 => break,
            _ => {
                let c = char_at(s, i).unwrap_or(' ');
                if !is_py_word(c) {
                    break;
                }
                i += c.len_utf8();
            }
        }
    }
    i
}

/// [`word_end`]'s byte classes: 1 ASCII `\w`, 0 other ASCII, 2 non-ASCII.
#[cfg(test)]
static WORD_BYTE: [u8; 256] = {
    let mut t = [2u8; 256];
    let mut i = 0;
    while i < 128 {
        t[i] = (ASCII_CLASS[i] & C_WORD != 0) as u8;
        i += 1;
    }
    t
};

#[inline]
fn char_at(s: &str, i: usize) -> Option<char> {
    s[i..].chars().next()
}

/// Skips a run of (Python) whitespace starting at byte `i`; returns its end.
#[inline]
fn skip_space(s: &str, mut i: usize) -> usize {
    while i < s.len() {
        let (sp, w) = space_at(s, i);
        if !sp {
            break;
        }
        i += w;
    }
    i
}

/// Tries `_re_wrep` = `(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)` with the word
/// starting at byte `q`. Because `\w+` must be followed by `\s+`, the word is the
/// maximal `\w` run; copies are `word\s+` (greedy), and the final `\1` must be
/// followed by a non-word char or the end. Backtracking over the number of copies
/// `j` only matters for the last one: with `m` full copies, `j = m` works if the
/// text after them is the word followed by `\W`/end, else `j = m - 1` works when
/// `m >= 2` (the m-th copy itself is `word` + whitespace).
/// Returns (number of copies j, end of the word after the copies, e as char).
/// `k` is `word_end(s, q)`.
fn wrep_at(s: &str, q: usize, k: usize) -> Option<(usize, usize, Option<char>)> {
    if k == q {
        return None;
    }
    let word = &s[q..k];
    let sp = skip_space(s, k);
    if sp == k {
        return None;
    }
    // Count full copies `word\s+`, remembering where each one starts.
    let b = s.as_bytes();
    if b.get(sp) != Some(&b[q]) || !b[sp..].starts_with(word.as_bytes()) {
        return None; // fast reject (first byte, then all): the common case
    }
    let mut pos = sp; // P_j: start after j copies
    let mut m = 0;
    let mut prev_pos = pos;
    loop {
        if !s[pos..].starts_with(word) {
            break;
        }
        let after = pos + word.len();
        let sp2 = skip_space(s, after);
        if sp2 == after {
            break;
        }
        m += 1;
        prev_pos = pos;
        pos = sp2;
    }
    if m == 0 {
        return None;
    }
    // j = m: final word at `pos`, followed by (\s|\W|$).
    if s[pos..].starts_with(word) {
        let after = pos + word.len();
        match char_at(s, after) {
            None => return Some((m, after, None)),
            Some(c) if !is_py_word(c) => return Some((m, after, Some(c))),
            _ => {}
        }
    }
    if m >= 2 {
        // j = m - 1: the final `\1` is the m-th copy, followed by whitespace.
        let after = prev_pos + word.len();
        return Some((m - 1, after, char_at(s, after)));
    }
    None
}

/// `replace_wrep`: `word word word word` -> ` xxwrep 4 word ` (see [`wrep_at`]).
pub fn replace_wrep(s: &str) -> Cow<'_, str> {
    let mut out = String::new();
    if replace_wrep_into(s, &mut out) {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// [`replace_wrep`] into a reused buffer: `true` when something was replaced (the
/// result is then in `out`), else `false` (`out` unspecified, the result is `s`).
///
/// A match starts at a whitespace char `p` followed by a word (or at `^` with a
/// word at 0), and its word must come again right after the whitespace that
/// follows it. So instead of stepping through every char, this visits only the
/// word starts after whitespace ([`ClassMasks`]), rejects on the first byte of
/// the next word (almost always), and hands the rest to [`wrep_at`]. Under
/// `re.sub`'s left-to-right matching the next match may start no earlier than
/// the previous one ended.
pub fn replace_wrep_into(s: &str, out: &mut String) -> bool {
    ClassMasks::with(s, |m| replace_wrep_masked(s, m, out))
}

fn replace_wrep_masked(s: &str, m: &ClassMasks, out: &mut String) -> bool {
    let b = s.as_bytes();
    let mut changed = false;
    let mut copied = 0;
    let mut next = 0; // the earliest start of the next match (end of the last one)
    for q in m.word_starts_after_space() {
        let k = ClassMasks::run_end(&m.word, q);
        let sp = ClassMasks::run_end(&m.space, k);
        if sp == k || b.get(sp) != Some(&b[q]) {
            continue; // no whitespace after the word, or another word follows
        }
        // The match's `\s` is the whitespace char before q (none at `^`).
        let p = if q == 0 {
            0
        } else {
            s[..q].char_indices().next_back().map_or(0, |(i, _)| i)
        };
        if p < next {
            continue;
        }
        let Some(m) = wrep_at(s, q, k) else {
            continue;
        };
        copied = emit_wrep(s, out, &mut changed, copied, p, &s[q..k], m);
        next = copied;
    }
    if changed {
        out.push_str(&s[copied..]);
    }
    changed
}

/// Writes a `replace_wrep` match that starts at `p` (`word` repeated, as found by
/// [`wrep_at`]) into `out`: the text since the last match (`s[copied..p]`, after
/// starting `out` on the first match), then ` xxwrep N word ` and the char the
/// match consumed after the last copy. Returns the end of the match.
fn emit_wrep(
    s: &str,
    out: &mut String,
    changed: &mut bool,
    copied: usize,
    p: usize,
    word: &str,
    (j, after, e): (usize, usize, Option<char>),
) -> usize {
    if !*changed {
        *changed = true;
        out.clear();
        out.reserve(s.len() + 32);
    }
    out.push_str(&s[copied..p]);
    let _ = write!(out, " {TK_WREP} {} {word} ", j + 2);
    match e {
        Some(e) => {
            out.push(e);
            after + e.len_utf8()
        }
        None => after,
    }
}

/// The char-by-char reference for [`replace_wrep_into`], kept for the tests
/// that check the two agree.
#[cfg(test)]
fn replace_wrep_scalar(s: &str, out: &mut String) -> bool {
    let mut changed = false;
    let mut copied = 0;
    let mut p = 0; // search position of re.sub
                   // Candidate match starts: p == 0 with `^` (word at 0) or any whitespace char
                   // at p (`\s`, word at p + len). At p == 0 Python tries `\s` first, then `^`.
    while p < s.len() {
        let (sp, w) = space_at(s, p);
        let q = if sp {
            p + w
        } else if p == 0 {
            0
        } else {
            p += w;
            continue;
        };
        let k = word_end(s, q);
        match wrep_at(s, q, k) {
            Some(m) => {
                copied = emit_wrep(s, out, &mut changed, copied, p, &s[q..k], m);
                p = copied;
            }
            // No match starts at p. The chars in q..k are `\w`, hence not
            // whitespace, so no match can start inside the word either: skip it.
            None => p = (p + w).max(k),
        }
    }
    if changed {
        out.push_str(&s[copied..]);
    }
    changed
}

/// `spec_add_spaces` (`([/#\\])` -> ` \1 `) followed by `rm_useless_spaces`
/// (` {2,}` -> ` `), fused: emitting a space is skipped when the output already
/// ends with one, which is exactly collapsing every run of spaces.
pub fn spec_add_spaces_rm_useless(s: &str) -> Cow<'_, str> {
    let mut out = String::new();
    if spec_add_spaces_rm_useless_into(s, &mut out) {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// [`SPEC_CLASS`]: a space.
const SP_SPACE: u8 = 1;
/// [`SPEC_CLASS`]: one of `/#\`.
const SP_SPECIAL: u8 = 2;
/// Byte classes for [`spec_add_spaces_rm_useless_into`].
static SPEC_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b' ' as usize] = SP_SPACE;
    t[b'/' as usize] = SP_SPECIAL;
    t[b'#' as usize] = SP_SPECIAL;
    t[b'\\' as usize] = SP_SPECIAL;
    t
};

/// [`spec_add_spaces_rm_useless`] into a reused buffer: `true` when the text
/// changed (the result is then in `out`), else `false` (`out` unspecified).
///
/// The output ends with a space right before byte `i` exactly when byte `i - 1` is
/// a space or one of `/#\` (which is emitted as ` x `), so each byte's fate is
/// local: a special byte becomes ` x ` (its leading space dropped after such a
/// byte), a space after such a byte is dropped, everything else is kept.
pub fn spec_add_spaces_rm_useless_into(s: &str, out: &mut String) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    let first = match b.first() {
        None => return false,
        Some(&x) if SPEC_CLASS[x as usize] == SP_SPECIAL => 0,
        Some(_) => spec_next(b, 1),
    };
    if first == n {
        return false;
    }
    out.clear();
    out.reserve(n + 16);
    let mut copied = 0;
    let mut i = first;
    while i < n {
        // b[i] changes: a special byte, or a space after a space or special byte
        out.push_str(&s[copied..i]);
        copied = i + 1;
        if b[i] != b' ' {
            if i == 0 || SPEC_CLASS[b[i - 1] as usize] == 0 {
                out.push(' ');
            }
            out.push(b[i] as char);
            out.push(' ');
        }
        i = spec_next(b, i + 1);
    }
    out.push_str(&s[copied..]);
    true
}

/// The first `j >= i` (`i >= 1`) where byte `j` changes under
/// [`spec_add_spaces_rm_useless_into`] (`b.len()` if none): one of `/#\`, or a
/// space after a space or one of those.
#[inline]
fn spec_next(b: &[u8], mut i: usize) -> usize {
    // 16 bytes at once (a fixed-size block: SIMD compares), then byte by byte.
    while let Some(w) = b.get(i - 1..i + 16) {
        let mut hit = 0u8;
        for k in 0..16 {
            let (p, x) = (w[k], w[k + 1]);
            let p_sp = (p == b' ') | (p == b'/') | (p == b'#') | (p == b'\\');
            hit |= ((x == b'/') | (x == b'#') | (x == b'\\') | ((x == b' ') & p_sp)) as u8;
        }
        if hit != 0 {
            break;
        }
        i += 16;
    }
    while i < b.len() {
        let c = SPEC_CLASS[b[i] as usize];
        if c == SP_SPECIAL || (c == SP_SPACE && SPEC_CLASS[b[i - 1] as usize] != 0) {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// `replace_all_caps`, `replace_maj` and `lowercase` (which adds `xxbos `, strips,
/// and does not add `xxeos` by default), in one pass over the
/// whitespace-separated words.
///
/// * all caps: `(\s|^)([A-Z]+[^a-z\s]*)(?=(\s|$))` matches a whole word whose first
///   char is `[A-Z]` and that has no `[a-z]`; `xxup ` is added if it is longer
///   than one char.
/// * maj: `(\s|^)([A-Z][^A-Z\s]*)(?=(\s|$))` on the result: first char `[A-Z]`, no
///   other `[A-Z]` (words handled by all-caps are already lower case); `xxmaj `
///   if longer than one char.
/// * then everything is lowercased (`str.lower()`, full Unicode mapping; final
///   sigma depends only on the word, so lowercasing word by word is the same).
pub fn caps_maj_lower_into(s: &str, out: &mut String) {
    let base = out.len();
    out.reserve(s.len() + s.len() / 8 + 8);
    out.push_str(BOS);
    out.push(' ');
    let t = strip_py(s);
    let b = t.as_bytes();
    // Only words that start with `[A-Z]` (markers) or contain non-ASCII chars
    // (Unicode lowercasing) need work, so jump from one byte that is `[A-Z]` or
    // non-ASCII to the next; the text in between is copied as it is. `i` is always
    // at a word boundary (0, or the end of a word handled before).
    let mut i = 0;
    let mut copied = 0; // t[..copied] is in `out`
    loop {
        let p = caps_next(b, i);
        if p == b.len() {
            break;
        }
        // b[i..p] is ASCII: the word holding p starts after its last whitespace.
        let start = b[i..p]
            .iter()
            .rposition(|&x| ASCII_CLASS[x as usize] & C_SPACE != 0)
            .map_or(i, |r| i + r + 1);
        i = caps_word(t, start, out, &mut copied);
    }
    out.push_str(&t[copied..]);
    // ASCII letters left (non-ASCII words were lowercased above; lowercasing
    // never produces ASCII upper case, so this is idempotent on them).
    out[base..].make_ascii_lowercase();
}

/// The first `j >= i` where `b[j]` is `[A-Z]` or not ASCII (`b.len()` if none).
#[inline]
fn caps_next(b: &[u8], mut i: usize) -> usize {
    // 16 bytes at once (a fixed-size block: SIMD compares), then byte by byte.
    while let Some(w) = b.get(i..i + 16) {
        let mut hit = 0u8;
        for &x in w {
            hit |= (x.wrapping_sub(b'A') < 26) as u8 | (x >> 7);
        }
        if hit != 0 {
            break;
        }
        i += 16;
    }
    while i < b.len() && !(b[i].is_ascii_uppercase() || b[i] >= 0x80) {
        i += 1;
    }
    i.min(b.len())
}

/// At byte `i` of `t`: skips one whitespace char, or handles one word (a maximal
/// run of non-whitespace chars) for [`caps_maj_lower_into`], writing `t[*copied..]`
/// up to it plus its marker and lowercased text when it needs any. Returns the end.
fn caps_word(t: &str, i: usize, out: &mut String, copied: &mut usize) -> usize {
    let b = t.as_bytes();
    let start = i;
    let mut i = i;
    let x = b[i];
    let first = if x < 0x80 {
        let c = CASE_CLASS[x as usize];
        i += 1;
        if c & K_SPACE != 0 {
            return i;
        }
        c
    } else {
        let (sp, w) = space_at(t, i);
        i += w;
        if sp {
            return i;
        }
        K_NON_ASCII
    };
    // `rest` collects the classes of the word's bytes after the first
    let mut rest = 0u8;
    while i < b.len() {
        let x = b[i];
        if x < 0x80 {
            let c = CASE_CLASS[x as usize];
            if c & K_SPACE != 0 {
                break;
            }
            rest |= c;
            i += 1;
        } else {
            let (sp, w) = space_at(t, i);
            if sp {
                break;
            }
            rest |= K_NON_ASCII;
            i += w;
        }
    }
    let ascii = (first | rest) & K_NON_ASCII == 0;
    let marker = if first & K_UPPER != 0 {
        if rest & K_LOWER == 0 {
            // all caps; `len(word) > 1` (the first char is ASCII)
            (i - start > 1).then_some(TK_UP)
        } else if rest & K_UPPER == 0 {
            // has a lower-case letter, so it is longer than one char
            Some(TK_MAJ)
        } else {
            None
        }
    } else {
        None
    };
    if marker.is_some() || !ascii {
        out.push_str(&t[*copied..start]);
        if let Some(m) = marker {
            out.push_str(m);
            out.push(' ');
        }
        if ascii {
            out.push_str(&t[start..i]);
        } else {
            out.push_str(&t[start..i].to_lowercase());
        }
        *copied = i;
    }
    i
}

/// [`CASE_CLASS`]: Python whitespace.
const K_SPACE: u8 = 1;
/// [`CASE_CLASS`]: `[A-Z]`.
const K_UPPER: u8 = 2;
/// [`CASE_CLASS`]: `[a-z]`.
const K_LOWER: u8 = 4;
/// Not a [`CASE_CLASS`] entry: marks a non-ASCII char in a word.
const K_NON_ASCII: u8 = 8;
/// Classes of the ASCII bytes for [`caps_maj_lower_into`].
static CASE_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        if ASCII_CLASS[i] & C_SPACE != 0 {
            t[i] = K_SPACE;
        } else if b.is_ascii_uppercase() {
            t[i] = K_UPPER;
        } else if b.is_ascii_lowercase() {
            t[i] = K_LOWER;
        }
        i += 1;
    }
    t
};

/// Python `str.strip()` (strips `str.isspace()` chars).
pub fn strip_py(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(s: &str) -> String {
        let mut o = String::new();
        caps_maj_lower_into(s, &mut o);
        o
    }

    // Expected values below were produced with fastai 2.8.12's functions
    // (`fastai.text.core.fix_html` etc.) in the peer venv.

    #[test]
    fn fix_html_cases() {
        let u = HtmlUnescaper::new();
        assert_eq!(fix_html("a<br /><br />b", &u), "a\n\nb");
        assert_eq!(fix_html("Hello...world", &u), "Hello …world");
        assert_eq!(fix_html("a....b", &u), "a ….b");
        assert_eq!(fix_html("&amp;quot;", &u), "&&'");
        assert_eq!(
            fix_html("x &lt;3 &gt; &#8230; &eacute &notit; &#x41;", &u),
            "x <3 > … é ¬it; A"
        );
        assert_eq!(fix_html("a &nbsp; b", &u), "a &  b");
        assert_eq!(fix_html("<unk> \\n \\\"", &u), "xxunk \n \"");
        assert_eq!(fix_html("1 @,@ 2 @.@ 5 @-@ 6", &u), "1 @,@ 2.5-6");
        assert_eq!(
            fix_html("&#150; &#0; &#x110000; &#1;", &u),
            "\u{2013} \u{fffd} \u{fffd} "
        );
        assert_eq!(fix_html("& &# &#x; &zz", &u), "& &# &#x; &zz");
    }

    #[test]
    fn replace_rep_cases() {
        assert_eq!(
            replace_rep("I'm sooooo happy!!!"),
            "I'm s xxrep 5 o  happy xxrep 3 ! "
        );
        assert_eq!(replace_rep("aa bb   ccc"), "aa bb    xxrep 3 c ");
        assert_eq!(replace_rep("ééé——"), " xxrep 3 é ——");
    }

    #[test]
    fn replace_wrep_cases() {
        assert_eq!(
            replace_wrep("I'm very very very happy"),
            "I'm xxwrep 3 very  happy"
        );
        assert_eq!(replace_wrep("a a a b b b"), " xxwrep 3 a  b b b");
        assert_eq!(replace_wrep("a a a ab"), " xxwrep 3 a  ab");
        assert_eq!(replace_wrep("go go go go."), " xxwrep 4 go .");
        assert_eq!(replace_wrep("no no no"), " xxwrep 3 no ");
        assert_eq!(replace_wrep("x no no nox"), "x no no nox");
        assert_eq!(replace_wrep("ha ha ha ha haha"), " xxwrep 4 ha  haha");
        assert_eq!(replace_wrep("été été\u{a0}été!"), " xxwrep 3 été !");
        assert_eq!(replace_wrep(" a a a a"), " xxwrep 4 a ");
    }

    /// The word-start scan agrees with the char-by-char reference on random
    /// texts of words (often repeated) between ASCII and Unicode whitespace and
    /// punctuation.
    #[test]
    fn replace_wrep_matches_scalar_reference() {
        let words = [
            "a", "ab", "été", "日本", "x1", "_", "ha", "haha", "a\u{301}",
        ];
        let seps = [
            " ", " ", "  ", "\n", "\t", "\u{a0}", "\u{2003}", "\u{85}", ".", "!", "—", "'", "",
            " .", "\u{1c}",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut fast, mut slow) = (String::new(), String::new());
        let mut replaced = 0;
        for _ in 0..20_000 {
            let mut t = String::new();
            let mut w = 0;
            if rnd(3) == 0 {
                t.push_str(seps[rnd(seps.len())]);
            }
            for _ in 0..rnd(12) {
                if rnd(3) != 0 {
                    w = rnd(words.len());
                }
                t.push_str(words[w]);
                t.push_str(seps[rnd(seps.len())]);
            }
            let (a, b) = (
                replace_wrep_into(&t, &mut fast),
                replace_wrep_scalar(&t, &mut slow),
            );
            assert_eq!(a, b, "{t:?}");
            if a {
                assert_eq!(fast, slow, "{t:?}");
                replaced += 1;
            }
        }
        assert!(replaced > 2_000, "only {replaced} texts had a repeat");
    }

    #[test]
    fn spec_add_spaces_and_rm_useless_spaces() {
        assert_eq!(
            spec_add_spaces_rm_useless("#hash and/or \\back"),
            " # hash and / or \\ back"
        );
        assert_eq!(spec_add_spaces_rm_useless("a  b   c\n  d"), "a b c\n d");
        assert_eq!(spec_add_spaces_rm_useless("plain text"), "plain text");
    }

    #[test]
    fn caps_maj_lowercase() {
        assert_eq!(caps("I AM SHOUTING"), "xxbos i xxup am xxup shouting");
        assert_eq!(
            caps("Hello World, I'm here"),
            "xxbos xxmaj hello xxmaj world, xxmaj i'm here"
        );
        assert_eq!(
            caps("McDonald USA1 A. Élan"),
            "xxbos mcdonald xxup usa1 xxup a. élan"
        );
        assert_eq!(
            caps("  \nLeading and trailing\n "),
            "xxbos xxmaj leading and trailing"
        );
        assert_eq!(caps(""), "xxbos ");
        assert_eq!(
            caps("(Parens) \"Quoted\" U.S. I'M"),
            "xxbos (parens) \"quoted\" xxup u.s. xxup i'm"
        );
    }
}
