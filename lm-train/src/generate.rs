//! `lm-train generate`: fastai's `LMLearner.predict(text, n_words, temperature=...)`.
//!
//! The prompt is tokenized as fastai does (with `xxbos`), run through the model (eval mode),
//! then `n_words` tokens are sampled one at a time: probabilities of the last position,
//! `xxunk` set to 0 (fastai's `no_unk=True`), raised to `1/temperature`, one
//! `torch.multinomial` draw. The result (prompt and continuation) is decoded as fastai's
//! `decode_spec_tokens` (undoing `xxmaj`, `xxup`, `xxrep`, `xxwrep`), dropping `xxbos` and
//! `xxpad`, and joined with spaces as fastai does; `--tidy` also removes the space before
//! punctuation and contractions for reading.

use anyhow::{bail, Result};
use shared::cli::CommonArgs;
use shared::vocab::{Vocab, BOS, PAD, TK_MAJ, TK_REP, TK_UP, TK_WREP};
use tch::{Kind, Tensor};

use crate::args::GenerateArgs;
use crate::checkpoint::Checkpoint;
use crate::config::Precision;
use crate::model::LanguageModel;
use crate::runtime;

/// Token ids of the prompt followed by `n_words` sampled ids.
pub fn generate_ids(
    model: &LanguageModel,
    vocab: &Vocab,
    prompt: &[u32],
    n_words: usize,
    temperature: f64,
    seed: u64,
    no_unk: bool,
) -> Vec<u32> {
    let _g = tch::no_grad_guard();
    let device = model.device();
    tch::manual_seed(seed as i64);
    let mut ids = prompt.to_vec();
    if ids.is_empty() {
        ids.push(vocab.get(BOS).unwrap_or(0));
    }
    let mut hidden = model.encoder.zero_hidden(1, device, Kind::Float);
    let inp: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let mut x = Tensor::from_slice(&inp).view([1, -1]).to_device(device);
    let unk = vocab.unk_id() as i64;
    for _ in 0..n_words {
        let out = model.forward(&x, &hidden, false, Precision::Fp32);
        hidden = out.hidden;
        let last = out.logits.select(1, -1).select(0, 0);
        let mut probs = last.softmax(-1, Kind::Float);
        if no_unk {
            let _ = probs.get(unk).fill_(0.0);
        }
        if temperature != 1.0 {
            probs = probs.pow_tensor_scalar(1.0 / temperature);
        }
        let next = probs.multinomial(1, false).int64_value(&[0]);
        ids.push(next as u32);
        x = Tensor::from_slice(&[next]).view([1, 1]).to_device(device);
    }
    ids
}

/// fastai's `decode_spec_tokens`, except that the rule is reset after `xxrep`/`xxwrep` (fastai
/// forgets to) and a token where a count was expected is kept (fastai drops it).
pub fn decode_spec_tokens(tokens: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut rule: Option<&str> = None;
    let mut arg: Option<usize> = None;
    for &t in tokens {
        if [TK_MAJ, TK_UP, TK_REP, TK_WREP].contains(&t) {
            rule = Some(t);
            continue;
        }
        match rule {
            None => out.push(t.to_string()),
            Some(TK_MAJ) => {
                let mut c = t.chars();
                let s = match c.next() {
                    Some(f) => f
                        .to_uppercase()
                        .chain(c.flat_map(char::to_lowercase))
                        .collect(),
                    None => String::new(),
                };
                out.push(s);
                rule = None;
            }
            Some(TK_UP) => {
                out.push(t.to_uppercase());
                rule = None;
            }
            Some(r) => match arg {
                None => match t.parse::<usize>() {
                    Ok(n) => arg = Some(n.min(1000)),
                    Err(_) => {
                        rule = None;
                        out.push(t.to_string());
                    }
                },
                Some(n) => {
                    if r == TK_REP {
                        out.push(t.repeat(n));
                    } else {
                        out.extend(std::iter::repeat(t.to_string()).take(n));
                    }
                    rule = None;
                    arg = None;
                }
            },
        }
    }
    out
}

fn no_space_before(w: &str) -> bool {
    matches!(
        w,
        "." | "," | "!" | "?" | ";" | ":" | "%" | ")" | "]" | "}" | "..." | "n't"
    ) || (w.starts_with('\'') && w.len() > 1)
}

fn no_space_after(w: &str) -> bool {
    matches!(w, "(" | "[" | "{" | "$" | "#")
}

/// Words joined with single spaces (fastai), or, with `tidy`, as running text.
pub fn join_words(words: &[String], tidy: bool) -> String {
    if !tidy {
        return words.join(" ");
    }
    let mut s = String::new();
    let mut prev: Option<&str> = None;
    for w in words {
        if let Some(p) = prev {
            if !(no_space_before(w) || no_space_after(p)) {
                s.push(' ');
            }
        }
        s.push_str(w);
        prev = Some(w);
    }
    s
}

/// Decoded text of `ids` (fastai's `predict` output).
pub fn decode(vocab: &Vocab, ids: &[u32], tidy: bool) -> String {
    let toks: Vec<&str> = ids
        .iter()
        .filter_map(|&i| vocab.token(i))
        .filter(|t| *t != BOS && *t != PAD)
        .collect();
    join_words(&decode_spec_tokens(&toks), tidy)
}

pub fn run(g: GenerateArgs, common: &CommonArgs) -> Result<i32> {
    let (_, device) = runtime::start(common.threads, &g.device)?;
    if !(g.temperature.is_finite() && g.temperature > 0.0) {
        bail!("--temperature must be positive");
    }
    let ck = Checkpoint::read(&g.ckpt)?;
    let model = LanguageModel::new(&ck.config.model, device);
    ck.load_into(&model)?;
    let mut toks = Vec::new();
    tokenize::fastai::Tokenizer::new().tokenize_into(&g.prompt, &mut toks);
    let prompt: Vec<u32> = toks.iter().map(|t| ck.vocab.id_or_unk(t)).collect();
    let ids = generate_ids(
        &model,
        &ck.vocab,
        &prompt,
        g.n_words,
        g.temperature,
        g.seed,
        !g.allow_unk,
    );
    let text = if g.tokens {
        ids.iter()
            .filter_map(|&i| ck.vocab.token(i))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        decode(&ck.vocab, &ids, g.tidy)
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> String {
        let t: Vec<&str> = s.split(' ').collect();
        decode_spec_tokens(&t).join(" ")
    }

    #[test]
    fn spec_tokens_are_undone_as_fastai() {
        assert_eq!(dec("xxmaj the cat is xxup big"), "The cat is BIG");
        assert_eq!(dec("xxrep 3 ! ok"), "!!! ok");
        assert_eq!(dec("xxwrep 2 very good"), "very very good");
        // fastai drops a token that should have been a count; we keep it
        assert_eq!(dec("xxrep x y"), "x y");
    }

    #[test]
    fn tidy_join_removes_spaces_before_punctuation() {
        let w: Vec<String> = "I did n't like it , really ( no ) ."
            .split(' ')
            .map(String::from)
            .collect();
        assert_eq!(join_words(&w, false), "I did n't like it , really ( no ) .");
        assert_eq!(join_words(&w, true), "I didn't like it, really (no).");
    }
}
