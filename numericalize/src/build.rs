//! The main step: token stream → vocab → split → shard set.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use ahash::AHashMap;
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use serde_json::json;
use shared::cli::CommonArgs;
use shared::input::Input;
use shared::metrics::{Event, Metrics, SplitCounts};
use shared::progress::Progress;
use shared::shards::{valid_split_name, ColumnBuilder, SealedShards, ShardSetWriter};
use shared::vocab::Vocab;

use crate::args::BuildArgs;
use crate::counts::Dict;
use crate::parse::{self, value_text, EncodedBlock};

/// Maps a split-column value to a split name, following fastai's `is_valid` convention.
pub fn split_name(value: &str) -> Option<String> {
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    let name = match lower.as_str() {
        "true" | "1" | "yes" | "valid" | "validation" | "val" | "dev" => "valid".to_string(),
        "false" | "0" | "no" | "train" | "training" => "train".to_string(),
        "test" => "test".to_string(),
        _ => v.to_string(),
    };
    valid_split_name(&name).then_some(name)
}

/// Passthrough fields collected column by column, in first-seen order.
#[derive(Default)]
struct FieldTable {
    cols: Vec<ColumnBuilder>,
    index: AHashMap<String, usize>,
    docs: usize,
}

impl FieldTable {
    fn push(&mut self, fields: &[(String, serde_json::Value)]) {
        for (k, v) in fields {
            let i = match self.index.get(k.as_str()) {
                Some(&i) => i,
                None => {
                    let mut c = ColumnBuilder::new(k.clone());
                    c.pad_to(self.docs);
                    self.cols.push(c);
                    self.index.insert(k.clone(), self.cols.len() - 1);
                    self.cols.len() - 1
                }
            };
            let col = &mut self.cols[i];
            if col.len() == self.docs {
                col.push(value_text(v).as_deref());
            }
        }
        self.docs += 1;
        for c in &mut self.cols {
            c.pad_to(self.docs);
        }
    }

    /// The split of the document just pushed, from its value of the split column `col`; the
    /// error names the line.
    fn last_split(
        &self,
        col: &str,
        name: &str,
        line: u64,
        doc_fields: &[(String, serde_json::Value)],
    ) -> Result<String> {
        let has = self
            .index
            .get(col)
            .and_then(|&i| self.cols[i].get(self.docs - 1));
        match has {
            Some(v) => match split_name(v) {
                Some(s) => Ok(s),
                None => bail!("{name}: line {line}: split column {col:?} has the value {v:?}, which is not a usable split name"),
            },
            None => {
                let have: Vec<&str> = doc_fields.iter().map(|(k, _)| k.as_str()).collect();
                bail!(
                    "{name}: line {line}: no value for the split column {col:?} (fields: {})",
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                )
            }
        }
    }
}

/// A document on its way to the spool: input line, fields, ids as little-endian u32, length.
type SpooledDoc = (u64, Vec<(String, serde_json::Value)>, Vec<u8>, u32);

/// How token ids are produced while reading.
enum Mapping {
    /// Building a vocab: provisional ids in first-seen order, remapped at the end.
    Build(Box<Dict>),
    /// Applying a given vocab: final ids at once, in parallel.
    Apply { vocab: Vocab, unk: u64 },
}

pub fn run(a: &BuildArgs, common: &CommonArgs) -> Result<()> {
    let start = Instant::now();
    let output = a
        .output
        .as_deref()
        .context("missing the output shard set: -o SHARDS")?;
    if output.exists() && !a.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            output.display()
        );
    }
    if let Some(p) = a.valid_pct {
        if !(0.0..1.0).contains(&p) {
            bail!("--valid-pct {p}: must be at least 0 and below 1");
        }
    }
    if a.max_vocab < shared::vocab::SPECIAL_TOKENS.len() {
        bail!(
            "--max-vocab {}: must be at least {} (the special tokens)",
            a.max_vocab,
            shared::vocab::SPECIAL_TOKENS.len()
        );
    }
    let mapping = match &a.vocab {
        Some(p) => Mapping::Apply {
            vocab: Vocab::load(p)?,
            unk: 0,
        },
        None => Mapping::Build(Box::default()),
    };
    let inputs = Input::open_all(&a.read.inputs)?;
    let total_bytes: Option<u64> = inputs.iter().map(|i| i.len).sum();
    let mode = common.progress.resolve(common.quiet);
    let mut progress = Progress::new(mode, "numericalize", "bytes", total_bytes);
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!(
            "{}: the directory {} does not exist",
            output.display(),
            parent.display()
        );
    }
    let (vocab_source, split_setting) = (
        match &a.vocab {
            Some(p) => json!(p.display().to_string()),
            None => json!("built"),
        },
        match (&a.split_col, a.valid_pct) {
            (Some(col), _) => json!({"split_col": col}),
            (None, Some(p)) => json!({"valid_pct": p, "seed": a.seed}),
            (None, None) => json!("all train"),
        },
    );
    let settings = json!({
        "max_vocab": a.max_vocab,
        "min_freq": a.min_freq,
        "vocab": vocab_source,
        "split": split_setting,
        "input_format": format!("{:?}", a.read.input_format).to_lowercase(),
        "lossy": a.read.lossy,
    });
    // Opened before the work, so a bad --metrics path fails before any output is published.
    let mut metrics = Metrics::from_flag("numericalize", a.metrics.as_deref(), Metrics::stdout)?;
    let out = match mapping {
        // The split of every document is known as it is read: write the shards directly.
        Mapping::Apply { vocab, .. } if a.valid_pct.is_none() => {
            run_direct(a, output, vocab, inputs, &mut progress, settings)?
        }
        mapping => run_spooled(a, output, &parent, mapping, inputs, &mut progress, settings)?,
    };
    let Outcome {
        sealed,
        n_docs,
        n_tokens,
        unk_tokens,
        counts,
    } = out;
    let elapsed = start.elapsed().as_secs_f64();
    // The summary is written before the shard set is published, so a failing --metrics
    // (a full disk) leaves no output, like every other failure.
    metrics.emit(Event::NumericalizeSummary {
        output: output.display().to_string(),
        docs: n_docs as u64,
        tokens: n_tokens,
        vocab_size: sealed.manifest.vocab_size,
        vocab_hash: sealed.manifest.vocab_hash.clone(),
        unk_tokens,
        splits: counts.clone(),
        elapsed_s: elapsed,
        tokens_per_s: if elapsed > 0.0 {
            n_tokens as f64 / elapsed
        } else {
            0.0
        },
    })?;
    let manifest = sealed.publish()?;
    if !common.quiet {
        let parts: Vec<String> = counts
            .iter()
            .map(|(k, v)| format!("{k} {} docs / {} tokens", v.docs, v.tokens))
            .collect();
        eprintln!(
            "numericalize: {} docs, {} tokens, vocab {} ({}), {} unk → {} [{}] in {:.2}s",
            n_docs,
            n_tokens,
            manifest.vocab_size,
            manifest.vocab_hash,
            unk_tokens,
            output.display(),
            parts.join(", "),
            elapsed
        );
    }
    Ok(())
}

/// What a run produced (not yet published), for the summary.
struct Outcome {
    sealed: SealedShards,
    n_docs: usize,
    n_tokens: u64,
    unk_tokens: u64,
    counts: BTreeMap<String, SplitCounts>,
}

/// Writer-side state of [`run_direct`]: appends encoded blocks to the shard files, collects
/// the fields and checks each document's split, in input order.
struct Direct<'a> {
    writer: ShardSetWriter,
    split_col: Option<&'a str>,
    fields: FieldTable,
    split_names: Vec<String>,
    split_index: AHashMap<String, u16>,
    split_of: Vec<u16>,
    counts: Vec<SplitCounts>,
    n_tokens: u64,
    unk: u64,
    lens: Vec<u32>,
}

impl Direct<'_> {
    fn split_id(&mut self, name: String) -> Result<u16> {
        if let Some(&i) = self.split_index.get(&name) {
            return Ok(i);
        }
        let i = u16::try_from(self.split_names.len())
            .map_err(|_| anyhow::anyhow!("more than 65,535 splits"))?;
        self.writer.ensure_split(&name)?;
        self.split_index.insert(name.clone(), i);
        self.split_names.push(name);
        self.counts.push(SplitCounts::default());
        Ok(i)
    }

    fn push_block(&mut self, name: &str, b: EncodedBlock) -> Result<()> {
        let elem = self.writer.dtype().size() as usize;
        self.unk += b.unk;
        // Runs of consecutive documents in one split go to its files in one write.
        let (mut run_split, mut run_start, mut pos) = (0u16, 0usize, 0usize);
        self.lens.clear();
        for doc in &b.docs {
            self.fields.push(&doc.fields);
            let s = match self.split_col {
                Some(col) => {
                    let sname = self.fields.last_split(col, name, doc.line, &doc.fields)?;
                    self.split_id(sname)?
                }
                None => 0,
            };
            if s != run_split && !self.lens.is_empty() {
                self.flush_run(run_split, &b.ids[run_start..pos])?;
                run_start = pos;
            }
            run_split = s;
            self.lens.push(doc.len);
            pos += doc.len as usize * elem;
            self.split_of.push(s);
            let c = &mut self.counts[s as usize];
            c.docs += 1;
            c.tokens += doc.len as u64;
            self.n_tokens += doc.len as u64;
        }
        if !self.lens.is_empty() {
            self.flush_run(run_split, &b.ids[run_start..pos])?;
        }
        Ok(())
    }

    fn flush_run(&mut self, split: u16, ids: &[u8]) -> Result<()> {
        let first_row = (self.split_of.len() - self.lens.len()) as u64;
        let rows = first_row..first_row + self.lens.len() as u64;
        self.writer
            .push_encoded(&self.split_names[split as usize], ids, &self.lens, rows)?;
        self.lens.clear();
        Ok(())
    }
}

/// Applying a vocab with the split known at read time (`--split-col`, or all train): one pass.
/// A reader thread reads chunks, the rayon pool parses them and maps tokens to their final ids,
/// and a writer thread appends them to the shard files, so the sequential writing of one chunk
/// overlaps the parallel parsing of the next.
fn run_direct(
    a: &BuildArgs,
    output: &Path,
    vocab: Vocab,
    inputs: Vec<Input>,
    progress: &mut Progress,
    settings: serde_json::Value,
) -> Result<Outcome> {
    let vocab = std::sync::Arc::new(vocab);
    let writer = ShardSetWriter::create_shared(output, a.force, vocab.clone(), Vec::new())?;
    let dtype = writer.dtype();
    let mut d = Direct {
        writer,
        split_col: a.split_col.as_deref(),
        fields: FieldTable::default(),
        split_names: Vec::new(),
        split_index: AHashMap::new(),
        split_of: Vec::new(),
        counts: Vec::new(),
        n_tokens: 0,
        unk: 0,
        lens: Vec::new(),
    };
    if a.split_col.is_none() {
        d.split_id("train".into())?;
    }
    let mut fingerprint = blake3::Hasher::new();
    let d = std::thread::scope(|s| -> Result<Direct> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Vec<EncodedBlock>)>(1);
        let handle = s.spawn(move || -> Result<Direct> {
            for (name, blocks) in rx {
                for b in blocks {
                    d.push_block(&name, b)?;
                }
            }
            Ok(d)
        });
        let read = || -> Result<()> {
            for input in inputs {
                let (hasher, _) =
                    parse::for_each_chunk(input, a.read.input_format, |name, chunk, format| {
                        let blocks =
                            parse::encode_chunk(name, chunk, format, a.read.lossy, &vocab, dtype)?;
                        // A send fails only when the writer stopped on an error, reported below.
                        tx.send((name.to_string(), blocks))
                            .map_err(|_| anyhow::anyhow!("the shard writer stopped"))?;
                        progress.inc(chunk.data.len() as u64);
                        Ok(())
                    })?;
                fingerprint.update(hasher.finalize().as_bytes());
            }
            Ok(())
        };
        let read_result = read();
        drop(tx);
        // The writer's error comes first: it is about an earlier part of the input.
        let d = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the shard writer panicked"))??;
        read_result.map(|_| d)
    })?;
    progress.finish();
    let Direct {
        mut writer,
        fields,
        mut split_names,
        split_of,
        mut counts,
        n_tokens,
        unk,
        ..
    } = d;
    require_tokens(a, split_of.len(), n_tokens)?;
    if split_names.is_empty() {
        writer.ensure_split("train")?;
        split_names.push("train".into());
        counts.push(SplitCounts::default());
    }
    writer.set_field_names(fields.cols.iter().map(|c| c.name().to_string()).collect())?;
    let mut vals: Vec<Option<&str>> = Vec::with_capacity(fields.cols.len());
    for (doc, &s) in split_of.iter().enumerate() {
        vals.clear();
        vals.extend(fields.cols.iter().map(|c| c.get(doc)));
        writer.push_fields(&split_names[s as usize], &vals)?;
    }
    let sealed = writer.seal(settings, fingerprint.finalize().to_hex().to_string())?;
    Ok(Outcome {
        sealed,
        n_docs: split_of.len(),
        n_tokens,
        unk_tokens: unk,
        counts: split_names.into_iter().zip(counts).collect(),
    })
}

/// Building a vocab (or applying one with `--valid-pct`, whose split needs the document count):
/// pass 1 parses, assigns ids and spools them to an unlinked temporary file beside the output;
/// pass 2 writes the shards from the spool.
fn run_spooled(
    a: &BuildArgs,
    output: &Path,
    parent: &Path,
    mut mapping: Mapping,
    inputs: Vec<Input>,
    progress: &mut Progress,
    settings: serde_json::Value,
) -> Result<Outcome> {
    let spool_file = tempfile_in(parent, output).with_context(|| output.display().to_string())?;
    let mut spool = BufWriter::with_capacity(1 << 20, spool_file);
    let mut doc_lens: Vec<u32> = Vec::new();
    let mut fields = FieldTable::default();
    let mut fingerprint = blake3::Hasher::new();
    let mut n_tokens = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    for input in inputs {
        let (hasher, _) =
            parse::for_each_chunk(input, a.read.input_format, |name, chunk, format| {
                // Each document: its input line, its fields, and its ids as little-endian u32,
                // ready for the spool. Applying a vocab happens inside the parallel parse.
                let encoded: Vec<SpooledDoc> = match &mut mapping {
                    Mapping::Apply { vocab, unk } => {
                        let vocab = &*vocab;
                        let unk_id = vocab.unk_id();
                        let n_unk = std::sync::atomic::AtomicU64::new(0);
                        let enc = parse::parse_chunk_map(name, chunk, format, a.read.lossy, |d| {
                            let mut misses = 0;
                            let mut bytes = Vec::with_capacity(d.tokens.len() * 4);
                            for t in &d.tokens {
                                let id = vocab.get(t).unwrap_or_else(|| {
                                    misses += 1;
                                    unk_id
                                });
                                bytes.extend_from_slice(&id.to_le_bytes());
                            }
                            if misses > 0 {
                                n_unk.fetch_add(misses, std::sync::atomic::Ordering::Relaxed);
                            }
                            let len = u32::try_from(d.tokens.len()).map_err(|_| {
                                anyhow::anyhow!("{name}: line {}: document too long", d.line)
                            })?;
                            Ok((d.line, d.fields, bytes, len))
                        })?;
                        *unk += n_unk.into_inner();
                        enc
                    }
                    Mapping::Build(dict) => parse::parse_chunk(name, chunk, format, a.read.lossy)?
                        .into_iter()
                        .map(|d| {
                            let mut bytes = Vec::with_capacity(d.tokens.len() * 4);
                            for t in &d.tokens {
                                bytes.extend_from_slice(&dict.add(t, 1).to_le_bytes());
                            }
                            (d.line, d.fields, bytes, d.tokens.len() as u32)
                        })
                        .collect(),
                };
                for (line, doc_fields, bytes, len) in &encoded {
                    let (line, len) = (*line, *len);
                    doc_lens.push(len);
                    n_tokens += len as u64;
                    spool.write_all(bytes).with_context(|| {
                        format!(
                            "{}: writing the temporary spool file in {}",
                            output.display(),
                            parent.display()
                        )
                    })?;
                    fields.push(doc_fields);
                    if let Some(col) = &a.split_col {
                        fields.last_split(col, name, line, doc_fields)?;
                    }
                }
                progress.inc(chunk.data.len() as u64);
                Ok(())
            })?;
        fingerprint.update(hasher.finalize().as_bytes());
    }
    progress.finish();
    let n_docs = doc_lens.len();
    require_tokens(a, n_docs, n_tokens)?;

    // Vocab and the map from spooled ids to final ids.
    let (vocab, remap, unk_tokens) = match mapping {
        Mapping::Build(dict) => {
            let vocab = Vocab::build(&dict.pairs(), a.max_vocab, a.min_freq);
            let unk_id = vocab.unk_id();
            let mut unk = 0;
            let remap: Vec<u32> = dict
                .itos
                .iter()
                .zip(&dict.counts)
                .map(|(t, &c)| match vocab.get(t) {
                    Some(i) => i,
                    None => {
                        unk += c;
                        unk_id
                    }
                })
                .collect();
            (vocab, Some(remap), unk)
        }
        Mapping::Apply { vocab, unk } => (vocab, None, unk),
    };

    // Splits.
    let mut split_names: Vec<String> = vec!["train".into()];
    let mut split_of: Vec<u16> = vec![0; n_docs];
    // With no documents (empty input) the split column was never seen: all train.
    if let Some(&i) = a.split_col.as_deref().and_then(|c| fields.index.get(c)) {
        let mut by_name: BTreeMap<String, u16> = BTreeMap::new();
        split_names.clear();
        for (d, s) in split_of.iter_mut().enumerate() {
            let name =
                split_name(fields.cols[i].get(d).expect("checked while reading")).expect("checked");
            let next = by_name.len() as u16;
            *s = *by_name.entry(name.clone()).or_insert_with(|| {
                split_names.push(name);
                next
            });
        }
    } else if let Some(p) = a.valid_pct {
        split_names.push("valid".into());
        let cut = (p * n_docs as f64).floor() as usize;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
        for i in rand::seq::index::sample(&mut rng, n_docs, cut) {
            split_of[i] = 1;
        }
    }

    // Pass 2: spool → shards.
    let field_names: Vec<String> = fields.cols.iter().map(|c| c.name().to_string()).collect();
    let mut writer = ShardSetWriter::create(output, a.force, vocab, field_names)?;
    for s in &split_names {
        writer.ensure_split(s)?;
    }
    let mut spool_file = spool
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| {
            format!(
                "{}: writing the temporary spool file in {}",
                output.display(),
                parent.display()
            )
        })?;
    spool_file.seek(SeekFrom::Start(0))?;
    let mut rd = BufReader::with_capacity(1 << 20, spool_file);
    let mut ids: Vec<u32> = Vec::new();
    let mut counts: BTreeMap<String, SplitCounts> = BTreeMap::new();
    let mut vals: Vec<Option<&str>> = Vec::with_capacity(fields.cols.len());
    for (d, &len) in doc_lens.iter().enumerate() {
        buf.resize(len as usize * 4, 0);
        rd.read_exact(&mut buf).with_context(|| {
            format!(
                "{}: reading the temporary spool file in {}",
                output.display(),
                parent.display()
            )
        })?;
        ids.clear();
        ids.extend(
            buf.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        if let Some(remap) = &remap {
            for i in ids.iter_mut() {
                *i = remap[*i as usize];
            }
        }
        vals.clear();
        vals.extend(fields.cols.iter().map(|c| c.get(d)));
        let split = &split_names[split_of[d] as usize];
        writer.push_doc(split, &ids, d as u64, &vals)?;
        let c = counts.entry(split.clone()).or_default();
        c.docs += 1;
        c.tokens += len as u64;
    }
    for s in &split_names {
        counts.entry(s.clone()).or_default();
    }
    let sealed = writer.seal(settings, fingerprint.finalize().to_hex().to_string())?;
    Ok(Outcome {
        sealed,
        n_docs,
        n_tokens,
        unk_tokens,
        counts,
    })
}

/// Empty or whitespace-only input is an error (nothing is published) unless `--allow-empty`.
fn require_tokens(a: &BuildArgs, n_docs: usize, n_tokens: u64) -> Result<()> {
    if n_tokens > 0 || a.read.allow_empty {
        return Ok(());
    }
    bail!(
        "{}: no tokens ({n_docs} documents; the input is empty or only whitespace)",
        shared::cli::input_names(&a.read.inputs)
    );
}

/// An unlinked temporary file in `dir`: it vanishes with the process, even on kill -9.
///
/// It is named like `shared::atomic`'s temporaries of `output` (`.NAME.tmp.PID.spoolN`), so a
/// file left by a kill between its creation and its unlinking is removed by the next run.
fn tempfile_in(dir: &Path, output: &Path) -> Result<File> {
    let out_name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = dir.join(format!(
        ".{out_name}.tmp.{}.spool{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&name)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    std::fs::remove_file(&name).with_context(|| format!("{}: cannot unlink", name.display()))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_follow_is_valid() {
        assert_eq!(split_name("True").as_deref(), Some("valid"));
        assert_eq!(split_name("False").as_deref(), Some("train"));
        assert_eq!(split_name("1").as_deref(), Some("valid"));
        assert_eq!(split_name("test").as_deref(), Some("test"));
        assert_eq!(split_name("holdout").as_deref(), Some("holdout"));
        assert_eq!(split_name("a/b"), None);
        assert_eq!(split_name(""), None);
    }
}
