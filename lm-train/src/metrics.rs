//! lm-train's metrics records: JSON lines with the conventions of `shared::metrics`
//! (`schema`, `tool`, `type`, units in field names). Kept here until they are merged into
//! `shared::metrics::Event`.
//!
//! ```text
//! {"schema":1,"tool":"lm-train","type":"lm_step","epoch":0,"step":50,"train_loss":5.1,...}
//! ```

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One lm-train record's payload; the variant name is the `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LmEvent {
    /// Start of training: sizes and the schedule's length.
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
    },
    /// `--init` loaded a checkpoint; with a different vocab, rows were matched by token string
    /// (fastai's `match_embeds`).
    LmInit {
        source: String,
        vocab_size: u64,
        matched_tokens: u64,
        new_tokens: u64,
    },
    /// Every `--log-every` steps: means over the steps since the last record.
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
    /// End of an epoch (or of a run that stopped mid-epoch at `--steps`).
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
    /// A checkpoint was published.
    LmCheckpoint { path: String, step: u64, epoch: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmRecord {
    pub schema: u32,
    pub tool: String,
    #[serde(flatten)]
    pub event: LmEvent,
}

/// Where records go: stdout, a file, or nowhere.
pub struct LmMetrics {
    out: Option<Box<dyn Write + Send>>,
}

impl LmMetrics {
    pub fn none() -> Self {
        LmMetrics { out: None }
    }

    /// `--metrics FILE` (created now, so a bad path fails before training) or stdout.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        match path {
            None => Ok(LmMetrics {
                out: Some(Box::new(io::stdout())),
            }),
            Some(p) if shared::cli::is_stdio(p) => Ok(LmMetrics {
                out: Some(Box::new(io::stdout())),
            }),
            Some(p) => {
                let f = std::fs::File::create(p)
                    .with_context(|| format!("{}: cannot create metrics file", p.display()))?;
                Ok(LmMetrics {
                    out: Some(Box::new(io::BufWriter::new(f))),
                })
            }
        }
    }

    pub fn emit(&mut self, event: LmEvent) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let rec = LmRecord {
            schema: shared::metrics::SCHEMA,
            tool: crate::TOOL.into(),
            event,
        };
        serde_json::to_writer(&mut *out, &rec)?;
        out.write_all(b"\n")?;
        out.flush().context("writing metrics")?;
        Ok(())
    }
}
