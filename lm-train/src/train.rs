//! The training loop: fastai's `fit_one_cycle` for a language model, with checkpoints that
//! resume bit for bit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use shared::cli::{CommonArgs, Interrupted};
use shared::shards::{ShardSet, Split};
use shared::vocab::Vocab;
use tch::{Device, Kind, Reduction, Tensor};

use shared::metrics::{Event, Metrics};
use shared::shards::Verify;

use crate::args::{BatchSize, PrecisionArg, TrainArgs};
use crate::checkpoint::{self, Checkpoint, Resumable, TrainState};
use crate::config::{CheckpointConfig, ModelConfig, OptimSettings, Precision, TrainSettings};
use crate::data::{geometry, shuffle_seed, LmBatches};
use crate::memory::{self, decoder_chunk_tokens, human, StepFailure};
use crate::model::{Hidden, LanguageModel};
use crate::optim::AdamW;
use crate::runtime;
use crate::session;
pub use crate::step::{train_step, train_step_micro, LossScaler, StepHyper, StepOutput};
use crate::TOOL;

/// Seed of the dropout masks of step `step` (SplitMix64 of seed and step), so a resumed run
/// draws exactly the masks the uninterrupted one would have.
pub fn step_seed(seed: u64, step: u64) -> i64 {
    let mut z = seed.wrapping_add(step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// `--precision auto` for a model of hidden size `n_hid`: as [`resolve_precision`], but fp32
/// for small LSTMs, where oneDNN's bf16 kernels lose to fp32 (benches/results/lm.md: the tiny
/// config, hidden 128, trains 3× slower in bf16; the standard one, hidden 1152, 1.3× faster).
pub fn resolve_precision_for(p: PrecisionArg, device: Device, n_hid: i64) -> Precision {
    match (p, resolve_precision(p, device)) {
        (PrecisionArg::Auto, Precision::Bf16) if n_hid < 512 => Precision::Fp32,
        (_, r) => r,
    }
}

/// `--precision auto`: bf16 where the device computes it natively (a CPU with AVX512-BF16 or
/// AMX; a CUDA GPU of compute capability 8.0 or later), else fp32. On an H100 the standard
/// AWD-LSTM trains 1.70× faster in bf16 than in fp32 with the same loss curve
/// (benches/RESULTS.md, GPU section).
pub fn resolve_precision(p: PrecisionArg, device: Device) -> Precision {
    match p {
        PrecisionArg::Fp32 => Precision::Fp32,
        PrecisionArg::Bf16 => Precision::Bf16,
        PrecisionArg::Fp16 => Precision::Fp16,
        PrecisionArg::Auto => {
            let native = match device {
                Device::Cpu => runtime::cpu_has_bf16(),
                Device::Cuda(i) => crate::cuda::has_native_bf16(i),
                _ => false,
            };
            if native {
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
/// per token and next-token accuracy. The decoder runs in chunks of tokens, so the logits of
/// a whole batch never exist at once.
pub fn evaluate(model: &LanguageModel, batches: &LmBatches, precision: Precision) -> (f64, f64) {
    let _g = tch::no_grad_guard();
    let device = model.device();
    let mut hidden = model
        .encoder
        .zero_hidden(batches.bs as i64, device, precision.kind());
    let v = model.cfg().vocab_size;
    let chunk = decoder_chunk_tokens(v, device.is_cuda());
    let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
    let mut correct = Tensor::zeros([], (Kind::Int64, device));
    let mut n = 0i64;
    for j in 0..batches.n_batches {
        let (x, y) = batches.batch(j, device);
        let f = model.features(&x, &hidden, false, precision);
        let e = f.dp_out.size()[2];
        let flat = f.dp_out.reshape([-1, e]);
        let y = y.reshape([-1]);
        let ntok = y.size()[0];
        let mut a = 0;
        while a < ntok {
            let c = chunk.min(ntok - a);
            let logits = model.decode(&flat.narrow(0, a, c), precision);
            let yc = y.narrow(0, a, c);
            loss_sum += logits
                .cross_entropy_loss::<Tensor>(&yc, None, Reduction::Sum, -100, 0.0)
                .to_kind(Kind::Double);
            correct += logits.argmax(-1, false).eq_tensor(&yc).sum(Kind::Int64);
            a += c;
        }
        n += ntok;
        hidden = f.hidden;
    }
    let n = n.max(1) as f64;
    (
        loss_sum.double_value(&[]) / n,
        correct.int64_value(&[]) as f64 / n,
    )
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
    metrics: &'a mut Metrics,
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
        self.metrics.emit(Event::LmCheckpoint {
            path: self.out.display().to_string(),
            step: self.state.step,
            epoch: self.state.epoch,
        })
    }
}

fn model_config_from_args(a: &TrainArgs, vocab_size: i64) -> ModelConfig {
    let mut c = ModelConfig::fastai_lm(vocab_size, a.drop_mult);
    c.set_sizes(a.emb_sz, a.n_hid, a.n_layers);
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
    if !(0.0..=1.0).contains(&a.one_cycle.pct_start) {
        bail!("--pct-start must be in [0, 1]");
    }
    Ok(TrainSettings {
        train_split: a.run.train_split.clone(),
        valid_split: a.run.valid_split.clone(),
        bs: effective_bs(a)?,
        micro_bs: match a.bs {
            BatchSize::Fixed(n) => Some(n),
            BatchSize::Auto => None,
        },
        bptt: a.bptt,
        epochs: a.epochs,
        max_steps: a.steps,
        lr,
        optim: OptimSettings::from_args(&a.one_cycle, &a.optim),
        freeze: a.freeze,
        seed: a.seed,
        precision,
        drop_mult: a.drop_mult,
    })
}

/// Streams per optimizer step: --effective-bs, else --bs, else 64 (--bs auto).
fn effective_bs(a: &TrainArgs) -> Result<usize> {
    let eff = match (a.effective_bs, a.bs) {
        (Some(e), _) => e,
        (None, BatchSize::Fixed(n)) => n,
        (None, BatchSize::Auto) => 64,
    };
    if eff == 0 {
        bail!("--effective-bs must be at least 1");
    }
    if let BatchSize::Fixed(n) = a.bs {
        if n > eff {
            bail!("--bs {n} is larger than --effective-bs {eff}");
        }
    }
    Ok(eff)
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
    let (threads, device) = runtime::start(common.threads, &a.run.device)?;
    let quiet = common.quiet;
    let shards_dir = a.shards.clone().context("SHARDS is required")?;
    let out = match (&a.output, a.dry_run) {
        (Some(o), _) => o.clone(),
        (None, true) => PathBuf::from("(dry run)"),
        (None, false) => bail!("-o DIR is required"),
    };
    session::check_output_dir(&out, a.resume, a.force, a.dry_run)?;
    let mut metrics = if a.dry_run {
        match &a.log.metrics {
            Some(p) => Metrics::file(TOOL, p)?,
            None => Metrics::none(TOOL),
        }
    } else {
        Metrics::from_flag(TOOL, a.log.metrics.as_deref(), Metrics::stdout)?
    };
    runtime::simulate_oom_above(a.simulate_oom_above);
    // Verified once (every payload hashed, the mappings dropped again), then opened without
    // re-reading the payloads: training reads the tokens it needs, so memory stays flat in
    // the corpus size.
    let set = ShardSet::open(&shards_dir)?;
    let set = ShardSet::open_with(&set.dir, Verify::Quick)?;
    runtime::install_ctrlc();

    // Resolve model config, settings and the starting weights.
    let resume_ck;
    let mut init_ck = None;
    let (model_cfg, settings) = if a.resume {
        let ck = Checkpoint::read(&out)?;
        let settings = session::resume_settings(
            ck.config.training.as_ref(),
            &ck.config.vocab_hash,
            &set,
            &out,
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
                metrics.emit(Event::LmInit {
                    source: init.display().to_string(),
                    vocab_size: set.vocab.len() as u64,
                    matched_tokens: matched as u64,
                    new_tokens: (set.vocab.len() - matched) as u64,
                })?;
            } else {
                metrics.emit(Event::LmInit {
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
        let precision = resolve_precision_for(a.run.precision, device, cfg.n_hid);
        let settings = settings_from_args(&a, cfg.n_layers as usize + 1, precision)?;
        (cfg, settings)
    };
    let s = &settings;

    // Data first: a bad split or geometry fails before any model is built.
    let train = set.split(&s.train_split)?;
    check_split(&train, s.bs, s.bptt)?;
    let valid = if s.valid_split == "none" {
        None
    } else if set.has_split(&s.valid_split) {
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
    if s.precision == Precision::Fp16 && !device.is_cuda() {
        bail!("--precision fp16 needs CUDA (on the CPU use bf16 or fp32)");
    }
    if a.dry_run {
        dry_run(&a, &model_cfg, s, device, &mut metrics)?;
        return Ok(0);
    }

    // Model.
    tch::manual_seed(step_seed(s.seed, u64::MAX));
    let model = LanguageModel::new(&model_cfg, device);
    if let Some(ck) = resume_ck.as_ref().or(init_ck.as_ref()) {
        ck.load_into(&model)?;
    }
    drop(init_ck);
    let n_groups = model.n_groups();
    let mut opt = AdamW::new(
        model.grouped_params(),
        n_groups,
        s.optim.sqr_mom,
        s.optim.eps,
        s.optim.wd,
    );
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
        session::note_complete(TOOL, quiet, &out, state.step);
        return Ok(0);
    }

    // Micro-batch: given, saved by the run being resumed (after any back-off), or probed.
    let mut micro = if a.resume {
        state.micro_bs.or(s.micro_bs).unwrap_or(s.bs)
    } else {
        match s.micro_bs {
            Some(m) => m,
            None => {
                let p = auto_micro_bs(
                    &model,
                    &mut opt,
                    &model_cfg,
                    s.bs,
                    s.bptt,
                    s.precision,
                    device,
                    a.mem_budget,
                )?;
                note(quiet, &p);
                metrics.emit(memory_event(&p.estimate, device, s.bs, p.budget, p.peak))?;
                p.micro_bs
            }
        }
    }
    .clamp(1, s.bs);
    let mut settings = settings.clone();
    settings.micro_bs = Some(micro);
    let s = &settings;

    let sched = s.optim.one_cycle(s.lr.clone(), total);
    let precision = s.precision;
    let kind = precision.kind();
    metrics.emit(Event::LmStart {
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
        micro_bs: Some(micro as u64),
        accum_steps: Some(memory::accum_steps(s.bs, micro) as u64),
    })?;

    let train_file = set
        .dir
        .join(&set.manifest.splits[&s.train_split].tokens_file.name);
    let valid_file = valid.as_ref().map(|_| {
        set.dir
            .join(&set.manifest.splits[&s.valid_split].tokens_file.name)
    });
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
        last_saved: a.resume.then_some(state.step),
        state,
        metrics: &mut metrics,
    };
    let (mut progress, clock) = session::start_steps(TOOL, common, total, &run.state);
    let bs = s.bs as i64;
    let mut scaler =
        (precision == Precision::Fp16).then(|| run.state.loss_scaler.clone().unwrap_or_default());
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
        let batches = LmBatches::new(&train, s.bs, s.bptt, Some(shuffle_seed(s.seed, epoch)))?
            .read_from_file(&train_file)?;
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
            let (x, y) = batches.batch(j, device);
            let sl = x.size()[1];
            let lrs = sched.lrs(step);
            let mom = sched.mom(step);
            let hp = StepHyper::new(&lrs, mom, s.optim.alpha, s.optim.beta, s.optim.clip);
            // An allocation failure anywhere in the step leaves the weights as they were:
            // halve the micro-batch and run the same step again.
            let r = memory::retry_halving(
                &mut micro,
                |m| {
                    tch::manual_seed(step_seed(s.seed, step));
                    train_step_micro(
                        &run.model,
                        &mut run.opt,
                        &x,
                        &y,
                        &h,
                        &hp,
                        precision,
                        m,
                        scaler.as_mut(),
                    )
                },
                |old, m, first| {
                    note(
                        quiet,
                        format!(
                            "step {}: out of memory with micro-batches of {old} streams; retrying with {m} ({} accumulation steps): {first}",
                            step + 1,
                            memory::accum_steps(s.bs, m)
                        ),
                    );
                    run.state.micro_bs = Some(m);
                    run.metrics.emit(Event::LmBackoff {
                        step: step + 1,
                        micro_bs: m as u64,
                        accum_steps: memory::accum_steps(s.bs, m) as u64,
                        error: first.to_string(),
                    })
                },
            )?;
            let o = match r {
                Ok(o) => o,
                Err(f) => {
                    progress.finish();
                    match f {
                        StepFailure::OutOfMemory(first) => bail!("step {}: out of memory even with micro-batches of 1 stream ({first}); lower --bptt or use a smaller model", step + 1),
                        StepFailure::Other(first) => bail!("step {}: {first}", step + 1),
                    }
                }
            };
            if let Some(sc) = &scaler {
                run.state.loss_scaler = Some(sc.clone());
            }
            let (ce_v, loss_v) = (o.train_loss, o.loss);
            if !o.applied && !o.overflow {
                progress.finish();
                let kept = session::kept_checkpoint(run.last_saved, &out);
                bail!(
                    "training diverged: the loss is {} at step {} (epoch {epoch}, batch {j}); stopped, {kept} (lower --lr or set --clip)",
                    if ce_v.is_nan() || loss_v.is_nan() { "NaN" } else { "infinite" },
                    step + 1
                );
            }
            let gn = o.grad_norm;
            h = o.hidden;
            let dt = ts.elapsed().as_secs_f64();
            let ntok = (s.bs as u64) * sl as u64;
            run.state.step += 1;
            run.state.batch += 1;
            run.state.epoch_loss_sum += ce_v;
            run.state.epoch_loss_count += 1;
            run.state.epoch_tokens += ntok;
            run.state.epoch_train_s += dt;
            run.state.elapsed_s = clock.elapsed_s();
            w_loss += ce_v;
            w_n += 1;
            w_tokens += ntok;
            w_time += dt;
            w_gn += gn.unwrap_or(0.0);
            progress.inc(1);
            let stepn = run.state.step;
            if a.log.log_every > 0 && (stepn % a.log.log_every == 0 || stepn == total) {
                run.metrics.emit(Event::LmStep {
                    epoch,
                    step: stepn,
                    train_loss: w_loss / w_n as f64,
                    lr: *lrs.last().expect("groups"),
                    mom,
                    grad_norm: s.optim.clip.map(|_| w_gn / w_n as f64),
                    tokens_per_s: w_tokens as f64 / w_time.max(1e-9),
                    elapsed_s: run.state.elapsed_s,
                })?;
                (w_loss, w_n, w_tokens, w_time, w_gn) = (0.0, 0, 0, 0.0, 0.0);
            }
            if runtime::stop_requested() || a.log.stop_after == Some(stepn) {
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
            if a.log.save_every > 0
                && stepn % a.log.save_every == 0
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
                let vb = LmBatches::new(vs, valid_bs(vs.n_tokens(), s.bs, s.bptt), s.bptt, None)?
                    .read_from_file(valid_file.as_ref().expect("valid split"))?;
                let (l, acc) = evaluate(&run.model, &vb, precision);
                (Some(l), Some(acc))
            }
            None => (None, None),
        };
        run.state.elapsed_s = clock.elapsed_s();
        run.metrics.emit(Event::LmEpoch {
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
    session::finish(TOOL, quiet, &mut progress, run.state.step, &out);
    Ok(0)
}

/// What `--bs auto` found: the micro-batch, its memory estimate, the budget it had to fit
/// (CPU) and the peak RSS measured while probing it (where the kernel lets us measure).
#[derive(Debug, Clone)]
pub struct AutoBs {
    pub micro_bs: usize,
    /// Streams per optimizer step the micro-batches add up to.
    pub effective_bs: usize,
    pub estimate: memory::MemEstimate,
    pub budget: Option<u64>,
    pub peak: Option<u64>,
}

/// `--bs auto`: the largest micro-batch (up to the effective batch `bs`) whose
/// forward+backward fits, probed at increasing sizes. On CUDA a probe fails with an
/// out-of-memory error; on the CPU (where allocation does not fail, the kernel kills instead)
/// a size fits when the process's peak RSS stays within the budget (`budget`, default 80% of
/// MemAvailable): measured around each probe where the kernel lets us reset the peak, and in
/// any case not attempted when the estimate says it will not fit. Prints nothing (its
/// `Display` is the line to print). lr-find uses it too.
#[allow(clippy::too_many_arguments)]
pub fn auto_micro_bs(
    model: &LanguageModel,
    opt: &mut AdamW,
    cfg: &ModelConfig,
    bs: usize,
    bptt: usize,
    precision: Precision,
    device: Device,
    budget: Option<u64>,
) -> Result<AutoBs> {
    let cuda = device.is_cuda();
    let budget =
        if cuda {
            None
        } else {
            Some(budget.or_else(memory::default_budget).context(
                "--bs auto: cannot read MemAvailable from /proc/meminfo; give --mem-budget",
            )?)
        };
    let measure = !cuda && memory::reset_peak_rss();
    let mut best: Option<(usize, Option<u64>)> = None;
    for m in memory::probe_sizes(bs) {
        let est = memory::estimate(cfg, precision, m, bptt, cuda);
        if let Some(b) = budget {
            let now = memory::current_rss().unwrap_or(0);
            let grads = if best.is_none() { est.grad_bytes } else { 0 };
            if now + est.activation_bytes + est.decoder_bytes + grads > b {
                break;
            }
        }
        if measure {
            memory::reset_peak_rss();
        }
        let r = runtime::catch_torch_panic(|| crate::step::probe(model, opt, m, bptt, precision));
        let msg = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(m) => Some(m),
        };
        if let Some(msg) = msg {
            if memory::is_oom(&msg) {
                break;
            }
            bail!("--bs auto: probing a micro-batch of {m}: {msg}");
        }
        let peak = if measure { memory::peak_rss() } else { None };
        if let (Some(p), Some(b)) = (peak, budget) {
            if p > b {
                break;
            }
        }
        best = Some((m, peak));
    }
    let Some((m, peak)) = best else {
        bail!(
            "--bs auto: not even a micro-batch of 1 stream × bptt {} fits{}; lower --bptt or use a smaller model",
            bptt,
            budget.map_or(String::new(), |b| format!(" in the budget of {}", human(b)))
        );
    };
    let estimate = memory::estimate(cfg, precision, m, bptt, cuda);
    Ok(AutoBs {
        micro_bs: m,
        effective_bs: bs,
        estimate,
        budget,
        peak,
    })
}

impl std::fmt::Display for AutoBs {
    /// The line the tools print: "--bs auto: micro-batches of 8 streams, 8 per step ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--bs auto: micro-batches of {} streams, {} per step (effective batch {}){}{}",
            self.micro_bs,
            memory::accum_steps(self.effective_bs, self.micro_bs),
            self.effective_bs,
            self.peak
                .map_or(String::new(), |p| format!("; measured peak {}", human(p))),
            self.budget
                .map_or(String::new(), |b| format!(" of a {} budget", human(b)))
        )
    }
}

fn memory_event(
    est: &memory::MemEstimate,
    device: Device,
    bs: usize,
    budget: Option<u64>,
    measured: Option<u64>,
) -> Event {
    Event::LmMemory {
        device: runtime::device_name(device),
        bs: bs as u64,
        micro_bs: est.micro_bs,
        bptt: est.bptt,
        params: est.params,
        param_bytes: est.param_bytes,
        grad_bytes: est.grad_bytes,
        optimizer_bytes: est.optimizer_bytes,
        activation_bytes_per_token: est.activation_bytes_per_token,
        activation_bytes: est.activation_bytes,
        total_bytes: est.total(),
        budget_bytes: budget,
        measured_bytes: measured,
    }
}

/// `--dry-run`: the memory estimate of this configuration on stdout (and as an `lm_memory`
/// record with --metrics FILE); nothing is built or written.
fn dry_run(
    a: &TrainArgs,
    cfg: &ModelConfig,
    s: &TrainSettings,
    device: Device,
    metrics: &mut Metrics,
) -> Result<()> {
    use std::io::Write;
    let cuda = device.is_cuda();
    let runtime_now = if cuda {
        0
    } else {
        memory::current_rss().unwrap_or(0)
    };
    let budget = if cuda {
        None
    } else {
        a.mem_budget.or_else(memory::default_budget)
    };
    let micro = match (s.micro_bs, budget) {
        (Some(m), _) => m,
        (None, Some(b)) => {
            memory::largest_fitting(cfg, s.precision, s.bs, s.bptt, cuda, runtime_now, b)
        }
        (None, None) => s.bs,
    };
    let e = memory::estimate(cfg, s.precision, micro, s.bptt, cuda);
    let chunk = decoder_chunk_tokens(cfg.vocab_size, cuda).min((micro * s.bptt) as i64);
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "lm-train --dry-run: AWD-LSTM emb {}, hid {}, {} layers, vocab {}: {} parameters; {}; {}",
        cfg.emb_sz,
        cfg.n_hid,
        cfg.n_layers,
        cfg.vocab_size,
        e.params,
        format!("{:?}", s.precision).to_lowercase(),
        runtime::device_name(device)
    )?;
    let row = |o: &mut std::io::StdoutLock, what: &str, b: u64, note: String| {
        writeln!(o, "  {what:<24} {:>12}   {note}", human(b))
    };
    row(
        &mut o,
        "parameters",
        e.param_bytes,
        "fp32 master weights".into(),
    )?;
    row(&mut o, "gradients", e.grad_bytes, "fp32".into())?;
    row(
        &mut o,
        "Adam state",
        e.optimizer_bytes,
        "grad_avg + sqr_avg, fp32".into(),
    )?;
    row(
        &mut o,
        "activations",
        e.activation_bytes,
        format!(
            "{} bytes/token × micro-batch {micro} × bptt {}",
            e.activation_bytes_per_token, s.bptt
        ),
    )?;
    row(
        &mut o,
        "decoder chunk",
        e.decoder_bytes,
        format!("{chunk} tokens × vocab {} at a time", cfg.vocab_size),
    )?;
    row(&mut o, "model + step", e.total(), String::new())?;
    if !cuda {
        row(
            &mut o,
            "runtime (now)",
            runtime_now,
            "libtorch loaded, VmRSS".into(),
        )?;
        row(
            &mut o,
            "estimated peak RSS",
            runtime_now + e.total(),
            String::new(),
        )?;
    }
    if let Some(b) = budget {
        row(
            &mut o,
            "budget",
            b,
            if a.mem_budget.is_some() {
                "--mem-budget".into()
            } else {
                "80% of MemAvailable".into()
            },
        )?;
    }
    writeln!(
        o,
        "  micro-batch {micro} of effective batch {}: {} accumulation step(s){}",
        s.bs,
        memory::accum_steps(s.bs, micro),
        if s.micro_bs.is_none() && !cuda {
            " (--bs auto: the largest the estimate fits in the budget; training probes it)"
        } else {
            ""
        }
    )?;
    o.flush()?;
    metrics.emit(memory_event(&e, device, s.bs, budget, None))?;
    Ok(())
}

/// Used by tests: the checkpoint directory's model weights as named CPU tensors.
pub fn read_weights(dir: &Path) -> Result<Vec<(String, Tensor)>> {
    Ok(Checkpoint::read(dir)?.tensors.into_iter().collect())
}
