//! Checkpoints: a directory published atomically (`shared::atomic::AtomicDir`).
//!
//! ```text
//! LM/
//!   config.json              model config, vocab hash, training settings (see crate::config)
//!   vocab.json               the vocab the rows of the embedding follow
//!   model.safetensors        fp32 weights under fastai's state_dict names (tied weight also
//!                            under its aliases 0.encoder_dp.emb.weight and 1.decoder.weight)
//!   optimizer.safetensors    Adam state (NAME.grad_avg, NAME.sqr_avg) and the carried hidden
//!                            state (hidden.L.h, hidden.L.c): only in resumable checkpoints
//!   train_state.json         step, epoch, batch, per-parameter step counts, running sums
//! ```
//!
//! Random numbers are re-seeded from (seed, step) at every step and the document order from
//! (seed, epoch), so step, epoch and batch are all the RNG state a resume needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use shared::atomic::AtomicDir;
use shared::vocab::{Vocab, VOCAB_FILE};
use tch::{Device, Kind, Tensor};

use crate::config::{CheckpointConfig, CONFIG_FILE};
use crate::model::{Hidden, LanguageModel};
use crate::optim::AdamW;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "train_state.json";

const EMB: &str = "0.encoder.weight";
const EMB_DP_ALIAS: &str = "0.encoder_dp.emb.weight";
const DEC_W: &str = "1.decoder.weight";
const DEC_B: &str = "1.decoder.bias";

/// Where a run stands, for `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// Epoch of the next batch.
    pub epoch: u64,
    /// Next batch within `epoch`.
    pub batch: u64,
    /// True when the run reached its last step.
    pub done: bool,
    pub param_steps: BTreeMap<String, u64>,
    /// Sum and count of the train losses of `epoch` so far (for the epoch record).
    pub epoch_loss_sum: f64,
    pub epoch_loss_count: u64,
    pub epoch_tokens: u64,
    pub epoch_train_s: f64,
    pub elapsed_s: f64,
    /// Micro-batch in use (after any out-of-memory back-off); absent = the settings' one.
    #[serde(default)]
    pub micro_bs: Option<usize>,
    /// fp16 loss scale.
    #[serde(default)]
    pub loss_scaler: Option<crate::step::LossScaler>,
}

impl crate::session::RunState for TrainState {
    fn step(&self) -> u64 {
        self.step
    }
    fn elapsed_s(&self) -> f64 {
        self.elapsed_s
    }
}

/// The named tensors of `model.safetensors`: every parameter, plus fastai's aliases of the
/// tied embedding.
pub fn model_tensors(model: &LanguageModel) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = model.named_params();
    let emb = model.encoder.encoder.shallow_clone();
    v.push((EMB_DP_ALIAS.into(), emb.shallow_clone()));
    if model.cfg().tie_weights {
        v.push((DEC_W.into(), emb));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn to_cpu(v: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    v.into_iter()
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).contiguous()))
        .collect()
}

/// Resumable part of a checkpoint.
pub struct Resumable<'a> {
    pub opt: &'a AdamW,
    pub hidden: Option<&'a Hidden>,
    pub state: &'a TrainState,
}

/// Writes tensors as safetensors to `path`; an I/O failure reads as one plain line (`ckpt:
/// cannot write model.safetensors: No space left on device`) rather than the Debug text of
/// the safetensors crate's error that tch passes on.
pub fn write_safetensors(tensors: &[(String, Tensor)], path: &Path, dir: &Path) -> Result<()> {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    Tensor::write_safetensors(tensors, path).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot write {file}: {}",
            dir.display(),
            io_reason(&e.to_string())
        )
    })
}

/// The OS's reason from a tch/safetensors I/O error text (`... message: "No space left on
/// device" ...`), else the text itself.
pub fn io_reason(text: &str) -> String {
    match text.find("message: \"") {
        Some(i) => {
            let rest = &text[i + "message: \"".len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_string()
        }
        None => text.to_string(),
    }
}

/// Writes a checkpoint to `dir` (replacing it atomically).
pub fn save(
    dir: &Path,
    model: &LanguageModel,
    vocab: &Vocab,
    cfg: &CheckpointConfig,
    resumable: Option<Resumable>,
) -> Result<()> {
    let out = AtomicDir::create(dir, true)?;
    let p = out.path();
    write_safetensors(&to_cpu(model_tensors(model)), &p.join(MODEL_FILE), dir)?;
    std::fs::write(p.join(CONFIG_FILE), cfg.to_json())?;
    std::fs::write(p.join(VOCAB_FILE), vocab.to_json())?;
    if let Some(r) = resumable {
        let (mut tensors, steps) = r.opt.state_tensors();
        if let Some(h) = r.hidden {
            for (l, (hh, cc)) in h.iter().enumerate() {
                tensors.push((format!("hidden.{l}.h"), hh.shallow_clone()));
                tensors.push((format!("hidden.{l}.c"), cc.shallow_clone()));
            }
        }
        write_safetensors(&to_cpu(tensors), &p.join(OPTIMIZER_FILE), dir)?;
        let mut st = r.state.clone();
        st.param_steps = steps;
        let mut j = serde_json::to_vec_pretty(&st)?;
        j.push(b'\n');
        std::fs::write(p.join(STATE_FILE), j)?;
    }
    out.commit()
}

/// A checkpoint read from disk (weights on the CPU).
pub struct Checkpoint {
    pub dir: std::path::PathBuf,
    pub config: CheckpointConfig,
    pub vocab: Vocab,
    pub tensors: BTreeMap<String, Tensor>,
}

impl Checkpoint {
    pub fn read(dir: &Path) -> Result<Checkpoint> {
        if !dir.is_dir() {
            bail!("{}: no such checkpoint directory", dir.display());
        }
        let config = CheckpointConfig::load(dir)?;
        let vocab = Vocab::load(dir)?;
        check_vocab_hash(dir, &vocab, &config.vocab_hash)?;
        if vocab.len() as i64 != config.model.vocab_size {
            bail!(
                "{}: vocab.json has {} tokens but the model has {} rows",
                dir.display(),
                vocab.len(),
                config.model.vocab_size
            );
        }
        let mp = dir.join(MODEL_FILE);
        let tensors = Tensor::read_safetensors(&mp)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", mp.display()))?
            .into_iter()
            .collect();
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            config,
            vocab,
            tensors,
        })
    }

    /// fastai's `match_embeds`: re-orders the embedding rows and decoder bias from this
    /// checkpoint's vocab to `new_vocab`, by token string; tokens it does not know get the
    /// mean row / mean bias. Returns the number of new-vocab tokens found in the old vocab.
    pub fn remap_vocab(&mut self, new_vocab: &Vocab) -> Result<usize> {
        let old = &self.vocab;
        let mut matched = 0usize;
        // -1 = not found
        let idx: Vec<i64> = new_vocab
            .itos()
            .iter()
            .map(|w| match old.get(w) {
                Some(i) => {
                    matched += 1;
                    i as i64
                }
                None => -1,
            })
            .collect();
        let remap = |t: &Tensor| -> Tensor {
            let mean = t
                .to_kind(Kind::Float)
                .mean_dim(0, true, Kind::Float)
                .to_kind(t.kind());
            let ext = Tensor::cat(&[t.shallow_clone(), mean], 0);
            let last = t.size()[0];
            let ix: Vec<i64> = idx.iter().map(|&i| if i < 0 { last } else { i }).collect();
            ext.index_select(0, &Tensor::from_slice(&ix)).contiguous()
        };
        let names: Vec<&str> = if self.config.model.tie_weights {
            vec![EMB, DEC_B]
        } else {
            vec![EMB, DEC_W, DEC_B]
        };
        for name in names {
            if let Some(t) = self.tensors.get(name) {
                let r = remap(t);
                self.tensors.insert(name.to_string(), r);
            }
        }
        self.tensors.remove(EMB_DP_ALIAS);
        if self.config.model.tie_weights {
            self.tensors.remove(DEC_W);
        }
        self.config.model.vocab_size = new_vocab.len() as i64;
        self.config.vocab_hash = new_vocab.hash().to_string();
        self.vocab = new_vocab.clone();
        Ok(matched)
    }

    /// Copies the weights into `model`; every parameter must be present with its shape, and
    /// nothing else may be there (except fastai's aliases of the tied weight).
    pub fn load_into(&self, model: &LanguageModel) -> Result<()> {
        let mp = self.dir.join(MODEL_FILE);
        let params = model.named_params();
        for (name, p) in &params {
            let Some(src) = self.tensors.get(name) else {
                let c = model.cfg();
                bail!(
                    "{}: missing tensor {name} (not a checkpoint of this architecture: AWD-LSTM emb {}, hidden {}, {} layers, vocab {})",
                    mp.display(),
                    c.emb_sz,
                    c.n_hid,
                    c.n_layers,
                    c.vocab_size
                );
            };
            if src.size() != p.size() {
                bail!(
                    "{}: tensor {name} has shape {:?}, the model of config.json needs {:?}",
                    mp.display(),
                    src.size(),
                    p.size()
                );
            }
        }
        for name in self.tensors.keys() {
            let known = params.iter().any(|(n, _)| n == name)
                || name == EMB_DP_ALIAS
                || (name == DEC_W && model.cfg().tie_weights);
            if !known {
                bail!(
                    "{}: unexpected tensor {name} (not a checkpoint of this architecture)",
                    mp.display()
                );
            }
        }
        tch::no_grad(|| -> Result<()> {
            for (name, p) in &params {
                let mut p = p.shallow_clone();
                p.f_copy_(&self.tensors[name])
                    .with_context(|| format!("{}: loading {name}", mp.display()))?;
            }
            Ok(())
        })
    }
}

/// The resumable part of a checkpoint directory, lm-train's or clf-train's: its
/// `train_state.json` (as `S`), the tensors of `optimizer.safetensors` on `device`, and that
/// file's path (for the caller's errors).
pub fn read_resumable_parts<S: serde::de::DeserializeOwned>(
    dir: &Path,
    device: Device,
) -> Result<(S, BTreeMap<String, Tensor>, PathBuf)> {
    let sp = dir.join(STATE_FILE);
    let bytes = std::fs::read(&sp)
        .with_context(|| format!("{}: cannot read (not a resumable checkpoint)", sp.display()))?;
    let state: S =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: invalid", sp.display()))?;
    let op = dir.join(OPTIMIZER_FILE);
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&op)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", op.display()))?
        .into_iter()
        .map(|(n, t)| (n, t.to_device(device)))
        .collect();
    Ok((state, tensors, op))
}

/// Refuses a checkpoint directory whose vocab.json is not the vocab its config.json names.
pub fn check_vocab_hash(dir: &Path, vocab: &Vocab, config_hash: &str) -> Result<()> {
    if vocab.hash() != config_hash {
        bail!(
            "{}: vocab.json (hash {}) is not the vocab of config.json ({})",
            dir.display(),
            vocab.hash(),
            config_hash
        );
    }
    Ok(())
}

/// Reads the resumable part of a checkpoint into `opt` and returns the state and hidden state.
pub fn read_resumable(
    dir: &Path,
    opt: &mut AdamW,
    device: Device,
) -> Result<(TrainState, Option<Hidden>)> {
    let (state, tensors, op): (TrainState, _, _) = read_resumable_parts(dir, device)?;
    opt.load_state(&tensors, &state.param_steps)
        .with_context(|| format!("{}", op.display()))?;
    let mut hidden = Vec::new();
    for l in 0.. {
        match (
            tensors.get(&format!("hidden.{l}.h")),
            tensors.get(&format!("hidden.{l}.c")),
        ) {
            (Some(h), Some(c)) => hidden.push((h.shallow_clone(), c.shallow_clone())),
            _ => break,
        }
    }
    Ok((state, (!hidden.is_empty()).then_some(hidden)))
}
