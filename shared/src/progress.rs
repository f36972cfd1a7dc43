//! Progress on stderr: a bar on a terminal, JSON lines for machines, or nothing.
//!
//! `--progress auto` (the default) shows a bar only when stderr is a terminal and neither
//! `TERM=dumb` nor `NO_COLOR` asks for plain output, as fd and hyperfine do; piped or
//! redirected stderr gets no bar. `jsonl` writes `{"type":"progress",...}` records.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ProgressMode {
    #[default]
    Auto,
    Bar,
    Jsonl,
    None,
}

impl ProgressMode {
    /// Resolves `auto` against the environment.
    pub fn resolve(self, quiet: bool) -> ProgressMode {
        if quiet {
            return ProgressMode::None;
        }
        match self {
            ProgressMode::Auto => {
                let dumb = std::env::var("TERM").map(|t| t == "dumb").unwrap_or(false);
                if std::io::stderr().is_terminal() && !dumb {
                    ProgressMode::Bar
                } else {
                    ProgressMode::None
                }
            }
            m => m,
        }
    }
}

/// A progress reporter counting `unit`s (documents, bytes, steps) towards an optional total.
pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    tool: &'static str,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last_json: Instant,
}

impl Progress {
    pub fn new(
        mode: ProgressMode,
        tool: &'static str,
        unit: &'static str,
        total: Option<u64>,
    ) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let b = match total {
                Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let plain = std::env::var_os("NO_COLOR").is_some();
            let tmpl = match (total.is_some(), plain) {
                (true, false) => "{prefix} {bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]",
                (true, true) => "{prefix} {bar:30} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]",
                (false, _) => "{prefix} {spinner} {pos} {msg} [{elapsed_precise}]",
            };
            b.set_style(ProgressStyle::with_template(tmpl).expect("valid template"));
            b.set_prefix(tool);
            b.set_message(unit);
            b
        });
        let now = Instant::now();
        Progress {
            mode,
            bar,
            tool,
            unit,
            total,
            done: 0,
            start: now,
            last_json: now,
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if self.mode == ProgressMode::Jsonl && self.last_json.elapsed().as_secs_f64() >= 1.0 {
            self.last_json = Instant::now();
            self.emit_json();
        }
    }

    fn emit_json(&self) {
        let rec = serde_json::json!({
            "type": "progress", "schema": crate::metrics::SCHEMA, "tool": self.tool,
            "unit": self.unit, "done": self.done, "total": self.total,
            "elapsed_s": self.start.elapsed().as_secs_f64(),
        });
        let _ = writeln!(std::io::stderr(), "{rec}");
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if self.mode == ProgressMode::Jsonl {
            self.emit_json();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
