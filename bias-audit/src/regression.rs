//! Group metrics of regression predictions: per-group mean prediction, mean true value and
//! mean absolute error, with AIF360-style differences (unprivileged − privileged, ratios
//! unprivileged / privileged) and fairlearn-style between-group spreads (max − min, min / max).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::classification::F;

/// Sums of one group, enough for every regression metric (and for bootstrap resamples).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    pub n: u64,
    pub pred: f64,
    pub truth: f64,
    pub abs_err: f64,
}

impl Sums {
    #[inline]
    pub fn add(&mut self, y_true: f64, y_pred: f64) {
        self.n += 1;
        self.pred += y_pred;
        self.truth += y_true;
        self.abs_err += (y_pred - y_true).abs();
    }
    pub fn merge(&self, o: &Sums) -> Sums {
        Sums {
            n: self.n + o.n,
            pred: self.pred + o.pred,
            truth: self.truth + o.truth,
            abs_err: self.abs_err + o.abs_err,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegGroup {
    pub count: u64,
    pub mean_prediction: F,
    pub mean_true: F,
    pub mae: F,
}

impl RegGroup {
    pub fn of(s: &Sums) -> RegGroup {
        let n = s.n as f64;
        RegGroup {
            count: s.n,
            mean_prediction: F(s.pred / n),
            mean_true: F(s.truth / n),
            mae: F(s.abs_err / n),
        }
    }
    fn values(&self) -> [f64; 3] {
        [self.mean_prediction.0, self.mean_true.0, self.mae.0]
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegSpread {
    pub mean_prediction: F,
    pub mean_true: F,
    pub mae: F,
}

#[derive(Debug, Clone, Serialize)]
pub struct Regression {
    /// unprivileged − privileged (null without --privileged)
    pub mean_prediction_difference: F,
    /// unprivileged / privileged
    pub mean_prediction_ratio: F,
    pub mean_true_difference: F,
    pub mean_true_ratio: F,
    pub mae_difference: F,
    pub mae_ratio: F,
    pub by_group: BTreeMap<String, RegGroup>,
    pub overall: RegGroup,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<RegGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unprivileged: Option<RegGroup>,
    /// max − min over the raw groups
    pub difference: RegSpread,
    /// min / max over the raw groups
    pub ratio: RegSpread,
}

impl Regression {
    pub fn compute(names: &[String], groups: &[Sums], privileged: Option<&[bool]>) -> Regression {
        let per: Vec<RegGroup> = groups.iter().map(RegGroup::of).collect();
        let all = groups.iter().fold(Sums::default(), |a, s| a.merge(s));
        let mut diff = [0.0; 3];
        let mut ratio = [0.0; 3];
        for k in 0..3 {
            let vals = per.iter().map(|g| g.values()[k]).filter(|v| !v.is_nan());
            let (lo, hi) = vals.fold((f64::NAN, f64::NAN), |(lo, hi), v| {
                (
                    if lo.is_nan() || v < lo { v } else { lo },
                    if hi.is_nan() || v > hi { v } else { hi },
                )
            });
            diff[k] = hi - lo;
            ratio[k] = lo / hi;
        }
        let (pu, d, r) = match privileged {
            Some(flags) => {
                let sum = |want: bool| {
                    groups
                        .iter()
                        .zip(flags)
                        .filter(|g| *g.1 == want)
                        .fold(Sums::default(), |a, g| a.merge(g.0))
                };
                let (p, u) = (RegGroup::of(&sum(true)), RegGroup::of(&sum(false)));
                let (pv, uv) = (p.values(), u.values());
                let d = [0, 1, 2].map(|k| uv[k] - pv[k]);
                let r = [0, 1, 2].map(|k| uv[k] / pv[k]);
                (Some((p, u)), d, r)
            }
            None => (None, [f64::NAN; 3], [f64::NAN; 3]),
        };
        let (p, u) = match pu {
            Some((p, u)) => (Some(p), Some(u)),
            None => (None, None),
        };
        Regression {
            mean_prediction_difference: F(d[0]),
            mean_prediction_ratio: F(r[0]),
            mean_true_difference: F(d[1]),
            mean_true_ratio: F(r[1]),
            mae_difference: F(d[2]),
            mae_ratio: F(r[2]),
            by_group: names.iter().cloned().zip(per).collect(),
            overall: RegGroup::of(&all),
            privileged: p,
            unprivileged: u,
            difference: RegSpread {
                mean_prediction: F(diff[0]),
                mean_true: F(diff[1]),
                mae: F(diff[2]),
            },
            ratio: RegSpread {
                mean_prediction: F(ratio[0]),
                mean_true: F(ratio[1]),
                mae: F(ratio[2]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_unprivileged_minus_privileged() {
        let mut a = Sums::default();
        a.add(1.0, 2.0);
        a.add(3.0, 2.0);
        let mut b = Sums::default();
        b.add(1.0, 1.0);
        let r = Regression::compute(&["a".into(), "b".into()], &[a, b], Some(&[true, false]));
        assert_eq!(r.mean_prediction_difference.0, 1.0 - 2.0);
        assert_eq!(r.mae_difference.0, 0.0 - 1.0);
        assert_eq!(r.difference.mean_prediction.0, 1.0);
        assert_eq!(r.ratio.mean_prediction.0, 0.5);
    }
}
