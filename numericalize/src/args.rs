//! Command line of `numericalize`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use shared::cli::CommonArgs;
use shared::stream::StreamFormat;

const AFTER_HELP: &str = "\
Examples:
  tokenize texts.csv --keep label --keep is_valid | numericalize -o shards/ --split-col is_valid
  numericalize tokens.jsonl -o shards/ --valid-pct 0.1 --seed 42
  numericalize clf_tokens.jsonl -o clf_shards/ --vocab lm_shards/      # reuse the LM's vocab

Map-reduce (e.g. with GNU parallel, one piece per machine or core):
  parallel numericalize count {} -o {.}.counts.json ::: part-*.jsonl
  numericalize merge-counts part-*.counts.json -o vocab.json
  parallel numericalize {} --vocab vocab.json -o {.}.shards ::: part-*.jsonl
  numericalize cat part-*.shards -o all.shards

";

#[derive(Debug, Parser)]
#[command(
    name = "numericalize",
    version,
    about = "Token stream (JSON lines or plain text) → vocab + memory-mapped shard set",
    long_about = "Reads a token stream (tokenize's JSON lines, or plain text with one document per line and \
                  tokens separated by spaces), builds a vocab as fastai does (or applies an existing one), \
                  splits the documents, and publishes a verified shard set directory atomically.",
    args_conflicts_with_subcommands = true,
    after_help = format!("{AFTER_HELP}{}", shared::cli::EXIT_CODES_HELP)
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options shared by the build and count steps: how to read the input.
#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    /// Input token streams (files, or - for stdin; stdin when none).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Input form: JSON lines with a "tokens" array, or plain text (auto: by the first byte).
    #[arg(long, value_enum, default_value_t = StreamFormat::Auto)]
    pub input_format: StreamFormat,
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    #[arg(long)]
    pub lossy: bool,
    /// Empty or whitespace-only input gives a valid empty shard set (one empty `train` split)
    /// instead of an error.
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Output shard set directory (published atomically).
    #[arg(short = 'o', long = "output", value_name = "SHARDS")]
    pub output: Option<PathBuf>,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
    /// Use this vocab instead of building one: a vocab.json, or a shard set / checkpoint directory
    /// holding one. Tokens not in it become xxunk.
    #[arg(long, value_name = "VOCAB")]
    pub vocab: Option<PathBuf>,
    /// Keep at most this many tokens (fastai's max_vocab).
    #[arg(long, default_value_t = shared::vocab::DEFAULT_MAX_VOCAB)]
    pub max_vocab: usize,
    /// Keep tokens seen at least this often (fastai's min_freq).
    #[arg(long, default_value_t = shared::vocab::DEFAULT_MIN_FREQ)]
    pub min_freq: u64,
    /// Take each document's split from this field: True/1/valid → valid, False/0/train → train,
    /// test → test, any other simple name as is.
    #[arg(long, value_name = "COL", conflicts_with = "valid_pct")]
    pub split_col: Option<String>,
    /// Put this fraction of documents (chosen at random with --seed) in the valid split.
    #[arg(long, value_name = "P")]
    pub valid_pct: Option<f64>,
    /// Seed for --valid-pct.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the summary metrics record here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Map step: count tokens of one piece of the corpus (first-seen order kept for ties).
    Count(CountArgs),
    /// Reduce step: merge count files (in the order given) into a vocab.json.
    MergeCounts(MergeArgs),
    /// Concatenate shard sets that share a vocab into one.
    Cat(CatArgs),
    /// Pack a shard set into a zstd-compressed tar archive (deterministic bytes).
    Pack(PackArgs),
    /// Unpack an archive made by `pack` into a shard set directory and verify it.
    Unpack(UnpackArgs),
    /// Verify a shard set (headers, sizes, checksums, id ranges) and print its manifest summary.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct CountArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Output counts file (JSON).
    #[arg(short = 'o', long = "output", value_name = "COUNTS")]
    pub output: PathBuf,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Count files made by `numericalize count`, in corpus order.
    #[arg(required = true, value_name = "COUNTS")]
    pub inputs: Vec<PathBuf>,
    /// Output vocab.json.
    #[arg(short = 'o', long = "output", value_name = "VOCAB")]
    pub output: PathBuf,
    #[arg(long)]
    pub force: bool,
    #[arg(long, default_value_t = shared::vocab::DEFAULT_MAX_VOCAB)]
    pub max_vocab: usize,
    #[arg(long, default_value_t = shared::vocab::DEFAULT_MIN_FREQ)]
    pub min_freq: u64,
}

#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// Shard sets to join, in order.
    #[arg(required = true, value_name = "SHARDS")]
    pub inputs: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_name = "SHARDS")]
    pub output: PathBuf,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct PackArgs {
    #[arg(value_name = "SHARDS")]
    pub input: PathBuf,
    /// Output archive (conventionally .tar.zst).
    #[arg(short = 'o', long = "output", value_name = "ARCHIVE")]
    pub output: PathBuf,
    #[arg(long)]
    pub force: bool,
    /// zstd level (1-19).
    #[arg(long, default_value_t = 9)]
    pub level: i32,
}

#[derive(Debug, clap::Args)]
pub struct UnpackArgs {
    #[arg(value_name = "ARCHIVE")]
    pub input: PathBuf,
    #[arg(short = 'o', long = "output", value_name = "SHARDS")]
    pub output: PathBuf,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Shard set directory or archive.
    #[arg(value_name = "SHARDS")]
    pub input: PathBuf,
}
