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

    /// The text after fastai's pre-rules (what spaCy sees), e.g.
    /// `"Hello WORLD"` -> `"xxbos xxmaj hello xxup world"`.
    pub fn apply_rules(&self, text: &str) -> String {
        let mut t = rules::fix_html(text, &self.html);
        if let Some(x) = changed(rules::replace_rep(&t)) {
            t = Cow::Owned(x);
        }
        if let Some(x) = changed(rules::replace_wrep(&t)) {
            t = Cow::Owned(x);
        }
        if let Some(x) = changed(rules::spec_add_spaces_rm_useless(&t)) {
            t = Cow::Owned(x);
        }
        let mut out = String::with_capacity(t.len() + t.len() / 8 + 8);
        rules::caps_maj_lower_into(&t, &mut out);
        out
    }

    /// Appends the tokens of `text` to `out`, exactly as fastai's `tokenize_df`
    /// produces them for one document (starting with `xxbos`).
    pub fn tokenize_into(&self, text: &str, out: &mut Vec<String>) {
        let t = self.apply_rules(text);
        let mut toks: Vec<Tok> = Vec::with_capacity(t.len() / 4 + 4);
        self.spacy.tokenize(&t, &mut toks);
        out.reserve(toks.len());
        for (a, b) in toks {
            let s = &t[a..b];
            // replace_space
            if s.as_bytes().contains(&b' ') {
                out.push(s.replace(' ', "▁"));
            } else {
                out.push(s.to_owned());
            }
        }
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

/// `Some(new text)` when a rule changed the text.
fn changed(c: Cow<'_, str>) -> Option<String> {
    match c {
        Cow::Borrowed(_) => None,
        Cow::Owned(s) => Some(s),
    }
}

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
