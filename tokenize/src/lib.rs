//! `tokenize`: documents in (CSV/TSV, JSON lines, plain text, folders), fastai's tokens out as
//! a token stream (JSON lines, see `shared::stream`).
//!
//! Documents are read in batches on one thread and tokenized in parallel with rayon; each
//! batch is written in input order before the next, so the output is byte-identical for any
//! `--threads`, and memory is bounded by a few batches however large the input.

pub mod enm;
pub mod fastai;
pub mod input;
pub mod subword;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use rayon::prelude::*;
use shared::atomic::AtomicFile;
use shared::cli::CommonArgs;
use shared::metrics::{Event, Metrics};
use shared::progress::Progress;

use crate::input::{Columns, Format, RawDoc, Source};
use crate::subword::{Subword, SubwordKind};

/// Which language rules run before fastai's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// fastai's English rules and spaCy English splitting.
    En,
    /// Middle English normalisation first (see the README), line breaks as `xxeol`.
    Enm,
}

const AFTER_HELP: &str = "\
Examples:
  tokenize texts.csv --keep label --keep is_valid > tokens.jsonl
  tokenize texts.csv --keep label --keep is_valid | numericalize -o shards/ --split-col is_valid
  tokenize aclImdb/train --keep label --keep path -o train.jsonl     # folder: label = subfolder
  tokenize reviews.tsv --text-col benefitsReview --text-col commentsReview --keep rating
  cat book.txt | tokenize --format lines
  tokenize chaucer.txt --format paragraphs --lang enm -o tokens.jsonl   # Middle English, xxeol per line
  tokenize texts.csv --subword train --model-out sp.json              # learn a unigram model (fastai's size rule)
  tokenize texts.csv --subword sp.json --keep label -o tokens.jsonl   # apply it: xxbos xxmaj ▁the ▁mo vie ...

";

#[derive(Debug, Parser)]
#[command(
    name = "tokenize",
    version,
    about = "Text → fastai tokens (xxbos, xxmaj, xxup, xxrep, ...) as a JSON-lines token stream",
    long_about = "Applies fastai v2's default text rules and spaCy-compatible English word splitting to each \
                  document and writes one JSON line per document: {\"tokens\": [...], <kept columns>}. \
                  Reads CSV/TSV with a header, JSON lines, plain text or a folder of .txt files.",
    after_help = format!("{AFTER_HELP}{}", shared::cli::EXIT_CODES_HELP)
)]
pub struct Args {
    /// Input files or folders (- or none: stdin).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Input format (auto: by extension; folders are `folder`; stdin is JSON lines if it starts with '{', else CSV).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Column holding the text (repeatable: several are joined with fastai's `xxfld N` markers).
    #[arg(long = "text-col", value_name = "COL")]
    pub text_col: Vec<String>,
    /// Column to pass through to the output unchanged (repeatable).
    #[arg(long = "keep", value_name = "COL")]
    pub keep: Vec<String>,
    /// The label column: passed through like --keep, listed first. For folders, the subfolder name.
    #[arg(long = "label-col", value_name = "COL")]
    pub label_col: Option<String>,
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    #[arg(long)]
    pub lossy: bool,
    /// Empty or whitespace-only input gives an empty token stream (exit 0) instead of an error.
    #[arg(long)]
    pub allow_empty: bool,
    /// Language rules: `en` is fastai's (the default); `enm` normalises Middle English first
    /// (þ, ȝ, ſ, u/v, i/j, manuscript abbreviations) and marks each line break with `xxeol`.
    #[arg(long, value_enum, default_value_t = Lang::En)]
    pub lang: Lang,
    /// Subword pieces after fastai's rules: `train` learns a model from the inputs (written to
    /// --model-out; no token stream), a model file applies it (special tokens stay whole).
    #[arg(long, value_name = "train|MODEL")]
    pub subword: Option<PathBuf>,
    /// With `--subword train`: where to write the model (a tokenizer.json, atomically).
    #[arg(long, value_name = "FILE")]
    pub model_out: Option<PathBuf>,
    /// With `--subword train`: the vocab size (default: fastai's rule, a quarter of the
    /// distinct words rounded up to a multiple of 8, at most 30000).
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<usize>,
    /// With `--subword train`: the model kind.
    #[arg(long, value_enum, default_value_t = SubwordKind::Unigram)]
    pub subword_kind: SubwordKind,
    /// Write the token stream here (atomically) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Write a summary metrics record (JSON lines) to FILE.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Text per parallel batch, in KiB.
    #[arg(long, default_value_t = 1024, value_name = "KIB", hide = true)]
    pub batch_kib: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    fn columns(&self) -> Columns {
        let text = if self.text_col.is_empty() {
            vec!["text".to_string()]
        } else {
            self.text_col.clone()
        };
        let mut keep: Vec<String> = Vec::new();
        for c in self.label_col.iter().chain(&self.keep) {
            if !keep.contains(c) {
                keep.push(c.clone());
            }
        }
        Columns { text, keep }
    }
}

/// Documents per parallel work item: enough to amortize the per-item costs (a
/// buffer, a thread-local look-up), few enough to balance a 1 MiB batch over the
/// threads.
const DOCS_PER_CHUNK: usize = 16;

thread_local! {
    /// Each rayon worker's reusable tokenizer buffers (kept across batches).
    static SCRATCH: std::cell::RefCell<fastai::Scratch> = std::cell::RefCell::default();
}

/// Appends one document's JSON line, `{"tokens":[...],<fields>}\n`, byte-identical to
/// `shared::stream::write_json_doc` of its tokens; returns the token count.
pub fn write_doc_line(
    tok: &fastai::Tokenizer,
    sc: &mut fastai::Scratch,
    d: &RawDoc,
    out: &mut Vec<u8>,
) -> u64 {
    out.extend_from_slice(b"{\"tokens\":[");
    let n = tok.tokenize_json_into(&d.text, sc, out);
    out.push(b']');
    for (k, v) in &d.fields {
        out.push(b',');
        shared::stream::write_json_str(out, k);
        out.push(b':');
        serde_json::to_writer(&mut *out, v).expect("writing to a Vec");
    }
    out.extend_from_slice(b"}\n");
    n as u64
}

/// Runs `line` (which appends one document's JSON line and returns its token count) over a
/// batch in parallel, `DOCS_PER_CHUNK` documents per work item with each worker's scratch
/// space; returns the lines in input order, as pieces to be written one after the other, and
/// the token count.
fn par_lines<E: Send>(
    docs: &[RawDoc],
    line: impl Fn(&mut fastai::Scratch, &RawDoc, &mut Vec<u8>) -> Result<u64, E> + Sync,
) -> Result<(Vec<Vec<u8>>, u64), E> {
    let parts: Vec<(Vec<u8>, u64)> = docs
        .par_chunks(DOCS_PER_CHUNK)
        .map(|chunk| {
            SCRATCH.with(|sc| {
                let sc = &mut sc.borrow_mut();
                // The JSON is about 1.7x the text (quotes and commas); one growth at most.
                let text: usize = chunk.iter().map(|d| d.text.len()).sum();
                let mut buf = Vec::with_capacity(text * 2 + 64 * chunk.len());
                let mut n = 0;
                for d in chunk {
                    n += line(sc, d, &mut buf)?;
                }
                Ok((buf, n))
            })
        })
        .collect::<Result<_, E>>()?;
    let n = parts.iter().map(|p| p.1).sum();
    Ok((parts.into_iter().map(|p| p.0).collect(), n))
}

/// Tokenizes one batch in parallel; returns the JSON lines in input order, as pieces
/// to be written one after the other, and the token count.
pub fn tokenize_batch_parts(tok: &fastai::Tokenizer, docs: &[RawDoc]) -> (Vec<Vec<u8>>, u64) {
    let Ok(r) = par_lines(docs, |sc, d, buf| {
        Ok::<_, std::convert::Infallible>(write_doc_line(tok, sc, d, buf))
    });
    r
}

/// Tokenizes one batch in parallel; returns the JSON lines in input order and the token count.
pub fn tokenize_batch(tok: &fastai::Tokenizer, docs: &[RawDoc]) -> (Vec<u8>, u64) {
    let (parts, n) = tokenize_batch_parts(tok, docs);
    (parts.concat(), n)
}

/// What runs on each document: `--lang enm`'s normalisation (optional), fastai's rules and
/// word splitting, or fastai's rules and subword pieces (`--subword MODEL`).
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub tok: fastai::Tokenizer,
    pub lang: Lang,
    pub subword: Option<Subword>,
}

impl Pipeline {
    pub fn new(lang: Lang, subword: Option<Subword>) -> Self {
        let tok = match lang {
            Lang::En => fastai::Tokenizer::new(),
            Lang::Enm => fastai::Tokenizer::middle_english(),
        };
        Pipeline { tok, lang, subword }
    }

    /// The special tokens a subword model trained for `lang` keeps whole: fastai's, plus
    /// `xxeol` for `enm`.
    pub fn specials(lang: Lang) -> Vec<String> {
        let mut v: Vec<String> = subword::FASTAI_SPECIALS
            .iter()
            .map(|s| s.to_string())
            .collect();
        if lang == Lang::Enm {
            v.push(enm::EOL.to_string());
        }
        v
    }

    /// The text fastai's rules see.
    pub fn source_text<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match self.lang {
            Lang::En => std::borrow::Cow::Borrowed(text),
            Lang::Enm => std::borrow::Cow::Owned(enm::normalize(text)),
        }
    }

    /// The text after the language rules and fastai's rules (what a subword model cuts).
    pub fn ruled(&self, text: &str) -> String {
        self.tok.apply_rules(&self.source_text(text))
    }

    /// The tokens of one document.
    pub fn tokenize(&self, text: &str) -> Result<Vec<String>> {
        match &self.subword {
            Some(sw) => sw.tokenize(&self.ruled(text)),
            None => Ok(self.tok.tokenize(&self.source_text(text))),
        }
    }

    /// Appends one document's JSON line (as [`write_doc_line`]); returns the token count.
    pub fn write_doc_line(
        &self,
        sc: &mut fastai::Scratch,
        d: &RawDoc,
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        match (&self.subword, self.lang) {
            (None, Lang::En) => Ok(write_doc_line(&self.tok, sc, d, out)),
            (None, Lang::Enm) => {
                let doc = RawDoc {
                    text: enm::normalize(&d.text),
                    fields: Vec::new(),
                };
                // `{"tokens":[...]}\n` without fields; the line's own fields replace the "}\n".
                let n = write_doc_line(&self.tok, sc, &doc, out);
                out.truncate(out.len() - 2);
                write_fields(d, out);
                Ok(n)
            }
            (Some(sw), _) => {
                out.extend_from_slice(b"{\"tokens\":[");
                let mut first = true;
                let n = sw.pieces(&self.ruled(&d.text), |p| {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    shared::stream::write_json_str(out, p);
                })?;
                out.push(b']');
                write_fields(d, out);
                Ok(n as u64)
            }
        }
    }

    /// Tokenizes one batch in parallel; the JSON lines in input order and the token count.
    pub fn batch_parts(&self, docs: &[RawDoc]) -> Result<(Vec<Vec<u8>>, u64)> {
        par_lines(docs, |sc, d, buf| self.write_doc_line(sc, d, buf))
    }
}

/// Appends `,"field":value...}\n` (the kept columns and the end of the line).
fn write_fields(d: &RawDoc, out: &mut Vec<u8>) {
    for (k, v) in &d.fields {
        out.push(b',');
        shared::stream::write_json_str(out, k);
        out.push(b':');
        serde_json::to_writer(&mut *out, v).expect("writing to a Vec");
    }
    out.extend_from_slice(b"}\n");
}

/// `--subword train`: counts the ruled words of every input, trains, writes the model.
fn run_train(
    args: &Args,
    sources: Vec<Box<dyn Source>>,
    start: Instant,
    threads: usize,
) -> Result<i32> {
    let model_out = args.model_out.as_ref().expect("checked by run");
    // Fail on an existing file before reading anything.
    let out = AtomicFile::create(model_out, args.force)?;
    let mut metrics = match &args.metrics {
        Some(p) => Metrics::file("tokenize", p)?,
        None => Metrics::none("tokenize"),
    };
    let pipe = Pipeline::new(args.lang, None);
    let max_bytes = args.batch_kib.max(1) * 1024;
    let mut counts = subword::WordCounts::default();
    let (mut n_docs, mut n_bytes) = (0u64, 0u64);
    let mode = args.common.progress.resolve(args.common.quiet);
    let mut progress = Progress::new(mode, "tokenize", "docs", None);
    for mut src in sources {
        while let Some(batch) = src.next_batch(max_bytes)? {
            let ruled: Vec<String> = batch.par_iter().map(|d| pipe.ruled(&d.text)).collect();
            for r in &ruled {
                counts.add_text(r);
            }
            n_docs += batch.len() as u64;
            n_bytes += batch.iter().map(|d| d.text.len() as u64).sum::<u64>();
            progress.inc(batch.len() as u64);
        }
    }
    progress.finish();
    let vocab_size = match args.vocab_size {
        Some(0) => bail!("--vocab-size must be at least 1"),
        Some(n) => n,
        None => subword::fastai_vocab_size(counts.unique()),
    };
    let tok = subword::train(
        &counts,
        args.subword_kind,
        vocab_size,
        &Pipeline::specials(args.lang),
    )?;
    let json = Subword::to_json(&tok)?;
    let model = Subword::new(tok)?;
    let mut out = out;
    out.write_all(json.as_bytes())
        .with_context(|| format!("{}: write failed", model_out.display()))?;
    out.commit()?;
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    if !args.common.quiet {
        eprintln!(
            "tokenize: {n_docs} docs, {} words ({} distinct) -> {:?} model, vocab size {vocab_size}{} ({} pieces), {} in {elapsed:.2}s",
            counts.total,
            counts.unique(),
            args.subword_kind,
            if args.vocab_size.is_none() { " (fastai's rule)" } else { "" },
            model.vocab_size(),
            model_out.display(),
        );
    }
    metrics
        .emit(Event::TokenizeSummary {
            docs: n_docs,
            tokens: counts.total,
            bytes: n_bytes,
            threads,
            elapsed_s: elapsed,
            docs_per_s: n_docs as f64 / elapsed,
            mb_per_s: n_bytes as f64 / 1e6 / elapsed,
            tokens_per_s: counts.total as f64 / elapsed,
        })
        .map_err(|e| anyhow!("{e:#}"))?;
    Ok(shared::cli::EXIT_OK)
}

pub fn run(args: Args) -> Result<i32> {
    let start = Instant::now();
    let threads = args.common.init_threads()?;
    let train = args.subword.as_deref() == Some(std::path::Path::new("train"));
    if !train
        && (args.model_out.is_some()
            || args.vocab_size.is_some()
            || args.subword_kind != SubwordKind::Unigram)
    {
        bail!("--model-out, --vocab-size and --subword-kind go with --subword train");
    }
    if train && args.model_out.is_none() {
        bail!("--subword train needs --model-out FILE (where to write the model)");
    }
    if train && args.output.is_some() {
        bail!("--subword train writes a model (--model-out), not a token stream; apply it with --subword MODEL");
    }
    // A bad model file fails before any output.
    let subword = match &args.subword {
        Some(p) if !train => Some(Subword::load(p)?),
        _ => None,
    };
    let mut cols = args.columns();
    let inputs = if args.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.inputs.clone()
    };
    let folder_default = args.keep.is_empty() && args.label_col.is_none();
    // Open everything first, so a bad name or column fails before any output.
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for p in &inputs {
        if p.is_dir() && folder_default && cols.keep.is_empty() {
            cols.keep.push("label".into());
        }
        sources.push(input::open_source(p, args.format, &cols, args.lossy)?);
    }
    if train {
        return run_train(&args, sources, start, threads);
    }
    let mut metrics = match &args.metrics {
        Some(p) => Metrics::file("tokenize", p)?,
        None => Metrics::none("tokenize"),
    };
    enum Out {
        Stdout(BufWriter<std::io::Stdout>),
        File(AtomicFile),
    }
    let out = match &args.output {
        Some(p) if !shared::cli::is_stdio(p) => Out::File(AtomicFile::create(p, args.force)?),
        _ => Out::Stdout(BufWriter::with_capacity(1 << 20, std::io::stdout())),
    };
    let mode = args.common.progress.resolve(args.common.quiet);
    let mut progress = Progress::new(mode, "tokenize", "docs", None);
    let max_bytes = args.batch_kib.max(1) * 1024;
    let (mut n_docs, mut n_tokens, mut n_bytes) = (0u64, 0u64, 0u64);
    // Three stages overlap: a reader thread parses the input into batches, this thread
    // tokenizes each batch on the rayon pool, and a writer thread writes the previous
    // batch meanwhile (so the workers do not wait for the output, nor it for them).
    let out = std::thread::scope(|s| -> Result<Out> {
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<RawDoc>>>(2);
        s.spawn(move || {
            for mut src in sources {
                loop {
                    match src.next_batch(max_bytes) {
                        Ok(Some(b)) => {
                            if tx.send(Ok(b)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            }
        });
        // Built while the reader parses the first batches (it takes ~15 ms: regexes).
        let pipe = Pipeline::new(args.lang, subword);
        let (wtx, wrx) = mpsc::sync_channel::<Vec<Vec<u8>>>(2);
        let writer = s.spawn(move || -> Result<Out> {
            let mut out = out;
            for parts in wrx.iter() {
                for bytes in &parts {
                    match &mut out {
                        Out::Stdout(w) => w.write_all(bytes).context("writing stdout")?,
                        Out::File(f) => f
                            .write_all(bytes)
                            .with_context(|| format!("{}: write failed", f.target().display()))?,
                    }
                }
            }
            Ok(out)
        });
        let mut result = Ok(());
        for batch in rx.iter() {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let (parts, toks) = match pipe.batch_parts(&batch) {
                Ok(x) => x,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            n_docs += batch.len() as u64;
            n_tokens += toks;
            n_bytes += batch.iter().map(|d| d.text.len() as u64).sum::<u64>();
            if wtx.send(parts).is_err() {
                break; // the writer failed: its error is reported below
            }
            progress.inc(batch.len() as u64);
        }
        drop(wtx);
        // Dropping `rx` (end of scope) stops the reader if we stopped early.
        drop(rx);
        let out = writer
            .join()
            .map_err(|_| anyhow!("the writer thread panicked"))??;
        result?;
        Ok(out)
    })?;
    if n_docs == 0 && !args.allow_empty {
        // Nothing to tokenize is almost always a mistake upstream (a wrong file, an empty
        // export): say so rather than publish an empty corpus (--allow-empty publishes it).
        bail!(
            "{}: no documents (the input is empty or only whitespace)",
            shared::cli::input_names(&inputs)
        );
    }
    let out = match out {
        Out::Stdout(mut w) => {
            w.flush().context("writing stdout")?;
            None
        }
        Out::File(f) => Some(f),
    };
    progress.finish();
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    // The summary is written before the output file is published, so a failing --metrics
    // (a full disk) leaves no output, like every other failure.
    metrics
        .emit(Event::TokenizeSummary {
            docs: n_docs,
            tokens: n_tokens,
            bytes: n_bytes,
            threads,
            elapsed_s: elapsed,
            docs_per_s: n_docs as f64 / elapsed,
            mb_per_s: n_bytes as f64 / 1e6 / elapsed,
            tokens_per_s: n_tokens as f64 / elapsed,
        })
        .map_err(|e| anyhow!("{e:#}"))?;
    if let Some(f) = out {
        f.commit()?;
    }
    if !args.common.quiet {
        eprintln!(
            "tokenize: {n_docs} docs, {n_tokens} tokens, {:.1} MB in {elapsed:.2}s ({:.1} MB/s, {threads} threads)",
            n_bytes as f64 / 1e6,
            n_bytes as f64 / 1e6 / elapsed
        );
    }
    Ok(shared::cli::EXIT_OK)
}
