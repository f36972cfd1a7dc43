//! Gradual unfreezing (ULMFiT §3.3, fastai lesson 4): a list of phases, each a
//! `fit_one_cycle` with the top `trainable` layer groups unfrozen and discriminative learning
//! rates spread as fastai's `Optimizer.set_hyper` spreads a `slice`.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Layer groups trained, counted from the head (fastai's `freeze_to(-trainable)`).
    pub trainable: usize,
    /// Peak learning rate of the top group.
    pub lr: f64,
    pub epochs: usize,
}

/// Parses `GROUPS:LR[xEPOCHS],...` (`GROUPS` a number or `all`) for a model of `n_groups`.
pub fn parse(spec: &str, n_groups: usize) -> Result<Vec<Phase>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || {
            anyhow::anyhow!(
                "--unfreeze: {part:?} is not GROUPS:LR[xEPOCHS] (e.g. 1:2e-2, all:1e-3x4)"
            )
        };
        let (g, rest) = part.split_once(':').ok_or_else(bad)?;
        let trainable = match g.trim() {
            "all" => n_groups,
            n => n.parse::<usize>().map_err(|_| bad())?,
        };
        if trainable == 0 || trainable > n_groups {
            bail!("--unfreeze: {part:?} trains {trainable} layer groups; this model has {n_groups} (embedding, {} LSTM layers, head)", n_groups - 2);
        }
        let (lr, epochs) = match rest.split_once(['x', 'X']) {
            Some((lr, e)) => (lr, e.trim().parse::<usize>().map_err(|_| bad())?),
            None => (rest, 1),
        };
        let lr: f64 = lr.trim().parse().map_err(|_| bad())?;
        if !(lr.is_finite() && lr > 0.0) {
            bail!("--unfreeze: {part:?}: the learning rate must be positive");
        }
        if epochs == 0 {
            bail!("--unfreeze: {part:?}: at least one epoch");
        }
        out.push(Phase {
            trainable,
            lr,
            epochs,
        });
    }
    if out.is_empty() {
        bail!("--unfreeze: no phases in {spec:?}");
    }
    Ok(out)
}

/// fastai's `even_mults(start, stop, n)`: `n` values from `start` to `stop`, geometrically.
pub fn even_mults(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![stop];
    }
    let step = (stop / start).powf(1.0 / (n - 1) as f64);
    (0..n).map(|i| start * step.powi(i as i32)).collect()
}

/// Peak learning rate of every layer group in `phase`: one value for a head-only phase
/// (`fit_one_cycle(1, lr)`), else `slice(lr/disc_div, lr)` over all groups (frozen ones
/// included, as fastai does; they just do not train).
pub fn group_lrs(phase: &Phase, n_groups: usize, disc_div: f64) -> Vec<f64> {
    if phase.trainable == 1 || disc_div == 1.0 {
        vec![phase.lr; n_groups]
    } else {
        even_mults(phase.lr / disc_div, phase.lr, n_groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lesson_schedule() {
        let p = parse("1:2e-2,2:1e-2,3:5e-3,all:1e-3x4", 5).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[3],
            Phase {
                trainable: 5,
                lr: 1e-3,
                epochs: 4
            }
        );
        assert_eq!(
            p[0],
            Phase {
                trainable: 1,
                lr: 2e-2,
                epochs: 1
            }
        );
        assert!(parse("6:1e-3", 5).is_err());
        assert!(parse("1:x", 5).is_err());
        assert!(parse("", 5).is_err());
        assert!(parse("2:1e-3x0", 5).is_err());
    }

    #[test]
    fn slices_like_fastai() {
        // fastai: even_mults(1e-3/2.6**4, 1e-3, 5) = 1e-3 / 2.6**(4-i)
        let lrs = group_lrs(
            &Phase {
                trainable: 5,
                lr: 1e-3,
                epochs: 1,
            },
            5,
            2.6f64.powi(4),
        );
        for (i, lr) in lrs.iter().enumerate() {
            assert!(
                (lr - 1e-3 / 2.6f64.powi(4 - i as i32)).abs() < 1e-15,
                "{lrs:?}"
            );
        }
        // 4 groups (2 LSTM layers): ratio 2.6^(4/3)
        let lrs = group_lrs(
            &Phase {
                trainable: 2,
                lr: 1e-2,
                epochs: 1,
            },
            4,
            2.6f64.powi(4),
        );
        assert!((lrs[0] - 1e-2 / 2.6f64.powi(4)).abs() < 1e-15 && (lrs[3] - 1e-2).abs() < 1e-15);
        assert!((lrs[2] / lrs[1] - 2.6f64.powf(4.0 / 3.0)).abs() < 1e-9);
        assert_eq!(
            group_lrs(
                &Phase {
                    trainable: 1,
                    lr: 2e-2,
                    epochs: 1
                },
                4,
                45.0
            ),
            vec![2e-2; 4]
        );
    }
}
