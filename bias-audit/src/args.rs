//! Command line of `bias-audit`: raw [`Args`] as typed, resolved into a [`crate::Config`].

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use shared::cli::CommonArgs;

const AFTER_HELP: &str = "\
Examples:
  bias-audit ../shared/peer/fixtures/adult_preds.csv --protected sex --privileged Male
  bias-audit preds.jsonl --y-true label --y-pred pred --favorable pos \\
      --protected sex --protected race --privileged 'Male|White' --bootstrap 1000 --seed 1
  clf-train predict --ckpt clf/ shards/ | bias-audit - --y-true label --y-pred pred --favorable pos \\
      --protected sex --privileged Male --fail-if 'disparate_impact<0.8' \\
      --fail-if 'abs(equal_opportunity_difference)>0.1' --json-out audit.json --plot rates.png

Labels: a label is favorable when it equals --favorable, compared as numbers when both sides
are numbers, else as whitespace-stripped strings (as AIF360/fairlearn reference scripts do).
Signs: AIF360 metrics are unprivileged - privileged (ratios unprivileged / privileged);
fairlearn metrics are max - min and min / max over the raw groups. 0/0 is written as null.

Gates (--fail-if, repeatable): METRIC OP NUMBER or abs(METRIC) OP NUMBER, OP one of
< <= > >= == !=. METRIC is a headline name (e.g. disparate_impact, demographic_parity_ratio,
fairlearn.equalized_odds_difference) or a dotted path into the JSON record
(aif360.per_group.unprivileged.tpr, fairlearn.by_group.Female.tpr). A gate on an undefined
(null) metric counts as violated.

";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Task {
    /// classification unless --favorable is absent and the labels are numbers with more than
    /// two distinct values
    Auto,
    Classification,
    Regression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// by extension (.csv, .tsv, .jsonl/.json/.ndjson), else by the first byte (`{` = JSON lines)
    Auto,
    Csv,
    Tsv,
    Jsonl,
}

const PROBE_HELP: &str = "\
Examples:
  bias-audit probe --ckpt lm/ --shards shards/ --protected sex
  bias-audit probe --ckpt clf/ --shards shards/ --protected sex --max-docs 8000 --json-out probe.json

Features: clf-train's sentence encoder and concat pooling ([last token's state, max, mean]
of the encoder output, 3 x emb numbers per document) of an lm-train or clf-train checkpoint,
without dropout. Documents without a value in the protected column are left out. The probe
is a multinomial logistic regression (features standardized on the training part, L2
penalty, full-batch Adam), trained on a stratified, seeded part and scored on the held-out
part against the majority-class baseline.

";

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Does the encoder encode a protected attribute? Train a probe on the encoder's pooled
    /// features and report its held-out accuracy and AUC against the majority baseline.
    #[command(after_help = format!("{PROBE_HELP}{}", shared::cli::EXIT_CODES_HELP))]
    Probe(ProbeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// A language-model (lm-train) or classifier (clf-train) checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub ckpt: PathBuf,
    /// Shard set (numericalized with the checkpoint's vocab) whose documents are probed.
    #[arg(long, value_name = "DIR")]
    pub shards: PathBuf,
    /// The protected column of the shard set's passthrough fields.
    #[arg(long, value_name = "COL")]
    pub protected: String,
    /// Only this split (default: every split).
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
    /// Fraction of the documents held out (stratified by group) to score the probe.
    #[arg(long, value_name = "FRAC", default_value_t = 0.3)]
    pub held_out: f64,
    /// Probe a stratified random sample of at most N documents (faster on large sets).
    #[arg(long, value_name = "N")]
    pub max_docs: Option<usize>,
    /// L2 penalty of the logistic regression (on standardized features).
    #[arg(long, default_value_t = 1e-3)]
    pub l2: f64,
    /// Weight each group n / (groups·n_group) in the probe's loss, so a rare group is not
    /// ignored (for imbalanced attributes: compare balanced accuracy then).
    #[arg(long)]
    pub balanced: bool,
    /// Full-batch optimizer iterations of the probe.
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub iterations: u64,
    /// Seed of the split and the sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Documents per encoder batch.
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print one JSON record (type probe) on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON record to this file (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Replace the --json-out file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Parser)]
#[command(
    name = "bias-audit",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    about = "Group-fairness metrics of predictions (AIF360 and fairlearn conventions), with bootstrap intervals and gates",
    long_about = "Reads predictions (CSV, TSV or JSON lines: a true label, a predicted label, an optional \
                  score and protected-attribute columns) and reports AIF360's and fairlearn's group \
                  metrics per group and overall: a table on stdout, or one JSON record (--json, \
                  --json-out), and a PNG bar chart of per-group rates (--plot). --fail-if gates make \
                  it a pipeline check (exit 1 when violated).",
    after_help = format!("{AFTER_HELP}{}", shared::cli::EXIT_CODES_HELP)
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Predictions file: CSV, TSV or JSON lines (- for stdin).
    #[arg(value_name = "PREDICTIONS", default_value = "-")]
    pub input: PathBuf,
    /// Column of the true label (or true value for regression).
    #[arg(long, value_name = "COL", default_value = "y_true")]
    pub y_true: String,
    /// Column of the predicted label (or predicted value).
    #[arg(long, value_name = "COL", default_value = "y_pred")]
    pub y_pred: String,
    /// Column of the score (probability of the favorable label) for ROC AUC [default: score,
    /// when present].
    #[arg(long, value_name = "COL")]
    pub score: Option<String>,
    /// Protected-attribute column; repeat for intersectional groups ("Female|Black").
    #[arg(long, value_name = "COL", required = true)]
    pub protected: Vec<String>,
    /// Value of the privileged group ('Male|White' for two --protected columns). Needed for the
    /// AIF360 metrics and the privileged-vs-rest fairlearn variant.
    #[arg(long, value_name = "VALUE")]
    pub privileged: Option<String>,
    /// The favorable label; every other label is unfavorable [default: 1].
    #[arg(long, value_name = "VALUE")]
    pub favorable: Option<String>,
    /// Classification or regression predictions.
    #[arg(long, value_enum, default_value_t = Task::Auto)]
    pub task: Task,
    /// Input form.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub input_format: InputFormat,
    /// Bootstrap resamples for 95% confidence intervals of the headline metrics (0 = none).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Exit 1 when this condition holds, e.g. 'disparate_impact<0.8' (repeatable).
    #[arg(long = "fail-if", value_name = "EXPR")]
    pub fail_if: Vec<String>,
    /// Print one JSON record on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON record to this file (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Write a PNG bar chart of per-group rates.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Replace output files that exist.
    #[arg(long)]
    pub force: bool,
    /// Warn about groups with fewer rows than this.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub min_group_size: u64,
    /// Warn about groups with fewer favorable (or unfavorable) true labels than this.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub min_positives: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}
