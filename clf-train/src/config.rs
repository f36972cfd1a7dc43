//! The classifier checkpoint's `config.json`: encoder config (lm-train's `ModelConfig` with
//! the classifier's dropouts), head, task and classes, so `predict` and `--resume` rebuild
//! exactly the same model.

use std::path::Path;

use anyhow::{bail, Result};
use lm_train::config::{
    check_arch, config_json, parse_config, read_config_json, ModelConfig, OptimSettings, Precision,
};
use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "config.json";
pub const CONFIG_FORMAT: &str = "ulmfit-clf";
pub const CONFIG_VERSION: u32 = 1;
pub const ARCH: &str = "awd_lstm_clas";
/// lm-train's format name, to say what a wrong checkpoint is.
pub const LM_FORMAT: &str = lm_train::config::CONFIG_FORMAT;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Softmax + cross-entropy over `classes`.
    Classification,
    /// Sigmoid + binary cross-entropy per class.
    MultiLabel,
    /// One output, MSE (optionally through SigmoidRange).
    Regression,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::MultiLabel => "multi-label",
            Task::Regression => "regression",
        }
    }
}

/// `PoolingLinearClassifier`: sizes and dropouts of the head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// `[3·emb, lin_ftrs..., n_out]`.
    pub dims: Vec<i64>,
    /// Dropout before each linear layer (`[output_p·drop_mult, ps...]`).
    pub ps: Vec<f64>,
    pub y_range: Option<(f64, f64)>,
}

/// What the label column holds and how it maps to outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelConfig {
    pub label_col: String,
    pub task: Task,
    /// Classification / multi-label: the output index of each label (sorted).
    pub classes: Vec<String>,
    pub label_delim: Option<String>,
}

/// Everything that decides the training trajectory; saved so `--resume` continues it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub train_split: String,
    pub valid_split: String,
    pub bs: usize,
    /// The resolved phases (see `schedule`).
    pub phases: Vec<crate::schedule::Phase>,
    pub unfreeze: String,
    pub disc_div: f64,
    /// div ... beta (flattened: config.json keeps them at this place, one level up).
    #[serde(flatten)]
    pub optim: OptimSettings,
    pub seed: u64,
    pub precision: Precision,
    pub drop_mult: f64,
    /// `--reweigh COL`: Kamiran–Calders sample weights by this protected column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reweigh: Option<String>,
    /// `--adversary COL ...`: adversarial debiasing (Zhang et al. 2018).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversary: Option<crate::fair::AdversarySettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClfConfig {
    pub format: String,
    pub version: u32,
    pub arch: String,
    /// The encoder (dropouts already multiplied by drop_mult).
    pub encoder: ModelConfig,
    pub head: HeadConfig,
    pub labels: LabelConfig,
    /// Chunk length of the sentence encoder and of the pooling's "last" window.
    pub bptt: usize,
    pub max_len: usize,
    pub vocab_hash: String,
    /// The LM checkpoint the encoder came from.
    pub encoder_source: String,
    pub training: Option<TrainSettings>,
    pub created_by: String,
}

impl ClfConfig {
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(CONFIG_FILE);
        if !dir.is_dir() {
            bail!("{}: no such checkpoint directory", dir.display());
        }
        let raw = read_config_json(&p, dir, "clf-train")?;
        match raw.get("format").and_then(|v| v.as_str()) {
            Some(CONFIG_FORMAT) => {}
            Some(LM_FORMAT) => bail!(
                "{}: is a language-model checkpoint (lm-train); a classifier checkpoint from clf-train is needed here",
                dir.display()
            ),
            _ => bail!("{}: not a classifier checkpoint config (format is not {CONFIG_FORMAT:?})", p.display()),
        }
        let c: ClfConfig = parse_config(raw, &p, CONFIG_VERSION)?;
        check_arch(&p, &c.arch, ARCH, &c.encoder)?;
        Ok(c)
    }

    pub fn to_json(&self) -> Vec<u8> {
        config_json(self)
    }
}

/// Refuses a classifier checkpoint (or anything but an LM) given as `--encoder`, with a
/// message saying what it is.
pub fn require_lm_checkpoint(dir: &Path) -> Result<()> {
    let p = dir.join(CONFIG_FILE);
    if !dir.is_dir() {
        bail!("{}: no such checkpoint directory", dir.display());
    }
    if let Ok(bytes) = std::fs::read(&p) {
        if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if raw.get("format").and_then(|v| v.as_str()) == Some(CONFIG_FORMAT) {
                bail!(
                    "{}: is a classifier checkpoint (clf-train); --encoder needs a language model from lm-train",
                    dir.display()
                );
            }
        }
    }
    Ok(())
}
