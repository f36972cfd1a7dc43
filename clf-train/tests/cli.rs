//! clf-train end to end on tiny models (emb 16, hid 32, 2 LSTM layers) and synthetic shard
//! sets. Each training run is its own process (torch's random generator is process-global);
//! the language model is made once, in process, with lm-train's library (2 steps).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use shared::vocab::Vocab;
use tch::Tensor;
use testkit::{err, lcg, of_type, ok, read_jsonl, sentiment, vocab, words, Shards, TinyLm};

const BIN: &str = env!("CARGO_BIN_EXE_clf-train");

const WORDS: [&str; 14] = [
    "the", "movie", "was", "good", "bad", "plot", "acting", "a", "film", "great", "awful", ".",
    "and", "it",
];
const FIELDS: [&str; 4] = ["label", "rating", "tags", "sex"];

/// One synthetic document: neutral words with "good"/"great" (pos) or "bad"/"awful" (neg);
/// rating = 10 × the share of positive words; tags: "g" when it holds "good", "a" for "awful".
struct Doc {
    ids: Vec<u32>,
    fields: [Option<String>; 4],
}

fn make_docs(v: &Vocab, n: usize, seed: u64) -> Vec<Doc> {
    let id = |t: &str| v.get(t).unwrap();
    let neutral = [
        "the", "movie", "was", "plot", "acting", "a", "film", ".", "and", "it",
    ];
    let mut s = seed;
    (0..n)
        .map(|d| {
            let pos = d % 2 == 0;
            let len = 4 + (lcg(&mut s) % 28) as usize;
            let mut ids = vec![id("xxbos")];
            let (mut n_pos, mut n_sent, mut good, mut awful) = (0, 0, false, false);
            for _ in 0..len {
                let r = lcg(&mut s) % 10;
                let w = if r < 5 {
                    n_sent += 1;
                    let flip = lcg(&mut s) % 10 == 0; // some noise
                    let p = pos != flip;
                    if p {
                        n_pos += 1;
                    }
                    let w = sentiment(p, lcg(&mut s));
                    good |= w == "good";
                    awful |= w == "awful";
                    w
                } else {
                    neutral[(lcg(&mut s) % neutral.len() as u64) as usize]
                };
                ids.push(id(w));
            }
            let rating = if n_sent == 0 {
                5.0
            } else {
                10.0 * n_pos as f64 / n_sent as f64
            };
            let mut tags = vec![];
            if good {
                tags.push("g");
            }
            if awful {
                tags.push("a");
            }
            Doc {
                ids,
                fields: [
                    Some(if pos { "pos" } else { "neg" }.into()),
                    Some(format!("{rating:.2}")),
                    Some(tags.join(";")),
                    Some(if lcg(&mut s) % 2 == 0 { "F" } else { "M" }.into()),
                ],
            }
        })
        .collect()
}

/// Writes docs; every 5th goes to valid. `edit` may change a doc's fields by index.
fn write_shards(dir: &Path, v: &Vocab, n: usize, edit: impl Fn(usize, &mut Doc, &mut String)) {
    let mut w = Shards::create(dir, v, &FIELDS);
    for (i, mut d) in make_docs(v, n, 7).into_iter().enumerate() {
        let mut split = if i % 5 == 4 { "valid" } else { "train" }.to_string();
        edit(i, &mut d, &mut split);
        let f: Vec<Option<&str>> = d.fields.iter().map(|x| x.as_deref()).collect();
        w.push(&split, &d.ids, &f);
    }
    w.finish();
}

/// One shard set (96 docs: 77 train, 19 valid) and one tiny LM (bs 4) for all tests.
fn shared() -> &'static TinyLm {
    static S: OnceLock<TinyLm> = OnceLock::new();
    S.get_or_init(|| {
        let write = |d: &Path| write_shards(d, &vocab(&WORDS), 96, |_, _, _| {});
        TinyLm::new(4, write, lm_train::run_from)
    })
}

/// Batches of 8 × bptt 8, at most 16 tokens a document, CPU, fp32, one thread, no bars.
fn tiny() -> Vec<&'static str> {
    let mut a = words("--bs 8 --bptt 8 --max-len 16 --progress none");
    a.extend(testkit::CPU.into_iter().chain(testkit::FP32));
    a
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).args(tiny()).output().unwrap()
}

fn run_predict(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("predict")
        .args(args)
        .args(testkit::CPU)
        .output()
        .unwrap()
}

fn train(dir: &Path, name: &str, extra: &[&str]) -> (PathBuf, Vec<serde_json::Value>) {
    let s = shared();
    let out = dir.join(name);
    let m = dir.join(format!("{name}.jsonl"));
    let mut args = vec![
        s.shards.to_str().unwrap(),
        "--encoder",
        s.lm.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(["--metrics", m.to_str().unwrap()]);
    args.extend(extra);
    ok(&run(&args));
    (out, read_jsonl(&m))
}

fn weights(dir: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(dir.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.equal(b)
}

#[test]
fn classification_learns_above_chance() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, r) = train(tmp.path(), "clf", &["--unfreeze", "1:5e-2x2,all:2e-2x6"]);
    let start = of_type(&r, "clf_start")[0];
    assert_eq!(start["task"], "classification");
    assert_eq!(start["classes"], serde_json::json!(["neg", "pos"]));
    assert_eq!(
        start["groups"],
        serde_json::json!(["embedding", "lstm0", "lstm1", "head"])
    );
    let ep = of_type(&r, "clf_epoch");
    assert_eq!(ep.len(), 8);
    let first = ep[0]["train_loss"].as_f64().unwrap();
    let last = ep.last().unwrap();
    assert!(last["train_loss"].as_f64().unwrap() < 0.5 * first, "{ep:?}");
    assert!(
        last["valid_loss"].as_f64().unwrap() < ep[0]["valid_loss"].as_f64().unwrap(),
        "{ep:?}"
    );
    // 19 validation documents, fixed seed: 0.84 here; chance is 0.5
    let acc = last["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.7, "valid accuracy {acc}: {ep:?}");
    assert!(last["macro_f1"].as_f64().unwrap() > 0.6);
}

#[test]
fn regression_is_detected_and_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, r) = train(
        tmp.path(),
        "reg",
        &words("--label-col rating --unfreeze 1:5e-2x2,all:2e-2x6 --y-range -0.5 10.5"),
    );
    assert_eq!(of_type(&r, "clf_start")[0]["task"], "regression");
    let ep = of_type(&r, "clf_epoch");
    let (a, b) = (
        ep[0]["valid_loss"].as_f64().unwrap(),
        ep.last().unwrap()["valid_loss"].as_f64().unwrap(),
    );
    assert!(b < 0.9 * a, "valid MSE {a} → {b}");
    let (ta, tb) = (
        ep[0]["train_loss"].as_f64().unwrap(),
        ep.last().unwrap()["train_loss"].as_f64().unwrap(),
    );
    assert!(tb < 0.5 * ta, "train MSE {ta} → {tb}");
    for k in ["mae", "rmse", "r2"] {
        assert!(ep.last().unwrap()[k].is_number(), "{k} in {:?}", ep.last());
    }
}

#[test]
fn multi_label_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, r) = train(
        tmp.path(),
        "ml",
        &words("--label-col tags --label-delim ; --unfreeze 1:5e-2x3,all:1e-2x3"),
    );
    let st = of_type(&r, "clf_start")[0];
    assert_eq!(st["task"], "multi-label");
    assert_eq!(st["classes"], serde_json::json!(["a", "g"]));
    let ep = of_type(&r, "clf_epoch");
    let (a, b) = (
        ep[0]["train_loss"].as_f64().unwrap(),
        ep.last().unwrap()["train_loss"].as_f64().unwrap(),
    );
    assert!(b < a, "BCE {a} → {b}");
    assert!(ep.last().unwrap()["f1_per_label"]["g"].is_number());
}

#[test]
fn frozen_groups_do_not_change() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let lm = weights(&s.lm);
    let enc = |w: &BTreeMap<String, Tensor>, lm_name: &str| {
        w[&lm_name.replacen("0.", "0.module.", 1)].shallow_clone()
    };
    // phase 1 trains the head only
    let (head, _) = train(tmp.path(), "head", &["--unfreeze", "1:1e-2"]);
    let w = weights(&head);
    for (n, t) in &lm {
        if n.starts_with("0.") && !n.starts_with("0.encoder_dp") {
            assert!(same(&enc(&w, n), t), "{n} changed in a head-only phase");
        }
    }
    // freeze_to(-2): the last LSTM and the head train; embedding and the first LSTM do not
    let (two, r) = train(tmp.path(), "two", &["--unfreeze", "2:1e-2"]);
    let w = weights(&two);
    let w0 = weights(&head); // head-only run, for the head's initial-state comparison below
    assert!(same(&enc(&w, "0.encoder.weight"), &lm["0.encoder.weight"]));
    assert!(same(
        &enc(&w, "0.rnns.0.module.weight_ih_l0"),
        &lm["0.rnns.0.module.weight_ih_l0"]
    ));
    assert!(same(
        &enc(&w, "0.rnns.0.weight_hh_l0_raw"),
        &lm["0.rnns.0.weight_hh_l0_raw"]
    ));
    assert!(!same(
        &enc(&w, "0.rnns.1.module.weight_ih_l0"),
        &lm["0.rnns.1.module.weight_ih_l0"]
    ));
    assert!(!same(
        &enc(&w, "0.rnns.1.weight_hh_l0_raw"),
        &lm["0.rnns.1.weight_hh_l0_raw"]
    ));
    assert!(w0.contains_key("1.layers.0.2.weight") && w.contains_key("1.layers.1.2.weight"));
    let ph = of_type(&r, "clf_phase");
    assert_eq!(
        (
            ph[0]["trainable_groups"].as_u64(),
            ph[0]["frozen_groups"].as_u64()
        ),
        (Some(2), Some(2))
    );
}

#[test]
fn discriminative_lrs_per_group() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, r) = train(
        tmp.path(),
        "lrs",
        &words("--unfreeze 1:2e-2,2:1e-2,3:5e-3,all:1e-3 --log-every 1"),
    );
    let ph = of_type(&r, "clf_phase");
    assert_eq!(ph.len(), 4);
    let lrs = |i: usize| -> Vec<f64> {
        ph[i]["lrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    assert_eq!(lrs(0), vec![2e-2; 4]);
    for (i, top) in [(1, 1e-2), (2, 5e-3), (3, 1e-3)] {
        let l = lrs(i);
        // fastai: slice(lr/2.6**4, lr) spread by even_mults over the 4 groups
        let want: Vec<f64> = (0..4)
            .map(|g| top / 2.6f64.powi(4) * (2.6f64.powi(4)).powf(g as f64 / 3.0))
            .collect();
        for (a, b) in l.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-12 * b.max(1e-3),
                "phase {i}: {l:?} vs {want:?}"
            );
        }
    }
    // the per-step records carry every group's current lr, in the same ratios
    let st = of_type(&r, "clf_step");
    let last = st.last().unwrap()["lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(last.len(), 4);
    assert!(
        (last[3] / last[0] - 2.6f64.powi(4)).abs() < 1e-6,
        "{last:?}"
    );
    assert_eq!(of_type(&r, "clf_phase")[2]["trainable_groups"], 3);
}

#[test]
fn predict_writes_fields_in_input_order() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let (clf, _) = train(tmp.path(), "clf", &["--unfreeze", "1:2e-2"]);
    let o = run_predict(&["--ckpt", clf.to_str().unwrap(), s.shards.to_str().unwrap()]);
    let lines = testkit::jsonl(&ok(&o));
    assert_eq!(lines.len(), 96);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["row"], i as u64, "input order");
        let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "label", "rating", "tags", "sex", "split", "row", "pred", "probs", "score",
        ] {
            assert!(keys.contains(&k), "{k} missing in {l}");
        }
        assert_eq!(l["split"], if i % 5 == 4 { "valid" } else { "train" });
        let (pn, pp) = (
            l["probs"]["neg"].as_f64().unwrap(),
            l["probs"]["pos"].as_f64().unwrap(),
        );
        assert!((pn + pp - 1.0).abs() < 1e-5);
        assert_eq!(l["score"].as_f64().unwrap(), pp);
        assert_eq!(l["pred"], if pp > pn { "pos" } else { "neg" });
    }
    // one split, renamed columns, to a file
    let f = tmp.path().join("p.jsonl");
    ok(&run_predict(&[
        "--ckpt",
        clf.to_str().unwrap(),
        s.shards.to_str().unwrap(),
        "--split",
        "valid",
        "--pred-col",
        "y_pred",
        "--score-col",
        "p_pos",
        "-o",
        f.to_str().unwrap(),
    ]));
    let v = read_jsonl(&f);
    assert_eq!(v.len(), 19);
    assert!(v
        .windows(2)
        .all(|w| w[0]["row"].as_u64() < w[1]["row"].as_u64()));
    assert!(v[0]["y_pred"].is_string() && v[0]["p_pos"].is_number() && v[0].get("pred").is_none());
    // the same predictions as the full run
    assert_eq!(v[0]["p_pos"], lines[4]["score"]);
}

#[test]
fn resume_is_bit_exact() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let spec = ["--unfreeze", "1:2e-2,all:1e-2"];
    let (full, _) = train(tmp.path(), "full", &spec);
    let out = tmp.path().join("part");
    let base = [
        s.shards.to_str().unwrap(),
        "--encoder",
        s.lm.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ];
    // 9 batches per epoch: stop mid-epoch in phase 0, then mid-epoch in phase 1
    err(
        &run(&[&base[..], &spec, &["--stop-after", "4"]].concat()),
        130,
    );
    let mut resume = vec![s.shards.to_str().unwrap(), "-o", out.to_str().unwrap()];
    resume.extend(words("--resume -q --metrics /dev/null"));
    err(&run(&[&resume[..], &["--stop-after", "13"]].concat()), 130);
    ok(&run(&resume));
    let (a, b) = (weights(&full), weights(&out));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (n, t) in &a {
        assert!(same(t, &b[n]), "{n} differs after resume");
    }
}

fn strings<'a>(a: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    a.into_iter().map(String::from).collect()
}

/// A shard set with the shared vocab, the standard docs, and `edit` applied.
fn variant(dir: &Path, name: &str, edit: impl Fn(usize, &mut Doc, &mut String)) -> PathBuf {
    let p = dir.join(name);
    write_shards(&p, &vocab(&WORDS), 96, edit);
    p
}

#[test]
fn bad_input_is_one_line_exit_2_and_nothing_written() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (clf, _) = train(d, "clf", &["--unfreeze", "1:2e-2"]);
    let other_vocab = d.join("other_vocab");
    write_shards(
        &other_vocab,
        &vocab(&[&WORDS[..], &["extra"]].concat()),
        96,
        |_, _, _| {},
    );
    let unseen = variant(d, "unseen", |i, doc, _| {
        if i == 4 {
            doc.fields[0] = Some("meh".into())
        }
    });
    let mixed = variant(d, "mixed", |i, doc, _| {
        doc.fields[0] = Some(if i == 5 {
            "pos".into()
        } else {
            format!("{}", i % 3)
        })
    });
    let nan = variant(d, "nan", |i, doc, _| {
        if i == 5 {
            doc.fields[1] = Some("NaN".into())
        }
    });
    let empty_valid = variant(d, "empty_valid", |_, _, split| *split = "train".into());
    let missing_label = variant(d, "missing_label", |i, doc, _| {
        if i == 6 {
            doc.fields[0] = None
        }
    });
    let (sh, lm, c) = (
        s.shards.to_str().unwrap(),
        s.lm.to_str().unwrap(),
        clf.to_str().unwrap(),
    );
    let out = d.join("out");
    let o = out.to_str().unwrap();
    let pred_out = d.join("pred.jsonl");
    let po = pred_out.to_str().unwrap();
    // `clf-train SHARDS --encoder LM -o OUT FLAGS` and `clf-train predict --ckpt CLF SHARDS -o
    // PRED FLAGS`
    let train = |shards: &Path, flags: &str| {
        let a = [shards.to_str().unwrap(), "--encoder", lm, "-o", o];
        strings(a.into_iter().chain(words(flags)))
    };
    let predict = |ckpt: &str, shards: &Path, flags: &str| {
        let a = [
            "predict",
            "--ckpt",
            ckpt,
            shards.to_str().unwrap(),
            "-o",
            po,
        ];
        strings(a.into_iter().chain(words(flags)))
    };
    let shards = s.shards.as_path();
    let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        (
            "vocab mismatch",
            train(&other_vocab, ""),
            vec!["vocab hash", "numericalize --vocab"],
        ),
        (
            "unseen valid label",
            train(&unseen, ""),
            vec!["\"meh\" was not seen in training", "valid.fields"],
        ),
        (
            "mixed types",
            train(&mixed, ""),
            vec!["mixes numbers", "--task classification"],
        ),
        (
            "NaN target",
            train(&nan, "--label-col rating --task regression"),
            vec!["\"NaN\"", "finite"],
        ),
        (
            "empty valid",
            train(&empty_valid, ""),
            vec!["validation split \"valid\" is empty"],
        ),
        (
            "no such label column",
            train(shards, "--label-col stars"),
            vec!["no label column \"stars\"", "label, rating, tags, sex"],
        ),
        (
            "missing label value",
            train(&missing_label, ""),
            vec!["input row 6", "no value"],
        ),
        (
            "classifier as encoder",
            strings([sh, "--encoder", c, "-o", o]),
            vec![
                "is a classifier checkpoint",
                "--encoder needs a language model",
            ],
        ),
        (
            "y-range on classes",
            train(shards, "--y-range 0 1"),
            vec!["--y-range is for regression"],
        ),
        (
            "bad unfreeze",
            train(shards, "--unfreeze 9:1e-3"),
            vec!["this model has 4"],
        ),
        (
            "output exists",
            strings([sh, "--encoder", lm, "-o", c]),
            vec!["already exists"],
        ),
        (
            "predict: LM checkpoint",
            predict(lm, shards, ""),
            vec!["is a language-model checkpoint"],
        ),
        (
            "predict: unseen label",
            predict(c, &unseen, ""),
            vec!["\"meh\" was not seen in training", "input row 4"],
        ),
        (
            "predict: other vocab",
            predict(c, &other_vocab, ""),
            vec!["vocab hash", "numericalize --vocab"],
        ),
        (
            "predict: no split",
            predict(c, shards, "--split test"),
            vec!["no split \"test\""],
        ),
        (
            "predict: column clash",
            predict(c, shards, "--pred-col label"),
            vec!["field \"label\""],
        ),
    ];
    let before = weights(&clf);
    for (what, args, needles) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = if args[0] == "predict" {
            run_predict(&args[1..])
        } else {
            run(&args)
        };
        testkit::assert_error(what, &o, "clf-train", &needles);
        assert!(!out.exists(), "{what}: output created");
        assert!(!pred_out.exists(), "{what}: prediction file created");
        assert!(
            o.stdout.is_empty() || !String::from_utf8_lossy(&o.stdout).contains("\"pred\""),
            "{what}"
        );
    }
    let after = weights(&clf);
    assert!(
        before.iter().all(|(n, t)| same(t, &after[n])),
        "the existing checkpoint was not touched"
    );
}
