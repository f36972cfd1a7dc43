//! lr-find --ckpt end to end: a tiny classifier (emb 16, hid 32, 2 layers) made in this test
//! from a synthetic labelled shard set, a 5-step language model (lm-train's library) and one
//! short clf-train epoch (clf-train's library, as its binary runs it). Every lr-find run is its
//! own process (torch's generator is process-global).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use shared::vocab::Vocab;
use testkit::{err, files, lcg, ok, one_line, records, sentiment, vocab, words, Shards, TinyLm};

const BIN: &str = env!("CARGO_BIN_EXE_lr-find");

const WORDS: [&str; 14] = [
    "the", "movie", "was", "good", "bad", "plot", "acting", "a", "film", "great", "awful", ".",
    "and", "it",
];

/// `n` documents of 4–20 words, "good"/"great" in the pos ones, "bad"/"awful" in the neg ones;
/// every 5th document in valid. Field "label": pos / neg.
fn write_shards(dir: &Path, v: &Vocab, n: usize) {
    let neutral = [
        "the", "movie", "was", "plot", "acting", "a", "film", ".", "and", "it",
    ];
    let mut w = Shards::create(dir, v, &["label"]);
    let mut s = 11u64;
    for d in 0..n {
        let pos = d % 2 == 0;
        let len = 4 + (lcg(&mut s) % 17) as usize;
        let mut ids = vec![w.id("xxbos")];
        for _ in 0..len {
            let t = if lcg(&mut s) % 10 < 4 {
                sentiment(pos, lcg(&mut s))
            } else {
                neutral[(lcg(&mut s) % neutral.len() as u64) as usize]
            };
            ids.push(w.id(t));
        }
        let split = if d % 5 == 4 { "valid" } else { "train" };
        w.push(split, &ids, &[Some(if pos { "pos" } else { "neg" })]);
    }
    w.finish();
}

struct Fixture {
    tiny: TinyLm,
    clf: PathBuf,
}

/// One shard set (80 docs: 64 train, 16 valid), LM (bs 4) and classifier for all tests.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tiny = TinyLm::new(
            4,
            |d| write_shards(d, &vocab(&WORDS), 80),
            lm_train::run_from,
        );
        let clf = tiny.dir.join("clf");
        let extra = words("--unfreeze 1:2e-2 --bs 8 --max-len 16");
        testkit::train_clf(clf_train::run_from, &tiny.shards, &tiny.lm, &clf, &extra);
        Fixture { tiny, clf }
    })
}

fn lr_find(shards: &Path, ckpt: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg(shards)
        .arg("--ckpt")
        .arg(ckpt)
        .args(words("--precision fp32 --device cpu --threads 1"))
        .args(extra)
        .output()
        .unwrap()
}

fn curve(out: &str) -> Vec<(f64, f64)> {
    records(out, "lr_find_iter")
        .iter()
        .map(|v| (v["lr"].as_f64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn classifier_curve_has_suggestions_is_seeded_and_ckpt_only_read() {
    let f = fixture();
    let before = files(&f.clf);
    assert!(before.contains_key("model.safetensors") && before.contains_key("config.json"));
    let args = ["--num-it", "20", "--end-lr", "1", "--seed", "5", "-q"];
    let a = ok(&lr_find(&f.tiny.shards, &f.clf, &args));
    let start = &records(&a, "lr_find_start")[0];
    assert_eq!(start["model"], "classifier");
    assert_eq!(start["init"], f.clf.to_str().unwrap());
    assert_eq!(start["task"], "classification");
    assert_eq!(start["classes"], serde_json::json!(["neg", "pos"]));
    assert_eq!(start["unfreeze_stage"], 1, "default: head only");
    assert_eq!(start["layer_groups"], 4);
    assert_eq!(start["freeze"], true);
    assert_eq!(start["bs"], 8, "--bs defaults to the checkpoint's");
    assert_eq!(start["bptt"], 8);
    assert_eq!(start["batches_per_epoch"], 8, "64 train docs / bs 8");
    let it = curve(&a);
    assert!(!it.is_empty() && it.len() <= 20);
    assert_eq!(it[0].0, 1e-7);
    assert!(it.iter().take(5).all(|p| p.1.is_finite() && p.1 > 0.0));
    let sum = &records(&a, "lr_find_summary")[0];
    assert_eq!(sum["lr"], sum["valley"]);
    assert!(sum["valley"].as_f64().unwrap() > 0.0, "{sum}");
    assert!(sum["detail"]["minimum"]["point_lr"].is_number(), "{sum}");
    // seeded: the same curve again (the data is cycled past 8 batches, reshuffled the same)
    let b = ok(&lr_find(&f.tiny.shards, &f.clf, &args));
    assert_eq!(curve(&a), curve(&b), "same seed: bit-identical losses");
    let c = ok(&lr_find(
        &f.tiny.shards,
        &f.clf,
        &["--num-it", "20", "--end-lr", "1", "--seed", "6", "-q"],
    ));
    assert_ne!(curve(&a), curve(&c), "another seed: another batch order");
    assert_eq!(
        files(&f.clf),
        before,
        "the --ckpt checkpoint is byte-identical afterwards"
    );
}

#[test]
fn classifier_unfreeze_stage_and_valid_loss() {
    let f = fixture();
    let before = files(&f.clf);
    let head = ok(&lr_find(
        &f.tiny.shards,
        &f.clf,
        &["--num-it", "8", "--no-stop-div", "--end-lr", "1", "-q"],
    ));
    let all = ok(&lr_find(
        &f.tiny.shards,
        &f.clf,
        &words("--num-it 8 --no-stop-div --end-lr 1 --unfreeze-stage all -q"),
    ));
    let s = &records(&all, "lr_find_start")[0];
    assert_eq!(s["unfreeze_stage"], 4);
    assert_eq!(s["freeze"], false);
    let (h, a) = (curve(&head), curve(&all));
    assert_eq!(h.len(), 8);
    assert_eq!(h[0], a[0], "the first batch's loss is before any step");
    assert_ne!(h, a, "more trainable groups, another curve");
    // the validation loss after each step; the first N batches with --valid-batches
    let v = ok(&lr_find(
        &f.tiny.shards,
        &f.clf,
        &words("--num-it 6 --no-stop-div --valid-loss --unfreeze-stage 2 --bs 4 -q"),
    ));
    let s = &records(&v, "lr_find_start")[0];
    assert_eq!(
        (s["loss"].as_str(), s["bs"].as_u64()),
        (Some("valid"), Some(4))
    );
    let vl = curve(&v);
    assert_eq!(vl.len(), 6);
    assert!(vl.iter().all(|p| p.1.is_finite() && p.1 > 0.0), "{vl:?}");
    assert_eq!(files(&f.clf), before);
}

#[test]
fn classifier_bad_input_is_one_line_and_exit_2() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // shards of another vocab
    let other = tmp.path().join("other");
    write_shards(&other, &vocab(&[&WORDS[..], &["extra"]].concat()), 20);
    let s = err(&lr_find(&other, &f.clf, &["--num-it", "6"]), 2);
    one_line(&s, "lr-find");
    assert!(
        s.contains("vocab hash")
            && s.contains("--ckpt classifier")
            && s.contains("numericalize --vocab"),
        "{s}"
    );
    // a stage the model does not have
    let s = err(
        &lr_find(&f.tiny.shards, &f.clf, &["--unfreeze-stage", "5"]),
        2,
    );
    one_line(&s, "lr-find");
    assert!(s.contains("4 layer groups"), "{s}");
    // flags of the language model
    let s = err(&lr_find(&f.tiny.shards, &f.clf, &["--bptt", "16"]), 2);
    assert!(s.contains("--bptt") && s.contains("--ckpt"), "{s}");
    // --unfreeze-stage needs --ckpt
    let o = Command::new(BIN)
        .arg(&f.tiny.shards)
        .args(["--unfreeze-stage", "2"])
        .output()
        .unwrap();
    assert!(err(&o, 2).contains("--ckpt"));
    // not a directory
    let s = err(&lr_find(&f.tiny.shards, &tmp.path().join("nope"), &[]), 2);
    one_line(&s, "lr-find");
    assert!(s.contains("no such checkpoint"), "{s}");
}

#[test]
fn classifier_out_of_memory_backs_off_to_micro_batches() {
    let f = fixture();
    // batches of 8 documents; every forward/backward over more than 2 fails as out of memory
    let o = lr_find(
        &f.tiny.shards,
        &f.clf,
        &["--num-it", "10", "--seed", "5", "--simulate-oom-above", "2"],
    );
    let out = ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("out of memory with micro-batches of 8 documents; retrying with 4")
            && stderr.contains("retrying with 2 (4 accumulation steps)"),
        "{stderr}"
    );
    let rep = &records(&out, "lr_find_repeat")[0];
    assert_eq!(
        (rep["micro_bs"].as_u64(), rep["iterations"].as_u64()),
        (Some(2), Some(10))
    );
    assert!(curve(&out).iter().all(|p| p.1.is_finite()));
    // --bs auto probes language models only; a classifier's --bs is documents
    let s = err(&lr_find(&f.tiny.shards, &f.clf, &["--bs", "auto"]), 2);
    one_line(&s, "lr-find");
    assert!(
        s.contains("with --ckpt give --bs as documents per batch"),
        "{s}"
    );
}
