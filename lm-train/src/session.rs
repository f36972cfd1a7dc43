//! The parts of a training run that lm-train and clf-train share: checking the checkpoint
//! directory before anything starts, the settings of a run being resumed, the step progress,
//! and the notes at the end. The tool's name prefixes every message.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use shared::cli::CommonArgs;
use shared::progress::Progress;
use shared::shards::ShardSet;

/// A note on stderr (`TOOL: msg`) unless `--quiet`.
pub fn note(tool: &str, quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        eprintln!("{tool}: {msg}");
    }
}

/// Checks the checkpoint directory `out` before a run: `--resume` needs it, otherwise it must
/// not exist unless `--force`; with `dry_run` (nothing is written) only its parent is checked,
/// which must exist.
pub fn check_output_dir(out: &Path, resume: bool, force: bool, dry_run: bool) -> Result<()> {
    if dry_run {
        // nothing is written
    } else if resume {
        if !out.is_dir() {
            bail!(
                "{}: nothing to resume (no such checkpoint directory)",
                out.display()
            );
        }
    } else if out.exists() && !force {
        bail!(
            "{}: already exists (use --force to replace it, or --resume to continue it)",
            out.display()
        );
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(
                "{}: the directory {} does not exist",
                out.display(),
                parent.display()
            );
        }
    }
    Ok(())
}

/// The training settings saved in the checkpoint `out` being resumed; the shards must have
/// the vocab (hash `vocab_hash`) it was trained with.
pub fn resume_settings<T: Clone>(
    training: Option<&T>,
    vocab_hash: &str,
    set: &ShardSet,
    out: &Path,
) -> Result<T> {
    let settings = training.cloned().with_context(|| {
        format!(
            "{}: checkpoint has no training settings; cannot resume",
            out.display()
        )
    })?;
    set.require_vocab(vocab_hash, "the vocab of the checkpoint being resumed")?;
    Ok(settings)
}

/// The note of a resumed run that has nothing left to do.
pub fn note_complete(tool: &str, quiet: bool, out: &Path, step: u64) {
    note(
        tool,
        quiet,
        format!(
            "{}: this run is already complete (step {step}); nothing to do",
            out.display()
        ),
    );
}

/// What a training run's state says of its past, for [`start_steps`]: the steps done and the
/// seconds spent (before a `--resume`).
pub trait RunState {
    fn step(&self) -> u64;
    fn elapsed_s(&self) -> f64;
}

/// The progress of a run's `total` steps, those `state` has done counted, and the clock of
/// its elapsed time, that `state` already spent included.
pub fn start_steps(
    tool: &'static str,
    common: &CommonArgs,
    total: u64,
    state: &impl RunState,
) -> (Progress, RunClock) {
    let mode = common.progress.resolve(common.quiet);
    let mut progress = Progress::new(mode, tool, "steps", Some(total));
    progress.inc(state.step());
    let clock = RunClock {
        t0: Instant::now(),
        before_s: state.elapsed_s(),
    };
    (progress, clock)
}

/// A run's elapsed wall-clock time, counting the time of the run it resumes.
pub struct RunClock {
    t0: Instant,
    before_s: f64,
}

impl RunClock {
    pub fn elapsed_s(&self) -> f64 {
        self.before_s + self.t0.elapsed().as_secs_f64()
    }
}

/// What a diverged run leaves: the last checkpoint saved (at step `last_saved`), if any.
pub fn kept_checkpoint(last_saved: Option<u64>, out: &Path) -> String {
    match last_saved {
        Some(k) => format!(
            "the last good checkpoint (step {k}) is kept in {}",
            out.display()
        ),
        None => "no checkpoint had been written yet".to_string(),
    }
}

/// Ends a finished run: the progress bar, then the closing note.
pub fn finish(tool: &str, quiet: bool, progress: &mut Progress, steps: u64, out: &Path) {
    progress.finish();
    note(
        tool,
        quiet,
        format!("{steps} steps done; checkpoint in {}", out.display()),
    );
}
