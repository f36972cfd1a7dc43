//! `lm-train import-fastai` / `export-fastai`.
//!
//! Without Python: export → import → export → import is bit-identical, special tokens in
//! fastai v1 order are matched by string, and hostile or broken files are refused with one
//! line and exit 2. With the peer venv (`~/.cache/peer-venv/bin/python`, skipped with a
//! message otherwise): fastai builds and saves small AWD-LSTMs (`torch.save(state_dict)` in
//! the zip and legacy formats, and `learn.save` with optimizer state); our import gives the
//! same logits as fastai within 1e-5, and fastai loads our export with
//! `load_state_dict(strict=True)` (and through `load_pretrained`'s `match_embeds` +
//! `load_ignore_keys`) and gives our logits within 1e-5.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lm_train::checkpoint::{self, Checkpoint};
use lm_train::config::{CheckpointConfig, ModelConfig, Precision};
use lm_train::model::LanguageModel;
use shared::vocab::{Vocab, SPECIAL_TOKENS};
use tch::{Device, Kind, Tensor};
use testkit::ok;

const BIN: &str = env!("CARGO_BIN_EXE_lm-train");

fn lm(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run lm-train")
}

/// `lm-train export-fastai --ckpt CK -o PTH [--vocab-out PKL] EXTRA...`
fn export(ck: &Path, pth: &Path, pkl: Option<&Path>, extra: &[&str]) -> Output {
    let mut a = vec!["export-fastai", "--ckpt", p(ck), "-o", p(pth)];
    if let Some(pkl) = pkl {
        a.extend(["--vocab-out", p(pkl)]);
    }
    lm(&[&a[..], extra].concat())
}

/// `lm-train import-fastai --weights W --vocab V -o OUT EXTRA...`
fn import(w: &Path, v: &Path, out: &Path, extra: &[&str]) -> Output {
    let a = [
        "import-fastai",
        "--weights",
        p(w),
        "--vocab",
        p(v),
        "-o",
        p(out),
    ];
    lm(&[&a[..], extra].concat())
}

/// Exit 2 with exactly one line on stderr, from lm-train; returns it.
fn err2(o: &Output) -> String {
    testkit::assert_error("fastai interop", o, "lm-train", &[])
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The special tokens (v2 order) and `n` words.
fn itos(n: usize) -> Vec<String> {
    SPECIAL_TOKENS
        .iter()
        .map(|s| s.to_string())
        .chain((0..n).map(|i| format!("w{i}")))
        .collect()
}

/// A checkpoint of a random model of ours (decoder bias random too, so it is compared).
fn our_checkpoint(dir: &Path, tie: bool, out_bias: bool, seed: i64) -> Checkpoint {
    let vocab = Vocab::from_itos(itos(23));
    let mut cfg = ModelConfig::fastai_lm(vocab.len() as i64, 1.0);
    (cfg.emb_sz, cfg.n_hid, cfg.n_layers) = (16, 24, 3);
    cfg.tie_weights = tie;
    cfg.out_bias = out_bias;
    tch::manual_seed(seed);
    let model = LanguageModel::new(&cfg, Device::Cpu);
    if let Some(b) = &model.dec_bias {
        tch::no_grad(|| {
            let _ = b.shallow_clone().uniform_(-0.5, 0.5);
        });
    }
    let c = CheckpointConfig::new(cfg, vocab.hash().to_string(), None);
    checkpoint::save(dir, &model, &vocab, &c, None).unwrap();
    Checkpoint::read(dir).unwrap()
}

fn load(ck: &Checkpoint) -> LanguageModel {
    let m = LanguageModel::new(&ck.config.model, Device::Cpu);
    ck.load_into(&m).unwrap();
    m
}

/// Our eval-mode fp32 logits for a batch of token ids: batch × seq × vocab.
fn logits(m: &LanguageModel, ids: &[Vec<i64>]) -> Vec<Vec<Vec<f32>>> {
    let _g = tch::no_grad_guard();
    let flat: Vec<i64> = ids.concat();
    let x = Tensor::from_slice(&flat).view([ids.len() as i64, -1]);
    let h = m
        .encoder
        .zero_hidden(ids.len() as i64, Device::Cpu, Kind::Float);
    let out = m.forward(&x, &h, false, Precision::Fp32).logits;
    let v: Vec<f32> = Vec::try_from(out.flatten(0, -1)).unwrap();
    let (t, n) = (ids[0].len(), m.cfg().vocab_size as usize);
    v.chunks(t * n)
        .map(|b| b.chunks(n).map(|r| r.to_vec()).collect())
        .collect()
}

fn tensor_eq(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.to_kind(Kind::Float).equal(&b.to_kind(Kind::Float))
}

#[test]
fn export_import_round_trip_is_bit_identical() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let same = |a: &Path, b: &Path| std::fs::read(a).unwrap() == std::fs::read(b).unwrap();
    for (tie, bias) in [(true, true), (false, false)] {
        let tag = format!("{tie}{bias}");
        let src = our_checkpoint(&d.join(format!("src{tag}")), tie, bias, 7);
        // first and second generation in their own folders, under the same file names
        let (a, b) = (d.join(format!("a{tag}")), d.join(format!("b{tag}")));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let (a_pth, a_itos, ck_a) = (a.join("m.pth"), a.join("itos.pkl"), a.join("ck"));
        let (b_pth, b_itos, ck_b) = (b.join("m.pth"), b.join("itos.pkl"), b.join("ck"));
        ok(&export(&src.dir, &a_pth, Some(&a_itos), &["-q"]));
        ok(&import(&a_pth, &a_itos, &ck_a, &["-q"]));
        ok(&export(&ck_a, &b_pth, Some(&b_itos), &[]));
        ok(&import(&b_pth, &b_itos, &ck_b, &[]));
        // the two exports and the two imports are byte for byte the same
        assert!(same(&a_pth, &b_pth), "exports differ");
        assert!(same(&a_itos, &b_itos), "vocab pickles differ");
        for f in ["config.json", "vocab.json", "model.safetensors"] {
            assert!(same(&ck_a.join(f), &ck_b.join(f)), "{f} differs");
        }
        assert_eq!(std::fs::read_dir(&ck_a).unwrap().count(), 3);
        // and the import holds the source's weights, vocab and architecture exactly
        let a = Checkpoint::read(&ck_a).unwrap();
        assert_eq!(a.vocab.itos(), src.vocab.itos());
        assert_eq!(a.config.model, src.config.model);
        assert_eq!(a.tensors.len(), src.tensors.len());
        for (n, t) in &src.tensors {
            assert!(tensor_eq(t, &a.tensors[n]), "{n} differs");
        }
        // fastai's state_dict names; tied weights are one storage under three names
        let sd = shared::torch_file::read_state_dict(&std::fs::read(&a_pth).unwrap()).unwrap();
        let names: Vec<&str> = sd.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[..3],
            [
                "0.encoder.weight",
                "0.encoder_dp.emb.weight",
                "0.rnns.0.weight_hh_l0_raw"
            ]
        );
        assert_eq!(names.contains(&"1.decoder.bias"), bias);
        assert!(names.contains(&"1.decoder.weight"));
        let zip_records = std::fs::read(&a_pth)
            .unwrap()
            .windows(7)
            .filter(|w| w == b"m/data/")
            .count();
        // local header + central directory per storage: 1 embedding, 4 per layer, decoder
        let storages = 1 + 4 * 3 + usize::from(!tie) + usize::from(bias);
        assert_eq!(zip_records, 2 * storages);
    }
}

#[test]
fn v1_special_token_order_and_missing_tokens_are_matched_by_string() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let src = our_checkpoint(&d.join("src"), true, true, 3);
    let pth = d.join("m.pth");
    ok(&export(&src.dir, &pth, None, &["-q"]));
    // label the same rows in fastai v1 order, and without xxfld (row 4 is a word "zzz")
    let mut v1 = itos(23);
    v1[4] = "zzz".into();
    v1[5..9].clone_from_slice(&["xxmaj", "xxup", "xxrep", "xxwrep"].map(String::from));
    let pkl = d.join("itos_v1.pkl");
    std::fs::write(&pkl, shared::pickle::dump_string_list(&v1)).unwrap();
    let ck = d.join("ck");
    let o = import(&pth, &pkl, &ck, &[]);
    ok(&o);
    let note = String::from_utf8_lossy(&o.stderr);
    assert!(note.contains("xxfld missing"), "{note}");
    let c = Checkpoint::read(&ck).unwrap();
    // v2 order first, then the other tokens in file order
    assert_eq!(&c.vocab.itos()[..9], &SPECIAL_TOKENS.map(String::from));
    assert_eq!(c.vocab.itos()[9], "zzz");
    assert_eq!(c.vocab.len(), v1.len() + 1);
    let (emb_src, emb) = (
        &src.tensors["0.encoder.weight"],
        &c.tensors["0.encoder.weight"],
    );
    let (b_src, b) = (&src.tensors["1.decoder.bias"], &c.tensors["1.decoder.bias"]);
    for (j, tok) in c.vocab.itos().iter().enumerate() {
        let j = j as i64;
        match v1.iter().position(|t| t == tok) {
            Some(i) => {
                assert!(
                    tensor_eq(&emb.get(j), &emb_src.get(i as i64)),
                    "row of {tok}"
                );
                assert!(tensor_eq(&b.get(j), &b_src.get(i as i64)), "bias of {tok}");
            }
            None => {
                // xxfld: the mean row and mean bias, as fastai's match_embeds
                assert_eq!(tok, "xxfld");
                let m = emb_src.mean_dim(0, false, Kind::Float);
                assert!(tensor_eq(&emb.get(j), &m));
                assert!(tensor_eq(&b.get(j), &b_src.mean(Kind::Float)));
            }
        }
    }
}

#[test]
fn a_fastai_v1_legacy_file_written_by_torch_gives_fastais_logits() {
    // tests/fixtures/fastai (see its README): written by torch 2.11 / fastai 2.8, no Python here
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fastai");
    let t = tempfile::tempdir().unwrap();
    let ck_dir = t.path().join("ck");
    let (w, v) = (fx.join("tiny_v1_legacy.pth"), fx.join("itos_v1.pkl"));
    let o = import(&w, &v, &ck_dir, &[]);
    ok(&o);
    let note = String::from_utf8_lossy(&o.stderr);
    assert!(
        note.contains("legacy format") && note.contains("4 rows moved"),
        "{note}"
    );
    assert!(
        note.contains("2 fastai v1 copies of weight_hh_l0 dropped"),
        "{note}"
    );
    let ck = Checkpoint::read(&ck_dir).unwrap();
    let c = &ck.config.model;
    assert_eq!(
        (c.vocab_size, c.emb_sz, c.n_hid, c.n_layers),
        (16, 8, 12, 2)
    );
    assert!(c.tie_weights && c.out_bias);
    assert_eq!(&ck.vocab.itos()[..9], &SPECIAL_TOKENS.map(String::from));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.join("logits.json")).unwrap()).unwrap();
    let ids: Vec<Vec<i64>> = serde_json::from_value(r["ids"].clone()).unwrap();
    let (our_ids, col) = through_our_vocab(&ck, &v, &ids);
    let diff = max_diff(
        &logits(&load(&ck), &our_ids),
        &as_logits(&r["logits"]),
        &col,
    );
    assert!(diff < 1e-5, "logits differ from fastai's by {diff}");
}

#[test]
fn half_precision_files_are_read_as_fp32() {
    // our export rewritten with fp16 storages (a model fastai trained with to_fp16 and saved)
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let src = our_checkpoint(&d.join("src"), true, true, 5);
    let (pth, pkl) = (d.join("m.pth"), d.join("itos.pkl"));
    ok(&export(&src.dir, &pth, Some(&pkl), &["-q"]));
    let sd = shared::torch_file::read_state_dict(&std::fs::read(&pth).unwrap()).unwrap();
    let halves: Vec<Vec<u8>> = sd
        .tensors
        .iter()
        .map(|(_, r)| {
            let n = r.numel();
            let h = Tensor::from_data_size(&r.data, &[n as i64], Kind::Float).to_kind(Kind::Half);
            let mut buf = vec![0u8; 2 * n];
            h.copy_data_u8(&mut buf, n);
            buf
        })
        .collect();
    let storages: Vec<(shared::pickle::Dtype, &[u8])> = halves
        .iter()
        .map(|b| (shared::pickle::Dtype::F16, b.as_slice()))
        .collect();
    let entries: Vec<shared::torch_file::TensorEntry> = sd
        .tensors
        .iter()
        .enumerate()
        .map(|(i, (n, r))| shared::torch_file::TensorEntry {
            name: n,
            storage: i,
            shape: r.shape.clone(),
        })
        .collect();
    let h_pth = d.join("half.pth");
    let mut f = std::fs::File::create(&h_pth).unwrap();
    shared::torch_file::write_state_dict(&mut f, "half", &entries, &storages).unwrap();
    drop(f);
    let ck = d.join("ck");
    ok(&import(&h_pth, &pkl, &ck, &["-q"]));
    let c = Checkpoint::read(&ck).unwrap();
    assert!(
        c.config.model.tie_weights,
        "equal fp16 copies are still tied"
    );
    for (n, t) in &src.tensors {
        let want = t.to_kind(Kind::Half).to_kind(Kind::Float);
        assert!(tensor_eq(&c.tensors[n], &want), "{n}");
        assert_eq!(c.tensors[n].kind(), Kind::Float);
    }
}

#[test]
fn hostile_and_broken_files_are_refused_with_one_line() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let src = our_checkpoint(&d.join("src"), true, true, 1);
    let (pth, pkl) = (d.join("m.pth"), d.join("itos.pkl"));
    ok(&export(&src.dir, &pth, Some(&pkl), &["-q"]));
    // pickle.dumps(E(), protocol=2) with E.__reduce__ = lambda self: (os.system, ('echo pwned',))
    let evil = d.join("evil.pkl");
    std::fs::write(
        &evil,
        b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.",
    )
    .unwrap();
    let out = d.join("out");
    let e = err2(&import(&pth, &evil, &out, &[]));
    assert!(e.contains("evil.pkl") && e.contains("posix.system"), "{e}");
    let e = err2(&import(&evil, &pkl, &out, &[]));
    assert!(e.contains("evil.pkl") && e.contains("posix.system"), "{e}");
    // a torch zip whose data.pkl calls os.system
    let mut w = shared::pickle::Writer::new();
    w.global("os", "system").mark().str("id").tuple().reduce();
    let pkl_bytes = w.finish();
    let mut z = Vec::new();
    shared::torch_file::write_zip(
        &mut z,
        &[
            ("m/data.pkl".into(), &pkl_bytes),
            ("m/version".into(), b"3\n"),
        ],
    )
    .unwrap();
    let evil_zip = d.join("evil.pth");
    std::fs::write(&evil_zip, z).unwrap();
    let e = err2(&import(&evil_zip, &pkl, &out, &[]));
    assert!(e.contains("evil.pth") && e.contains("os.system"), "{e}");
    let bytes = std::fs::read(&pth).unwrap();
    // truncated, garbage, wrong vocab, missing files
    let trunc = d.join("trunc.pth");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let e = err2(&import(&trunc, &pkl, &out, &[]));
    assert!(e.contains("trunc.pth"), "{e}");
    let junk = d.join("junk.pth");
    std::fs::write(&junk, b"hello world").unwrap();
    let e = err2(&import(&junk, &pkl, &out, &[]));
    assert!(
        e.contains("junk.pth") && e.contains("not a torch file"),
        "{e}"
    );
    let small = d.join("small.pkl");
    std::fs::write(
        &small,
        shared::pickle::dump_string_list(&["xxunk", "xxpad"]),
    )
    .unwrap();
    let e = err2(&import(&pth, &small, &out, &[]));
    assert!(
        e.contains("small.pkl has 2 tokens") && e.contains("m.pth"),
        "{e}"
    );
    let e = err2(&import(&d.join("nope.pth"), &pkl, &out, &[]));
    assert!(e.contains("nope.pth"), "{e}");
    // a state dict of something else
    let other = d.join("other.pth");
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let entries = [shared::torch_file::TensorEntry {
        name: "fc.weight",
        storage: 0,
        shape: vec![2],
    }];
    let mut f = std::fs::File::create(&other).unwrap();
    shared::torch_file::write_state_dict(
        &mut f,
        "other",
        &entries,
        &[(shared::pickle::Dtype::F32, &data)],
    )
    .unwrap();
    let e = err2(&import(&other, &pkl, &out, &[]));
    assert!(
        e.contains("other.pth") && e.contains("0.encoder.weight"),
        "{e}"
    );
    // nothing was written by any of the failures
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
            .count(),
        0
    );
    // a checkpoint whose config.json does not match its weights is not exported
    let bad = d.join("bad_ck");
    std::fs::create_dir(&bad).unwrap();
    for f in ["model.safetensors", "vocab.json"] {
        std::fs::copy(src.dir.join(f), bad.join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(src.dir.join("config.json")).unwrap();
    assert!(cfg.contains("\"n_hid\": 24"));
    std::fs::write(
        bad.join("config.json"),
        cfg.replace("\"n_hid\": 24", "\"n_hid\": 32"),
    )
    .unwrap();
    let bad_out = d.join("bad.pth");
    let e = err2(&export(&bad, &bad_out, None, &[]));
    assert!(
        e.contains("model.safetensors") && e.contains("shape"),
        "{e}"
    );
    assert!(!bad_out.exists());
    // outputs are not replaced without --force
    let e = err2(&export(&src.dir, &pth, None, &[]));
    assert!(e.contains("already exists"), "{e}");
    ok(&import(&pth, &pkl, &out, &["-q"]));
    let e = err2(&import(&pth, &pkl, &out, &[]));
    assert!(e.contains("already exists"), "{e}");
    ok(&import(&pth, &pkl, &out, &["--force", "-q"]));
}

fn peer_python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let py = PathBuf::from(home).join(".cache/peer-venv/bin/python");
    py.exists().then_some(py)
}

/// Builds fastai models, saves them as fastai does, and loads our exports (see the module doc).
const PEER_SCRIPT: &str = r#"
import sys, json, pickle, torch
from fastai.text.all import *
from fastai.learner import save_model
from fastai.text.learner import match_embeds, load_ignore_keys, clean_raw_keys
d = sys.argv[1]
spec = ['xxunk','xxpad','xxbos','xxeos','xxfld','xxrep','xxwrep','xxup','xxmaj']
itos = spec + ['w%d' % i for i in range(23)]
torch.manual_seed(0)
ids = torch.randint(0, len(itos), (2, 7))
out = {'ids': ids.tolist()}
for name, extra in [('tied', {}), ('untied', dict(tie_weights=False, out_bias=False))]:
    cfg = dict(awd_lstm_lm_config); cfg.update(emb_sz=16, n_hid=24, n_layers=3, **extra)
    m = get_language_model(AWD_LSTM, len(itos), config=cfg)
    # one training step, so no weight (the decoder bias included) is at its initial value
    opt = Adam(m.parameters(), lr=1e-2)
    m.train(); m.reset()
    m(ids)[0].logsumexp(-1).mean().backward(); opt.step(); opt.zero_grad()
    m.eval(); m.reset()
    with torch.no_grad(): out[name] = m(ids)[0].tolist()
    torch.save(m.state_dict(), f'{d}/{name}.pth')
    torch.save(m.state_dict(), f'{d}/{name}_legacy.pth', _use_new_zipfile_serialization=False)
    save_model(f'{d}/{name}_learn.pth', m, opt, with_opt=True)
pickle.dump(itos, open(f'{d}/itos.pkl', 'wb'))
pickle.dump(spec[:5] + ['xxmaj', 'xxup', 'xxrep', 'xxwrep'] + itos[9:], open(f'{d}/itos_v1.pkl', 'wb'), protocol=2)
for name in ['ours_tied', 'ours_untied']:
    c = json.load(open(f'{d}/{name}.json'))
    cfg = dict(awd_lstm_lm_config); cfg.update(c['config'])
    sd = torch.load(f'{d}/{name}.pth', weights_only=True)
    m = get_language_model(AWD_LSTM, c['vocab_size'], config=cfg)
    assert list(sd.keys()) == list(m.state_dict().keys()), (list(sd.keys()), list(m.state_dict().keys()))
    m.load_state_dict(sd, strict=True)
    m.eval(); m.reset()
    x = torch.tensor(c['ids'])
    with torch.no_grad(): out[name] = m(x)[0].tolist()
    v = pickle.load(open(f'{d}/{name}_itos.pkl', 'rb'))
    out[name + '_itos'] = v
    # the way learn.load_pretrained loads it: rows by string, then tensors by position
    m2 = get_language_model(AWD_LSTM, c['vocab_size'], config=cfg)
    load_ignore_keys(m2, clean_raw_keys(match_embeds(torch.load(f'{d}/{name}.pth', weights_only=True), v, v)))
    m2.eval(); m2.reset()
    with torch.no_grad(): out[name + '_pretrained'] = m2(x)[0].tolist()
json.dump(out, open(f'{d}/ref.json', 'w'))
"#;

/// The ids of a fastai file's vocab (`itos_pkl`) as ours in `ck`, and for each of our logit
/// columns the file's (same tokens).
fn through_our_vocab(
    ck: &Checkpoint,
    itos_pkl: &Path,
    ids: &[Vec<i64>],
) -> (Vec<Vec<i64>>, Vec<usize>) {
    let file_itos = shared::pickle::load_string_list(&std::fs::read(itos_pkl).unwrap()).unwrap();
    let our_ids = ids
        .iter()
        .map(|r| {
            r.iter()
                .map(|&i| ck.vocab.get(&file_itos[i as usize]).unwrap() as i64)
                .collect()
        })
        .collect();
    let col = ck
        .vocab
        .itos()
        .iter()
        .map(|t| file_itos.iter().position(|f| f == t).unwrap())
        .collect();
    (our_ids, col)
}

fn as_logits(v: &serde_json::Value) -> Vec<Vec<Vec<f32>>> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Largest |a - b| over logits, with our column `j` compared to the reference column `col[j]`.
fn max_diff(ours: &[Vec<Vec<f32>>], reference: &[Vec<Vec<f32>>], col: &[usize]) -> f32 {
    let mut m = 0f32;
    for (a, b) in ours.iter().zip(reference) {
        assert_eq!(a.len(), b.len());
        for (ra, rb) in a.iter().zip(b) {
            assert_eq!(ra.len(), col.len());
            for (j, &x) in ra.iter().enumerate() {
                m = m.max((x - rb[col[j]]).abs());
            }
        }
    }
    m
}

#[test]
fn fastai_cross_check_both_directions() {
    let Some(py) = peer_python() else {
        eprintln!("skipped: no peer venv at ~/.cache/peer-venv (fastai cross-check not run)");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let ids: Vec<Vec<i64>> = vec![vec![2, 9, 10, 11, 5, 31, 0], vec![1, 3, 12, 12, 8, 20, 4]];
    // ours → fastai: exports of two of our models
    let mut ours = Vec::new();
    for (name, tie, bias) in [("ours_tied", true, true), ("ours_untied", false, true)] {
        let ck = our_checkpoint(&d.join(name), tie, bias, 11);
        let m = &ck.config.model;
        let cfg = serde_json::json!({
            "config": {"emb_sz": m.emb_sz, "n_hid": m.n_hid, "n_layers": m.n_layers,
                       "tie_weights": m.tie_weights, "out_bias": m.out_bias},
            "vocab_size": m.vocab_size, "ids": ids,
        });
        std::fs::write(d.join(format!("{name}.json")), cfg.to_string()).unwrap();
        let pth = d.join(format!("{name}.pth"));
        let pkl = d.join(format!("{name}_itos.pkl"));
        ok(&export(&ck.dir, &pth, Some(&pkl), &["-q"]));
        ours.push((name, logits(&load(&ck), &ids), ck.vocab.itos().to_vec()));
    }
    let o = Command::new(&py)
        .args(["-c", PEER_SCRIPT, p(d)])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "peer script failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ref.json")).unwrap()).unwrap();
    for (name, our_logits, our_itos) in &ours {
        let ident: Vec<usize> = (0..our_itos.len()).collect();
        // fastai's load_pretrained copies the embedding into the decoder (match_embeds), so
        // it only keeps an untied model's logits when the weights are tied
        let keys = if *name == "ours_tied" {
            vec![name.to_string(), format!("{name}_pretrained")]
        } else {
            vec![name.to_string()]
        };
        for key in keys {
            let diff = max_diff(our_logits, &as_logits(&r[&key]), &ident);
            eprintln!("{key}: max |ours - fastai| = {diff:.2e}");
            assert!(diff < 1e-5, "{key}: logits differ by {diff}");
        }
        let their_itos: Vec<String> =
            serde_json::from_value(r[format!("{name}_itos")].clone()).unwrap();
        assert_eq!(&their_itos, our_itos);
    }

    // fastai → ours: each file format, and the vocab in v1 order
    let ref_ids: Vec<Vec<i64>> = serde_json::from_value(r["ids"].clone()).unwrap();
    for name in ["tied", "untied"] {
        let reference = as_logits(&r[name]);
        for (file, vocab) in [
            (format!("{name}.pth"), "itos.pkl"),
            (format!("{name}_legacy.pth"), "itos.pkl"),
            (format!("{name}_learn.pth"), "itos.pkl"),
            (format!("{name}.pth"), "itos_v1.pkl"),
        ] {
            let ck_dir = d.join(format!("ck_{file}_{vocab}"));
            let (w, v) = (d.join(&file), d.join(vocab));
            ok(&import(&w, &v, &ck_dir, &["-q"]));
            let ck = Checkpoint::read(&ck_dir).unwrap();
            assert_eq!(ck.config.model.tie_weights, name == "tied");
            assert_eq!(ck.config.model.out_bias, name == "tied");
            assert_eq!(
                (
                    ck.config.model.emb_sz,
                    ck.config.model.n_hid,
                    ck.config.model.n_layers
                ),
                (16, 24, 3)
            );
            let (our_ids, col) = through_our_vocab(&ck, &v, &ref_ids);
            if vocab == "itos_v1.pkl" {
                assert_ne!(col, (0..col.len()).collect::<Vec<_>>(), "v1 rows must move");
            }
            let diff = max_diff(&logits(&load(&ck), &our_ids), &reference, &col);
            eprintln!("{file} + {vocab}: max |ours - fastai| = {diff:.2e}");
            assert!(diff < 1e-5, "{file} + {vocab}: logits differ by {diff}");
        }
    }
}
