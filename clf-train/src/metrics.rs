//! clf-train's metrics records (JSON lines, `shared::metrics` conventions: `schema`, `tool`,
//! `type`, units in field names) and the validation scores.
//!
//! ```text
//! {"schema":1,"tool":"clf-train","type":"clf_epoch","phase":0,"epoch":0,"step":25,"train_loss":0.69,"valid_loss":0.68,"accuracy":0.56,"macro_f1":0.55,...}
//! ```

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClfEvent {
    /// Start of training.
    ClfStart {
        task: String,
        classes: Vec<String>,
        n_out: u64,
        train_docs: u64,
        valid_docs: u64,
        vocab_size: u64,
        params: u64,
        /// Layer-group names, lowest first (embedding, lstm0.., head).
        groups: Vec<String>,
        phases: u64,
        total_steps: u64,
        start_step: u64,
        bs: u64,
        bptt: u64,
        max_len: u64,
        encoder: String,
        device: String,
        precision: String,
        threads: u64,
    },
    /// Start of an unfreezing phase: which groups train and their peak learning rates.
    ClfPhase {
        phase: u64,
        trainable_groups: u64,
        frozen_groups: u64,
        epochs: u64,
        steps: u64,
        /// Peak (one-cycle `lr_max`) learning rate per layer group, lowest group first.
        lrs: Vec<f64>,
    },
    /// Every `--log-every` steps: means since the last record; lrs of every group now.
    ClfStep {
        phase: u64,
        epoch: u64,
        step: u64,
        train_loss: f64,
        lrs: Vec<f64>,
        mom: f64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        grad_norm: Option<f64>,
        /// With --adversary: the adversary's mean loss and accuracy since the last record.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        adv_loss: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        adv_accuracy: Option<f64>,
        docs_per_s: f64,
        elapsed_s: f64,
    },
    /// End of an epoch: train loss (mean over its batches) and validation scores.
    ClfEpoch {
        phase: u64,
        epoch: u64,
        step: u64,
        train_loss: f64,
        /// With --adversary: the adversary's mean loss and accuracy over the epoch's batches.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        adv_loss: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        adv_accuracy: Option<f64>,
        #[serde(flatten)]
        scores: Scores,
        docs_per_s: f64,
        elapsed_s: f64,
    },
    /// `--reweigh COL`: the Kamiran–Calders weight of every (group, label) cell of the
    /// training split.
    ClfReweigh {
        col: String,
        cells: Vec<crate::fair::ReweighCell>,
    },
    /// `--adversary COL`: the adversary's setting and its majority-class baseline (the
    /// accuracy of always guessing the training split's largest group), train and valid.
    ClfAdversary {
        col: String,
        mode: crate::fair::AdversaryMode,
        weight: f64,
        lr: f64,
        groups: Vec<String>,
        train_counts: Vec<u64>,
        majority_accuracy: f64,
        valid_majority_accuracy: f64,
    },
    /// A checkpoint was published.
    ClfCheckpoint { path: String, step: u64, epoch: u64 },
}

/// Validation scores; the task decides which are present.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Scores {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_loss: Option<f64>,
    /// Classification: fraction correct; multi-label: fraction of (doc, label) decisions
    /// correct at 0.5 (fastai's accuracy_multi).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    /// Unweighted mean of the per-class F1 (sklearn's average="macro", 0 for a class never
    /// predicted nor present).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub macro_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub f1_per_label: Option<BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub r2: Option<f64>,
    /// With --adversary: the adversary's loss and accuracy on the validation split.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_adv_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_adv_accuracy: Option<f64>,
}

fn f1(tp: u64, fp: u64, fn_: u64) -> f64 {
    let d = 2 * tp + fp + fn_;
    if d == 0 {
        0.0
    } else {
        2.0 * tp as f64 / d as f64
    }
}

/// Accuracy and per-class F1 of single-label predictions.
pub fn classification_scores(y: &[i64], pred: &[i64], k: usize) -> (f64, Vec<f64>) {
    let (mut tp, mut fp, mut fn_) = (vec![0u64; k], vec![0u64; k], vec![0u64; k]);
    let mut correct = 0u64;
    for (&t, &p) in y.iter().zip(pred) {
        if t == p {
            correct += 1;
            tp[t as usize] += 1;
        } else {
            fp[p as usize] += 1;
            fn_[t as usize] += 1;
        }
    }
    let f: Vec<f64> = (0..k).map(|c| f1(tp[c], fp[c], fn_[c])).collect();
    (correct as f64 / y.len().max(1) as f64, f)
}

/// Multi-label: (decision accuracy, per-label F1) of `pred` (0/1) against `y`, docs × k.
pub fn multilabel_scores(y: &[f32], pred: &[f32], k: usize) -> (f64, Vec<f64>) {
    let (mut tp, mut fp, mut fn_) = (vec![0u64; k], vec![0u64; k], vec![0u64; k]);
    let mut correct = 0u64;
    for (i, (&t, &p)) in y.iter().zip(pred).enumerate() {
        let c = i % k;
        match (t > 0.5, p > 0.5) {
            (true, true) => {
                tp[c] += 1;
                correct += 1
            }
            (false, false) => correct += 1,
            (false, true) => fp[c] += 1,
            (true, false) => fn_[c] += 1,
        }
    }
    let f: Vec<f64> = (0..k).map(|c| f1(tp[c], fp[c], fn_[c])).collect();
    (correct as f64 / y.len().max(1) as f64, f)
}

/// (MAE, RMSE, R²); R² is null when the targets are constant.
pub fn regression_scores(y: &[f32], pred: &[f32]) -> (f64, f64, Option<f64>) {
    let n = y.len().max(1) as f64;
    let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut ae, mut se, mut st) = (0.0, 0.0, 0.0);
    for (&t, &p) in y.iter().zip(pred) {
        let (t, p) = (t as f64, p as f64);
        ae += (t - p).abs();
        se += (t - p).powi(2);
        st += (t - mean).powi(2);
    }
    (ae / n, (se / n).sqrt(), (st > 0.0).then(|| 1.0 - se / st))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClfRecord {
    pub schema: u32,
    pub tool: String,
    #[serde(flatten)]
    pub event: ClfEvent,
}

/// Where records go: stdout, a file, or nowhere.
pub struct ClfMetrics {
    out: Option<Box<dyn Write + Send>>,
}

impl ClfMetrics {
    pub fn none() -> Self {
        ClfMetrics { out: None }
    }

    /// `--metrics FILE` (created now, so a bad path fails before training) or stdout.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let out: Box<dyn Write + Send> = match path {
            Some(p) if !shared::cli::is_stdio(p) => {
                let f = std::fs::File::create(p)
                    .with_context(|| format!("{}: cannot create metrics file", p.display()))?;
                Box::new(io::BufWriter::new(f))
            }
            _ => Box::new(io::stdout()),
        };
        Ok(ClfMetrics { out: Some(out) })
    }

    pub fn emit(&mut self, event: ClfEvent) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let rec = ClfRecord {
            schema: shared::metrics::SCHEMA,
            tool: crate::TOOL.into(),
            event,
        };
        serde_json::to_writer(&mut *out, &rec)?;
        out.write_all(b"\n")?;
        out.flush().context("writing metrics")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_sklearn() {
        // sklearn: f1_score([0,0,1,1,2],[0,1,1,1,0],average=None) = [0.5, 0.8, 0.0]
        let (acc, f) = classification_scores(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], 3);
        assert!((acc - 0.6).abs() < 1e-12);
        assert!((f[0] - 0.5).abs() < 1e-12 && (f[1] - 0.8).abs() < 1e-12 && f[2] == 0.0);
        let (mae, rmse, r2) = regression_scores(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]);
        assert!((mae - 1.0 / 3.0).abs() < 1e-9 && (rmse - (1.0f64 / 3.0).sqrt()).abs() < 1e-9);
        assert!((r2.unwrap() - 0.5).abs() < 1e-9);
        let (acc, f) = multilabel_scores(&[1., 0., 1., 1.], &[1., 1., 0., 1.], 2);
        assert!((acc - 0.5).abs() < 1e-12);
        assert!((f[0] - 2.0 / 3.0).abs() < 1e-12 && (f[1] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn records_are_flat() {
        let e = ClfEvent::ClfEpoch {
            phase: 0,
            epoch: 1,
            step: 5,
            train_loss: 0.5,
            adv_loss: None,
            adv_accuracy: None,
            scores: Scores {
                valid_loss: Some(0.4),
                accuracy: Some(0.9),
                ..Default::default()
            },
            docs_per_s: 1.0,
            elapsed_s: 2.0,
        };
        let rec = ClfRecord {
            schema: 1,
            tool: "clf-train".into(),
            event: e,
        };
        let s = serde_json::to_string(&rec).unwrap();
        assert!(
            s.starts_with(r#"{"schema":1,"tool":"clf-train","type":"clf_epoch","phase":0"#),
            "{s}"
        );
        assert!(
            s.contains(r#""valid_loss":0.4,"accuracy":0.9,"docs_per_s""#),
            "{s}"
        );
    }
}
