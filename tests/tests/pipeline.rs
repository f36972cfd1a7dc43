//! tokenize → numericalize on real data, and the contracts between them.

use std::process::Command;

use integration_tests::*;
use shared::shards::ShardSet;

fn tokenize_sample(data: &std::path::Path, threads: &str) -> Vec<u8> {
    let mut c = Command::new(bin("tokenize"));
    c.arg(data.join("imdb_sample/texts.csv")).args([
        "--keep",
        "label",
        "--keep",
        "is_valid",
        "-q",
        "--threads",
        threads,
    ]);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    o.stdout
}

#[test]
fn imdb_sample_matches_fastai_counts_and_is_thread_independent() {
    let Some(data) = require_data("imdb_sample pipeline") else {
        return;
    };
    let one = tokenize_sample(&data, "1");
    let two = tokenize_sample(&data, "2");
    assert!(one == two, "output differs between --threads 1 and 2");
    assert_eq!(one.iter().filter(|&&b| b == b'\n').count(), 1000);

    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("shards");
    let mut c = Command::new(bin("numericalize"));
    c.args(["-o"])
        .arg(&out)
        .args(["--split-col", "is_valid", "-q"]);
    let o = run_with_stdin(c, &one);
    assert!(o.status.success(), "{}", stderr(&o));
    // the summary record on stdout
    let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["type"], "numericalize_summary");
    assert_eq!(rec["tool"], "numericalize");

    let set = ShardSet::open(&out).unwrap();
    // fastai's figures for this file (BASELINES.md): 318,413 tokens, a vocab of 7,080
    assert_eq!(set.manifest.tokens, 318_413);
    assert_eq!(set.vocab.len(), 7080);
    assert_eq!(
        &set.vocab.itos()[..9],
        &shared::vocab::SPECIAL_TOKENS.map(String::from)
    );
    let train = set.split("train").unwrap();
    let valid = set.split("valid").unwrap();
    assert_eq!((train.docs(), valid.docs()), (800, 200));
    assert_eq!(
        train.fields.column("is_valid").unwrap().get(0),
        Some("False")
    );
    // every document starts with xxbos (id 2)
    assert!((0..train.docs()).all(|i| train.doc(i).get(0) == 2));
    // rows are input positions: valid docs are the last 200 rows of texts.csv
    assert_eq!(valid.fields.rows[0], 800);
}

#[test]
fn map_reduce_gives_the_same_vocab_and_ids_as_one_pass() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let a: String = (0..300)
        .map(|i| format!("xxbos w{} common w{}\n", i % 17, i % 5))
        .collect();
    let b: String = (0..200)
        .map(|i| format!("xxbos w{} common rare{}\n", i % 23, i % 3))
        .collect();
    std::fs::write(p.join("a.txt"), &a).unwrap();
    std::fs::write(p.join("b.txt"), &b).unwrap();
    std::fs::write(p.join("all.txt"), format!("{a}{b}")).unwrap();
    let num = |args: &[&str]| {
        let mut c = Command::new(bin("numericalize"));
        c.current_dir(p).args(args).arg("-q");
        let o = run(c);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    num(&["all.txt", "-o", "direct"]);
    num(&["count", "a.txt", "-o", "a.counts.json"]);
    num(&["count", "b.txt", "-o", "b.counts.json"]);
    num(&[
        "merge-counts",
        "a.counts.json",
        "b.counts.json",
        "-o",
        "vocab.json",
    ]);
    num(&["a.txt", "--vocab", "vocab.json", "-o", "a.shards"]);
    num(&["b.txt", "--vocab", "vocab.json", "-o", "b.shards"]);
    num(&["cat", "a.shards", "b.shards", "-o", "joined"]);
    let direct = ShardSet::open(p.join("direct")).unwrap();
    let joined = ShardSet::open(p.join("joined")).unwrap();
    assert_eq!(direct.vocab.itos(), joined.vocab.itos());
    assert_eq!(direct.manifest.vocab_hash, joined.manifest.vocab_hash);
    let (x, y) = (
        direct.split("train").unwrap(),
        joined.split("train").unwrap(),
    );
    assert_eq!(
        x.tokens().iter().collect::<Vec<_>>(),
        y.tokens().iter().collect::<Vec<_>>()
    );
    assert_eq!(x.offsets(), y.offsets());
    assert_eq!(x.fields.rows, y.fields.rows);
}

#[test]
fn a_replacement_tokenizer_can_be_a_shell_script() {
    // The plain-text side of the contract: any program printing space-separated tokens.
    let d = tempfile::tempdir().unwrap();
    let script = "printf 'The cat sat.\\nThe dog ran!\\n' | awk '{ print \"xxbos\", tolower($0) }'";
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let mut c = Command::new(bin("numericalize"));
    c.args(["--min-freq", "1", "-q", "-o"])
        .arg(d.path().join("s"));
    let o = run_with_stdin(c, &o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    let set = ShardSet::open(d.path().join("s")).unwrap();
    let tr = set.split("train").unwrap();
    let toks: Vec<&str> = tr
        .doc(0)
        .iter()
        .map(|i| set.vocab.token(i).unwrap())
        .collect();
    assert_eq!(toks, vec!["xxbos", "the", "cat", "sat."]);
}

#[test]
fn valid_pct_is_seeded_and_exact() {
    let d = tempfile::tempdir().unwrap();
    let text: String = (0..1000).map(|i| format!("xxbos t{}\n", i % 7)).collect();
    let make = |name: &str, seed: &str| {
        let mut c = Command::new(bin("numericalize"));
        c.args(["--valid-pct", "0.2", "--seed", seed, "-q", "-o"])
            .arg(d.path().join(name));
        let o = run_with_stdin(c, text.as_bytes());
        assert!(o.status.success(), "{}", stderr(&o));
        ShardSet::open(d.path().join(name))
            .unwrap()
            .split("valid")
            .unwrap()
            .fields
            .rows
            .clone()
    };
    let a = make("a", "1");
    assert_eq!(a.len(), 200);
    assert_eq!(a, make("b", "1"));
    assert_ne!(a, make("c", "2"));
}

#[test]
fn packed_archives_are_deterministic_and_readable() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::write(p.join("t.txt"), "xxbos a b\nxxbos a c\n").unwrap();
    let num = |args: &[&str]| {
        let mut c = Command::new(bin("numericalize"));
        c.current_dir(p)
            .env("ULMFIT_CACHE", p.join("cache"))
            .args(args)
            .arg("-q");
        let o = run(c);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        o.stdout
    };
    num(&["t.txt", "-o", "s", "--min-freq", "1"]);
    num(&["pack", "s", "-o", "s1.tar.zst"]);
    num(&["pack", "s", "-o", "s2.tar.zst"]);
    assert_eq!(
        std::fs::read(p.join("s1.tar.zst")).unwrap(),
        std::fs::read(p.join("s2.tar.zst")).unwrap()
    );
    num(&["unpack", "s1.tar.zst", "-o", "u"]);
    let v: serde_json::Value = serde_json::from_slice(&num(&["verify", "s1.tar.zst"])).unwrap();
    assert_eq!(v["tokens"], 6);
    assert_eq!(
        ShardSet::open(p.join("u")).unwrap().manifest,
        ShardSet::open(p.join("s")).unwrap().manifest
    );
}
