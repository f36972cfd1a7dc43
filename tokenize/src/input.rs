//! Document sources: CSV/TSV with a header, JSON lines, plain text (a document per line or a
//! whole file per document), and folders of `.txt` files labelled by their subfolder (the
//! aclImdb layout). All yield [`RawDoc`]s in input order, in batches, streaming.
//!
//! One flag vocabulary for every format: `--text-col` (repeatable; several columns are joined
//! with fastai's `xxfld N` markers), `--keep COL` (repeatable passthrough), `--label-col`.
//! Plain text and folders have virtual columns: `text`, `line` (line number) or `path`
//! (file path relative to the folder) and, for folders, `label` (the parent folder's name).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use shared::csvquote::QuoteTracker;
use shared::input::Chunker;

/// One document before tokenization.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDoc {
    pub text: String,
    pub fields: Vec<(String, Value)>,
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// By extension (.csv, .tsv, .jsonl/.ndjson/.json, else plain lines); a folder is `folder`;
    /// stdin is JSON lines if it starts with `{`, else CSV.
    Auto,
    Csv,
    Tsv,
    Jsonl,
    /// Plain text, one document per non-blank line.
    Lines,
    /// Plain text, one document per paragraph (lines up to a blank line; the line breaks
    /// are kept, e.g. for `--lang enm`'s `xxeol`).
    Paragraphs,
    /// Plain text, each file one document.
    Whole,
    /// A folder of .txt files, recursively; label = parent folder name.
    Folder,
}

/// Which columns make the text and which are passed through.
#[derive(Debug, Clone)]
pub struct Columns {
    pub text: Vec<String>,
    pub keep: Vec<String>,
}

impl Columns {
    /// fastai's `_join_texts`: with several text columns each is marked `xxfld N`.
    pub fn join<'a>(&self, parts: impl Iterator<Item = &'a str>) -> String {
        let mark = self.text.len() > 1;
        let mut s = String::new();
        for (i, p) in parts.enumerate() {
            if mark {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(&format!("{} {} ", shared::vocab::FLD, i + 1));
            } else if i > 0 {
                s.push(' ');
            }
            s.push_str(p);
        }
        s
    }
}

/// A source of documents.
pub trait Source: Send {
    /// Up to about `max_bytes` of text (at least one document); `None` at the end.
    fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<RawDoc>>>;
}

/// Where in the input a value came from, for error messages (formatted only on error,
/// not per record).
struct Line(u64);

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.0)
    }
}

fn utf8_error(
    name: &str,
    loc: &dyn std::fmt::Display,
    bytes: &[u8],
    lossy: bool,
) -> Result<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) if lossy => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Err(e) => bail!(
            "{name}: {loc}: invalid UTF-8 at byte {} (use --lossy to replace it)",
            e.valid_up_to()
        ),
    }
}

fn check_encoding(name: &str, head: &[u8]) -> Result<()> {
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        bail!("{name}: UTF-16 input is not supported; convert it first: iconv -f UTF-16 -t UTF-8");
    }
    Ok(())
}

fn no_nul(name: &str, loc: &dyn std::fmt::Display, s: &str) -> Result<()> {
    // `contains` is memchr: the byte-by-byte search only runs on the error path.
    if !s.as_bytes().contains(&0) {
        return Ok(());
    }
    if let Some(p) = s.bytes().position(|b| b == 0) {
        bail!("{name}: {loc}: NUL byte at byte {p} (binary input?)");
    }
    Ok(())
}

/// Opens `path` and peeks at its first bytes (for format detection and encoding checks).
pub fn open_reader(path: &Path) -> Result<(String, Box<dyn BufRead + Send>)> {
    let (name, r): (String, Box<dyn Read + Send>) = if shared::cli::is_stdio(path) {
        ("<stdin>".into(), Box::new(std::io::stdin()))
    } else {
        let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        (path.display().to_string(), Box::new(f))
    };
    let mut br: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 20, r));
    let head = br
        .fill_buf()
        .with_context(|| format!("{name}: read failed"))?;
    check_encoding(&name, head)?;
    Ok((name, br))
}

/// Resolves `auto` for one path.
pub fn detect(path: &Path, format: Format, head: &[u8]) -> Format {
    if format != Format::Auto {
        return format;
    }
    if path.is_dir() {
        return Format::Folder;
    }
    if shared::cli::is_stdio(path) {
        let first = head.iter().find(|b| !b.is_ascii_whitespace());
        return if first == Some(&b'{') {
            Format::Jsonl
        } else {
            Format::Csv
        };
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("csv") => Format::Csv,
        Some("tsv") | Some("tab") => Format::Tsv,
        Some("jsonl") | Some("ndjson") | Some("json") => Format::Jsonl,
        _ => Format::Lines,
    }
}

/// Builds the source for one input path.
pub fn open_source(
    path: &Path,
    format: Format,
    cols: &Columns,
    lossy: bool,
) -> Result<Box<dyn Source>> {
    if path.is_dir() {
        if !matches!(format, Format::Auto | Format::Folder) {
            bail!(
                "{}: is a directory; only --format folder reads directories",
                path.display()
            );
        }
        return Ok(Box::new(FolderSource::new(path, cols.clone(), lossy)?));
    }
    let (name, mut r) = open_reader(path)?;
    let head = r
        .fill_buf()
        .with_context(|| format!("{name}: read failed"))?
        .to_vec();
    let format = detect(path, format, &head);
    Ok(match format {
        Format::Csv | Format::Tsv => Box::new(CsvSource::new(
            name,
            r,
            if format == Format::Tsv { b'\t' } else { b',' },
            cols.clone(),
            lossy,
        )?),
        Format::Jsonl => Box::new(JsonlSource::new(name, r, cols.clone(), lossy)),
        Format::Lines => Box::new(LinesSource::new(name, r, cols.clone(), lossy)?),
        Format::Paragraphs => Box::new(ParagraphsSource::new(name, r, cols.clone(), lossy)?),
        Format::Whole => Box::new(WholeSource::new(
            name,
            path.to_path_buf(),
            r,
            cols.clone(),
            lossy,
        )?),
        Format::Folder => bail!("{name}: --format folder needs a directory"),
        Format::Auto => unreachable!("resolved above"),
    })
}

fn check_virtual(name: &str, cols: &Columns, have: &[&str]) -> Result<()> {
    for c in cols.text.iter().chain(&cols.keep) {
        if !have.contains(&c.as_str()) {
            bail!("{name}: no column {c:?} (columns: {})", have.join(", "));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// CSV/TSV with a header row (RFC 4180: quoted fields may hold delimiters, quotes and newlines).
pub struct CsvSource {
    name: String,
    rdr: csv::Reader<QuoteTracker<Box<dyn BufRead + Send>>>,
    text_idx: Vec<usize>,
    keep_idx: Vec<(String, usize)>,
    cols: Columns,
    lossy: bool,
    record: csv::ByteRecord,
    empty: bool,
    /// Line of the last record read (for a quote left open at the end of the input).
    last_line: u64,
}

impl CsvSource {
    pub fn new(
        name: String,
        r: Box<dyn BufRead + Send>,
        delim: u8,
        cols: Columns,
        lossy: bool,
    ) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(delim)
            .has_headers(true)
            .flexible(false)
            .from_reader(QuoteTracker::new(r, delim));
        let headers = rdr.byte_headers().map_err(|e| csv_error(&name, e))?.clone();
        if headers.is_empty() {
            // An empty file has no records (`run` then reports that there are no documents).
            return Ok(CsvSource {
                name,
                rdr,
                text_idx: vec![],
                keep_idx: vec![],
                cols,
                lossy,
                record: csv::ByteRecord::new(),
                empty: true,
                last_line: 0,
            });
        }
        let mut names = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            let mut h = utf8_error(&name, &"header", h, lossy)?;
            if i == 0 {
                h = h.trim_start_matches('\u{feff}').to_string();
            }
            if names.contains(&h) {
                bail!("{name}: the header names the column {h:?} twice");
            }
            names.push(h);
        }
        let find = |c: &str| -> Result<usize> {
            names
                .iter()
                .position(|n| n == c)
                .ok_or_else(|| anyhow!("{name}: no column {c:?} (columns: {})", names.join(", ")))
        };
        let text_idx = cols
            .text
            .iter()
            .map(|c| find(c))
            .collect::<Result<Vec<_>>>()?;
        let keep_idx = cols
            .keep
            .iter()
            .map(|c| Ok((c.clone(), find(c)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(CsvSource {
            name,
            rdr,
            text_idx,
            keep_idx,
            cols,
            lossy,
            record: csv::ByteRecord::new(),
            empty: false,
            last_line: 1,
        })
    }
}

fn csv_error(name: &str, e: csv::Error) -> anyhow::Error {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => {
            let line = pos.as_ref().map(|p| p.line()).unwrap_or(0);
            anyhow!(
                "{name}: line {line}: ragged row: {len} fields where the header has {expected_len}"
            )
        }
        csv::ErrorKind::Io(err) => anyhow!("{name}: read failed: {err}"),
        _ => anyhow!("{name}: malformed CSV: {e}"),
    }
}

impl Source for CsvSource {
    fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<RawDoc>>> {
        if self.empty {
            return Ok(None);
        }
        let mut docs = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes {
            let more = self
                .rdr
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_error(&self.name, e))?;
            if !more {
                if self.rdr.get_ref().in_quotes() {
                    bail!(
                        "{}: line {}: a quoted field is not closed before the end of the input",
                        self.name,
                        self.last_line
                    );
                }
                break;
            }
            let line = self.record.position().map(|p| p.line()).unwrap_or(0);
            self.last_line = line;
            let loc = Line(line);
            let mut parts = Vec::with_capacity(self.text_idx.len());
            for &i in &self.text_idx {
                let s = utf8_error(&self.name, &loc, &self.record[i], self.lossy)?;
                no_nul(&self.name, &loc, &s)?;
                parts.push(s);
            }
            // One column is the text itself (`join` would only copy it).
            let text = if parts.len() == 1 {
                parts.pop().unwrap_or_default()
            } else {
                self.cols.join(parts.iter().map(String::as_str))
            };
            let mut fields = Vec::with_capacity(self.keep_idx.len());
            for (k, i) in &self.keep_idx {
                fields.push((
                    k.clone(),
                    Value::String(utf8_error(&self.name, &loc, &self.record[*i], self.lossy)?),
                ));
            }
            bytes += text.len();
            docs.push(RawDoc { text, fields });
        }
        Ok(if docs.is_empty() { None } else { Some(docs) })
    }
}

// ---------------------------------------------------------------------------------------------

/// JSON lines: one object per line; text and kept columns are its keys.
pub struct JsonlSource {
    name: String,
    chunker: Chunker<Box<dyn BufRead + Send>>,
    cols: Columns,
    lossy: bool,
}

impl JsonlSource {
    pub fn new(name: String, r: Box<dyn BufRead + Send>, cols: Columns, lossy: bool) -> Self {
        JsonlSource {
            name,
            chunker: Chunker::new(r, 1 << 20),
            cols,
            lossy,
        }
    }
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Source for JsonlSource {
    fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<RawDoc>>> {
        let mut docs = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes {
            let Some(chunk) = self
                .chunker
                .next_chunk()
                .with_context(|| format!("{}: read failed", self.name))?
            else {
                break;
            };
            for (n, line) in chunk.lines() {
                let loc = Line(n);
                let s = utf8_error(&self.name, &loc, line, self.lossy)?;
                if s.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Map<String, Value> = serde_json::from_str(&s).map_err(|e| {
                    anyhow!(
                        "{}: {loc}: invalid JSON: {}",
                        self.name,
                        shared::stream::json_error(&e)
                    )
                })?;
                let mut parts = Vec::with_capacity(self.cols.text.len());
                for c in &self.cols.text {
                    let t = v.get(c).ok_or_else(|| {
                        let keys: Vec<&str> = v.keys().map(String::as_str).collect();
                        anyhow!(
                            "{}: {loc}: no field {c:?} (fields: {})",
                            self.name,
                            keys.join(", ")
                        )
                    })?;
                    let t = json_text(t);
                    no_nul(&self.name, &loc, &t)?;
                    parts.push(t);
                }
                let text = self.cols.join(parts.iter().map(String::as_str));
                let fields = self
                    .cols
                    .keep
                    .iter()
                    .map(|k| (k.clone(), v.get(k).cloned().unwrap_or(Value::Null)))
                    .collect();
                bytes += text.len();
                docs.push(RawDoc { text, fields });
            }
        }
        Ok(if docs.is_empty() { None } else { Some(docs) })
    }
}

// ---------------------------------------------------------------------------------------------

/// Plain text, one document per non-blank line. Virtual columns: `text`, `line`.
pub struct LinesSource {
    name: String,
    chunker: Chunker<Box<dyn BufRead + Send>>,
    cols: Columns,
    lossy: bool,
}

impl LinesSource {
    pub fn new(
        name: String,
        r: Box<dyn BufRead + Send>,
        cols: Columns,
        lossy: bool,
    ) -> Result<Self> {
        check_virtual(&name, &cols, &["text", "line"])?;
        Ok(LinesSource {
            name,
            chunker: Chunker::new(r, 1 << 20),
            cols,
            lossy,
        })
    }
}

fn virtual_fields(cols: &Columns, get: impl Fn(&str) -> Value) -> Vec<(String, Value)> {
    cols.keep.iter().map(|k| (k.clone(), get(k))).collect()
}

impl Source for LinesSource {
    fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<RawDoc>>> {
        let mut docs = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes {
            let Some(chunk) = self
                .chunker
                .next_chunk()
                .with_context(|| format!("{}: read failed", self.name))?
            else {
                break;
            };
            for (n, line) in chunk.lines() {
                let loc = Line(n);
                let s = utf8_error(&self.name, &loc, line, self.lossy)?;
                no_nul(&self.name, &loc, &s)?;
                if s.trim().is_empty() {
                    continue;
                }
                let fields = virtual_fields(&self.cols, |k| {
                    if k == "line" {
                        Value::from(n)
                    } else {
                        Value::String(s.clone())
                    }
                });
                bytes += s.len();
                docs.push(RawDoc { text: s, fields });
            }
        }
        Ok(if docs.is_empty() { None } else { Some(docs) })
    }
}

// ---------------------------------------------------------------------------------------------

/// Plain text, one document per paragraph: non-blank lines up to a blank line, joined with
/// `\n`. Virtual columns: `text`, `line` (the paragraph's first line).
pub struct ParagraphsSource {
    name: String,
    chunker: Chunker<Box<dyn BufRead + Send>>,
    cols: Columns,
    lossy: bool,
    /// The paragraph being read (it may continue in the next chunk) and its first line.
    pending: Option<(u64, String)>,
    done: bool,
}

impl ParagraphsSource {
    pub fn new(
        name: String,
        r: Box<dyn BufRead + Send>,
        cols: Columns,
        lossy: bool,
    ) -> Result<Self> {
        check_virtual(&name, &cols, &["text", "line"])?;
        Ok(ParagraphsSource {
            name,
            chunker: Chunker::new(r, 1 << 20),
            cols,
            lossy,
            pending: None,
            done: false,
        })
    }

    fn finish(&self, (n, text): (u64, String), docs: &mut Vec<RawDoc>) -> usize {
        let fields = virtual_fields(&self.cols, |k| {
            if k == "line" {
                Value::from(n)
            } else {
                Value::String(text.clone())
            }
        });
        let len = text.len();
        docs.push(RawDoc { text, fields });
        len
    }
}

impl Source for ParagraphsSource {
    fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<RawDoc>>> {
        let mut docs = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes && !self.done {
            let Some(chunk) = self
                .chunker
                .next_chunk()
                .with_context(|| format!("{}: read failed", self.name))?
            else {
                self.done = true;
                if let Some(p) = self.pending.take() {
                    self.finish(p, &mut docs);
                }
                break;
            };
            for (n, line) in chunk.lines() {
                let loc = Line(n);
                let s = utf8_error(&self.name, &loc, line, self.lossy)?;
                no_nul(&self.name, &loc, &s)?;
                if s.trim().is_empty() {
                    if let Some(p) = self.pending.take() {
                        bytes += self.finish(p, &mut docs);
                    }
                    continue;
                }
                match &mut self.pending {
                    Some((_, text)) => {
                        text.push('\n');
                        text.push_str(&s);
                    }
                    None => self.pending = Some((n, s)),
                }
            }
        }
        Ok(if docs.is_empty() { None } else { Some(docs) })
    }
}

// ---------------------------------------------------------------------------------------------

/// A whole file as one document. Virtual columns: `text`, `path`.
pub struct WholeSource {
    doc: Option<RawDoc>,
}

impl WholeSource {
    pub fn new(
        name: String,
        path: PathBuf,
        mut r: Box<dyn BufRead + Send>,
        cols: Columns,
        lossy: bool,
    ) -> Result<Self> {
        check_virtual(&name, &cols, &["text", "path"])?;
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)
            .with_context(|| format!("{name}: read failed"))?;
        let text = utf8_error(&name, &"file", &bytes, lossy)?;
        no_nul(&name, &"file", &text)?;
        let fields = virtual_fields(&cols, |k| {
            if k == "path" {
                Value::String(path.display().to_string())
            } else {
                Value::String(text.clone())
            }
        });
        Ok(WholeSource {
            doc: Some(RawDoc { text, fields }),
        })
    }
}

impl Source for WholeSource {
    fn next_batch(&mut self, _max_bytes: usize) -> Result<Option<Vec<RawDoc>>> {
        Ok(self.doc.take().map(|d| vec![d]))
    }
}

// ---------------------------------------------------------------------------------------------

/// A folder of `.txt` files, recursively, in sorted path order. Virtual columns: `text`,
/// `label` (the name of the folder holding the file), `path` (relative to the root).
pub struct FolderSource {
    root: PathBuf,
    files: std::vec::IntoIter<PathBuf>,
    cols: Columns,
    lossy: bool,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("{}: cannot list", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&p, out)?;
        } else if p.extension().and_then(|x| x.to_str()) == Some("txt") {
            out.push(p);
        }
    }
    Ok(())
}

impl FolderSource {
    pub fn new(root: &Path, cols: Columns, lossy: bool) -> Result<Self> {
        let name = root.display().to_string();
        check_virtual(&name, &cols, &["text", "label", "path"])?;
        let mut files = Vec::new();
        walk(root, &mut files)?;
        Ok(FolderSource {
            root: root.to_path_buf(),
            files: files.into_iter(),
            cols,
            lossy,
        })
    }
}

impl Source for FolderSource {
    fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<RawDoc>>> {
        let mut docs = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes {
            let Some(p) = self.files.next() else { break };
            let name = p.display().to_string();
            let raw = std::fs::read(&p).with_context(|| format!("{name}: cannot read"))?;
            check_encoding(&name, &raw)?;
            let text = utf8_error(&name, &"file", &raw, self.lossy)?;
            no_nul(&name, &"file", &text)?;
            let rel = p.strip_prefix(&self.root).unwrap_or(&p);
            let label = rel
                .parent()
                .and_then(|d| d.file_name())
                .map(|s| s.to_string_lossy().into_owned());
            let fields = virtual_fields(&self.cols, |k| match k {
                "label" => label.clone().map(Value::String).unwrap_or(Value::Null),
                "path" => Value::String(rel.display().to_string()),
                _ => Value::String(text.clone()),
            });
            bytes += text.len();
            docs.push(RawDoc { text, fields });
        }
        Ok(if docs.is_empty() { None } else { Some(docs) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(text: &[&str], keep: &[&str]) -> Columns {
        Columns {
            text: text.iter().map(|s| s.to_string()).collect(),
            keep: keep.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn all(mut s: Box<dyn Source>) -> Result<Vec<RawDoc>> {
        let mut v = Vec::new();
        while let Some(b) = s.next_batch(10)? {
            v.extend(b);
        }
        Ok(v)
    }

    fn csv_src(data: &'static [u8], c: Columns) -> Result<Box<dyn Source>> {
        Ok(Box::new(CsvSource::new(
            "t.csv".into(),
            Box::new(data),
            b',',
            c,
            false,
        )?))
    }

    #[test]
    fn csv_with_quoted_newlines_and_fields() {
        let docs = all(csv_src(
            b"label,text\npos,\"a, \"\"b\"\"\nc\"\nneg,d\n",
            cols(&["text"], &["label"]),
        )
        .unwrap())
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].text, "a, \"b\"\nc");
        assert_eq!(
            docs[0].fields,
            vec![("label".to_string(), Value::from("pos"))]
        );
    }

    #[test]
    fn several_text_columns_are_marked_like_fastai() {
        let docs = all(csv_src(b"t,b\nTitle,Body\n", cols(&["t", "b"], &[])).unwrap()).unwrap();
        assert_eq!(docs[0].text, "xxfld 1 Title xxfld 2 Body");
    }

    #[test]
    fn csv_errors_name_the_problem() {
        let e = csv_src(b"a,b\n1,2\n", cols(&["text"], &[]))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(e, "t.csv: no column \"text\" (columns: a, b)");
        let e = all(csv_src(b"text,b\n1,2\n3\n", cols(&["text"], &[])).unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "t.csv: line 3: ragged row: 1 fields where the header has 2"
        );
        let e = all(csv_src(b"text\n\"ab\xffc\"\n", cols(&["text"], &[])).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.csv: line 2: invalid UTF-8 at byte 2"),
            "{e}"
        );
        let e = csv_src(b"text,text\n1,2\n", cols(&["text"], &[]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        let e = all(csv_src(b"text\n\"a\0b\"\n", cols(&["text"], &[])).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2: NUL byte"), "{e}");
    }

    #[test]
    fn jsonl_and_lines() {
        let s = JsonlSource::new(
            "t.jsonl".into(),
            Box::new(&b"{\"text\":\"hi\",\"y\":1}\n\n{\"text\":\"yo\"}\n"[..]),
            cols(&["text"], &["y"]),
            false,
        );
        let docs = all(Box::new(s)).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].fields[0].1, Value::from(1));
        assert_eq!(docs[1].fields[0].1, Value::Null);
        let s = LinesSource::new(
            "t.txt".into(),
            Box::new(&b"one\n\n two \n"[..]),
            cols(&["text"], &["line"]),
            false,
        )
        .unwrap();
        let docs = all(Box::new(s)).unwrap();
        assert_eq!(
            docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>(),
            vec!["one", " two "]
        );
        assert_eq!(docs[1].fields[0].1, Value::from(3));
    }

    #[test]
    fn paragraphs() {
        let s = ParagraphsSource::new(
            "t.txt".into(),
            Box::new(&b"\n\none\ntwo\n \nthree\r\n\n\n\nfour\nfive"[..]),
            cols(&["text"], &["line"]),
            false,
        )
        .unwrap();
        let d = all(Box::new(s)).unwrap();
        let got: Vec<(&str, &Value)> = d
            .iter()
            .map(|d| (d.text.as_str(), &d.fields[0].1))
            .collect();
        assert_eq!(
            got,
            vec![
                ("one\ntwo", &Value::from(3)),
                ("three", &Value::from(6)),
                ("four\nfive", &Value::from(10))
            ]
        );
    }

    #[test]
    fn folder_labels_from_subfolders() {
        let d = tempfile::tempdir().unwrap();
        for (sub, f, t) in [
            ("pos", "1_9.txt", "good"),
            ("neg", "2_1.txt", "bad"),
            ("neg", "x.md", "skip"),
        ] {
            std::fs::create_dir_all(d.path().join(sub)).unwrap();
            std::fs::write(d.path().join(sub).join(f), t).unwrap();
        }
        let s = FolderSource::new(d.path(), cols(&["text"], &["label", "path"]), false).unwrap();
        let docs = all(Box::new(s)).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].text, "bad");
        assert_eq!(docs[0].fields[0].1, Value::from("neg"));
        assert_eq!(docs[1].fields[1].1, Value::from("pos/1_9.txt"));
    }

    #[test]
    fn utf16_is_refused() {
        assert!(check_encoding("f", &[0xFF, 0xFE, b'a', 0])
            .unwrap_err()
            .to_string()
            .contains("UTF-16"));
    }
}
