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
use shared::shards::{valid_split_name, ColumnBuilder, ShardSetWriter};
use shared::vocab::Vocab;

use crate::args::BuildArgs;
use crate::counts::Dict;
use crate::parse::{self, value_text};

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
}

/// How token ids are produced while reading.
enum Mapping {
    /// Building a vocab: provisional ids in first-seen order, remapped at the end.
    Build(Dict),
    /// Applying a given vocab: final ids at once, in parallel.
    Apply { vocab: Vocab, unk: u64 },
}

pub fn run(a: &BuildArgs, common: &CommonArgs) -> Result<()> {
    let start = Instant::now();
    let output = a.output.as_deref().context("missing the output shard set: -o SHARDS")?;
    if output.exists() && !a.force {
        bail!("{}: already exists (use --force to replace it)", output.display());
    }
    if let Some(p) = a.valid_pct {
        if !(0.0..1.0).contains(&p) {
            bail!("--valid-pct {p}: must be at least 0 and below 1");
        }
    }
    if a.max_vocab < shared::vocab::SPECIAL_TOKENS.len() {
        bail!("--max-vocab {}: must be at least {} (the special tokens)", a.max_vocab, shared::vocab::SPECIAL_TOKENS.len());
    }
    // Opened before the work, so a bad --metrics path fails before any output is published.
    let mut metrics = Metrics::from_flag("numericalize", a.metrics.as_deref(), Metrics::stdout)?;
    let mut mapping = match &a.vocab {
        Some(p) => Mapping::Apply { vocab: Vocab::load(p)?, unk: 0 },
        None => Mapping::Build(Dict::default()),
    };
    let inputs = Input::open_all(&a.read.inputs)?;
    let total_bytes: Option<u64> = inputs.iter().map(|i| i.len).sum();
    let mode = common.progress.resolve(common.quiet);
    let mut progress = Progress::new(mode, "numericalize", "bytes", total_bytes);

    // Pass 1: parse, assign ids, spool them to an unlinked temporary file beside the output.
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!("{}: the directory {} does not exist", output.display(), parent.display());
    }
    let spool_file = tempfile_in(&parent, output).with_context(|| output.display().to_string())?;
    let mut spool = BufWriter::with_capacity(1 << 20, spool_file);
    let mut doc_lens: Vec<u32> = Vec::new();
    let mut fields = FieldTable::default();
    let mut fingerprint = blake3::Hasher::new();
    let mut n_tokens = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    for input in inputs {
        let (hasher, _) = parse::for_each_chunk(input, a.read.input_format, |name, chunk, format| {
            // Each document: its input line, its fields, and its ids as little-endian u32,
            // ready for the spool. Applying a vocab happens inside the parallel parse.
            let encoded: Vec<(u64, Vec<(String, serde_json::Value)>, Vec<u8>, u32)> = match &mut mapping {
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
                        let len = u32::try_from(d.tokens.len())
                            .map_err(|_| anyhow::anyhow!("{name}: line {}: document too long", d.line))?;
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
                spool.write_all(bytes).with_context(|| format!("{}: writing the temporary spool file in {}", output.display(), parent.display()))?;
                fields.push(doc_fields);
                if let Some(col) = &a.split_col {
                    let has = fields.index.get(col.as_str()).and_then(|&i| fields.cols[i].get(fields.docs - 1));
                    match has {
                        Some(v) if split_name(v).is_some() => {}
                        Some(v) => bail!("{name}: line {line}: split column {col:?} has the value {v:?}, which is not a usable split name"),
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
            progress.inc(chunk.data.len() as u64);
            Ok(())
        })?;
        fingerprint.update(hasher.finalize().as_bytes());
    }
    progress.finish();
    let n_docs = doc_lens.len();
    if n_tokens == 0 {
        let names: Vec<String> = if a.read.inputs.is_empty() {
            vec!["<stdin>".into()]
        } else {
            a.read.inputs.iter().map(|p| if shared::cli::is_stdio(p) { "<stdin>".into() } else { p.display().to_string() }).collect()
        };
        bail!("{}: no tokens ({n_docs} documents; the input is empty or only whitespace)", names.join(", "));
    }

    // Vocab and the map from spooled ids to final ids.
    let (vocab, remap, unk_tokens, vocab_source) = match mapping {
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
            (vocab, Some(remap), unk, json!("built"))
        }
        Mapping::Apply { vocab, unk } => {
            let src = a.vocab.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            (vocab, None, unk, json!(src))
        }
    };

    // Splits.
    let mut split_names: Vec<String> = vec!["train".into()];
    let mut split_of: Vec<u16> = vec![0; n_docs];
    let split_setting = if let Some(col) = &a.split_col {
        let i = fields.index[col.as_str()];
        let mut by_name: BTreeMap<String, u16> = BTreeMap::new();
        split_names.clear();
        for (d, s) in split_of.iter_mut().enumerate() {
            let name = split_name(fields.cols[i].get(d).expect("checked while reading")).expect("checked");
            let next = by_name.len() as u16;
            *s = *by_name.entry(name.clone()).or_insert_with(|| {
                split_names.push(name);
                next
            });
        }
        if n_docs == 0 {
            split_names.push("train".into());
        }
        json!({"split_col": col})
    } else if let Some(p) = a.valid_pct {
        split_names.push("valid".into());
        let cut = (p * n_docs as f64).floor() as usize;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
        for i in rand::seq::index::sample(&mut rng, n_docs, cut) {
            split_of[i] = 1;
        }
        json!({"valid_pct": p, "seed": a.seed})
    } else {
        json!("all train")
    };

    // Pass 2: spool → shards.
    let field_names: Vec<String> = fields.cols.iter().map(|c| c.name().to_string()).collect();
    let mut writer = ShardSetWriter::create(output, a.force, vocab, field_names)?;
    for s in &split_names {
        writer.ensure_split(s)?;
    }
    let mut spool_file = spool.into_inner().map_err(|e| e.into_error()).with_context(|| format!("{}: writing the temporary spool file in {}", output.display(), parent.display()))?;
    spool_file.seek(SeekFrom::Start(0))?;
    let mut rd = BufReader::with_capacity(1 << 20, spool_file);
    let mut ids: Vec<u32> = Vec::new();
    let mut counts: BTreeMap<String, SplitCounts> = BTreeMap::new();
    let mut vals: Vec<Option<&str>> = Vec::with_capacity(fields.cols.len());
    for (d, &len) in doc_lens.iter().enumerate() {
        buf.resize(len as usize * 4, 0);
        rd.read_exact(&mut buf).with_context(|| format!("{}: reading the temporary spool file in {}", output.display(), parent.display()))?;
        ids.clear();
        ids.extend(buf.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
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
    let settings = json!({
        "max_vocab": a.max_vocab,
        "min_freq": a.min_freq,
        "vocab": vocab_source,
        "split": split_setting,
        "input_format": format!("{:?}", a.read.input_format).to_lowercase(),
        "lossy": a.read.lossy,
    });
    let manifest = writer.finish(settings, fingerprint.finalize().to_hex().to_string())?;
    let elapsed = start.elapsed().as_secs_f64();
    if !common.quiet {
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {} docs / {} tokens", v.docs, v.tokens)).collect();
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
    metrics.emit(Event::NumericalizeSummary {
        output: output.display().to_string(),
        docs: n_docs as u64,
        tokens: n_tokens,
        vocab_size: manifest.vocab_size,
        vocab_hash: manifest.vocab_hash.clone(),
        unk_tokens,
        splits: counts,
        elapsed_s: elapsed,
        tokens_per_s: if elapsed > 0.0 { n_tokens as f64 / elapsed } else { 0.0 },
    })?;
    Ok(())
}

/// An unlinked temporary file in `dir`: it vanishes with the process, even on kill -9.
///
/// It is named like `shared::atomic`'s temporaries of `output` (`.NAME.tmp.PID.spoolN`), so a
/// file left by a kill between its creation and its unlinking is removed by the next run.
fn tempfile_in(dir: &Path, output: &Path) -> Result<File> {
    let out_name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = dir.join(format!(".{out_name}.tmp.{}.spool{}", std::process::id(), rand::random::<u64>()));
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
