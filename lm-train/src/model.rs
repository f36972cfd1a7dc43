//! fastai's `AWD_LSTM` encoder and `LinearDecoder` (fastai/text/models/awdlstm.py, core.py).
//!
//! Parameters live in a `VarStore` under fastai's `state_dict` names, so a checkpoint's
//! `model.safetensors` reads like fastai's: `0.encoder.weight`, `0.rnns.{l}.weight_hh_l0_raw`,
//! `0.rnns.{l}.module.weight_ih_l0`, `0.rnns.{l}.module.bias_ih_l0`, `0.rnns.{l}.module.bias_hh_l0`,
//! `1.decoder.bias` (and `1.decoder.weight` when not tied). The aliases fastai also saves for
//! the tied weight (`0.encoder_dp.emb.weight`, `1.decoder.weight`) are written by the
//! checkpoint code, not stored twice here.
//!
//! Regularisation as in fastai / Merity et al. (2017):
//! * EmbeddingDropout: whole rows of the embedding matrix, one mask per forward;
//! * RNNDropout: one mask per sequence (batch × 1 × features), on the embedding output
//!   (`input_p`), between layers (`hidden_p`) and before the decoder (`output_p`);
//! * WeightDropout: plain dropout on each layer's raw hidden-to-hidden weights
//!   (`weight_hh_l0_raw`) on every training forward, after which the fused LSTM kernel
//!   (`Tensor::lstm`, oneDNN on CPU, cuDNN on GPU) runs with the dropped copy.

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::config::{ModelConfig, Precision};

impl Precision {
    pub fn kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
        }
    }

    /// Bytes per element of the compute precision.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::Fp32 => 4,
            Precision::Bf16 | Precision::Fp16 => 2,
        }
    }
}

/// `dropout_mask`: a multiplicative mask of shape `sz` with zeros at probability `p`, the
/// rest `1/(1-p)`.
pub fn dropout_mask(sz: &[i64], p: f64, device: Device, kind: Kind) -> Tensor {
    let m = Tensor::empty(sz, (Kind::Float, device)).bernoulli_float_(1.0 - p) / (1.0 - p);
    if kind == Kind::Float {
        m
    } else {
        m.to_kind(kind)
    }
}

/// `RNNDropout`: the same mask for every time step of a (batch, seq, features) tensor.
pub fn rnn_dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    let s = x.size();
    let mut sz = vec![s[0], 1];
    sz.extend_from_slice(&s[2..]);
    x * dropout_mask(&sz, p, x.device(), x.kind())
}

/// One LSTM layer wrapped in fastai's `WeightDropout`.
#[derive(Debug)]
pub struct LstmLayer {
    pub w_ih: Tensor,
    pub w_hh_raw: Tensor,
    pub b_ih: Tensor,
    pub b_hh: Tensor,
}

/// Hidden state (h, c) per layer, each `1 × batch × features`.
pub type Hidden = Vec<(Tensor, Tensor)>;

/// fastai's `AWD_LSTM` (unidirectional).
#[derive(Debug)]
pub struct AwdLstm {
    pub cfg: ModelConfig,
    /// `0.encoder.weight`, vocab × emb.
    pub encoder: Tensor,
    pub layers: Vec<LstmLayer>,
}

impl AwdLstm {
    /// Builds the encoder under `p` (fastai: module `0`). Initialisation as PyTorch's LSTM
    /// (uniform ±1/√hidden) and fastai's embedding (uniform ±0.1).
    pub fn new(p: &nn::Path, cfg: &ModelConfig) -> Self {
        let rnns = p / "rnns";
        let layers = (0..cfg.n_layers)
            .map(|l| {
                let (n_in, n_out) = (cfg.layer_in(l), cfg.layer_out(l));
                let k = 1.0 / (n_out as f64).sqrt();
                let init = Init::Uniform { lo: -k, up: k };
                let lp = &rnns / l;
                let m = &lp / "module";
                LstmLayer {
                    w_hh_raw: lp.var("weight_hh_l0_raw", &[4 * n_out, n_out], init),
                    w_ih: m.var("weight_ih_l0", &[4 * n_out, n_in], init),
                    b_ih: m.var("bias_ih_l0", &[4 * n_out], init),
                    b_hh: m.var("bias_hh_l0", &[4 * n_out], init),
                }
            })
            .collect();
        let encoder = (p / "encoder").var(
            "weight",
            &[cfg.vocab_size, cfg.emb_sz],
            Init::Uniform { lo: -0.1, up: 0.1 },
        );
        AwdLstm {
            cfg: cfg.clone(),
            encoder,
            layers,
        }
    }

    /// Zero hidden state for a batch of `bs` (fastai's `reset`).
    pub fn zero_hidden(&self, bs: i64, device: Device, kind: Kind) -> Hidden {
        (0..self.cfg.n_layers)
            .map(|l| {
                let nh = self.cfg.layer_out(l);
                (
                    Tensor::zeros([1, bs, nh], (kind, device)),
                    Tensor::zeros([1, bs, nh], (kind, device)),
                )
            })
            .collect()
    }

    /// Embedding with EmbeddingDropout, then the input RNNDropout: batch × seq × emb (fp32).
    ///
    /// fastai scales whole rows of the weight and then looks words up; scaling the looked-up
    /// rows by the same per-word mask gives the same values and gradients without touching the
    /// whole vocab × emb matrix.
    pub fn embed(&self, words: &Tensor, train: bool) -> Tensor {
        let cfg = &self.cfg;
        let mut emb = Tensor::embedding(&self.encoder, words, cfg.pad_token, false, false);
        if train && cfg.embed_p > 0.0 {
            let mask = dropout_mask(
                &[cfg.vocab_size, 1],
                cfg.embed_p,
                self.encoder.device(),
                Kind::Float,
            );
            emb *= Tensor::embedding(&mask, words, -1, false, false);
        }
        rnn_dropout(&emb, cfg.input_p, train)
    }

    /// Runs the LSTM stack over `x` (batch × seq × emb, already embedded). Returns the last
    /// layer's output (before any output dropout) and the new hidden state, detached (fastai's
    /// truncated BPTT). Computation runs in `precision`; parameters stay fp32.
    pub fn forward_embedded(
        &self,
        x: &Tensor,
        hidden: &Hidden,
        train: bool,
        precision: Precision,
    ) -> (Tensor, Hidden) {
        let kind = precision.kind();
        let mut out = x.to_kind(kind);
        let n = self.layers.len();
        let mut new_hidden = Vec::with_capacity(n);
        for (l, (layer, (h0, c0))) in self.layers.iter().zip(hidden).enumerate() {
            let w_hh = if train && self.cfg.weight_p > 0.0 {
                layer.w_hh_raw.dropout(self.cfg.weight_p, true)
            } else {
                layer.w_hh_raw.shallow_clone()
            };
            let params = [
                layer.w_ih.to_kind(kind),
                w_hh.to_kind(kind),
                layer.b_ih.to_kind(kind),
                layer.b_hh.to_kind(kind),
            ];
            let hx = [h0.to_kind(kind), c0.to_kind(kind)];
            let (o, h, c) = out.lstm(&hx, &params, true, 1, 0.0, train, false, true);
            new_hidden.push((h.detach(), c.detach()));
            out = if l + 1 < n {
                rnn_dropout(&o, self.cfg.hidden_p, train)
            } else {
                o
            };
        }
        (out, new_hidden)
    }

    pub fn forward(
        &self,
        words: &Tensor,
        hidden: &Hidden,
        train: bool,
        precision: Precision,
    ) -> (Tensor, Hidden) {
        let x = self.embed(words, train);
        self.forward_embedded(&x, hidden, train, precision)
    }

    /// Layer groups for discriminative learning rates and freezing, as fastai's
    /// `awd_lstm_lm_split`: one group per LSTM layer (the embedding is added by the caller).
    pub fn layer_params(&self, l: usize) -> Vec<Tensor> {
        let x = &self.layers[l];
        vec![
            x.w_ih.shallow_clone(),
            x.w_hh_raw.shallow_clone(),
            x.b_ih.shallow_clone(),
            x.b_hh.shallow_clone(),
        ]
    }
}

/// What a language-model forward returns (fastai's `LinearDecoder` output triple).
pub struct LmOutput {
    /// batch × seq × vocab, fp32.
    pub logits: Tensor,
    /// Last layer output before dropout (TAR acts on it).
    pub raw_out: Tensor,
    /// Last layer output after the output dropout (AR acts on it).
    pub dp_out: Tensor,
    pub hidden: Hidden,
}

/// The encoder's outputs without the decoder (see [`LanguageModel::features`]).
pub struct Features {
    /// Last layer output before dropout (TAR acts on it), in the compute precision.
    pub raw_out: Tensor,
    /// Last layer output after the output dropout (AR and the decoder act on it).
    pub dp_out: Tensor,
    pub hidden: Hidden,
}

/// `SequentialRNN(AWD_LSTM, LinearDecoder)` with its `VarStore`.
pub struct LanguageModel {
    pub vs: nn::VarStore,
    pub encoder: AwdLstm,
    /// `1.decoder.weight` when not tied to the embedding.
    pub dec_weight: Option<Tensor>,
    /// `1.decoder.bias` (zeros at init).
    pub dec_bias: Option<Tensor>,
}

impl LanguageModel {
    pub fn new(cfg: &ModelConfig, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = AwdLstm::new(&(&root / "0"), cfg);
        let dec = &root / "1" / "decoder";
        let dec_weight = (!cfg.tie_weights).then(|| {
            dec.var(
                "weight",
                &[cfg.vocab_size, cfg.emb_sz],
                Init::Uniform { lo: -0.1, up: 0.1 },
            )
        });
        let dec_bias = cfg
            .out_bias
            .then(|| dec.var("bias", &[cfg.vocab_size], Init::Const(0.0)));
        LanguageModel {
            vs,
            encoder,
            dec_weight,
            dec_bias,
        }
    }

    pub fn cfg(&self) -> &ModelConfig {
        &self.encoder.cfg
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn decoder_weight(&self) -> &Tensor {
        self.dec_weight.as_ref().unwrap_or(&self.encoder.encoder)
    }

    /// Whole forward: the encoder, the output dropout and the decoder. The logits of a batch
    /// are tokens × vocab floats (bs 64 × bptt 72 × 38k words = 708 MB, and as much again for
    /// their gradient), so training and evaluation use [`LanguageModel::features`] and decode
    /// in chunks of tokens instead ([`crate::train`]); this is for generation and tests.
    pub fn forward(
        &self,
        words: &Tensor,
        hidden: &Hidden,
        train: bool,
        precision: Precision,
    ) -> LmOutput {
        let f = self.features(words, hidden, train, precision);
        let logits = self.decode(&f.dp_out, precision);
        LmOutput {
            logits,
            raw_out: f.raw_out,
            dp_out: f.dp_out,
            hidden: f.hidden,
        }
    }

    /// The encoder and the output dropout: everything but the decoder.
    pub fn features(
        &self,
        words: &Tensor,
        hidden: &Hidden,
        train: bool,
        precision: Precision,
    ) -> Features {
        let (raw_out, hidden) = self.encoder.forward(words, hidden, train, precision);
        let dp_out = rnn_dropout(&raw_out, self.cfg().output_p, train);
        Features {
            raw_out,
            dp_out,
            hidden,
        }
    }

    /// `LinearDecoder`: logits (fp32) of features `x` (… × emb), computed in `precision`.
    pub fn decode(&self, x: &Tensor, precision: Precision) -> Tensor {
        let kind = precision.kind();
        let w = self.decoder_weight().to_kind(kind);
        let b = self.dec_bias.as_ref().map(|b| b.to_kind(kind));
        x.to_kind(kind).linear(&w, b.as_ref()).to_kind(Kind::Float)
    }

    /// fastai's `awd_lstm_lm_split`: `[layer 0] [layer 1] ... [embedding + decoder]`, as the
    /// group index of each parameter name.
    pub fn group_of(&self, name: &str) -> usize {
        let n = self.encoder.layers.len();
        (0..n)
            .find(|l| name.starts_with(&format!("0.rnns.{l}.")))
            .unwrap_or(n)
    }

    pub fn n_groups(&self) -> usize {
        self.encoder.layers.len() + 1
    }

    /// Parameter names, in a fixed order (sorted), with their tensors.
    /// [`named_params`](Self::named_params) with each one's layer group, as
    /// [`AdamW::new`](crate::optim::AdamW::new) takes them.
    pub fn grouped_params(&self) -> Vec<(String, Tensor, usize)> {
        self.named_params()
            .into_iter()
            .map(|(n, t)| {
                let g = self.group_of(&n);
                (n, t, g)
            })
            .collect()
    }

    pub fn named_params(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn n_params(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }
}
