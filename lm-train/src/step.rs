//! One optimiser step of the language model: forward with dropout, cross-entropy + AR + TAR
//! (fastai's `RNNRegularizer`), backward, optional clipping, AdamW step; with gradient
//! accumulation over micro-batches, the decoder in chunks, and fp16 loss scaling.
//!
//! **Decoder in chunks.** The logits of a batch are tokens × vocab floats: 708 MB for bs 64 ×
//! bptt 72 × 38k words, and log-softmax, its gradient and the logits' gradient as much again
//! each (fastai holds them all). The step runs the encoder once, then computes the decoder and
//! the cross-entropy forward and backward by hand, chunk by chunk of
//! [`crate::memory::decoder_chunk_tokens`] tokens: only one chunk's logits exist at a time,
//! the decoder's weight and bias gradients are accumulated in place, and the gradient with
//! respect to the encoder's output is pushed through the encoder by one backward of the
//! surrogate `Σ out·∂L/∂out + AR + TAR`. The gradients are those of the unchunked loss (a
//! test compares them).
//!
//! **Micro-batches.** A batch of `bs` streams can be run as slices of `micro_bs` rows; each
//! slice's loss is weighted by its share of the batch (rows / bs: every term is a mean over
//! rows × time × features), so the accumulated gradient is the big batch's. Each stream keeps
//! its own hidden state, so the slices need nothing from each other.
//!
//! **fp16** (CUDA): the loss is multiplied by a dynamic scale before backward; the gradients
//! are unscaled before clipping and the step; a step with an infinite or NaN gradient is
//! skipped and the scale halved; after 2000 good steps it doubles (PyTorch's `GradScaler`
//! defaults).

use serde::{Deserialize, Serialize};
use tch::{Kind, TchError, Tensor};

use crate::config::Precision;
use crate::memory::{decoder_chunk_tokens, micro_ranges};
use crate::model::{Hidden, LanguageModel};
use crate::optim::AdamW;
use crate::runtime;

/// Hyper-parameters of one optimiser step (lm-train's, and clf-train's with AR/TAR on the
/// sentence encoder's output).
#[derive(Debug, Clone, Copy)]
pub struct StepHyper<'a> {
    /// Learning rate of each layer group.
    pub lrs: &'a [f64],
    /// Adam β1.
    pub mom: f64,
    /// AR (activation regularisation) weight.
    pub alpha: f64,
    /// TAR (temporal activation regularisation) weight.
    pub beta: f64,
    /// Clip the global gradient norm to this value.
    pub clip: Option<f64>,
}

impl<'a> StepHyper<'a> {
    pub fn new(lrs: &'a [f64], mom: f64, alpha: f64, beta: f64, clip: Option<f64>) -> Self {
        StepHyper {
            lrs,
            mom,
            alpha,
            beta,
            clip,
        }
    }
}

/// What [`train_step`] did.
pub struct StepOutput {
    /// Cross-entropy of the batch (what fastai's recorder reports: no AR/TAR).
    pub train_loss: f64,
    /// The loss that was differentiated (cross-entropy + AR + TAR).
    pub loss: f64,
    /// False when the loss was not finite: then the parameters and the optimizer state were
    /// not changed (no step).
    pub applied: bool,
    /// Gradient norm before clipping (with `clip`).
    pub grad_norm: Option<f64>,
    /// Hidden state after the batch (detached), for the next batch.
    pub hidden: Hidden,
    /// fp16 only: the gradients overflowed, the step was skipped and the scale lowered (not a
    /// divergence).
    pub overflow: bool,
}

/// Dynamic loss scale for fp16 (PyTorch `GradScaler` defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub good_steps: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
        }
    }
}

impl LossScaler {
    pub const GROWTH_INTERVAL: u64 = 2000;

    fn update(&mut self, overflow: bool) {
        if overflow {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
        } else {
            self.good_steps += 1;
            if self.good_steps >= Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        }
    }
}

/// Sums of one micro-batch (detached scalars, fp32).
struct MicroOut {
    /// Cross-entropy summed over the micro-batch's tokens.
    ce_sum: Tensor,
    /// AR + TAR, already weighted by the micro-batch's share.
    reg: Tensor,
    hidden: Hidden,
}

/// Forward and backward of rows `x` (with their hidden state `h`): gradients of
/// `weight × (CE mean + AR + TAR) × loss_scale` accumulate into the parameters' `.grad`.
#[allow(clippy::too_many_arguments)]
fn micro_backward(
    model: &LanguageModel,
    x: &Tensor,
    y: &Tensor,
    h: &Hidden,
    hp: &StepHyper,
    precision: Precision,
    weight: f64,
    loss_scale: f64,
) -> Result<MicroOut, TchError> {
    let kind = precision.kind();
    let f = model.features(x, h, true, precision);
    let size = f.dp_out.size();
    let (b, sl, e) = (size[0], size[1], size[2]);
    let ntok = b * sl;
    // The decoder and the cross-entropy, forward and backward by hand, chunk by chunk: for
    // logits z = x·Wᵀ + b of a chunk, ∂(Σ CE)/∂z = softmax(z) − onehot(y), computed in place
    // in the logits' buffer; then ∂W += gᵀ·x and ∂b += Σ g (fp32, in place in the
    // parameters' gradients) and ∂x = g·W. Autograd would allocate and free a vocab × emb
    // gradient per chunk; this allocates nothing per chunk but the logits.
    let flat = f.dp_out.detach().reshape([ntok, e]);
    let yf = y.reshape([ntok, 1]);
    let w = model.decoder_weight();
    let bias = model.dec_bias.as_ref();
    let wk = w.detach().to_kind(kind);
    let bk = bias.map(|b| b.detach().to_kind(kind));
    let train_w = w.requires_grad();
    let train_b = bias.is_some_and(|b| b.requires_grad());
    let (mut gw, mut gb) = (
        train_w.then(|| ensure_grad(w)),
        if train_b { bias.map(ensure_grad) } else { None },
    );
    let gfeat = Tensor::f_empty([ntok, e], (kind, x.device()))?;
    let scale = weight * loss_scale / ntok as f64;
    let chunk = decoder_chunk_tokens(model.cfg().vocab_size, model.device().is_cuda());
    let mut ce_sum = Tensor::zeros([], (Kind::Float, x.device()));
    let _ng = tch::no_grad_guard();
    let mut a = 0;
    while a < ntok {
        let n = chunk.min(ntok - a);
        let xc = flat.narrow(0, a, n);
        let yc = yf.narrow(0, a, n);
        let mut z = xc.f_linear(&wk, bk.as_ref())?.to_kind(Kind::Float);
        let lse = z.f_logsumexp([1], true)?;
        ce_sum += (&lse - z.gather(1, &yc, false)).sum(Kind::Float);
        let _ = z.f_sub_(&lse)?.f_exp_()?;
        let _ = z.f_scatter_add_(
            1,
            &yc,
            &Tensor::full([n, 1], -1.0, (Kind::Float, x.device())),
        )?;
        let _ = z.f_mul_scalar_(scale)?;
        let zk = z.to_kind(kind);
        let _ = zk.f_mm_out(&gfeat.narrow(0, a, n), &wk)?;
        if let Some(gw) = gw.as_mut() {
            if kind == Kind::Float {
                let _ = gw.f_addmm_(&zk.tr(), &xc)?;
            } else {
                let _ = gw.f_add_(&zk.tr().f_mm(&xc)?.to_kind(Kind::Float))?;
            }
        }
        if let Some(gb) = gb.as_mut() {
            let _ = gb.f_add_(&z.sum_dim_intlist(0, false, Kind::Float))?;
        }
        a += n;
    }
    drop(_ng);
    drop(flat);
    // the surrogate whose gradient through the encoder is the decoder's gradient
    let mut sur = (&f.dp_out * gfeat.view([b, sl, e])).sum(Kind::Float);
    let mut reg = Tensor::zeros([], (Kind::Float, x.device()));
    if hp.alpha != 0.0 {
        reg += f.dp_out.to_kind(Kind::Float).square().mean(Kind::Float) * (hp.alpha * weight);
    }
    if hp.beta != 0.0 && sl > 1 {
        let r = f.raw_out.to_kind(Kind::Float);
        let d = r.narrow(1, 1, sl - 1) - r.narrow(1, 0, sl - 1);
        reg += d.square().mean(Kind::Float) * (hp.beta * weight);
    }
    sur += &reg * loss_scale;
    sur.f_backward()?;
    Ok(MicroOut {
        ce_sum,
        reg: reg.detach(),
        hidden: f.hidden,
    })
}

/// One training step of the language model on batch `(x, y)` from hidden state `h`, in one
/// forward/backward. The one step shared by `lm-train`'s loop and `lr-find`. The caller seeds
/// torch's generator first (dropout masks) and decides what a non-finite loss means.
pub fn train_step(
    model: &LanguageModel,
    opt: &mut AdamW,
    x: &Tensor,
    y: &Tensor,
    h: &Hidden,
    hp: &StepHyper,
    precision: Precision,
) -> StepOutput {
    let bs = x.size()[0] as usize;
    train_step_micro(model, opt, x, y, h, hp, precision, bs, None).unwrap_or_else(|e| panic!("{e}"))
}

/// [`train_step`] with the batch run as micro-batches of `micro_bs` rows (gradient
/// accumulation) and, for fp16, loss scaling. An error (e.g. out of memory) leaves the
/// parameters and optimizer state unchanged (gradients are zeroed by the next step).
#[allow(clippy::too_many_arguments)]
pub fn train_step_micro(
    model: &LanguageModel,
    opt: &mut AdamW,
    x: &Tensor,
    y: &Tensor,
    h: &Hidden,
    hp: &StepHyper,
    precision: Precision,
    micro_bs: usize,
    scaler: Option<&mut LossScaler>,
) -> Result<StepOutput, TchError> {
    let bs = x.size()[0] as usize;
    let loss_scale = scaler.as_ref().map_or(1.0, |s| s.scale);
    opt.zero_grad();
    let ranges = micro_ranges(bs, micro_bs);
    let mut ce_sum = Tensor::zeros([], (Kind::Float, x.device()));
    let mut reg = Tensor::zeros([], (Kind::Float, x.device()));
    let mut hiddens: Vec<Hidden> = Vec::with_capacity(ranges.len());
    let ntok = x.numel() as f64;
    for &(r0, r1) in &ranges {
        let n = r1 - r0;
        simulated_oom(n)?;
        let (xm, ym, hm) = if ranges.len() == 1 {
            (x.shallow_clone(), y.shallow_clone(), clone_hidden(h))
        } else {
            let (r0, n) = (r0 as i64, n as i64);
            let hm = h
                .iter()
                .map(|(a, c)| {
                    (
                        a.narrow(1, r0, n).contiguous(),
                        c.narrow(1, r0, n).contiguous(),
                    )
                })
                .collect();
            (x.narrow(0, r0, n), y.narrow(0, r0, n), hm)
        };
        let weight = n as f64 / bs as f64;
        let m = micro_backward(model, &xm, &ym, &hm, hp, precision, weight, loss_scale)?;
        ce_sum += m.ce_sum;
        reg += m.reg;
        hiddens.push(m.hidden);
    }
    let hidden = if hiddens.len() == 1 {
        hiddens.pop().expect("one")
    } else {
        (0..hiddens[0].len())
            .map(|l| {
                let hs: Vec<&Tensor> = hiddens.iter().map(|hh| &hh[l].0).collect();
                let cs: Vec<&Tensor> = hiddens.iter().map(|hh| &hh[l].1).collect();
                (Tensor::cat(&hs, 1), Tensor::cat(&cs, 1))
            })
            .collect()
    };
    let train_loss = ce_sum.double_value(&[]) / ntok;
    let loss = train_loss + reg.double_value(&[]);
    // Not stepped: a non-finite loss (overflow false), or fp16 gradients that overflowed
    // (the scaler backs off).
    let skipped = if !train_loss.is_finite() || !loss.is_finite() {
        Some(false)
    } else if let Some(s) = scaler {
        let finite = opt.unscale_grads(s.scale);
        s.update(!finite);
        (!finite).then_some(true)
    } else {
        None
    };
    if let Some(overflow) = skipped {
        return Ok(StepOutput {
            train_loss,
            loss,
            applied: false,
            grad_norm: None,
            hidden,
            overflow,
        });
    }
    let grad_norm = hp.clip.map(|c| opt.clip_grad_norm(c));
    opt.step(hp.lrs, hp.mom);
    Ok(StepOutput {
        train_loss,
        loss,
        applied: true,
        grad_norm,
        hidden,
        overflow: false,
    })
}

/// The gradient buffer of `p`, created (zeros) if the parameter has none yet, so that
/// gradients can be added to it in place.
fn ensure_grad(p: &Tensor) -> Tensor {
    let g = p.grad();
    if g.defined() {
        return g;
    }
    tch::with_grad(|| (p * 0.0).sum(Kind::Float).backward());
    p.grad()
}

fn clone_hidden(h: &Hidden) -> Hidden {
    h.iter()
        .map(|(a, c)| (a.shallow_clone(), c.shallow_clone()))
        .collect()
}

/// Forward + backward of a `micro_bs` × `bptt` batch of random ids from a zero state, then
/// gradients zeroed: what `--bs auto` runs to see whether a micro-batch fits. No parameter
/// or optimizer state changes.
/// `--simulate-oom-above N` (tests): a forward/backward over more than N streams fails as an
/// allocation would.
fn simulated_oom(n: usize) -> Result<(), TchError> {
    match runtime::simulated_oom_above() {
        Some(limit) if n > limit => Err(TchError::Torch(format!(
            "simulated: DefaultCPUAllocator: not enough memory: a micro-batch of {n} streams is above --simulate-oom-above {limit} (out of memory)"
        ))),
        _ => Ok(()),
    }
}

pub fn probe(
    model: &LanguageModel,
    opt: &mut AdamW,
    micro_bs: usize,
    bptt: usize,
    precision: Precision,
) -> Result<(), TchError> {
    simulated_oom(micro_bs)?;
    let device = model.device();
    let v = model.cfg().vocab_size;
    let ids = Tensor::f_randint(v, [micro_bs as i64, bptt as i64 + 1], (Kind::Int64, device))?;
    let x = ids.narrow(1, 0, bptt as i64);
    let y = ids.narrow(1, 1, bptt as i64);
    let h = model
        .encoder
        .zero_hidden(micro_bs as i64, device, precision.kind());
    let hp = StepHyper::new(&[], 0.0, 2.0, 1.0, None);
    opt.zero_grad();
    let r = micro_backward(model, &x, &y, &h, &hp, precision, 1.0, 1.0).map(|_| ());
    opt.zero_grad();
    r
}
