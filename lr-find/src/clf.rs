//! The classifier side of the range test: clf-train's model, training batches, loss, AdamW
//! ([`ClfOpt`]) and training step ([`clf_train::train::train_step`]) behind
//! [`RangeTestModel`], at a chosen unfreeze stage.
//!
//! As fastai's `learn.lr_find()` on a `text_classifier_learner`: the weights come from a
//! clf-train checkpoint (only read), the top `trainable` layer groups train (fastai's
//! `freeze_to(-trainable)`; 1 = the head, as after `learn.freeze()`), and the single lr of
//! each iteration is applied to every trainable group. Seeds follow clf-train: step `t`'s
//! dropout from `step_seed(S, t)`, epoch `e`'s batch order (SortedDL) from `epoch_seed(S, e)`.
//! When the test needs more batches than an epoch has, the next epoch starts, reshuffled.

use anyhow::{bail, Result};
use clf_train::checkpoint::ClfCheckpoint;
use clf_train::config::LabelConfig;
use clf_train::data::{self, Targets};
use clf_train::micro::train_step_micro;
use clf_train::model::ClfModel;
use clf_train::optim::ClfOpt;
use clf_train::train::loss;
use lm_train::config::Precision;
use lm_train::memory::{self, StepFailure};
use lm_train::train::step_seed;
use shared::shards::Split;
use tch::Device;

use crate::finder::{Hyper, RangeTestModel};

/// Parses `--unfreeze-stage`: `N` (layer groups trained, counted from the head) or `all`.
pub fn parse_stage(spec: &str, n_groups: usize) -> Result<usize> {
    let n = match spec.trim() {
        "all" => n_groups,
        s => s.parse::<usize>().map_err(|_| {
            anyhow::anyhow!("--unfreeze-stage {spec:?}: a number of layer groups or \"all\"")
        })?,
    };
    if n == 0 || n > n_groups {
        bail!(
            "--unfreeze-stage {spec}: this classifier has {n_groups} layer groups (embedding, {} LSTM layers, head); train 1 to {n_groups} of them, or all",
            n_groups - 2
        );
    }
    Ok(n)
}

/// What every repeat shares: the checkpoint (read once), the unfreeze stage, the batch size,
/// the hyper-parameters.
pub struct ClfSetup {
    pub ckpt: ClfCheckpoint,
    /// Layer groups trained, counted from the head.
    pub trainable: usize,
    pub hyper: Hyper,
    /// Documents per optimizer step.
    pub bs: usize,
    /// Documents per forward/backward: `bs` until an out-of-memory error halves it (kept for
    /// the later repeats).
    pub micro: std::cell::Cell<usize>,
    pub precision: Precision,
    pub device: Device,
    pub quiet: bool,
}

impl ClfSetup {
    pub fn labels(&self) -> &LabelConfig {
        &self.ckpt.config.labels
    }
}

/// The validation data: a split, its targets, and the batches evaluated (longest first, as
/// clf-train's validation; `--valid-batches` keeps the first N).
pub struct ClfValid {
    pub split: Split,
    pub targets: Targets,
    pub batches: Vec<Vec<usize>>,
}

impl ClfValid {
    pub fn new(split: Split, targets: Targets, bs: usize, limit: Option<usize>) -> Self {
        let mut batches = data::sorted_batches(&data::lengths(&split), bs);
        if let Some(n) = limit {
            batches.truncate(n.max(1));
        }
        ClfValid {
            split,
            targets,
            batches,
        }
    }
}

/// One repeat of the test on a classifier.
pub struct ClfRangeTest<'a> {
    setup: &'a ClfSetup,
    pub model: ClfModel,
    opt: ClfOpt,
    train: &'a Split,
    targets: &'a Targets,
    valid: Option<&'a ClfValid>,
    lens: Vec<usize>,
    batches: Vec<Vec<usize>>,
    seed: u64,
    epoch: u64,
    batch: usize,
    step: u64,
    lrs: Vec<f64>,
}

impl<'a> ClfRangeTest<'a> {
    pub fn new(
        setup: &'a ClfSetup,
        train: &'a Split,
        targets: &'a Targets,
        valid: Option<&'a ClfValid>,
        seed: u64,
    ) -> Result<Self> {
        // as clf-train: the generator seeded before the model is built (every weight is then
        // overwritten by the checkpoint's)
        tch::manual_seed(step_seed(seed, u64::MAX));
        let model = ClfModel::new(&setup.ckpt.config, setup.device);
        setup.ckpt.load_into(&model)?;
        let n_groups = model.n_groups();
        let h = &setup.hyper;
        let mut opt = ClfOpt::new(&model, h.sqr_mom, h.eps, h.wd);
        opt.freeze_to(n_groups, setup.trainable);
        let lens = data::lengths(train);
        let batches = data::train_batches(&lens, setup.bs, data::epoch_seed(seed, 0));
        if batches.is_empty() {
            bail!(
                "the training split has {} documents, fewer than --bs {}; lower --bs",
                train.docs(),
                setup.bs
            );
        }
        Ok(ClfRangeTest {
            setup,
            model,
            opt,
            train,
            targets,
            valid,
            lens,
            batches,
            seed,
            epoch: 0,
            batch: 0,
            step: 0,
            lrs: vec![0.0; n_groups],
        })
    }

    /// Training batches per epoch (the last partial batch dropped, as fastai).
    pub fn batches_per_epoch(&self) -> usize {
        self.batches.len()
    }

    /// Layer groups of the model (embedding, each LSTM layer, head).
    pub fn n_groups(&self) -> usize {
        self.lrs.len()
    }
}

impl RangeTestModel for ClfRangeTest<'_> {
    fn train_step(&mut self, lr: f64) -> Result<f64> {
        let s = self.setup;
        if self.batch >= self.batches.len() {
            self.epoch += 1;
            self.batches =
                data::train_batches(&self.lens, s.bs, data::epoch_seed(self.seed, self.epoch));
            self.batch = 0;
        }
        let b = &self.batches[self.batch];
        let fill = self.model.encoder.cfg.pad_token;
        let docs: Vec<Vec<i64>> = b
            .iter()
            .map(|&d| data::doc_ids(self.train, d, fill))
            .collect();
        let y = self.targets.batch(b).to_device(s.device);
        self.lrs.fill(lr);
        let hp = s.hyper.step(&self.lrs);
        // An allocation failure leaves the weights as they were: halve the micro-batch and
        // run the same step again (lm-train's back-off, with gradient accumulation).
        let n = docs.len();
        let mut micro = s.micro.get().min(n);
        let (model, opt, step, seed) = (&self.model, &mut self.opt, self.step, self.seed);
        let task = s.labels().task;
        let r = memory::retry_halving(
            &mut micro,
            |m| {
                tch::manual_seed(step_seed(seed, step));
                train_step_micro(model, opt, &docs, &y, task, &hp, s.precision, m)
            },
            |old, m, first| {
                if !s.quiet {
                    eprintln!(
                        "{}: iteration {}: out of memory with micro-batches of {old} documents; retrying with {m} ({} accumulation steps): {first}",
                        crate::TOOL,
                        step + 1,
                        n.div_ceil(m)
                    );
                }
                Ok(())
            },
        )?;
        s.micro.set(micro);
        let out = match r {
            Ok(o) => o,
            Err(StepFailure::OutOfMemory(first)) => bail!(
                "iteration {}: out of memory even with micro-batches of 1 document ({first}); lower --bs or the checkpoint's --max-len",
                step + 1
            ),
            Err(StepFailure::Other(first)) => bail!("iteration {}: {first}", step + 1),
        };
        self.step += 1;
        self.batch += 1;
        // a non-finite loss is not stepped; the test stops on it
        Ok(out.train_loss)
    }

    /// Mean loss per document over the validation batches (no dropout, BatchNorm running
    /// statistics), as clf-train's validation.
    fn valid_loss(&mut self) -> Result<f64> {
        let v = self
            .valid
            .ok_or_else(|| anyhow::anyhow!("no validation split (needed by --valid-loss)"))?;
        let _g = tch::no_grad_guard();
        let fill = self.model.encoder.cfg.pad_token;
        let task = self.setup.labels().task;
        let (mut sum, mut n) = (0.0f64, 0usize);
        for b in &v.batches {
            let docs: Vec<Vec<i64>> = b
                .iter()
                .map(|&d| data::doc_ids(&v.split, d, fill))
                .collect();
            let o = self
                .model
                .forward(&docs, false, self.setup.precision)
                .out
                .to_device(Device::Cpu);
            let y = v.targets.batch(b);
            sum += loss(task, &o, &y).double_value(&[]) * b.len() as f64;
            n += b.len();
        }
        Ok(sum / n.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfreeze_stage_counts_from_the_head() {
        assert_eq!(parse_stage("1", 4).unwrap(), 1);
        assert_eq!(parse_stage("3", 4).unwrap(), 3);
        assert_eq!(parse_stage("all", 4).unwrap(), 4);
        let e = parse_stage("0", 4).unwrap_err().to_string();
        assert!(e.contains("4 layer groups"), "{e}");
        assert!(parse_stage("5", 4).is_err());
        assert!(parse_stage("two", 4)
            .unwrap_err()
            .to_string()
            .contains("\"all\""));
    }
}
