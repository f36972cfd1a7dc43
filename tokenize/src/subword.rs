//! Subword tokenization the fastai way (`SentencePieceTokenizer`), with the Hugging Face
//! `tokenizers` crate: a unigram (the default, as fastai) or BPE model is trained on the
//! text after fastai's rules, split at whitespace; each word is then cut into pieces, the
//! first of which carries `▁` (SentencePiece's word-start mark). fastai's special tokens
//! (`xxbos`, `xxmaj`, `xxup`, `xxrep`, ...; `xxeol` with `--lang enm`) are kept whole and bare,
//! so numericalize and the trainers see them as they see word tokens.
//!
//! The model file is a complete Hugging Face `tokenizer.json` (model, Metaspace pre-tokenizer
//! and decoder, the special tokens), written atomically.

use std::path::Path;

use ahash::{AHashMap, AHashSet};
use anyhow::{anyhow, bail, Context, Result};
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::ModelWrapper;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, Model, Tokenizer};

/// fastai's `defaults.text_spec_tok`, in its order (`xxunk` first: the unknown piece).
pub const FASTAI_SPECIALS: [&str; 9] = [
    "xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj",
];

/// fastai's `max_vocab_sz` default.
pub const MAX_VOCAB_SZ: usize = 30000;

/// SentencePiece's word-start mark.
pub const WORD_START: char = '▁';

/// Which subword model to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SubwordKind {
    /// SentencePiece's unigram language model (fastai's default).
    Unigram,
    /// Byte-pair encoding.
    Bpe,
}

/// fastai's `SentencePieceTokenizer._get_vocab_sz`: a quarter of the number of distinct
/// whitespace-separated words of the ruled text, rounded up to a multiple of 8, at least 29,
/// and `max_vocab_sz` (30000) once a quarter exceeds it.
pub fn fastai_vocab_size(unique_words: usize) -> usize {
    if unique_words / 4 > MAX_VOCAB_SZ {
        return MAX_VOCAB_SZ;
    }
    let res = (unique_words / 4).div_ceil(8) * 8;
    res.max(29)
}

/// Word counts of the ruled text, in first-seen order (so training input is deterministic).
#[derive(Debug, Default, Clone)]
pub struct WordCounts {
    index: AHashMap<String, usize>,
    words: Vec<(String, u64)>,
    pub total: u64,
}

impl WordCounts {
    /// Counts the whitespace-separated words of one ruled document.
    pub fn add_text(&mut self, ruled: &str) {
        for w in ruled.split_whitespace() {
            self.total += 1;
            match self.index.get(w) {
                Some(&i) => self.words[i].1 += 1,
                None => {
                    self.index.insert(w.to_owned(), self.words.len());
                    self.words.push((w.to_owned(), 1));
                }
            }
        }
    }

    /// Distinct words (special tokens included, as fastai counts them).
    pub fn unique(&self) -> usize {
        self.words.len()
    }
}

fn special_tokens(specials: &[String]) -> Vec<AddedToken> {
    specials
        .iter()
        .map(|s| AddedToken::from(s.clone(), true).single_word(true))
        .collect()
}

/// Trains a model on `counts` (special tokens are not cut, so not trained on) and returns
/// the complete tokenizer.
pub fn train(
    counts: &WordCounts,
    kind: SubwordKind,
    vocab_size: usize,
    specials: &[String],
) -> Result<Tokenizer> {
    // Fixed reduction order: the same model for the same input on any machine.
    tokenizers::utils::parallelism::set_parallelism(false);
    let special_set: AHashSet<&str> = specials.iter().map(String::as_str).collect();
    let words = counts
        .words
        .iter()
        .filter(|(w, _)| !special_set.contains(w.as_str()));
    if counts
        .words
        .iter()
        .all(|(w, _)| special_set.contains(w.as_str()))
    {
        bail!("no words to train a subword model on (the input is empty)");
    }
    let added = special_tokens(specials);
    let model: ModelWrapper = match kind {
        SubwordKind::Unigram => {
            let trainer = UnigramTrainer::builder()
                .vocab_size(u32::try_from(vocab_size).context("--vocab-size is too large")?)
                .special_tokens(added.clone())
                .unk_token(Some(specials[0].clone()))
                .show_progress(false)
                .build()
                .map_err(|e| anyhow!("subword trainer: {e}"))?;
            let sentences: Vec<(String, u32)> = words
                .map(|(w, n)| {
                    (
                        format!("{WORD_START}{w}"),
                        u32::try_from(*n).unwrap_or(u32::MAX),
                    )
                })
                .collect();
            let mut model = Unigram::default();
            trainer.do_train(sentences, &mut model).map_err(|e| {
                let msg = e.to_string();
                if msg.contains("vocabulary") || msg.contains("Vocabulary") {
                    anyhow!("--vocab-size {vocab_size} is too small for the distinct characters of the input ({msg})")
                } else {
                    anyhow!("training the unigram model failed: {msg}")
                }
            })?;
            canonical_unigram(&model, specials.len())?.into()
        }
        SubwordKind::Bpe => {
            let trainer = BpeTrainer::builder()
                .vocab_size(vocab_size)
                .special_tokens(added.clone())
                .show_progress(false)
                .build();
            // A fixed hasher: the trainer walks this map, and ties between merges are broken
            // by the ids it hands out on the way.
            let mut wc: AHashMap<compact_str::CompactString, u64> =
                AHashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4));
            for (w, n) in words {
                wc.insert(format!("{WORD_START}{w}").into(), *n);
            }
            let mut model = BPE::builder()
                .unk_token(specials[0].clone())
                .build()
                .map_err(|e| anyhow!("subword model: {e}"))?;
            trainer
                .do_train(&wc, &mut model)
                .map_err(|e| anyhow!("training the BPE model failed: {e}"))?;
            model.into()
        }
    };
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Metaspace::new(
        WORD_START,
        PrependScheme::Always,
        true,
    )));
    tok.with_decoder(Some(MetaspaceDecoder::new(
        WORD_START,
        PrependScheme::Always,
        true,
    )));
    tok.add_special_tokens(added)
        .map_err(|e| anyhow!("subword model: {e}"))?;
    Ok(tok)
}

/// The unigram trainer gives the characters it must keep but pruned a made-up score,
/// `min_score + k * 0.0001` with `k` in hash-set order (so the order changes from run to
/// run). This hands those scores out in character order instead, and breaks score ties by
/// the piece, so that the same input always gives the same model.
fn canonical_unigram(model: &Unigram, n_specials: usize) -> Result<Unigram> {
    let all: Vec<(String, f64)> = model.iter().map(|(p, s)| (p.clone(), *s)).collect();
    let (specials, pieces) = all.split_at(n_specials.min(all.len()));
    let mut pieces = pieces.to_vec();
    let base = pieces.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    // The trainer's scores, accumulated exactly as it does.
    let mut made_up = std::collections::HashSet::new();
    let mut penalty = 0.0;
    for _ in 0..pieces.len() {
        made_up.insert((base + penalty).to_bits());
        penalty += 0.0001;
    }
    let idx: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i].0.chars().count() == 1 && made_up.contains(&pieces[i].1.to_bits()))
        .collect();
    let mut chars: Vec<String> = idx.iter().map(|&i| pieces[i].0.clone()).collect();
    let mut scores: Vec<f64> = idx.iter().map(|&i| pieces[i].1).collect();
    chars.sort();
    scores.sort_by(|a, b| a.total_cmp(b));
    for (k, &i) in idx.iter().enumerate() {
        pieces[i] = (chars[k].clone(), scores[k]);
    }
    pieces.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let vocab: Vec<(String, f64)> = specials.iter().cloned().chain(pieces).collect();
    Unigram::from(vocab, Some(0), false).map_err(|e| anyhow!("subword model: {e}"))
}

/// A loaded subword model, applied word by word.
#[derive(Clone)]
pub struct Subword {
    tok: Tokenizer,
    specials: AHashSet<String>,
}

impl std::fmt::Debug for Subword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subword")
            .field("specials", &self.specials)
            .finish_non_exhaustive()
    }
}

impl Subword {
    /// Wraps a tokenizer made by [`train`] (or loaded from its file).
    pub fn new(tok: Tokenizer) -> Result<Self> {
        match tok.get_model() {
            ModelWrapper::Unigram(_) | ModelWrapper::BPE(_) => {}
            _ => bail!("the model is neither unigram nor BPE"),
        }
        let specials: AHashSet<String> = tok
            .get_added_vocabulary()
            .get_added_tokens_decoder()
            .values()
            .filter(|t| t.special)
            .map(|t| t.content.clone())
            .collect();
        if specials.is_empty() {
            bail!("the model has no special tokens (not made by `tokenize --subword train`)");
        }
        Ok(Subword { tok, specials })
    }

    /// Loads a model file written by `tokenize --subword train`.
    pub fn load(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the subword model", path.display()))?;
        let tok: Tokenizer = s.parse().map_err(|e| {
            anyhow!(
                "{}: not a subword model (a tokenizer.json from `tokenize --subword train`): {e}",
                path.display()
            )
        })?;
        Subword::new(tok).map_err(|e| anyhow!("{}: {e:#}", path.display()))
    }

    /// The model file's contents (pretty JSON, deterministic).
    pub fn to_json(tok: &Tokenizer) -> Result<String> {
        tok.to_string(true)
            .map_err(|e| anyhow!("serializing the subword model: {e}"))
    }

    /// The size of the model's vocabulary (pieces and special tokens).
    pub fn vocab_size(&self) -> usize {
        self.tok.get_vocab_size(true)
    }

    pub fn is_special(&self, w: &str) -> bool {
        self.specials.contains(w)
    }

    /// Cuts the ruled text into pieces, calling `f` on each in order.
    pub fn pieces(&self, ruled: &str, mut f: impl FnMut(&str)) -> Result<usize> {
        let model = self.tok.get_model();
        let mut n = 0;
        let mut buf = String::new();
        for w in ruled.split_whitespace() {
            if self.specials.contains(w) {
                f(w);
                n += 1;
                continue;
            }
            buf.clear();
            buf.push(WORD_START);
            buf.push_str(w);
            let toks = model
                .tokenize(&buf)
                .map_err(|e| anyhow!("subword model: {e}"))?;
            for t in &toks {
                f(&t.value);
            }
            n += toks.len();
        }
        Ok(n)
    }

    /// The pieces of the ruled text, as owned strings.
    pub fn tokenize(&self, ruled: &str) -> Result<Vec<String>> {
        let mut v = Vec::new();
        self.pieces(ruled, |p| v.push(p.to_owned()))?;
        Ok(v)
    }

    /// Joins pieces back into the ruled text (whitespace runs as single spaces): a piece
    /// starting with `▁`, and a special token, start a new word.
    pub fn join<S: AsRef<str>>(&self, pieces: &[S]) -> String {
        let mut s = String::new();
        for p in pieces {
            let p = p.as_ref();
            if let Some(rest) = p.strip_prefix(WORD_START) {
                s.push(' ');
                s.push_str(rest);
            } else if self.specials.contains(p) {
                s.push(' ');
                s.push_str(p);
            } else {
                s.push_str(p);
            }
        }
        s.trim_start_matches(' ').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_size_rule_matches_fastai() {
        // fastai: res = len(cnt)//4, rounded up to a multiple of 8, max(res, 29); 30000 once
        // len(cnt)//4 > 30000.
        assert_eq!(fastai_vocab_size(0), 29);
        assert_eq!(fastai_vocab_size(100), 32); // 25 -> 32
        assert_eq!(fastai_vocab_size(128), 32); // 32
        assert_eq!(fastai_vocab_size(1000), 256); // 250 -> 256
        assert_eq!(fastai_vocab_size(4003), 1000); // 1000
        assert_eq!(fastai_vocab_size(4004), 1008); // 1001 -> 1008
        assert_eq!(fastai_vocab_size(119_999), 30000); // 29999 -> 30000
        assert_eq!(fastai_vocab_size(120_003), 30000); // 30000
        assert_eq!(fastai_vocab_size(120_004), 30000); // 30001 > 30000
        assert_eq!(fastai_vocab_size(10_000_000), 30000);
    }

    fn corpus() -> WordCounts {
        let mut c = WordCounts::default();
        let tk = crate::fastai::Tokenizer::new();
        for t in [
            "Whan that Aprille with his shoures soote, the droghte of March hath perced to the roote.",
            "And bathed every veyne in swich licour, of which vertu engendred is the flour.",
            "WHAT a GREAT movie!!! The best movie, the best actors, the best story.",
            "Thanne longen folk to goon on pilgrimages, and palmeres for to seken straunge strondes.",
        ] {
            c.add_text(&tk.apply_rules(t));
        }
        c
    }

    fn specials() -> Vec<String> {
        FASTAI_SPECIALS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn specials_whole_and_round_trip() {
        let tk = crate::fastai::Tokenizer::new();
        for kind in [SubwordKind::Unigram, SubwordKind::Bpe] {
            let sw = Subword::new(train(&corpus(), kind, 120, &specials()).unwrap()).unwrap();
            let ruled =
                tk.apply_rules("WHAT a GREAT movie!!! Whan that Aprille with his shoures soote");
            let p = sw.tokenize(&ruled).unwrap();
            for s in ["xxbos", "xxup", "xxrep", "xxmaj"] {
                assert!(p.iter().any(|x| x == s), "{kind:?}: {s} not whole in {p:?}");
            }
            assert!(p.iter().all(|x| !x.starts_with("▁xx")), "{kind:?}: {p:?}");
            assert!(p.iter().any(|x| x.starts_with(WORD_START)));
            let norm: Vec<&str> = ruled.split_whitespace().collect();
            assert_eq!(sw.join(&p), norm.join(" "), "{kind:?}");
        }
    }

    #[test]
    fn training_is_deterministic() {
        for kind in [SubwordKind::Unigram, SubwordKind::Bpe] {
            let a = Subword::to_json(&train(&corpus(), kind, 100, &specials()).unwrap()).unwrap();
            let b = Subword::to_json(&train(&corpus(), kind, 100, &specials()).unwrap()).unwrap();
            assert_eq!(a, b, "{kind:?}");
        }
    }

    #[test]
    fn empty_input_is_an_error() {
        let e = train(
            &WordCounts::default(),
            SubwordKind::Unigram,
            100,
            &specials(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
