//! Parsing token-stream chunks into documents, in parallel, with errors that name the line.

use std::borrow::Cow;
use std::io::Read;
use std::sync::mpsc;

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use serde_json::Value;
use shared::input::{Chunk, Chunker, Input};
use shared::shards::Dtype;
use shared::stream::{self, StreamFormat, TokenSink};
use shared::vocab::Vocab;

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
    stream::TokenDoc {
        tokens: doc
            .tokens
            .into_iter()
            .map(|t| Cow::Owned(t.into_owned()))
            .collect(),
        fields: doc.fields,
    }
}

/// Line `n` of `name` as text: invalid UTF-8 is an error naming the line (or, with `lossy`,
/// replaced); a NUL byte is always an error.
fn line_text<'a>(name: &str, n: u64, line: &'a [u8], lossy: bool) -> Result<Cow<'a, str>> {
    match stream::check_text(line) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(msg) if lossy && !msg.starts_with("NUL") => {
            Ok(Cow::Owned(String::from_utf8_lossy(line).into_owned()))
        }
        Err(msg) => bail!(
            "{name}: line {n}: {msg}{}",
            if lossy {
                ""
            } else {
                " (use --lossy to replace invalid UTF-8)"
            }
        ),
    }
}

fn parse_line<'a>(
    name: &str,
    n: u64,
    line: &'a [u8],
    format: StreamFormat,
    lossy: bool,
) -> Result<Option<Doc<'a>>> {
    let text = line_text(name, n, line, lossy)?;
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
    Ok(Some(Doc {
        line: n,
        tokens: doc.tokens,
        fields: doc.fields,
    }))
}

/// Parses every line of a chunk, in parallel, in order.
pub fn parse_chunk<'a>(
    name: &str,
    chunk: &'a Chunk,
    format: StreamFormat,
    lossy: bool,
) -> Result<Vec<Doc<'a>>> {
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

/// One document of an [`EncodedBlock`].
pub struct EncodedDoc {
    pub line: u64,
    /// Number of tokens.
    pub len: u32,
    pub fields: Vec<(String, Value)>,
}

/// Consecutive documents of a chunk with their final ids, encoded little-endian in the shard
/// set's dtype and back to back in `ids`: ready to be appended to the shard files.
pub struct EncodedBlock {
    pub ids: Vec<u8>,
    pub docs: Vec<EncodedDoc>,
    /// Tokens not in the vocab (mapped to xxunk).
    pub unk: u64,
}

/// Looks tokens up in the vocab and appends their ids (u16 or u32, little-endian) to `out`.
struct VocabSink<'a, const WIDE: bool> {
    vocab: &'a Vocab,
    unk_id: u32,
    out: &'a mut Vec<u8>,
    line_start: usize,
    misses: u64,
    line_misses: u64,
}

impl<const WIDE: bool> TokenSink for VocabSink<'_, WIDE> {
    #[inline]
    fn token(&mut self, t: &str) {
        let id = self.vocab.get(t);
        self.push(id);
    }
    #[inline]
    fn token_word(&mut self, t: &str, word: u64) {
        let id = self.vocab.get_word(t, word);
        self.push(id);
    }
    fn restart(&mut self) {
        self.out.truncate(self.line_start);
        self.line_misses = 0;
    }
}

impl<const WIDE: bool> VocabSink<'_, WIDE> {
    #[inline]
    fn push(&mut self, id: Option<u32>) {
        let id = match id {
            Some(id) => id,
            None => {
                self.line_misses += 1;
                self.unk_id
            }
        };
        if WIDE {
            self.out.extend_from_slice(&id.to_le_bytes());
        } else {
            self.out.extend_from_slice(&(id as u16).to_le_bytes());
        }
    }
}

/// Encodes one line into `sink.out`; None for a blank JSON line (no document).
fn encode_line<const WIDE: bool>(
    name: &str,
    n: u64,
    line: &[u8],
    format: StreamFormat,
    lossy: bool,
    sink: &mut VocabSink<'_, WIDE>,
) -> Result<Option<EncodedDoc>> {
    let text = line_text(name, n, line, lossy)?;
    sink.line_start = sink.out.len();
    sink.line_misses = 0;
    let fields = match format {
        StreamFormat::Jsonl => {
            if text.trim().is_empty() {
                return Ok(None); // blank lines carry no document in JSON lines
            }
            stream::visit_json_str(&text, sink)
                .map_err(|e| anyhow!("{name}: line {n}: invalid token-stream JSON: {e}"))?
        }
        _ => {
            stream::visit_text_line(&text, sink);
            Vec::new()
        }
    };
    sink.misses += sink.line_misses;
    let elem = if WIDE { 4 } else { 2 };
    let len = u32::try_from((sink.out.len() - sink.line_start) / elem)
        .map_err(|_| anyhow!("{name}: line {n}: document too long"))?;
    Ok(Some(EncodedDoc {
        line: n,
        len,
        fields,
    }))
}

/// Bytes of input per parallel task of [`encode_chunk`].
const PIECE_BYTES: usize = 64 << 10;

/// Parses a chunk and maps every token through `vocab`, in parallel pieces of whole lines;
/// the blocks come back in input order. The error is the first bad line's.
pub fn encode_chunk(
    name: &str,
    chunk: &Chunk,
    format: StreamFormat,
    lossy: bool,
    vocab: &Vocab,
    dtype: Dtype,
) -> Result<Vec<EncodedBlock>> {
    let data = &chunk.data[..];
    // Pieces end just after a newline (or at the end of the chunk).
    let mut pieces: Vec<(usize, usize)> = Vec::with_capacity(data.len() / PIECE_BYTES + 1);
    let mut start = 0;
    while start < data.len() {
        let end = match data.get(start + PIECE_BYTES..) {
            Some(rest) => {
                memchr::memchr(b'\n', rest).map_or(data.len(), |i| start + PIECE_BYTES + i + 1)
            }
            None => data.len(),
        };
        pieces.push((start, end));
        start = end;
    }
    // Line numbers: each piece's first line follows from the newlines before it.
    let newlines: Vec<u64> = pieces
        .par_iter()
        .map(|&(s, e)| memchr::memchr_iter(b'\n', &data[s..e]).count() as u64)
        .collect();
    let mut first = Vec::with_capacity(pieces.len());
    let mut n = chunk.first_line;
    for k in &newlines {
        first.push(n);
        n += k;
    }
    let results: Vec<Result<EncodedBlock>> = pieces
        .par_iter()
        .zip(first)
        .map(|(&(s, e), first_line)| match dtype {
            Dtype::U16 => {
                encode_piece::<false>(name, &data[s..e], first_line, format, lossy, vocab)
            }
            Dtype::U32 => encode_piece::<true>(name, &data[s..e], first_line, format, lossy, vocab),
        })
        .collect();
    results.into_iter().collect()
}

fn encode_piece<const WIDE: bool>(
    name: &str,
    data: &[u8],
    first_line: u64,
    format: StreamFormat,
    lossy: bool,
    vocab: &Vocab,
) -> Result<EncodedBlock> {
    // An upper bound for plain tokens of JSON lines (a token takes at least 3 bytes there).
    let mut ids = Vec::with_capacity(data.len() * if WIDE { 4 } else { 2 } / 3 + 16);
    let mut docs = Vec::new();
    let mut sink = VocabSink::<WIDE> {
        vocab,
        unk_id: vocab.unk_id(),
        out: &mut ids,
        line_start: 0,
        misses: 0,
        line_misses: 0,
    };
    let mut pos = 0;
    let mut n = first_line;
    while pos < data.len() {
        let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
        let mut line = &data[pos..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if let Some(doc) = encode_line(name, n, line, format, lossy, &mut sink)? {
            docs.push(doc);
        }
        pos = end + 1;
        n += 1;
    }
    let unk = sink.misses;
    Ok(EncodedBlock { ids, docs, unk })
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
    std::thread::scope(|s| -> Result<(blake3::Hasher, u64)> {
        let (tx, rx) = mpsc::sync_channel::<std::io::Result<Chunk>>(2);
        // Used chunk buffers go back to the reader.
        let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
        let handle = s.spawn(move || {
            let mut chunker = Chunker::with_prefix(head, reader, CHUNK_BYTES);
            loop {
                while let Ok(b) = back_rx.try_recv() {
                    chunker.recycle(b);
                }
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
            let _ = back_tx.send(chunk.data);
        }
        drop(rx); // stop the reader if we bailed out early
        let (hasher, bytes) = handle
            .join()
            .map_err(|_| anyhow!("{name}: reader thread panicked"))?;
        result.map(|_| (hasher, bytes))
    })
}
