//! Every number of the reference (shared/peer/fairness_metrics.py: AIF360 0.6.1, fairlearn
//! 0.15.0) on the Adult predictions fixture must be reproduced within 1e-9, nulls (0/0) as
//! nulls, for the CSV and for the same rows as JSON lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TOL: f64 = 1e-9;

fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/peer/fixtures");
    if dir.join("adult_preds.csv").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

#[derive(Default)]
struct Stats {
    compared: usize,
    max_diff: f64,
    failures: Vec<String>,
}

fn has_numbers(v: &Value) -> bool {
    match v {
        Value::Number(_) | Value::Null => true,
        Value::Array(a) => a.iter().any(has_numbers),
        Value::Object(m) => m.values().any(has_numbers),
        _ => false,
    }
}

/// Walks `expected` and compares every number (and null) it holds with `got`.
fn compare(expected: &Value, got: Option<&Value>, path: &str, st: &mut Stats) {
    match expected {
        Value::Number(n) => {
            st.compared += 1;
            let e = n.as_f64().unwrap();
            match got.and_then(Value::as_f64) {
                Some(g) => {
                    let d = (g - e).abs();
                    st.max_diff = st.max_diff.max(d);
                    if d > TOL {
                        st.failures
                            .push(format!("{path}: expected {e}, got {g} (diff {d:e})"));
                    }
                }
                None => st
                    .failures
                    .push(format!("{path}: expected {e}, got {got:?}")),
            }
        }
        Value::Null => {
            st.compared += 1;
            if !matches!(got, Some(Value::Null)) {
                st.failures
                    .push(format!("{path}: expected null, got {got:?}"));
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                if !has_numbers(v) {
                    continue;
                }
                let sub = format!("{path}.{k}");
                match got.and_then(|g| g.get(k)) {
                    Some(g) => compare(v, Some(g), &sub, st),
                    None => st.failures.push(format!("{sub}: missing")),
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                compare(v, got.and_then(|g| g.get(i)), &format!("{path}[{i}]"), st);
            }
        }
        _ => {}
    }
}

fn audit(input: &Path, protected: &str, privileged: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bias-audit"))
        .arg(input)
        .args([
            "--protected",
            protected,
            "--privileged",
            privileged,
            "--json",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.lines().count(), 1, "one JSON record");
    serde_json::from_str(&s).unwrap()
}

/// The CSV rows as JSON lines, numbers as JSON numbers (as `clf-train predict` writes them).
fn to_jsonl(csv_path: &Path, out: &Path) {
    let mut rdr = csv::Reader::from_path(csv_path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let mut s = String::new();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let mut m = serde_json::Map::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            let val = match (v.parse::<i64>(), v.parse::<f64>()) {
                (Ok(i), _) => Value::from(i),
                (_, Ok(f)) => Value::from(f),
                _ => Value::from(v),
            };
            m.insert(h.to_string(), val);
        }
        s.push_str(&serde_json::to_string(&m).unwrap());
        s.push('\n');
    }
    std::fs::write(out, s).unwrap();
}

fn check(expected_file: &str, protected: &str, privileged: &str) {
    let Some(dir) = fixtures() else { return };
    let expected: Value = serde_json::from_str(
        std::fs::read_to_string(dir.join(expected_file))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("adult_preds.jsonl");
    to_jsonl(&dir.join("adult_preds.csv"), &jsonl);
    for input in [dir.join("adult_preds.csv"), jsonl] {
        let got = audit(&input, protected, privileged);
        let mut st = Stats::default();
        compare(&expected, Some(&got), "", &mut st);
        println!(
            "{expected_file} vs {}: {} numbers compared, max abs difference {:e}",
            input.file_name().unwrap().to_string_lossy(),
            st.compared,
            st.max_diff
        );
        assert!(
            st.compared > 150,
            "too few numbers compared: {}",
            st.compared
        );
        assert!(
            st.failures.is_empty(),
            "{} mismatches:\n{}",
            st.failures.len(),
            st.failures.join("\n")
        );
    }
}

#[test]
fn adult_sex_matches_aif360_and_fairlearn() {
    check("adult_preds.expected.json", "sex", "Male");
}

#[test]
fn adult_race_matches_aif360_and_fairlearn() {
    check("adult_preds.race.expected.json", "race", "White");
}
