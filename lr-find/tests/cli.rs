//! lr-find end to end on a tiny model (emb 16, hid 32, 2 layers) and a synthetic shard set.
//! Every run is its own process (torch's generator is process-global).

use std::path::Path;
use std::process::{Command, Output};

use lm_train::checkpoint;
use lm_train::config::{CheckpointConfig, ModelConfig};
use lm_train::model::LanguageModel;
use serde_json::Value;
use shared::vocab::Vocab;
use testkit::{err, files, ok, one_line, records, vocab, words, GrammarEnv, GRAMMAR_WORDS};

const BIN: &str = env!("CARGO_BIN_EXE_lr-find");

/// testkit's grammar shard set: 60 documents of 29 tokens, 48 train docs, 1392 tokens; bs 4 ×
/// bptt 8 gives 44 batches.
fn env() -> GrammarEnv {
    GrammarEnv::new()
}

fn lr_find(e: &GrammarEnv, extra: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.arg(&e.shards);
    if !extra.contains(&"--init") {
        c.args(testkit::TINY_ARCH);
    }
    c.args(words(
        "--bs 4 --bptt 8 --threads 1 --precision fp32 --device cpu",
    ))
    .args(extra)
    .current_dir(&e.dir)
    .output()
    .unwrap()
}

#[test]
fn output_records_and_schedule() {
    let e = env();
    let out = ok(&lr_find(&e, &["--num-it", "30", "--end-lr", "1"]));
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["tool"], "lr-find");
    }
    let start = &records(&out, "lr_find_start")[0];
    assert_eq!(start["num_it"], 30);
    assert_eq!(start["batches_per_epoch"], 44);
    let it = records(&out, "lr_find_iter");
    assert!(!it.is_empty() && it.len() <= 30);
    assert_eq!(it[0]["lr"].as_f64().unwrap(), 1e-7);
    // exponential: constant ratio (1/1e-7)^(1/30)
    let r = it[1]["lr"].as_f64().unwrap() / it[0]["lr"].as_f64().unwrap();
    assert!((r - 1e7f64.powf(1.0 / 30.0)).abs() < 1e-9);
    // bias-corrected smoothing: the first smoothed loss is the first loss
    let (l0, s0) = (
        it[0]["loss"].as_f64().unwrap(),
        it[0]["smooth_loss"].as_f64().unwrap(),
    );
    assert!((l0 - s0).abs() < 1e-12 * l0, "{l0} vs {s0}");
    let sum = &records(&out, "lr_find_summary")[0];
    assert_eq!(sum["method"], "valley");
    assert_eq!(sum["lr"], sum["valley"]);
    assert!(sum["detail"]["minimum"]["point_lr"].is_number());
    assert_eq!(records(&out, "lr_find_repeat").len(), 1);
    assert!(records(&out, "lr_find_band").is_empty());
}

#[test]
fn same_seed_same_curve_other_seed_other_curve() {
    let e = env();
    let args = ["--num-it", "20", "--seed", "7", "-q"];
    let a = ok(&lr_find(&e, &args));
    let b = ok(&lr_find(&e, &args));
    let curve = |s: &str| -> Vec<(f64, f64)> {
        records(s, "lr_find_iter")
            .iter()
            .map(|v| (v["lr"].as_f64().unwrap(), v["loss"].as_f64().unwrap()))
            .collect()
    };
    assert_eq!(curve(&a), curve(&b), "same seed: bit-identical losses");
    let c = ok(&lr_find(&e, &["--num-it", "20", "--seed", "8", "-q"]));
    assert_ne!(curve(&a), curve(&c));
}

fn make_ckpt(dir: &Path, v: &Vocab) {
    let mut cfg = ModelConfig::fastai_lm(v.len() as i64, 1.0);
    (cfg.emb_sz, cfg.n_hid, cfg.n_layers) = (16, 32, 2);
    tch::manual_seed(3);
    let model = LanguageModel::new(&cfg, tch::Device::Cpu);
    checkpoint::save(
        dir,
        &model,
        v,
        &CheckpointConfig::new(cfg, v.hash().to_string(), None),
        None,
    )
    .unwrap();
}

#[test]
fn init_checkpoint_is_only_read() {
    let e = env();
    let ck = e.dir.join("lm0");
    make_ckpt(&ck, &vocab(&GRAMMAR_WORDS));
    let before = files(&ck);
    let mtime = std::fs::metadata(ck.join("model.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    let out = ok(&lr_find(
        &e,
        &[
            "--init",
            ck.to_str().unwrap(),
            "--num-it",
            "15",
            "--freeze",
            "--plot",
            "p.png",
        ],
    ));
    assert_eq!(
        records(&out, "lr_find_start")[0]["init"],
        ck.to_str().unwrap()
    );
    assert_eq!(
        files(&ck),
        before,
        "the --init checkpoint is byte-identical afterwards"
    );
    assert_eq!(
        std::fs::metadata(ck.join("model.safetensors"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    // sizes come from the checkpoint; a contradicting flag is refused
    let o = lr_find(&e, &["--init", ck.to_str().unwrap(), "--n-hid", "64"]);
    assert!(err(&o, 2).contains("--n-hid 64 differs"));
}

#[test]
fn repeats_report_median_band_and_spreads() {
    let e = env();
    let out = ok(&lr_find(
        &e,
        &words("--num-it 20 --repeats 3 --no-stop-div --plot band.svg"),
    ));
    let reps = records(&out, "lr_find_repeat");
    assert_eq!(reps.len(), 3);
    let seeds: std::collections::BTreeSet<u64> =
        reps.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds.len(), 3, "each repeat its own seed");
    assert_eq!(
        reps[0]["seed"], 42,
        "the first repeat is the plain --seed run"
    );
    let band = records(&out, "lr_find_band");
    assert_eq!(band.len(), 20, "one band point per iteration");
    let iters = records(&out, "lr_find_iter");
    for (i, p) in band.iter().enumerate() {
        let (lo, med, hi) = (
            p["p10"].as_f64().unwrap(),
            p["median"].as_f64().unwrap(),
            p["p90"].as_f64().unwrap(),
        );
        assert!(lo <= med && med <= hi, "{p}");
        assert_eq!(p["repeats"], 3);
        // the median of 3 is one of the three smoothed losses at that iteration
        let at: Vec<f64> = iters
            .iter()
            .filter(|v| v["iter"] == i)
            .map(|v| v["smooth_loss"].as_f64().unwrap())
            .collect();
        assert_eq!(at.len(), 3);
        assert!(at.contains(&med));
    }
    let sum = &records(&out, "lr_find_summary")[0];
    assert_eq!(sum["repeats"], 3);
    let sp = &sum["detail"]["valley"]["spread"];
    assert_eq!(sp["n"], 3);
    assert!(sp["p10"].as_f64().unwrap() <= sp["p90"].as_f64().unwrap());
    let svg = std::fs::read_to_string(e.dir.join("band.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polygon"),
        "band drawn"
    );
}

#[test]
fn plots_png_and_svg_and_output_file() {
    let e = env();
    let o = lr_find(
        &e,
        &["--num-it", "12", "--plot", "lr.png", "-o", "lr.jsonl"],
    );
    assert!(ok(&o).is_empty(), "records go to -o, not stdout");
    let png = std::fs::read(e.dir.join("lr.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let recs = std::fs::read_to_string(e.dir.join("lr.jsonl")).unwrap();
    assert_eq!(records(&recs, "lr_find_summary").len(), 1);
    // existing outputs are refused without --force
    let o = lr_find(&e, &["--num-it", "12", "-o", "lr.jsonl"]);
    assert!(err(&o, 2).contains("lr.jsonl"));
    let o = lr_find(&e, &["--num-it", "12", "--plot", "lr.gif"]);
    assert!(err(&o, 2).contains("PNG or SVG"));
}

#[test]
fn valid_loss_mode_and_linear_schedule() {
    let e = env();
    let out = ok(&lr_find(
        &e,
        &words("--num-it 10 --valid-loss --schedule linear --start-lr 0 --end-lr 0.1"),
    ));
    let it = records(&out, "lr_find_iter");
    assert_eq!(it[0]["lr"].as_f64().unwrap(), 0.0);
    assert!((it[1]["lr"].as_f64().unwrap() - 0.01).abs() < 1e-15);
    assert_eq!(records(&out, "lr_find_start")[0]["loss"], "valid");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let e = env();
    // a checkpoint that does not exist
    let s = err(&lr_find(&e, &["--init", "nope/"]), 2);
    one_line(&s, "lr-find");
    assert!(
        s.contains("nope") && s.contains("no such checkpoint"),
        "{s}"
    );
    // a checkpoint of another vocab
    let other = vocab(&["x", "y", "z"]);
    let ck = e.dir.join("other");
    make_ckpt(&ck, &other);
    let s = err(&lr_find(&e, &["--init", ck.to_str().unwrap()]), 2);
    one_line(&s, "lr-find");
    assert!(
        s.contains("is not the shards'") && s.contains("--remap-vocab"),
        "{s}"
    );
    // start >= end
    let s = err(&lr_find(&e, &["--start-lr", "1", "--end-lr", "1e-3"]), 2);
    one_line(&s, "lr-find");
    assert!(
        s.contains("--start-lr") && s.contains("below --end-lr"),
        "{s}"
    );
    // no shards
    let o = Command::new(BIN)
        .arg(e.dir.join("missing"))
        .output()
        .unwrap();
    one_line(&err(&o, 2), "lr-find");
    // a language model given as --ckpt (a classifier's flag)
    let o = Command::new(BIN)
        .arg(&e.shards)
        .args(["--ckpt", ck.to_str().unwrap(), "--device", "cpu"])
        .output()
        .unwrap();
    let s = err(&o, 2);
    one_line(&s, "lr-find");
    assert!(
        s.contains("a language-model checkpoint; pass it with --init"),
        "{s}"
    );
}

#[test]
fn fewer_batches_than_iterations_cycles_the_data() {
    let e = env();
    // 44 batches per epoch
    let o = lr_find(&e, &["--num-it", "50", "--no-stop-div", "--end-lr", "1e-3"]);
    let out = ok(&o);
    let s = String::from_utf8_lossy(&o.stderr);
    assert!(
        s.contains("50 iterations but 44 batches per epoch: the data is cycled (2 epochs"),
        "{s}"
    );
    assert_eq!(records(&out, "lr_find_iter").len(), 50);
}

#[test]
fn out_of_memory_backs_off_and_the_test_completes() {
    let e = env();
    // every forward/backward over more than 1 stream fails as if out of memory
    let o = lr_find(
        &e,
        &["--num-it", "12", "--seed", "3", "--simulate-oom-above", "1"],
    );
    let out = ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("out of memory with micro-batches of 4 streams; retrying with 2")
            && stderr.contains("retrying with 1 (4 accumulation steps)"),
        "{stderr}"
    );
    assert_eq!(records(&out, "lr_find_start")[0]["micro_bs"], 4);
    let rep = &records(&out, "lr_find_repeat")[0];
    assert_eq!(rep["micro_bs"], 1);
    assert_eq!(
        rep["iterations"], 12,
        "every iteration ran after the back-off"
    );
    let it = records(&out, "lr_find_iter");
    assert!(it.iter().all(|v| v["loss"].as_f64().unwrap().is_finite()));
    // micro-batches of 1 stream from the start: the same curve as after the back-off
    // (gradients accumulated over the same 4 streams)
    let m = ok(&lr_find(
        &e,
        &words("--num-it 12 --seed 3 --bs 1 --effective-bs 4"),
    ));
    let first = |s: &str| records(s, "lr_find_iter")[0]["loss"].as_f64().unwrap();
    assert_eq!(first(&m), first(&out));
}

#[test]
fn bs_auto_probes_the_largest_micro_batch_that_fits() {
    let e = env();
    let o = lr_find(
        &e,
        &words("--num-it 8 --bs auto --effective-bs 4 --mem-budget 16G --simulate-oom-above 2"),
    );
    let out = ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("--bs auto: micro-batches of 2 streams, 2 per step (effective batch 4)"),
        "{stderr}"
    );
    let start = &records(&out, "lr_find_start")[0];
    assert_eq!(
        (start["bs"].as_u64(), start["micro_bs"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(records(&out, "lr_find_repeat")[0]["iterations"], 8);

    let s = err(&lr_find(&e, &["--bs", "8", "--effective-bs", "4"]), 2);
    assert!(s.contains("--bs 8 is larger than --effective-bs 4"), "{s}");
    let s = err(
        &lr_find(
            &e,
            &words("--bs auto --mem-budget 1M --effective-bs 4 --num-it 8"),
        ),
        2,
    );
    assert!(
        s.contains("--bs auto: not even a micro-batch of 1 stream"),
        "{s}"
    );
    assert_eq!(s.trim_end().lines().count(), 1, "{s}");
}
