//! Makes the binaries find libtorch without LD_LIBRARY_PATH, and tells them where libtorch's
//! CUDA backend is.
//!
//! * rpath: the torch lib dir (from `TORCH_LIB`, else asked of the `python` that tch's build
//!   uses with `LIBTORCH_USE_PYTORCH=1`, the same way `scripts/libtorch.sh` does).
//! * `ULMFIT_TORCH_CUDA`: the path of libtorch_cuda.so, when it exists. The binaries do not
//!   link it (nothing in tch references it, so `--as-needed` drops it anyway): they load it at
//!   run time when a CUDA device is asked for (`lm_train::runtime::load_cuda_backend`), because
//!   loading it and the CUDA libraries it pulls in (cuBLAS, cuDNN, NCCL, ...) costs about
//!   345 MiB of resident memory even when only the CPU is used.

use std::path::PathBuf;
use std::process::Command;

fn torch_lib() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TORCH_LIB") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("LIBTORCH") {
        return Some(PathBuf::from(p).join("lib"));
    }
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('torch').origin), 'lib'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(s.trim()))
}

fn main() {
    println!("cargo:rerun-if-env-changed=TORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=PYTHON_SYS_EXECUTABLE");
    println!("cargo:rerun-if-changed=build.rs");
    // Shared by every tch tool (clf-train and lr-find point their `build` at this file).
    let pkg = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let Some(lib) = torch_lib() else {
        println!("cargo:warning={pkg}: torch lib dir not found; set TORCH_LIB (binaries will need LD_LIBRARY_PATH)");
        return;
    };
    if !lib.join("libtorch_cpu.so").exists() && !lib.join("libtorch.so").exists() {
        println!(
            "cargo:warning={pkg}: {} holds no libtorch; no rpath emitted",
            lib.display()
        );
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let cuda = lib.join("libtorch_cuda.so");
    if cuda.exists() {
        println!("cargo:rustc-env=ULMFIT_TORCH_CUDA={}", cuda.display());
    }
}
