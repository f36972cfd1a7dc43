//! Command-line flags (raw `Args`; the training `Config` is resolved in `train`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use lm_train::args::{reword, LogArgs, OneCycleArgs, OptimArgs, PrecisionArg, RunArgs};

use crate::fair::AdversaryMode;
use shared::cli::{CommonArgs, EXIT_CODES_HELP};

pub const DEFAULT_UNFREEZE: &str = "1:2e-2,2:1e-2,3:5e-3,all:1e-3x2";

const AFTER_HELP: &str = "\
Examples:
  clf-train shards/ --encoder lm/ -o clf/                     # fastbook ch. 10 schedule
  clf-train shards/ --encoder lm/ -o clf/ --unfreeze '1:2e-2,2:1e-2,3:5e-3,all:1e-3x4'
  clf-train shards/ --encoder lm/ -o reg/ --label-col rating --task regression --y-range 0 10.5
  clf-train shards/ --encoder lm/ -o clf/ --resume              # continue an interrupted run
  clf-train shards/ --encoder lm/ -o clf/ --adversary sex --adversary-weight 1  # debias against sex
  clf-train predict --ckpt clf/ shards/ --split valid > preds.jsonl
  clf-train predict --ckpt clf/ shards/ | bias-audit - --y-true label --y-pred pred --protected sex --privileged M

Gradual unfreezing (--unfreeze): comma-separated phases GROUPS:LR[xEPOCHS], each one
fit_one_cycle over EPOCHS (default 1) with the optimizer state carried over, as fastai's
learner does across fit calls. GROUPS is how many layer groups train, counted from the head
(fastai's freeze_to(-GROUPS)); `all` trains every group (unfreeze()). The layer groups are
fastai's awd_lstm_clas_split: embedding, each LSTM layer, head. A phase training only the
head uses LR for every group (fit_one_cycle(1, LR)); other phases spread slice(LR/disc_div,
LR) over all groups geometrically (fastai's even_mults), with --disc-div 2.6^4. The default
is the lesson's: head 2e-2, freeze_to(-2) 1e-2, freeze_to(-3) 5e-3, unfreeze 1e-3 × 2 epochs.

Task (--task auto): numbers with more than 10 distinct values in the training split are a
regression target; otherwise each distinct value is a class; --label-delim makes it
multi-label. Classes are the training split's values, sorted.

Checkpoint (-o DIR, replaced atomically at every epoch end, every --save-every steps, on
Ctrl-C and at the end): config.json (format ulmfit-clf), vocab.json, model.safetensors
(fastai's classifier state_dict names), optimizer.safetensors and train_state.json.

Metrics: JSON lines on stdout (or --metrics FILE), \"type\" one of clf_start, clf_phase,
clf_step, clf_epoch, clf_checkpoint (and clf_reweigh / clf_adversary with those flags).

Bias mitigation (classification): --reweigh COL weighs each training document by
P(g)P(y)/P(g,y) of its group g in COL and class y (Kamiran & Calders). --adversary COL trains
an adversary to predict COL from the head's output (and the true label, --adversary-mode
odds) and steps the classifier along g - proj_{g_A}(g) - alpha*g_A per parameter tensor
(Zhang et al. 2018, as AIF360), alpha = --adversary-weight; adv_loss / adv_accuracy are
logged per step and epoch.

";

const PREDICT_HELP: &str = "\
Output: one JSON object per document, in input-row order: every passthrough field of the
shard set (id, label, protected attributes; missing values are null), `split`, `row`, then
the prediction (--pred-col, default `pred`: the class label; for multi-label the labels
joined with the training --label-delim; for regression the number), for classification the
probabilities (--probs-col, default `probs`: label → p) and --score-col (default `score`):
P(second class) for two classes (the positive one when the labels are 0/1, neg/pos, ...),
else P(predicted class); for regression the predicted value.

";

#[derive(Debug, Parser)]
#[command(
    name = "clf-train",
    version,
    about = "Train a ULMFiT text classifier or regressor on a fine-tuned AWD-LSTM encoder",
    after_help = format!("{AFTER_HELP}{EXIT_CODES_HELP}"),
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Predict every document of a shard set (JSON lines on stdout, in input order).
    #[command(after_help = format!("{PREDICT_HELP}{EXIT_CODES_HELP}"))]
    Predict(PredictArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    /// Regression for numbers with more than 10 distinct values, multi-label with
    /// --label-delim, else single-label classification.
    Auto,
    Classification,
    MultiLabel,
    Regression,
}

#[derive(Debug, Clone, clap::Args)]
// lm-train's flag groups, with clf-train's own help where it words them differently.
#[command(mut_args(|a| reword(a, crate::TOOL)))]
pub struct TrainArgs {
    /// Shard set directory (numericalized with the encoder's vocab).
    #[arg(value_name = "SHARDS", required = true)]
    pub shards: Option<PathBuf>,
    /// Language-model checkpoint (lm-train) whose encoder the classifier starts from.
    #[arg(long, value_name = "LM_DIR", required_unless_present = "resume")]
    pub encoder: Option<PathBuf>,
    /// Classifier checkpoint directory to create (written atomically).
    #[arg(short = 'o', long, value_name = "DIR", required = true)]
    pub output: Option<PathBuf>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Continue the run saved in the output directory (same settings, same result).
    #[arg(long, conflicts_with_all = ["force", "encoder"])]
    pub resume: bool,

    /// The target column of the shard set's passthrough fields.
    #[arg(long, default_value = "label", value_name = "COL")]
    pub label_col: String,
    #[arg(long, value_enum, default_value_t = TaskArg::Auto)]
    pub task: TaskArg,
    /// Multi-label: labels within one value are separated by this string (e.g. ';').
    #[arg(long, value_name = "DELIM")]
    pub label_delim: Option<String>,
    /// Regression: squash outputs into (LO, HI) with fastai's SigmoidRange.
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
    pub y_range: Option<Vec<f64>>,

    /// Gradual-unfreezing schedule: GROUPS:LR[xEPOCHS],... (see below).
    #[arg(long, default_value = DEFAULT_UNFREEZE, value_name = "SPEC")]
    pub unfreeze: String,
    /// Discriminative learning rates: phases with more than the head train with
    /// slice(LR/disc_div, LR) spread over the layer groups.
    #[arg(long, default_value_t = 2.6f64.powi(4), value_name = "X")]
    pub disc_div: f64,
    #[command(flatten)]
    pub one_cycle: OneCycleArgs,
    #[command(flatten)]
    pub optim: OptimArgs,

    /// Documents per batch.
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// Chunk length the encoder runs documents in (fastai's seq_len).
    #[arg(long, default_value_t = 72)]
    pub bptt: usize,
    /// Gradients (and pooling) only over the chunks of the last MAX_LEN tokens.
    #[arg(long, default_value_t = 1440, value_name = "N")]
    pub max_len: usize,
    /// Multiplies the encoder dropouts (0.4, 0.5, 0.05, 0.3) and the head's first (0.4).
    #[arg(long, default_value_t = 0.5)]
    pub drop_mult: f64,
    /// Hidden sizes of the head (fastai's lin_ftrs).
    #[arg(
        long,
        default_value = "50",
        value_delimiter = ',',
        value_name = "N,..."
    )]
    pub lin_ftrs: Vec<i64>,
    /// Dropout before each hidden head layer (fastai's ps; not scaled by --drop-mult).
    #[arg(
        long,
        default_value = "0.1",
        value_delimiter = ',',
        value_name = "P,..."
    )]
    pub ps: Vec<f64>,

    /// Kamiran–Calders reweighing: each training document weighs P(g)·P(y)/P(g,y) for its
    /// group g in this protected column and its class y (classification).
    #[arg(long, value_name = "COL")]
    pub reweigh: Option<String>,
    /// Adversarial debiasing (Zhang et al. 2018): an adversary learns to predict this protected
    /// column from the classifier's output, and the classifier is trained against it.
    #[arg(long, value_name = "COL")]
    pub adversary: Option<String>,
    /// How hard the classifier works against the adversary (alpha in g − proj_{g_A} g − alpha·g_A)
    /// [default: 0.1, AIF360's].
    #[arg(long, value_name = "ALPHA", allow_negative_numbers = true)]
    pub adversary_weight: Option<f64>,
    /// The adversary's Adam learning rate [default: 1e-3].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub adversary_lr: Option<f64>,
    /// What the adversary sees: the prediction (parity) or the prediction and the true label
    /// (odds: equalized odds / equal opportunity) [default: odds].
    #[arg(long, value_enum, value_name = "MODE")]
    pub adversary_mode: Option<AdversaryMode>,

    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PredictArgs {
    /// Classifier checkpoint directory (from clf-train).
    #[arg(long, value_name = "DIR")]
    pub ckpt: PathBuf,
    /// Shard set (numericalized with the checkpoint's vocab).
    #[arg(value_name = "SHARDS")]
    pub shards: PathBuf,
    /// Only this split (default: every split, merged in input-row order).
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
    /// Write to FILE (atomically) instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// Name of the prediction field.
    #[arg(long, default_value = "pred", value_name = "NAME")]
    pub pred_col: String,
    /// Name of the probabilities field (classification).
    #[arg(long, default_value = "probs", value_name = "NAME")]
    pub probs_col: String,
    /// Name of the score field (P(positive) for binary; the value for regression).
    #[arg(long, default_value = "score", value_name = "NAME")]
    pub score_col: String,
    /// Multi-label: a label is predicted when its probability is at least this.
    #[arg(long, default_value_t = 0.5)]
    pub thresh: f64,
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub precision: PrecisionArg,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}
