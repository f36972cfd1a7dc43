//! `lr-find`: Leslie Smith's learning-rate range test as fastai's `learn.lr_find()` runs it,
//! on lm-train's language model (from scratch or `--init CKPT`) or on clf-train's classifier
//! (`--ckpt CLF`, at an `--unfreeze-stage`).
//!
//! The pieces, each testable alone:
//! * [`schedule`]: the exponential / linear lr schedule, fastai's smoothed loss and stop rule;
//! * [`finder`]: the test loop over any [`finder::RangeTestModel`] (one training step at a
//!   given lr, and a validation loss): the language model in [`lm`], a classifier in [`clf`];
//! * [`suggest`]: fastai v2's `valley`, `steep`, `minimum`, `slide`, float32 as fastai;
//! * [`stats`]: median curve, 10th–90th percentile band and spreads over `--repeats`;
//! * [`records`]: the JSON-lines output; [`chart`]: PNG/SVG and terminal charts.

pub mod args;
pub mod chart;
pub mod clf;
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
use clf_train::checkpoint::ClfCheckpoint;
use clf_train::data::Targets;
use lm_train::args::BatchSize;
use lm_train::checkpoint::Checkpoint;
use lm_train::config::{ModelConfig, Precision};
use lm_train::data::geometry;
use lm_train::runtime;
use lm_train::train::resolve_precision;
use shared::cli::Interrupted;
use shared::progress::Progress;
use shared::shards::{ShardSet, Split};

pub use args::Args;

use crate::chart::{fmt_lr, ChartData};
use crate::clf::{ClfRangeTest, ClfSetup, ClfValid};
use crate::finder::RangeTestModel;
use crate::finder::{range_test, Curve, Hyper, LossSource, TestSettings};
use crate::lm::{LmRangeTest, LmSetup};
use crate::records::{ClfStart, Event, Output, SuggestionDetail};
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
    lm_train::parse_and_run(argv, run)
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
        None => c.set_sizes(a.emb_sz, a.n_hid, a.n_layers),
    }
    c.validate()?;
    Ok(c)
}

/// Checks `--ckpt` early (before outputs are created): a directory, and not a language model.
fn check_ckpt_dir(p: &Path) -> Result<()> {
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
            "{}: a language-model checkpoint; pass it with --init (--ckpt takes a classifier from clf-train)",
            p.display()
        );
    }
    Ok(())
}

/// The language-model test's data and setup.
struct LmPrepared {
    setup: LmSetup,
    train: Split,
    valid: Option<Split>,
}

/// The classifier test's data and setup.
struct ClfPrepared {
    setup: ClfSetup,
    train: Split,
    train_t: Targets,
    valid: Option<ClfValid>,
}

// One value per run: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Prepared {
    Lm(LmPrepared),
    Clf(ClfPrepared),
}

/// Rows per forward/backward now: a language model's micro-batch (after `--bs auto` and any
/// out-of-memory back-off), a classifier's documents (after any back-off).
fn micro_bs(p: &Prepared) -> usize {
    match p {
        Prepared::Lm(l) => l.setup.micro_bs(),
        Prepared::Clf(c) => c.setup.micro.get(),
    }
}

fn prepare_lm(
    a: &Args,
    set: &ShardSet,
    precision: Precision,
    device: tch::Device,
) -> Result<LmPrepared> {
    let quiet = a.common.quiet;
    let bptt = a.bptt.unwrap_or(72);
    // as lm-train: streams per step from --effective-bs, else --bs, else 64; micro-batches
    // of --bs below that, or probed with --bs auto
    let bs = match (a.effective_bs, a.bs) {
        (Some(e), _) => e,
        (None, Some(BatchSize::Fixed(n))) => n,
        (None, Some(BatchSize::Auto) | None) => 64,
    };
    if bs == 0 {
        bail!("--effective-bs must be at least 1");
    }
    let micro = match a.bs {
        Some(BatchSize::Fixed(n)) if n > bs => {
            bail!("--bs {n} is larger than --effective-bs {bs}")
        }
        Some(BatchSize::Fixed(n)) => Some(n),
        Some(BatchSize::Auto) => None,
        None => Some(bs),
    };
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
    let cfg = model_config(a, set.vocab.len() as i64, init.as_ref())?;

    let train = set.split(&a.run.train_split)?;
    let need = bs * bptt + 1;
    if train.n_tokens() < need {
        bail!(
            "split {:?} has {} tokens, too few for --bs {} × --bptt {} (needs at least {need}); lower --bs or --bptt",
            a.run.train_split,
            train.n_tokens(),
            bs,
            bptt
        );
    }
    let valid = valid_loss_split(a, set)?;
    if let Some(v) = &valid {
        if v.n_tokens() < bptt + 1 {
            bail!(
                "split {:?} has {} tokens, too few to validate with --bptt {}",
                a.run.valid_split,
                v.n_tokens(),
                bptt
            );
        }
    }
    let setup = LmSetup {
        cfg,
        init,
        freeze: a.freeze,
        hyper: Hyper::new(a.mom, &a.optim),
        bs,
        micro: std::cell::Cell::new(micro),
        mem_budget: a.mem_budget,
        bptt,
        precision,
        device,
        quiet,
    };
    Ok(LmPrepared {
        setup,
        train,
        valid,
    })
}

/// The validation split `--valid-loss` needs (none without it).
fn valid_loss_split(a: &Args, set: &ShardSet) -> Result<Option<Split>> {
    if !a.valid_loss {
        return Ok(None);
    }
    if !set.has_split(&a.run.valid_split) {
        bail!(
            "{}: no split {:?}, needed by --valid-loss (name another with --valid-split)",
            a.shards.display(),
            a.run.valid_split
        );
    }
    let v = set.split(&a.run.valid_split)?;
    Ok(Some(v))
}

/// Reads the classifier checkpoint (only read) and the data its test needs: the shards must
/// have its vocab and label column, as clf-train requires.
fn prepare_clf(
    a: &Args,
    set: &ShardSet,
    dir: &Path,
    precision: Precision,
    device: tch::Device,
) -> Result<ClfPrepared> {
    let ck = ClfCheckpoint::read(dir)?;
    set.require_vocab(
        &ck.config.vocab_hash,
        &format!("the vocab of the --ckpt classifier {}", dir.display()),
    )?;
    let n_groups = ck.config.encoder.n_layers as usize + 2;
    let trainable = clf::parse_stage(a.unfreeze_stage.as_deref().unwrap_or("1"), n_groups)?;
    let bs = match a.bs {
        Some(BatchSize::Fixed(n)) => Some(n),
        Some(BatchSize::Auto) => bail!(
            "--bs auto probes the micro-batch of a language model; with --ckpt give --bs as documents per batch (default: the checkpoint's)"
        ),
        None => None,
    };
    let bs = bs
        .or_else(|| ck.config.training.as_ref().map(|t| t.bs))
        .unwrap_or(64);
    if bs < 2 {
        bail!("--bs must be at least 2 (BatchNorm in the head needs batch statistics)");
    }
    let labels = ck.config.labels.clone();
    let train = set.split(&a.run.train_split)?;
    let train_t = clf_train::data::targets(&a.shards, &train, &labels)?;
    if train.docs() < bs {
        bail!(
            "{}: the training split {:?} has {} documents, fewer than --bs {} (the last partial batch is dropped, as fastai does); lower --bs",
            a.shards.display(),
            a.run.train_split,
            train.docs(),
            bs
        );
    }
    let valid = if let Some(v) = valid_loss_split(a, set)? {
        if v.docs() == 0 {
            bail!(
                "{}: the validation split {:?} is empty",
                a.shards.display(),
                a.run.valid_split
            );
        }
        let t = clf_train::data::targets(&a.shards, &v, &labels)?;
        Some(ClfValid::new(v, t, bs, a.valid_batches))
    } else {
        None
    };
    let setup = ClfSetup {
        ckpt: ck,
        trainable,
        hyper: Hyper::new(a.mom, &a.optim),
        bs,
        micro: std::cell::Cell::new(bs),
        precision,
        device,
        quiet: a.common.quiet,
    };
    Ok(ClfPrepared {
        setup,
        train,
        train_t,
        valid,
    })
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
        check_ckpt_dir(p)?;
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
    if a.bptt == Some(0) {
        bail!("--bptt must be at least 1");
    }
    runtime::simulate_oom_above(a.simulate_oom_above);
    let threads = runtime::init_threads(a.common.threads);
    let device = runtime::parse_device(&a.run.device)?;
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
    let precision = resolve_precision(a.run.precision, device);
    let prep = match &a.ckpt {
        Some(p) => Prepared::Clf(prepare_clf(&a, &set, p, precision, device)?),
        None => Prepared::Lm(prepare_lm(&a, &set, precision, device)?),
    };
    let (n_batches, bs, bptt) = match &prep {
        Prepared::Lm(l) => (
            geometry(l.train.n_tokens(), l.setup.bs, l.setup.bptt).1,
            l.setup.bs,
            l.setup.bptt,
        ),
        Prepared::Clf(c) => (
            c.train.docs() / c.setup.bs,
            c.setup.bs,
            c.setup.ckpt.config.bptt,
        ),
    };
    if num_it > n_batches {
        note(
            quiet,
            format!(
                "{num_it} iterations but {n_batches} batches per epoch: the data is cycled ({} epochs, reshuffled each)",
                num_it.div_ceil(n_batches)
            ),
        );
    }
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
        let (mut test, params, batches_per_epoch): (Box<dyn RangeTestModel + '_>, i64, usize) =
            match &prep {
                Prepared::Lm(l) => {
                    let t = LmRangeTest::new(&l.setup, &l.train, l.valid.as_ref(), seed)?;
                    let (n, b) = (t.model.n_params(), t.batches_per_epoch());
                    (Box::new(t), n, b)
                }
                Prepared::Clf(c) => {
                    let t =
                        ClfRangeTest::new(&c.setup, &c.train, &c.train_t, c.valid.as_ref(), seed)?;
                    let (n, b) = (t.model.n_params(), t.batches_per_epoch());
                    (Box::new(t), n, b)
                }
            };
        if k == 0 {
            let (model, init, train_tokens, freeze, clf) = match &prep {
                Prepared::Lm(l) => (
                    "lm",
                    a.init.as_ref(),
                    l.train.n_tokens(),
                    l.setup.freeze,
                    None,
                ),
                Prepared::Clf(c) => {
                    let n_groups = c.setup.ckpt.config.encoder.n_layers as usize + 2;
                    let labels = c.setup.labels();
                    (
                        "classifier",
                        a.ckpt.as_ref(),
                        c.train.n_tokens(),
                        c.setup.trainable < n_groups,
                        Some(ClfStart {
                            task: labels.task.name().into(),
                            classes: labels.classes.clone(),
                            train_docs: c.train.docs() as u64,
                            unfreeze_stage: c.setup.trainable as u64,
                            layer_groups: n_groups as u64,
                        }),
                    )
                }
            };
            out.emit(&Event::LrFindStart {
                model: model.into(),
                init: init.map(|p| p.display().to_string()),
                vocab_size: set.vocab.len() as u64,
                params: params as u64,
                train_tokens: train_tokens as u64,
                batches_per_epoch: batches_per_epoch as u64,
                num_it: num_it as u64,
                start_lr: a.start_lr,
                end_lr: a.end_lr,
                schedule: a.schedule,
                loss: settings.loss,
                smooth: a.smooth,
                stop_div: settings.stop_div,
                repeats: a.repeats as u64,
                seed: a.seed,
                bs: bs as u64,
                micro_bs: micro_bs(&prep) as u64,
                bptt: bptt as u64,
                freeze,
                classifier: clf,
                device: runtime::device_name(device),
                precision: format!("{precision:?}").to_lowercase(),
                threads: threads as u64,
            })?;
        }
        let curve = range_test(&mut *test, &settings, |p| {
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
            micro_bs: micro_bs(&prep) as u64,
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
            a.init
                .as_deref()
                .or(a.ckpt.as_deref())
                .unwrap_or(&a.shards)
                .display()
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
    let mut files = Vec::new();
    if let Some((kind, mut f)) = plot {
        let d = chart::line_chart(&chart).draw();
        let bytes = match kind {
            PlotKind::Png => d.to_png()?,
            PlotKind::Svg => d.to_svg().into_bytes(),
        };
        let target: PathBuf = f.target().to_path_buf();
        f.write_all(&bytes)
            .with_context(|| format!("{}: write failed", target.display()))?;
        files.push(f);
    }
    // The records and the plot appear together or not at all.
    files.extend(out.into_pending()?);
    shared::atomic::commit_all(files)?;
    Ok(0)
}
