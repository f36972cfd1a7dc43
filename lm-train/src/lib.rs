//! `lm-train`: ULMFiT / fastai AWD-LSTM language-model training on shard sets, with tch.
//!
//! The pieces a classifier reuses are public modules: [`model`] (AWD-LSTM encoder under
//! fastai's names), [`optim`] (fastai's AdamW with per-group learning rates, one-cycle),
//! [`checkpoint`] (reading/writing checkpoint directories, vocab remapping), [`data`] (LM batch
//! layout over mmap'd splits), [`fastai`] (import and export of fastai's AWD-LSTM files).
//! clf-train and lr-find also share its flag groups ([`args::OneCycleArgs`],
//! [`args::OptimArgs`], [`args::RunArgs`], [`args::LogArgs`]; their own help wording in
//! [`args::REWORDED`]), its process setup ([`runtime`]), the run prologue and end
//! ([`session`]) and [`parse_and_run`].

pub mod args;
pub mod checkpoint;
pub mod config;
pub mod cuda;
pub mod data;
pub mod fastai;
pub mod generate;
pub mod memory;
pub mod model;
pub mod optim;
pub mod runtime;
pub mod session;
pub mod step;
pub mod train;

use anyhow::Result;

pub use args::{Args, Command};

pub const TOOL: &str = "lm-train";

/// Runs the tool as the binary does, from command-line arguments.
pub fn run_from<I, T>(argv: I) -> Result<i32>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    parse_and_run(argv, run)
}

/// Parses `argv` as the flags `A` of a tool and runs `run` on them, as the tool's binary does
/// (lm-train, clf-train, lr-find); `--help` and `--version` print and give 0.
pub fn parse_and_run<A, I, T>(argv: I, run: impl FnOnce(A) -> Result<i32>) -> Result<i32>
where
    A: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match shared::cli::parse_from::<A, _, _>(argv)? {
        Some(args) => run(args),
        None => Ok(0), // --help / --version
    }
}

pub fn run(args: Args) -> Result<i32> {
    match args.command {
        Some(Command::Generate(g)) => generate::run(g, &args.common),
        Some(Command::ImportFastai(a)) => fastai::run_import(a, &args.common),
        Some(Command::ExportFastai(a)) => fastai::run_export(a, &args.common),
        Some(Command::BenchMatmul(b)) => bench_matmul(b),
        None => train::run(args.train, &args.common),
    }
}

/// `lm-train bench-matmul` (hidden): GFLOP/s of an n × n × n matmul in fp32 and bf16, the
/// machine's practical peak that benches/lm.sh relates training FLOP/s to.
fn bench_matmul(b: args::BenchMatmulArgs) -> Result<i32> {
    runtime::flush_denormals();
    let device = runtime::parse_device(&b.device)?;
    let _g = tch::no_grad_guard();
    let mut out = serde_json::Map::new();
    out.insert("n".into(), b.n.into());
    out.insert("threads".into(), (tch::get_num_threads() as i64).into());
    for (name, kind) in [("fp32", tch::Kind::Float), ("bf16", tch::Kind::BFloat16)] {
        let x = tch::Tensor::randn([b.n, b.n], (kind, device));
        let y = tch::Tensor::randn([b.n, b.n], (kind, device));
        let _ = x.matmul(&y); // warm-up
        let sync = || {
            if let tch::Device::Cuda(i) = device {
                tch::Cuda::synchronize(i as i64);
            }
        };
        sync();
        let t0 = std::time::Instant::now();
        let mut reps = 0u64;
        while t0.elapsed().as_secs_f64() < b.secs || reps < 3 {
            let _ = x.matmul(&y);
            reps += 1;
            if device.is_cuda() && reps % 16 == 0 {
                sync();
            }
        }
        sync();
        let dt = t0.elapsed().as_secs_f64();
        let gflops = 2.0 * (b.n as f64).powi(3) * reps as f64 / dt / 1e9;
        out.insert(format!("{name}_gflops"), gflops.into());
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(0)
}
