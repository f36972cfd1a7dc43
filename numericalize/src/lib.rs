//! `numericalize`: token streams in, a vocab and a memory-mapped shard set out.
//!
//! It does what fastai's `Numericalize` does (vocab with `max_vocab` 60,000 and `min_freq` 3,
//! special tokens first, padded to a multiple of 8), but as a stage of its own whose output is a
//! verified, self-describing directory (see `shared::shards`). It also splits the corpus
//! (`--split-col` or `--valid-pct`) and offers the map-reduce steps that let preprocessing run
//! across machines: `count` (map), `merge-counts` (reduce to a vocab), then apply that vocab to
//! each piece with `--vocab` and join the pieces with `cat`.
//!
//! One pass over the input parses documents (in parallel, chunk by chunk) and spools token ids
//! to an unlinked temporary file; a second pass over the spool writes the shards. Memory holds
//! the token dictionary and a few numbers per document, never the corpus.

pub mod args;
pub mod build;
pub mod counts;
pub mod ops;
mod parse;

use anyhow::Result;

pub use args::{Args, Command};

/// Runs the tool; returns the exit code.
pub fn run(args: Args) -> Result<i32> {
    args.common.init_threads()?;
    match args.command {
        None => build::run(&args.build, &args.common),
        Some(Command::Count(a)) => counts::run_count(&a, &args.common),
        Some(Command::MergeCounts(a)) => counts::run_merge(&a, &args.common),
        Some(Command::Cat(a)) => ops::run_cat(&a, &args.common),
        Some(Command::Pack(a)) => ops::run_pack(&a, &args.common),
        Some(Command::Unpack(a)) => ops::run_unpack(&a, &args.common),
        Some(Command::Verify(a)) => ops::run_verify(&a, &args.common),
    }?;
    Ok(shared::cli::EXIT_OK)
}
