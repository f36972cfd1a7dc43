//! lr-find's output: JSON lines with the conventions of `shared::metrics` (`schema`, `tool`,
//! `type`, units in field names). A loss that is NaN is written as `null` (JSON has no NaN).
//!
//! ```text
//! {"schema":1,"tool":"lr-find","type":"lr_find_iter","repeat":0,"iter":0,"lr":1e-7,"loss":8.87,"smooth_loss":8.87}
//! {"schema":1,"tool":"lr-find","type":"lr_find_summary","method":"valley","lr":0.0025,"valley":0.0025,...}
//! ```

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::finder::LossSource;
use crate::schedule::{ScheduleKind, StopReason};
use crate::stats::Spread;
use crate::suggest::Method;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    LrFindStart {
        /// "lm" (a language model) or "classifier".
        model: String,
        /// The checkpoint the weights come from (null: from scratch): --init or --ckpt.
        init: Option<String>,
        vocab_size: u64,
        params: u64,
        train_tokens: u64,
        batches_per_epoch: u64,
        num_it: u64,
        start_lr: f64,
        end_lr: f64,
        schedule: ScheduleKind,
        loss: LossSource,
        smooth: f64,
        stop_div: bool,
        repeats: u64,
        seed: u64,
        /// Streams (documents, for a classifier) per optimizer step.
        bs: u64,
        /// Streams per forward/backward: below `bs` with gradient accumulation (--bs N
        /// --effective-bs M, or --bs auto).
        micro_bs: u64,
        bptt: u64,
        /// Some layer groups frozen (--freeze; a classifier's --unfreeze-stage below all).
        freeze: bool,
        /// Classifiers only: task, classes, unfreeze stage.
        #[serde(skip_serializing_if = "Option::is_none", flatten)]
        classifier: Option<ClfStart>,
        device: String,
        precision: String,
        threads: u64,
    },
    LrFindIter {
        repeat: u64,
        iter: u64,
        lr: f64,
        loss: f64,
        smooth_loss: f64,
    },
    LrFindRepeat {
        repeat: u64,
        seed: u64,
        iterations: u64,
        stop: StopReason,
        best_smooth_loss: f64,
        valley: Option<f64>,
        steep: Option<f64>,
        minimum: Option<f64>,
        slide: Option<f64>,
        /// Streams per forward/backward at the end of the repeat (smaller than at the start
        /// after an out-of-memory back-off).
        micro_bs: u64,
        elapsed_s: f64,
        s_per_iter: f64,
    },
    LrFindBand {
        iter: u64,
        lr: f64,
        median: f64,
        p10: f64,
        p90: f64,
        repeats: u64,
    },
    LrFindSummary {
        /// The method whose suggestion is `lr` (--suggest).
        method: Method,
        lr: Option<f64>,
        valley: Option<f64>,
        steep: Option<f64>,
        minimum: Option<f64>,
        slide: Option<f64>,
        /// Per method: the point fastai marks and the spread over repeats.
        detail: BTreeMap<&'static str, SuggestionDetail>,
        /// Points of the curve the suggestions were computed on (the median curve with
        /// repeats).
        iterations: u64,
        repeats: u64,
        elapsed_s: f64,
    },
}

/// What `lr_find_start` adds for a classifier (`--ckpt`).
#[derive(Debug, Clone, Serialize)]
pub struct ClfStart {
    /// classification, multi-label or regression (clf-train's names).
    pub task: String,
    pub classes: Vec<String>,
    pub train_docs: u64,
    /// Layer groups trained, counted from the head (fastai's freeze_to(-N)).
    pub unfreeze_stage: u64,
    /// Layer groups of the model: embedding, each LSTM layer, head.
    pub layer_groups: u64,
}

/// One method's suggestion in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct SuggestionDetail {
    pub lr: Option<f64>,
    /// The (lr, smoothed loss) point fastai's plot marks.
    pub point_lr: Option<f64>,
    pub point_loss: Option<f64>,
    /// Over the repeats' own suggestions (null with one repeat).
    pub spread: Option<Spread>,
}

#[derive(Serialize)]
struct Record<'a> {
    schema: u32,
    tool: &'static str,
    #[serde(flatten)]
    event: &'a Event,
}

enum Sink {
    Stdout(io::Stdout),
    File(shared::atomic::AtomicFile),
}

/// Where records go: stdout (flushed per record, so `tail -f`/pipes see progress) or a file
/// published atomically by [`Output::finish`].
pub struct Output {
    sink: Sink,
}

impl Output {
    /// `-o FILE` (created now, so a bad path fails before the work) or stdout.
    pub fn open(path: Option<&Path>, force: bool) -> Result<Self> {
        let sink = match path {
            Some(p) if !shared::cli::is_stdio(p) => {
                Sink::File(shared::atomic::AtomicFile::create(p, force)?)
            }
            _ => Sink::Stdout(io::stdout()),
        };
        Ok(Output { sink })
    }

    pub fn emit(&mut self, event: &Event) -> Result<()> {
        let rec = Record {
            schema: shared::metrics::SCHEMA,
            tool: crate::TOOL,
            event,
        };
        match &mut self.sink {
            Sink::Stdout(s) => {
                let mut l = s.lock();
                serde_json::to_writer(&mut l, &rec)?;
                l.write_all(b"\n")?;
                l.flush().context("writing stdout")?;
            }
            Sink::File(f) => {
                serde_json::to_writer(&mut *f, &rec)?;
                f.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        shared::atomic::commit_all(self.into_pending()?)
    }

    /// Flushes stdout, or hands back the file still to be committed (with other outputs of
    /// the run, by `shared::atomic::commit_all`).
    pub fn into_pending(self) -> Result<Vec<shared::atomic::AtomicFile>> {
        match self.sink {
            Sink::Stdout(mut s) => s.flush().context("writing stdout").map(|_| vec![]),
            Sink::File(f) => Ok(vec![f]),
        }
    }
}
