//! The token-stream readers that numericalize uses, on arbitrary bytes:
//! - `shared::stream`: the JSON-lines scanner (fast path, SWAR, plain fields) gives exactly
//!   serde_json's tokens and fields, or serde_json's error; plain-text lines split as documented;
//! - `shared::input::Chunker`: chunks of any size give back exactly the input's lines.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::input::Chunker;
use shared::stream::{self, TokenDoc, TokenSink};

#[derive(Default)]
struct Collect(Vec<String>);

impl TokenSink for Collect {
    fn token(&mut self, t: &str) {
        self.0.push(t.to_string());
    }
    fn token_word(&mut self, t: &str, word: u64) {
        assert!(t.len() <= 8);
        assert_eq!(word, shared::tokmap::word8(t.as_bytes()));
        self.token(t)
    }
    fn restart(&mut self) {
        self.0.clear();
    }
}

fn check_json_line(line: &str) {
    let serde = serde_json::from_str::<TokenDoc>(line);
    let mut sink = Collect::default();
    let visited = stream::visit_json_str(line, &mut sink);
    match (&visited, &serde) {
        (Ok(fields), Ok(doc)) => {
            assert_eq!(sink.0, doc.tokens, "{line:?}");
            assert_eq!(fields, &doc.fields, "{line:?}");
        }
        (Err(e), Err(se)) => assert_eq!(e, &stream::json_error(se), "{line:?}"),
        _ => panic!("{line:?}: visitor {visited:?} vs serde_json {serde:?}"),
    }
    match (stream::parse_json_str(line), serde) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{line:?}"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("{line:?}: parse_json_str {a:?} vs serde_json {b:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    // Lines as numericalize reads them.
    let _ = stream::parse_json_line(body);
    let _ = stream::check_text(body);
    if let Ok(s) = std::str::from_utf8(body) {
        check_json_line(s);
        // Most inputs are not token streams at all: also try them inside one.
        let wrapped = format!("{{\"tokens\":[\"{}\"],\"label\":\"pos\"}}", s);
        check_json_line(&wrapped);
        let doc = stream::parse_text_line(s);
        let mut sink = Collect::default();
        stream::visit_text_line(s, &mut sink);
        assert_eq!(
            sink.0,
            doc.tokens.iter().map(Cow::to_string).collect::<Vec<_>>()
        );
        assert!(doc
            .tokens
            .iter()
            .all(|t| !t.is_empty() && !t.bytes().any(|b| b.is_ascii_whitespace())));
        let _: Vec<(String, Value)> = doc.fields;
    }
    // Chunker: any chunk size gives back the lines of a plain split.
    let target = 1 + (sel as usize % 64);
    let mut c = Chunker::new(body, target);
    let mut got: Vec<(u64, Vec<u8>)> = Vec::new();
    while let Some(ch) = c.next_chunk().expect("reading from memory") {
        got.extend(ch.lines().map(|(n, l)| (n, l.to_vec())));
    }
    let mut want: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if body.last() == Some(&b'\n') || body.is_empty() {
        want.pop();
    }
    let want: Vec<(u64, Vec<u8>)> = want
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix(b"\r").unwrap_or(l).to_vec()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(c.bytes_read, body.len() as u64);
    assert_eq!(c.hasher.finalize(), blake3::hash(body));
});
