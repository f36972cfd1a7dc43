//! tokenize's document readers (CSV, TSV, JSON lines, plain lines) on arbitrary bytes: each
//! either yields documents or returns an error, never panics. The first byte picks the reader
//! and --lossy; the rest is the file.
#![no_main]

use std::io::{BufRead, Cursor};

use libfuzzer_sys::fuzz_target;
use tokenize::input::{Columns, CsvSource, JsonlSource, LinesSource, Source};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let lossy = sel & 0x10 != 0;
    let r: Box<dyn BufRead + Send> = Box::new(Cursor::new(body.to_vec()));
    let name = "fuzz".to_string();
    let two_texts = sel & 0x20 != 0;
    let cols = |text: &str, keep: &str| Columns {
        text: if two_texts {
            vec![text.into(), keep.into()]
        } else {
            vec![text.into()]
        },
        keep: vec![keep.into()],
    };
    let src: anyhow::Result<Box<dyn Source>> = match sel % 4 {
        0 => CsvSource::new(name, r, b',', cols("text", "label"), lossy)
            .map(|s| Box::new(s) as Box<dyn Source>),
        1 => CsvSource::new(name, r, b'\t', cols("text", "label"), lossy)
            .map(|s| Box::new(s) as Box<dyn Source>),
        2 => Ok(Box::new(JsonlSource::new(
            name,
            r,
            cols("text", "label"),
            lossy,
        ))),
        _ => LinesSource::new(name, r, cols("text", "line"), lossy)
            .map(|s| Box::new(s) as Box<dyn Source>),
    };
    let Ok(mut src) = src else { return };
    let mut docs = 0usize;
    while let Ok(Some(batch)) = src.next_batch(64) {
        assert!(!batch.is_empty());
        docs += batch.len();
        assert!(docs <= body.len() + 1, "more documents than bytes");
    }
});
