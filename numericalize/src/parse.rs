//! Parsing token-stream chunks into documents, in parallel, with errors that name the line.

use std::borrow::Cow;
use std::io::Read;
use std::sync::mpsc;

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use serde_json::Value;
use shared::input::{Chunk, Chunker, Input};
use shared::stream::{self, StreamFormat};

/// Chunk size for reading: big enough to amortise the parallel split, small enough to bound memory.
pub const CHUNK_BYTES: usize = 4 << 20;

/// One document of the input.
pub struct Doc<'a> {
    pub line: u64,
    pub tokens: Vec<Cow<'a, str>>,
    pub fields: Vec<(String, Value)>,
}

/// A field value as text: strings as they are, null as missing, anything else as JSON.
pub fn value_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

fn owned(doc: stream::TokenDoc<'_>) -> stream::TokenDoc<'static> {
    stream::TokenDoc { tokens: doc.tokens.into_iter().map(|t| Cow::Owned(t.into_owned())).collect(), fields: doc.fields }
}

fn parse_line<'a>(name: &str, n: u64, line: &'a [u8], format: StreamFormat, lossy: bool) -> Result<Option<Doc<'a>>> {
    let text: Cow<'a, str> = match stream::check_text(line) {
        Ok(s) => Cow::Borrowed(s),
        Err(msg) => {
            if lossy && !msg.starts_with("NUL") {
                Cow::Owned(String::from_utf8_lossy(line).into_owned())
            } else {
                bail!("{name}: line {n}: {msg}{}", if lossy { "" } else { " (use --lossy to replace invalid UTF-8)" });
            }
        }
    };
    let doc = match format {
        StreamFormat::Jsonl => {
            if text.trim().is_empty() {
                return Ok(None); // blank lines carry no document in JSON lines
            }
            let parsed = match &text {
                Cow::Borrowed(s) => stream::parse_json_str(s),
                Cow::Owned(s) => stream::parse_json_str(s).map(owned),
            };
            parsed.map_err(|e| anyhow!("{name}: line {n}: invalid token-stream JSON: {e}"))?
        }
        _ => match text {
            Cow::Borrowed(s) => stream::parse_text_line(s),
            Cow::Owned(s) => owned(stream::parse_text_line(&s)),
        },
    };
    Ok(Some(Doc { line: n, tokens: doc.tokens, fields: doc.fields }))
}

/// Parses every line of a chunk, in parallel, in order.
pub fn parse_chunk<'a>(name: &str, chunk: &'a Chunk, format: StreamFormat, lossy: bool) -> Result<Vec<Doc<'a>>> {
    parse_chunk_map(name, chunk, format, lossy, Ok)
}

/// Parses every line of a chunk and maps each document with `f`, in one parallel pass (so a
/// document's tokens are still in cache when `f` looks them up), results in input order.
pub fn parse_chunk_map<'a, T: Send>(
    name: &str,
    chunk: &'a Chunk,
    format: StreamFormat,
    lossy: bool,
    f: impl Fn(Doc<'a>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let lines: Vec<(u64, &[u8])> = chunk.lines().collect();
    let out: Vec<Option<T>> = lines
        .par_iter()
        .with_min_len(64)
        .map(|&(n, l)| parse_line(name, n, l, format, lossy)?.map(&f).transpose())
        .collect::<Result<_>>()?;
    Ok(out.into_iter().flatten().collect())
}

/// Reads `input` chunk by chunk on a reader thread (so I/O overlaps parsing) and calls `f`
/// on each chunk in order. Returns the input's BLAKE3 hasher state and bytes read.
pub fn for_each_chunk(
    input: Input,
    format: StreamFormat,
    mut f: impl FnMut(&str, &Chunk, StreamFormat) -> Result<()>,
) -> Result<(blake3::Hasher, u64)> {
    let name = input.name.clone();
    let mut reader: Box<dyn Read + Send> = input.reader;
    // Resolve `auto` from the first bytes.
    let mut head = Vec::new();
    let format = match format {
        StreamFormat::Auto => {
            let mut buf = [0u8; 4096];
            let n = loop {
                match reader.read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(anyhow!("{name}: read failed: {e}")),
                }
            };
            head.extend_from_slice(&buf[..n]);
            stream::sniff(&mut &head[..])?
        }
        f => f,
    };
    let reader: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head).chain(reader));
    std::thread::scope(|s| -> Result<(blake3::Hasher, u64)> {
        let (tx, rx) = mpsc::sync_channel::<std::io::Result<Chunk>>(2);
        let handle = s.spawn(move || {
            let mut chunker = Chunker::new(reader, CHUNK_BYTES);
            loop {
                match chunker.next_chunk() {
                    Ok(Some(c)) => {
                        if tx.send(Ok(c)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
            (chunker.hasher, chunker.bytes_read)
        });
        let mut result = Ok(());
        for chunk in rx.iter() {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    result = Err(anyhow!("{name}: read failed: {e}"));
                    break;
                }
            };
            if let Err(e) = f(&name, &chunk, format) {
                result = Err(e);
                break;
            }
        }
        drop(rx); // stop the reader if we bailed out early
        let (hasher, bytes) = handle.join().map_err(|_| anyhow!("{name}: reader thread panicked"))?;
        result.map(|_| (hasher, bytes))
    })
}
