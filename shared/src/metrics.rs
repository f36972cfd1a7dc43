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
    CountSummary {
        output: String,
        docs: u64,
        tokens: u64,
        distinct_tokens: u64,
        elapsed_s: f64,
    },
    /// End of `numericalize merge-counts` (the reduce step).
    VocabSummary {
        output: String,
        inputs: u64,
        distinct_tokens: u64,
        vocab_size: u64,
        vocab_hash: String,
    },

    /// `lm-train`: start of training, with sizes and the schedule's length. `bs` is the
    /// effective batch (streams per optimizer step); `micro_bs` the streams per forward/backward
    /// and `accum_steps` how many micro-batches one step accumulates (`--bs auto`,
    /// `--effective-bs`).
    LmStart {
        vocab_size: u64,
        params: u64,
        train_tokens: u64,
        valid_tokens: u64,
        batches_per_epoch: u64,
        total_steps: u64,
        start_step: u64,
        bs: u64,
        bptt: u64,
        device: String,
        precision: String,
        threads: u64,
        #[serde(default)]
        micro_bs: Option<u64>,
        #[serde(default)]
        accum_steps: Option<u64>,
    },
    /// `lm-train --init` loaded a checkpoint; with a different vocab, rows were matched by token
    /// string (fastai's `match_embeds`).
    LmInit {
        source: String,
        vocab_size: u64,
        matched_tokens: u64,
        new_tokens: u64,
    },
    /// `lm-train`, every `--log-every` steps: means over the steps since the last record.
    /// `grad_norm` only with `--clip`.
    LmStep {
        epoch: u64,
        step: u64,
        train_loss: f64,
        lr: f64,
        mom: f64,
        grad_norm: Option<f64>,
        tokens_per_s: f64,
        elapsed_s: f64,
    },
    /// `lm-train`: end of an epoch (or of a run that stopped mid-epoch at `--steps`).
    LmEpoch {
        epoch: u64,
        step: u64,
        train_loss: f64,
        valid_loss: Option<f64>,
        perplexity: Option<f64>,
        accuracy: Option<f64>,
        tokens_per_s: f64,
        elapsed_s: f64,
    },
    /// `lm-train` published a checkpoint.
    LmCheckpoint { path: String, step: u64, epoch: u64 },
    /// `lm-train` ran out of memory in a step and retries it with half the micro-batch (and
    /// twice the accumulation), so the effective batch is unchanged.
    LmBackoff {
        step: u64,
        micro_bs: u64,
        accum_steps: u64,
        error: String,
    },
    /// `lm-train`'s memory estimate for a configuration (`--dry-run`, `--bs auto`): bytes of
    /// parameters, gradients, optimizer state, and activations (`activation_bytes_per_token`
    /// × micro_bs × bptt); `measured_bytes` is a probe's measured peak when one ran.
    LmMemory {
        device: String,
        bs: u64,
        micro_bs: u64,
        bptt: u64,
        params: u64,
        param_bytes: u64,
        grad_bytes: u64,
        optimizer_bytes: u64,
        activation_bytes_per_token: u64,
        activation_bytes: u64,
        total_bytes: u64,
        budget_bytes: Option<u64>,
        measured_bytes: Option<u64>,
    },
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
    /// What messages call the destination: the file's path or `<stdout>`.
    name: String,
}

impl Metrics {
    pub fn stdout(tool: &'static str) -> Self {
        Metrics {
            tool,
            out: Some(Box::new(io::stdout())),
            name: "<stdout>".into(),
        }
    }

    pub fn none(tool: &'static str) -> Self {
        Metrics {
            tool,
            out: None,
            name: String::new(),
        }
    }

    /// Opens `path` (created early, so a bad path fails before any work). `-` is stdout.
    pub fn file(tool: &'static str, path: &Path) -> Result<Self> {
        if crate::cli::is_stdio(path) {
            return Ok(Self::stdout(tool));
        }
        let f = File::create(path)
            .with_context(|| format!("{}: cannot create metrics file", path.display()))?;
        Ok(Metrics {
            tool,
            out: Some(Box::new(BufWriter::new(f))),
            name: path.display().to_string(),
        })
    }

    /// `--metrics FILE` if given, else `default`.
    pub fn from_flag(
        tool: &'static str,
        path: Option<&Path>,
        default: fn(&'static str) -> Self,
    ) -> Result<Self> {
        match path {
            Some(p) => Self::file(tool, p),
            None => Ok(default(tool)),
        }
    }

    pub fn emit(&mut self, event: Event) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let rec = Record {
            schema: SCHEMA,
            tool: self.tool.to_string(),
            event,
        };
        let name = &self.name;
        serde_json::to_writer(&mut *out, &rec)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .with_context(|| format!("{name}: write failed"))
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
            event: Event::CountSummary {
                output: "c.json".into(),
                docs: 2,
                tokens: 10,
                distinct_tokens: 7,
                elapsed_s: 0.5,
            },
        };
        let s = serde_json::to_string(&rec).unwrap();
        assert!(
            s.starts_with(
                r#"{"schema":1,"tool":"tokenize","type":"count_summary","output":"c.json""#
            ),
            "{s}"
        );
        let back: Record = serde_json::from_str(&s).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn lm_records_keep_their_field_names() {
        let rec = Record {
            schema: SCHEMA,
            tool: "lm-train".into(),
            event: Event::LmStep {
                epoch: 0,
                step: 50,
                train_loss: 5.5,
                lr: 1e-3,
                mom: 0.8,
                grad_norm: None,
                tokens_per_s: 1000.0,
                elapsed_s: 2.0,
            },
        };
        let s = serde_json::to_string(&rec).unwrap();
        assert!(
            s.starts_with(r#"{"schema":1,"tool":"lm-train","type":"lm_step","epoch":0,"step":50,"train_loss":5.5"#),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<Record>(&s).unwrap(), rec);
        // a record written before micro_bs/accum_steps existed still reads
        let old = r#"{"schema":1,"tool":"lm-train","type":"lm_start","vocab_size":8,"params":1,"train_tokens":1,"valid_tokens":0,"batches_per_epoch":1,"total_steps":1,"start_step":0,"bs":1,"bptt":1,"device":"cpu","precision":"fp32","threads":1}"#;
        let r: Record = serde_json::from_str(old).unwrap();
        assert!(matches!(r.event, Event::LmStart { micro_bs: None, .. }));
    }
}
