//! Test fixtures shared by the tests of `lm-train`, `clf-train`, `lr-find`, `bias-audit` and
//! `integration-tests` (a dev-dependency only; never published, never in a product binary).
//!
//! * arguments: [`words`] and the tiny-model flag groups ([`TINY_ARCH`], [`CPU`], [`FP32`]);
//! * data: the seeded [`lcg`], [`vocab`], [`Shards`] (a synthetic shard set, document by
//!   document), [`grammar_shards`] / [`GrammarEnv`] (the tiny grammar a language model can
//!   learn) and [`sentiment`];
//! * models: [`TinyLm`], a tiny language model trained once per test process (a `OnceLock` in
//!   the test file, a temporary directory, never a fixed path), and [`train_clf`];
//! * processes: [`ok`], [`err`], [`one_line`], [`assert_error`];
//! * metrics: [`jsonl`], [`read_jsonl`], [`records`], [`of_type`]; and [`files`].
//!
//! Binaries are not located here: each test passes its own (`env!("CARGO_BIN_EXE_...")`, or
//! `integration_tests::bin`), and in-process training gets the tool's `run_from`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use shared::shards::ShardSetWriter;
use shared::vocab::Vocab;

// ---------------------------------------------------------------------------------------------
// Arguments.

/// `"--a 1 --b 2"` as `["--a", "1", "--b", "2"]`: flags written as one line. Only for literal
/// flags and values without spaces; paths go in as their own arguments.
pub fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// The tiny AWD-LSTM of the tests: embedding 16, hidden 32, 2 LSTM layers.
pub const TINY_ARCH: [&str; 6] = ["--emb-sz", "16", "--n-hid", "32", "--n-layers", "2"];
/// On the CPU with one thread: deterministic and light on a shared machine.
pub const CPU: [&str; 4] = ["--device", "cpu", "--threads", "1"];
/// Full precision (the default on the CPU is bf16 autocast where the tool has one).
pub const FP32: [&str; 2] = ["--precision", "fp32"];

fn strings<'a>(parts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    parts.into_iter().map(String::from).collect()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

// ---------------------------------------------------------------------------------------------
// Data.

/// The 64-bit LCG of the tests (Knuth's MMIX constants); returns the high 31 bits.
pub fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 33
}

/// A vocab of the special tokens plus `words`, in that order (counts fall with the position).
pub fn vocab(words: &[&str]) -> Vocab {
    let counts: Vec<(String, u64)> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), 1000 - i as u64))
        .collect();
    Vocab::build(&counts, usize::MAX, 1)
}

/// A sentiment word: "good" / "great" when `pos`, else "bad" / "awful"; `r` picks which.
pub fn sentiment(pos: bool, r: u64) -> &'static str {
    match (pos, r % 2) {
        (true, 0) => "good",
        (true, _) => "great",
        (false, 0) => "bad",
        (false, _) => "awful",
    }
}

/// A synthetic shard set with splits `train` and `valid`, written document by document (the
/// row number is the document's index).
pub struct Shards {
    w: ShardSetWriter,
    vocab: Vocab,
    row: u64,
}

impl Shards {
    pub fn create(dir: &Path, vocab: &Vocab, fields: &[&str]) -> Shards {
        let mut w =
            ShardSetWriter::create(dir, false, vocab.clone(), strings(fields.iter().copied()))
                .unwrap();
        w.ensure_split("train").unwrap();
        w.ensure_split("valid").unwrap();
        Shards {
            w,
            vocab: vocab.clone(),
            row: 0,
        }
    }

    /// The id of token `t` (which must be in the vocab).
    pub fn id(&self, t: &str) -> u32 {
        self.vocab
            .get(t)
            .unwrap_or_else(|| panic!("{t:?} not in the vocab"))
    }

    pub fn push(&mut self, split: &str, ids: &[u32], fields: &[Option<&str>]) {
        self.w.push_doc(split, ids, self.row, fields).unwrap();
        self.row += 1;
    }

    pub fn finish(self) {
        self.w.finish(serde_json::json!({}), "test".into()).unwrap();
    }
}

/// The words of [`grammar_shards`].
pub const GRAMMAR_WORDS: [&str; 12] = [
    "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "park", ".", "and",
];

/// `docs` documents of a tiny grammar a model can learn ("xxbos the cat sat on the mat . ...":
/// 4 of 3 sentences, 29 tokens), every 5th in `valid`; no fields.
pub fn grammar_shards(dir: &Path, v: &Vocab, docs: usize, seed: u64) {
    let mut w = Shards::create(dir, v, &[]);
    let sents: [&[&str]; 3] = [
        &["the", "cat", "sat", "on", "the", "mat", "."],
        &["a", "dog", "ran", "to", "the", "park", "."],
        &["the", "dog", "and", "the", "cat", "sat", "."],
    ];
    let mut s = seed;
    for d in 0..docs {
        let mut ids = vec![w.id("xxbos")];
        for _ in 0..4 {
            ids.extend(sents[lcg(&mut s) as usize % 3].iter().map(|t| w.id(t)));
        }
        w.push(if d % 5 == 4 { "valid" } else { "train" }, &ids, &[]);
    }
    w.finish();
}

/// A temporary directory holding `shards/`: 60 grammar documents (48 train, 1392 tokens; at
/// bs 4 × bptt 8, 44 batches an epoch) of [`GRAMMAR_WORDS`], seed 1.
pub struct GrammarEnv {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub shards: PathBuf,
}

impl GrammarEnv {
    pub fn new() -> GrammarEnv {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let shards = dir.join("shards");
        grammar_shards(&shards, &vocab(&GRAMMAR_WORDS), 60, 1);
        GrammarEnv {
            _tmp: tmp,
            dir,
            shards,
        }
    }
}

impl Default for GrammarEnv {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Models, trained in process with the tool's `run_from`.

/// The argv of a tiny language model: 5 steps at lr 1e-2 of [`TINY_ARCH`], batches of `bs` ×
/// bptt 8, CPU, fp32, one thread, quiet; metrics to `<out>.jsonl`.
pub fn tiny_lm_argv(shards: &Path, out: &Path, bs: u32) -> Vec<String> {
    let mut a = strings(["lm-train", path(shards), "-o", path(out)]);
    a.extend(strings(words("--steps 5 --lr 1e-2 --bptt 8 -q")));
    a.extend(strings(TINY_ARCH.into_iter().chain(CPU).chain(FP32)));
    a.extend(["--bs".into(), bs.to_string()]);
    a.extend(["--metrics".into(), format!("{}.jsonl", path(out))]);
    a
}

/// Trains a classifier of `shards` on the encoder `lm` into `out` in process: bptt 8, CPU,
/// fp32, one thread, quiet, metrics to `<out>.jsonl`, plus `extra` (`--unfreeze`, `--bs`, ...).
pub fn train_clf<E: Debug>(
    clf_train: impl FnOnce(Vec<String>) -> Result<i32, E>,
    shards: &Path,
    lm: &Path,
    out: &Path,
    extra: &[&str],
) {
    let mut a = strings([
        "clf-train",
        path(shards),
        "--encoder",
        path(lm),
        "-o",
        path(out),
    ]);
    a.extend(strings(
        words("--bptt 8 -q").into_iter().chain(CPU).chain(FP32),
    ));
    a.extend(["--metrics".into(), format!("{}.jsonl", path(out))]);
    a.extend(strings(extra.iter().copied()));
    assert_eq!(clf_train(a).unwrap(), 0, "clf-train in process");
}

/// A shard set and a tiny language model ([`tiny_lm_argv`]) on it, in a temporary directory
/// that lives as long as this value. Meant to be made once per test process:
///
/// ```ignore
/// fn shared() -> &'static TinyLm {
///     static S: OnceLock<TinyLm> = OnceLock::new();
///     S.get_or_init(|| TinyLm::new(8, write_shards, lm_train::run_from))
/// }
/// ```
pub struct TinyLm {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub shards: PathBuf,
    pub lm: PathBuf,
}

impl TinyLm {
    /// `write` makes the shard set at the path it is given; `lm_train` is the tool's `run_from`.
    pub fn new<E: Debug>(
        bs: u32,
        write: impl FnOnce(&Path),
        lm_train: impl FnOnce(Vec<String>) -> Result<i32, E>,
    ) -> TinyLm {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (shards, lm) = (dir.join("shards"), dir.join("lm"));
        write(&shards);
        assert_eq!(
            lm_train(tiny_lm_argv(&shards, &lm, bs)).unwrap(),
            0,
            "lm-train in process"
        );
        TinyLm {
            _tmp: tmp,
            dir,
            shards,
            lm,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that the process succeeded; returns its stdout (which must be UTF-8).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstderr: {}\nstdout: {}",
        o.status.code(),
        stderr(o),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Asserts exit code `code`; returns stderr.
pub fn err(o: &Output, code: i32) -> String {
    let e = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}; stderr: {e}"
    );
    e
}

/// Asserts that `err` is one line (trailing white space aside) starting with `tool: `.
pub fn one_line(err: &str, tool: &str) {
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(
        err.starts_with(&format!("{tool}: ")),
        "not from {tool}: {err}"
    );
}

/// The error contract of case `what`: exit 2, one stderr line `tool: ...` holding every one of
/// `needles`. Returns stderr.
pub fn assert_error(what: &str, o: &Output, tool: &str, needles: &[&str]) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{what}: one line: {e}");
    assert!(e.starts_with(&format!("{tool}: ")), "{what}: {e}");
    for n in needles {
        assert!(e.contains(n), "{what}: {n:?} not in {e}");
    }
    e
}

/// Runs `cmd` (a tool reading `input`, which lies alone in its directory) with `--metrics
/// /dev/full -o out`: a summary that cannot be written must fail the run before its output is
/// published (exit 2, one line naming /dev/full, no output, no temporary files left). Skips
/// (returns false) where there is no /dev/full.
pub fn check_metrics_failure_publishes_nothing(
    tool: &str,
    mut cmd: std::process::Command,
    input: &Path,
    out: &Path,
) -> bool {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return false;
    }
    let o = cmd
        .args(["-q", "--metrics", "/dev/full", "-o"])
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert_error(
        "--metrics /dev/full",
        &o,
        tool,
        &["/dev/full", "No space left"],
    );
    assert!(!out.exists(), "{tool}: {} was published", out.display());
    let dir = input.parent().expect("input in a directory");
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, [input.to_path_buf()], "{tool}: temporary files left");
    true
}

// ---------------------------------------------------------------------------------------------
// Metrics (JSON lines) and files.

/// Every line of `text` as JSON.
pub fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every line of the file as JSON.
pub fn read_jsonl(p: &Path) -> Vec<Value> {
    jsonl(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// The records of type `ty` in JSON lines `text`.
pub fn records(text: &str, ty: &str) -> Vec<Value> {
    jsonl(text)
        .into_iter()
        .filter(|r| r["type"] == ty)
        .collect()
}

/// The records of type `ty` among `r`.
pub fn of_type<'a>(r: &'a [Value], ty: &str) -> Vec<&'a Value> {
    r.iter().filter(|x| x["type"] == ty).collect()
}

/// The files of the (flat) directory `dir` with their bytes.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|f| {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}
