//! Hostile input across every tool (issue #8): one table, one row per case. Each case runs in
//! a fresh directory holding copies of a tiny corpus, shard set, language model and
//! classifier, and asserts
//!
//! * exit code 2 exactly,
//! * exactly one stderr line, `tool: ...`, naming the file and the problem (so no panic text
//!   or backtrace),
//! * that the directory is byte-for-byte what it was before: no new output, no temporaries,
//!   and a previous output (cases run with `--force` over one) unchanged.
//!
//! Read-only output directories and full disks are made with a tmpfs mounted in a private
//! user and mount namespace (`unshare -r -m`); where that is not possible the cases print
//! SKIP. `| head -1` (stdout closed early) is in `stdout_closed_early_is_a_quiet_success`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use integration_tests::*;
use testkit::{lcg, words, CPU, TINY_ARCH};

// ---------------------------------------------------------------------------------------------
// Fixtures: built once through the tools themselves.

const WORDS: [&str; 16] = [
    "the", "a", "movie", "film", "good", "bad", "great", "awful", "plot", "actor", "story", "fun",
    "boring", "loved", "hated", "scene",
];

/// A corpus CSV: label (pos/neg), y (a number), is_valid (every 5th row), text.
/// `edit(i, label, y)` may change row i's label and y.
fn corpus(rows: usize, seed: u64, edit: impl Fn(usize, &mut String, &mut String)) -> String {
    let mut s = seed;
    let mut out = String::from("label,y,is_valid,text\n");
    for i in 0..rows {
        let pos = i % 2 == 1;
        let n = 8 + (lcg(&mut s) % 10) as usize;
        let mut words: Vec<&str> = (0..n).map(|_| WORDS[(lcg(&mut s) % 16) as usize]).collect();
        words.push(if pos { "good" } else { "bad" });
        let mut label = if pos { "pos" } else { "neg" }.to_string();
        let mut y = format!("{:.2}", i as f64 * 0.37);
        edit(i, &mut label, &mut y);
        let valid = if i % 5 == 0 { "True" } else { "False" };
        out.push_str(&format!("{label},{y},{valid},\"{}\"\n", words.join(" ")));
    }
    out
}

fn ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed: {}", stderr(o));
}

fn tool(dir: &Path, name: &str, args: &[&str]) -> Output {
    let mut c = Command::new(bin(name));
    c.current_dir(dir).args(args);
    run(c)
}

/// corpus CSV → shard set `name` in `dir` (with the vocab of `vocab` when given).
fn shards_from_csv(dir: &Path, name: &str, csv: &str, vocab: Option<&str>) {
    std::fs::write(dir.join(format!("{name}.csv")), csv).unwrap();
    let tok = format!("{name}.tok.jsonl");
    let csv_name = format!("{name}.csv");
    ok(
        &tool(
            dir,
            "tokenize",
            &[
                &csv_name, "--keep", "label", "--keep", "y", "--keep", "is_valid", "-q", "-o", &tok,
            ],
        ),
        "tokenize",
    );
    let mut a = vec![tok.as_str(), "-o", name];
    a.extend(words(
        "--split-col is_valid --min-freq 1 -q --metrics /dev/null",
    ));
    if let Some(v) = vocab {
        a.extend(["--vocab", v]);
    }
    ok(&tool(dir, "numericalize", &a), "numericalize");
    std::fs::remove_file(dir.join(&tok)).unwrap();
    std::fs::remove_file(dir.join(&csv_name)).unwrap();
}

/// The tiny language model on one CPU thread, seed 7.
fn lm_tiny() -> Vec<&'static str> {
    [&TINY_ARCH[..], &words("--bs 4 --bptt 8 --seed 7"), &CPU].concat()
}

/// The tiny classifier's batches on one CPU thread.
fn clf_tiny() -> Vec<&'static str> {
    [&words("--bs 8 --bptt 8 --max-len 16"), &CPU[..]].concat()
}

struct Fixtures {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

/// `shards/` (120 docs), `other/` (a shard set with another vocab), `lm/` (a tiny LM trained
/// on `shards/`), `clf/` (a classifier of `label` on it).
fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        shards_from_csv(&d, "shards", &corpus(120, 1, |_, _, _| {}), None);
        let other = corpus(40, 2, |_, _, _| {}).replace("movie", "cinema");
        shards_from_csv(&d, "other", &other, None);
        let mut a = words("shards -o lm --steps 3 --lr 1e-2 -q --metrics /dev/null");
        a.extend(lm_tiny());
        ok(&tool(&d, "lm-train", &a), "lm-train");
        let mut a = words("shards --encoder lm -o clf --unfreeze 1:2e-2 -q --metrics /dev/null");
        a.extend(clf_tiny());
        ok(&tool(&d, "clf-train", &a), "clf-train");
        Fixtures { _tmp: tmp, dir: d }
    })
}

fn copy_dir(a: &Path, b: &Path) {
    std::fs::create_dir_all(b).unwrap();
    for e in std::fs::read_dir(a).unwrap() {
        let e = e.unwrap();
        let t = b.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Damage.

fn patch(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

fn replace(path: &Path, from: &str, to: &str) {
    patch(path, |b| {
        let s = String::from_utf8(b.clone()).unwrap();
        assert!(s.contains(from), "{} lacks {from:?}", path.display());
        *b = s.replacen(from, to, 1).into_bytes();
    });
}

fn truncate_half(path: &Path) {
    patch(path, |b| b.truncate(b.len() / 2));
}

/// Removes tensor `name` from a safetensors file, keeping the file well-formed (the other
/// tensors' bytes are packed again), as a checkpoint written without it would be.
fn drop_tensor(path: &Path, name: &str) {
    patch(path, |b| {
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let mut header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&b[8..8 + n]).unwrap();
        assert!(
            header.remove(name).is_some(),
            "{}: no tensor {name}",
            path.display()
        );
        let data = &b[8 + n..];
        let mut entries: Vec<(String, serde_json::Value)> = header
            .into_iter()
            .filter(|(k, _)| k != "__metadata__")
            .collect();
        entries.sort_by_key(|(_, v)| v["data_offsets"][0].as_u64().unwrap());
        let mut new_data = Vec::new();
        let mut new_header = serde_json::Map::new();
        for (k, mut v) in entries {
            let (s, e) = (
                v["data_offsets"][0].as_u64().unwrap() as usize,
                v["data_offsets"][1].as_u64().unwrap() as usize,
            );
            let start = new_data.len();
            new_data.extend_from_slice(&data[s..e]);
            v["data_offsets"] = serde_json::json!([start, new_data.len()]);
            new_header.insert(k, v);
        }
        let mut h = serde_json::to_vec(&new_header).unwrap();
        while h.len() & 7 != 0 {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h);
        out.extend(new_data);
        *b = out;
    });
}

// ---------------------------------------------------------------------------------------------
// The table.

#[derive(Clone, Copy, PartialEq, Debug)]
enum Env {
    Plain,
    /// `DIR` is a read-only file system while the tool runs.
    ReadOnly(&'static str),
    /// `DIR` is a 4 KiB tmpfs while the tool runs; the test checks it is empty afterwards.
    DiskFull(&'static str),
}

type Prepare = Box<dyn Fn(&Path) + Send + Sync>;

struct Case {
    name: &'static str,
    tool: &'static str,
    args: Vec<&'static str>,
    /// files written into the case directory first
    files: Vec<(&'static str, Vec<u8>)>,
    prepare: Option<Prepare>,
    /// substrings the one error line must contain (the file, the problem)
    expect: Vec<&'static str>,
    env: Env,
}

fn case(
    name: &'static str,
    tool: &'static str,
    args: &[&'static str],
    expect: &[&'static str],
) -> Case {
    Case {
        name,
        tool,
        args: args.to_vec(),
        files: vec![],
        prepare: None,
        expect: expect.to_vec(),
        env: Env::Plain,
    }
}

impl Case {
    fn file(mut self, name: &'static str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((name, bytes.into()));
        self
    }
    fn prep(mut self, f: impl Fn(&Path) + Send + Sync + 'static) -> Self {
        self.prepare = Some(Box::new(f));
        self
    }
    fn env(mut self, e: Env) -> Self {
        self.env = e;
        self
    }
}

const OLD: &[u8] = b"previous output\n";
const CSV_OK: &[u8] = b"label,text\npos,a good film\nneg,a bad film\n";

fn cases() -> Vec<Case> {
    let big_line = |bad: &'static [u8]| {
        move |d: &Path| {
            let mut b = b"xxbos ".repeat((100 << 20) / 6);
            b.extend_from_slice(bad);
            b.extend_from_slice(b"\nxxbos fine\n");
            std::fs::write(d.join("big.txt"), b).unwrap();
        }
    };
    let bad_shards = |name: &'static str, csv: String| {
        move |d: &Path| shards_from_csv(d, name, &csv, Some("shards"))
    };
    vec![
        // ---- tokenize: text in ------------------------------------------------------------
        case(
            "ragged CSV, previous output kept",
            "tokenize",
            &["in.csv", "-o", "out.jsonl", "--force"],
            &["in.csv", "line 3", "ragged row"],
        )
        .file("in.csv", "label,text\npos,a\nneg\n")
        .file("out.jsonl", OLD),
        case(
            "quote left open at end of file",
            "tokenize",
            &["in.csv", "-o", "out.jsonl", "--force"],
            &["in.csv", "line 3", "quoted field is not closed"],
        )
        .file(
            "in.csv",
            "label,text\npos,fine\nneg,\"never closed\npos,more\n",
        )
        .file("out.jsonl", OLD),
        case(
            "invalid UTF-8",
            "tokenize",
            &["in.csv", "-o", "out.jsonl", "--force"],
            &["in.csv", "line 2", "invalid UTF-8"],
        )
        .file("in.csv", &b"label,text\npos,caf\xe9\n"[..])
        .file("out.jsonl", OLD),
        case(
            "UTF-16 LE with a BOM",
            "tokenize",
            &["in.csv", "-o", "out.jsonl"],
            &["in.csv", "UTF-16", "iconv"],
        )
        .file("in.csv", &b"\xff\xfel\0a\0b\0e\0l\0,\0t\0e\0x\0t\0\n\0"[..]),
        case(
            "UTF-16 BE with a BOM",
            "tokenize",
            &["in.txt", "-o", "out.jsonl"],
            &["in.txt", "UTF-16"],
        )
        .file("in.txt", &b"\xfe\xff\0h\0i"[..]),
        case(
            "NUL byte in CSV",
            "tokenize",
            &["in.csv", "-o", "out.jsonl"],
            &["in.csv", "line 3", "NUL byte"],
        )
        .file("in.csv", &b"label,text\npos,ok\nneg,bin\0ary\n"[..]),
        case(
            "NUL byte in JSON lines (escaped)",
            "tokenize",
            &["in.jsonl", "-o", "out.jsonl"],
            &["in.jsonl", "line 1", "NUL byte"],
        )
        .file("in.jsonl", "{\"text\":\"a\\u0000b\"}\n"),
        case(
            "empty file",
            "tokenize",
            &["in.csv", "-o", "out.jsonl", "--force"],
            &["in.csv", "no documents"],
        )
        .file("in.csv", "")
        .file("out.jsonl", OLD),
        case(
            "whitespace-only lines",
            "tokenize",
            &["in.txt", "-o", "out.jsonl"],
            &["in.txt", "no documents"],
        )
        .file("in.txt", " \n\t\n\n  \n"),
        case(
            "header only",
            "tokenize",
            &["in.csv", "-o", "out.jsonl"],
            &["in.csv", "no documents"],
        )
        .file("in.csv", "label,text\n"),
        case(
            "missing text column",
            "tokenize",
            &["in.csv", "-o", "out.jsonl"],
            &["in.csv", "no column \"text\"", "columns: label, body"],
        )
        .file("in.csv", "label,body\npos,x\n"),
        case(
            "missing --keep column",
            "tokenize",
            &["in.csv", "--keep", "rating", "-o", "out.jsonl"],
            &["in.csv", "no column \"rating\""],
        )
        .file("in.csv", CSV_OK),
        case(
            "duplicated column name",
            "tokenize",
            &["in.csv", "-o", "out.jsonl"],
            &["in.csv", "\"text\" twice"],
        )
        .file("in.csv", "text,text\na,b\n"),
        case(
            "truncated JSON line",
            "tokenize",
            &["in.jsonl", "-o", "out.jsonl"],
            &["in.jsonl", "line 2", "invalid JSON"],
        )
        .file("in.jsonl", "{\"text\":\"a\"}\n{\"text\":\"b"),
        case(
            "folder without documents",
            "tokenize",
            &["docs", "-o", "out.jsonl"],
            &["docs", "no documents"],
        )
        .prep(|d| std::fs::create_dir_all(d.join("docs/pos")).unwrap()),
        case(
            "output directory read-only",
            "tokenize",
            &["in.csv", "-o", "ro/out.jsonl"],
            &["ro/out.jsonl", "cannot create a temporary file in ro"],
        )
        .file("in.csv", CSV_OK)
        .env(Env::ReadOnly("ro")),
        case(
            "disk full",
            "tokenize",
            &["in.csv", "-o", "full/out.jsonl"],
            &["full/out.jsonl", "No space left on device"],
        )
        .prep(|d| std::fs::write(d.join("in.csv"), corpus(300, 3, |_, _, _| {})).unwrap())
        .env(Env::DiskFull("full")),
        case(
            "/dev/full",
            "tokenize",
            &["in.csv", "-o", "/dev/full"],
            &["/dev/full", "No space left on device"],
        )
        .file("in.csv", CSV_OK),
        // ---- numericalize: tokens in --------------------------------------------------------
        case(
            "empty token stream, previous shards kept",
            "numericalize",
            &["t.txt", "-o", "shards", "--force"],
            &["t.txt", "no tokens"],
        )
        .file("t.txt", ""),
        case(
            "whitespace-only token stream",
            "numericalize",
            &["t.txt", "-o", "out"],
            &["t.txt", "no tokens", "only whitespace"],
        )
        .file("t.txt", "  \n\n\t\n"),
        case(
            "token stream: truncated JSON",
            "numericalize",
            &["t.jsonl", "-o", "shards", "--force"],
            &["t.jsonl", "line 2", "invalid token-stream JSON"],
        )
        .file("t.jsonl", "{\"tokens\":[\"a\"]}\n{\"tokens\":[\"b\""),
        case(
            "token stream: UTF-16",
            "numericalize",
            &["t.txt", "-o", "out"],
            &["t.txt", "line 1", "invalid UTF-8"],
        )
        .file("t.txt", &b"\xff\xfea\0 \0b\0"[..]),
        case(
            "token stream: NUL byte",
            "numericalize",
            &["t.txt", "-o", "out"],
            &["t.txt", "line 2", "NUL byte"],
        )
        .file("t.txt", &b"a b\nc\0d\n"[..]),
        case(
            "token stream: duplicated field",
            "numericalize",
            &["t.jsonl", "-o", "out"],
            &["t.jsonl", "line 1", "duplicate field `tokens`"],
        )
        .file("t.jsonl", "{\"tokens\":[\"a\"],\"tokens\":[\"b\"]}\n"),
        case(
            "a 100 MB line with invalid UTF-8 at its end",
            "numericalize",
            &["big.txt", "-o", "out"],
            &["big.txt", "line 1", "invalid UTF-8"],
        )
        .prep(big_line(b"\xff")),
        case(
            "--metrics path missing, previous shards kept",
            "numericalize",
            &[
                "t.txt",
                "-o",
                "shards",
                "--force",
                "--metrics",
                "nodir/m.jsonl",
            ],
            &["nodir/m.jsonl", "cannot create"],
        )
        .file("t.txt", "xxbos a b c\n"),
        case(
            "numericalize: output directory read-only",
            "numericalize",
            &["t.txt", "-o", "ro/s"],
            &["ro/s", "cannot create a temporary file"],
        )
        .file("t.txt", "xxbos a b c\n")
        .env(Env::ReadOnly("ro")),
        case(
            "numericalize: disk full",
            "numericalize",
            &["t.txt", "-o", "full/s"],
            &["full/s", "No space left on device"],
        )
        .prep(|d| std::fs::write(d.join("t.txt"), "xxbos a b c d e f g\n".repeat(2000)).unwrap())
        .env(Env::DiskFull("full")),
        // ---- shard sets: damaged at each part, read by each consumer ---------------------------
        case(
            "shards: truncated manifest.json (verify)",
            "numericalize",
            &["verify", "shards"],
            &["shards/manifest.json", "invalid JSON"],
        )
        .prep(|d| truncate_half(&d.join("shards/manifest.json"))),
        case(
            "shards: truncated vocab.json (lm-train)",
            "lm-train",
            &["shards", "-o", "lm", "--force", "--steps", "1"],
            &["shards/vocab.json", "invalid JSON"],
        )
        .prep(|d| truncate_half(&d.join("shards/vocab.json"))),
        case(
            "shards: truncated train.tokens (lm-train)",
            "lm-train",
            &["shards", "-o", "out", "--steps", "1"],
            &["shards/train.tokens", "truncated"],
        )
        .prep(|d| truncate_half(&d.join("shards/train.tokens"))),
        case(
            "shards: truncated train.offsets (lr-find)",
            "lr-find",
            &["shards", "-o", "lr.jsonl"],
            &["shards/train.offsets", "truncated"],
        )
        .prep(|d| truncate_half(&d.join("shards/train.offsets"))),
        case(
            "shards: truncated train.fields (clf-train)",
            "clf-train",
            &["shards", "--encoder", "lm", "-o", "clf", "--force"],
            &["shards/train.fields", "truncated"],
        )
        .prep(|d| truncate_half(&d.join("shards/train.fields"))),
        case(
            "shards: truncated valid.tokens (clf-train predict)",
            "clf-train",
            &["predict", "--ckpt", "clf", "shards", "-o", "p.jsonl"],
            &["shards/valid.tokens", "truncated"],
        )
        .prep(|d| truncate_half(&d.join("shards/valid.tokens"))),
        case(
            "shards: truncated valid.offsets (cat)",
            "numericalize",
            &["cat", "shards", "shards", "-o", "out"],
            &["shards/valid.offsets", "truncated"],
        )
        .prep(|d| truncate_half(&d.join("shards/valid.offsets"))),
        case(
            "shards: truncated valid.fields (pack)",
            "numericalize",
            &["pack", "shards", "-o", "s.tar.zst"],
            &["shards/valid.fields", "truncated"],
        )
        .prep(|d| truncate_half(&d.join("shards/valid.fields"))),
        case(
            "shards: flipped header byte (lm-train)",
            "lm-train",
            &["shards", "-o", "out", "--steps", "1"],
            &["shards/valid.offsets", "header checksum"],
        )
        .prep(|d| patch(&d.join("shards/valid.offsets"), |b| b[20] ^= 0x10)),
        case(
            "shards: flipped payload byte (verify)",
            "numericalize",
            &["verify", "shards"],
            &["shards/train.tokens", "checksum mismatch"],
        )
        .prep(|d| patch(&d.join("shards/train.tokens"), |b| b[70] ^= 1)),
        case(
            "shards: future format version (clf-train)",
            "clf-train",
            &["shards", "--encoder", "lm", "-o", "out"],
            &["shards/manifest.json", "version 9 is not supported"],
        )
        .prep(|d| {
            replace(
                &d.join("shards/manifest.json"),
                "\"version\": 1",
                "\"version\": 9",
            )
        }),
        case(
            "shards: manifest disagrees with its files (lr-find)",
            "lr-find",
            &["shards"],
            &["shards/manifest.json", "do not add up"],
        )
        .prep(|d| {
            replace(
                &d.join("shards/manifest.json"),
                "\"docs\": 120",
                "\"docs\": 121",
            )
        }),
        case(
            "shards: a split file is missing (verify)",
            "numericalize",
            &["verify", "shards"],
            &["shards/valid.fields"],
        )
        .prep(|d| std::fs::remove_file(d.join("shards/valid.fields")).unwrap()),
        case(
            "shards: vocab.json replaced (lm-train)",
            "lm-train",
            &["shards", "-o", "out", "--steps", "1"],
            &["shards/vocab.json", "does not match"],
        )
        .prep(|d| {
            std::fs::copy(d.join("other/vocab.json"), d.join("shards/vocab.json"))
                .map(|_| ())
                .unwrap()
        }),
        case(
            "archive truncated (unpack)",
            "numericalize",
            &["unpack", "s.tar.zst", "-o", "out"],
            &["s.tar.zst"],
        )
        .prep(|d| {
            ok(
                &tool(d, "numericalize", &["pack", "shards", "-o", "s.tar.zst"]),
                "pack",
            );
            truncate_half(&d.join("s.tar.zst"));
        }),
        // ---- checkpoints: wrong kind, missing tensor, vocab mismatch, versions -------------
        case(
            "lm-train --init with a classifier",
            "lm-train",
            &["shards", "--init", "clf", "-o", "out", "--steps", "1"],
            &["clf/config.json", "not a language-model checkpoint"],
        ),
        case(
            "generate from a classifier",
            "lm-train",
            &["generate", "--ckpt", "clf", "--prompt", "the"],
            &["clf/config.json", "not a language-model checkpoint"],
        ),
        case(
            "generate from a shard set",
            "lm-train",
            &["generate", "--ckpt", "shards", "--prompt", "the"],
            &["shards/config.json", "cannot read"],
        ),
        case(
            "LM missing a tensor (generate)",
            "lm-train",
            &["generate", "--ckpt", "lm", "--prompt", "the"],
            &[
                "lm/model.safetensors",
                "missing tensor 0.rnns.1.module.bias_hh_l0",
            ],
        )
        .prep(|d| {
            drop_tensor(
                &d.join("lm/model.safetensors"),
                "0.rnns.1.module.bias_hh_l0",
            )
        }),
        case(
            "LM missing a tensor (clf-train --encoder)",
            "clf-train",
            &["shards", "--encoder", "lm", "-o", "out"],
            &[
                "lm/model.safetensors",
                "missing tensor 0.rnns.0.module.weight_ih_l0",
            ],
        )
        .prep(|d| {
            drop_tensor(
                &d.join("lm/model.safetensors"),
                "0.rnns.0.module.weight_ih_l0",
            )
        }),
        case(
            "LM with a truncated model.safetensors (lm-train --init)",
            "lm-train",
            &["shards", "--init", "lm", "-o", "out", "--steps", "1"],
            &["lm/model.safetensors", "cannot read"],
        )
        .prep(|d| truncate_half(&d.join("lm/model.safetensors"))),
        case(
            "LM config from the future (generate)",
            "lm-train",
            &["generate", "--ckpt", "lm", "--prompt", "the"],
            &["lm/config.json", "version"],
        )
        .prep(|d| {
            replace(
                &d.join("lm/config.json"),
                "\"version\": 1",
                "\"version\": 7",
            )
        }),
        case(
            "vocab mismatch: lm-train --init",
            "lm-train",
            &["other", "--init", "lm", "-o", "out", "--steps", "1"],
            &["vocab", "--remap-vocab"],
        ),
        case(
            "vocab mismatch: lm-train --resume keeps the checkpoint",
            "lm-train",
            &["other", "-o", "lm", "--resume"],
            &["vocab"],
        ),
        case(
            "lm-train --resume with a truncated optimizer state",
            "lm-train",
            &["shards", "-o", "lm", "--resume"],
            &["lm/optimizer.safetensors"],
        )
        .prep(|d| truncate_half(&d.join("lm/optimizer.safetensors"))),
        case(
            "lm-train: output directory read-only",
            "lm-train",
            &["shards", "-o", "ro/lm", "--steps", "1"],
            &["ro/lm", "cannot create a temporary directory in ro"],
        )
        .env(Env::ReadOnly("ro")),
        case(
            "lm-train: disk full",
            "lm-train",
            &["shards", "-o", "full/lm", "--steps", "1"],
            &["full/lm", "No space left on device"],
        )
        .env(Env::DiskFull("full")),
        case(
            "clf-train --encoder with a classifier",
            "clf-train",
            &["shards", "--encoder", "clf", "-o", "out"],
            &["clf", "is a classifier checkpoint"],
        ),
        case(
            "predict with a language model",
            "clf-train",
            &["predict", "--ckpt", "lm", "shards", "-o", "p.jsonl"],
            &["lm", "a language-model checkpoint"],
        ),
        case(
            "classifier missing a tensor (predict)",
            "clf-train",
            &["predict", "--ckpt", "clf", "shards", "-o", "p.jsonl"],
            &["clf/model.safetensors", "1.layers.1.2.weight"],
        )
        .prep(|d| drop_tensor(&d.join("clf/model.safetensors"), "1.layers.1.2.weight")),
        case(
            "classifier missing a tensor (--resume keeps it)",
            "clf-train",
            &["shards", "-o", "clf", "--resume"],
            &["clf/model.safetensors", "0.module.rnns.1.module.bias_hh_l0"],
        )
        .prep(|d| {
            drop_tensor(
                &d.join("clf/model.safetensors"),
                "0.module.rnns.1.module.bias_hh_l0",
            )
        }),
        case(
            "vocab mismatch: clf-train --encoder",
            "clf-train",
            &["other", "--encoder", "lm", "-o", "out"],
            &["vocab hash", "numericalize --vocab"],
        ),
        case(
            "vocab mismatch: predict",
            "clf-train",
            &["predict", "--ckpt", "clf", "other", "-o", "p.jsonl"],
            &["vocab hash"],
        ),
        case(
            "NaN regression target",
            "clf-train",
            &[
                "nan",
                "--encoder",
                "lm",
                "-o",
                "out",
                "--label-col",
                "y",
                "--task",
                "regression",
            ],
            &["nan/", ".fields", "\"NaN\"", "finite"],
        )
        .prep(bad_shards(
            "nan",
            corpus(60, 4, |i, _, y| {
                if i == 7 {
                    *y = "NaN".into()
                }
            }),
        )),
        case(
            "inf regression target",
            "clf-train",
            &["inf", "--encoder", "lm", "-o", "out", "--label-col", "y"],
            &["inf/", ".fields", "\"inf\"", "finite"],
        )
        .prep(bad_shards(
            "inf",
            corpus(60, 5, |i, _, y| {
                if i == 11 {
                    *y = "inf".into()
                }
            }),
        )),
        case(
            "-inf regression target, previous classifier kept",
            "clf-train",
            &[
                "ninf",
                "--encoder",
                "lm",
                "-o",
                "clf",
                "--force",
                "--label-col",
                "y",
                "--task",
                "regression",
            ],
            &["ninf/", "\"-inf\"", "finite"],
        )
        .prep(bad_shards(
            "ninf",
            corpus(60, 6, |i, _, y| {
                if i == 5 {
                    *y = "-inf".into()
                }
            }),
        )),
        case(
            "label unseen in training",
            "clf-train",
            &["unseen", "--encoder", "lm", "-o", "out"],
            &["unseen/valid.fields", "\"meh\" was not seen in training"],
        )
        .prep(bad_shards(
            "unseen",
            corpus(60, 7, |i, l, _| {
                if i == 10 {
                    *l = "meh".into()
                }
            }),
        )),
        case(
            "label column missing",
            "clf-train",
            &[
                "shards",
                "--encoder",
                "lm",
                "-o",
                "out",
                "--label-col",
                "stars",
            ],
            &["shards", "\"stars\""],
        ),
        case(
            "clf-train: output directory read-only",
            "clf-train",
            &["shards", "--encoder", "lm", "-o", "ro/clf"],
            &["ro/clf", "cannot create a temporary directory in ro"],
        )
        .env(Env::ReadOnly("ro")),
        case(
            "clf-train: disk full",
            "clf-train",
            &["shards", "--encoder", "lm", "-o", "full/clf"],
            &["full/clf", "No space left on device"],
        )
        .env(Env::DiskFull("full")),
        case(
            "predict: disk full",
            "clf-train",
            &["predict", "--ckpt", "clf", "shards", "-o", "full/p.jsonl"],
            &["full/p.jsonl", "No space left on device"],
        )
        .env(Env::DiskFull("full")),
        case(
            "lr-find --init with a classifier",
            "lr-find",
            &["shards", "--init", "clf"],
            &["clf/config.json", "not a language-model checkpoint"],
        ),
        case(
            "lr-find --ckpt with a language model",
            "lr-find",
            &["shards", "--ckpt", "lm"],
            &["lm", "a language-model checkpoint"],
        ),
        case(
            "vocab mismatch: lr-find --init",
            "lr-find",
            &["other", "--init", "lm"],
            &["vocab", "--remap-vocab"],
        ),
        case(
            "lr-find: classifier missing a tensor",
            "lr-find",
            &["shards", "--ckpt", "clf"],
            &["clf/model.safetensors", "1.layers.0.0.running_mean"],
        )
        .prep(|d| {
            drop_tensor(
                &d.join("clf/model.safetensors"),
                "1.layers.0.0.running_mean",
            )
        }),
        case(
            "lr-find: disk full (records and plot)",
            "lr-find",
            &["shards", "-o", "full/lr.jsonl", "--plot", "full/lr.png"],
            &["full/lr", "No space left on device"],
        )
        .env(Env::DiskFull("full")),
        // ---- bias-audit: predictions in -------------------------------------------------------
        case(
            "bias-audit: quote left open",
            "bias-audit",
            &[
                "p.csv",
                "--protected",
                "sex",
                "--privileged",
                "M",
                "--json-out",
                "a.json",
                "--force",
            ],
            &["p.csv", "line 3", "quoted field is not closed"],
        )
        .file("p.csv", "y_true,y_pred,sex\n1,1,M\n0,1,\"F\n1,0,F\n")
        .file("a.json", OLD),
        case(
            "bias-audit: ragged row",
            "bias-audit",
            &["p.csv", "--protected", "sex", "--json-out", "a.json"],
            &["p.csv", "line 3", "ragged row"],
        )
        .file("p.csv", "y_true,y_pred,sex\n1,1,M\n0,1\n"),
        case(
            "bias-audit: invalid UTF-8",
            "bias-audit",
            &["p.csv", "--protected", "sex", "--json-out", "a.json"],
            &["p.csv", "line 2", "invalid UTF-8"],
        )
        .file("p.csv", &b"y_true,y_pred,sex\n1,1,M\xe9\n0,1,F\n"[..]),
        case(
            "bias-audit: UTF-16",
            "bias-audit",
            &["p.csv", "--protected", "sex"],
            &["p.csv", "UTF-16"],
        )
        .file("p.csv", &b"\xff\xfey\0_\0"[..]),
        case(
            "bias-audit: NUL byte",
            "bias-audit",
            &["p.csv", "--protected", "sex", "--json-out", "a.json"],
            &["p.csv", "line 3", "NUL byte"],
        )
        .file("p.csv", &b"y_true,y_pred,sex\n1,1,M\n0,1,F\0\n"[..]),
        case(
            "bias-audit: empty input",
            "bias-audit",
            &["p.csv", "--protected", "sex"],
            &["p.csv", "empty input"],
        )
        .file("p.csv", ""),
        case(
            "bias-audit: whitespace-only input",
            "bias-audit",
            &["p.csv", "--protected", "sex"],
            &["p.csv", "empty input"],
        )
        .file("p.csv", "  \n\n\t\n"),
        case(
            "bias-audit: header only",
            "bias-audit",
            &["p.csv", "--protected", "sex"],
            &["p.csv", "no rows"],
        )
        .file("p.csv", "y_true,y_pred,sex\n"),
        case(
            "bias-audit: missing column",
            "bias-audit",
            &["p.csv", "--protected", "race"],
            &["p.csv", "no column \"race\""],
        )
        .file("p.csv", "y_true,y_pred,sex\n1,1,M\n"),
        case(
            "bias-audit: duplicated column",
            "bias-audit",
            &["p.csv", "--protected", "sex"],
            &["p.csv", "\"y_true\" appears twice"],
        )
        .file("p.csv", "y_true,y_true,sex\n1,1,M\n"),
        case(
            "bias-audit: NaN regression target",
            "bias-audit",
            &["p.csv", "--protected", "sex", "--task", "regression"],
            &["p.csv", "line 3", "nan"],
        )
        .file(
            "p.csv",
            "y_true,y_pred,sex\n0.5,0.4,M\nnan,0.2,F\n0.1,0.3,F\n",
        ),
        case(
            "bias-audit: disk full (JSON and plot)",
            "bias-audit",
            &[
                "p.csv",
                "--protected",
                "sex",
                "--privileged",
                "M",
                "--json-out",
                "full/a.json",
                "--plot",
                "full/a.png",
            ],
            &["full/a", "No space left on device"],
        )
        .file("p.csv", "y_true,y_pred,sex\n1,1,M\n0,1,F\n1,0,F\n0,0,M\n")
        .env(Env::DiskFull("full")),
    ]
}

// ---------------------------------------------------------------------------------------------
// Running a case.

/// Every file under `dir` (hidden ones too) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.insert(format!("{rel}/"), vec![]);
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, std::fs::read(e.path()).unwrap_or_default());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(dir, dir, &mut m);
    m
}

/// Can this process mount a tmpfs in a private user+mount namespace? (Read-only directories
/// need it only as root, who can write through `chmod`; ordinary users get `chmod 555`, and
/// the expected messages leave out the OS's reason: read-only file system or permission denied.)
fn namespaces_work() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        Command::new("unshare")
            .args([
                "-r",
                "-m",
                "sh",
                "-c",
                "mount -t tmpfs -o size=4k tmpfs \"$0\"",
            ])
            .arg(d.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Flags that keep the trainers tiny and on one CPU thread.
fn small_settings(c: &Case) -> Vec<&'static str> {
    let has = |f: &str| c.args.contains(&f);
    match c.tool {
        "lm-train" if c.args[0] == "generate" => CPU.to_vec(),
        "lm-train" => lm_tiny(),
        "clf-train" if c.args[0] == "predict" => CPU.to_vec(),
        "clf-train" => clf_tiny(),
        "lr-find" if has("--ckpt") => [&words("--bs 8 --num-it 6"), &CPU[..]].concat(),
        "lr-find" if has("--init") => [&words("--bs 4 --bptt 8 --num-it 6"), &CPU[..]].concat(),
        "lr-find" => [&lm_tiny()[..], &["--num-it", "6"]].concat(),
        _ => vec![],
    }
}

/// Runs the case; None when its environment cannot be made here.
fn run_case(c: &Case, dir: &Path) -> Option<Output> {
    let t = bin(c.tool);
    let mut cmd = match c.env {
        Env::Plain => Command::new(&t),
        Env::ReadOnly(ro) => {
            if !is_root() {
                // chmod is enough for an ordinary user
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir.join(ro), std::fs::Permissions::from_mode(0o555))
                    .unwrap();
                Command::new(&t)
            } else if namespaces_work() {
                let mut cmd = Command::new("unshare");
                cmd.args([
                    "-r",
                    "-m",
                    "sh",
                    "-c",
                    "mount -t tmpfs -o ro,size=64k tmpfs \"$0\" || exit 99; exec \"$@\"",
                    ro,
                ])
                .arg(&t);
                cmd
            } else {
                return None;
            }
        }
        Env::DiskFull(full) => {
            if !namespaces_work() {
                return None;
            }
            let mut cmd = Command::new("unshare");
            cmd.args([
                "-r",
                "-m",
                "sh",
                "-c",
                "mount -t tmpfs -o size=4k tmpfs \"$0\" || exit 99; \"$@\"; rc=$?; \
                 if [ -n \"$(ls -A \"$0\")\" ]; then echo \"left in $0: $(ls -A \"$0\")\" >&2; exit 98; fi; exit $rc",
                full,
            ])
            .arg(&t);
            cmd
        }
    };
    cmd.current_dir(dir)
        .args(&c.args)
        .args(small_settings(c))
        .arg("-q");
    cmd.env_remove("RUST_BACKTRACE");
    let o = run(cmd);
    if let Env::ReadOnly(ro) = c.env {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join(ro), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Some(o)
}

#[test]
fn hostile_inputs_get_exit_2_one_line_and_leave_outputs_alone() {
    let fx = fixtures();
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    let (mut ran, mut skipped) = (0, 0);
    let mut failed: Vec<&str> = Vec::new();
    for c in &cases {
        assert!(names.insert(c.name), "two cases named {:?}", c.name);
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in ["shards", "other", "lm", "clf"] {
            copy_dir(&fx.dir.join(f), &d.join(f));
        }
        for (name, bytes) in &c.files {
            std::fs::write(d.join(name), bytes).unwrap();
        }
        if let Some(p) = &c.prepare {
            p(d);
        }
        if let Env::ReadOnly(sub) | Env::DiskFull(sub) = c.env {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let before = snapshot(d);
        let Some(o) = run_case(c, d) else {
            eprintln!(
                "SKIP case {:?}: cannot mount a tmpfs here (unshare -r -m)",
                c.name
            );
            skipped += 1;
            continue;
        };
        ran += 1;
        let err = stderr(&o);
        eprintln!("case {:?}: {}", c.name, err.trim_end());
        // Check everything, report every failing case at the end.
        let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_ne!(o.status.code(), Some(99), "mounting the tmpfs failed");
            assert!(
                !err.contains("panicked") && !err.contains("backtrace"),
                "{err}"
            );
            // no Debug dumps of Rust values (an io::Error's `Os { code: .. }`, a config struct)
            assert!(
                !err.contains("Os {") && !err.contains("IoError(") && !err.contains("Config {"),
                "a raw Debug dump in the message: {err}"
            );
            assert_error(&o, c.tool, &c.expect);
            let after = snapshot(d);
            let changed: std::collections::BTreeSet<&String> = before
                .keys()
                .chain(after.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .collect();
            assert!(changed.is_empty(), "changed or left files: {changed:?}");
        }));
        if check.is_err() {
            failed.push(c.name);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {ran} cases failed: {failed:?}",
        failed.len()
    );
    eprintln!("{ran} hostile cases passed, {skipped} skipped");
}

// ---------------------------------------------------------------------------------------------
// `tool ... | head -1`: the reader goes away; exit 0, nothing on stderr but what -q allows.

fn head_1(dir: &Path, tool: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin(tool))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // the reader is dropped here: every later write of the tool gets EPIPE
    let o = child.wait_with_output().unwrap();
    (o.status.code(), first, stderr(&o))
}

#[test]
fn stdout_closed_early_is_a_quiet_success() {
    let fx = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for f in ["shards", "lm", "clf"] {
        copy_dir(&fx.dir.join(f), &d.join(f));
    }
    // big enough that the output overflows any pipe buffer
    std::fs::write(d.join("big.csv"), corpus(20_000, 9, |_, _, _| {})).unwrap();
    let mut preds = String::from("y_true,y_pred,sex\n");
    for i in 0..2000 {
        preds.push_str(&format!(
            "{},{},{}\n",
            i % 2,
            (i / 2) % 2,
            ["M", "F"][i % 3 % 2]
        ));
    }
    std::fs::write(d.join("p.csv"), preds).unwrap();
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("tokenize", vec!["big.csv", "--keep", "label", "-q"]),
        (
            "lr-find",
            vec![
                "shards",
                "--emb-sz",
                "16",
                "--n-hid",
                "32",
                "--n-layers",
                "2",
                "--bs",
                "4",
                "--bptt",
                "8",
                "--num-it",
                "30",
                "-q",
            ],
        ),
        (
            "clf-train",
            vec!["predict", "--ckpt", "clf", "shards", "--device", "cpu"],
        ),
        (
            "lm-train",
            [
                &words("shards -o lm2 --steps 20 --log-every 1 -q")[..],
                &lm_tiny()[..],
            ]
            .concat(),
        ),
        (
            "bias-audit",
            vec!["p.csv", "--protected", "sex", "--privileged", "M", "-q"],
        ),
        ("numericalize", vec!["verify", "shards"]),
    ];
    for (t, args) in runs {
        let (code, first, err) = head_1(d, t, &args);
        eprintln!(
            "{t} | head -1: exit {code:?}, first line {:?}",
            first.chars().take(60).collect::<String>()
        );
        assert_eq!(code, Some(0), "{t} | head -1: {err}");
        assert!(!first.is_empty(), "{t}: no first line");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{t}: {err}"
        );
        assert!(err.trim().is_empty(), "{t} -q printed: {err}");
    }
}
