//! Group metrics of binary predictions, with AIF360's and fairlearn's conventions.
//!
//! Everything is computed from per-group confusion counts, so the bootstrap recomputes a
//! resample's metrics from its counts without touching the rows again.
//!
//! * AIF360 (`ClassificationMetric`, aif360 0.6): privileged vs unprivileged; differences are
//!   unprivileged − privileged and ratios unprivileged / privileged. Rates are plain quotients,
//!   so 0/0 is NaN (written as null). The generalized entropy indices use the benefit
//!   b = ŷ − y + 1 of Speicher et al. (KDD 2018).
//! * fairlearn (`MetricFrame`, fairlearn 0.15) over the raw groups: `difference` is max − min and
//!   `ratio` min / max (`method="between_groups"`), NaN group values skipped as pandas does.
//!   Its TPR/FPR/TNR/FNR come from sklearn's `confusion_matrix(normalize="true")`, which turns
//!   0/0 into 0; its PPV is sklearn's `precision_score(zero_division=nan)`.

use std::collections::BTreeMap;

use serde::Serialize;

/// A float written as `null` when it is not finite (0/0, x/0), as the reference does.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct F(pub f64);

impl Serialize for F {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.serialize_none()
        }
    }
}

/// Confusion counts of one group (favorable = positive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Counts {
    #[inline]
    pub fn add(&mut self, y_true: bool, y_pred: bool) {
        match (y_true, y_pred) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }
    pub fn merge(&self, o: &Counts) -> Counts {
        Counts {
            tp: self.tp + o.tp,
            fp: self.fp + o.fp,
            tn: self.tn + o.tn,
            fn_: self.fn_ + o.fn_,
        }
    }
    pub fn sum<'a>(it: impl IntoIterator<Item = &'a Counts>) -> Counts {
        it.into_iter().fold(Counts::default(), |a, c| a.merge(c))
    }
    pub fn n(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }
    /// favorable true labels
    pub fn positives(&self) -> u64 {
        self.tp + self.fn_
    }
    pub fn negatives(&self) -> u64 {
        self.tn + self.fp
    }
    pub fn pred_positives(&self) -> u64 {
        self.tp + self.fp
    }
}

fn q(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

/// fairlearn/sklearn's normalized confusion rate: 0 when the row is empty.
fn q0(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// AIF360's per-group counts and rates.
#[derive(Debug, Clone, Serialize)]
pub struct AifGroup {
    pub num_instances: u64,
    pub num_positives: u64,
    pub num_negatives: u64,
    pub num_pred_positives: u64,
    #[serde(rename = "TP")]
    pub tp: u64,
    #[serde(rename = "FP")]
    pub fp: u64,
    #[serde(rename = "TN")]
    pub tn: u64,
    #[serde(rename = "FN")]
    pub fn_: u64,
    pub base_rate: F,
    pub selection_rate: F,
    pub tpr: F,
    pub fpr: F,
    pub tnr: F,
    pub fnr: F,
    pub ppv: F,
    pub npv: F,
    pub fdr: F,
    #[serde(rename = "for")]
    pub for_: F,
    pub accuracy: F,
    pub error_rate: F,
}

impl AifGroup {
    pub fn of(c: &Counts) -> AifGroup {
        let n = c.n();
        let acc = q(c.tp + c.tn, n);
        AifGroup {
            num_instances: n,
            num_positives: c.positives(),
            num_negatives: c.negatives(),
            num_pred_positives: c.pred_positives(),
            tp: c.tp,
            fp: c.fp,
            tn: c.tn,
            fn_: c.fn_,
            base_rate: F(q(c.positives(), n)),
            selection_rate: F(q(c.pred_positives(), n)),
            tpr: F(q(c.tp, c.positives())),
            fpr: F(q(c.fp, c.negatives())),
            tnr: F(q(c.tn, c.negatives())),
            fnr: F(q(c.fn_, c.positives())),
            ppv: F(q(c.tp, c.tp + c.fp)),
            npv: F(q(c.tn, c.tn + c.fn_)),
            fdr: F(q(c.fp, c.fp + c.tp)),
            for_: F(q(c.fn_, c.fn_ + c.tn)),
            accuracy: F(acc),
            // aif360: error_rate = 1 - accuracy
            error_rate: F(1.0 - acc),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AifPerGroup {
    pub privileged: AifGroup,
    pub unprivileged: AifGroup,
    pub overall: AifGroup,
}

/// `BinaryLabelDatasetMetric` of one set of labels (true or predicted).
#[derive(Debug, Clone, Serialize)]
pub struct DatasetMetric {
    pub statistical_parity_difference: F,
    pub disparate_impact: F,
    pub base_rate_privileged: F,
    pub base_rate_unprivileged: F,
    pub base_rate: F,
}

/// AIF360's `ClassificationMetric` values, named as its methods.
#[derive(Debug, Clone, Serialize)]
pub struct Aif360 {
    pub statistical_parity_difference: F,
    pub disparate_impact: F,
    pub equal_opportunity_difference: F,
    pub average_odds_difference: F,
    pub average_abs_odds_difference: F,
    pub equalized_odds_difference: F,
    pub true_positive_rate_difference: F,
    pub false_positive_rate_difference: F,
    pub false_negative_rate_difference: F,
    pub false_discovery_rate_difference: F,
    pub false_omission_rate_difference: F,
    pub error_rate_difference: F,
    pub error_rate_ratio: F,
    pub false_positive_rate_ratio: F,
    pub false_negative_rate_ratio: F,
    pub false_discovery_rate_ratio: F,
    pub false_omission_rate_ratio: F,
    pub average_predictive_value_difference: F,
    pub theil_index: F,
    pub coefficient_of_variation: F,
    pub generalized_entropy_index: F,
    pub between_group_theil_index: F,
    pub between_group_coefficient_of_variation: F,
    pub between_group_generalized_entropy_index: F,
    pub per_group: AifPerGroup,
    pub dataset_true: DatasetMetric,
    pub dataset_pred: DatasetMetric,
}

/// Generalized entropy index of a distribution of benefits given as (value, count) pairs,
/// as aif360 computes it: alpha 1 is Theil's index, alpha 0 the mean log deviation.
pub fn generalized_entropy(values: &[(f64, u64)], alpha: f64) -> f64 {
    let n: u64 = values.iter().map(|v| v.1).sum();
    let n = n as f64;
    let mu = values.iter().map(|&(b, c)| b * c as f64).sum::<f64>() / n;
    let mean =
        |f: &dyn Fn(f64) -> f64| values.iter().map(|&(b, c)| f(b) * c as f64).sum::<f64>() / n;
    if alpha == 1.0 {
        // log((b/mu)^b) keeps b = 0 at 0
        mean(&|b| (b / mu).powf(b).ln() / mu)
    } else if alpha == 0.0 {
        -mean(&|b| (b / mu).ln() / mu)
    } else {
        mean(&|b| (b / mu).powf(alpha) - 1.0) / (alpha * (alpha - 1.0))
    }
}

/// Individual benefits b = ŷ − y + 1: FN → 0, TP/TN → 1, FP → 2.
fn benefits(c: &Counts) -> [(f64, u64); 3] {
    [(0.0, c.fn_), (1.0, c.tp + c.tn), (2.0, c.fp)]
}

/// Mean benefit of a group.
fn mean_benefit(c: &Counts) -> f64 {
    (c.n() + c.fp - c.fn_) as f64 / c.n() as f64
}

impl Aif360 {
    /// `groups`: confusion counts per raw group; `privileged`: which groups are privileged.
    pub fn compute(groups: &[Counts], privileged: &[bool]) -> Aif360 {
        let pc = Counts::sum(groups.iter().zip(privileged).filter(|g| *g.1).map(|g| g.0));
        let uc = Counts::sum(groups.iter().zip(privileged).filter(|g| !*g.1).map(|g| g.0));
        let all = pc.merge(&uc);
        let (p, u, o) = (AifGroup::of(&pc), AifGroup::of(&uc), AifGroup::of(&all));
        let d = |f: fn(&AifGroup) -> F| F(f(&u).0 - f(&p).0);
        let r = |f: fn(&AifGroup) -> F| F(f(&u).0 / f(&p).0);
        let tpr_d = d(|g| g.tpr).0;
        let fpr_d = d(|g| g.fpr).0;
        let ind = benefits(&all);
        let bg = [(mean_benefit(&pc), pc.n()), (mean_benefit(&uc), uc.n())];
        let ds = |br: fn(&AifGroup) -> F| DatasetMetric {
            statistical_parity_difference: d(br),
            disparate_impact: r(br),
            base_rate_privileged: br(&p),
            base_rate_unprivileged: br(&u),
            base_rate: br(&o),
        };
        Aif360 {
            statistical_parity_difference: d(|g| g.selection_rate),
            disparate_impact: r(|g| g.selection_rate),
            equal_opportunity_difference: F(tpr_d),
            average_odds_difference: F(0.5 * (fpr_d + tpr_d)),
            average_abs_odds_difference: F(0.5 * (fpr_d.abs() + tpr_d.abs())),
            equalized_odds_difference: F(nan_max(fpr_d.abs(), tpr_d.abs())),
            true_positive_rate_difference: F(tpr_d),
            false_positive_rate_difference: F(fpr_d),
            false_negative_rate_difference: d(|g| g.fnr),
            false_discovery_rate_difference: d(|g| g.fdr),
            false_omission_rate_difference: d(|g| g.for_),
            error_rate_difference: d(|g| g.error_rate),
            error_rate_ratio: r(|g| g.error_rate),
            false_positive_rate_ratio: r(|g| g.fpr),
            false_negative_rate_ratio: r(|g| g.fnr),
            false_discovery_rate_ratio: r(|g| g.fdr),
            false_omission_rate_ratio: r(|g| g.for_),
            average_predictive_value_difference: F(0.5 * (d(|g| g.ppv).0 + d(|g| g.for_).0)),
            theil_index: F(generalized_entropy(&ind, 1.0)),
            // aif360 0.6: sqrt(2 · GE(2)), the plain coefficient of variation of b
            coefficient_of_variation: F((2.0 * generalized_entropy(&ind, 2.0)).sqrt()),
            generalized_entropy_index: F(generalized_entropy(&ind, 2.0)),
            between_group_theil_index: F(generalized_entropy(&bg, 1.0)),
            between_group_coefficient_of_variation: F((2.0 * generalized_entropy(&bg, 2.0)).sqrt()),
            between_group_generalized_entropy_index: F(generalized_entropy(&bg, 2.0)),
            dataset_true: ds(|g| g.base_rate),
            dataset_pred: ds(|g| g.selection_rate),
            per_group: AifPerGroup {
                privileged: p,
                unprivileged: u,
                overall: o,
            },
        }
    }
}

/// numpy's maximum: NaN wins.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// fairlearn's per-group metrics (the script's MetricFrame).
#[derive(Debug, Clone, Serialize)]
pub struct FlGroup {
    pub count: u64,
    /// Flattened: the record keeps the rates beside `count`.
    #[serde(flatten)]
    pub rates: FlRates,
}

impl FlGroup {
    pub fn of(c: &Counts) -> FlGroup {
        FlGroup {
            count: c.n(),
            rates: FlRates::from([
                q(c.pred_positives(), c.n()),
                q(c.tp + c.tn, c.n()),
                q0(c.tp, c.positives()),
                q0(c.fp, c.negatives()),
                q0(c.tn, c.negatives()),
                q0(c.fn_, c.positives()),
                q(c.tp, c.pred_positives()),
            ]),
        }
    }
}

/// fairlearn's rates: a group's, and MetricFrame.difference / .ratio of each (count left
/// out, as the script does).
#[derive(Debug, Clone, Serialize)]
pub struct FlRates {
    pub selection_rate: F,
    pub accuracy: F,
    pub tpr: F,
    pub fpr: F,
    pub tnr: F,
    pub fnr: F,
    pub ppv: F,
}

impl FlRates {
    fn from(v: [f64; 7]) -> FlRates {
        FlRates {
            selection_rate: F(v[0]),
            accuracy: F(v[1]),
            tpr: F(v[2]),
            fpr: F(v[3]),
            tnr: F(v[4]),
            fnr: F(v[5]),
            ppv: F(v[6]),
        }
    }

    fn to_array(&self) -> [f64; 7] {
        [
            self.selection_rate.0,
            self.accuracy.0,
            self.tpr.0,
            self.fpr.0,
            self.tnr.0,
            self.fnr.0,
            self.ppv.0,
        ]
    }
}

/// fairlearn's between-groups summaries over raw groups.
#[derive(Debug, Clone, Serialize)]
pub struct Fairlearn {
    pub demographic_parity_difference: F,
    pub demographic_parity_ratio: F,
    pub equalized_odds_difference: F,
    pub equalized_odds_ratio: F,
    pub equal_opportunity_difference: F,
    pub equal_opportunity_ratio: F,
    pub by_group: BTreeMap<String, FlGroup>,
    pub overall: FlGroup,
    pub difference: FlRates,
    pub ratio: FlRates,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc_overall: Option<F>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc_by_group: Option<BTreeMap<String, F>>,
}

/// pandas min/max: NaN skipped; NaN when every value is NaN.
fn group_min_max(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::NAN, f64::NAN);
    for v in vals.filter(|v| !v.is_nan()) {
        if lo.is_nan() || v < lo {
            lo = v;
        }
        if hi.is_nan() || v > hi {
            hi = v;
        }
    }
    (lo, hi)
}

/// Python's builtin max/min over [tpr, fpr] (what fairlearn's equalized odds does): the first
/// value is kept unless a later one compares greater (smaller).
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}
fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

impl Fairlearn {
    /// `names[i]` is the name of `groups[i]`; `auc` = (overall, per group) when there are scores.
    pub fn compute(names: &[String], groups: &[Counts], auc: Option<(f64, &[f64])>) -> Fairlearn {
        let per: Vec<FlGroup> = groups.iter().map(FlGroup::of).collect();
        let overall = FlGroup::of(&Counts::sum(groups));
        let mut diff = [0.0; 7];
        let mut ratio = [0.0; 7];
        for k in 0..7 {
            let (lo, hi) = group_min_max(per.iter().map(|g| g.rates.to_array()[k]));
            diff[k] = hi - lo;
            ratio[k] = lo / hi;
        }
        let by_group = names.iter().cloned().zip(per).collect();
        let (roc_auc_overall, roc_auc_by_group) = match auc {
            Some((o, by)) => (
                Some(F(o)),
                Some(
                    names
                        .iter()
                        .cloned()
                        .zip(by.iter().map(|&v| F(v)))
                        .collect(),
                ),
            ),
            None => (None, None),
        };
        Fairlearn {
            demographic_parity_difference: F(diff[0]),
            demographic_parity_ratio: F(ratio[0]),
            equalized_odds_difference: F(py_max(diff[2], diff[3])),
            equalized_odds_ratio: F(py_min(ratio[2], ratio[3])),
            equal_opportunity_difference: F(diff[2]),
            equal_opportunity_ratio: F(ratio[2]),
            by_group,
            overall,
            difference: FlRates::from(diff),
            ratio: FlRates::from(ratio),
            roc_auc_overall,
            roc_auc_by_group,
        }
    }
}

/// ROC AUC of scores against binary labels (the Mann–Whitney statistic with tied scores
/// counted half, which equals sklearn's trapezoidal `roc_auc_score`); NaN with one class only.
pub fn roc_auc(pairs: &mut [(f64, bool)]) -> f64 {
    let pos = pairs.iter().filter(|p| p.1).count();
    let neg = pairs.len() - pos;
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // sum of the (average) ranks of the positives, ranks from 1
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        let k = pairs[i..j].iter().filter(|p| p.1).count();
        rank_sum += avg_rank * k as f64;
        i = j;
    }
    let (p, n) = (pos as f64, neg as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_with_ties() {
        let mut v = vec![(0.1, false), (0.4, true), (0.35, false), (0.8, true)];
        assert!((roc_auc(&mut v) - 1.0).abs() < 1e-12);
        let mut v = vec![(0.5, false), (0.5, true)];
        assert!((roc_auc(&mut v) - 0.5).abs() < 1e-12);
        let mut v = vec![(0.1, true), (0.4, false), (0.35, true), (0.8, false)];
        assert!(roc_auc(&mut v).abs() < 1e-12);
        let mut v = vec![(0.1, true)];
        assert!(roc_auc(&mut v).is_nan());
    }

    #[test]
    fn fairlearn_rates_are_zero_not_nan_without_positives() {
        let c = Counts {
            tp: 0,
            fp: 1,
            tn: 3,
            fn_: 0,
        };
        let g = FlGroup::of(&c);
        assert_eq!(g.rates.tpr.0, 0.0);
        assert!(AifGroup::of(&c).tpr.0.is_nan());
    }

    #[test]
    fn theil_of_equal_benefits_is_zero() {
        assert_eq!(generalized_entropy(&[(1.0, 10)], 1.0), 0.0);
        assert_eq!(generalized_entropy(&[(1.0, 10)], 2.0), 0.0);
    }
}
