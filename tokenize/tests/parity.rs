//! Parity of `tokenize::fastai::Tokenizer` with fastai 2.8.12's own output.
//!
//! Reference: `shared/peer/fixtures/imdb_sample_200.fastai_tokens.jsonl`, written by
//! `shared/peer/fastai_tokenize.py --out` (fastai's `tokenize_df` with the default
//! rules and `SpacyTokenizer`) for the first 200 rows, column `text`, of
//! `shared/data/imdb_sample/texts.csv`. Both live outside the repository, next to
//! the workspace root (`../shared`); the tests skip (and pass) when they are absent.
//!
//! Metrics:
//! * documents identical: token sequences equal;
//! * token alignment: for each document, the length of the longest common
//!   subsequence of the two token sequences (tokens matched in order); summed over
//!   documents and divided by the sum of `max(len_ours, len_fastai)`.

use std::path::PathBuf;
use tokenize::fastai::Tokenizer;

fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("shared")
}

/// Length of the longest common subsequence of two token sequences.
fn lcs(a: &[String], b: &[String]) -> usize {
    // Trim the common prefix and suffix first (usually everything).
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[pre..], &b[pre..]);
    let suf = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suf], &b[..b.len() - suf]);
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    pre + suf + prev[b.len()]
}

fn read_texts(path: &PathBuf, col: &str, limit: usize) -> Vec<String> {
    let mut rdr = csv::Reader::from_path(path).expect("open texts.csv");
    let idx = rdr
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == col)
        .expect("text column");
    rdr.records()
        .take(limit)
        .map(|r| r.expect("csv record")[idx].to_string())
        .collect()
}

fn read_fixture(path: &PathBuf) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("read fixture");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("fixture json");
            v["tokens"]
                .as_array()
                .expect("tokens array")
                .iter()
                .map(|t| t.as_str().expect("token string").to_string())
                .collect()
        })
        .collect()
}

#[test]
fn imdb_sample_200_matches_fastai() {
    let shared = shared_dir();
    let csv_path = shared.join("data/imdb_sample/texts.csv");
    let fixture = shared.join("peer/fixtures/imdb_sample_200.fastai_tokens.jsonl");
    if !csv_path.exists() || !fixture.exists() {
        println!(
            "SKIP: {} or {} not found",
            csv_path.display(),
            fixture.display()
        );
        return;
    }
    let expected = read_fixture(&fixture);
    let texts = read_texts(&csv_path, "text", expected.len());
    assert_eq!(texts.len(), expected.len(), "fixture rows vs csv rows");

    let tk = Tokenizer::new();
    let (mut same, mut matched, mut total) = (0usize, 0usize, 0usize);
    let mut report = String::new();
    for (i, (text, exp)) in texts.iter().zip(&expected).enumerate() {
        let got = tk.tokenize(text);
        total += got.len().max(exp.len());
        if &got == exp {
            same += 1;
            matched += got.len();
            continue;
        }
        matched += lcs(&got, exp);
        let p = got
            .iter()
            .zip(exp)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(exp.len()));
        let lo = p.saturating_sub(3);
        report.push_str(&format!(
            "doc {i}, token {p}:\n  ours:   {:?}\n  fastai: {:?}\n",
            &got[lo..(p + 5).min(got.len())],
            &exp[lo..(p + 5).min(exp.len())]
        ));
    }
    let n = expected.len();
    let doc_rate = same as f64 / n as f64;
    let tok_rate = matched as f64 / total.max(1) as f64;
    println!(
        "fastai parity: {same}/{n} documents identical, {:.4}% tokens aligned ({matched}/{total})",
        tok_rate * 100.0
    );
    print!("{report}");
    assert!(
        doc_rate >= 0.95,
        "only {same}/{n} documents identical\n{report}"
    );
    assert!(
        tok_rate >= 0.999,
        "only {:.4}% tokens aligned\n{report}",
        tok_rate * 100.0
    );
}

#[test]
fn lcs_alignment_metric() {
    let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(lcs(&v("a b c d"), &v("a b c d")), 4);
    assert_eq!(lcs(&v("a b c d"), &v("a x c d")), 3);
    assert_eq!(lcs(&v("a b c d"), &v("a b b c d")), 4);
    assert_eq!(lcs(&v("xxbos do n't"), &v("xxbos don't")), 1);
}

/// Optional cross-check against the real fastai + spaCy on tricky strings, when
/// the peer venv exists (`$FASTAI_PEER_PYTHON`, else `~/.cache/peer-venv/bin/python`).
/// Skips cleanly otherwise: the product never needs Python.
#[test]
fn tricky_strings_match_python_when_available() {
    let python = std::env::var_os("FASTAI_PEER_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/peer-venv/bin/python"))
        });
    let Some(python) = python.filter(|p| p.exists()) else {
        println!("SKIP: no peer venv python");
        return;
    };
    let cases: Vec<String> = [
        "I don't know, can't tell; won't say. U.S. vs. U.K. e.g. i.e.",
        "Mail a.b@c.org, see www.imdb.com or http://x.org/a?b=1#c. 10.0.0.1/x 8.8.8.8/x",
        "Wait... what?!?! Sooooo goooood!!!! ... …… ....",
        ":) :-( <3 ^_^ (: ;) XD :P o_O ¯\\(ツ)/¯ 😀😀😀 ©2009",
        "$1,000,000 5$ 10km 3.5 1-2 2+2=4 5x 100% 6ft 12mph °C. 30°F.",
        "well-known a--b x—y ~z e-mail A.B.C. a.b.C",
        "Line\n\nbreak \n here\t\ttabs \u{85} NEL \u{a0} nbsp \u{2003} em \u{1c} fs",
        "word word word word. the the the, no no no-no",
        "ALL CAPS! McDonald's DVD's I'M 'QUOTED' \"Élan\" ÉCOLE Straße İstanbul ΣΟΦΟΣ",
        "&amp;amp; &quot;x&quot; &lt;b&gt; &#39; &#146; &nbsp;&nbsp; &eacute &copy; &#x2014; &#150; <unk> @-@ @.@",
        "#hashtag / slash \\ back //  double  spaces   here",
        "''quoted'' ``tex'' 'single' \"double\" (paren) [bracket] {brace} x-a. vitamin-c.",
        "xxbos xxmaj xxup xxrep xxwrep xxunk xxpad xxeos xxfld",
        "",
        "   ",
        "<br /><br />",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let script = r#"
import sys, json
from fastai.text.core import SpacyTokenizer, tokenize1
tok = SpacyTokenizer('en')
for line in sys.stdin:
    print(json.dumps(list(tokenize1(json.loads(line), tok))))
"#;
    let input: String = cases
        .iter()
        .map(|c| serde_json::to_string(c).expect("json") + "\n")
        .collect();
    let mut child = match std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("SKIP: cannot run {}: {e}", python.display());
            return;
        }
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write to python");
    }
    let out = child.wait_with_output().expect("python output");
    if !out.status.success() {
        println!(
            "SKIP: the peer venv cannot run fastai (status {})",
            out.status
        );
        return;
    }
    let tk = Tokenizer::new();
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let refs: Vec<Vec<String>> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json tokens"))
        .collect();
    assert_eq!(refs.len(), cases.len());
    for (c, r) in cases.iter().zip(&refs) {
        assert_eq!(&tk.tokenize(c), r, "input {c:?}");
    }
}

/// Optional cross-check: `src/fastai/tables.rs` is what `tests/peer/gen_tables.py` extracts
/// from the real spaCy/fastai/Python (character classes, tokenizer exceptions, HTML entities).
/// Runs only when the peer venv exists; skips cleanly otherwise.
#[test]
fn generated_tables_match_spacy_when_available() {
    let python = std::env::var_os("FASTAI_PEER_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/peer-venv/bin/python"))
        });
    let Some(python) = python.filter(|p| p.exists()) else {
        println!("SKIP: no peer venv python");
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&python)
        .arg(dir.join("tests/peer/gen_tables.py"))
        .stderr(std::process::Stdio::null())
        .output()
        .expect("run gen_tables.py");
    if !out.status.success() {
        println!("SKIP: the peer venv cannot run gen_tables.py (spaCy/fastai missing?)");
        return;
    }
    let committed = std::fs::read(dir.join("src/fastai/tables.rs")).expect("tables.rs");
    assert!(
        out.stdout == committed,
        "src/fastai/tables.rs differs from what gen_tables.py generates now"
    );
}
