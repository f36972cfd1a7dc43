//! Applying a vocab (`--vocab`) writes the shards in one pass, without the spool that building
//! a vocab uses. Both paths must give byte-identical shard files: applying the vocab a build
//! just made to the same input reproduces the build's shards exactly, whatever the thread
//! count, the split rule, the token stream form or the id width.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn numericalize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_numericalize"))
}

/// A deterministic token stream of `docs` documents (about 250 bytes each): frequent and rare
/// tokens, tokens of every length class, escapes, non-ASCII, blank lines, CRLF endings,
/// runs of train and valid documents, a field that appears late and a numeric one.
/// `unique` tokens per document are seen only once (to push the vocab past 65,536 ids).
fn corpus(docs: usize, unique: usize) -> Vec<u8> {
    let words = [
        "the",
        ",",
        ".",
        "xxmaj",
        "a",
        "and",
        "of",
        "to",
        "is",
        "it",
        "in",
        "i",
        "this",
        "that",
        "movie",
        "film",
        "was",
        "wonderful",
        "unbelievably",
        "characterization",
        "extraordinarily",
        "counterrevolutionaries",
        "é",
        "日本語",
        "naïveté",
        "xxup",
        "xxrep",
        "!",
        "?",
        "''",
        "-",
        "s",
        "n't",
    ];
    let mut out = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for d in 0..docs {
        let mut toks: Vec<String> = vec!["xxbos".into()];
        let n = 20 + (next() % 60) as usize;
        for _ in 0..n {
            let r = next();
            let t = match r % 100 {
                0 => "\n\n".to_string(),
                1 => "say \"hi\"".to_string(),
                2 => format!("rare{}", (r / 100) % 5000),
                3 => String::new(),
                4 => format!("a-token-longer-than-sixteen-bytes-{}", (r / 100) % 300),
                _ => words[(r / 100) as usize % words.len()].to_string(),
            };
            toks.push(t);
        }
        for u in 0..unique {
            toks.push(format!("u{d}x{u}"));
        }
        let mut line = String::from("{\"tokens\":");
        line.push_str(&serde_json::to_string(&toks).unwrap());
        line.push_str(&format!(
            ",\"label\":\"{}\"",
            if d % 3 == 0 { "pos" } else { "neg" }
        ));
        // runs of documents in one split, of varying length
        let valid = (d / 7 + d / 50) % 3 == 0;
        line.push_str(&format!(
            ",\"is_valid\":\"{}\"",
            if valid { "True" } else { "False" }
        ));
        if d > docs / 2 && d % 4 != 0 {
            line.push_str(&format!(",\"extra\":\"e{}\"", d % 5));
        }
        if d % 5 == 0 {
            line.push_str(&format!(",\"id\":{d}"));
        }
        line.push('}');
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(if d % 11 == 0 { b"\r\n" } else { b"\n" });
        if d % 97 == 0 {
            out.extend_from_slice(b"\n"); // a blank line: no document
        }
    }
    out
}

/// Runs numericalize; returns its summary record.
fn run(args: &[&str], input: &Path, out: &Path, threads: usize) -> serde_json::Value {
    let o = numericalize()
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["-q", "--force", "--threads", &threads.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// The shard files of `a` and `b` are identical; so are their manifests except the vocab source.
fn assert_same_shards(a: &Path, b: &Path) {
    let (fa, fb) = (files(a), files(b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        if name == "manifest.json" {
            let mut ma: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            let mut mb: serde_json::Value = serde_json::from_slice(&fb[name]).unwrap();
            ma["settings"]["vocab"] = serde_json::Value::Null;
            mb["settings"]["vocab"] = serde_json::Value::Null;
            assert_eq!(ma, mb, "{} vs {}", a.display(), b.display());
        } else {
            assert!(
                bytes == &fb[name],
                "{name} differs between {} and {}",
                a.display(),
                b.display()
            );
        }
    }
}

fn summary_counts(v: &serde_json::Value) -> (u64, u64, u64, String) {
    (
        v["docs"].as_u64().unwrap(),
        v["tokens"].as_u64().unwrap(),
        v["unk_tokens"].as_u64().unwrap(),
        v["splits"].to_string(),
    )
}

fn check(input: &Path, dir: &Path, build_args: &[&str], split: &[&str], dtype: &str) {
    let built = dir.join("built");
    let mut args: Vec<&str> = build_args.to_vec();
    args.extend_from_slice(split);
    let sb = run(&args, input, &built, 2);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(built.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["dtype"], dtype);
    let vocab = built.to_str().unwrap().to_string();
    let mut applied: Vec<PathBuf> = Vec::new();
    for threads in [1, 2, 3] {
        let out = dir.join(format!("applied{threads}"));
        let mut args = vec!["--vocab", vocab.as_str()];
        args.extend_from_slice(build_args);
        args.extend_from_slice(split);
        let sa = run(&args, input, &out, threads);
        assert_eq!(
            summary_counts(&sa),
            summary_counts(&sb),
            "{threads} threads"
        );
        assert_same_shards(&built, &out);
        applied.push(out);
    }
    // Same settings: the whole directories are identical, manifest included.
    for p in &applied[1..] {
        assert_eq!(files(&applied[0]), files(p));
    }
}

#[test]
fn applying_a_vocab_reproduces_the_build_exactly() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("t.jsonl");
    // ~5 MB: more than one 4 MB read chunk, many parallel pieces per chunk.
    std::fs::write(&input, corpus(20_000, 0)).unwrap();
    for split in [&["--split-col", "is_valid"][..], &[][..]] {
        check(&input, d.path(), &["--min-freq", "2"], split, "u16");
    }
}

#[test]
fn applying_a_wide_vocab_reproduces_the_build_exactly() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("t.jsonl");
    std::fs::write(&input, corpus(9_000, 8)).unwrap();
    check(
        &input,
        d.path(),
        &["--min-freq", "1", "--max-vocab", "200000"],
        &["--split-col", "is_valid"],
        "u32",
    );
}

#[test]
fn applying_a_vocab_to_plain_text_reproduces_the_build_exactly() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("t.txt");
    let mut text = Vec::new();
    for i in 0..30_000 {
        text.extend_from_slice(
            format!("xxbos w{} the a{} , b{}\t x  \n", i % 700, i % 31, i % 5).as_bytes(),
        );
        if i % 1000 == 0 {
            text.extend_from_slice(b"\n"); // an empty document in plain text
        }
    }
    std::fs::write(&input, text).unwrap();
    check(&input, d.path(), &["--min-freq", "1"], &[], "u16");
}

/// Of two bad lines, the earlier one is reported, whichever kind of error each is (the
/// split column is checked on the writer thread, the JSON on the parsing threads).
#[test]
fn the_first_bad_line_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let good = corpus(20_000, 0);
    let vocab_dir = d.path().join("v");
    let input = d.path().join("good.jsonl");
    std::fs::write(&input, &good).unwrap();
    run(&[], &input, &vocab_dir, 2);
    let lines: Vec<&[u8]> = good.split(|&b| b == b'\n').collect();
    let bad_json = b"{\"tokens\":[\"a\",],\"is_valid\":\"False\"}".as_slice();
    let no_split = b"{\"tokens\":[\"a\"],\"label\":\"pos\"}".as_slice();
    for (early, late, want) in [
        (
            no_split,
            bad_json,
            "line 101: no value for the split column \"is_valid\"",
        ),
        (bad_json, no_split, "line 101: invalid token-stream JSON"),
    ] {
        let mut l = lines.clone();
        l[100] = early;
        l[lines.len() - 50] = late;
        let p = d.path().join("bad.jsonl");
        std::fs::write(&p, l.join(&b'\n')).unwrap();
        for threads in ["1", "2"] {
            let out = d.path().join("out");
            let o = numericalize()
                .arg(&p)
                .arg("--vocab")
                .arg(&vocab_dir)
                .args(["--split-col", "is_valid", "-q", "--threads", threads, "-o"])
                .arg(&out)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(2));
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains(want) && e.lines().count() == 1, "{e}");
            assert!(!out.exists());
            let leftovers: Vec<_> = std::fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(leftovers.len(), 3, "{leftovers:?}");
        }
    }
}
