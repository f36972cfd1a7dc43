//! tokenize's rules and word splitting on arbitrary text: never a panic, and the JSON fast
//! path writes exactly what serde_json writes for the same tokens.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokenize::fastai::{rules, Scratch, Tokenizer};

static TOK: OnceLock<Tokenizer> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tok = TOK.get_or_init(Tokenizer::new);
    let tokens = tok.tokenize(&text);
    assert_eq!(
        tokens.first().map(String::as_str),
        Some("xxbos"),
        "{text:?}"
    );
    let mut sc = Scratch::default();
    let mut json = b"[".to_vec();
    let n = tok.tokenize_json_into(&text, &mut sc, &mut json);
    json.push(b']');
    let back: Vec<String> =
        serde_json::from_slice(&json).expect("tokenize_json_into writes valid JSON");
    assert_eq!(back, tokens, "{text:?}");
    assert_eq!(n, tokens.len());
    let _ = tok.apply_rules(&text);
    let _ = tok.spacy_tokens(&text);
    let _ = rules::replace_rep(&text);
    let _ = rules::replace_wrep(&text);
    let _ = rules::spec_add_spaces_rm_useless(&text);
});
