//! fastai v2's default English word tokenization, ported exactly
//! (fastai 2.8.12 `fastai/text/core.py` + spaCy 3.8 English tokenizer).
//!
//! Per document, fastai's `tokenize_df` runs:
//! 1. `defaults.text_proc_rules`: `fix_html`, `replace_rep`, `replace_wrep`,
//!    `spec_add_spaces`, `rm_useless_spaces`, `replace_all_caps`, `replace_maj`,
//!    `lowercase` (prepends `xxbos `; `add_eos=False` by default) — see [`rules`];
//! 2. `SpacyTokenizer`: `spacy.blank('en')`'s tokenizer with fastai's special
//!    tokens (`xxbos`, `xxmaj`, ...) added as special cases — see [`spacy_en`];
//! 3. `defaults.text_postproc_rules` = `replace_space`: `' '` inside a token
//!    becomes `'▁'` (whitespace tokens such as `"\n "`).

mod chars;
mod masks;
pub mod rules;
pub mod spacy_en;
#[allow(clippy::all)]
#[rustfmt::skip]
mod tables;

use rules::HtmlUnescaper;
use spacy_en::{SpacyEn, Tok};
use std::borrow::Cow;

/// fastai's tokenizer: `defaults.text_proc_rules`, spaCy English splitting,
/// `replace_space`. Built once (tables, regexes), then shared read-only.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    html: HtmlUnescaper,
    spacy: SpacyEn,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokenizer {
    pub fn new() -> Self {
        Tokenizer {
            html: HtmlUnescaper::new(),
            spacy: SpacyEn::new(),
        }
    }

    /// For `--lang enm`: fastai's rules and spaCy's splitting without the
    /// apostrophe-less English contractions (see [`SpacyEn::without_bare_contractions`]).
    pub fn middle_english() -> Self {
        Tokenizer {
            html: HtmlUnescaper::new(),
            spacy: SpacyEn::without_bare_contractions(),
        }
    }

    /// The text after fastai's pre-rules (what spaCy sees), e.g.
    /// `"Hello WORLD"` -> `"xxbos xxmaj hello xxup world"`.
    pub fn apply_rules(&self, text: &str) -> String {
        let mut sc = Scratch::default();
        self.apply_rules_into(text, &mut sc);
        sc.text
    }

    /// [`Self::apply_rules`] into `sc.text`, reusing `sc`'s buffers: each rule
    /// reads one buffer and writes the other, and a rule that changes nothing
    /// (the common case) copies nothing.
    fn apply_rules_into(&self, text: &str, sc: &mut Scratch) {
        let Scratch { a, b, text: t, .. } = sc;
        // The current text is `a` once a rule changed it, `text` until then.
        let mut in_a = rules::fix_html_into(text, &self.html, a, b);
        let passes: [fn(&str, &mut String) -> bool; 3] = [
            rules::replace_rep_into,
            rules::replace_wrep_into,
            rules::spec_add_spaces_rm_useless_into,
        ];
        for pass in passes {
            if pass(if in_a { a } else { text }, b) {
                std::mem::swap(a, b);
                in_a = true;
            }
        }
        t.clear();
        rules::caps_maj_lower_into(if in_a { a } else { text }, t);
    }

    /// Tokenizes `text` into `sc`: the tokens are `sc.tokens()` afterwards.
    pub fn tokenize_scratch(&self, text: &str, sc: &mut Scratch) {
        self.apply_rules_into(text, sc);
        sc.toks.clear();
        self.spacy.tokenize(&sc.text, &mut sc.toks);
    }

    /// Appends the tokens of `text` to `out`, exactly as fastai's `tokenize_df`
    /// produces them for one document (starting with `xxbos`).
    pub fn tokenize_into(&self, text: &str, out: &mut Vec<String>) {
        thread_local! {
            // Reused across calls: the rule passes then allocate nothing.
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
        }
        SCRATCH.with(|sc| {
            let sc = &mut sc.borrow_mut();
            self.tokenize_scratch(text, sc);
            out.reserve(sc.toks.len());
            out.extend(sc.tokens().map(Cow::into_owned));
        });
    }

    /// Appends the tokens of `text` to `out` as the elements of a JSON array
    /// (`"xxbos","tok",...`, without the brackets), exactly as
    /// `serde_json` writes the strings of [`Self::tokenize_into`]; returns the
    /// number of tokens. Nothing is allocated per token, and with a reused `sc`
    /// nothing per document either.
    pub fn tokenize_json_into(&self, text: &str, sc: &mut Scratch, out: &mut Vec<u8>) -> usize {
        self.tokenize_scratch(text, sc);
        let t = sc.text.as_bytes();
        out.reserve(t.len() + 3 * sc.toks.len());
        for (i, &(a, b)) in sc.toks.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let tok = &t[a..b];
            // Common case: a token of at most 8 bytes with 8 bytes of text from its
            // start: tested and copied as one u64 (no per-byte loop, no memcpy call);
            // the bytes copied beyond the token are truncated away.
            if let Some(w) = t.get(a..a + 8).filter(|_| tok.len() <= 8) {
                let w: [u8; 8] = w.try_into().expect("8 bytes");
                let len_mask = u64::MAX >> (64 - 8 * tok.len() as u32);
                if json_plain8(u64::from_le_bytes(w)) & len_mask == HI & len_mask {
                    out.push(b'"');
                    let end = out.len() + tok.len();
                    out.extend_from_slice(&w);
                    out.truncate(end);
                    out.push(b'"');
                    continue;
                }
            }
            if tok.iter().all(|&x| !JSON_SLOW[x as usize]) {
                out.push(b'"');
                out.extend_from_slice(tok);
                out.push(b'"');
            } else {
                // Spaces (replace_space) or JSON escapes: rare, so the plain way.
                let s = &sc.text[a..b];
                shared::stream::write_json_str(out, &replace_space(s));
            }
        }
        sc.toks.len()
    }

    /// Convenience: the tokens of one document.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut v = Vec::new();
        self.tokenize_into(text, &mut v);
        v
    }

    /// The spaCy part alone (no fastai rules, no `replace_space`), e.g. to check
    /// against `spacy.blank('en')` plus fastai's special cases.
    pub fn spacy_tokens(&self, text: &str) -> Vec<String> {
        let mut toks = Vec::new();
        self.spacy.tokenize(text, &mut toks);
        toks.into_iter()
            .map(|(a, b)| text[a..b].to_owned())
            .collect()
    }
}

/// Reusable per-thread buffers for [`Tokenizer::tokenize_scratch`] and
/// [`Tokenizer::tokenize_json_into`] (the rule passes' texts and the token ranges).
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    a: String,
    b: String,
    /// The text after the rules: the tokens are ranges of it.
    text: String,
    toks: Vec<Tok>,
}

impl Scratch {
    /// The tokens of the last document tokenized with this scratch space
    /// (`replace_space` applied: borrowed unless a token contains a space).
    pub fn tokens(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        self.toks
            .iter()
            .map(|&(a, b)| replace_space(&self.text[a..b]))
    }

    /// The number of tokens of the last document.
    pub fn len(&self) -> usize {
        self.toks.len()
    }

    /// Whether the last document had no tokens (never after a tokenization: there
    /// is always `xxbos`).
    pub fn is_empty(&self) -> bool {
        self.toks.is_empty()
    }
}

/// fastai's `replace_space` post-rule: `' '` inside a token becomes `'▁'`.
#[inline]
fn replace_space(s: &str) -> Cow<'_, str> {
    if s.as_bytes().contains(&b' ') {
        Cow::Owned(s.replace(' ', "▁"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The high bit of each byte.
const HI: u64 = 0x8080_8080_8080_8080;

/// Per byte of `v` (SWAR): the high bit set where the byte is not in [`JSON_SLOW`]
/// (not a control char, `"`, `\\` or space), clear where it is. Exact: no carries
/// cross bytes.
#[inline]
fn json_plain8(v: u64) -> u64 {
    const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // high bit set where the byte is nonzero
    let nonzero = |t: u64| ((t & LO7) + LO7) | t;
    // high bit set where the byte is >= 0x20
    let ge20 = ((v & LO7) + 0x60 * ONES) | v;
    ge20 & nonzero(v ^ (b'"' as u64 * ONES))
        & nonzero(v ^ (b'\\' as u64 * ONES))
        & nonzero(v ^ (b' ' as u64 * ONES))
        & HI
}

/// Bytes that keep a token from being copied verbatim into a JSON string: those
/// `serde_json` escapes (`"`, `\\`, control chars) and the space (`replace_space`).
static JSON_SLOW: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b' ' as usize] = true;
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    // Expected outputs produced with fastai 2.8.12 in the peer venv:
    // `list(tokenize1(text, SpacyTokenizer('en')))`.
    #[test]
    fn end_to_end() {
        let tk = Tokenizer::new();
        let cases: &[(&str, &[&str])] = &[
            ("", &["xxbos"]),
            (
                "Hello WORLD!!!",
                &[
                    "xxbos", "xxmaj", "hello", "xxup", "world", "xxrep", "3", "!",
                ],
            ),
            (
                "I don't know.<br /><br />It is OK",
                &[
                    "xxbos", "i", "do", "n't", "know", ".", "\n\n", "xxmaj", "it", "is", "xxup",
                    "ok",
                ],
            ),
            (
                "I can't, won't and shouldn't.",
                &[
                    "xxbos", "i", "ca", "n't", ",", "wo", "n't", "and", "should", "n't", ".",
                ],
            ),
            (
                "The U.S. and the U.K. e.g. Mr. Smith vs. Dr. Who",
                &[
                    "xxbos", "xxmaj", "the", "xxup", "u.s", ".", "and", "the", "xxup", "u.k", ".",
                    "e.g.", "xxmaj", "mr", ".", "xxmaj", "smith", "vs.", "xxmaj", "dr", ".",
                    "xxmaj", "who",
                ],
            ),
            (
                "Mail me: john.doe@example.com or visit http://www.imdb.com/title/tt0111161/ now.",
                &[
                    "xxbos",
                    "xxmaj",
                    "mail",
                    "me",
                    ":",
                    "john.doe@example.com",
                    "or",
                    "visit",
                    "http",
                    ":",
                    "/",
                    "/",
                    "xxrep",
                    "3",
                    "w",
                    ".imdb.com",
                    "/",
                    "title",
                    "/",
                    "tt0",
                    "xxrep",
                    "4",
                    "1",
                    "61",
                    "/",
                    "now",
                    ".",
                ],
            ),
            (
                "Wait... what?! Really....",
                &[
                    "xxbos", "xxmaj", "wait", "\u{2026}", "what", "?", "!", "xxmaj", "really",
                    "\u{2026}", ".",
                ],
            ),
            (
                "Nice :) but sad :-( <3 ^_^",
                &[
                    "xxbos", "xxmaj", "nice", ":)", "but", "sad", ":-(", "<3", "^_^",
                ],
            ),
            (
                "It cost $1,000,000 or 5,000 dollars, 3.5 stars, 10/10, 100%.",
                &[
                    "xxbos", "xxmaj", "it", "cost", "$", "1", ",", "xxrep", "3", "0", ",", "xxrep",
                    "3", "0", "or", "5", ",", "xxrep", "3", "0", "dollars", ",", "3.5", "stars",
                    ",", "10", "/", "10", ",", "100", "%", ".",
                ],
            ),
            (
                "A well-known, self-contained x-ray -- great\u{2014}really",
                &[
                    "xxbos",
                    "a",
                    "well",
                    "-",
                    "known",
                    ",",
                    "self",
                    "-",
                    "contained",
                    "x",
                    "-",
                    "ray",
                    "--",
                    "great",
                    "\u{2014}",
                    "really",
                ],
            ),
            (
                "Line one\n\nLine two \n Line three",
                &[
                    "xxbos",
                    "xxmaj",
                    "line",
                    "one",
                    "\n\n",
                    "xxmaj",
                    "line",
                    "two",
                    "\n\u{2581}",
                    "xxmaj",
                    "line",
                    "three",
                ],
            ),
            (
                "Odd\u{85}whitespace\u{a0}here",
                &[
                    "xxbos",
                    "xxmaj",
                    "odd",
                    "\u{85}",
                    "whitespace",
                    "\u{a0}",
                    "here",
                ],
            ),
            (
                "very very very very good",
                &["xxbos", "xxwrep", "4", "very", "good"],
            ),
            (
                "Sooooo goood",
                &["xxbos", "s", "xxrep", "5", "o", "g", "xxrep", "3", "o", "d"],
            ),
            (
                "#1 fan / \\ slash",
                &["xxbos", "#", "1", "fan", "/", "\\", "slash"],
            ),
            (
                "ALL CAPS TITLE and A single I",
                &[
                    "xxbos", "xxup", "all", "xxup", "caps", "xxup", "title", "and", "a", "single",
                    "i",
                ],
            ),
            (
                "&amp; &quot;quoted&quot; &lt;tag&gt; &#39;s Caf&eacute;",
                &[
                    "xxbos",
                    "&",
                    "&",
                    "&",
                    "'",
                    "quoted",
                    "&",
                    "'",
                    "<",
                    "tag",
                    ">",
                    "&",
                    "'s",
                    "xxmaj",
                    "caf\u{e9}",
                ],
            ),
            (
                "''Double quotes'' and ``tex'' style",
                &[
                    "xxbos", "''", "double", "quotes", "''", "and", "`", "`", "tex", "''", "style",
                ],
            ),
            (
                "xxbos already xxmaj there",
                &["xxbos", "xxbos", "already", "xxmaj", "there"],
            ),
        ];
        for (s, exp) in cases {
            assert_eq!(tk.tokenize(s), *exp, "{s:?}");
        }
    }

    #[test]
    fn is_send_sync() {
        fn f<T: Send + Sync + Clone>() {}
        f::<Tokenizer>();
    }
}
