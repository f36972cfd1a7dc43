//! Command-line flags (raw `Args`; `train::Config` is the resolved form).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use shared::cli::{CommonArgs, EXIT_CODES_HELP};

const AFTER_HELP: &str = "\
Examples:
  lm-train shards/ -o lm/ --epochs 1                       # from scratch, fastai defaults
  lm-train shards/ -o lm0/ --init wt103/ --remap-vocab --freeze --epochs 1 --lr 2e-2
  lm-train shards/ -o lm1/ --init lm0/ --epochs 10 --lr 2e-3 --drop-mult 0.3
  lm-train shards/ -o lm1/ --resume                        # continue an interrupted run
  lm-train generate --ckpt lm1/ --prompt \"I liked this movie because\" --n-words 40
  lm-train import-fastai --weights lstm_fwd.pth --vocab itos_wt103.pkl -o wt103/
  lm-train export-fastai --ckpt lm1/ -o lm1.pth --vocab-out lm1_itos.pkl

Checkpoint (-o DIR, replaced atomically at every epoch end, every --save-every steps, on
Ctrl-C and at the end): config.json, vocab.json, model.safetensors (fastai tensor names),
optimizer.safetensors and train_state.json (for --resume).

Metrics: JSON lines on stdout (or --metrics FILE), one object per line with \"type\" one of
lm_start, lm_init, lm_step, lm_epoch, lm_checkpoint; fields carry units (tokens_per_s,
elapsed_s).

Environment: TORCH_CPP_LOG_LEVEL (INFO, WARNING, ERROR; default ERROR) sets which of
libtorch's own messages are printed.

";

#[derive(Debug, Parser)]
#[command(
    name = "lm-train",
    version,
    about = "Train a fastai AWD-LSTM language model (ULMFiT) on a shard set",
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
    /// Generate text from a checkpoint, like fastai's `LMLearner.predict`.
    Generate(GenerateArgs),
    /// Import a fastai AWD-LSTM language model (weights .pth and vocab itos .pkl, e.g.
    /// WikiText-103's lstm_fwd.pth + itos_wt103.pkl) as a checkpoint directory. Pickles are
    /// parsed without executing anything.
    ImportFastai(ImportFastaiArgs),
    /// Export a checkpoint as a PyTorch state dict (.pth) that fastai's AWD_LSTM +
    /// LinearDecoder load, and optionally its vocab as an itos pickle.
    ExportFastai(ExportFastaiArgs),
    /// Time a large matmul with libtorch (fp32 and bf16) and print GFLOP/s as JSON: the peak
    /// that benches/lm.sh relates training FLOP/s to.
    #[command(hide = true)]
    BenchMatmul(BenchMatmulArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchMatmulArgs {
    /// Square matrix size.
    #[arg(long, default_value_t = 2048)]
    pub n: i64,
    /// Seconds to time each precision.
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `--bs N` or `--bs auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Auto,
    Fixed(usize),
}

impl std::str::FromStr for BatchSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(BatchSize::Auto);
        }
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(BatchSize::Fixed(n)),
            _ => Err(format!("expected a positive number or auto, not {s:?}")),
        }
    }
}

impl std::fmt::Display for BatchSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchSize::Auto => f.write_str("auto"),
            BatchSize::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// A byte count with an optional K/M/G/T suffix (powers of 1024): `4G`, `512M`, `1.5G`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("{s:?}: unknown unit {c:?} (use K, M, G or T)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok((x * mult as f64) as u64),
        _ => Err(format!(
            "{s:?}: expected a size such as 4G, 512M or 1000000"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    /// bf16 where the device computes it natively (CPUs with AVX512-BF16/AMX, CUDA GPUs of
    /// compute capability ≥ 8.0) for LSTMs of hidden size ≥ 512; fp32 otherwise.
    Auto,
    Fp32,
    Bf16,
    /// CUDA only: fp16 compute with dynamic loss scaling.
    Fp16,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Shard set directory (from numericalize).
    #[arg(value_name = "SHARDS", required = true)]
    pub shards: Option<PathBuf>,
    /// Checkpoint directory to create (written atomically).
    #[arg(
        short = 'o',
        long,
        value_name = "DIR",
        required_unless_present = "dry_run"
    )]
    pub output: Option<PathBuf>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Continue the run saved in the output directory (same settings, same result).
    #[arg(long, conflicts_with_all = ["init", "force"])]
    pub resume: bool,
    /// Start from this checkpoint's weights (fine-tuning).
    #[arg(long, value_name = "CKPT")]
    pub init: Option<PathBuf>,
    /// With --init: allow a checkpoint whose vocab differs from the shards' (rows matched by
    /// token string; new tokens get the mean embedding and mean decoder bias).
    #[arg(long)]
    pub remap_vocab: bool,
    /// Train only the last layer group (embedding + decoder), as fastai's `freeze()`.
    #[arg(long)]
    pub freeze: bool,

    /// Epochs of the one-cycle schedule.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub epochs: usize,
    /// Stop after N optimizer steps (the schedule is laid over min(N, epochs × batches)).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Peak learning rate; one value, or one per layer group, comma-separated (layers, then
    /// embedding+decoder).
    #[arg(long, default_value = "1e-3", value_name = "LR", value_delimiter = ',')]
    pub lr: Vec<f64>,
    #[command(flatten)]
    pub one_cycle: OneCycleArgs,
    #[command(flatten)]
    pub optim: OptimArgs,

    /// Batch size (parallel streams per forward/backward), or `auto`: the largest that fits
    /// (GPU memory on CUDA, --mem-budget on the CPU), probed with forward+backward passes;
    /// gradient accumulation then keeps --effective-bs streams per optimizer step.
    #[arg(long, default_value = "64", value_name = "N|auto")]
    pub bs: BatchSize,
    /// Streams per optimizer step, accumulated over micro-batches of --bs (default: --bs, or
    /// 64 with --bs auto). An out-of-memory error in a step halves the micro-batch and retries.
    #[arg(long, value_name = "N")]
    pub effective_bs: Option<usize>,
    /// RAM budget for --bs auto on the CPU (e.g. 4G, 512M; default: 80% of MemAvailable).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub mem_budget: Option<u64>,
    /// Print the memory estimate (parameters, gradients, Adam state, activations) for this
    /// configuration and exit without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Back-propagation through time: sequence length of a batch.
    #[arg(long, default_value_t = 72)]
    pub bptt: usize,

    /// Embedding size (= output size of the last LSTM layer).
    #[arg(long, value_name = "N")]
    pub emb_sz: Option<i64>,
    /// LSTM hidden size.
    #[arg(long, value_name = "N")]
    pub n_hid: Option<i64>,
    /// LSTM layers.
    #[arg(long, value_name = "N")]
    pub n_layers: Option<i64>,
    /// Multiplies every dropout probability (fastai's drop_mult).
    #[arg(long, default_value_t = 1.0)]
    pub drop_mult: f64,
    /// Input dropout (before drop_mult).
    #[arg(long, default_value_t = 0.25)]
    pub input_p: f64,
    /// Weight dropout on hidden-to-hidden weights (before drop_mult).
    #[arg(long, default_value_t = 0.2)]
    pub weight_p: f64,
    /// Embedding row dropout (before drop_mult).
    #[arg(long, default_value_t = 0.02)]
    pub embed_p: f64,
    /// Dropout between LSTM layers (before drop_mult).
    #[arg(long, default_value_t = 0.15)]
    pub hidden_p: f64,
    /// Dropout before the decoder (before drop_mult).
    #[arg(long, default_value_t = 0.1)]
    pub output_p: f64,

    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Fail every forward/backward with more than N streams as if out of memory: for tests of
    /// the back-off.
    #[arg(long, value_name = "N", hide = true)]
    pub simulate_oom_above: Option<usize>,
}

// Flag groups that clf-train and lr-find flatten too, in this order in their `--help`. (Plain
// comments: a doc comment here would become the about text of the command that flattens it.)
// The help texts are lm-train's; the other tools word some of them differently
// ([`REWORDED`]) and apply theirs with `#[command(mut_args(|a| reword(a, TOOL)))]`.

/// A flag id and its help (`None`: no help).
pub type FlagHelp = (&'static str, Option<&'static str>);

/// The shared flags that clf-train and lr-find word differently from lm-train: per tool,
/// (flag id, that tool's help; `None`: no help).
#[rustfmt::skip]
pub const REWORDED: &[(&str, &[FlagHelp])] = &[
    ("clf-train", &[
        ("eps", Some("Adam epsilon")),
        ("wd", Some("Decoupled weight decay (not on BatchNorm parameters: fastai's wd_bn_bias=False)")),
        ("clip", Some("Clip the global gradient norm (fastai does not clip by default)")),
        ("alpha", Some("Activation regularisation on the encoder output (TextLearner's alpha)")),
        ("beta", Some("Temporal activation regularisation (TextLearner's beta)")),
        ("precision", Some("Compute precision of the encoder (weights and optimizer state stay fp32)")),
        ("valid_split", None),
        ("log_every", Some("Write a clf_step record every N steps")),
    ]),
    ("lr-find", &[
        ("eps", Some("Adam epsilon")),
        ("clip", Some("Clip the global gradient norm (off by default, as fastai's text learners)")),
        ("alpha", Some("Activation regularisation (AR; a classifier's on its sentence encoder output, as clf-train)")),
        ("beta", Some("Temporal activation regularisation (TAR)")),
        ("valid_split", None),
    ]),
];

/// Gives the flag `a` the help `tool` words it with in [`REWORDED`], if any. Through
/// `Command::mut_args`, so the flags keep their order (`mut_arg` would move each to the end,
/// and so reorder shell completions).
pub fn reword(a: clap::Arg, tool: &str) -> clap::Arg {
    let id = a.get_id().as_str();
    let flags = REWORDED
        .iter()
        .find(|(t, _)| *t == tool)
        .map_or(&[][..], |(_, f)| f);
    match flags.iter().find(|(f, _)| *f == id) {
        Some((_, help)) => a.help(*help),
        None => a,
    }
}

// One-cycle schedule (fastai's fit_one_cycle) and its β1 schedule.
#[derive(Debug, Clone, clap::Args)]
pub struct OneCycleArgs {
    /// One-cycle: start lr = lr / div.
    #[arg(long, default_value_t = 25.0)]
    pub div: f64,
    /// One-cycle: final lr = lr / div_final.
    #[arg(long, default_value_t = 1e5)]
    pub div_final: f64,
    /// One-cycle: fraction of steps with rising lr.
    #[arg(long, default_value_t = 0.25)]
    pub pct_start: f64,
    /// β1 schedule (start, middle, end): fastai's TextLearner moms.
    #[arg(long, default_values_t = [0.8, 0.7, 0.8], value_delimiter = ',', num_args = 3)]
    pub moms: Vec<f64>,
}

// Adam's β2, epsilon and weight decay, gradient clipping, and AWD-LSTM's AR/TAR.
#[derive(Debug, Clone, clap::Args)]
pub struct OptimArgs {
    /// Adam β2 (fastai's sqr_mom).
    #[arg(long, default_value_t = 0.99)]
    pub sqr_mom: f64,
    /// Adam epsilon (fastai: 1e-5).
    #[arg(long, default_value_t = 1e-5)]
    pub eps: f64,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub wd: f64,
    /// Clip the global gradient norm to this value (fastai's text learners do not clip by
    /// default).
    #[arg(long, value_name = "NORM")]
    pub clip: Option<f64>,
    /// Activation regularisation (AR) on the dropped-out last-layer output.
    #[arg(long, default_value_t = 2.0)]
    pub alpha: f64,
    /// Temporal activation regularisation (TAR) on the raw last-layer output.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
}

// Compute precision, device and the shard set's splits.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Compute precision (weights and optimizer state stay fp32).
    #[arg(long, value_enum, default_value_t = PrecisionArg::Auto)]
    pub precision: PrecisionArg,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value = "train", value_name = "NAME")]
    pub train_split: String,
    /// Validation split (skipped with a warning when the shard set has none).
    #[arg(long, default_value = "valid", value_name = "NAME")]
    pub valid_split: String,
}

// Step records, periodic checkpoints, the metrics file and the test-only interrupt.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Write a lm_step metrics record every N steps.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub log_every: u64,
    /// Also save a checkpoint every N steps (0: only at epoch ends, Ctrl-C and the end).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub save_every: u64,
    /// Metrics JSON lines to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Behave as if Ctrl-C came right after step N (save, exit 130): for tests.
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after: Option<u64>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub ckpt: PathBuf,
    /// Text to continue (tokenized as fastai does, with xxbos).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub n_words: usize,
    /// Sampling temperature (probabilities ^ (1/T)).
    #[arg(long, default_value_t = 1.0, value_name = "T")]
    pub temperature: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Allow sampling xxunk (fastai's no_unk=False).
    #[arg(long)]
    pub allow_unk: bool,
    /// Print the tokens, one line, instead of decoded text.
    #[arg(long)]
    pub tokens: bool,
    /// Join words as text (no space before punctuation or contractions) instead of fastai's
    /// plain space-join.
    #[arg(long)]
    pub tidy: bool,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Example:
  lm-train import-fastai --weights lstm_fwd.pth --vocab itos_wt103.pkl -o wt103/
  lm-train shards/ -o lm0/ --init wt103/ --remap-vocab --freeze --epochs 1 --lr 2e-2")]
pub struct ImportFastaiArgs {
    /// fastai weights: torch.save(model.state_dict()) or learn.save(...) output (.pth, zip or
    /// legacy format).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// fastai vocab: a pickled list of tokens (itos_*.pkl), v1 or v2 special-token order.
    #[arg(long, value_name = "FILE")]
    pub vocab: PathBuf,
    /// Checkpoint directory to create (written atomically).
    #[arg(
        short = 'o',
        long = "out",
        visible_alias = "output",
        value_name = "DIR"
    )]
    pub output: PathBuf,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Dropouts of the checkpoint's config: fastai's awd_lstm_lm_config times this (training
    /// with --init sets its own).
    #[arg(long, default_value_t = 1.0)]
    pub drop_mult: f64,
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Example:
  lm-train export-fastai --ckpt lm1/ -o lm1.pth --vocab-out lm1_itos.pkl
  # python: learn.load_pretrained('lm1.pth', 'lm1_itos.pkl'), or
  #         model.load_state_dict(torch.load('lm1.pth'))")]
pub struct ExportFastaiArgs {
    /// Checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub ckpt: PathBuf,
    /// State dict file to write (torch zip format, loads with torch.load(weights_only=True)).
    #[arg(
        short = 'o',
        long = "out",
        visible_alias = "output",
        value_name = "FILE"
    )]
    pub output: PathBuf,
    /// Also write the vocab as a pickled list of tokens (fastai's itos file).
    #[arg(long, value_name = "FILE")]
    pub vocab_out: Option<PathBuf>,
    /// Replace output files that exist.
    #[arg(long)]
    pub force: bool,
}
