//! lm-train's AdamW, split in two so BatchNorm parameters get no weight decay (fastai's
//! `Learner(wd_bn_bias=False)`; the head's linear layers have no bias), stepped together with
//! the same per-group learning rates and clipped by one global norm.

use std::collections::BTreeMap;

use anyhow::Result;
use lm_train::optim::AdamW;
use tch::Tensor;

use crate::model::{is_bn_param, ClfModel};

pub struct ClfOpt {
    pub decayed: AdamW,
    pub bn: AdamW,
}

impl ClfOpt {
    pub fn new(model: &ClfModel, sqr_mom: f64, eps: f64, wd: f64) -> Self {
        let n = model.n_groups();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (name, t) in model.named_params() {
            let g = model.group_of(&name);
            if is_bn_param(&name) {
                b.push((name, t, g));
            } else {
                a.push((name, t, g));
            }
        }
        ClfOpt {
            decayed: AdamW::new(a, n, sqr_mom, eps, wd),
            bn: AdamW::new(b, n, sqr_mom, eps, 0.0),
        }
    }

    /// fastai's `freeze_to(n_groups - trainable)`: only the top `trainable` groups get
    /// gradients (BatchNorm is in the head, which always trains).
    pub fn freeze_to(&mut self, n_groups: usize, trainable: usize) {
        let first = n_groups - trainable;
        self.decayed.set_trainable(|g| g >= first);
        self.bn.set_trainable(|g| g >= first);
    }

    pub fn zero_grad(&mut self) {
        self.decayed.zero_grad();
        self.bn.zero_grad();
    }

    /// `clip_grad_norm_` over all parameters; returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        lm_train::optim::clip_grad_norm(
            self.decayed
                .params
                .iter()
                .chain(&self.bn.params)
                .map(|p| p.param.grad()),
            max_norm,
        )
    }

    pub fn step(&mut self, lrs: &[f64], mom: f64) {
        self.decayed.step(lrs, mom);
        self.bn.step(lrs, mom);
    }

    pub fn state_tensors(&self) -> (Vec<(String, Tensor)>, BTreeMap<String, u64>) {
        let (mut t, mut s) = self.decayed.state_tensors();
        let (t2, s2) = self.bn.state_tensors();
        t.extend(t2);
        s.extend(s2);
        (t, s)
    }

    pub fn load_state(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        steps: &BTreeMap<String, u64>,
    ) -> Result<()> {
        self.decayed.load_state(tensors, steps)?;
        self.bn.load_state(tensors, steps)
    }
}
