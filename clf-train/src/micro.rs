//! A classifier step over micro-batches (gradient accumulation), for callers that must not
//! crash when a batch does not fit in memory: lr-find halves the micro-batch on an
//! out-of-memory error and runs the same step again, as lm-train does for language models.
//!
//! With one micro-batch this is exactly [`train_step`]. With several, each micro-batch's
//! task loss and AR/TAR are weighted by its share of the documents, so the gradient is the
//! batch's; BatchNorm in the head sees each micro-batch's statistics (as any gradient
//! accumulation does), and dropout masks are drawn per micro-batch.

use lm_train::config::Precision;
use lm_train::runtime;
use tch::{TchError, Tensor};

use crate::config::Task;
use crate::model::ClfModel;
use crate::optim::ClfOpt;
use crate::train::{loss, regularized, train_step, StepHyper, StepOut};

/// [`train_step`] with the batch's documents (`docs`, longest first; `y` their targets) run
/// `micro` at a time. An error (out of memory, from tch's fallible calls or as the panic its
/// other calls turn a C++ exception into, which the caller catches) leaves the weights and
/// optimizer state unchanged: the gradients are zeroed again by the next call.
#[allow(clippy::too_many_arguments)]
pub fn train_step_micro(
    model: &ClfModel,
    opt: &mut ClfOpt,
    docs: &[Vec<i64>],
    y: &Tensor,
    task: Task,
    hp: &StepHyper,
    precision: Precision,
    micro: usize,
) -> Result<StepOut, TchError> {
    let n = docs.len();
    let micro = micro.max(1);
    simulated_oom(micro.min(n))?;
    if micro >= n {
        return Ok(train_step(model, opt, docs, y, task, hp, precision));
    }
    opt.zero_grad();
    let (mut task_sum, mut total_sum) = (0.0f64, 0.0f64);
    let mut start = 0usize;
    while start < n {
        let end = (start + micro).min(n);
        let w = (end - start) as f64 / n as f64;
        let o = model.forward(&docs[start..end], true, precision);
        let ym = y.f_narrow(0, start as i64, (end - start) as i64)?;
        let task_loss = loss(task, &o.out, &ym);
        let total = regularized(&task_loss, &o.enc_out, hp);
        let (lv, tv) = (task_loss.double_value(&[]), total.double_value(&[]));
        task_sum += lv * w;
        total_sum += tv * w;
        if !lv.is_finite() || !tv.is_finite() {
            opt.zero_grad();
            return Ok(StepOut {
                train_loss: task_sum,
                total_loss: total_sum,
                grad_norm: None,
                stepped: false,
                adv: None,
            });
        }
        (total * w).f_backward()?;
        start = end;
    }
    let grad_norm = hp.clip.map(|c| opt.clip_grad_norm(c));
    opt.step(hp.lrs, hp.mom);
    Ok(StepOut {
        train_loss: task_sum,
        total_loss: total_sum,
        grad_norm,
        stepped: true,
        adv: None,
    })
}

/// `--simulate-oom-above N` (tests): a forward/backward over more than N documents fails as
/// an allocation would.
fn simulated_oom(n: usize) -> Result<(), TchError> {
    match runtime::simulated_oom_above() {
        Some(limit) if n > limit => Err(TchError::Torch(format!(
            "simulated: DefaultCPUAllocator: not enough memory: a micro-batch of {n} documents is above --simulate-oom-above {limit} (out of memory)"
        ))),
        _ => Ok(()),
    }
}
