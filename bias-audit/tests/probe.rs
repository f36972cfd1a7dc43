//! `bias-audit probe` on a tiny LM (emb 16, hid 32) and a synthetic shard set: `sex` is
//! written into the text (every document starts with "he" or "she"), `coin` is not (a seeded
//! 70/30 coin, independent of the words). The probe must find the first and not the second.
#![cfg(feature = "probe")]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use testkit::{lcg, vocab, Shards, TinyLm};

const BIN: &str = env!("CARGO_BIN_EXE_bias-audit");
const WORDS: [&str; 10] = [
    "he", "she", "good", "bad", "the", "movie", "was", "a", "film", ".",
];

/// 400 documents (fields label, sex, coin, one), every 4th in valid; document 3 has no sex.
fn write_shards(dir: &Path) {
    let mut w = Shards::create(dir, &vocab(&WORDS), &["label", "sex", "coin", "one"]);
    let words = ["good", "bad", "the", "movie", "was", "a", "film", "."];
    let mut s = 5u64;
    for i in 0..400 {
        let male = lcg(&mut s) % 2 == 0;
        let mut ids = vec![w.id("xxbos"), w.id(if male { "he" } else { "she" })];
        let n = 3 + lcg(&mut s) % 8;
        for _ in 0..n {
            ids.push(w.id(words[(lcg(&mut s) % words.len() as u64) as usize]));
        }
        let coin = if lcg(&mut s) % 10 < 7 {
            "heads"
        } else {
            "tails"
        };
        let sex = (i != 3).then_some(if male { "M" } else { "F" });
        let f = [
            Some(if i % 2 == 0 { "pos" } else { "neg" }),
            sex,
            Some(coin),
            Some("x"),
        ];
        let split = if i % 4 == 3 { "valid" } else { "train" };
        w.push(split, &ids, &f);
    }
    w.finish();
}

/// The shard set and a tiny LM (5 steps, bs 8) shared by the tests.
fn shared() -> &'static TinyLm {
    static S: OnceLock<TinyLm> = OnceLock::new();
    S.get_or_init(|| TinyLm::new(8, write_shards, lm_train::run_from))
}

fn probe(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("probe")
        .args(args)
        .args(testkit::CPU)
        .output()
        .unwrap()
}

fn probe_json(ckpt: &Path, protected: &str) -> Value {
    let s = shared();
    let o = probe(&[
        "--ckpt",
        ckpt.to_str().unwrap(),
        "--shards",
        s.shards.to_str().unwrap(),
        "--protected",
        protected,
        "--json",
    ]);
    serde_json::from_str(&testkit::ok(&o)).unwrap()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn probe_finds_an_attribute_written_in_the_text() {
    let s = shared();
    let r = probe_json(&s.lm, "sex");
    assert_eq!(r["type"], "probe");
    assert_eq!(r["checkpoint"], "language-model");
    assert_eq!(r["groups"], serde_json::json!(["F", "M"]));
    assert_eq!(r["skipped_missing"], 1);
    assert_eq!(r["features"], 48); // 3 × emb 16
    assert_eq!(f(&r, "train_docs") + f(&r, "held_out_docs"), 399.0);
    // 30%, stratified: round(0.3·n) per group
    let n: Vec<f64> = r["group_docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(n.iter().sum::<f64>(), 399.0);
    let want: f64 = n.iter().map(|x| (0.3 * x).round()).sum();
    assert_eq!(f(&r, "held_out_docs"), want);
    let (acc, base, auc) = (f(&r, "accuracy"), f(&r, "majority_accuracy"), f(&r, "auc"));
    assert!((0.45..0.6).contains(&base), "{base}");
    assert!(acc > 0.95 && auc > 0.98, "accuracy {acc}, AUC {auc}");
    assert!((f(&r, "accuracy_gain") - (acc - base)).abs() < 1e-12);
    // the same seed gives the same record
    assert_eq!(r, probe_json(&s.lm, "sex"));
}

#[test]
fn probe_stays_at_the_baseline_when_the_text_says_nothing() {
    let s = shared();
    let r = probe_json(&s.lm, "coin");
    let (acc, base, auc) = (f(&r, "accuracy"), f(&r, "majority_accuracy"), f(&r, "auc"));
    assert_eq!(r["majority_group"], "heads");
    assert!((0.6..0.8).contains(&base), "{base}");
    assert!(acc < base + 0.06, "accuracy {acc} vs baseline {base}");
    assert!((0.35..0.65).contains(&auc), "AUC {auc}");
    assert_eq!(r["skipped_missing"], 0);
}

#[test]
fn probe_reads_a_classifier_and_prints_a_table() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let clf = tmp.path().join("clf");
    let extra = testkit::words("--unfreeze 1:1e-2 --bs 16");
    testkit::train_clf(clf_train::run_from, &s.shards, &s.lm, &clf, &extra);
    let r = probe_json(&clf, "sex");
    assert_eq!(r["checkpoint"], "classifier");
    assert!(f(&r, "accuracy") > 0.95);
    let json = tmp.path().join("probe.json");
    let o = probe(&[
        "--ckpt",
        clf.to_str().unwrap(),
        "--shards",
        s.shards.to_str().unwrap(),
        "--protected",
        "sex",
        "--split",
        "valid",
        "--json-out",
        json.to_str().unwrap(),
    ]);
    let t = testkit::ok(&o);
    for needle in [
        "accuracy",
        "baseline",
        "ROC AUC",
        "always \"",
        "documents       99 ",
    ] {
        assert!(t.contains(needle), "{needle:?} not in\n{t}");
    }
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rec["splits"], serde_json::json!(["valid"]));
}

#[test]
fn probe_bad_input_is_one_line_exit_2() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let (sh, lm) = (s.shards.to_str().unwrap(), s.lm.to_str().unwrap());
    let out = tmp.path().join("p.json");
    let o = out.to_str().unwrap();
    let base = |ckpt: &str, col: &str| {
        vec![
            "--ckpt".to_string(),
            ckpt.into(),
            "--shards".into(),
            sh.into(),
            "--protected".into(),
            col.into(),
            "--json-out".into(),
            o.into(),
        ]
    };
    let with = |mut v: Vec<String>, extra: &[&str]| {
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        (
            "no such column",
            base(lm, "gender"),
            vec!["no protected column \"gender\"", "label, sex, coin, one"],
        ),
        (
            "single value",
            base(lm, "one"),
            vec!["a single value (\"x\")", "at least two groups"],
        ),
        (
            "not a checkpoint",
            base(sh, "sex"),
            vec!["config.json", "checkpoint"],
        ),
        (
            "no such checkpoint",
            base("/nonexistent/lm", "sex"),
            vec!["no such checkpoint directory"],
        ),
        (
            "held-out fraction",
            with(base(lm, "sex"), &["--held-out", "1.5"]),
            vec!["--held-out 1.5"],
        ),
        (
            "no such split",
            with(base(lm, "sex"), &["--split", "test"]),
            vec!["test"],
        ),
    ];
    for (what, args, needles) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        testkit::assert_error(what, &probe(&args), "bias-audit", &needles);
        assert!(!out.exists(), "{what}: nothing written");
    }
}
