//! The training loop: fastai's `fit_one_cycle` for a language model, with checkpoints that
//! resume bit for bit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use shared::cli::{CommonArgs, Interrupted};
use shared::progress::Progress;
use shared::shards::{ShardSet, Split};
use shared::vocab::Vocab;
use tch::{Device, Kind, Reduction, Tensor};

use crate::args::{PrecisionArg, TrainArgs};
use crate::checkpoint::{self, Checkpoint, Resumable, TrainState};
use crate::config::{CheckpointConfig, ModelConfig, Precision, TrainSettings};
use crate::data::{geometry, shuffle_seed, LmBatches};
use crate::metrics::{LmEvent, LmMetrics};
use crate::model::{Hidden, LanguageModel};
use crate::optim::{AdamW, OneCycle};
use crate::runtime;
use crate::TOOL;

/// Seed of the dropout masks of step `step` (SplitMix64 of seed and step), so a resumed run
/// draws exactly the masks the uninterrupted one would have.
pub fn step_seed(seed: u64, step: u64) -> i64 {
    let mut z = seed.wrapping_add(step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// `--precision auto`: bf16 where the CPU computes it natively, else fp32; fp32 on CUDA.
pub fn resolve_precision(p: PrecisionArg, device: Device) -> Precision {
    match p {
        PrecisionArg::Fp32 => Precision::Fp32,
        PrecisionArg::Bf16 => Precision::Bf16,
        PrecisionArg::Auto => {
            if device == Device::Cpu && runtime::cpu_has_bf16() {
                Precision::Bf16
            } else {
                Precision::Fp32
            }
        }
    }
}

fn note(quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        eprintln!("{TOOL}: {msg}");
    }
}

/// Loss on a split (no dropout, hidden state carried from a zero start): mean cross-entropy
/// per token and next-token accuracy.
pub fn evaluate(model: &LanguageModel, batches: &LmBatches, precision: Precision) -> (f64, f64) {
    let _g = tch::no_grad_guard();
    let device = model.device();
    let mut hidden = model
        .encoder
        .zero_hidden(batches.bs as i64, device, precision.kind());
    let (mut loss_sum, mut correct, mut n) = (0.0f64, 0i64, 0i64);
    let v = model.cfg().vocab_size;
    for j in 0..batches.n_batches {
        let (x, y) = batches.batch(j, device);
        let out = model.forward(&x, &hidden, false, precision);
        let logits = out.logits.view([-1, v]);
        let y = y.view([-1]);
        loss_sum += logits
            .cross_entropy_loss::<Tensor>(&y, None, Reduction::Sum, -100, 0.0)
            .double_value(&[]);
        correct += logits
            .argmax(-1, false)
            .eq_tensor(&y)
            .sum(Kind::Int64)
            .int64_value(&[]);
        n += y.size()[0];
        hidden = out.hidden;
    }
    (loss_sum / n.max(1) as f64, correct as f64 / n.max(1) as f64)
}

/// The batch size validation uses: the training one, smaller when the split is short.
fn valid_bs(n_tokens: usize, bs: usize, bptt: usize) -> usize {
    bs.min(n_tokens.saturating_sub(1) / bptt.max(1)).max(1)
}

struct Run<'a> {
    out: PathBuf,
    model: LanguageModel,
    vocab: &'a Vocab,
    ckcfg: CheckpointConfig,
    opt: AdamW,
    state: TrainState,
    last_saved: Option<u64>,
    metrics: &'a mut LmMetrics,
}

impl Run<'_> {
    fn save(&mut self, hidden: Option<&Hidden>) -> Result<()> {
        checkpoint::save(
            &self.out,
            &self.model,
            self.vocab,
            &self.ckcfg,
            Some(Resumable {
                opt: &self.opt,
                hidden,
                state: &self.state,
            }),
        )?;
        self.last_saved = Some(self.state.step);
        self.metrics.emit(LmEvent::LmCheckpoint {
            path: self.out.display().to_string(),
            step: self.state.step,
            epoch: self.state.epoch,
        })
    }
}

fn model_config_from_args(a: &TrainArgs, vocab_size: i64) -> ModelConfig {
    let mut c = ModelConfig::fastai_lm(vocab_size, a.drop_mult);
    if let Some(x) = a.emb_sz {
        c.emb_sz = x;
    }
    if let Some(x) = a.n_hid {
        c.n_hid = x;
    }
    if let Some(x) = a.n_layers {
        c.n_layers = x;
    }
    set_dropouts(&mut c, a);
    c
}

fn set_dropouts(c: &mut ModelConfig, a: &TrainArgs) {
    c.input_p = a.input_p * a.drop_mult;
    c.weight_p = a.weight_p * a.drop_mult;
    c.embed_p = a.embed_p * a.drop_mult;
    c.hidden_p = a.hidden_p * a.drop_mult;
    c.output_p = a.output_p * a.drop_mult;
}

fn settings_from_args(
    a: &TrainArgs,
    n_groups: usize,
    precision: Precision,
) -> Result<TrainSettings> {
    let lr = match a.lr.len() {
        1 => vec![a.lr[0]; n_groups],
        n if n == n_groups => a.lr.clone(),
        n => bail!("--lr has {n} values; give one, or one per layer group ({n_groups}: each LSTM layer, then embedding+decoder)"),
    };
    if lr.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
        bail!("--lr must be positive");
    }
    if a.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.pct_start) {
        bail!("--pct-start must be in [0, 1]");
    }
    Ok(TrainSettings {
        train_split: a.train_split.clone(),
        valid_split: a.valid_split.clone(),
        bs: a.bs,
        bptt: a.bptt,
        epochs: a.epochs,
        max_steps: a.steps,
        lr,
        div: a.div,
        div_final: a.div_final,
        pct_start: a.pct_start,
        moms: [a.moms[0], a.moms[1], a.moms[2]],
        sqr_mom: a.sqr_mom,
        eps: a.eps,
        wd: a.wd,
        clip: a.clip,
        alpha: a.alpha,
        beta: a.beta,
        freeze: a.freeze,
        seed: a.seed,
        precision,
        drop_mult: a.drop_mult,
    })
}

fn check_split(split: &Split, bs: usize, bptt: usize) -> Result<()> {
    let n = split.n_tokens();
    if bs == 0 || bptt == 0 {
        bail!("--bs and --bptt must be at least 1");
    }
    let need = bs * bptt + 1;
    if n < need {
        bail!(
            "split {:?} has {n} tokens, too few for --bs {bs} × --bptt {bptt} (needs at least {need}); lower --bs or --bptt",
            split.name
        );
    }
    Ok(())
}

pub fn run(a: TrainArgs, common: &CommonArgs) -> Result<i32> {
    runtime::flush_denormals();
    let threads = runtime::init_threads(common.threads);
    let device = runtime::parse_device(&a.device)?;
    let quiet = common.quiet;
    let shards_dir = a.shards.clone().context("SHARDS is required")?;
    let out = a.output.clone().context("-o DIR is required")?;
    if a.resume {
        if !out.is_dir() {
            bail!(
                "{}: nothing to resume (no such checkpoint directory)",
                out.display()
            );
        }
    } else if out.exists() && !a.force {
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
    let mut metrics = LmMetrics::open(a.metrics.as_deref())?;
    let set = ShardSet::open(&shards_dir)?;
    runtime::install_ctrlc();

    // Resolve model config, settings and the starting weights.
    let resume_ck;
    let mut init_ck = None;
    let (model_cfg, settings) = if a.resume {
        let ck = Checkpoint::read(&out)?;
        let settings = ck.config.training.clone().with_context(|| {
            format!(
                "{}: checkpoint has no training settings; cannot resume",
                out.display()
            )
        })?;
        set.require_vocab(
            &ck.config.vocab_hash,
            "the vocab of the checkpoint being resumed",
        )?;
        let cfg = ck.config.model.clone();
        resume_ck = Some(ck);
        (cfg, settings)
    } else {
        resume_ck = None;
        let vocab_size = set.vocab.len() as i64;
        let cfg = if let Some(init) = &a.init {
            let mut ck = Checkpoint::read(init)?;
            let c = &ck.config.model;
            for (flag, given, have) in [
                ("--emb-sz", a.emb_sz, c.emb_sz),
                ("--n-hid", a.n_hid, c.n_hid),
                ("--n-layers", a.n_layers, c.n_layers),
            ] {
                if let Some(g) = given {
                    if g != have {
                        bail!(
                            "{flag} {g} differs from the --init checkpoint's {have} ({})",
                            init.display()
                        );
                    }
                }
            }
            if ck.vocab.hash() != set.vocab.hash() {
                if !a.remap_vocab {
                    bail!(
                        "{}: the checkpoint's vocab ({} tokens, hash {}) is not the shards' ({} tokens, hash {}); pass --remap-vocab to match rows by token string, or numericalize with --vocab {}",
                        init.display(),
                        ck.vocab.len(),
                        ck.vocab.hash(),
                        set.vocab.len(),
                        set.vocab.hash(),
                        init.join("vocab.json").display()
                    );
                }
                let old_len = ck.vocab.len();
                let matched = ck.remap_vocab(&set.vocab)?;
                note(
                    quiet,
                    format!(
                        "--init {}: {matched} of {} tokens matched the checkpoint's vocab of {old_len}; {} new tokens start from the mean embedding",
                        init.display(),
                        set.vocab.len(),
                        set.vocab.len() - matched
                    ),
                );
                metrics.emit(LmEvent::LmInit {
                    source: init.display().to_string(),
                    vocab_size: set.vocab.len() as u64,
                    matched_tokens: matched as u64,
                    new_tokens: (set.vocab.len() - matched) as u64,
                })?;
            } else {
                metrics.emit(LmEvent::LmInit {
                    source: init.display().to_string(),
                    vocab_size: set.vocab.len() as u64,
                    matched_tokens: set.vocab.len() as u64,
                    new_tokens: 0,
                })?;
            }
            let mut cfg = ck.config.model.clone();
            set_dropouts(&mut cfg, &a);
            init_ck = Some(ck);
            cfg
        } else {
            model_config_from_args(&a, vocab_size)
        };
        cfg.validate()?;
        let precision = resolve_precision(a.precision, device);
        let settings = settings_from_args(&a, cfg.n_layers as usize + 1, precision)?;
        (cfg, settings)
    };
    let s = &settings;

    // Data first: a bad split or geometry fails before any model is built.
    let train = set.split(&s.train_split)?;
    check_split(&train, s.bs, s.bptt)?;
    let valid = if set.has_split(&s.valid_split) {
        let v = set.split(&s.valid_split)?;
        if v.n_tokens() < 2 {
            note(
                quiet,
                format!(
                    "split {:?} has fewer than 2 tokens; no validation",
                    s.valid_split
                ),
            );
            None
        } else {
            Some(v)
        }
    } else {
        note(
            quiet,
            format!(
                "{}: no split {:?}; training without validation",
                shards_dir.display(),
                s.valid_split
            ),
        );
        None
    };
    let (_, n_batches) = geometry(train.n_tokens(), s.bs, s.bptt);
    let epoch_steps = (s.epochs * n_batches) as u64;
    let total = s.max_steps.map_or(epoch_steps, |m| m.min(epoch_steps));

    // Model.
    tch::manual_seed(step_seed(s.seed, u64::MAX));
    let model = LanguageModel::new(&model_cfg, device);
    if let Some(ck) = resume_ck.as_ref().or(init_ck.as_ref()) {
        ck.load_into(&model)?;
    }
    drop(init_ck);
    let n_groups = model.n_groups();
    let named: Vec<(String, Tensor, usize)> = model
        .named_params()
        .into_iter()
        .map(|(n, t)| {
            let g = model.group_of(&n);
            (n, t, g)
        })
        .collect();
    let mut opt = AdamW::new(named, n_groups, s.sqr_mom, s.eps, s.wd);
    if s.freeze {
        opt.set_trainable(|g| g + 1 == n_groups);
    }
    let (state, mut hidden) = if a.resume {
        let (st, h) = checkpoint::read_resumable(&out, &mut opt, device)?;
        (st, h)
    } else {
        (TrainState::default(), None)
    };
    drop(resume_ck);
    if state.done {
        note(
            quiet,
            format!(
                "{}: this run is already complete (step {}); nothing to do",
                out.display(),
                state.step
            ),
        );
        return Ok(0);
    }

    let sched = OneCycle {
        lr_max: s.lr.clone(),
        div: s.div,
        div_final: s.div_final,
        pct_start: s.pct_start,
        moms: s.moms,
        total_steps: total,
    };
    let precision = s.precision;
    let kind = precision.kind();
    metrics.emit(LmEvent::LmStart {
        vocab_size: set.vocab.len() as u64,
        params: model.n_params() as u64,
        train_tokens: train.n_tokens() as u64,
        valid_tokens: valid.as_ref().map_or(0, |v| v.n_tokens() as u64),
        batches_per_epoch: n_batches as u64,
        total_steps: total,
        start_step: state.step,
        bs: s.bs as u64,
        bptt: s.bptt as u64,
        device: runtime::device_name(device),
        precision: format!("{precision:?}").to_lowercase(),
        threads: threads as u64,
    })?;

    let mut run = Run {
        out: out.clone(),
        model,
        vocab: &set.vocab,
        ckcfg: CheckpointConfig::new(
            model_cfg.clone(),
            set.vocab.hash().to_string(),
            Some(settings.clone()),
        ),
        opt,
        state,
        last_saved: None,
        metrics: &mut metrics,
    };
    if a.resume {
        run.last_saved = Some(run.state.step);
    }
    let mode = common.progress.resolve(quiet);
    let mut progress = Progress::new(mode, TOOL, "steps", Some(total));
    progress.inc(run.state.step);
    let t0 = Instant::now();
    let elapsed0 = run.state.elapsed_s;
    let elapsed = |t0: &Instant| elapsed0 + t0.elapsed().as_secs_f64();
    let v = model_cfg.vocab_size;
    let bs = s.bs as i64;
    if total == 0 {
        // --steps 0: just publish the (initialised, loaded or remapped) model
        run.state.done = true;
        run.save(None)?;
        progress.finish();
        note(
            quiet,
            format!("--steps 0: checkpoint written to {}", out.display()),
        );
        return Ok(0);
    }
    // window for lm_step records
    let (mut w_loss, mut w_n, mut w_tokens, mut w_time, mut w_gn) =
        (0.0f64, 0u64, 0u64, 0.0f64, 0.0f64);

    while run.state.step < total {
        let epoch = run.state.epoch;
        let batches = LmBatches::new(&train, s.bs, s.bptt, Some(shuffle_seed(s.seed, epoch)))?;
        if run.state.batch == 0 {
            hidden = None;
            run.state.epoch_loss_sum = 0.0;
            run.state.epoch_loss_count = 0;
            run.state.epoch_tokens = 0;
            run.state.epoch_train_s = 0.0;
        }
        let mut h = hidden
            .take()
            .unwrap_or_else(|| run.model.encoder.zero_hidden(bs, device, kind));
        while (run.state.batch as usize) < n_batches && run.state.step < total {
            let j = run.state.batch as usize;
            let ts = Instant::now();
            let step = run.state.step;
            tch::manual_seed(step_seed(s.seed, step));
            let (x, y) = batches.batch(j, device);
            let sl = x.size()[1];
            let o = run.model.forward(&x, &h, true, precision);
            let ce = o
                .logits
                .view([-1, v])
                .cross_entropy_for_logits(&y.view([-1]));
            let mut loss = ce.shallow_clone();
            if s.alpha != 0.0 {
                loss += o.dp_out.to_kind(Kind::Float).square().mean(Kind::Float) * s.alpha;
            }
            if s.beta != 0.0 && sl > 1 {
                let r = o.raw_out.to_kind(Kind::Float);
                let d = r.narrow(1, 1, sl - 1) - r.narrow(1, 0, sl - 1);
                loss += d.square().mean(Kind::Float) * s.beta;
            }
            let ce_v = ce.double_value(&[]);
            let loss_v = loss.double_value(&[]);
            if !ce_v.is_finite() || !loss_v.is_finite() {
                progress.finish();
                let kept = match run.last_saved {
                    Some(k) => format!(
                        "the last good checkpoint (step {k}) is kept in {}",
                        out.display()
                    ),
                    None => "no checkpoint had been written yet".to_string(),
                };
                bail!(
                    "training diverged: the loss is {} at step {} (epoch {epoch}, batch {j}); stopped, {kept} (lower --lr or set --clip)",
                    if ce_v.is_nan() || loss_v.is_nan() { "NaN" } else { "infinite" },
                    step + 1
                );
            }
            run.opt.zero_grad();
            loss.backward();
            let gn = s.clip.map(|c| run.opt.clip_grad_norm(c));
            let lrs = sched.lrs(step);
            let mom = sched.mom(step);
            run.opt.step(&lrs, mom);
            h = o.hidden;
            let dt = ts.elapsed().as_secs_f64();
            let ntok = (s.bs as u64) * sl as u64;
            run.state.step += 1;
            run.state.batch += 1;
            run.state.epoch_loss_sum += ce_v;
            run.state.epoch_loss_count += 1;
            run.state.epoch_tokens += ntok;
            run.state.epoch_train_s += dt;
            run.state.elapsed_s = elapsed(&t0);
            w_loss += ce_v;
            w_n += 1;
            w_tokens += ntok;
            w_time += dt;
            w_gn += gn.unwrap_or(0.0);
            progress.inc(1);
            let stepn = run.state.step;
            if a.log_every > 0 && (stepn % a.log_every == 0 || stepn == total) {
                run.metrics.emit(LmEvent::LmStep {
                    epoch,
                    step: stepn,
                    train_loss: w_loss / w_n as f64,
                    lr: *lrs.last().expect("groups"),
                    mom,
                    grad_norm: s.clip.map(|_| w_gn / w_n as f64),
                    tokens_per_s: w_tokens as f64 / w_time.max(1e-9),
                    elapsed_s: run.state.elapsed_s,
                })?;
                (w_loss, w_n, w_tokens, w_time, w_gn) = (0.0, 0, 0, 0.0, 0.0);
            }
            if runtime::stop_requested() || a.stop_after == Some(stepn) {
                progress.finish();
                let hid = (run.state.batch as usize) < n_batches;
                if !hid {
                    // the epoch is complete: the next batch starts a new one
                    run.state.epoch += 1;
                    run.state.batch = 0;
                }
                run.save(if hid { Some(&h) } else { None })?;
                note(quiet, format!("interrupted at step {stepn}; checkpoint saved in {} (continue with --resume)", out.display()));
                return Err(Interrupted.into());
            }
            if a.save_every > 0
                && stepn % a.save_every == 0
                && stepn < total
                && (run.state.batch as usize) < n_batches
            {
                run.save(Some(&h))?;
            }
        }
        let epoch_done = run.state.batch as usize >= n_batches;
        // End of an epoch, or of the run mid-epoch: validate and report.
        let (valid_loss, accuracy) = match &valid {
            Some(vs) => {
                let vb = LmBatches::new(vs, valid_bs(vs.n_tokens(), s.bs, s.bptt), s.bptt, None)?;
                let (l, acc) = evaluate(&run.model, &vb, precision);
                (Some(l), Some(acc))
            }
            None => (None, None),
        };
        run.state.elapsed_s = elapsed(&t0);
        run.metrics.emit(LmEvent::LmEpoch {
            epoch,
            step: run.state.step,
            train_loss: run.state.epoch_loss_sum / run.state.epoch_loss_count.max(1) as f64,
            valid_loss,
            perplexity: valid_loss.map(f64::exp),
            accuracy,
            tokens_per_s: run.state.epoch_tokens as f64 / run.state.epoch_train_s.max(1e-9),
            elapsed_s: run.state.elapsed_s,
        })?;
        if epoch_done {
            run.state.epoch += 1;
            run.state.batch = 0;
            hidden = None;
        } else {
            hidden = Some(h);
        }
        run.state.done = run.state.step >= total;
        if epoch_done || run.state.done {
            run.save(hidden.as_ref())?;
        }
    }
    progress.finish();
    note(
        quiet,
        format!(
            "{} steps done; checkpoint in {}",
            run.state.step,
            out.display()
        ),
    );
    Ok(0)
}

/// Used by tests: the checkpoint directory's model weights as named CPU tensors.
pub fn read_weights(dir: &Path) -> Result<Vec<(String, Tensor)>> {
    Ok(Checkpoint::read(dir)?.tensors.into_iter().collect())
}
