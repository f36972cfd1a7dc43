//! fastai's text classifier (fastai/text/models/core.py `get_text_classifier`):
//! `SequentialRNN(SentenceEncoder(AWD_LSTM), PoolingLinearClassifier)`, with lm-train's
//! [`AwdLstm`] as the encoder.
//!
//! Parameter names are fastai's classifier `state_dict` names: `0.module.encoder.weight`,
//! `0.module.rnns.{l}....` (the LM's `0.*` under `0.module.`), and for head layer `i`
//! (`LinBnDrop`: BatchNorm1d, Dropout, Linear without bias, ReLU but for the last)
//! `1.layers.{i}.0.{weight,bias,running_mean,running_var}` and `1.layers.{i}.2.weight`
//! (`.1.weight` when that layer has no dropout).
//!
//! `SentenceEncoder`: a batch is padded fastai's way (`pad_input_chunk`, pad first: whole
//! chunks of padding before a document, the remainder after it, so every document starts on
//! a chunk boundary), then run through the encoder in `bptt` chunks, a row joining when its
//! document starts (zero state) and the hidden state carried, detached, between chunks.
//! Only chunks within the last `max_len` tokens keep their outputs (and gradients); earlier
//! ones just advance the state, under `no_grad`.
//!
//! `masked_concat_pool`: [state at the last token, max over tokens, mean over tokens] of the
//! kept outputs. One deliberate difference: fastai takes "last" at `-last_lens-1`, where
//! `last_lens` counts the padding in the final `bptt` columns; for a short document in a batch
//! whose length is not a multiple of `bptt` that window also holds some of its leading
//! padding, and fastai then picks a padding position (a zero vector). Here it is always the
//! document's last token, which is what the code means to do.

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use lm_train::checkpoint::Checkpoint;
use lm_train::config::Precision;
use lm_train::model::{AwdLstm, Hidden};

use crate::config::{ClfConfig, HeadConfig};

/// The prefix of encoder parameters in the classifier (`SentenceEncoder.module`).
pub const ENC_PREFIX: &str = "0.module.";
/// fastai's alias of the embedding in a classifier state_dict.
pub const EMB_DP_ALIAS: &str = "0.module.encoder_dp.emb.weight";

/// One `LinBnDrop` of the head.
#[derive(Debug)]
pub struct HeadLayer {
    pub bn_weight: Tensor,
    pub bn_bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub p: f64,
    pub weight: Tensor,
    pub relu: bool,
}

pub struct ClfModel {
    pub vs: nn::VarStore,
    pub encoder: AwdLstm,
    pub head: Vec<HeadLayer>,
    pub y_range: Option<(f64, f64)>,
    pub bptt: usize,
    pub max_len: usize,
}

/// What a forward pass returns.
pub struct ClfOutput {
    /// batch × n_out, fp32 (after SigmoidRange for a bounded regression).
    pub out: Tensor,
    /// The sentence encoder's output over the kept chunks (batch × tokens × emb, fp32, zero
    /// where a row had not started): what fastai's RNNRegularizer (AR/TAR) acts on.
    pub enc_out: Tensor,
}

impl ClfModel {
    pub fn new(cfg: &ClfConfig, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = AwdLstm::new(&(&root / "0" / "module"), &cfg.encoder);
        let head = build_head(&(&root / "1" / "layers"), &cfg.head);
        ClfModel {
            vs,
            encoder,
            head,
            y_range: cfg.head.y_range,
            bptt: cfg.bptt,
            max_len: cfg.max_len,
        }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn n_layers(&self) -> usize {
        self.encoder.layers.len()
    }

    /// fastai's `awd_lstm_clas_split`: embedding, each LSTM layer, head.
    pub fn n_groups(&self) -> usize {
        self.n_layers() + 2
    }

    pub fn group_of(&self, name: &str) -> usize {
        if name.starts_with("1.") {
            return self.n_layers() + 1;
        }
        (0..self.n_layers())
            .find(|l| name.starts_with(&format!("{ENC_PREFIX}rnns.{l}.")))
            .map_or(0, |l| l + 1)
    }

    /// Every variable (BatchNorm running statistics included), sorted by name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Trainable parameters, sorted by name.
    pub fn named_params(&self) -> Vec<(String, Tensor)> {
        self.named_tensors()
            .into_iter()
            .filter(|(n, _)| !is_buffer(n))
            .collect()
    }

    pub fn n_params(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Copies the encoder of a language-model checkpoint (`0.*` → `0.module.*`).
    pub fn load_encoder(&self, lm: &Checkpoint) -> anyhow::Result<()> {
        let mp = lm.dir.join(lm_train::checkpoint::MODEL_FILE);
        tch::no_grad(|| {
            for (name, t) in self.named_tensors() {
                let Some(rest) = name.strip_prefix(ENC_PREFIX) else {
                    continue;
                };
                let lm_name = format!("0.{rest}");
                let Some(src) = lm.tensors.get(&lm_name) else {
                    anyhow::bail!(
                        "{}: missing tensor {lm_name} (not an AWD-LSTM language model?)",
                        mp.display()
                    );
                };
                if src.size() != t.size() {
                    anyhow::bail!(
                        "{}: tensor {lm_name} has shape {:?}, expected {:?}",
                        mp.display(),
                        src.size(),
                        t.size()
                    );
                }
                let mut t = t;
                t.f_copy_(src)?;
            }
            Ok(())
        })
    }

    /// Runs a batch of documents (token ids, longest first) through the encoder and the head.
    pub fn forward(&self, docs: &[Vec<i64>], train: bool, precision: Precision) -> ClfOutput {
        let enc_out_and_pool = self.encode(docs, train, precision);
        let (pooled, enc_out) = enc_out_and_pool;
        let mut x = pooled;
        for l in &self.head {
            x = x.batch_norm(
                Some(&l.bn_weight),
                Some(&l.bn_bias),
                Some(&l.running_mean),
                Some(&l.running_var),
                train,
                0.1,
                1e-5,
                false,
            );
            if train && l.p > 0.0 {
                x = x.dropout(l.p, true);
            }
            x = x.linear::<Tensor>(&l.weight, None);
            if l.relu {
                x = x.relu();
            }
        }
        if let Some((lo, hi)) = self.y_range {
            x = x.sigmoid() * (hi - lo) + lo;
        }
        ClfOutput { out: x, enc_out }
    }

    /// `SentenceEncoder` + `masked_concat_pool`: (batch × 3·emb pooled features, encoder
    /// output over the kept chunks), both fp32.
    pub fn encode(&self, docs: &[Vec<i64>], train: bool, precision: Precision) -> (Tensor, Tensor) {
        let device = self.device();
        let kind = precision.kind();
        let bs = docs.len();
        let bptt = self.bptt.max(1);
        let sl = docs.iter().map(Vec::len).max().unwrap_or(1).max(1);
        debug_assert!(
            docs.windows(2).all(|w| w[0].len() >= w[1].len()),
            "longest first"
        );
        let pad = self.encoder.cfg.pad_token;
        let lead: Vec<usize> = docs
            .iter()
            .map(|d| ((sl - d.len()) / bptt) * bptt)
            .collect();
        let mut ids = vec![pad; bs * sl];
        for (j, d) in docs.iter().enumerate() {
            ids[j * sl + lead[j]..j * sl + lead[j] + d.len()].copy_from_slice(d);
        }
        let x = Tensor::from_slice(&ids)
            .view([bs as i64, sl as i64])
            .to_device(device);
        // the first chunk whose outputs are kept: sl - i <= max_len
        let starts: Vec<usize> = (0..sl).step_by(bptt).collect();
        let kept_from = starts
            .iter()
            .position(|&i| sl - i <= self.max_len)
            .unwrap_or(starts.len() - 1);
        let kept_start = starts[kept_from];
        let mut hidden: Hidden = Vec::new();
        let mut rows = 0usize;
        let mut outs = Vec::new();
        for (k, &i) in starts.iter().enumerate() {
            let real_bs = lead.iter().filter(|&&l| l <= i).count();
            if real_bs > rows {
                let grow = self
                    .encoder
                    .zero_hidden((real_bs - rows) as i64, device, kind);
                hidden = if rows == 0 {
                    grow
                } else {
                    hidden
                        .iter()
                        .zip(grow)
                        .map(|((h, c), (h0, c0))| {
                            (Tensor::cat(&[h, &h0], 1), Tensor::cat(&[c, &c0], 1))
                        })
                        .collect()
                };
                rows = real_bs;
            }
            let len = (sl - i).min(bptt) as i64;
            let chunk = x.narrow(0, 0, rows as i64).narrow(1, i as i64, len);
            let (o, h) = if k < kept_from {
                let _g = tch::no_grad_guard();
                self.encoder.forward(&chunk, &hidden, train, precision)
            } else {
                self.encoder.forward(&chunk, &hidden, train, precision)
            };
            hidden = h;
            if k >= kept_from {
                let mut o = o.to_kind(Kind::Float);
                if rows < bs {
                    let z = Tensor::zeros(
                        [(bs - rows) as i64, len, o.size()[2]],
                        (Kind::Float, device),
                    );
                    o = Tensor::cat(&[o, z], 0);
                }
                outs.push(o);
            }
        }
        let out = Tensor::cat(&outs, 1); // bs × K × emb
        let kl = sl - kept_start;
        let mut mask = vec![0f32; bs * kl];
        let mut last = Vec::with_capacity(bs);
        for j in 0..bs {
            let (a, b) = (lead[j], lead[j] + docs[j].len());
            for p in a.max(kept_start)..b {
                mask[j * kl + p - kept_start] = 1.0;
            }
            last.push((b - 1).saturating_sub(kept_start) as i64);
        }
        let m = Tensor::from_slice(&mask)
            .view([bs as i64, kl as i64, 1])
            .to_device(device);
        let count = m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0);
        let avg = (&out * &m).sum_dim_intlist(1, false, Kind::Float) / count;
        let max = out
            .masked_fill(&m.eq(0.0), f64::NEG_INFINITY)
            .amax(1, false);
        let idx = Tensor::from_slice(&last)
            .to_device(device)
            .view([bs as i64, 1, 1])
            .expand([bs as i64, 1, out.size()[2]], false);
        let last_h = out.gather(1, &idx, false).squeeze_dim(1);
        (Tensor::cat(&[last_h, max, avg], 1), out)
    }
}

/// BatchNorm running statistics: saved with the model, never trained.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// BatchNorm affine parameters: trained without weight decay (fastai's `wd_bn_bias=False`).
pub fn is_bn_param(name: &str) -> bool {
    let p: Vec<&str> = name.split('.').collect();
    p.len() == 5 && p[0] == "1" && p[1] == "layers" && p[3] == "0" && !is_buffer(name)
}

fn build_head(p: &nn::Path, h: &HeadConfig) -> Vec<HeadLayer> {
    let n = h.dims.len() - 1;
    (0..n)
        .map(|i| {
            let (n_in, n_out) = (h.dims[i], h.dims[i + 1]);
            let lp = p / i;
            let bn = &lp / "0";
            let p_drop = h.ps[i];
            let lin = &lp / if p_drop != 0.0 { "2" } else { "1" };
            // PyTorch's Linear init (kaiming_uniform, a=√5): U(±1/√fan_in); fastai's
            // BatchNorm: weight 1, bias 1e-3.
            let k = 1.0 / (n_in as f64).sqrt();
            HeadLayer {
                bn_weight: bn.var("weight", &[n_in], Init::Const(1.0)),
                bn_bias: bn.var("bias", &[n_in], Init::Const(1e-3)),
                running_mean: bn.zeros_no_train("running_mean", &[n_in]),
                running_var: bn.ones_no_train("running_var", &[n_in]),
                p: p_drop,
                weight: lin.var("weight", &[n_out, n_in], Init::Uniform { lo: -k, up: k }),
                relu: i + 1 < n,
            }
        })
        .collect()
}
