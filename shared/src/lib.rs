//! # shared: the contracts between the ulmfit-rs tools
//!
//! Every tool in this workspace is a separate binary (`tokenize`, `numericalize`, `lm-train`,
//! `clf-train`, `lr-find`, `bias-audit`). They talk to each other only through the formats
//! defined here, so any stage can be replaced by another program that speaks the same format.
//!
//! | contract | module | producer → consumer |
//! |---|---|---|
//! | token stream (JSON lines or plain text) | [`stream`] | `tokenize` (or any script) → `numericalize` |
//! | vocabulary (`vocab.json`) | [`vocab`] | `numericalize` → everything that maps ids to tokens |
//! | shard set (a directory, mmap-able) | [`shards`] | `numericalize` → the trainers |
//! | shard archive (`.tar.zst`) | [`archive`] | caching and transfer of shard sets |
//! | metrics (JSON lines tagged by `type`) | [`metrics`] | every tool → `jq`, pandas, `plot` |
//!
//! Conventions every tool follows live here too: [`cli`] (exit codes, one-line errors,
//! shared flags), [`atomic`] (outputs appear whole or not at all) and [`progress`]
//! (bars on a terminal, JSON lines or nothing otherwise).

#[cfg(target_endian = "big")]
compile_error!("the shard format is little-endian and is mapped without conversion");

pub mod archive;
pub mod atomic;
pub mod cli;
pub mod csvquote;
pub mod error;
pub mod input;
pub mod metrics;
pub mod pickle;
pub mod plot;
pub mod progress;
pub mod shards;
pub mod stream;
pub mod tokmap;
pub mod torch_file;
pub mod vocab;

pub use error::FormatError;
