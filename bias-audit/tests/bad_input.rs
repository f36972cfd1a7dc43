//! Bad input of every kind: exit 2, one line on stderr naming the file and the problem, and no
//! output file written. One table, one row per case.

use std::process::Command;

struct Case {
    name: &'static str,
    /// (file name, contents) created in a temp dir; the first is the input
    files: &'static [(&'static str, &'static [u8])],
    args: &'static [&'static str],
    /// substrings the one error line must contain
    expect: &'static [&'static str],
}

const OK: &[u8] = b"y_true,y_pred,score,sex\n1,1,0.9,F\n0,0,0.2,M\n1,0,0.4,M\n0,1,0.6,F\n";

fn cases() -> Vec<Case> {
    vec![
        Case { name: "missing protected column", files: &[("p.csv", OK)], args: &["p.csv", "--protected", "race"],
               expect: &["bias-audit: p.csv: ", "no column \"race\"", "columns: y_true, y_pred, score, sex"] },
        Case { name: "missing label column", files: &[("p.csv", OK)], args: &["p.csv", "--protected", "sex", "--y-true", "label"],
               expect: &["p.csv", "no column \"label\"", "--y-true"] },
        Case { name: "missing column in JSON lines", files: &[("p.jsonl", b"{\"y_true\":1,\"y_pred\":0,\"gender\":\"F\"}\n")],
               args: &["p.jsonl", "--protected", "sex"], expect: &["p.jsonl", "no column \"sex\"", "columns: gender, y_pred, y_true"] },
        Case { name: "protected column with a single value", files: &[("p.csv", b"y_true,y_pred,sex\n1,1,F\n0,0,F\n")],
               args: &["p.csv", "--protected", "sex"], expect: &["p.csv", "\"sex\" has a single value (F)", "two groups"] },
        Case { name: "labels not binary", files: &[("p.csv", b"y_true,y_pred,sex\na,b,F\nc,a,M\n")],
               args: &["p.csv", "--protected", "sex"], expect: &["p.csv", "not binary", "3 distinct values (a, b, c)", "--favorable"] },
        Case { name: "favorable label absent", files: &[("p.csv", b"y_true,y_pred,sex\npos,neg,F\nneg,pos,M\n")],
               args: &["p.csv", "--protected", "sex"], expect: &["p.csv", "favorable value '1'", "labels found: neg, pos", "--favorable pos"] },
        Case { name: "score above 1", files: &[("p.csv", b"y_true,y_pred,score,sex\n1,1,0.9,F\n0,0,1.7,M\n")],
               args: &["p.csv", "--protected", "sex"], expect: &["p.csv", "line 3", "score 1.7 is outside [0, 1]"] },
        Case { name: "score not a number", files: &[("p.csv", b"y_true,y_pred,score,sex\n1,1,high,F\n0,0,0.1,M\n")],
               args: &["p.csv", "--protected", "sex"], expect: &["p.csv", "line 2", "score \"high\" is not a number"] },
        Case { name: "explicit score column missing", files: &[("p.csv", OK)], args: &["p.csv", "--protected", "sex", "--score", "prob"],
               expect: &["p.csv", "no column \"prob\"", "--score"] },
        Case { name: "privileged value matches no row (empty group)", files: &[("p.csv", OK)],
               args: &["p.csv", "--protected", "sex", "--privileged", "Male"], expect: &["p.csv", "'Male' matches no row of sex", "groups: F, M"] },
        Case { name: "intersectional privileged with one part", files: &[("p.csv", b"y_true,y_pred,sex,race\n1,1,F,a\n0,0,M,b\n")],
               args: &["p.csv", "--protected", "sex", "--protected", "race", "--privileged", "M"],
               expect: &["p.csv", "has 1 part(s)", "2 protected columns (sex, race)", "'"] },
        Case { name: "empty file", files: &[("p.csv", b"")], args: &["p.csv", "--protected", "sex"], expect: &["p.csv", "empty input"] },
        Case { name: "header only", files: &[("p.csv", b"y_true,y_pred,sex\n")], args: &["p.csv", "--protected", "sex"],
               expect: &["p.csv", "no rows"] },
        Case { name: "ragged CSV row", files: &[("p.csv", b"y_true,y_pred,sex\n1,1,F\n0,0\n")], args: &["p.csv", "--protected", "sex"],
               expect: &["p.csv", "line 3", "ragged row: 2 fields where the header has 3"] },
        Case { name: "invalid UTF-8 in CSV", files: &[("p.csv", b"y_true,y_pred,sex\n1,1,F\n0,0,\xff\n")], args: &["p.csv", "--protected", "sex"],
               expect: &["p.csv", "line 3", "invalid UTF-8"] },
        Case { name: "invalid JSON line", files: &[("p.jsonl", b"{\"y_true\":1,\"y_pred\":1,\"sex\":\"F\"}\n{\"y_true\":0,oops}\n")],
               args: &["p.jsonl", "--protected", "sex"], expect: &["p.jsonl", "line 2", "invalid JSON"] },
        Case { name: "JSON line without a field", files: &[("p.jsonl", b"{\"y_true\":1,\"y_pred\":1,\"sex\":\"F\"}\n{\"y_true\":0,\"y_pred\":1}\n")],
               args: &["p.jsonl", "--protected", "sex"], expect: &["p.jsonl", "line 2", "no field \"sex\""] },
        Case { name: "JSON null label", files: &[("p.jsonl", b"{\"y_true\":1,\"y_pred\":1,\"sex\":\"F\"}\n{\"y_true\":null,\"y_pred\":1,\"sex\":\"M\"}\n")],
               args: &["p.jsonl", "--protected", "sex"], expect: &["p.jsonl", "line 2", "\"y_true\" is null"] },
        Case { name: "regression with text values", files: &[("p.csv", b"y_true,y_pred,sex\n1.5,x,F\n2,2,M\n")],
               args: &["p.csv", "--protected", "sex", "--task", "regression"], expect: &["p.csv", "line 2", "y_pred \"x\" is not a number"] },
        Case { name: "unknown gate metric", files: &[("p.csv", OK)], args: &["p.csv", "--protected", "sex", "--fail-if", "disparity<0.8"],
               expect: &["unknown metric \"disparity\"", "known: ", "demographic_parity_ratio"] },
        Case { name: "malformed gate", files: &[("p.csv", OK)], args: &["p.csv", "--protected", "sex", "--fail-if", "disparate_impact=0.8"],
               expect: &["--fail-if 'disparate_impact=0.8'", "comparison"] },
        Case { name: "missing input file", files: &[], args: &["nope.csv", "--protected", "sex"], expect: &["nope.csv", "cannot open"] },
        Case { name: "plot that is not PNG", files: &[("p.csv", OK)], args: &["p.csv", "--protected", "sex", "--plot", "p.svg"],
               expect: &["p.svg", "PNG"] },
        Case { name: "output exists", files: &[("p.csv", OK), ("old.json", b"old")],
               args: &["p.csv", "--protected", "sex", "--json-out", "old.json"], expect: &["old.json", "already exists", "--force"] },
        Case { name: "UTF-16 input", files: &[("p.csv", b"\xff\xfey\0_\0")], args: &["p.csv", "--protected", "sex"],
               expect: &["p.csv", "UTF-16", "iconv"] },
    ]
}

#[test]
fn bad_input_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in case.files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let mut args: Vec<&str> = case.args.to_vec();
        // every case also asks for output files, which must not appear
        if !args.contains(&"--json-out") {
            args.extend(["--json-out", "out.json"]);
        }
        if !args.contains(&"--plot") {
            args.extend(["--plot", "out.png"]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_bias-audit"))
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let lines: Vec<&str> = stderr.lines().collect();
        let mut why = Vec::new();
        if out.status.code() != Some(2) {
            why.push(format!("exit {:?}, not 2", out.status.code()));
        }
        if lines.len() != 1 {
            why.push(format!("{} stderr lines, not 1", lines.len()));
        }
        for e in case.expect {
            if !stderr.contains(e) {
                why.push(format!("missing {e:?}"));
            }
        }
        if !stderr.starts_with("bias-audit: ") {
            why.push("not prefixed with the tool name".into());
        }
        if !out.stdout.is_empty() {
            why.push("wrote to stdout".into());
        }
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !case.files.iter().any(|(f, _)| f == n))
            .collect();
        left.sort();
        if !left.is_empty() {
            why.push(format!("left files: {left:?}"));
        }
        if !why.is_empty() {
            failures.push(format!(
                "{}: {} — stderr: {}",
                case.name,
                why.join("; "),
                stderr.trim_end()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases().len(),
        failures.join("\n")
    );
}
