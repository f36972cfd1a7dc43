//! Bias mitigation inside training, for classifiers:
//!
//! * `--reweigh COL`: Kamiran and Calders (2012) reweighing. Each training document of group
//!   `g` (the value of the protected column) and class `y` gets the weight
//!   `w(g, y) = P(g)·P(y) / P(g, y) = n_g·n_y / (N·n_gy)` (counts over the training split),
//!   which makes the label independent of the group in the weighted data; the task loss of a
//!   batch is the mean of `w_i·loss_i` (the weights average 1 over the split). AIF360's
//!   `Reweighing` computes the same weights.
//! * `--adversary COL --adversary-weight ALPHA`: adversarial debiasing after Zhang, Lemoine
//!   and Mitchell (2018), as AIF360's `AdversarialDebiasing` implements it. An adversary
//!   predicts the protected attribute `z` from the classifier's output: with the head's
//!   logits `o` and a learned scalar `c`, `s = softmax((1+|c|)·o)` (for two classes the
//!   paper's `σ((1+|c|)·logit)`); `--adversary-mode parity` feeds `s`, `odds` (the default,
//!   equalized odds / equal opportunity) feeds `[s, s ⊗ onehot(y)]` (the paper's
//!   `[s, s·y, s·(1−y)]`); one linear layer gives the logits of `z` (softmax over the
//!   groups; logistic for two). Per parameter tensor of the classifier, with `g` the
//!   gradient of the task loss and `g_A` that of the adversary's loss,
//!   the classifier steps along `g − proj_{g_A}(g) − α·g_A`, `proj_u(g) = (g·û)û` (see
//!   [`debias_grad`]); the adversary then trains on its own loss (on the detached output)
//!   with its own Adam at `--adversary-lr`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use lm_train::optim::AdamW;
use serde::{Deserialize, Serialize};
use shared::shards::Split;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

/// `--adversary-mode`: what the adversary sees besides the prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AdversaryMode {
    /// The prediction only: pushes towards demographic parity.
    Parity,
    /// The prediction and the true label: pushes towards equalized odds (and equal opportunity).
    Odds,
}

/// The adversary's settings, saved with the classifier so `--resume` continues the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdversarySettings {
    pub col: String,
    pub weight: f64,
    pub lr: f64,
    pub mode: AdversaryMode,
    /// The protected column's values in the training split, sorted: the adversary's classes.
    pub groups: Vec<String>,
}

/// One protected value per document of `split` (index into `groups`).
///
/// `groups`: `None` takes the split's own values (sorted), and fails when there is only one;
/// `Some` maps onto known values and fails on a value outside them. A missing column, a
/// document without a value, and a single value are errors that name the file and the fix.
pub fn protected_codes(
    shards: &Path,
    split: &Split,
    col: &str,
    flag: &str,
    groups: Option<&[String]>,
) -> Result<(Vec<String>, Vec<u32>)> {
    let fp = shards.join(format!("{}.fields", split.name));
    let Some(c) = split.fields.column(col) else {
        let have: Vec<&str> = split
            .fields
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        bail!(
            "{}: no protected column {col:?} ({flag}; fields: {}); keep it when tokenizing (--keep {col})",
            shards.display(),
            if have.is_empty() { "none".to_string() } else { have.join(", ") }
        );
    };
    let mut values = Vec::with_capacity(split.docs());
    for d in 0..split.docs() {
        match c.get(d).map(str::trim) {
            Some(v) if !v.is_empty() => values.push(v),
            _ => bail!(
                "{}: document {d} (input row {}) has no value in the protected column {col:?} ({flag} needs one for every document; drop those rows first)",
                fp.display(),
                split.fields.rows[d]
            ),
        }
    }
    let groups: Vec<String> = match groups {
        Some(g) => g.to_vec(),
        None => {
            let set: std::collections::BTreeSet<&str> = values.iter().copied().collect();
            if set.len() < 2 {
                bail!(
                    "{}: the protected column {col:?} has a single value ({}) in the {:?} split; {flag} needs at least two groups",
                    fp.display(),
                    set.iter().next().map_or("none".to_string(), |v| format!("{v:?}")),
                    split.name
                );
            }
            set.into_iter().map(str::to_string).collect()
        }
    };
    let index: BTreeMap<&str, u32> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i as u32))
        .collect();
    let codes = values
        .iter()
        .enumerate()
        .map(|(d, v)| {
            index.get(v).copied().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: document {d} (input row {}): protected value {v:?} of {col:?} was not seen in training (groups: {})",
                    fp.display(),
                    split.fields.rows[d],
                    groups.join(", ")
                )
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok((groups, codes))
}

/// One cell of the reweighing table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReweighCell {
    pub group: String,
    pub label: String,
    pub count: u64,
    pub weight: f64,
}

/// Kamiran–Calders weights `w(g, y) = n_g·n_y / (N·n_gy)` for every (group, class) pair
/// present, and each document's weight.
pub fn reweigh(
    groups: &[String],
    classes: &[String],
    g: &[u32],
    y: &[i64],
) -> (Vec<ReweighCell>, Vec<f32>) {
    let (ng, nc) = (groups.len(), classes.len());
    let n = g.len() as f64;
    let mut count = vec![0u64; ng * nc];
    for (&gi, &yi) in g.iter().zip(y) {
        count[gi as usize * nc + yi as usize] += 1;
    }
    let n_g: Vec<u64> = (0..ng)
        .map(|i| count[i * nc..(i + 1) * nc].iter().sum())
        .collect();
    let n_y: Vec<u64> = (0..nc)
        .map(|j| (0..ng).map(|i| count[i * nc + j]).sum())
        .collect();
    let w = |i: usize, j: usize| {
        let c = count[i * nc + j];
        if c == 0 {
            0.0
        } else {
            n_g[i] as f64 * n_y[j] as f64 / (n * c as f64)
        }
    };
    let mut table = Vec::new();
    for i in 0..ng {
        for j in 0..nc {
            if count[i * nc + j] > 0 {
                table.push(ReweighCell {
                    group: groups[i].clone(),
                    label: classes[j].clone(),
                    count: count[i * nc + j],
                    weight: w(i, j),
                });
            }
        }
    }
    let per_doc = g
        .iter()
        .zip(y)
        .map(|(&gi, &yi)| w(gi as usize, yi as usize) as f32)
        .collect();
    (table, per_doc)
}

/// The classifier's gradient with the adversary's influence removed, for one parameter tensor:
/// `g − (g·û)·û − alpha·g_A` with `û = g_A / (‖g_A‖ + tiny)` (AIF360's `normalize`, float32
/// tiny). With `alpha = 0` the result is orthogonal to `g_A`.
pub fn debias_grad(g: &Tensor, g_a: &Tensor, alpha: f64) -> Tensor {
    let unit = g_a / (g_a.norm().to_kind(Kind::Double) + f64::from(f32::MIN_POSITIVE));
    let unit = unit.to_kind(g.kind());
    let proj = (g * &unit).sum(g.kind());
    g - &unit * proj - g_a * alpha
}

/// The adversary: a scalar `c` and one linear layer, in its own `VarStore`.
pub struct Adversary {
    pub vs: nn::VarStore,
    pub c: Tensor,
    pub weight: Tensor,
    pub bias: Tensor,
    pub n_classes: i64,
    pub mode: AdversaryMode,
}

/// Names of the adversary's tensors (in `adversary.safetensors` of a checkpoint).
pub const ADV_C: &str = "adversary.c";
pub const ADV_W: &str = "adversary.weight";
pub const ADV_B: &str = "adversary.bias";

impl Adversary {
    /// `n_classes` outputs of the classifier, `n_groups` values of the protected attribute.
    pub fn new(n_classes: i64, n_groups: i64, mode: AdversaryMode, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let n_in = match mode {
            AdversaryMode::Parity => n_classes,
            AdversaryMode::Odds => n_classes + n_classes * n_classes,
        };
        let k = 1.0 / (n_in as f64).sqrt();
        let c = root.var("c", &[], Init::Const(1.0));
        let weight = root.var("weight", &[n_groups, n_in], Init::Uniform { lo: -k, up: k });
        let bias = root.var("bias", &[n_groups], Init::Uniform { lo: -k, up: k });
        Adversary {
            vs,
            c,
            weight,
            bias,
            n_classes,
            mode,
        }
    }

    /// Logits of the protected attribute from the classifier's logits `out` (batch × k) and
    /// the true classes `y` (batch, int64).
    pub fn forward(&self, out: &Tensor, y: &Tensor) -> Tensor {
        let s = (out * (self.c.abs() + 1.0)).softmax(-1, Kind::Float);
        let x = match self.mode {
            AdversaryMode::Parity => s,
            AdversaryMode::Odds => {
                let bs = s.size()[0];
                let onehot = y.one_hot(self.n_classes).to_kind(Kind::Float);
                let outer = (s.unsqueeze(2) * onehot.unsqueeze(1)).view([bs, -1]);
                Tensor::cat(&[s, outer], 1)
            }
        };
        x.linear(&self.weight, Some(&self.bias))
    }

    pub fn named_params(&self) -> Vec<(String, Tensor)> {
        vec![
            (ADV_C.to_string(), self.c.shallow_clone()),
            (ADV_W.to_string(), self.weight.shallow_clone()),
            (ADV_B.to_string(), self.bias.shallow_clone()),
        ]
    }

    /// Adam for the adversary (β1 0.9, β2 0.999, no weight decay, as TensorFlow's Adam in
    /// AIF360; eps 1e-8).
    pub fn optimizer(&self) -> AdamW {
        AdamW::new(
            self.named_params()
                .into_iter()
                .map(|(n, t)| (n, t, 0))
                .collect(),
            1,
            0.999,
            1e-8,
            0.0,
        )
    }
}

/// The adversary's loss (mean cross-entropy) and the number it got right.
pub fn adversary_loss(logits: &Tensor, z: &Tensor) -> (Tensor, i64) {
    let loss = logits.cross_entropy_for_logits(z);
    let right = logits
        .argmax(-1, false)
        .eq_tensor(z)
        .sum(Kind::Int64)
        .int64_value(&[]);
    (loss, right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_removes_the_adversary_direction() {
        let g = Tensor::from_slice(&[3.0f32, 1.0, -2.0, 0.5]).view([2, 2]);
        let ga = Tensor::from_slice(&[1.0f32, 2.0, 0.0, -1.0]).view([2, 2]);
        // alpha = 0: orthogonal to g_A, and g − result is parallel to g_A
        let r = debias_grad(&g, &ga, 0.0);
        let dot = (&r * &ga).sum(Kind::Double).double_value(&[]);
        assert!(dot.abs() < 1e-6, "{dot}");
        // by hand: g·g_A = 3 + 2 + 0 − 0.5 = 4.5, |g_A|² = 6 → g − 0.75·g_A
        let want = [3.0 - 0.75, 1.0 - 1.5, -2.0, 0.5 + 0.75];
        let got = Vec::<f32>::try_from(r.view([-1])).unwrap();
        for (a, b) in got.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // alpha = 0.5 also subtracts 0.5·g_A
        let r = debias_grad(&g, &ga, 0.5);
        let got = Vec::<f32>::try_from(r.view([-1])).unwrap();
        let want = [2.25 - 0.5, -0.5 - 1.0, -2.0, 1.25 + 0.5];
        for (a, b) in got.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // a zero adversary gradient leaves g alone
        let r = debias_grad(&g, &ga.zeros_like(), 1.0);
        assert!(r.allclose(&g, 0.0, 0.0, false));
    }

    #[test]
    fn reweigh_matches_hand_computation() {
        // groups F (0), M (1); classes 0, 1. F: 3 docs (1 positive), M: 5 docs (3 positive)
        let g = [0, 0, 0, 1, 1, 1, 1, 1];
        let y = [1, 0, 0, 1, 1, 1, 0, 0];
        let groups = vec!["F".to_string(), "M".to_string()];
        let classes = vec!["0".to_string(), "1".to_string()];
        let (table, w) = reweigh(&groups, &classes, &g, &y);
        // w(g, y) = n_g·n_y / (N·n_gy), N = 8, n_F = 3, n_M = 5, n_0 = 4, n_1 = 4
        let want = |ng: f64, ny: f64, ngy: f64| ng * ny / (8.0 * ngy);
        let cells = [
            ("F", "0", 2, want(3.0, 4.0, 2.0)),
            ("F", "1", 1, want(3.0, 4.0, 1.0)),
            ("M", "0", 2, want(5.0, 4.0, 2.0)),
            ("M", "1", 3, want(5.0, 4.0, 3.0)),
        ];
        assert_eq!(table.len(), 4);
        for (c, (gr, l, n, wt)) in table.iter().zip(cells) {
            assert_eq!((c.group.as_str(), c.label.as_str(), c.count), (gr, l, n));
            assert!((c.weight - wt).abs() < 1e-12, "{c:?} vs {wt}");
        }
        assert!((w[0] as f64 - 1.5).abs() < 1e-6); // F, 1: 3·4/(8·1)
        assert!((w[3] as f64 - 20.0 / 24.0).abs() < 1e-6); // M, 1: 5·4/(8·3)
                                                           // the weights sum to N, and make the weighted positive rate equal across groups
        let total: f64 = w.iter().map(|&x| x as f64).sum();
        assert!((total - 8.0).abs() < 1e-5);
        let rate = |grp: u32| {
            let (mut p, mut a) = (0.0, 0.0);
            for i in 0..8 {
                if g[i] == grp {
                    a += w[i] as f64;
                    if y[i] == 1 {
                        p += w[i] as f64;
                    }
                }
            }
            p / a
        };
        assert!((rate(0) - rate(1)).abs() < 1e-6);
        assert!((rate(0) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn adversary_shapes() {
        let a = Adversary::new(2, 3, AdversaryMode::Odds, Device::Cpu);
        let out = Tensor::from_slice(&[0.5f32, -0.5, 1.0, 2.0]).view([2, 2]);
        let y = Tensor::from_slice(&[0i64, 1]);
        assert_eq!(a.forward(&out, &y).size(), vec![2, 3]);
        let a = Adversary::new(2, 2, AdversaryMode::Parity, Device::Cpu);
        assert_eq!(a.forward(&out, &y).size(), vec![2, 2]);
    }
}
