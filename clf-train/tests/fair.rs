//! `--reweigh` and `--adversary` end to end on a tiny model (emb 16, hid 32) and a synthetic
//! shard set where the protected attribute leaks into the text: every document starts with
//! "he" or "she", men are mostly positive and women mostly negative, and the sentiment words
//! are noisy, so a plain classifier leans on the pronoun.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use testkit::{lcg, of_type, ok, read_jsonl, sentiment, vocab, words, Shards, TinyLm};

const BIN: &str = env!("CARGO_BIN_EXE_clf-train");
const WORDS: [&str; 12] = [
    "he", "she", "good", "great", "bad", "awful", "the", "movie", "was", "a", "film", ".",
];
const FIELDS: [&str; 4] = ["label", "sex", "one", "rating"];

/// `n` documents, every 3rd in valid; `edit` may change the fields of document `i`.
fn write_shards(dir: &Path, n: usize, edit: impl Fn(usize, &mut [Option<String>; 4])) {
    let mut w = Shards::create(dir, &vocab(&WORDS), &FIELDS);
    let neutral = ["the", "movie", "was", "a", "film", "."];
    let mut s = 11u64;
    for i in 0..n {
        let male = lcg(&mut s) % 2 == 0;
        let p_pos = if male { 75 } else { 25 };
        let pos = lcg(&mut s) % 100 < p_pos;
        let mut ids = vec![w.id("xxbos"), w.id(if male { "he" } else { "she" })];
        for _ in 0..6 {
            let t = if lcg(&mut s) % 2 == 0 {
                let p = pos != (lcg(&mut s) % 100 < 35); // noisy sentiment
                sentiment(p, lcg(&mut s))
            } else {
                neutral[(lcg(&mut s) % neutral.len() as u64) as usize]
            };
            ids.push(w.id(t));
        }
        let mut f = [
            Some(if pos { "pos" } else { "neg" }.to_string()),
            Some(if male { "M" } else { "F" }.to_string()),
            Some("x".to_string()),
            Some(format!("{}", lcg(&mut s) % 100)),
        ];
        edit(i, &mut f);
        let split = if i % 3 == 2 { "valid" } else { "train" };
        let fr: Vec<Option<&str>> = f.iter().map(|x| x.as_deref()).collect();
        w.push(split, &ids, &fr);
    }
    w.finish();
}

/// 480 documents (320 train, 160 valid) and a tiny LM (5 steps, bs 8) shared by the tests.
fn shared() -> &'static TinyLm {
    static S: OnceLock<TinyLm> = OnceLock::new();
    S.get_or_init(|| TinyLm::new(8, |d| write_shards(d, 480, |_, _| {}), lm_train::run_from))
}

/// Batches of 16 × bptt 8, at most 16 tokens a document, CPU, fp32, one thread, no bars.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(words("--bs 16 --bptt 8 --max-len 16 --progress none"))
        .args(testkit::CPU)
        .args(testkit::FP32)
        .output()
        .unwrap()
}

/// `clf-train SHARDS --encoder LM -o DIR/NAME` with fastai's schedule of the tests, `extra`.
fn train(dir: &Path, name: &str, shards: &Path, extra: &[&str]) -> (PathBuf, Vec<Value>) {
    let s = shared();
    let out = dir.join(name);
    let m = dir.join(format!("{name}.jsonl"));
    let mut args = vec![
        shards.to_str().unwrap(),
        "--encoder",
        s.lm.to_str().unwrap(),
    ];
    args.extend([
        "-o",
        out.to_str().unwrap(),
        "--metrics",
        m.to_str().unwrap(),
    ]);
    args.extend(words("--unfreeze 1:2e-2x2,all:1e-2x6 --drop-mult 0.1"));
    args.extend(extra);
    ok(&run(&args));
    (out, read_jsonl(&m))
}

/// Predictions on valid: (sex, true label, predicted label).
fn predict(ckpt: &Path) -> Vec<(String, String, String)> {
    let o = Command::new(BIN)
        .args(["predict", "--ckpt", ckpt.to_str().unwrap()])
        .arg(&shared().shards)
        .args(["--split", "valid"])
        .args(testkit::CPU)
        .output()
        .unwrap();
    testkit::jsonl(&ok(&o))
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("sex"), s("label"), s("pred"))
        })
        .collect()
}

/// |TPR(F) − TPR(M)| + |FPR(F) − FPR(M)|: the equalized-odds gap of the predictions.
fn odds_gap(p: &[(String, String, String)]) -> f64 {
    let rate = |sex: &str, label: &str| {
        let rows: Vec<_> = p.iter().filter(|r| r.0 == sex && r.1 == label).collect();
        rows.iter().filter(|r| r.2 == "pos").count() as f64 / rows.len().max(1) as f64
    };
    (rate("F", "pos") - rate("M", "pos")).abs() + (rate("F", "neg") - rate("M", "neg")).abs()
}

#[test]
fn adversary_shrinks_the_group_gap() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let (plain, _) = train(tmp.path(), "plain", &s.shards, &[]);
    let (adv, recs) = train(
        tmp.path(),
        "adv",
        &s.shards,
        &words("--adversary sex --adversary-weight 1 --adversary-lr 1e-2"),
    );
    // the adversary's setting, baseline and per-epoch numbers are logged
    let a = of_type(&recs, "clf_adversary");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["groups"], serde_json::json!(["F", "M"]));
    assert_eq!(a[0]["mode"], "odds");
    let maj = a[0]["majority_accuracy"].as_f64().unwrap();
    assert!((0.5..0.7).contains(&maj), "{maj}");
    let epochs = of_type(&recs, "clf_epoch");
    assert_eq!(epochs.len(), 8);
    for e in &epochs {
        for k in [
            "adv_loss",
            "adv_accuracy",
            "valid_adv_loss",
            "valid_adv_accuracy",
        ] {
            let x = e[k].as_f64().unwrap_or(f64::NAN);
            assert!(x.is_finite() && x >= 0.0, "{k}: {e}");
        }
    }
    assert!(of_type(&recs, "clf_step")
        .iter()
        .all(|r| r["adv_loss"].is_number()));
    // the checkpoint holds the adversary (for --resume); predict ignores it
    assert!(adv.join("adversary.safetensors").is_file());
    let (gp, ga) = (odds_gap(&predict(&plain)), odds_gap(&predict(&adv)));
    eprintln!("equalized-odds gap: plain {gp:.3}, adversary {ga:.3}");
    assert!(
        gp > 0.3,
        "the plain classifier should use the pronoun: {gp}"
    );
    assert!(
        ga < 0.6 * gp,
        "the adversary should shrink the gap: plain {gp}, adversary {ga}"
    );
    // and it still classifies above chance
    let last = epochs.last().unwrap()["accuracy"].as_f64().unwrap();
    assert!(last > 0.6, "{last}");
}

#[test]
fn adversary_resume_is_bit_exact() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--adversary", "sex", "--adversary-mode", "parity"];
    let (full, _) = train(tmp.path(), "full", &s.shards, &extra);
    // interrupted mid-epoch, then resumed
    let out = tmp.path().join("part");
    let (sh, lm, o) = (
        s.shards.to_str().unwrap(),
        s.lm.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let mut args = vec![sh, "--encoder", lm, "-o", o];
    args.extend(words(
        "--unfreeze 1:2e-2x2,all:1e-2x6 --drop-mult 0.1 --stop-after 45 -q",
    ));
    args.extend(extra);
    testkit::err(&run(&args), 130);
    ok(&run(&[sh, "-o", o, "--resume", "-q"]));
    for f in ["model.safetensors", "adversary.safetensors"] {
        let a = tch::Tensor::read_safetensors(full.join(f)).unwrap();
        let b: std::collections::BTreeMap<String, tch::Tensor> =
            tch::Tensor::read_safetensors(out.join(f))
                .unwrap()
                .into_iter()
                .collect();
        for (n, t) in a {
            assert!(t.equal(&b[&n]), "{f}: {n} differs after resume");
        }
    }
}

#[test]
fn reweigh_logs_the_weights_and_trains() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let (_, recs) = train(tmp.path(), "rw", &s.shards, &["--reweigh", "sex"]);
    let r = of_type(&recs, "clf_reweigh");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["col"], "sex");
    // the weights from the training split's counts, by hand
    let set = shared::shards::ShardSet::open(&s.shards).unwrap();
    let train = set.split("train").unwrap();
    let (lab, sex) = (
        train.fields.column("label").unwrap(),
        train.fields.column("sex").unwrap(),
    );
    let n = train.docs() as f64;
    let count = |g: Option<&str>, y: Option<&str>| {
        (0..train.docs())
            .filter(|&d| g.map_or(true, |g| sex.get(d) == Some(g)))
            .filter(|&d| y.map_or(true, |y| lab.get(d) == Some(y)))
            .count() as f64
    };
    let cells = r[0]["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        let (g, y) = (c["group"].as_str().unwrap(), c["label"].as_str().unwrap());
        let want = count(Some(g), None) * count(None, Some(y)) / (n * count(Some(g), Some(y)));
        assert_eq!(c["count"].as_f64().unwrap(), count(Some(g), Some(y)));
        assert!((c["weight"].as_f64().unwrap() - want).abs() < 1e-12, "{c}");
    }
    // women are mostly negative: their positives weigh more than 1, their negatives less
    let w = |g: &str, y: &str| {
        cells
            .iter()
            .find(|c| c["group"] == g && c["label"] == y)
            .unwrap()["weight"]
            .as_f64()
            .unwrap()
    };
    assert!(w("F", "pos") > 1.0 && w("F", "neg") < 1.0 && w("M", "pos") < 1.0);
    let epochs = of_type(&recs, "clf_epoch");
    assert_eq!(epochs.len(), 8);
    assert!(epochs
        .iter()
        .all(|e| e["train_loss"].as_f64().unwrap().is_finite()));
    let (first, last) = (
        epochs[0]["train_loss"].as_f64().unwrap(),
        epochs[7]["train_loss"].as_f64().unwrap(),
    );
    assert!(last < first, "weighted loss falls: {first} → {last}");
}

#[test]
fn bad_protected_columns_are_one_line_exit_2() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let missing_value = d.join("missing_value");
    write_shards(&missing_value, 60, |i, f| {
        if i == 7 {
            f[1] = None
        }
    });
    let unseen = d.join("unseen");
    write_shards(&unseen, 60, |i, f| {
        if i == 8 {
            f[1] = Some("X".into())
        }
    });
    let out = d.join("out");
    let (sh, lm, o) = (
        s.shards.to_str().unwrap(),
        s.lm.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let base = |shards: &str| {
        vec![
            shards.to_string(),
            "--encoder".into(),
            lm.into(),
            "-o".into(),
            o.into(),
        ]
    };
    let with = |shards: &str, extra: &[&str]| {
        let mut v = base(shards);
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let mv = missing_value.to_str().unwrap();
    let un = unseen.to_str().unwrap();
    let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        (
            "no such column",
            with(sh, &["--adversary", "gender"]),
            vec!["no protected column \"gender\"", "label, sex, one, rating"],
        ),
        (
            "single value",
            with(sh, &["--reweigh", "one"]),
            vec!["single value (\"x\")", "at least two groups"],
        ),
        (
            "missing value",
            with(mv, &["--adversary", "sex"]),
            vec!["input row 7", "no value in the protected column \"sex\""],
        ),
        (
            "value unseen in training",
            with(un, &["--adversary", "sex"]),
            vec!["valid.fields", "\"X\"", "not seen in training"],
        ),
        (
            "regression",
            with(
                sh,
                &words("--label-col rating --task regression --reweigh sex"),
            ),
            vec!["--reweigh sex is for classification"],
        ),
        (
            "protected = label",
            with(sh, &["--adversary", "label"]),
            vec!["must not be the label column"],
        ),
        (
            "weight without adversary",
            with(sh, &["--adversary-weight", "0.5"]),
            vec!["--adversary-weight needs --adversary COL"],
        ),
        (
            "negative weight",
            with(sh, &["--adversary", "sex", "--adversary-weight=-1"]),
            vec!["--adversary-weight"],
        ),
    ];
    for (what, args, needles) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        testkit::assert_error(what, &run(&args), "clf-train", &needles);
        assert!(!out.exists(), "{what}: nothing written");
    }
}
