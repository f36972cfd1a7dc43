//! `--lang enm`, `--format paragraphs` and `--subword` through the CLI: real Chaucer lines,
//! the token stream contract, model files written atomically, errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tokenize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tokenize"))
}

fn run(args: &[&str]) -> Output {
    tokenize().args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn assert_error(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("tokenize: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{:?} lacks {n:?}", lines[0]);
    }
}

fn docs(stream: &str) -> Vec<Vec<String>> {
    stream
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

fn chaucer() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/chaucer-ellesmere/ellesmere_canterbury_tales.txt");
    if !p.is_file() {
        eprintln!("SKIP: ../shared/data/chaucer-ellesmere is absent");
        return None;
    }
    Some(p)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn enm_on_real_chaucer_lines() {
    let Some(c) = chaucer() else { return };
    let text = std::fs::read_to_string(&c).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Real lines of the Ellesmere transcription (General Prologue 1, 18, 43; Gamelyn).
    let pick = |start: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("{start}"))
    };
    let stanza = [
        pick("WHan that Aprille"),
        pick("That hem hath holpen"),
        pick("fful worthy was he"),
        pick("Þan seide Gamelyn þe child"),
    ]
    .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "lines.txt", &format!("{stanza}\n"));
    let f = f.to_str().unwrap();
    let got = docs(&ok(&run(&[
        f,
        "--format",
        "paragraphs",
        "--lang",
        "enm",
        "-q",
    ])));
    let want = "xxbos xxmaj whan that xxmaj aprille with hise shoures soote xxeol \
                xxmaj that hem hath holpen / whan that they were seeke xxeol \
                xxmaj ful worthy was he / in his lordes werre xxeol \
                xxmaj than seide xxmaj gamelyn the child that yyng";
    assert_eq!(
        got,
        vec![want.split(' ').map(String::from).collect::<Vec<_>>()]
    );
    // The default rules leave the manuscript spelling alone and keep "\n" tokens.
    let en = docs(&ok(&run(&[f, "--format", "paragraphs", "-q"])));
    assert!(
        en[0].contains(&"þat".to_string())
            && en[0].contains(&"fful".to_string())
            && en[0].contains(&"\n".to_string())
    );
}

#[test]
fn enm_whole_text_normalises_everything() {
    let Some(c) = chaucer() else { return };
    let c = c.to_str().unwrap();
    let out = ok(&run(&[c, "--format", "paragraphs", "--lang", "enm", "-q"]));
    let d = docs(&out);
    assert_eq!(d.len(), 909, "one document per paragraph");
    for t in d.iter().flatten() {
        assert!(
            !t.contains(['þ', 'Þ', 'ȝ', 'Ȝ', '‖', '&', '[', ']']),
            "{t:?} not normalised"
        );
        assert!(!t.starts_with("ff"), "{t:?}");
    }
    // spaCy's apostrophe-less English contractions are not applied to Middle English.
    let youre = d.iter().flatten().filter(|t| *t == "youre").count();
    assert!(youre > 500, "youre kept whole: {youre}");
    let eol = d.iter().flatten().filter(|t| *t == "xxeol").count();
    assert!(eol > 17_000, "{eol} xxeol");
}

#[test]
fn paragraphs_keep_kept_columns() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "p.txt", "one\ntwo\n\n\nthree\n");
    let out = ok(&run(&[
        f.to_str().unwrap(),
        "--format",
        "paragraphs",
        "--keep",
        "line",
        "-q",
    ]));
    assert_eq!(
        out,
        "{\"tokens\":[\"xxbos\",\"one\",\"\\n\",\"two\"],\"line\":1}\n{\"tokens\":[\"xxbos\",\"three\"],\"line\":5}\n"
    );
}

const CORPUS: &str = "text\n\
\"Whan that Aprille with his shoures soote, the droghte of March hath perced to the roote!!!\"\n\
\"And bathed every veyne in swich licour, of which vertu engendred is the flour.\"\n\
\"WHAT a GREAT movie. The best movie, the best actors, the best story of the year.\"\n\
\"Thanne longen folk to goon on pilgrimages, and palmeres for to seken straunge strondes.\"\n";

#[test]
fn subword_train_apply_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "t.csv", CORPUS);
    let csv = csv.to_str().unwrap();
    let m1 = dir.path().join("m1.json");
    let m2 = dir.path().join("m2.json");
    for m in [&m1, &m2] {
        let o = run(&[
            csv,
            "--subword",
            "train",
            "--model-out",
            m.to_str().unwrap(),
            "--vocab-size",
            "90",
        ]);
        ok(&o);
        assert!(String::from_utf8_lossy(&o.stderr).contains("vocab size 90"));
    }
    // Deterministic: the same input gives the same model file.
    assert_eq!(std::fs::read(&m1).unwrap(), std::fs::read(&m2).unwrap());
    let model: serde_json::Value = serde_json::from_slice(&std::fs::read(&m1).unwrap()).unwrap();
    assert_eq!(model["model"]["type"], "Unigram");
    let out = ok(&run(&[csv, "--subword", m1.to_str().unwrap(), "-q"]));
    let d = docs(&out);
    assert_eq!(d.len(), 4);
    // fastai's special tokens whole, everything else pieces with the word-start mark.
    assert_eq!(&d[0][..2], &["xxbos", "xxmaj"]);
    assert!(d[0].iter().any(|t| t == "xxrep"), "{:?}", d[0]);
    assert!(
        d[2].iter().filter(|t| *t == "xxup").count() == 2,
        "{:?}",
        d[2]
    );
    assert!(d
        .iter()
        .flatten()
        .all(|t| !t.contains("xx") || !t.starts_with('▁')));
    // Round trip: joining the pieces gives back the text after fastai's rules.
    let tk = tokenize::fastai::Tokenizer::new();
    let sw = tokenize::subword::Subword::load(&m1).unwrap();
    let texts: Vec<&str> = CORPUS
        .lines()
        .skip(1)
        .map(|l| l.trim_matches('"'))
        .collect();
    for (toks, text) in d.iter().zip(texts) {
        let ruled = tk.apply_rules(text);
        assert_eq!(
            sw.join(toks),
            ruled.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    // numericalize reads it unchanged: it is the same token stream.
    assert!(out.lines().all(|l| l.starts_with("{\"tokens\":[\"xxbos\"")));
}

#[test]
fn subword_bpe_and_fastai_vocab_size_rule() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "t.csv", CORPUS);
    let m = dir.path().join("bpe.json");
    let o = run(&[
        csv.to_str().unwrap(),
        "--subword",
        "train",
        "--subword-kind",
        "bpe",
        "--model-out",
        m.to_str().unwrap(),
    ]);
    ok(&o);
    // Distinct whitespace words of the ruled text, as fastai counts them, then its rule.
    let tk = tokenize::fastai::Tokenizer::new();
    let mut words = std::collections::HashSet::new();
    for l in CORPUS.lines().skip(1) {
        for w in tk.apply_rules(l.trim_matches('"')).split_whitespace() {
            words.insert(w.to_owned());
        }
    }
    let want = tokenize::subword::fastai_vocab_size(words.len());
    assert_eq!(
        want,
        29,
        "{} distinct words: a quarter rounds up to 16, then max(.., 29)",
        words.len()
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{} distinct", words.len()))
            && err.contains("vocab size 29 (fastai's rule)"),
        "{err}"
    );
    let model: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    assert_eq!(model["model"]["type"], "BPE");
    let out = ok(&run(&[
        csv.to_str().unwrap(),
        "--subword",
        m.to_str().unwrap(),
        "-q",
    ]));
    assert_eq!(docs(&out).len(), 4);
}

#[test]
fn subword_errors() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "t.csv", CORPUS);
    let csv = csv.to_str().unwrap();
    // A bad model file: one line naming it, exit 2, no output file.
    let bad = write(dir.path(), "bad.json", "{\"not\": \"a model\"}");
    let out = dir.path().join("out.jsonl");
    let o = run(&[
        csv,
        "--subword",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_error(&o, &["bad.json", "not a subword model"]);
    assert!(!out.exists());
    let o = run(&[
        csv,
        "--subword",
        dir.path().join("missing.json").to_str().unwrap(),
    ]);
    assert_error(&o, &["missing.json"]);
    // Training needs --model-out; the other flags need training.
    assert_error(&run(&[csv, "--subword", "train"]), &["--model-out"]);
    assert_error(&run(&[csv, "--vocab-size", "100"]), &["--subword train"]);
    // An existing model is not replaced without --force, and is left as it was.
    let m = write(dir.path(), "m.json", "old");
    assert_error(
        &run(&[
            csv,
            "--subword",
            "train",
            "--model-out",
            m.to_str().unwrap(),
        ]),
        &["m.json"],
    );
    assert_eq!(std::fs::read_to_string(&m).unwrap(), "old");
    // A failed training (vocab smaller than the alphabet) leaves no model file behind.
    let m = dir.path().join("small.json");
    let o = run(&[
        csv,
        "--subword",
        "train",
        "--model-out",
        m.to_str().unwrap(),
        "--vocab-size",
        "12",
    ]);
    assert_error(&o, &["--vocab-size 12"]);
    assert!(!m.exists());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temporary files left: {names:?}"
    );
}
