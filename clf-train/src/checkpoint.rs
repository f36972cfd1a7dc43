//! Classifier checkpoints: a directory published atomically (`shared::atomic::AtomicDir`).
//!
//! ```text
//! CLF/
//!   config.json            format ulmfit-clf: encoder + head config, task, classes, settings
//!   vocab.json             the encoder's vocab
//!   model.safetensors      fp32 weights under fastai's classifier state_dict names
//!   optimizer.safetensors  Adam state (NAME.grad_avg, NAME.sqr_avg): resumable checkpoints
//!   train_state.json       step, done, per-parameter step counts, the epoch's running sums
//!   adversary.safetensors  with --adversary: the adversary's parameters and Adam state
//! ```
//!
//! Every epoch has the same number of batches (the training loader drops the last partial
//! one), so the step count locates phase, epoch and batch; random numbers are re-seeded from
//! (seed, step) and the batch order from (seed, epoch): the step is all the RNG state a resume
//! needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use shared::atomic::AtomicDir;
use shared::vocab::{Vocab, VOCAB_FILE};
use tch::{Device, Tensor};

use lm_train::checkpoint::{check_vocab_hash, read_resumable_parts, write_safetensors};
use lm_train::optim::AdamW;

use crate::config::{ClfConfig, CONFIG_FILE};
use crate::fair::Adversary;
use crate::model::{ClfModel, EMB_DP_ALIAS};
use crate::optim::ClfOpt;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "train_state.json";
pub const ADVERSARY_FILE: &str = "adversary.safetensors";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Optimizer steps done (over all phases).
    pub step: u64,
    pub done: bool,
    pub param_steps: BTreeMap<String, u64>,
    pub epoch_loss_sum: f64,
    pub epoch_loss_count: u64,
    pub epoch_docs: u64,
    pub epoch_train_s: f64,
    pub elapsed_s: f64,
    /// With --adversary: the adversary's Adam step counts and the epoch's running sums.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub adv_param_steps: BTreeMap<String, u64>,
    #[serde(default)]
    pub epoch_adv_loss_sum: f64,
    #[serde(default)]
    pub epoch_adv_right: u64,
    #[serde(default)]
    pub epoch_adv_n: u64,
}

impl lm_train::session::RunState for TrainState {
    fn step(&self) -> u64 {
        self.step
    }
    fn elapsed_s(&self) -> f64 {
        self.elapsed_s
    }
}

fn to_cpu(v: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    v.into_iter()
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).contiguous()))
        .collect()
}

pub fn save(
    dir: &Path,
    model: &ClfModel,
    vocab: &Vocab,
    cfg: &ClfConfig,
    resumable: Option<(&ClfOpt, &TrainState)>,
) -> Result<()> {
    save_with(dir, model, vocab, cfg, resumable, None)
}

/// [`save`], plus the adversary (parameters and Adam state) when there is one.
pub fn save_with(
    dir: &Path,
    model: &ClfModel,
    vocab: &Vocab,
    cfg: &ClfConfig,
    resumable: Option<(&ClfOpt, &TrainState)>,
    adversary: Option<(&Adversary, &AdamW)>,
) -> Result<()> {
    let out = AtomicDir::create(dir, true)?;
    let p = out.path();
    let mut tensors = model.named_tensors();
    tensors.push((EMB_DP_ALIAS.into(), model.encoder.encoder.shallow_clone()));
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(&to_cpu(tensors), &p.join(MODEL_FILE), dir)?;
    std::fs::write(p.join(CONFIG_FILE), cfg.to_json())?;
    std::fs::write(p.join(VOCAB_FILE), vocab.to_json())?;
    if let Some((opt, state)) = resumable {
        let (t, steps) = opt.state_tensors();
        write_safetensors(&to_cpu(t), &p.join(OPTIMIZER_FILE), dir)?;
        let mut st = state.clone();
        st.param_steps = steps;
        if let Some((adv, opt)) = adversary {
            let (mut t, steps) = opt.state_tensors();
            t.extend(adv.named_params());
            write_safetensors(&to_cpu(t), &p.join(ADVERSARY_FILE), dir)?;
            st.adv_param_steps = steps;
        }
        let mut j = serde_json::to_vec_pretty(&st)?;
        j.push(b'\n');
        std::fs::write(p.join(STATE_FILE), j)?;
    }
    out.commit()
}

/// A classifier checkpoint read from disk.
pub struct ClfCheckpoint {
    pub dir: PathBuf,
    pub config: ClfConfig,
    pub vocab: Vocab,
    pub tensors: BTreeMap<String, Tensor>,
}

impl ClfCheckpoint {
    pub fn read(dir: &Path) -> Result<Self> {
        let config = ClfConfig::load(dir)?;
        let vocab = Vocab::load(dir.join(VOCAB_FILE))?;
        check_vocab_hash(dir, &vocab, &config.vocab_hash)?;
        let mp = dir.join(MODEL_FILE);
        let tensors = Tensor::read_safetensors(&mp)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", mp.display()))?
            .into_iter()
            .collect();
        Ok(ClfCheckpoint {
            dir: dir.to_path_buf(),
            config,
            vocab,
            tensors,
        })
    }

    /// Copies every tensor into `model` (shapes checked; the embedding alias is skipped).
    pub fn load_into(&self, model: &ClfModel) -> Result<()> {
        let mp = self.dir.join(MODEL_FILE);
        let all = model.named_tensors();
        for name in self.tensors.keys() {
            if name != EMB_DP_ALIAS && !all.iter().any(|(n, _)| n == name) {
                bail!(
                    "{}: unexpected tensor {name} (not a checkpoint of this architecture)",
                    mp.display()
                );
            }
        }
        tch::no_grad(|| {
            for (name, t) in all {
                let Some(src) = self.tensors.get(&name) else {
                    bail!("{}: missing tensor {name}", mp.display());
                };
                if src.size() != t.size() {
                    bail!(
                        "{}: tensor {name} has shape {:?}, config.json needs {:?}",
                        mp.display(),
                        src.size(),
                        t.size()
                    );
                }
                let mut t = t;
                t.f_copy_(src)
                    .with_context(|| format!("{}: loading {name}", mp.display()))?;
            }
            Ok(())
        })
    }
}

/// Reads the adversary of a resumable checkpoint into `adv` and its optimizer.
pub fn read_adversary(
    dir: &Path,
    adv: &Adversary,
    opt: &mut AdamW,
    state: &TrainState,
    device: Device,
) -> Result<()> {
    let ap = dir.join(ADVERSARY_FILE);
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&ap)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", ap.display()))?
        .into_iter()
        .map(|(n, t)| (n, t.to_device(device)))
        .collect();
    tch::no_grad(|| -> Result<()> {
        for (name, mut t) in adv.named_params() {
            let Some(src) = tensors.get(&name) else {
                bail!("{}: missing tensor {name}", ap.display());
            };
            if src.size() != t.size() {
                bail!(
                    "{}: tensor {name} has shape {:?}, expected {:?}",
                    ap.display(),
                    src.size(),
                    t.size()
                );
            }
            t.copy_(src);
        }
        Ok(())
    })?;
    opt.load_state(&tensors, &state.adv_param_steps)
        .with_context(|| format!("{}", ap.display()))
}

/// Reads the resumable part of a checkpoint into `opt`.
pub fn read_resumable(dir: &Path, opt: &mut ClfOpt, device: Device) -> Result<TrainState> {
    let (state, tensors, op): (TrainState, _, _) = read_resumable_parts(dir, device)?;
    opt.load_state(&tensors, &state.param_steps)
        .with_context(|| format!("{}", op.display()))?;
    Ok(state)
}
