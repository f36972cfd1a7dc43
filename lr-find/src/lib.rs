//! `lr-find`: Leslie Smith's learning-rate range test as fastai's `learn.lr_find()` runs it,
//! on lm-train's language model (from scratch or `--init CKPT`).
//!
//! The pieces, each testable alone:
//! * [`schedule`]: the exponential / linear lr schedule, fastai's smoothed loss and stop rule;
//! * [`finder`]: the test loop over any [`finder::RangeTestModel`] (one training step at a
//!   given lr, and a validation loss): the language model in [`lm`], a classifier later;
//! * [`suggest`]: fastai v2's `valley`, `steep`, `minimum`, `slide`, float32 as fastai;
//! * [`stats`]: median curve, 10th–90th percentile band and spreads over `--repeats`;
//! * [`records`]: the JSON-lines output; [`chart`]: PNG/SVG and terminal charts.

pub mod args;
pub mod chart;
pub mod finder;
pub mod lm;
pub mod records;
pub mod schedule;
pub mod stats;
pub mod suggest;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use lm_train::checkpoint::Checkpoint;
use lm_train::config::ModelConfig;
use lm_train::data::geometry;
use lm_train::runtime;
use lm_train::train::resolve_precision;
use shared::cli::Interrupted;
use shared::progress::Progress;
use shared::shards::ShardSet;

pub use args::Args;

use crate::chart::{fmt_lr, ChartData};
use crate::finder::{range_test, Curve, LossSource, TestSettings};
use crate::lm::{LmHyper, LmRangeTest, LmSetup};
use crate::records::{Event, Output, SuggestionDetail};
use crate::schedule::{Schedule, ScheduleKind};
use crate::stats::Spread;
use crate::suggest::{suggest_all, Method, Suggestion, METHODS};

pub const TOOL: &str = "lr-find";

/// Runs the tool as the binary does, from command-line arguments.
pub fn run_from<I, T>(argv: I) -> Result<i32>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            e.print()?;
            return Ok(0);
        }
        Err(e) => bail!(
            "{}",
            e.to_string()
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
        ),
    };
    run(args)
}

fn note(quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        eprintln!("{TOOL}: {msg}");
    }
}

/// Seed of repeat `k`: `--seed` itself for the first (so one repeat is a plain seeded run),
/// a SplitMix64 mix of (seed, k) for the others.
pub fn repeat_seed(seed: u64, k: usize) -> u64 {
    if k == 0 {
        return seed;
    }
    let mut z = seed ^ (k as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

enum PlotKind {
    Png,
    Svg,
}

fn plot_kind(p: &Path) -> Result<PlotKind> {
    let ext = p
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => Ok(PlotKind::Png),
        Some("svg") => Ok(PlotKind::Svg),
        _ => bail!(
            "{}: --plot writes PNG or SVG; name the file FILE.png or FILE.svg",
            p.display()
        ),
    }
}

/// The model config from the flags (from scratch) or the checkpoint (sizes), with fastai's
/// LM dropouts times --drop-mult in both cases (as lm-train --init).
fn model_config(a: &Args, vocab_size: i64, init: Option<&Checkpoint>) -> Result<ModelConfig> {
    let mut c = ModelConfig::fastai_lm(vocab_size, a.drop_mult);
    match init {
        Some(ck) => {
            let m = &ck.config.model;
            for (flag, given, have) in [
                ("--emb-sz", a.emb_sz, m.emb_sz),
                ("--n-hid", a.n_hid, m.n_hid),
                ("--n-layers", a.n_layers, m.n_layers),
            ] {
                if let Some(g) = given.filter(|g| *g != have) {
                    bail!(
                        "{flag} {g} differs from the --init checkpoint's {have} ({})",
                        ck.dir.display()
                    );
                }
            }
            let d = c.clone();
            c = m.clone();
            (c.input_p, c.weight_p, c.embed_p, c.hidden_p, c.output_p) =
                (d.input_p, d.weight_p, d.embed_p, d.hidden_p, d.output_p);
        }
        None => {
            if let Some(x) = a.emb_sz {
                c.emb_sz = x;
            }
            if let Some(x) = a.n_hid {
                c.n_hid = x;
            }
            if let Some(x) = a.n_layers {
                c.n_layers = x;
            }
        }
    }
    c.validate()?;
    Ok(c)
}

/// Refuses a classifier checkpoint for now, with a message that says what to do.
fn refuse_ckpt(p: &Path) -> Result<()> {
    if !p.is_dir() {
        bail!("{}: no such checkpoint directory", p.display());
    }
    let cfg = p.join(lm_train::config::CONFIG_FILE);
    let format = std::fs::read(&cfg)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_string));
    if format.as_deref() == Some(lm_train::config::CONFIG_FORMAT) {
        bail!(
            "{}: a language-model checkpoint; pass it with --init",
            p.display()
        );
    }
    bail!("{}: classifier checkpoints (--ckpt) are not supported yet; use --init with a language model", p.display())
}

/// Keeps freed memory in the process between iterations. With glibc's defaults every step
/// of the test hands its activation buffers back to the kernel (large blocks are mmap'd and
/// unmapped; the heap top is trimmed) and faults them in again at the next step: about
/// 37,000 page faults per iteration of the tiny IMDb config, a third of its time in the
/// kernel. A fixed mmap threshold at glibc's maximum (32 MiB) and a trim threshold of 1 GiB
/// remove nearly all of them (`MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` do the
/// same from the environment). Call before torch allocates.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets two of glibc's allocator parameters; it is called once at
    // startup, before any other thread exists, with values glibc accepts (the mmap threshold
    // at its documented maximum, HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

pub fn run(a: Args) -> Result<i32> {
    let t_start = Instant::now();
    tune_malloc();
    runtime::flush_denormals();
    let quiet = a.common.quiet;
    if let Some(p) = &a.ckpt {
        refuse_ckpt(p)?;
    }
    // Settings first: a bad schedule fails before anything is read.
    let num_it = if a.num_it > 0 && a.num_it < 6 {
        note(
            quiet,
            format!("--num-it {} raised to 6 (fastai's minimum)", a.num_it),
        );
        6
    } else {
        a.num_it
    };
    let schedule = Schedule::new(a.schedule, a.start_lr, a.end_lr, num_it)?;
    if a.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    if !(0.0..1.0).contains(&a.smooth) {
        bail!("--smooth {} must be in [0, 1)", a.smooth);
    }
    if a.bs == 0 || a.bptt == 0 {
        bail!("--bs and --bptt must be at least 1");
    }
    let threads = runtime::init_threads(a.common.threads);
    let device = runtime::parse_device(&a.device)?;
    // Outputs are created now, so a bad path fails before the work.
    let plot = match &a.plot {
        Some(p) => Some((
            plot_kind(p)?,
            shared::atomic::AtomicFile::create(p, a.force)?,
        )),
        None => None,
    };
    let mut out = Output::open(a.output.as_deref(), a.force)?;

    let set = ShardSet::open(&a.shards)?;
    let init = match &a.init {
        Some(p) => {
            let mut ck = Checkpoint::read(p)?;
            if ck.vocab.hash() != set.vocab.hash() {
                if !a.remap_vocab {
                    bail!(
                        "{}: the checkpoint's vocab ({} tokens, hash {}) is not the shards' ({} tokens, hash {}); pass --remap-vocab to match rows by token string, or numericalize with --vocab {}",
                        p.display(),
                        ck.vocab.len(),
                        ck.vocab.hash(),
                        set.vocab.len(),
                        set.vocab.hash(),
                        p.join("vocab.json").display()
                    );
                }
                let matched = ck.remap_vocab(&set.vocab)?;
                note(quiet, format!("--init {}: {matched} of {} tokens matched (in memory; the checkpoint is not changed)", p.display(), set.vocab.len()));
            }
            Some(ck)
        }
        None => None,
    };
    let cfg = model_config(&a, set.vocab.len() as i64, init.as_ref())?;

    let train = set.split(&a.train_split)?;
    let need = a.bs * a.bptt + 1;
    if train.n_tokens() < need {
        bail!(
            "split {:?} has {} tokens, too few for --bs {} × --bptt {} (needs at least {need}); lower --bs or --bptt",
            a.train_split,
            train.n_tokens(),
            a.bs,
            a.bptt
        );
    }
    let valid = if a.valid_loss {
        if !set.has_split(&a.valid_split) {
            bail!(
                "{}: no split {:?}, needed by --valid-loss (name another with --valid-split)",
                a.shards.display(),
                a.valid_split
            );
        }
        let v = set.split(&a.valid_split)?;
        if v.n_tokens() < a.bptt + 1 {
            bail!(
                "split {:?} has {} tokens, too few to validate with --bptt {}",
                a.valid_split,
                v.n_tokens(),
                a.bptt
            );
        }
        Some(v)
    } else {
        None
    };
    let (_, n_batches) = geometry(train.n_tokens(), a.bs, a.bptt);
    if num_it > n_batches {
        note(
            quiet,
            format!(
                "{num_it} iterations but {n_batches} batches per epoch: the data is cycled ({} epochs, reshuffled each)",
                num_it.div_ceil(n_batches)
            ),
        );
    }

    let precision = resolve_precision(a.precision, device);
    let setup = LmSetup {
        cfg,
        init,
        freeze: a.freeze,
        hyper: LmHyper {
            mom: a.mom,
            sqr_mom: a.sqr_mom,
            eps: a.eps,
            wd: a.wd,
            alpha: a.alpha,
            beta: a.beta,
            clip: a.clip,
        },
        bs: a.bs,
        bptt: a.bptt,
        precision,
        device,
    };
    let settings = TestSettings {
        schedule,
        beta: a.smooth,
        stop_div: !a.no_stop_div,
        loss: if a.valid_loss {
            LossSource::Valid
        } else {
            LossSource::Train
        },
    };
    runtime::install_ctrlc();
    runtime::request_stop(false);

    let mode = a.common.progress.resolve(quiet);
    let mut progress = Progress::new(mode, TOOL, "iterations", Some((num_it * a.repeats) as u64));
    let mut curves: Vec<Curve> = Vec::with_capacity(a.repeats);
    let mut per_repeat: Vec<[(Method, Option<Suggestion>); 4]> = Vec::new();
    for k in 0..a.repeats {
        let seed = repeat_seed(a.seed, k);
        let t0 = Instant::now();
        let mut test = LmRangeTest::new(&setup, &train, valid.as_ref(), seed)?;
        if k == 0 {
            out.emit(&Event::LrFindStart {
                model: "lm".into(),
                init: a.init.as_ref().map(|p| p.display().to_string()),
                vocab_size: set.vocab.len() as u64,
                params: test.model.n_params() as u64,
                train_tokens: train.n_tokens() as u64,
                batches_per_epoch: test.batches_per_epoch() as u64,
                num_it: num_it as u64,
                start_lr: a.start_lr,
                end_lr: a.end_lr,
                schedule: a.schedule,
                loss: settings.loss,
                smooth: a.smooth,
                stop_div: settings.stop_div,
                repeats: a.repeats as u64,
                seed: a.seed,
                bs: a.bs as u64,
                bptt: a.bptt as u64,
                freeze: a.freeze,
                device: runtime::device_name(device),
                precision: format!("{precision:?}").to_lowercase(),
                threads: threads as u64,
            })?;
        }
        let curve = range_test(&mut test, &settings, |p| {
            out.emit(&Event::LrFindIter {
                repeat: k as u64,
                iter: p.iter as u64,
                lr: p.lr,
                loss: p.loss,
                smooth_loss: p.smooth_loss,
            })?;
            progress.inc(1);
            if runtime::stop_requested() {
                return Err(Interrupted.into());
            }
            Ok(())
        })
        .inspect_err(|_| progress.finish())?;
        // the lrs a stopped repeat did not run still count towards the bar's total
        progress.inc((num_it - curve.points.len()) as u64);
        let s = suggest_all(&curve.lrs(), &curve.smooth_losses(), a.num_it);
        let get = |m: Method| s.iter().find(|x| x.0 == m).and_then(|x| x.1).map(|x| x.lr);
        let dt = t0.elapsed().as_secs_f64();
        out.emit(&Event::LrFindRepeat {
            repeat: k as u64,
            seed,
            iterations: curve.points.len() as u64,
            stop: curve.stop,
            best_smooth_loss: curve.best_smooth_loss,
            valley: get(Method::Valley),
            steep: get(Method::Steep),
            minimum: get(Method::Minimum),
            slide: get(Method::Slide),
            elapsed_s: dt,
            s_per_iter: dt / curve.points.len().max(1) as f64,
        })?;
        per_repeat.push(s);
        curves.push(curve);
    }
    progress.finish();

    // The curve the summary is about: the only one, or the per-iteration median.
    let (lrs, losses, band) = if a.repeats == 1 {
        (curves[0].lrs(), curves[0].smooth_losses(), None)
    } else {
        let b = stats::band(&curves);
        for p in &b {
            out.emit(&Event::LrFindBand {
                iter: p.iter as u64,
                lr: p.lr,
                median: p.median,
                p10: p.p10,
                p90: p.p90,
                repeats: p.repeats as u64,
            })?;
        }
        let lrs = b.iter().map(|p| p.lr).collect();
        let med = b.iter().map(|p| p.median).collect();
        (lrs, med, Some(b))
    };
    let sugg = suggest_all(&lrs, &losses, a.num_it);
    let spread_of = |m: Method| -> Option<Spread> {
        if a.repeats < 2 {
            return None;
        }
        let v: Vec<f64> = per_repeat
            .iter()
            .filter_map(|s| s.iter().find(|x| x.0 == m).and_then(|x| x.1))
            .map(|x| x.lr)
            .collect();
        stats::spread(&v)
    };
    let mut detail = BTreeMap::new();
    for (m, s) in &sugg {
        detail.insert(
            m.name(),
            SuggestionDetail {
                lr: s.map(|x| x.lr),
                point_lr: s.map(|x| x.point.0),
                point_loss: s.map(|x| x.point.1),
                spread: spread_of(*m),
            },
        );
    }
    let get = |m: Method| {
        sugg.iter()
            .find(|x| x.0 == m)
            .and_then(|x| x.1)
            .map(|x| x.lr)
    };
    let elapsed = t_start.elapsed().as_secs_f64();
    out.emit(&Event::LrFindSummary {
        method: a.suggest,
        lr: get(a.suggest),
        valley: get(Method::Valley),
        steep: get(Method::Steep),
        minimum: get(Method::Minimum),
        slide: get(Method::Slide),
        detail,
        iterations: lrs.len() as u64,
        repeats: a.repeats as u64,
        elapsed_s: elapsed,
    })?;

    let chart = ChartData {
        title: format!(
            "lr-find: {}",
            a.init.as_deref().unwrap_or(&a.shards).display()
        ),
        curve: lrs.iter().copied().zip(losses.iter().copied()).collect(),
        band: band
            .as_ref()
            .map(|b| (a.repeats, b.iter().map(|p| (p.lr, p.p10, p.p90)).collect())),
        suggestions: sugg
            .iter()
            .filter_map(|(m, s)| s.map(|s| (*m, s, spread_of(*m).map(|sp| (sp.p10, sp.p90)))))
            .collect(),
        log_x: a.schedule == ScheduleKind::Exp,
    };
    if !quiet {
        let stops: Vec<String> = curves
            .iter()
            .map(|c| {
                serde_json::to_value(c.stop)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        let parts: Vec<String> = METHODS
            .iter()
            .map(|m| format!("{} {}", m.name(), get(*m).map_or("n/a".into(), fmt_lr)))
            .collect();
        eprintln!(
            "{TOOL}: {} (iterations {}, stopped: {}; {:.1} s)",
            parts.join(", "),
            curves
                .iter()
                .map(|c| c.points.len().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            stops.join("/"),
            elapsed
        );
        let dumb = std::env::var("TERM").map(|t| t == "dumb").unwrap_or(false);
        if std::io::stderr().is_terminal() && !dumb {
            let _ = write!(std::io::stderr(), "{}", chart::text_chart(&chart, 64, 14));
        }
    }
    if let Some((kind, mut f)) = plot {
        let d = chart::line_chart(&chart).draw();
        let bytes = match kind {
            PlotKind::Png => d.to_png()?,
            PlotKind::Svg => d.to_svg().into_bytes(),
        };
        let target: PathBuf = f.target().to_path_buf();
        f.write_all(&bytes)
            .with_context(|| format!("{}: write failed", target.display()))?;
        f.commit()?;
    }
    out.finish()?;
    Ok(0)
}
