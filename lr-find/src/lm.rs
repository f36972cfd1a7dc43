//! The language model side of the range test: lm-train's model, batches, AdamW and training
//! step ([`lm_train::train::train_step`]) behind [`RangeTestModel`].
//!
//! Seeds follow lm-train exactly, so `lr-find --seed S` starts from the weights, document
//! order and dropout masks that `lm-train --seed S` would use: the initial weights from
//! `step_seed(S, u64::MAX)`, epoch `e`'s shuffle from `shuffle_seed(S, e)`, step `t`'s dropout
//! from `step_seed(S, t)`. When the test needs more batches than an epoch has, the next epoch
//! starts (reshuffled, hidden state reset, as fastai's `lr_find` fitting several epochs).

use std::cell::Cell;

use anyhow::{bail, Result};
use lm_train::checkpoint::Checkpoint;
use lm_train::config::{ModelConfig, Precision};
use lm_train::data::{shuffle_seed, LmBatches};
use lm_train::memory::{self, StepFailure};
use lm_train::model::{Hidden, LanguageModel};
use lm_train::optim::AdamW;
use lm_train::train::{auto_micro_bs, evaluate, step_seed, train_step_micro};
use shared::shards::Split;
use tch::Device;

use crate::finder::{Hyper, RangeTestModel};

/// What every repeat shares: the model config, the starting weights (read once), the data
/// geometry and the hyper-parameters.
pub struct LmSetup {
    pub cfg: ModelConfig,
    /// Weights to start from (`--init`, possibly remapped in memory); None: from scratch.
    pub init: Option<Checkpoint>,
    pub freeze: bool,
    pub hyper: Hyper,
    /// Streams per optimizer step (--effective-bs, else --bs).
    pub bs: usize,
    /// Streams per forward/backward: --bs when it is below --effective-bs; None with
    /// `--bs auto` until the first repeat probes it. Halved on out-of-memory, and the smaller
    /// size kept for the later repeats.
    pub micro: Cell<Option<usize>>,
    /// RAM budget of `--bs auto` on the CPU.
    pub mem_budget: Option<u64>,
    pub bptt: usize,
    pub precision: Precision,
    pub device: Device,
    pub quiet: bool,
}

impl LmSetup {
    /// The micro-batch in use (the whole batch when there is no accumulation).
    pub fn micro_bs(&self) -> usize {
        self.micro.get().unwrap_or(self.bs)
    }
}

/// The batch size validation uses: the training one, smaller when the split is short (as
/// lm-train).
pub fn valid_bs(n_tokens: usize, bs: usize, bptt: usize) -> usize {
    bs.min(n_tokens.saturating_sub(1) / bptt.max(1)).max(1)
}

/// One repeat of the test on a language model.
pub struct LmRangeTest<'a> {
    setup: &'a LmSetup,
    pub model: LanguageModel,
    opt: AdamW,
    train: &'a Split,
    valid: Option<LmBatches<'a>>,
    batches: LmBatches<'a>,
    seed: u64,
    epoch: u64,
    batch: usize,
    step: u64,
    hidden: Option<Hidden>,
    lrs: Vec<f64>,
}

impl<'a> LmRangeTest<'a> {
    pub fn new(
        setup: &'a LmSetup,
        train: &'a Split,
        valid: Option<&'a Split>,
        seed: u64,
    ) -> Result<Self> {
        tch::manual_seed(step_seed(seed, u64::MAX));
        let model = LanguageModel::new(&setup.cfg, setup.device);
        if let Some(ck) = &setup.init {
            ck.load_into(&model)?;
        }
        let n_groups = model.n_groups();
        let h = &setup.hyper;
        let mut opt = AdamW::new(model.grouped_params(), n_groups, h.sqr_mom, h.eps, h.wd);
        if setup.freeze {
            opt.set_trainable(|g| g + 1 == n_groups);
        }
        if setup.micro.get().is_none() {
            // --bs auto: probed once, on the first repeat's fresh model, as lm-train does
            let p = auto_micro_bs(
                &model,
                &mut opt,
                &setup.cfg,
                setup.bs,
                setup.bptt,
                setup.precision,
                setup.device,
                setup.mem_budget,
            )?;
            if !setup.quiet {
                eprintln!("{}: {p}", crate::TOOL);
            }
            setup.micro.set(Some(p.micro_bs));
        }
        let batches = LmBatches::new(train, setup.bs, setup.bptt, Some(shuffle_seed(seed, 0)))?;
        let valid = match valid {
            Some(v) => Some(LmBatches::new(
                v,
                valid_bs(v.n_tokens(), setup.bs, setup.bptt),
                setup.bptt,
                None,
            )?),
            None => None,
        };
        Ok(LmRangeTest {
            setup,
            model,
            opt,
            train,
            valid,
            batches,
            seed,
            epoch: 0,
            batch: 0,
            step: 0,
            hidden: None,
            lrs: vec![0.0; n_groups],
        })
    }

    /// Training batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches.n_batches
    }

    /// Epochs begun so far (1 until the data is cycled).
    pub fn epochs(&self) -> u64 {
        self.epoch + 1
    }
}

impl RangeTestModel for LmRangeTest<'_> {
    fn train_step(&mut self, lr: f64) -> Result<f64> {
        let s = self.setup;
        if self.batch >= self.batches.n_batches {
            self.epoch += 1;
            self.batches = LmBatches::new(
                self.train,
                s.bs,
                s.bptt,
                Some(shuffle_seed(self.seed, self.epoch)),
            )?;
            self.batch = 0;
            self.hidden = None;
        }
        let (x, y) = self.batches.batch(self.batch, s.device);
        let h = match self.hidden.take() {
            Some(h) => h,
            None => self
                .model
                .encoder
                .zero_hidden(s.bs as i64, s.device, s.precision.kind()),
        };
        self.lrs.fill(lr);
        let hp = s.hyper.step(&self.lrs);
        // An allocation failure leaves the weights as they were: halve the micro-batch and
        // run the same step again (lm-train's back-off).
        let mut micro = s.micro_bs();
        let (model, opt, step, seed) = (&self.model, &mut self.opt, self.step, self.seed);
        let r = memory::retry_halving(
            &mut micro,
            |m| {
                tch::manual_seed(step_seed(seed, step));
                train_step_micro(model, opt, &x, &y, &h, &hp, s.precision, m, None)
            },
            |old, m, first| {
                if !s.quiet {
                    eprintln!(
                        "{}: iteration {}: out of memory with micro-batches of {old} streams; retrying with {m} ({} accumulation steps): {first}",
                        crate::TOOL,
                        step + 1,
                        memory::accum_steps(s.bs, m)
                    );
                }
                Ok(())
            },
        )?;
        s.micro.set(Some(micro));
        let out = match r {
            Ok(o) => o,
            Err(StepFailure::OutOfMemory(first)) => bail!(
                "iteration {}: out of memory even with micro-batches of 1 stream ({first}); lower --bptt or use a smaller model",
                step + 1
            ),
            Err(StepFailure::Other(first)) => bail!("iteration {}: {first}", step + 1),
        };
        self.hidden = Some(out.hidden);
        self.step += 1;
        self.batch += 1;
        Ok(out.train_loss)
    }

    fn valid_loss(&mut self) -> Result<f64> {
        let vb = self
            .valid
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no validation split (needed by --valid-loss)"))?;
        Ok(evaluate(&self.model, vb, self.setup.precision).0)
    }
}
