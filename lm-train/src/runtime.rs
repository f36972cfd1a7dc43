//! Process-level setup for torch tools: device, threads, denormals, Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Result};
use tch::Device;

/// The start of a torch tool's run: denormals flushed ([`flush_denormals`]), the threads set
/// ([`init_threads`]; returned) and the device parsed ([`parse_device`]).
pub fn start(threads: usize, device: &str) -> Result<(usize, Device)> {
    flush_denormals();
    let threads = init_threads(threads);
    Ok((threads, parse_device(device)?))
}

/// `auto` (CUDA when available), `cpu`, `cuda`, `cuda:N`. Every torch tool calls this before
/// its first torch operation, so it also sets libtorch's log level ([`quiet_torch_warnings`]).
pub fn parse_device(s: &str) -> Result<Device> {
    quiet_torch_warnings();
    let need_cuda = |flag: &str| -> Result<()> {
        load_cuda_backend().map_err(|e| {
            anyhow::anyhow!("--device {flag}: libtorch's CUDA backend could not be loaded: {e}")
        })?;
        if !tch::Cuda::is_available() {
            bail!("--device {flag}: no CUDA device is available");
        }
        Ok(())
    };
    Ok(match s {
        "auto" => {
            // Only where an NVIDIA driver is installed: loading the backend costs memory.
            if nvidia_driver_present() {
                let _ = load_cuda_backend();
            }
            Device::cuda_if_available()
        }
        "cpu" => Device::Cpu,
        "cuda" => {
            need_cuda(s)?;
            Device::Cuda(0)
        }
        s => match s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => {
                need_cuda(s)?;
                let count = tch::Cuda::device_count();
                if n as i64 >= count {
                    bail!("--device cuda:{n}: only {count} CUDA device(s)");
                }
                Device::Cuda(n)
            }
            None => bail!("--device {s:?}: expected auto, cpu, cuda or cuda:N"),
        },
    })
}

/// Whether this machine has an NVIDIA kernel driver (so `--device auto` may find a GPU).
fn nvidia_driver_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia").exists()
        || std::path::Path::new("/dev/nvidiactl").exists()
}

static CUDA_BACKEND: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Loads libtorch's CUDA backend, libtorch_cuda.so (once per process): its static
/// initializers register CUDA with libtorch, as linking it would. The tools do not link it,
/// because it and the CUDA libraries it pulls in cost about 345 MiB of resident memory on a
/// CPU-only run (`lm-train --version`: 461 MiB linked, 116 MiB not). It must be loaded before
/// the first torch call that asks about CUDA: libtorch caches the answer.
///
/// Looks for it by name (LD_LIBRARY_PATH, then the binary's rpath: the torch lib dir it was
/// built against), then at the path found at build time.
pub fn load_cuda_backend() -> std::result::Result<(), String> {
    CUDA_BACKEND
        .get_or_init(|| {
            let mut errors = Vec::new();
            let by_path = option_env!("ULMFIT_TORCH_CUDA");
            for name in std::iter::once("libtorch_cuda.so").chain(by_path) {
                let Ok(c) = std::ffi::CString::new(name) else {
                    continue;
                };
                #[allow(unsafe_code)]
                // SAFETY: dlopen with a valid NUL-terminated path; the handle is never closed,
                // so the library's code stays mapped for the life of the process. dlerror
                // returns NULL or a valid C string, copied before the next dl* call.
                unsafe {
                    let h = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
                    if !h.is_null() {
                        return Ok(());
                    }
                    let e = libc::dlerror();
                    if !e.is_null() {
                        errors.push(std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned());
                    }
                }
            }
            Err(if errors.is_empty() {
                "libtorch_cuda.so not found (a CPU-only libtorch?)".into()
            } else {
                errors.join("; ")
            })
        })
        .clone()
}

/// libtorch's log threshold, c10's `FLAGS_caffe2_log_level` (0 INFO, 1 WARNING, 2 ERROR,
/// 3 FATAL), exported unmangled by libc10.
mod c10 {
    #[allow(unsafe_code)]
    extern "C" {
        pub static mut FLAGS_caffe2_log_level: i32;
    }
}

/// The log level libtorch runs at: `TORCH_CPP_LOG_LEVEL` (INFO, WARNING, ERROR, FATAL or 0-3,
/// as PyTorch reads it) when set, else ERROR.
///
/// libtorch prints some warnings on every call instead of once: with AWD-LSTM's weight dropout
/// the recurrent weights are new tensors each step, so cuDNN says "RNN module weights are not
/// part of single contiguous chunk of memory" for every layer of every step (fastai silences it
/// with `warnings.filterwarnings`). The copy it warns about is the same one fastai makes.
pub fn torch_log_level() -> i32 {
    log_level_from(&std::env::var("TORCH_CPP_LOG_LEVEL").unwrap_or_default())
}

fn log_level_from(v: &str) -> i32 {
    match v.trim().to_ascii_uppercase().as_str() {
        "0" | "INFO" => 0,
        "1" | "WARNING" => 1,
        "3" | "FATAL" => 3,
        _ => 2,
    }
}

/// Sets libtorch's log level to [`torch_log_level`] (once per process). C++ programs do not
/// read `TORCH_CPP_LOG_LEVEL` by themselves (Python's `import torch` does), so without this a
/// tool could not be quietened or made verbose.
pub fn quiet_torch_warnings() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let level = torch_log_level();
        #[allow(unsafe_code)]
        // SAFETY: a plain `int` defined in libc10.so, which every torch binary links; it is
        // written here once, before the tool starts any torch work or thread.
        unsafe {
            std::ptr::addr_of_mut!(c10::FLAGS_caffe2_log_level).write(level);
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_log_level_reads_like_pytorch() {
        assert_eq!(log_level_from(""), 2);
        assert_eq!(log_level_from("warning"), 1);
        assert_eq!(log_level_from("INFO"), 0);
        assert_eq!(log_level_from(" 3 "), 3);
        assert_eq!(log_level_from("ERROR"), 2);
        assert_eq!(log_level_from("loud"), 2);
    }
}
