//! Model and training settings, saved in a checkpoint's `config.json` so a later run (resume,
//! fine-tuning, the classifier, generation) rebuilds exactly the same model.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::args::{OneCycleArgs, OptimArgs};
use crate::optim::OneCycle;

pub const CONFIG_FILE: &str = "config.json";
pub const CONFIG_FORMAT: &str = "ulmfit-lm";
pub const CONFIG_VERSION: u32 = 1;
pub const ARCH: &str = "awd_lstm";

/// fastai's `awd_lstm_lm_config`: sizes and dropouts of `AWD_LSTM` + `LinearDecoder`.
///
/// Dropouts are stored already multiplied by `drop_mult` (as `get_language_model` does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub vocab_size: i64,
    pub emb_sz: i64,
    pub n_hid: i64,
    pub n_layers: i64,
    pub pad_token: i64,
    /// RNNDropout on the embedding output (`input_p`).
    pub input_p: f64,
    /// WeightDropout on each layer's hidden-to-hidden weights (`weight_p`).
    pub weight_p: f64,
    /// EmbeddingDropout: whole vocabulary rows (`embed_p`).
    pub embed_p: f64,
    /// RNNDropout between LSTM layers (`hidden_p`).
    pub hidden_p: f64,
    /// RNNDropout before the decoder (`output_p`).
    pub output_p: f64,
    pub tie_weights: bool,
    pub out_bias: bool,
}

impl ModelConfig {
    /// fastai's language-model defaults with every dropout times `drop_mult`.
    pub fn fastai_lm(vocab_size: i64, drop_mult: f64) -> Self {
        ModelConfig {
            vocab_size,
            emb_sz: 400,
            n_hid: 1152,
            n_layers: 3,
            pad_token: 1,
            input_p: 0.25 * drop_mult,
            weight_p: 0.2 * drop_mult,
            embed_p: 0.02 * drop_mult,
            hidden_p: 0.15 * drop_mult,
            output_p: 0.1 * drop_mult,
            tie_weights: true,
            out_bias: true,
        }
    }

    /// Output size of LSTM layer `l`: `n_hid`, except the last, which is `emb_sz` (so the
    /// decoder can be tied to the embedding).
    pub fn layer_out(&self, l: i64) -> i64 {
        if l == self.n_layers - 1 {
            self.emb_sz
        } else {
            self.n_hid
        }
    }

    pub fn layer_in(&self, l: i64) -> i64 {
        if l == 0 {
            self.emb_sz
        } else {
            self.n_hid
        }
    }

    /// Overrides the sizes given (`--emb-sz`, `--n-hid`, `--n-layers`).
    pub fn set_sizes(&mut self, emb_sz: Option<i64>, n_hid: Option<i64>, n_layers: Option<i64>) {
        if let Some(x) = emb_sz {
            self.emb_sz = x;
        }
        if let Some(x) = n_hid {
            self.n_hid = x;
        }
        if let Some(x) = n_layers {
            self.n_layers = x;
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.vocab_size < 1 || self.emb_sz < 1 || self.n_hid < 1 || self.n_layers < 1 {
            bail!(
                "model sizes must be positive (vocab {}, emb {}, hid {}, layers {})",
                self.vocab_size,
                self.emb_sz,
                self.n_hid,
                self.n_layers
            );
        }
        for (name, p) in [
            ("input_p", self.input_p),
            ("weight_p", self.weight_p),
            ("embed_p", self.embed_p),
            ("hidden_p", self.hidden_p),
            ("output_p", self.output_p),
        ] {
            if !(0.0..1.0).contains(&p) {
                bail!("dropout {name} = {p} must be in [0, 1) (check --drop-mult)");
            }
        }
        Ok(())
    }

    /// Same shapes (everything but dropouts).
    pub fn same_architecture(&self, other: &ModelConfig) -> bool {
        (
            self.emb_sz,
            self.n_hid,
            self.n_layers,
            self.tie_weights,
            self.out_bias,
        ) == (
            other.emb_sz,
            other.n_hid,
            other.n_layers,
            other.tie_weights,
            other.out_bias,
        )
    }
}

/// Numeric precision of the forward/backward pass. Master weights and optimizer state are
/// always fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Bf16,
    /// CUDA only, with dynamic loss scaling (fp16's range is too small for raw gradients).
    Fp16,
}

/// The one-cycle schedule and optimizer settings of a training run, lm-train's and
/// clf-train's (their `TrainSettings` flatten it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimSettings {
    pub div: f64,
    pub div_final: f64,
    pub pct_start: f64,
    /// (start, middle, end) of the β1 schedule.
    pub moms: [f64; 3],
    pub sqr_mom: f64,
    pub eps: f64,
    pub wd: f64,
    pub clip: Option<f64>,
    pub alpha: f64,
    pub beta: f64,
}

impl OptimSettings {
    pub fn from_args(c: &OneCycleArgs, o: &OptimArgs) -> Self {
        OptimSettings {
            div: c.div,
            div_final: c.div_final,
            pct_start: c.pct_start,
            moms: [c.moms[0], c.moms[1], c.moms[2]],
            sqr_mom: o.sqr_mom,
            eps: o.eps,
            wd: o.wd,
            clip: o.clip,
            alpha: o.alpha,
            beta: o.beta,
        }
    }

    /// The one-cycle schedule of `total_steps` steps up to the learning rates `lr_max`.
    pub fn one_cycle(&self, lr_max: Vec<f64>, total_steps: u64) -> OneCycle {
        OneCycle {
            lr_max,
            div: self.div,
            div_final: self.div_final,
            pct_start: self.pct_start,
            moms: self.moms,
            total_steps,
        }
    }
}

/// Everything that decides the training trajectory; saved so `--resume` continues the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub train_split: String,
    pub valid_split: String,
    /// Effective batch: streams per optimizer step.
    pub bs: usize,
    /// Streams per forward/backward (gradient accumulation when below `bs`); absent = `bs`.
    #[serde(default)]
    pub micro_bs: Option<usize>,
    pub bptt: usize,
    pub epochs: usize,
    pub max_steps: Option<u64>,
    /// Peak learning rate of each layer group (one-cycle `lr_max`).
    pub lr: Vec<f64>,
    /// div ... beta (flattened: config.json keeps them at this place, one level up).
    #[serde(flatten)]
    pub optim: OptimSettings,
    pub freeze: bool,
    pub seed: u64,
    pub precision: Precision,
    pub drop_mult: f64,
}

/// `config.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointConfig {
    pub format: String,
    pub version: u32,
    pub arch: String,
    pub model: ModelConfig,
    pub vocab_hash: String,
    pub training: Option<TrainSettings>,
    pub created_by: String,
}

impl CheckpointConfig {
    pub fn new(model: ModelConfig, vocab_hash: String, training: Option<TrainSettings>) -> Self {
        CheckpointConfig {
            format: CONFIG_FORMAT.into(),
            version: CONFIG_VERSION,
            arch: ARCH.into(),
            model,
            vocab_hash,
            training,
            created_by: concat!("ulmfit-rs lm-train ", env!("CARGO_PKG_VERSION")).into(),
        }
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(CONFIG_FILE);
        let raw = read_config_json(&p, dir, "lm-train")?;
        if raw.get("format").and_then(|v| v.as_str()) != Some(CONFIG_FORMAT) {
            bail!(
                "{}: not a language-model checkpoint config (format is not {CONFIG_FORMAT:?})",
                p.display()
            );
        }
        let c: CheckpointConfig = parse_config(raw, &p, CONFIG_VERSION)?;
        check_arch(&p, &c.arch, ARCH, &c.model)?;
        Ok(c)
    }

    pub fn to_json(&self) -> Vec<u8> {
        config_json(self)
    }
}

/// The JSON of a checkpoint's config.json at `p` in the checkpoint directory `dir` of `tool`.
pub fn read_config_json(p: &Path, dir: &Path, tool: &str) -> Result<serde_json::Value> {
    let bytes = std::fs::read(p).with_context(|| {
        format!(
            "{}: cannot read (is {} a {tool} checkpoint?)",
            p.display(),
            dir.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: invalid JSON", p.display()))
}

/// A config.json (at `p`, its format already checked) of version `version`, as `T`.
pub fn parse_config<T: serde::de::DeserializeOwned>(
    raw: serde_json::Value,
    p: &Path,
    version: u32,
) -> Result<T> {
    let have = raw.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if have != version as u64 {
        bail!(
            "{}: checkpoint version {have} is not supported (this build reads {version})",
            p.display()
        );
    }
    serde_json::from_value(raw).with_context(|| format!("{}: invalid config", p.display()))
}

/// Refuses a config.json (at `p`) of another architecture than `arch`, or with an invalid
/// (encoder) model config.
pub fn check_arch(p: &Path, have: &str, arch: &str, model: &ModelConfig) -> Result<()> {
    if have != arch {
        bail!(
            "{}: architecture {have:?} is not supported (only {arch:?})",
            p.display()
        );
    }
    model.validate().with_context(|| format!("{}", p.display()))
}

/// A config as config.json holds it: pretty JSON and a newline.
pub fn config_json<T: Serialize>(c: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(c).expect("config serializes");
    v.push(b'\n');
    v
}
