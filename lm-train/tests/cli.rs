//! lm-train end to end, on tiny models (emb 16, hid 32, 2 layers) and a synthetic shard set.
//!
//! Every run is a separate `lm-train` process: torch's random generator is process-global, so
//! runs in threads of one test binary would draw each other's random numbers.

use std::path::Path;
use std::process::{Command, Output};

use tch::{Kind, Tensor};
use testkit::{err, grammar_shards, ok, records, vocab, words, GrammarEnv, GRAMMAR_WORDS};

const BIN: &str = env!("CARGO_BIN_EXE_lm-train");

/// The tiny model (testkit's `TINY_ARCH`, bs 4 × bptt 8) on the CPU in fp32, seed 7, quiet bars.
fn tiny() -> Vec<&'static str> {
    let mut a = testkit::TINY_ARCH.to_vec();
    a.extend(words("--bs 4 --bptt 8 --progress none --seed 7"));
    a.extend(testkit::CPU.into_iter().chain(testkit::FP32));
    a
}

fn lm(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run lm-train")
}

fn train(e: &GrammarEnv, out: &Path, extra: &[&str]) -> Output {
    let mut a: Vec<&str> = vec![e.shards.to_str().unwrap(), "-o", out.to_str().unwrap()];
    a.extend(tiny());
    a.extend(extra);
    lm(&a)
}

fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn get(w: &[(String, Tensor)], name: &str) -> Tensor {
    w.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
        .1
        .shallow_clone()
}

#[test]
fn loss_falls_and_metrics_are_reported() {
    let e = GrammarEnv::new();
    let out = e.dir.join("lm");
    let s = ok(&train(
        &e,
        &out,
        &words("--epochs 4 --lr 1e-2 --log-every 5"),
    ));
    let ep = records(&s, "lm_epoch");
    assert_eq!(ep.len(), 4, "{s}");
    let first = ep[0]["train_loss"].as_f64().unwrap();
    let last = ep[3]["train_loss"].as_f64().unwrap();
    assert!(last < first - 0.5, "train loss {first} -> {last}");
    let v0 = ep[0]["valid_loss"].as_f64().unwrap();
    let v3 = ep[3]["valid_loss"].as_f64().unwrap();
    assert!(v3 < v0, "valid loss {v0} -> {v3}");
    assert!((ep[3]["perplexity"].as_f64().unwrap() - v3.exp()).abs() < 1e-6);
    assert!(ep[3]["accuracy"].as_f64().unwrap() > 0.2);
    let steps = records(&s, "lm_step");
    assert!(
        !steps.is_empty()
            && steps
                .iter()
                .all(|r| r["tokens_per_s"].as_f64().unwrap() > 0.0
                    && r["schema"] == 1
                    && r["tool"] == "lm-train")
    );
    // checkpoint: fastai names, tied aliases, config, vocab, resumable state
    let w = weights(&out);
    let names: Vec<&str> = w.iter().map(|(n, _)| n.as_str()).collect();
    for n in [
        "0.encoder.weight",
        "0.encoder_dp.emb.weight",
        "0.rnns.0.weight_hh_l0_raw",
        "0.rnns.0.module.weight_ih_l0",
        "0.rnns.0.module.bias_ih_l0",
        "0.rnns.0.module.bias_hh_l0",
        "0.rnns.1.weight_hh_l0_raw",
        "1.decoder.weight",
        "1.decoder.bias",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert_eq!(get(&w, "0.rnns.1.weight_hh_l0_raw").size(), vec![64, 16]);
    assert_eq!(
        get(&w, "0.rnns.0.module.weight_ih_l0").size(),
        vec![128, 16]
    );
    assert!(get(&w, "0.encoder.weight").equal(&get(&w, "1.decoder.weight")));
    for f in [
        "config.json",
        "vocab.json",
        "optimizer.safetensors",
        "train_state.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // the output exists now: a second run without --force refuses
    let e2 = err(&train(&e, &out, &["--steps", "1"]), 2);
    assert!(e2.contains("already exists"), "{e2}");
}

#[test]
fn resume_is_bit_exact() {
    let e = GrammarEnv::new();
    let full = e.dir.join("full");
    let part = e.dir.join("part");
    // 60 docs × 29 tokens × 4/5 train → 1392 tokens → bl 347 → 44 batches/epoch; 2 epochs.
    let args = words("--epochs 2 --lr 5e-3 --clip 0.5 --log-every 0");
    let a = ok(&train(&e, &full, &args));
    // stop mid-epoch (hidden state carried), resume, stop again after the epoch boundary
    let mut a1 = args.clone();
    a1.extend(["--stop-after", "13"]);
    let msg = err(&train(&e, &part, &a1), 130);
    assert!(msg.contains("interrupted"), "{msg}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(part.join("train_state.json")).unwrap()).unwrap();
    assert_eq!(st["step"], 13);
    let mut r = vec![e.shards.to_str().unwrap(), "-o", part.to_str().unwrap()];
    r.extend(words("--resume --progress none --threads 1 --log-every 0"));
    r.extend(["--stop-after", "50"]);
    err(&lm(&r), 130);
    r.truncate(r.len() - 2);
    let b = ok(&lm(&r));
    let (wa, wb) = (weights(&full), weights(&part));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after resume");
    }
    assert_eq!(
        std::fs::read(full.join("optimizer.safetensors")).unwrap(),
        std::fs::read(part.join("optimizer.safetensors")).unwrap()
    );
    // the last epoch's report is the same too
    let (ea, eb) = (records(&a, "lm_epoch"), records(&b, "lm_epoch"));
    assert_eq!(
        ea.last().unwrap()["valid_loss"],
        eb.last().unwrap()["valid_loss"]
    );
    assert_eq!(
        ea.last().unwrap()["train_loss"],
        eb.last().unwrap()["train_loss"]
    );
    // resuming a finished run does nothing
    ok(&lm(&r));
}

#[test]
fn init_with_another_vocab_remaps_rows_by_token() {
    let e = GrammarEnv::new();
    let base = e.dir.join("base");
    ok(&train(&e, &base, &["--steps", "10", "--lr", "1e-2"]));
    // a new vocab: some words dropped, others new, a different order
    let words2 = [
        "park", "zebra", "the", "cat", "yak", "sat", "on", "mat", ".", "dog", "ran", "to", "a",
        "and",
    ];
    let v2 = vocab(&words2);
    let shards2 = e.dir.join("shards2");
    grammar_shards(&shards2, &v2, 40, 3);
    let out = e.dir.join("remapped");
    let args = |o: &Path| {
        let mut a: Vec<String> = vec![
            shards2.display().to_string(),
            "-o".into(),
            o.display().to_string(),
        ];
        a.extend(tiny().iter().map(|s| s.to_string()));
        a.extend(["--init".into(), base.display().to_string()]);
        a
    };
    // without --remap-vocab: refused
    let a0 = args(&out);
    let msg = err(&lm(&a0.iter().map(String::as_str).collect::<Vec<_>>()), 2);
    assert!(
        msg.contains("--remap-vocab") && msg.contains("vocab"),
        "{msg}"
    );
    let mut a1 = args(&out);
    a1.extend(["--remap-vocab".into(), "--steps".into(), "0".into()]);
    let s = ok(&lm(&a1.iter().map(String::as_str).collect::<Vec<_>>()));
    let init = &records(&s, "lm_init")[0];
    let v1 = vocab(&GRAMMAR_WORDS);
    let matched = v2.itos().iter().filter(|t| v1.get(t).is_some()).count();
    assert_eq!(init["matched_tokens"], matched as u64);
    assert_eq!(init["new_tokens"], (v2.len() - matched) as u64);
    let (wo, wn) = (weights(&base), weights(&out));
    let (eo, en) = (get(&wo, "0.encoder.weight"), get(&wn, "0.encoder.weight"));
    let (bo, bn) = (get(&wo, "1.decoder.bias"), get(&wn, "1.decoder.bias"));
    assert_eq!(en.size(), vec![v2.len() as i64, 16]);
    let mean = eo.mean_dim(0, false, Kind::Float);
    let bmean = bo.mean(Kind::Float);
    for (i, t) in v2.itos().iter().enumerate() {
        let i = i as i64;
        match v1.get(t) {
            Some(j) => {
                assert!(en.get(i).equal(&eo.get(j as i64)), "row of {t}");
                assert!(bn.get(i).equal(&bo.get(j as i64)), "bias of {t}");
            }
            None => {
                assert!(
                    en.get(i).allclose(&mean, 1e-6, 1e-7, false),
                    "mean row for new token {t}"
                );
                assert!(
                    bn.get(i).allclose(&bmean, 1e-6, 1e-7, false),
                    "mean bias for new token {t}"
                );
            }
        }
    }
    assert!(get(&wn, "1.decoder.weight").equal(&en));
    // the LSTM weights are carried over unchanged
    assert!(get(&wn, "0.rnns.1.weight_hh_l0_raw").equal(&get(&wo, "0.rnns.1.weight_hh_l0_raw")));
    // and the remapped checkpoint trains on the new shards (frozen: only embedding + decoder move)
    let ft = e.dir.join("ft");
    let mut a2: Vec<&str> = vec![shards2.to_str().unwrap(), "-o", ft.to_str().unwrap()];
    a2.extend(tiny());
    a2.extend(["--init", out.to_str().unwrap(), "--steps", "3", "--freeze"]);
    ok(&lm(&a2));
    let wf = weights(&ft);
    assert!(
        get(&wf, "0.rnns.0.module.weight_ih_l0").equal(&get(&wn, "0.rnns.0.module.weight_ih_l0"))
    );
    assert!(!get(&wf, "0.encoder.weight").equal(&en));
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_last_checkpoint() {
    let e = GrammarEnv::new();
    let out = e.dir.join("lm");
    let o = train(
        &e,
        &out,
        &words("--lr 1e38 --save-every 1 --epochs 1 --wd 0"),
    );
    let msg = err(&o, 2);
    assert!(
        msg.starts_with("lm-train: training diverged") && msg.contains("at step"),
        "{msg}"
    );
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    // the step named is after the last checkpoint, which is still there and loadable
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("train_state.json")).unwrap()).unwrap();
    let saved = st["step"].as_u64().unwrap();
    assert!(
        msg.contains(&format!("step {})", saved)) || msg.contains(&format!("(step {saved})")),
        "{msg}"
    );
    let w = weights(&out);
    assert!(
        w.iter()
            .all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1),
        "checkpoint holds non-finite weights"
    );
}

#[test]
fn batch_larger_than_the_data_is_an_error() {
    let e = GrammarEnv::new();
    let o = train(&e, &e.dir.join("x"), &["--bs", "64", "--bptt", "72"]);
    let msg = err(&o, 2);
    assert!(msg.contains("too few for --bs 64 × --bptt 72"), "{msg}");
    assert!(!e.dir.join("x").exists());
}

#[test]
fn broken_checkpoints_are_refused() {
    let e = GrammarEnv::new();
    let base = e.dir.join("base");
    ok(&train(&e, &base, &["--steps", "2"]));
    // another architecture in config.json than in the tensors
    let wrong = e.dir.join("wrong");
    copy_dir(&base, &wrong);
    let cfg = std::fs::read_to_string(wrong.join("config.json"))
        .unwrap()
        .replace("\"n_hid\": 32", "\"n_hid\": 48");
    std::fs::write(wrong.join("config.json"), cfg).unwrap();
    let o = train(
        &e,
        &e.dir.join("o1"),
        &[
            "--init",
            wrong.to_str().unwrap(),
            "--steps",
            "1",
            "--n-hid",
            "48",
        ],
    );
    let msg = err(&o, 2);
    assert!(
        msg.contains("shape") && msg.contains("model.safetensors"),
        "{msg}"
    );
    // a missing tensor
    let missing = e.dir.join("missing");
    copy_dir(&base, &missing);
    let w: Vec<(String, Tensor)> = weights(&base)
        .into_iter()
        .filter(|(n, _)| n != "0.rnns.1.weight_hh_l0_raw")
        .collect();
    Tensor::write_safetensors(&w, missing.join("model.safetensors")).unwrap();
    let msg = err(
        &train(
            &e,
            &e.dir.join("o2"),
            &["--init", missing.to_str().unwrap(), "--steps", "1"],
        ),
        2,
    );
    assert!(
        msg.contains("missing tensor 0.rnns.1.weight_hh_l0_raw"),
        "{msg}"
    );
    // size flags that contradict the checkpoint
    let msg = err(
        &train(
            &e,
            &e.dir.join("o3"),
            &[
                "--init",
                base.to_str().unwrap(),
                "--steps",
                "1",
                "--n-hid",
                "64",
            ],
        ),
        2,
    );
    assert!(msg.contains("--n-hid 64 differs"), "{msg}");
    // not a checkpoint at all
    let msg = err(&lm(&["generate", "--ckpt", e.shards.to_str().unwrap()]), 2);
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn generation_is_deterministic_with_a_seed() {
    let e = GrammarEnv::new();
    let base = e.dir.join("base");
    ok(&train(
        &e,
        &base,
        &words("--epochs 3 --lr 1e-2 --log-every 0"),
    ));
    let g = |seed: &str| {
        let mut a = vec![
            "generate",
            "--ckpt",
            base.to_str().unwrap(),
            "--prompt",
            "The cat",
        ];
        a.extend(words("--n-words 20 --temperature 0.8 --threads 1"));
        ok(&lm(&[&a[..], &["--seed", seed]].concat()))
    };
    let (a, b) = (g("1"), g("1"));
    assert_eq!(a, b);
    assert!(a.starts_with("The cat "), "{a}");
    assert!(a.split_whitespace().count() >= 20, "{a}");
    let toks = ok(&lm(&[
        "generate",
        "--ckpt",
        base.to_str().unwrap(),
        "--prompt",
        "The cat",
        "--n-words",
        "5",
        "--tokens",
    ]));
    assert!(toks.starts_with("xxbos xxmaj the cat "), "{toks}");
}

fn copy_dir(a: &Path, b: &Path) {
    std::fs::create_dir(b).unwrap();
    for f in std::fs::read_dir(a).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), b.join(f.file_name())).unwrap();
    }
}

/// Max |a − b| over the weights of two checkpoints.
fn max_weight_diff(a: &Path, b: &Path) -> f64 {
    let (wa, wb) = (weights(a), weights(b));
    assert_eq!(wa.len(), wb.len());
    wa.iter()
        .zip(&wb)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

#[test]
fn out_of_memory_backs_off_and_keeps_the_effective_batch() {
    let e = GrammarEnv::new();
    let common = words("--steps 6 --drop-mult 0 --lr 1e-2 --log-every 1");
    // every forward/backward of more than 2 streams fails as if out of memory
    let oom = e.dir.join("oom");
    let mut a = common.to_vec();
    a.extend(words("--bs 8 --simulate-oom-above 2"));
    let s = ok(&train(&e, &oom, &a));
    let b = records(&s, "lm_backoff");
    assert_eq!(b.len(), 2, "8 → 4 → 2: {s}");
    assert_eq!(
        (b[0]["micro_bs"].as_u64(), b[0]["accum_steps"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(
        (b[1]["micro_bs"].as_u64(), b[1]["accum_steps"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(records(&s, "lm_step").len(), 6, "every step ran once: {s}");
    let st = records(&s, "lm_start");
    assert_eq!(st[0]["bs"], 8);
    // the same as asking for micro-batches of 2 from the start
    let acc = e.dir.join("acc");
    let mut a = common.to_vec();
    a.extend(words("--bs 2 --effective-bs 8"));
    let s2 = ok(&train(&e, &acc, &a));
    let st = records(&s2, "lm_start");
    assert_eq!(
        (st[0]["micro_bs"].as_u64(), st[0]["accum_steps"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(max_weight_diff(&oom, &acc), 0.0);
    // and, within float tolerance, as one batch of 8
    let big = e.dir.join("big");
    let mut a = common.to_vec();
    a.extend(["--bs", "8"]);
    ok(&train(&e, &big, &a));
    let d = max_weight_diff(&oom, &big);
    assert!(
        d < 1e-4,
        "accumulated vs one batch: max weight difference {d}"
    );
    // --resume continues with the backed-off micro-batch
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oom.join("train_state.json")).unwrap()).unwrap();
    assert_eq!(st["micro_bs"], 2);
    // with 1 stream still failing, the run stops with a clear error
    let mut a = common.to_vec();
    a.extend(words("--bs 4 --simulate-oom-above 0"));
    let msg = err(&train(&e, &e.dir.join("no"), &a), 2);
    assert!(
        msg.contains("out of memory even with micro-batches of 1 stream"),
        "{msg}"
    );
}

#[test]
fn bs_auto_probes_within_the_budget() {
    let e = GrammarEnv::new();
    // a generous budget: the whole effective batch fits
    let out = e.dir.join("auto");
    let s = ok(&train(
        &e,
        &out,
        &words("--bs auto --effective-bs 8 --mem-budget 64G --steps 2"),
    ));
    let m = records(&s, "lm_memory");
    assert_eq!(m.len(), 1, "{s}");
    assert_eq!(m[0]["micro_bs"], 8);
    assert_eq!(records(&s, "lm_start")[0]["accum_steps"], 1);
    // a budget below what the process already uses: refused before training
    let msg = err(
        &train(
            &e,
            &e.dir.join("tiny"),
            &words("--bs auto --mem-budget 1M --steps 2"),
        ),
        2,
    );
    assert!(msg.contains("not even a micro-batch of 1 stream"), "{msg}");
    assert!(!e.dir.join("tiny").exists());
}

#[test]
fn dry_run_prints_the_estimate_and_writes_nothing() {
    let e = GrammarEnv::new();
    let out = e.dir.join("never");
    let s = ok(&train(&e, &out, &["--dry-run", "--bs", "8"]));
    for w in [
        "parameters",
        "gradients",
        "Adam state",
        "activations",
        "micro-batch 8",
    ] {
        assert!(s.contains(w), "{w}: {s}");
    }
    assert!(!out.exists());
    // no -o needed; --metrics gets an lm_memory record
    let mf = e.dir.join("m.jsonl");
    let mut a = vec![e.shards.to_str().unwrap(), "--dry-run"];
    a.extend(testkit::TINY_ARCH);
    a.extend(words("--bs 4 --bptt 8"));
    a.extend(["--metrics", mf.to_str().unwrap()]);
    let o = lm(&a);
    ok(&o);
    let rec = std::fs::read_to_string(&mf).unwrap();
    let r: serde_json::Value = serde_json::from_str(rec.lines().next().unwrap()).unwrap();
    assert_eq!(r["type"], "lm_memory");
    // 2 layers 16→32→16 plus a vocab × 16 embedding and vocab biases
    let v = vocab(&GRAMMAR_WORDS).len() as u64;
    let expect = v * 16 + (4 * 32 * (16 + 32) + 8 * 32) + (4 * 16 * (32 + 16) + 8 * 16) + v;
    assert_eq!(r["params"].as_u64(), Some(expect));
    assert_eq!(r["param_bytes"].as_u64(), Some(4 * expect));
}

/// libtorch's CUDA backend (libtorch_cuda.so and cuBLAS, cuDNN, NCCL, ...) is loaded only when a
/// CUDA device is asked for: linked, it costs ~345 MiB of resident memory on every CPU run.
#[test]
fn a_cpu_run_does_not_load_the_cuda_libraries() {
    if std::path::Path::new("/proc/driver/nvidia").exists() {
        eprintln!("skipped: an NVIDIA driver is present, so --device auto loads CUDA");
        return;
    }
    let e = GrammarEnv::new();
    for device in ["auto", "cpu"] {
        let s = ok(&train(
            &e,
            &e.dir.join("never"),
            &["--dry-run", "--device", device],
        ));
        let line = s
            .lines()
            .find(|l| l.contains("runtime (now)"))
            .unwrap_or_else(|| panic!("no runtime line: {s}"));
        let mib: f64 = line
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unreadable: {line}"));
        assert!(
            mib < 250.0,
            "--device {device}: {mib} MiB resident before training (CUDA libraries loaded?)"
        );
    }
    // Asking for CUDA loads the backend, then says plainly that there is no device.
    let o = train(&e, &e.dir.join("never"), &["--device", "cuda"]);
    let msg = err(&o, 2);
    assert!(msg.contains("--device cuda:"), "{msg}");
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_130() {
    use std::io::BufRead;
    let e = GrammarEnv::new();
    let out = e.dir.join("ckpt");
    let mut a: Vec<&str> = vec![e.shards.to_str().unwrap(), "-o", out.to_str().unwrap()];
    a.extend(tiny());
    a.extend(words("--epochs 500 --lr 5e-3 --log-every 1"));
    let mut child = Command::new(BIN)
        .args(&a)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run lm-train");
    // wait until training is under way, then send SIGINT as a terminal's Ctrl-C would
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut steps = 0;
    for l in lines.by_ref() {
        if l.unwrap().contains("\"type\":\"lm_step\"") {
            steps += 1;
            if steps == 3 {
                break;
            }
        }
    }
    assert_eq!(steps, 3, "lm-train never reported steps");
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        rest.iter()
            .any(|l| l.contains("\"type\":\"lm_checkpoint\"")),
        "no checkpoint record after Ctrl-C"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("train_state.json")).unwrap()).unwrap();
    assert!(state["step"].as_u64().unwrap() >= 3, "{state}");
    // the checkpoint loads: weights are complete and finite
    let w = weights(&out);
    assert!(!w.is_empty());
    assert!(w
        .iter()
        .all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1));
}
