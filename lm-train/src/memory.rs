//! Memory accounting and the batch-size policy: `--dry-run`'s estimate, `--bs auto`'s
//! probes, and the out-of-memory back-off.
//!
//! A training step holds, besides the runtime (libtorch's code and allocator caches):
//!
//! * parameters, their gradients and Adam's two moments: 4 × 4 bytes per parameter (fp32
//!   master weights and state whatever the compute precision);
//! * activations saved for backward, linear in the tokens of a micro-batch (micro_bs × bptt):
//!   the embedding and its dropouts, each LSTM layer's input, output and oneDNN/cuDNN
//!   workspace (gates and states of every time step), the dropout outputs between layers, the
//!   last layer's outputs for AR/TAR, and the gradient buffers of the layer being
//!   back-propagated;
//! * the decoder's logits, which do not grow with the batch: they are computed, reduced to the
//!   loss and back-propagated in chunks of [`decoder_chunk_tokens`] tokens (fastai holds all
//!   of them: bs 64 × bptt 72 × 38k words is 708 MB, twice with their gradient).
//!
//! The per-token constants were checked against measured peaks (VmHWM after a probe step) on
//! the standard and tiny configurations; the estimate is meant to be within about 25%, and
//! `--bs auto` on the CPU uses the measured peak of each probe when the kernel lets us reset
//! it (`/proc/self/clear_refs`), the estimate otherwise.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::config::{ModelConfig, Precision};

/// Elements of one chunk of decoder logits: 4 Mi floats (16 MB) on the CPU, where larger
/// chunks buy no speed, 64 Mi on CUDA.
pub fn decoder_chunk_elems(cuda: bool) -> i64 {
    if cuda {
        1 << 26
    } else {
        1 << 22
    }
}

static CHUNK_OVERRIDE: AtomicI64 = AtomicI64::new(0);

/// Tokens per decoder chunk for a vocab of `v` words.
pub fn decoder_chunk_tokens(v: i64, cuda: bool) -> i64 {
    match CHUNK_OVERRIDE.load(Ordering::Relaxed) {
        0 => (decoder_chunk_elems(cuda) / v.max(1)).max(16),
        n => n,
    }
}

/// Forces the decoder chunk to `n` tokens (tests of the chunked loss); None restores the
/// default.
pub fn set_decoder_chunk_tokens(n: Option<i64>) {
    CHUNK_OVERRIDE.store(n.unwrap_or(0).max(0), Ordering::Relaxed);
}

/// The estimate for one configuration (bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct MemEstimate {
    pub params: u64,
    pub param_bytes: u64,
    pub grad_bytes: u64,
    /// Adam's grad_avg and sqr_avg.
    pub optimizer_bytes: u64,
    pub activation_bytes_per_token: u64,
    /// micro_bs × bptt × per token.
    pub activation_bytes: u64,
    /// Logits, log-probabilities and their gradients for one decoder chunk.
    pub decoder_bytes: u64,
    pub micro_bs: u64,
    pub bptt: u64,
}

impl MemEstimate {
    /// Everything the model and one training step add to the process.
    pub fn total(&self) -> u64 {
        self.param_bytes
            + self.grad_bytes
            + self.optimizer_bytes
            + self.activation_bytes
            + self.decoder_bytes
    }

    /// The part that does not depend on the micro-batch.
    pub fn fixed(&self) -> u64 {
        self.total() - self.activation_bytes
    }
}

/// Parameters of the AWD-LSTM language model of `cfg` (tied decoder counted once).
pub fn n_params(cfg: &ModelConfig) -> u64 {
    let mut n = (cfg.vocab_size * cfg.emb_sz) as u64;
    for l in 0..cfg.n_layers {
        let (i, o) = (cfg.layer_in(l) as u64, cfg.layer_out(l) as u64);
        n += 4 * o * (i + o) + 8 * o;
    }
    if !cfg.tie_weights {
        n += (cfg.vocab_size * cfg.emb_sz) as u64;
    }
    if cfg.out_bias {
        n += cfg.vocab_size as u64;
    }
    n
}

/// Activation bytes saved per token of a training micro-batch (see the module docs).
pub fn activation_bytes_per_token(cfg: &ModelConfig, precision: Precision) -> u64 {
    let k = precision.bytes();
    let f = 4u64;
    let e = cfg.emb_sz as u64;
    // embedding lookup, embedding-dropout and input-dropout outputs (fp32), the cast input
    let mut b = 3 * f * e + if k == f { 0 } else { k * e };
    let mut widest_layer = 0u64;
    for l in 0..cfg.n_layers {
        let (i, o) = (cfg.layer_in(l) as u64, cfg.layer_out(l) as u64);
        // input and output kept for backward; workspace: 4 gates + c + h per time step (fp32
        // accumulators); the cast copy of the output
        b += k * (i + o) + 6 * f * o + k * o;
        if l + 1 < cfg.n_layers {
            b += k * o; // RNNDropout between layers
        }
        widest_layer = widest_layer.max(f * (2 * (i + o) + 4 * o));
    }
    // raw and dropped-out last outputs, fp32 copies for AR/TAR and the TAR difference
    b += 2 * k * e + 3 * f * e;
    // gradients in flight while one layer is back-propagated
    b + widest_layer
}

/// Estimate for `cfg` trained with micro-batches of `micro_bs` streams of `bptt` tokens.
pub fn estimate(
    cfg: &ModelConfig,
    precision: Precision,
    micro_bs: usize,
    bptt: usize,
    cuda: bool,
) -> MemEstimate {
    let params = n_params(cfg);
    let per_tok = activation_bytes_per_token(cfg, precision);
    let tokens = (micro_bs * bptt) as u64;
    let chunk = decoder_chunk_tokens(cfg.vocab_size, cuda) as u64;
    let chunk = chunk.min(tokens.max(1));
    // logits (compute precision and fp32), log-softmax, and the gradient of each
    let decoder_bytes = chunk * cfg.vocab_size as u64 * (4 * 4 + precision.bytes());
    MemEstimate {
        params,
        param_bytes: 4 * params,
        grad_bytes: 4 * params,
        optimizer_bytes: 8 * params,
        activation_bytes_per_token: per_tok,
        activation_bytes: per_tok * tokens,
        decoder_bytes,
        micro_bs: micro_bs as u64,
        bptt: bptt as u64,
    }
}

/// The largest micro-batch ≤ `effective` whose estimate plus `runtime` fits in `budget`
/// (at least 1).
pub fn largest_fitting(
    cfg: &ModelConfig,
    precision: Precision,
    effective: usize,
    bptt: usize,
    cuda: bool,
    runtime: u64,
    budget: u64,
) -> usize {
    let fits = |m: usize| runtime + estimate(cfg, precision, m, bptt, cuda).total() <= budget;
    // the estimate is linear in m: search the largest m that fits
    let (mut lo, mut hi) = (1usize, effective.max(1));
    if fits(hi) {
        return hi;
    }
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Micro-batch sizes `--bs auto` probes, increasing: powers of two below `effective`, then
/// `effective` itself.
pub fn probe_sizes(effective: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut m = 1;
    while m < effective {
        v.push(m);
        m *= 2;
    }
    v.push(effective.max(1));
    v
}

/// Row ranges of the micro-batches of a batch of `bs` streams: `⌈bs / micro⌉` slices of
/// `micro` rows, the last one shorter when `micro` does not divide `bs`.
pub fn micro_ranges(bs: usize, micro: usize) -> Vec<(usize, usize)> {
    let micro = micro.clamp(1, bs.max(1));
    (0..bs)
        .step_by(micro)
        .map(|r0| (r0, (r0 + micro).min(bs)))
        .collect()
}

/// Micro-batches per optimizer step.
pub fn accum_steps(bs: usize, micro: usize) -> usize {
    micro_ranges(bs, micro).len()
}

/// The back-off after an out-of-memory error at micro-batch `micro`: half of it (so twice the
/// accumulation), or None when it is already 1.
pub fn back_off(micro: usize) -> Option<usize> {
    (micro > 1).then_some(micro / 2)
}

/// How a step run by [`retry_halving`] failed: out of memory even at a micro-batch of 1, or
/// another error (the first line of each message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFailure {
    OutOfMemory(String),
    Other(String),
}

/// Runs `step(micro)` until it succeeds: an allocation failure (an error from tch's `f_`
/// calls, or the panic its other calls turn a C++ exception into) must leave the weights as
/// they were, and then the micro-batch is halved (`backed_off(old, new, first line)` is told)
/// and the same step runs again. lm-train, and lr-find for language models and classifiers,
/// step through it.
pub fn retry_halving<T>(
    micro: &mut usize,
    mut step: impl FnMut(usize) -> Result<T, tch::TchError>,
    mut backed_off: impl FnMut(usize, usize, &str) -> anyhow::Result<()>,
) -> anyhow::Result<Result<T, StepFailure>> {
    loop {
        let m = *micro;
        let msg = match crate::runtime::catch_torch_panic(|| step(m)) {
            Ok(Ok(o)) => return Ok(Ok(o)),
            Ok(Err(e)) => e.to_string(),
            Err(p) => p,
        };
        let first = msg.lines().next().unwrap_or("").to_string();
        match (is_oom(&msg), back_off(m)) {
            (true, Some(smaller)) => {
                *micro = smaller;
                backed_off(m, smaller, &first)?;
            }
            (true, None) => return Ok(Err(StepFailure::OutOfMemory(first))),
            (false, _) => return Ok(Err(StepFailure::Other(first))),
        }
    }
}

/// True when a torch error message reports an allocation failure (CUDA's caching allocator,
/// cuDNN/cuBLAS workspaces, the CPU allocator).
pub fn is_oom(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("out of memory")
        || m.contains("can't allocate memory")
        || m.contains("not enough memory")
        || m.contains("cudnn_status_alloc_failed")
        || m.contains("cublas_status_alloc_failed")
}

/// `MemAvailable` of /proc/meminfo, in bytes.
pub fn mem_available() -> Option<u64> {
    meminfo_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
}

fn meminfo_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Default CPU budget for `--bs auto`: 80% of the memory available now.
pub fn default_budget() -> Option<u64> {
    mem_available().map(|b| b / 5 * 4)
}

/// Current resident set size (VmRSS) in bytes.
pub fn current_rss() -> Option<u64> {
    meminfo_field(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmRSS:",
    )
}

/// Peak resident set size (VmHWM) in bytes.
pub fn peak_rss() -> Option<u64> {
    meminfo_field(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmHWM:",
    )
}

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0: `echo 5 > /proc/self/clear_refs`), so
/// the next [`peak_rss`] measures what happens from now on. False when not permitted.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Human-readable bytes (MiB / GiB).
pub fn human(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// Training FLOPs per token (forward + backward = 3 × forward): each LSTM layer's two
/// matmuls per time step (8·out·(in+out)) and the decoder (2·emb·vocab). The standard config
/// with fastai's IMDb-sample vocab (7,080) gives 138.5 MFLOP/token.
pub fn train_flops_per_token(cfg: &ModelConfig) -> f64 {
    let mut f = 0.0;
    for l in 0..cfg.n_layers {
        let (i, o) = (cfg.layer_in(l) as f64, cfg.layer_out(l) as f64);
        f += 8.0 * o * (i + o);
    }
    f += 2.0 * cfg.emb_sz as f64 * cfg.vocab_size as f64;
    3.0 * f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_cfg(v: i64) -> ModelConfig {
        ModelConfig::fastai_lm(v, 1.0)
    }

    #[test]
    fn params_match_fastai_counts() {
        // BASELINES.md: 23,112,360 params (vocab 7,080) and 35,668,472 (vocab 38,392)
        assert_eq!(n_params(&std_cfg(7080)), 23_112_360);
        assert_eq!(n_params(&std_cfg(38392)), 35_668_472);
        let mut tiny = std_cfg(7080);
        (tiny.emb_sz, tiny.n_hid, tiny.n_layers) = (64, 128, 2);
        assert_eq!(n_params(&tiny), 609_192);
    }

    #[test]
    fn accounting_adds_up() {
        let c = std_cfg(38392);
        let e = estimate(&c, Precision::Fp32, 64, 72, false);
        assert_eq!(e.param_bytes, 4 * 35_668_472);
        assert_eq!(e.grad_bytes, e.param_bytes);
        assert_eq!(e.optimizer_bytes, 2 * e.param_bytes);
        assert_eq!(e.activation_bytes, e.activation_bytes_per_token * 64 * 72);
        assert_eq!(
            e.total(),
            e.param_bytes + e.grad_bytes + e.optimizer_bytes + e.activation_bytes + e.decoder_bytes
        );
        // activations are linear in micro_bs; the rest is not
        let half = estimate(&c, Precision::Fp32, 32, 72, false);
        assert_eq!(half.activation_bytes * 2, e.activation_bytes);
        assert_eq!(half.fixed(), e.fixed());
        // bf16 saves activation memory, not parameter memory
        let b = estimate(&c, Precision::Bf16, 64, 72, false);
        assert!(b.activation_bytes < e.activation_bytes);
        assert_eq!(b.param_bytes, e.param_bytes);
    }

    #[test]
    fn flops_per_token_of_the_standard_config() {
        let f = train_flops_per_token(&std_cfg(7080));
        assert!((f / 1e6 - 138.5).abs() < 0.1, "{f}");
    }

    #[test]
    fn largest_fitting_respects_the_budget() {
        let c = std_cfg(38392);
        let runtime = 300 << 20;
        // room for exactly 5 streams
        let budget = runtime + estimate(&c, Precision::Fp32, 5, 72, false).total() + 10;
        assert_eq!(
            largest_fitting(&c, Precision::Fp32, 64, 72, false, runtime, budget),
            5
        );
        assert_eq!(
            largest_fitting(&c, Precision::Fp32, 4, 72, false, runtime, budget),
            4
        );
        // a budget below even one stream still gives 1 (the caller reports it)
        assert_eq!(
            largest_fitting(&c, Precision::Fp32, 64, 72, false, runtime, 1),
            1
        );
    }

    #[test]
    fn micro_batches_cover_the_batch() {
        assert_eq!(micro_ranges(8, 8), vec![(0, 8)]);
        assert_eq!(micro_ranges(8, 3), vec![(0, 3), (3, 6), (6, 8)]);
        assert_eq!(micro_ranges(8, 100), vec![(0, 8)]);
        assert_eq!(accum_steps(64, 16), 4);
        assert_eq!(probe_sizes(64), vec![1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(probe_sizes(48), vec![1, 2, 4, 8, 16, 32, 48]);
        assert_eq!(probe_sizes(1), vec![1]);
    }

    #[test]
    fn back_off_halves_down_to_one() {
        let mut m = 64;
        let mut seen = vec![m];
        while let Some(n) = back_off(m) {
            m = n;
            seen.push(m);
        }
        assert_eq!(seen, vec![64, 32, 16, 8, 4, 2, 1]);
        assert_eq!(back_off(3), Some(1));
    }

    #[test]
    fn oom_messages_are_recognised() {
        assert!(is_oom("CUDA out of memory. Tried to allocate 2.00 GiB"));
        assert!(is_oom(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 708 bytes"
        ));
        assert!(is_oom("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"));
        assert!(!is_oom("shape mismatch"));
    }

    #[test]
    fn parses_meminfo() {
        let t = "MemTotal:       24731708 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(meminfo_field(t, "MemAvailable:"), Some(23_000_000 * 1024));
        assert_eq!(meminfo_field(t, "Nope:"), None);
    }
}
