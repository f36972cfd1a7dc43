//! Process-level setup for torch tools: device, threads, denormals, Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Result};
use tch::Device;

/// `auto` (CUDA when available), `cpu`, `cuda`, `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device> {
    Ok(match s {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" => {
            if !tch::Cuda::is_available() {
                bail!("--device cuda: no CUDA device is available");
            }
            Device::Cuda(0)
        }
        s => match s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if (n as i64) < tch::Cuda::device_count() => Device::Cuda(n),
            Some(n) => bail!(
                "--device cuda:{n}: only {} CUDA device(s)",
                tch::Cuda::device_count()
            ),
            None => bail!("--device {s:?}: expected auto, cpu, cuda or cuda:N"),
        },
    })
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Sets torch's intra-op threads (0 = torch's default, one per core).
pub fn init_threads(n: usize) -> usize {
    if n > 0 {
        tch::set_num_threads(n as i32);
    }
    tch::get_num_threads().max(1) as usize
}

/// Flush denormals to zero on this thread and the threads it starts later (torch's OpenMP
/// pool inherits the floating-point environment): what `torch.set_flush_denormal(True)` /
/// `at::globalContext().setFlushDenormal(true)` does, which tch does not expose. Without it,
/// tiny values late in training or in lr_find make CPU kernels many times slower.
/// Call before the first torch operation.
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ: u32 = 1 << 15;
        const DAZ: u32 = 1 << 6;
        let mut csr: u32 = 0;
        #[allow(unsafe_code)]
        // SAFETY: stmxcsr/ldmxcsr read and write the SSE control register (always present on
        // x86_64) through a valid pointer to a local u32. Setting FTZ/DAZ only makes denormal
        // floats round to zero, exactly as PyTorch's setFlushDenormal does on this register.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr as *mut u32, options(nostack, preserves_flags));
            csr |= FTZ | DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr as *const u32, options(nostack, preserves_flags));
        }
    }
}

/// True when the CPU has native bf16 dot products (AVX512-BF16 or AMX), where oneDNN's bf16
/// LSTM and matmuls are faster than fp32.
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if let Ok(s) = std::fs::read_to_string("/proc/cpuinfo") {
            return s
                .split_whitespace()
                .any(|w| w == "avx512_bf16" || w == "amx_bf16");
        }
    }
    false
}

static STOP: AtomicBool = AtomicBool::new(false);
static HANDLER: OnceLock<bool> = OnceLock::new();

/// Installs the Ctrl-C handler once per process; it only raises a flag the training loop polls.
pub fn install_ctrlc() {
    HANDLER.get_or_init(|| ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)).is_ok());
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Asks a running training loop to save and stop, as Ctrl-C does (for tests and embedders).
pub fn request_stop(on: bool) {
    STOP.store(on, Ordering::SeqCst);
}

static SIMULATE_OOM_ABOVE: AtomicUsize = AtomicUsize::new(0);

/// Tests of the out-of-memory back-off: every forward/backward of more than `n` streams fails
/// as if out of memory (`None` turns it off).
pub fn simulate_oom_above(n: Option<usize>) {
    // stored + 1, so that 0 can mean off
    SIMULATE_OOM_ABOVE.store(n.map_or(0, |n| n.saturating_add(1)), Ordering::SeqCst);
}

pub fn simulated_oom_above() -> Option<usize> {
    match SIMULATE_OOM_ABOVE.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n - 1),
    }
}

static QUIET_OOM_PANICS: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: OnceLock<()> = OnceLock::new();

/// Runs `f`, turning a panic into `Err(message)`. tch's infallible calls panic with the C++
/// exception's text (e.g. "CUDA out of memory"); the training loop backs off on those, so
/// their panic message is not printed (other panics still are).
pub fn catch_torch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    PANIC_HOOK.get_or_init(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = panic_text(info.payload());
            if !(QUIET_OOM_PANICS.load(Ordering::SeqCst) && crate::memory::is_oom(&msg)) {
                prev(info);
            }
        }));
    });
    QUIET_OOM_PANICS.store(true, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_OOM_PANICS.store(false, Ordering::SeqCst);
    r.map_err(|p| panic_text(p.as_ref()))
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}
