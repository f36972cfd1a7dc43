//! The step's gradient is the gradient of fastai's loss (cross-entropy + AR + TAR over the
//! whole batch), however the step is cut: decoder in chunks of tokens, batch in micro-batches
//! of streams. Dropout off, so every variant sees the same function.

use lm_train::config::{ModelConfig, Precision};
use lm_train::model::LanguageModel;
use lm_train::optim::AdamW;
use lm_train::step::{train_step_micro, StepHyper};
use tch::{Device, Kind, Tensor};

fn model() -> LanguageModel {
    tch::manual_seed(3);
    let mut cfg = ModelConfig::fastai_lm(40, 0.0);
    (cfg.emb_sz, cfg.n_hid, cfg.n_layers) = (8, 12, 2);
    LanguageModel::new(&cfg, Device::Cpu)
}

fn opt(m: &LanguageModel) -> AdamW {
    let named = m
        .named_params()
        .into_iter()
        .map(|(n, t)| {
            let g = m.group_of(&n);
            (n, t, g)
        })
        .collect();
    AdamW::new(named, m.n_groups(), 0.99, 1e-5, 0.0)
}

fn grads(m: &LanguageModel) -> Vec<Tensor> {
    m.named_params()
        .iter()
        .map(|(_, p)| p.grad().copy())
        .collect()
}

fn max_diff(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

#[test]
fn chunked_and_accumulated_gradients_equal_the_full_batch_gradient() {
    let m = model();
    let (bs, sl) = (8i64, 10i64);
    tch::manual_seed(5);
    let ids = Tensor::randint(40, [bs, sl + 1], (Kind::Int64, Device::Cpu));
    let x = ids.narrow(1, 0, sl);
    let y = ids.narrow(1, 1, sl);
    // a non-zero starting state, as mid-epoch
    let h: Vec<(Tensor, Tensor)> = m
        .encoder
        .zero_hidden(bs, Device::Cpu, Kind::Float)
        .into_iter()
        .map(|(a, c)| (a.rand_like() - 0.5, c.rand_like() - 0.5))
        .collect();
    let (alpha, beta) = (2.0, 1.0);

    // reference: fastai's loss on the whole batch's logits, one backward
    let mut o = opt(&m);
    o.zero_grad();
    let out = m.forward(&x, &h, true, Precision::Fp32);
    let ce = out
        .logits
        .view([-1, 40])
        .cross_entropy_for_logits(&y.reshape([-1]));
    let r = &out.raw_out;
    let d = r.narrow(1, 1, sl - 1) - r.narrow(1, 0, sl - 1);
    let loss =
        &ce + out.dp_out.square().mean(Kind::Float) * alpha + d.square().mean(Kind::Float) * beta;
    loss.backward();
    let reference = grads(&m);
    let ref_h = out.hidden;

    // lr 0 and no weight decay: the step leaves the weights alone and the gradients in .grad
    let lrs = vec![0.0; m.n_groups()];
    let hp = StepHyper {
        lrs: &lrs,
        mom: 0.9,
        alpha,
        beta,
        clip: None,
    };
    for (chunk, micro) in [
        (None, 8),
        (Some(7), 8),
        (Some(16), 3),
        (Some(5), 1),
        (None, 4),
    ] {
        lm_train::memory::set_decoder_chunk_tokens(chunk);
        let mut o = opt(&m);
        let s =
            train_step_micro(&m, &mut o, &x, &y, &h, &hp, Precision::Fp32, micro, None).unwrap();
        assert!(s.applied);
        assert!(
            (s.train_loss - ce.double_value(&[])).abs() < 1e-5,
            "chunk {chunk:?} micro {micro}"
        );
        assert!(
            (s.loss - loss.double_value(&[])).abs() < 1e-5,
            "chunk {chunk:?} micro {micro}"
        );
        let dg = max_diff(&grads(&m), &reference);
        assert!(
            dg < 1e-6,
            "chunk {chunk:?} micro {micro}: max gradient difference {dg}"
        );
        for ((a, c), (ra, rc)) in s.hidden.iter().zip(&ref_h) {
            assert!(
                max_diff(
                    &[a.shallow_clone(), c.shallow_clone()],
                    &[ra.shallow_clone(), rc.shallow_clone()]
                ) < 1e-6
            );
        }
    }
    lm_train::memory::set_decoder_chunk_tokens(None);
}
