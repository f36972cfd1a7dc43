//! fastai's `Adam` (decoupled weight decay, i.e. AdamW) with explicit per-group learning rates,
//! fastai v2's one-cycle schedule, and gradient clipping.
//!
//! The step is fastai's `weight_decay`, `average_grad(dampening=True)`, `average_sqr_grad`,
//! `step_stat`, `adam_step` (fastai/optimizer.py):
//!
//! ```text
//! p   ← p · (1 − lr·wd)
//! m   ← β1·m + (1 − β1)·g            β1 = the momentum of the schedule
//! v   ← β2·v + (1 − β2)·g²           β2 = sqr_mom (fastai 0.99)
//! p   ← p − lr/(1 − β1^t) · m / (√(v/(1 − β2^t)) + eps)      eps = 1e-5
//! ```
//!
//! Parameters without a gradient (frozen groups) are skipped entirely, as in fastai.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use tch::Tensor;

/// One parameter and its Adam state.
pub struct ParamState {
    pub name: String,
    pub param: Tensor,
    pub group: usize,
    pub grad_avg: Tensor,
    pub sqr_avg: Tensor,
    pub step: u64,
}

/// AdamW over named parameters split into layer groups.
pub struct AdamW {
    pub params: Vec<ParamState>,
    pub n_groups: usize,
    pub sqr_mom: f64,
    pub eps: f64,
    pub wd: f64,
}

impl AdamW {
    /// `params`: (name, tensor, group index).
    pub fn new(
        params: Vec<(String, Tensor, usize)>,
        n_groups: usize,
        sqr_mom: f64,
        eps: f64,
        wd: f64,
    ) -> Self {
        let params = params
            .into_iter()
            .map(|(name, param, group)| {
                let grad_avg = tch::no_grad(|| param.zeros_like());
                let sqr_avg = tch::no_grad(|| param.zeros_like());
                ParamState {
                    name,
                    param,
                    group,
                    grad_avg,
                    sqr_avg,
                    step: 0,
                }
            })
            .collect();
        AdamW {
            params,
            n_groups,
            sqr_mom,
            eps,
            wd,
        }
    }

    /// Sets `requires_grad` so that only the groups in `trainable` get gradients
    /// (fastai's `freeze_to`).
    pub fn set_trainable(&mut self, trainable: impl Fn(usize) -> bool) {
        for p in &mut self.params {
            let on = trainable(p.group);
            p.param = p.param.set_requires_grad(on);
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.param.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Global L2 norm of all gradients; scales them to `max_norm` when above it
    /// (`torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        clip_grad_norm(self.params.iter().map(|p| p.param.grad()), max_norm)
    }

    /// Divides every gradient by `scale` (fp16 loss scaling); false when any gradient is
    /// infinite or NaN.
    pub fn unscale_grads(&mut self, scale: f64) -> bool {
        tch::no_grad(|| {
            let mut ok: Vec<Tensor> = Vec::new();
            for p in &self.params {
                let mut g = p.param.grad();
                if !g.defined() {
                    continue;
                }
                let _ = g.g_mul_scalar_(1.0 / scale);
                ok.push(g.isfinite().all());
            }
            ok.is_empty() || Tensor::stack(&ok, 0).all().int64_value(&[]) != 0
        })
    }

    /// One step with learning rate `lrs[group]` and β1 = `mom`.
    pub fn step(&mut self, lrs: &[f64], mom: f64) {
        assert_eq!(
            lrs.len(),
            self.n_groups,
            "one learning rate per layer group"
        );
        let (sqr_mom, eps, wd) = (self.sqr_mom, self.eps, self.wd);
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.param.grad();
                if !g.defined() {
                    continue;
                }
                let lr = lrs[p.group];
                p.step += 1;
                let t = p.step as i32;
                if wd != 0.0 {
                    let _ = p.param.g_mul_scalar_(1.0 - lr * wd);
                }
                let _ = p.grad_avg.g_mul_scalar_(mom);
                let _ = p.grad_avg.g_add_(&(&g * (1.0 - mom)));
                let _ = p.sqr_avg.g_mul_scalar_(sqr_mom);
                let _ = p.sqr_avg.addcmul_(&(&g * (1.0 - sqr_mom)), &g);
                let debias1 = 1.0 - mom.powi(t);
                let debias2 = 1.0 - sqr_mom.powi(t);
                let denom = (&p.sqr_avg / debias2).sqrt() + eps;
                let upd = (&p.grad_avg / denom) * (lr / debias1);
                let _ = p.param.g_sub_(&upd);
            }
        });
    }

    /// State tensors for a checkpoint: `NAME.grad_avg`, `NAME.sqr_avg`; plus step counts.
    pub fn state_tensors(&self) -> (Vec<(String, Tensor)>, BTreeMap<String, u64>) {
        let mut t = Vec::new();
        let mut steps = BTreeMap::new();
        for p in &self.params {
            t.push((format!("{}.grad_avg", p.name), p.grad_avg.shallow_clone()));
            t.push((format!("{}.sqr_avg", p.name), p.sqr_avg.shallow_clone()));
            steps.insert(p.name.clone(), p.step);
        }
        (t, steps)
    }

    /// Restores what [`AdamW::state_tensors`] saved.
    pub fn load_state(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        steps: &BTreeMap<String, u64>,
    ) -> Result<()> {
        for p in &mut self.params {
            for (suffix, dst) in [("grad_avg", &mut p.grad_avg), ("sqr_avg", &mut p.sqr_avg)] {
                let key = format!("{}.{suffix}", p.name);
                let Some(src) = tensors.get(&key) else {
                    bail!("optimizer state has no tensor {key}")
                };
                if src.size() != dst.size() {
                    bail!(
                        "optimizer state {key} has shape {:?}, expected {:?}",
                        src.size(),
                        dst.size()
                    );
                }
                tch::no_grad(|| dst.copy_(src));
            }
            p.step = *steps.get(&p.name).unwrap_or(&0);
        }
        Ok(())
    }
}

/// fastai's `SchedCos(start, end)(pos)`.
pub fn sched_cos(start: f64, end: f64, pos: f64) -> f64 {
    start + (1.0 + (std::f64::consts::PI * (1.0 - pos)).cos()) * (end - start) / 2.0
}

/// fastai's `combined_cos(pct, start, middle, end)`: cosine from `start` to `middle` over the
/// first `pct` of training, then from `middle` to `end`.
pub fn combined_cos(pct: f64, start: f64, middle: f64, end: f64, pos: f64) -> f64 {
    if pct > 0.0 && pos < pct {
        sched_cos(start, middle, pos / pct)
    } else if pct >= 1.0 {
        middle
    } else {
        sched_cos(middle, end, (pos - pct) / (1.0 - pct))
    }
}

/// fastai v2's `fit_one_cycle` hyper-parameter schedule.
#[derive(Debug, Clone)]
pub struct OneCycle {
    pub lr_max: Vec<f64>,
    pub div: f64,
    pub div_final: f64,
    pub pct_start: f64,
    pub moms: [f64; 3],
    pub total_steps: u64,
}

impl OneCycle {
    /// Position of step `step` (0-based): `train_iter / (n_epoch · n_iter)`, as fastai.
    pub fn pos(&self, step: u64) -> f64 {
        step as f64 / self.total_steps.max(1) as f64
    }

    pub fn lrs(&self, step: u64) -> Vec<f64> {
        let pos = self.pos(step);
        self.lr_max
            .iter()
            .map(|&m| combined_cos(self.pct_start, m / self.div, m, m / self.div_final, pos))
            .collect()
    }

    pub fn mom(&self, step: u64) -> f64 {
        let [a, b, c] = self.moms;
        combined_cos(self.pct_start, a, b, c, self.pos(step))
    }
}

/// `torch.nn.utils.clip_grad_norm_` over `grads` (undefined ones skipped): their global L2
/// norm, and when it is above `max_norm` every gradient scaled by `max_norm / (norm + 1e-6)`.
/// Returns the norm before clipping (0 without gradients).
pub fn clip_grad_norm(grads: impl Iterator<Item = Tensor>, max_norm: f64) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = grads.filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let sq: Vec<Tensor> = grads
            .iter()
            .map(|g| g.square().sum(tch::Kind::Float))
            .collect();
        let total = Tensor::stack(&sq, 0)
            .sum(tch::Kind::Float)
            .sqrt()
            .double_value(&[]);
        let coef = max_norm / (total + 1e-6);
        if coef < 1.0 {
            for mut g in grads {
                let _ = g.g_mul_scalar_(coef);
            }
        }
        total
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_matches_fastai_endpoints() {
        let s = OneCycle {
            lr_max: vec![1e-2],
            div: 25.0,
            div_final: 1e5,
            pct_start: 0.25,
            moms: [0.8, 0.7, 0.8],
            total_steps: 100,
        };
        assert!((s.lrs(0)[0] - 1e-2 / 25.0).abs() < 1e-12);
        assert!((s.lrs(25)[0] - 1e-2).abs() < 1e-12);
        assert!((s.mom(0) - 0.8).abs() < 1e-12);
        assert!((s.mom(25) - 0.7).abs() < 1e-12);
        // fastai: pos 1.0 reaches lr_max/div_final
        assert!((combined_cos(0.25, 4e-4, 1e-2, 1e-7, 1.0) - 1e-7).abs() < 1e-15);
        // midway through the first phase: halfway between start and middle
        assert!((s.lrs(0)[0] + 1e-2) / 2.0 - combined_cos(0.25, 4e-4, 1e-2, 1e-7, 0.125) < 1e-12);
    }
}
