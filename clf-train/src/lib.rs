//! `clf-train`: ULMFiT stage 3 — a classifier or regressor head on a fine-tuned AWD-LSTM
//! encoder, trained with gradual unfreezing, discriminative learning rates and one-cycle
//! schedules (fastai's `text_classifier_learner` recipe), plus `predict`.
//!
//! Reuses lm-train's encoder ([`lm_train::model::AwdLstm`]), optimizer
//! ([`lm_train::optim::AdamW`], [`lm_train::optim::OneCycle`]), checkpoint reading and runtime.

pub mod args;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod fair;
pub mod metrics;
pub mod micro;
pub mod model;
pub mod optim;
pub mod predict;
pub mod schedule;
pub mod train;

use anyhow::Result;

pub use args::{Args, Command};

pub const TOOL: &str = "clf-train";

/// Runs the tool as the binary does, from command-line arguments.
pub fn run_from<I, T>(argv: I) -> Result<i32>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    lm_train::parse_and_run(argv, run)
}

pub fn run(args: Args) -> Result<i32> {
    match args.command {
        Some(Command::Predict(p)) => predict::run(p, &args.common),
        None => train::run(args.train, &args.common),
    }
}
