//! The training loop: gradual unfreezing, one `fit_one_cycle` per phase, with checkpoints
//! that resume bit for bit (on the CPU with the same --threads).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lm_train::checkpoint::Checkpoint;
use lm_train::config::{ModelConfig, OptimSettings, Precision};
use lm_train::optim::AdamW;
use lm_train::runtime;
use lm_train::session;
use lm_train::train::{resolve_precision, step_seed};
use shared::cli::{CommonArgs, Interrupted};
use shared::shards::{ShardSet, Split};
use shared::vocab::{Vocab, PAD};
use tch::{Kind, Reduction, Tensor};

use crate::args::TrainArgs;
use crate::checkpoint::{self, ClfCheckpoint, TrainState};
use crate::config::{
    require_lm_checkpoint, ClfConfig, HeadConfig, LabelConfig, Task, TrainSettings,
};
use crate::data::{self, Targets};
use crate::fair::{self, adversary_loss, debias_grad, Adversary, AdversaryMode, AdversarySettings};
use crate::metrics::{self, ClfEvent, ClfMetrics, Scores};
use crate::model::ClfModel;
use crate::optim::ClfOpt;
use crate::schedule::{self, Phase};
use crate::TOOL;

fn note(quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        eprintln!("{TOOL}: {msg}");
    }
}

/// fastai's `awd_lstm_clas_config` dropouts times `drop_mult`, on the LM's sizes.
pub fn encoder_config(lm: &ModelConfig, drop_mult: f64, pad_token: i64) -> ModelConfig {
    let mut c = lm.clone();
    c.pad_token = pad_token;
    c.input_p = 0.4 * drop_mult;
    c.weight_p = 0.5 * drop_mult;
    c.embed_p = 0.05 * drop_mult;
    c.hidden_p = 0.3 * drop_mult;
    c.output_p = 0.4 * drop_mult;
    c
}

/// Number of model outputs of a task.
pub fn n_out(labels: &LabelConfig) -> i64 {
    match labels.task {
        Task::Regression => 1,
        _ => labels.classes.len() as i64,
    }
}

/// The task loss (mean over the batch); `out` fp32 batch × n_out, `y` from [`Targets::batch`].
pub fn loss(task: Task, out: &Tensor, y: &Tensor) -> Tensor {
    match task {
        Task::Classification => out.cross_entropy_for_logits(y),
        Task::MultiLabel => {
            out.binary_cross_entropy_with_logits::<Tensor>(y, None, None, Reduction::Mean)
        }
        Task::Regression => out.mse_loss(y, Reduction::Mean),
    }
}

/// [`loss`] with per-document weights (`--reweigh`; classification): the mean of
/// `w_i·loss_i`.
pub fn weighted_loss(task: Task, out: &Tensor, y: &Tensor, w: Option<&Tensor>) -> Tensor {
    match (task, w) {
        (Task::Classification, Some(w)) => {
            let l = out.cross_entropy_loss::<Tensor>(y, None, Reduction::None, -100, 0.0);
            (l * w).mean(Kind::Float)
        }
        _ => loss(task, out, y),
    }
}

/// Validation: mean loss per document and the task's scores (no dropout, BatchNorm running
/// statistics, longest documents first).
pub fn evaluate(
    model: &ClfModel,
    split: &Split,
    targets: &Targets,
    labels: &LabelConfig,
    bs: usize,
    precision: Precision,
) -> Scores {
    evaluate_with(model, split, targets, labels, bs, precision, None)
}

/// [`evaluate`], plus the adversary's validation loss and accuracy (`adv`: the adversary and
/// every document's protected group).
pub fn evaluate_with(
    model: &ClfModel,
    split: &Split,
    targets: &Targets,
    labels: &LabelConfig,
    bs: usize,
    precision: Precision,
    adv: Option<(&Adversary, &[u32])>,
) -> Scores {
    let _g = tch::no_grad_guard();
    let (mut adv_loss, mut adv_right) = (0.0f64, 0i64);
    let lens = data::lengths(split);
    let fill = model.encoder.cfg.pad_token;
    let (mut loss_sum, mut n) = (0.0f64, 0usize);
    let mut outs: Vec<(Vec<usize>, Tensor)> = Vec::new();
    for b in data::sorted_batches(&lens, bs) {
        let docs: Vec<Vec<i64>> = b.iter().map(|&d| data::doc_ids(split, d, fill)).collect();
        let o = model
            .forward(&docs, false, precision)
            .out
            .to_device(tch::Device::Cpu);
        let y = targets.batch(&b);
        loss_sum += loss(labels.task, &o, &y).double_value(&[]) * b.len() as f64;
        if let Some((a, z)) = adv {
            let zb = Tensor::from_slice(&b.iter().map(|&d| z[d] as i64).collect::<Vec<_>>());
            let dev = a.vs.device();
            let (l, r) = adversary_loss(
                &a.forward(&o.to_device(dev), &y.to_device(dev)),
                &zb.to_device(dev),
            );
            adv_loss += l.double_value(&[]) * b.len() as f64;
            adv_right += r;
        }
        n += b.len();
        outs.push((b, o));
    }
    let mut s = Scores {
        valid_loss: Some(loss_sum / n.max(1) as f64),
        ..Default::default()
    };
    if adv.is_some() {
        s.valid_adv_loss = Some(adv_loss / n.max(1) as f64);
        s.valid_adv_accuracy = Some(adv_right as f64 / n.max(1) as f64);
    }
    let order: Vec<usize> = outs.iter().flat_map(|(b, _)| b.iter().copied()).collect();
    let all = Tensor::cat(
        &outs
            .iter()
            .map(|(_, o)| o.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    );
    let k = labels.classes.len();
    match (labels.task, targets) {
        (Task::Classification, Targets::Class(y)) => {
            let pred = Vec::<i64>::try_from(all.argmax(-1, false)).expect("int64");
            let yy: Vec<i64> = order.iter().map(|&d| y[d]).collect();
            let (acc, f1) = metrics::classification_scores(&yy, &pred, k);
            s.accuracy = Some(acc);
            s.macro_f1 = Some(f1.iter().sum::<f64>() / k.max(1) as f64);
        }
        (Task::MultiLabel, Targets::Multi(y, k)) => {
            let pred = Vec::<f32>::try_from(all.sigmoid().ge(0.5).to_kind(Kind::Float).view([-1]))
                .expect("f32");
            let yy: Vec<f32> = order
                .iter()
                .flat_map(|&d| y[d * k..(d + 1) * k].iter().copied())
                .collect();
            let (acc, f1) = metrics::multilabel_scores(&yy, &pred, *k);
            s.accuracy = Some(acc);
            s.macro_f1 = Some(f1.iter().sum::<f64>() / (*k).max(1) as f64);
            s.f1_per_label = Some(labels.classes.iter().cloned().zip(f1).collect());
        }
        (Task::Regression, Targets::Reg(y)) => {
            let pred = Vec::<f32>::try_from(all.view([-1])).expect("f32");
            let yy: Vec<f32> = order.iter().map(|&d| y[d]).collect();
            let (mae, rmse, r2) = metrics::regression_scores(&yy, &pred);
            (s.mae, s.rmse, s.r2) = (Some(mae), Some(rmse), r2);
        }
        _ => unreachable!("targets follow the task"),
    }
    s
}

/// Learning rates (per layer group, frozen groups included; they do not train), momentum and
/// regularisation of one training step: lm-train's, with AR and TAR on the sentence encoder's
/// output (fastai's `RNNRegularizer`).
pub use lm_train::step::StepHyper;

/// What one training step did.
#[derive(Debug, Clone, Copy)]
pub struct StepOut {
    /// The task loss of the batch (what fastai's Recorder sees; weighted with --reweigh).
    pub train_loss: f64,
    /// The task loss plus AR and TAR (what is back-propagated).
    pub total_loss: f64,
    /// The global gradient norm before clipping (with `clip`).
    pub grad_norm: Option<f64>,
    /// false when a loss was not finite: then nothing was back-propagated or stepped.
    pub stepped: bool,
    /// With an adversary: its loss on the batch and how many groups it guessed right.
    pub adv: Option<(f64, i64)>,
}

/// The task loss plus fastai's `RNNRegularizer` on the classifier: AR (`hp.alpha`) and TAR
/// (`hp.beta`) on the sentence encoder's output `enc_out` (batch × seq × emb).
pub fn regularized(task_loss: &Tensor, enc_out: &Tensor, hp: &StepHyper) -> Tensor {
    let mut total = task_loss.shallow_clone();
    if hp.alpha != 0.0 {
        total += enc_out.square().mean(Kind::Float) * hp.alpha;
    }
    let sl = enc_out.size()[1];
    if hp.beta != 0.0 && sl > 1 {
        let d = enc_out.narrow(1, 1, sl - 1) - enc_out.narrow(1, 0, sl - 1);
        total += d.square().mean(Kind::Float) * hp.beta;
    }
    total
}

/// The adversary's part of a training step.
pub struct AdvStep<'a> {
    pub adversary: &'a Adversary,
    pub opt: &'a mut AdamW,
    /// The batch's protected groups (int64, on the adversary's device).
    pub z: &'a Tensor,
    /// alpha in `g − proj_{g_A} g − alpha·g_A`.
    pub weight: f64,
    pub lr: f64,
}

/// One training step of the classifier on a batch (`docs` longest first, `y` on the model's
/// device): forward with dropout, the task loss plus AR/TAR, and, when both losses are
/// finite, backward, optional clipping and the AdamW step at `hp.lrs` / `hp.mom`. The caller
/// seeds torch's generator (dropout) before calling.
pub fn train_step(
    model: &ClfModel,
    opt: &mut ClfOpt,
    docs: &[Vec<i64>],
    y: &Tensor,
    task: Task,
    hp: &StepHyper,
    precision: Precision,
) -> StepOut {
    train_step_with(model, opt, docs, y, task, hp, precision, None, None)
}

/// [`train_step`] with per-document loss weights `w` (`--reweigh`) and an adversary
/// (`--adversary`): the classifier's gradient becomes `g − proj_{g_A} g − alpha·g_A` per
/// parameter tensor ([`debias_grad`]), then the adversary takes an Adam step on its own loss
/// with the classifier's output detached.
#[allow(clippy::too_many_arguments)]
pub fn train_step_with(
    model: &ClfModel,
    opt: &mut ClfOpt,
    docs: &[Vec<i64>],
    y: &Tensor,
    task: Task,
    hp: &StepHyper,
    precision: Precision,
    w: Option<&Tensor>,
    adv: Option<AdvStep>,
) -> StepOut {
    let o = model.forward(docs, true, precision);
    let task_loss = weighted_loss(task, &o.out, y, w);
    let total_loss = regularized(&task_loss, &o.enc_out, hp);
    let adv_out = adv.as_ref().map(|a| {
        let dev = a.adversary.vs.device();
        adversary_loss(
            &a.adversary
                .forward(&o.out.to_device(dev), &y.to_device(dev)),
            a.z,
        )
    });
    let lv = task_loss.double_value(&[]);
    let tv = total_loss.double_value(&[]);
    let av = adv_out.as_ref().map(|(l, r)| (l.double_value(&[]), *r));
    if !lv.is_finite() || !tv.is_finite() || av.is_some_and(|(l, _)| !l.is_finite()) {
        return StepOut {
            train_loss: lv,
            total_loss: tv,
            grad_norm: None,
            stepped: false,
            adv: av,
        };
    }
    opt.zero_grad();
    match (adv, adv_out) {
        (Some(a), Some((adv_loss, _))) => {
            let params: Vec<Tensor> = opt
                .decayed
                .params
                .iter()
                .chain(&opt.bn.params)
                .filter(|p| p.param.requires_grad())
                .map(|p| p.param.shallow_clone())
                .collect();
            // g_A first, keeping the graph for the task loss's backward
            let g_a = Tensor::run_backward(&[&adv_loss], &params, true, false);
            total_loss.backward();
            tch::no_grad(|| {
                for (p, ga) in params.iter().zip(&g_a) {
                    let mut g = p.grad();
                    if g.defined() && ga.defined() {
                        let d = debias_grad(&g, ga, a.weight);
                        g.copy_(&d);
                    }
                }
            });
            let grad_norm = hp.clip.map(|c| opt.clip_grad_norm(c));
            opt.step(hp.lrs, hp.mom);
            // the adversary learns on its own loss, the classifier's output detached
            a.opt.zero_grad();
            let dev = a.adversary.vs.device();
            let (l, _) = adversary_loss(
                &a.adversary
                    .forward(&o.out.detach().to_device(dev), &y.to_device(dev)),
                a.z,
            );
            l.backward();
            a.opt.step(&[a.lr], 0.9);
            StepOut {
                train_loss: lv,
                total_loss: tv,
                grad_norm,
                stepped: true,
                adv: av,
            }
        }
        _ => {
            total_loss.backward();
            let grad_norm = hp.clip.map(|c| opt.clip_grad_norm(c));
            opt.step(hp.lrs, hp.mom);
            StepOut {
                train_loss: lv,
                total_loss: tv,
                grad_norm,
                stepped: true,
                adv: None,
            }
        }
    }
}

/// Where step `step` falls: (phase, first step of the phase, global epoch, batch).
fn locate(phases: &[Phase], nb: u64, step: u64) -> (usize, u64, u64, u64) {
    let mut start = 0u64;
    for (p, ph) in phases.iter().enumerate() {
        let n = ph.epochs as u64 * nb;
        if step < start + n || p + 1 == phases.len() {
            return (p, start, step / nb, step % nb);
        }
        start += n;
    }
    unreachable!("at least one phase")
}

fn group_names(n_layers: usize) -> Vec<String> {
    let mut v = vec!["embedding".to_string()];
    v.extend((0..n_layers).map(|l| format!("lstm{l}")));
    v.push("head".into());
    v
}

struct Prepared {
    cfg: ClfConfig,
    settings: TrainSettings,
    lm: Option<Checkpoint>,
    resume: Option<ClfCheckpoint>,
}

fn prepare(
    a: &TrainArgs,
    set: &ShardSet,
    shards_dir: &Path,
    out: &Path,
    device: tch::Device,
) -> Result<Prepared> {
    if a.resume {
        let ck = ClfCheckpoint::read(out)?;
        let settings =
            session::resume_settings(ck.config.training.as_ref(), &ck.config.vocab_hash, set, out)?;
        return Ok(Prepared {
            cfg: ck.config.clone(),
            settings,
            lm: None,
            resume: Some(ck),
        });
    }
    let enc_dir = a.encoder.clone().context("--encoder LM_DIR is required")?;
    require_lm_checkpoint(&enc_dir)?;
    let lm = Checkpoint::read(&enc_dir)?;
    set.require_vocab(
        &lm.config.vocab_hash,
        &format!(
            "the vocab of the --encoder language model {}",
            enc_dir.display()
        ),
    )?;
    let train = set.split(&a.run.train_split)?;
    let labels = data::resolve_labels(
        shards_dir,
        &train,
        &a.label_col,
        a.task,
        a.label_delim.as_deref(),
    )?;
    if a.y_range.is_some() && labels.task != Task::Regression {
        bail!(
            "--y-range is for regression; the label column {:?} is a {} target",
            labels.label_col,
            labels.task.name()
        );
    }
    if a.drop_mult < 0.0 {
        bail!("--drop-mult must not be negative");
    }
    let pad = set
        .vocab
        .get(PAD)
        .map_or(lm.config.model.pad_token, i64::from);
    let enc = encoder_config(&lm.config.model, a.drop_mult, pad);
    enc.validate()?;
    if a.lin_ftrs.iter().any(|&n| n < 1) {
        bail!("--lin-ftrs: sizes must be positive");
    }
    let ps = if a.ps.len() == a.lin_ftrs.len() {
        a.ps.clone()
    } else if a.ps.len() == 1 {
        vec![a.ps[0]; a.lin_ftrs.len()]
    } else {
        bail!(
            "--ps has {} values for {} --lin-ftrs layers",
            a.ps.len(),
            a.lin_ftrs.len()
        );
    };
    let mut dims = vec![3 * enc.emb_sz];
    dims.extend(&a.lin_ftrs);
    dims.push(n_out(&labels));
    let mut all_ps = vec![enc.output_p];
    all_ps.extend(ps);
    if all_ps.iter().any(|p| !(0.0..1.0).contains(p)) {
        bail!("head dropouts {all_ps:?} must be in [0, 1) (check --ps and --drop-mult)");
    }
    let y_range = match a.y_range.as_deref() {
        Some([lo, hi]) if lo < hi => Some((*lo, *hi)),
        Some(r) => bail!("--y-range {r:?}: LO must be below HI"),
        None => None,
    };
    if a.bptt == 0 || a.max_len < a.bptt {
        bail!(
            "--max-len ({}) must be at least --bptt ({}) and --bptt at least 1",
            a.max_len,
            a.bptt
        );
    }
    if a.bs < 2 {
        bail!("--bs must be at least 2 (BatchNorm in the head needs batch statistics)");
    }
    let n_groups = enc.n_layers as usize + 2;
    let phases = schedule::parse(&a.unfreeze, n_groups)?;
    if !(a.disc_div.is_finite() && a.disc_div >= 1.0) {
        bail!("--disc-div must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.one_cycle.pct_start) {
        bail!("--pct-start must be in [0, 1]");
    }
    for (flag, col) in [("--reweigh", &a.reweigh), ("--adversary", &a.adversary)] {
        if let Some(c) = col {
            if labels.task != Task::Classification {
                bail!(
                    "{flag} {c} is for classification; the label column {:?} is a {} target",
                    labels.label_col,
                    labels.task.name()
                );
            }
            if *c == labels.label_col {
                bail!("{flag} {c}: the protected column must not be the label column");
            }
        }
    }
    let adversary = match &a.adversary {
        Some(col) => {
            let weight = a.adversary_weight.unwrap_or(0.1);
            let lr = a.adversary_lr.unwrap_or(1e-3);
            if !(weight.is_finite() && weight >= 0.0) {
                bail!("--adversary-weight {weight}: must be a number ≥ 0");
            }
            if !(lr.is_finite() && lr > 0.0) {
                bail!("--adversary-lr {lr}: must be a positive number");
            }
            let (groups, _) = fair::protected_codes(shards_dir, &train, col, "--adversary", None)?;
            Some(AdversarySettings {
                col: col.clone(),
                weight,
                lr,
                mode: a.adversary_mode.unwrap_or(AdversaryMode::Odds),
                groups,
            })
        }
        None => {
            for (flag, given) in [
                ("--adversary-weight", a.adversary_weight.is_some()),
                ("--adversary-lr", a.adversary_lr.is_some()),
                ("--adversary-mode", a.adversary_mode.is_some()),
            ] {
                if given {
                    bail!("{flag} needs --adversary COL (the protected column the adversary predicts)");
                }
            }
            None
        }
    };
    if let Some(col) = &a.reweigh {
        fair::protected_codes(shards_dir, &train, col, "--reweigh", None)?;
    }
    let precision = resolve_precision(a.run.precision, device);
    let settings = TrainSettings {
        train_split: a.run.train_split.clone(),
        valid_split: a.run.valid_split.clone(),
        bs: a.bs,
        phases,
        unfreeze: a.unfreeze.clone(),
        disc_div: a.disc_div,
        optim: OptimSettings::from_args(&a.one_cycle, &a.optim),
        seed: a.seed,
        precision,
        drop_mult: a.drop_mult,
        reweigh: a.reweigh.clone(),
        adversary,
    };
    let cfg = ClfConfig {
        format: crate::config::CONFIG_FORMAT.into(),
        version: crate::config::CONFIG_VERSION,
        arch: crate::config::ARCH.into(),
        encoder: enc,
        head: HeadConfig {
            dims,
            ps: all_ps,
            y_range,
        },
        labels,
        bptt: a.bptt,
        max_len: a.max_len,
        vocab_hash: set.vocab.hash().to_string(),
        encoder_source: enc_dir.display().to_string(),
        training: Some(settings.clone()),
        created_by: concat!("ulmfit-rs clf-train ", env!("CARGO_PKG_VERSION")).into(),
    };
    Ok(Prepared {
        cfg,
        settings,
        lm: Some(lm),
        resume: None,
    })
}

struct Run<'a> {
    out: PathBuf,
    model: ClfModel,
    vocab: &'a Vocab,
    cfg: ClfConfig,
    opt: ClfOpt,
    adv: Option<(Adversary, AdamW)>,
    state: TrainState,
    last_saved: Option<u64>,
    metrics: &'a mut ClfMetrics,
}

impl Run<'_> {
    fn save(&mut self, epoch: u64) -> Result<()> {
        checkpoint::save_with(
            &self.out,
            &self.model,
            self.vocab,
            &self.cfg,
            Some((&self.opt, &self.state)),
            self.adv.as_ref().map(|(a, o)| (a, o)),
        )?;
        self.last_saved = Some(self.state.step);
        self.metrics.emit(ClfEvent::ClfCheckpoint {
            path: self.out.display().to_string(),
            step: self.state.step,
            epoch,
        })
    }
}

pub fn run(a: TrainArgs, common: &CommonArgs) -> Result<i32> {
    let (threads, device) = runtime::start(common.threads, &a.run.device)?;
    let quiet = common.quiet;
    let shards_dir = a.shards.clone().context("SHARDS is required")?;
    let out = a.output.clone().context("-o DIR is required")?;
    session::check_output_dir(&out, a.resume, a.force, false)?;
    let set = ShardSet::open(&shards_dir)?;
    let Prepared {
        cfg,
        settings,
        lm,
        resume,
    } = prepare(&a, &set, &shards_dir, &out, device)?;
    let s = &settings;
    let labels = cfg.labels.clone();

    // Data: every label checked before any model is built.
    let train = set.split(&s.train_split)?;
    if !set.has_split(&s.valid_split) {
        let have: Vec<&str> = set.split_names().collect();
        bail!(
            "{}: no validation split {:?} (splits: {}); numericalize with --split-col or --valid-pct, or pass --valid-split",
            shards_dir.display(),
            s.valid_split,
            have.join(", ")
        );
    }
    let valid = set.split(&s.valid_split)?;
    if valid.docs() == 0 {
        bail!(
            "{}: the validation split {:?} is empty",
            shards_dir.display(),
            s.valid_split
        );
    }
    let train_t = data::targets(&shards_dir, &train, &labels)?;
    let valid_t = data::targets(&shards_dir, &valid, &labels)?;
    // Fairness: the reweighing weights and the adversary's groups, checked before the model.
    let mut reweigh_cells = None;
    let weights: Option<Vec<f32>> = match (&s.reweigh, &train_t) {
        (Some(col), Targets::Class(y)) => {
            let (groups, g) = fair::protected_codes(&shards_dir, &train, col, "--reweigh", None)?;
            let (cells, w) = fair::reweigh(&groups, &labels.classes, &g, y);
            reweigh_cells = Some((col.clone(), cells));
            Some(w)
        }
        (Some(_), _) => bail!("--reweigh is for classification"),
        (None, _) => None,
    };
    let adv_codes: Option<(Vec<u32>, Vec<u32>)> = match &s.adversary {
        Some(st) => {
            let (_, zt) = fair::protected_codes(
                &shards_dir,
                &train,
                &st.col,
                "--adversary",
                Some(&st.groups),
            )?;
            let (_, zv) = fair::protected_codes(
                &shards_dir,
                &valid,
                &st.col,
                "--adversary",
                Some(&st.groups),
            )?;
            Some((zt, zv))
        }
        None => None,
    };
    let lens = data::lengths(&train);
    let nb = (train.docs() / s.bs) as u64;
    if nb == 0 {
        bail!(
            "{}: the training split {:?} has {} documents, fewer than --bs {} (the last partial batch is dropped, as fastai does); lower --bs",
            shards_dir.display(),
            s.train_split,
            train.docs(),
            s.bs
        );
    }
    let mut metrics = ClfMetrics::open(a.log.metrics.as_deref())?;
    runtime::install_ctrlc();

    // Model.
    tch::manual_seed(step_seed(s.seed, u64::MAX));
    let model = ClfModel::new(&cfg, device);
    if let Some(lm) = &lm {
        model.load_encoder(lm)?;
    }
    if let Some(ck) = &resume {
        ck.load_into(&model)?;
    }
    drop(lm);
    let n_groups = model.n_groups();
    let mut opt = ClfOpt::new(&model, s.optim.sqr_mom, s.optim.eps, s.optim.wd);
    let state = if a.resume {
        checkpoint::read_resumable(&out, &mut opt, device)?
    } else {
        TrainState::default()
    };
    let adv = match &s.adversary {
        Some(st) => {
            tch::manual_seed(step_seed(s.seed, u64::MAX - 1));
            let adversary = Adversary::new(n_out(&labels), st.groups.len() as i64, st.mode, device);
            let mut adv_opt = adversary.optimizer();
            if a.resume {
                checkpoint::read_adversary(&out, &adversary, &mut adv_opt, &state, device)?;
            }
            Some((adversary, adv_opt))
        }
        None => None,
    };
    drop(resume);
    if state.done {
        session::note_complete(TOOL, quiet, &out, state.step);
        return Ok(0);
    }
    let total: u64 = s.phases.iter().map(|p| p.epochs as u64 * nb).sum();
    let precision = s.precision;
    metrics.emit(ClfEvent::ClfStart {
        task: labels.task.name().into(),
        classes: labels.classes.clone(),
        n_out: n_out(&labels) as u64,
        train_docs: train.docs() as u64,
        valid_docs: valid.docs() as u64,
        vocab_size: set.vocab.len() as u64,
        params: model.n_params() as u64,
        groups: group_names(model.n_layers()),
        phases: s.phases.len() as u64,
        total_steps: total,
        start_step: state.step,
        bs: s.bs as u64,
        bptt: cfg.bptt as u64,
        max_len: cfg.max_len as u64,
        encoder: cfg.encoder_source.clone(),
        device: runtime::device_name(device),
        precision: format!("{precision:?}").to_lowercase(),
        threads: threads as u64,
    })?;
    if let Some((col, cells)) = reweigh_cells {
        metrics.emit(ClfEvent::ClfReweigh { col, cells })?;
    }
    if let (Some(st), Some((zt, zv))) = (&s.adversary, &adv_codes) {
        let count = |z: &[u32]| {
            let mut c = vec![0u64; st.groups.len()];
            z.iter().for_each(|&g| c[g as usize] += 1);
            c
        };
        let train_counts = count(zt);
        let top = (0..train_counts.len()).fold(0, |m, i| {
            if train_counts[i] > train_counts[m] {
                i
            } else {
                m
            }
        });
        let valid_counts = count(zv);
        metrics.emit(ClfEvent::ClfAdversary {
            col: st.col.clone(),
            mode: st.mode,
            weight: st.weight,
            lr: st.lr,
            groups: st.groups.clone(),
            majority_accuracy: train_counts[top] as f64 / zt.len().max(1) as f64,
            valid_majority_accuracy: valid_counts[top] as f64 / zv.len().max(1) as f64,
            train_counts,
        })?;
    }
    let mut run = Run {
        out: out.clone(),
        model,
        vocab: &set.vocab,
        cfg: cfg.clone(),
        opt,
        adv,
        last_saved: a.resume.then_some(state.step),
        state,
        metrics: &mut metrics,
    };
    let (mut progress, clock) = session::start_steps(TOOL, common, total, &run.state);
    let fill = cfg.encoder.pad_token;
    let (mut w_loss, mut w_n, mut w_docs, mut w_time, mut w_gn) =
        (0.0f64, 0u64, 0u64, 0.0f64, 0.0f64);
    let (mut w_adv_loss, mut w_adv_right) = (0.0f64, 0i64);
    let mut batches: Option<(u64, Vec<Vec<usize>>)> = None;
    let mut cur_phase = usize::MAX;
    let mut sched = None;

    while run.state.step < total {
        let step = run.state.step;
        let (p, p_start, epoch, batch) = locate(&s.phases, nb, step);
        let phase = &s.phases[p];
        if p != cur_phase {
            run.opt.freeze_to(n_groups, phase.trainable);
            let lrs = schedule::group_lrs(phase, n_groups, s.disc_div);
            let steps = phase.epochs as u64 * nb;
            if step == p_start {
                run.metrics.emit(ClfEvent::ClfPhase {
                    phase: p as u64,
                    trainable_groups: phase.trainable as u64,
                    frozen_groups: (n_groups - phase.trainable) as u64,
                    epochs: phase.epochs as u64,
                    steps,
                    lrs: lrs.clone(),
                })?;
            }
            sched = Some(s.optim.one_cycle(lrs, steps));
            cur_phase = p;
        }
        let sched = sched.as_ref().expect("set above");
        if batches.as_ref().map_or(true, |(e, _)| *e != epoch) {
            batches = Some((
                epoch,
                data::train_batches(&lens, s.bs, data::epoch_seed(s.seed, epoch)),
            ));
        }
        if batch == 0 {
            run.state.epoch_loss_sum = 0.0;
            run.state.epoch_loss_count = 0;
            run.state.epoch_docs = 0;
            run.state.epoch_train_s = 0.0;
            run.state.epoch_adv_loss_sum = 0.0;
            run.state.epoch_adv_right = 0;
            run.state.epoch_adv_n = 0;
        }
        let b = &batches.as_ref().expect("set").1[batch as usize];
        let ts = Instant::now();
        tch::manual_seed(step_seed(s.seed, step));
        let docs: Vec<Vec<i64>> = b.iter().map(|&d| data::doc_ids(&train, d, fill)).collect();
        let y = train_t.batch(b).to_device(device);
        let lrs = sched.lrs(step - p_start);
        let mom = sched.mom(step - p_start);
        let hp = StepHyper::new(&lrs, mom, s.optim.alpha, s.optim.beta, s.optim.clip);
        let wb = weights.as_ref().map(|w| {
            Tensor::from_slice(&b.iter().map(|&d| w[d]).collect::<Vec<f32>>()).to_device(device)
        });
        let zb = adv_codes.as_ref().map(|(zt, _)| {
            Tensor::from_slice(&b.iter().map(|&d| zt[d] as i64).collect::<Vec<i64>>())
                .to_device(device)
        });
        let adv_step = match (run.adv.as_mut(), &s.adversary, zb.as_ref()) {
            (Some((adversary, opt)), Some(st), Some(z)) => Some(AdvStep {
                adversary,
                opt,
                z,
                weight: st.weight,
                lr: st.lr,
            }),
            _ => None,
        };
        let st = train_step_with(
            &run.model,
            &mut run.opt,
            &docs,
            &y,
            labels.task,
            &hp,
            precision,
            wb.as_ref(),
            adv_step,
        );
        let (lv, gn) = (st.train_loss, st.grad_norm);
        if !st.stepped {
            progress.finish();
            let kept = session::kept_checkpoint(run.last_saved, &out);
            bail!(
                "training diverged: the loss is {} at step {} (phase {p}, epoch {epoch}, batch {batch}); stopped, {kept} (lower the --unfreeze learning rates or set --clip)",
                if lv.is_nan() || st.total_loss.is_nan() { "NaN" } else { "infinite" },
                step + 1
            );
        }
        let dt = ts.elapsed().as_secs_f64();
        run.state.step += 1;
        run.state.epoch_loss_sum += lv;
        run.state.epoch_loss_count += 1;
        run.state.epoch_docs += b.len() as u64;
        run.state.epoch_train_s += dt;
        if let Some((al, ar)) = st.adv {
            run.state.epoch_adv_loss_sum += al;
            run.state.epoch_adv_right += ar as u64;
            run.state.epoch_adv_n += b.len() as u64;
            w_adv_loss += al;
            w_adv_right += ar;
        }
        run.state.elapsed_s = clock.elapsed_s();
        (w_loss, w_n, w_docs, w_time, w_gn) = (
            w_loss + lv,
            w_n + 1,
            w_docs + b.len() as u64,
            w_time + dt,
            w_gn + gn.unwrap_or(0.0),
        );
        progress.inc(1);
        let stepn = run.state.step;
        if a.log.log_every > 0 && (stepn % a.log.log_every == 0 || stepn == total) {
            run.metrics.emit(ClfEvent::ClfStep {
                phase: p as u64,
                epoch,
                step: stepn,
                train_loss: w_loss / w_n as f64,
                lrs: lrs.clone(),
                mom,
                grad_norm: s.optim.clip.map(|_| w_gn / w_n as f64),
                adv_loss: s.adversary.as_ref().map(|_| w_adv_loss / w_n as f64),
                adv_accuracy: s
                    .adversary
                    .as_ref()
                    .map(|_| w_adv_right as f64 / w_docs.max(1) as f64),
                docs_per_s: w_docs as f64 / w_time.max(1e-9),
                elapsed_s: run.state.elapsed_s,
            })?;
            (w_loss, w_n, w_docs, w_time, w_gn) = (0.0, 0, 0, 0.0, 0.0);
            (w_adv_loss, w_adv_right) = (0.0, 0);
        }
        let epoch_done = stepn % nb == 0;
        if epoch_done {
            let adv_eval = match (run.adv.as_ref(), adv_codes.as_ref()) {
                (Some((a, _)), Some((_, zv))) => Some((a, zv.as_slice())),
                _ => None,
            };
            let scores = evaluate_with(
                &run.model, &valid, &valid_t, &labels, s.bs, precision, adv_eval,
            );
            let has_adv = s.adversary.is_some();
            let adv_loss = has_adv
                .then(|| run.state.epoch_adv_loss_sum / run.state.epoch_loss_count.max(1) as f64);
            let adv_accuracy = has_adv
                .then(|| run.state.epoch_adv_right as f64 / run.state.epoch_adv_n.max(1) as f64);
            run.state.elapsed_s = clock.elapsed_s();
            run.metrics.emit(ClfEvent::ClfEpoch {
                phase: p as u64,
                epoch,
                step: stepn,
                train_loss: run.state.epoch_loss_sum / run.state.epoch_loss_count.max(1) as f64,
                adv_loss,
                adv_accuracy,
                scores,
                docs_per_s: run.state.epoch_docs as f64 / run.state.epoch_train_s.max(1e-9),
                elapsed_s: run.state.elapsed_s,
            })?;
            run.state.done = stepn >= total;
            run.save(epoch)?;
        }
        if runtime::stop_requested() || a.log.stop_after == Some(stepn) {
            progress.finish();
            if !epoch_done {
                run.save(epoch)?;
            }
            note(
                quiet,
                format!(
                    "interrupted at step {stepn}; checkpoint saved in {} (continue with --resume)",
                    out.display()
                ),
            );
            return Err(Interrupted.into());
        }
        if a.log.save_every > 0 && stepn % a.log.save_every == 0 && !epoch_done {
            run.save(epoch)?;
        }
    }
    session::finish(TOOL, quiet, &mut progress, run.state.step, &out);
    Ok(0)
}
