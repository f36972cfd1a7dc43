//! `lm-train`: ULMFiT / fastai AWD-LSTM language-model training on shard sets, with tch.
//!
//! The pieces a classifier reuses are public modules: [`model`] (AWD-LSTM encoder under
//! fastai's names), [`optim`] (fastai's AdamW with per-group learning rates, one-cycle),
//! [`checkpoint`] (reading/writing checkpoint directories, vocab remapping), [`data`] (LM batch
//! layout over mmap'd splits).

pub mod args;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod generate;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod runtime;
pub mod train;

use anyhow::Result;
use clap::Parser;

pub use args::{Args, Command};

pub const TOOL: &str = "lm-train";

/// Runs the tool as the binary does, from command-line arguments.
pub fn run_from<I, T>(argv: I) -> Result<i32>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            // --help / --version
            e.print()?;
            return Ok(0);
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "{}",
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
            ))
        }
    };
    run(args)
}

pub fn run(args: Args) -> Result<i32> {
    match args.command {
        Some(Command::Generate(g)) => generate::run(g, &args.common),
        None => train::run(args.train, &args.common),
    }
}
