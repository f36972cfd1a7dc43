//! Reads one JSON string per line on stdin, writes its tokens as a JSON list per
//! line: `fastai_tokens fastai` (whole pipeline), `spacy` (spaCy part only) or
//! `rules` (the text after fastai's pre-rules, as a JSON string). For
//! differential testing against the Python originals.
use std::io::{BufRead, Write};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "fastai".into());
    let tk = tokenize::fastai::Tokenizer::new();
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let s: String = serde_json::from_str(&line.expect("line")).expect("json string");
        let v = match mode.as_str() {
            "spacy" => serde_json::to_string(&tk.spacy_tokens(&s)),
            "rules" => serde_json::to_string(&tk.apply_rules(&s)),
            _ => serde_json::to_string(&tk.tokenize(&s)),
        };
        writeln!(out, "{}", v.expect("json")).expect("write");
    }
}
