//! Metrics: JSON lines, one record per line, one serde enum tagged by `"type"`.
//!
//! Every record carries `schema` (this format's version) and `tool` (who wrote it), and is flat
//! enough for `jq` and `pandas.read_json(lines=True)`:
//!
//! ```text
//! {"schema":1,"tool":"numericalize","type":"numericalize_summary","docs":1000,...}
//! ```
//!
//! Field names carry units (`elapsed_s`, `tokens_per_s`, `bytes`). New tools add variants to
//! [`Event`]; existing variants only ever gain optional fields within one schema version.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Version of the metrics format.
pub const SCHEMA: u32 = 1;

/// Documents and tokens of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SplitCounts {
    pub docs: u64,
    pub tokens: u64,
}

/// One metrics record's payload; the variant name is the `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// End of a `tokenize` run.
    TokenizeSummary {
        docs: u64,
        tokens: u64,
        bytes: u64,
        threads: usize,
        elapsed_s: f64,
        docs_per_s: f64,
        mb_per_s: f64,
        tokens_per_s: f64,
    },
    /// End of a `numericalize` run that wrote a shard set.
    NumericalizeSummary {
        output: String,
        docs: u64,
        tokens: u64,
        vocab_size: u64,
        vocab_hash: String,
        /// tokens mapped to `xxunk` because they are not in the vocab
        unk_tokens: u64,
        splits: BTreeMap<String, SplitCounts>,
        elapsed_s: f64,
        tokens_per_s: f64,
    },
    /// End of `numericalize count` (the map step of map-reduce preprocessing).
    CountSummary { output: String, docs: u64, tokens: u64, distinct_tokens: u64, elapsed_s: f64 },
    /// End of `numericalize merge-counts` (the reduce step).
    VocabSummary { output: String, inputs: u64, distinct_tokens: u64, vocab_size: u64, vocab_hash: String },
}

/// A record as written: `schema`, `tool`, then the event's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema: u32,
    pub tool: String,
    #[serde(flatten)]
    pub event: Event,
}

/// Where metrics go: standard output, a file, or nowhere.
pub struct Metrics {
    tool: &'static str,
    out: Option<Box<dyn Write + Send>>,
}

impl Metrics {
    pub fn stdout(tool: &'static str) -> Self {
        Metrics { tool, out: Some(Box::new(io::stdout())) }
    }

    pub fn none(tool: &'static str) -> Self {
        Metrics { tool, out: None }
    }

    /// Opens `path` (created early, so a bad path fails before any work). `-` is stdout.
    pub fn file(tool: &'static str, path: &Path) -> Result<Self> {
        if crate::cli::is_stdio(path) {
            return Ok(Self::stdout(tool));
        }
        let f = File::create(path).with_context(|| format!("{}: cannot create metrics file", path.display()))?;
        Ok(Metrics { tool, out: Some(Box::new(BufWriter::new(f))) })
    }

    /// `--metrics FILE` if given, else `default`.
    pub fn from_flag(tool: &'static str, path: Option<&Path>, default: fn(&'static str) -> Self) -> Result<Self> {
        match path {
            Some(p) => Self::file(tool, p),
            None => Ok(default(tool)),
        }
    }

    pub fn emit(&mut self, event: Event) -> Result<()> {
        let Some(out) = self.out.as_mut() else { return Ok(()) };
        let rec = Record { schema: SCHEMA, tool: self.tool.to_string(), event };
        serde_json::to_writer(&mut *out, &rec)?;
        out.write_all(b"\n")?;
        out.flush().context("writing metrics")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_flat_and_tagged() {
        let rec = Record {
            schema: SCHEMA,
            tool: "tokenize".into(),
            event: Event::CountSummary { output: "c.json".into(), docs: 2, tokens: 10, distinct_tokens: 7, elapsed_s: 0.5 },
        };
        let s = serde_json::to_string(&rec).unwrap();
        assert!(s.starts_with(r#"{"schema":1,"tool":"tokenize","type":"count_summary","output":"c.json""#), "{s}");
        let back: Record = serde_json::from_str(&s).unwrap();
        assert_eq!(back, rec);
    }
}
