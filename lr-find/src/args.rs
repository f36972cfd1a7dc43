//! Command-line flags (raw `Args`; [`crate::Config`] is the resolved form).

use std::path::PathBuf;

use clap::Parser;
use lm_train::args::{parse_bytes, reword, BatchSize, OptimArgs, RunArgs};
use shared::cli::{CommonArgs, EXIT_CODES_HELP};

use crate::schedule::ScheduleKind;
use crate::suggest::Method;

const AFTER_HELP: &str = "\
Examples:
  lr-find shards/ --emb-sz 64 --n-hid 128 --n-layers 2 --bs 32 --bptt 64 --plot lr.png
  lr-find shards/ --init lm0/ --freeze --plot lr.svg          # before fine-tuning lm0/
  lr-find shards/ --init lm0/ --repeats 5 --plot lr.png > lr.jsonl
  lr-find shards/ --init lm0/ --valid-loss --schedule linear --start-lr 1e-4 --end-lr 1e-1
  lr-find shards/ --init lm0/ -q | jq -r 'select(.type==\"lr_find_summary\").lr'
  lr-find clf_shards/ --ckpt clf0/ --plot lr.png                # a classifier, head only
  lr-find clf_shards/ --ckpt clf0/ --unfreeze-stage 2 --bs 32   # head + last LSTM layer
  lr-find clf_shards/ --ckpt clf0/ --unfreeze-stage all --valid-loss

What it does (fastai's learn.lr_find()): the learning rate grows from --start-lr to --end-lr
over --num-it optimiser steps (iteration i at start·(end/start)^(i/num_it)); the loss of each
step is smoothed (exponential moving average, beta 0.98, bias-corrected, as fastai's
Recorder); the test stops when the smoothed loss exceeds 4× its best or is NaN. Suggestions
as fastai v2 (valley, steep, minimum, slide) on the recorded curve without its first tenth
and last 5 points. The checkpoint given to --init is only read: nothing is written to it.
The model, batches and optimiser step are lm-train's (same flags, same seeds: lr-find --seed
S starts from the model, data order and dropout masks that lm-train --seed S would use).

Classifiers (--ckpt CLF, a clf-train -o directory, only read): the test starts from its
weights at the --unfreeze-stage given (the top N layer groups train, as fastai's
freeze_to(-N); 1, the default, is the head only, as after learn.freeze(); all trains every
group), with one learning rate for every trainable group (fastai's lr_find). Model, task and
loss (cross-entropy, BCE or MSE), training batches (SortedDL order), AdamW and step are
clf-train's; its --seed S gives clf-train's data order and dropout masks. The shards must
have the checkpoint's vocab and label column; --bs defaults to the checkpoint's training
batch size; --valid-loss evaluates the valid split as clf-train does.

Output: JSON lines on stdout (or -o FILE), one object per line with \"type\":
  lr_find_start    settings and sizes
  lr_find_iter     repeat, iter, lr, loss, smooth_loss (one per iteration; NaN is null)
  lr_find_repeat   per repeat: iterations, stop (num_it|diverged|nan), its four suggestions
  lr_find_band     with --repeats > 1, per iteration: median, p10, p90 of the smoothed loss
  lr_find_summary  lr (the --suggest method), valley, steep, minimum, slide, and per method
                   the marked point and the spread over repeats (median, p10, p90)
A one-line summary goes to stderr; a text chart too when stderr is a terminal.

";

#[derive(Debug, Parser)]
#[command(
    name = "lr-find",
    version,
    about = "Leslie Smith's learning-rate range test as fastai's lr_find, with its suggestions",
    after_help = format!("{AFTER_HELP}{EXIT_CODES_HELP}"),
    args_override_self = true,
    // lm-train's flag groups, with lr-find's own help where it words them differently.
    mut_args(|a| reword(a, crate::TOOL))
)]
pub struct Args {
    /// Shard set directory (from numericalize).
    #[arg(value_name = "SHARDS")]
    pub shards: PathBuf,
    /// Start from this language-model checkpoint (lm-train -o); only read.
    #[arg(long, value_name = "CKPT")]
    pub init: Option<PathBuf>,
    /// Range-test a classifier checkpoint (clf-train -o) instead of a language model; only
    /// read.
    #[arg(long, value_name = "CLF", conflicts_with = "init")]
    pub ckpt: Option<PathBuf>,
    /// With --ckpt: layer groups trained, counted from the head (fastai's freeze_to(-N)):
    /// 1 = head only (after learn.freeze()), 2 = head + last LSTM layer, ..., all.
    #[arg(long, value_name = "N|all", requires = "ckpt")]
    pub unfreeze_stage: Option<String>,
    /// With --init: allow a checkpoint whose vocab differs from the shards' (rows matched by
    /// token string, in memory only).
    #[arg(long, conflicts_with = "ckpt")]
    pub remap_vocab: bool,
    /// Train only the last layer group (embedding + decoder), as fastai's `freeze()`
    /// (language models; a classifier takes --unfreeze-stage).
    #[arg(long, conflicts_with = "ckpt")]
    pub freeze: bool,

    /// First learning rate.
    #[arg(long, default_value_t = 1e-7, value_name = "LR")]
    pub start_lr: f64,
    /// Learning rate the schedule reaches after --num-it iterations.
    #[arg(long, default_value_t = 10.0, value_name = "LR")]
    pub end_lr: f64,
    /// Iterations (optimiser steps); the data is cycled if it has fewer batches.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub num_it: usize,
    /// exp (fastai) or linear (Leslie Smith's original test).
    #[arg(long, value_enum, default_value_t = ScheduleKind::Exp)]
    pub schedule: ScheduleKind,
    /// Run all --num-it iterations, even when the loss diverges or is NaN.
    #[arg(long)]
    pub no_stop_div: bool,
    /// Record the validation loss after every step (torch-lr-finder's val_loader mode,
    /// Leslie Smith's paper) instead of the training batch's loss. Slower.
    #[arg(long)]
    pub valid_loss: bool,
    /// With --valid-loss and --ckpt: use only the first N validation batches (a language
    /// model validates on the whole split).
    #[arg(long, value_name = "N")]
    pub valid_batches: Option<usize>,
    /// Smoothing of the recorded loss (fastai's Recorder beta).
    #[arg(long, default_value_t = 0.98, value_name = "BETA")]
    pub smooth: f64,
    /// The suggestion reported as `lr`.
    #[arg(long, value_enum, default_value_t = Method::Valley)]
    pub suggest: Method,
    /// Run the test K times with different seeds and batch orders; report the median curve,
    /// the 10th–90th percentile band and each suggestion's spread.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub repeats: usize,
    /// Seed of initialisation, batch order and dropout (repeat k > 0 derives its own).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// JSON lines to FILE (written atomically) instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Chart of the curve: FILE.png or FILE.svg (log-lr axis, suggestions marked).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Replace existing -o / --plot files.
    #[arg(long)]
    pub force: bool,

    /// Batch size: parallel streams as lm-train [default: 64], or `auto` (language models):
    /// the largest micro-batch that fits (GPU memory on CUDA, --mem-budget on the CPU), probed
    /// as lm-train does, with gradient accumulation up to --effective-bs streams per step.
    /// With --ckpt: documents per batch [default: the checkpoint's training --bs].
    #[arg(long, value_name = "N|auto")]
    pub bs: Option<BatchSize>,
    /// Language models: streams per optimizer step, accumulated over micro-batches of --bs
    /// (default: --bs, or 64 with --bs auto). An out-of-memory error in a step halves the
    /// micro-batch and runs the step again, as lm-train.
    #[arg(long, value_name = "N", conflicts_with = "ckpt")]
    pub effective_bs: Option<usize>,
    /// RAM budget for --bs auto on the CPU (e.g. 4G, 512M; default: 80% of MemAvailable).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub mem_budget: Option<u64>,
    /// Back-propagation through time: sequence length of a batch, as lm-train [default: 72]
    /// (a classifier's is in its checkpoint).
    #[arg(long, value_name = "N", conflicts_with = "ckpt")]
    pub bptt: Option<usize>,
    /// Embedding size (from scratch; --init takes the checkpoint's).
    #[arg(long, value_name = "N", conflicts_with = "ckpt")]
    pub emb_sz: Option<i64>,
    /// LSTM hidden size (from scratch).
    #[arg(long, value_name = "N", conflicts_with = "ckpt")]
    pub n_hid: Option<i64>,
    /// LSTM layers (from scratch).
    #[arg(long, value_name = "N", conflicts_with = "ckpt")]
    pub n_layers: Option<i64>,
    /// Multiplies fastai's LM dropouts (0.25, 0.2, 0.02, 0.15, 0.1); a classifier keeps the
    /// dropouts of its checkpoint.
    #[arg(long, default_value_t = 1.0, conflicts_with = "ckpt")]
    pub drop_mult: f64,

    /// Adam β1 (fastai's lr_find keeps the optimiser's default momentum, 0.9).
    #[arg(long, default_value_t = 0.9)]
    pub mom: f64,
    #[command(flatten)]
    pub optim: OptimArgs,

    #[command(flatten)]
    pub run: RunArgs,

    /// Fail every forward/backward with more than N streams (or documents) as if out of
    /// memory: for tests of the back-off.
    #[arg(long, value_name = "N", hide = true)]
    pub simulate_oom_above: Option<usize>,

    #[command(flatten)]
    pub common: CommonArgs,
}
