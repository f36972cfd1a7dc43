//! The command-line contract: outputs, gates and exit codes, input forms, bootstrap,
//! regression, intersectional groups.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testkit::words;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bias-audit"))
}

fn run_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = bin();
    c.current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// 400 rows: group A (privileged) selected more often than group B.
fn predictions_csv() -> String {
    let mut s = String::from("y_true,y_pred,score,sex\n");
    for i in 0..400u32 {
        let g = if i % 2 == 0 { "A" } else { "B" };
        let y = (i / 2) % 3 == 0;
        let p = if g == "A" {
            (i / 2) % 2 == 0
        } else {
            (i / 2) % 5 == 0
        };
        let score = if p { 0.75 } else { 0.25 } + (i % 7) as f64 / 100.0;
        s.push_str(&format!("{},{},{score:.2},{g}\n", y as u8, p as u8));
    }
    s
}

fn json_of(o: &Output) -> Value {
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{}",
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn help_has_an_example_and_exit_codes() {
    let o = bin().arg("--help").output().unwrap();
    let h = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        h.contains(
            "bias-audit ../shared/peer/fixtures/adult_preds.csv --protected sex --privileged Male"
        ),
        "{h}"
    );
    assert!(h.contains(shared::cli::EXIT_CODES_HELP), "{h}");
}

#[test]
fn gates_exit_1_when_violated_and_0_when_they_hold() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.csv"), predictions_csv()).unwrap();
    let base = ["p.csv", "--protected", "sex", "--privileged", "A", "-q"];
    let with = |gates: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        for g in gates {
            a.extend(["--fail-if", g]);
        }
        run_in(d.path(), &a, b"")
    };
    let o = with(&[
        "disparate_impact<0.8",
        "abs(statistical_parity_difference)<0.01",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("gate failed: disparate_impact<0.8 (value 0.4"),
        "{e}"
    );
    assert!(
        !e.contains("statistical_parity_difference"),
        "only the failed gate is named: {e}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAIL disparate_impact<0.8") && out.contains("ok   abs(statistical_parity"),
        "{out}"
    );
    let o = with(&[
        "disparate_impact<0.2",
        "demographic_parity_difference > 0.9",
        "fairlearn.by_group.B.count<10",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = with(&["aif360.per_group.unprivileged.ppv<0"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "dotted paths reach per-group values"
    );
    let o = run_in(
        d.path(),
        &words("p.csv --protected sex --fail-if disparate_impact<0.8"),
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("needs --privileged"), "{}", stderr(&o));
}

#[test]
fn undefined_metric_fails_its_gate() {
    let d = tempfile::tempdir().unwrap();
    // nobody in B is predicted favorable, nor in A: disparate impact is 0/0
    std::fs::write(
        d.path().join("p.csv"),
        "y_true,y_pred,sex\n1,0,A\n0,0,B\n1,0,B\n0,0,A\n",
    )
    .unwrap();
    let o = run_in(
        d.path(),
        &words("p.csv --protected sex --privileged A --fail-if disparate_impact<0.8 --json"),
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("undefined"), "{}", stderr(&o));
    let v = json_of(&o);
    assert!(v["aif360"]["disparate_impact"].is_null());
    assert_eq!(v["gates"][0]["failed"], true);
}

#[test]
fn json_out_and_plot_files() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.csv"), predictions_csv()).unwrap();
    let args = words("p.csv --protected sex --privileged A --json-out a.json --plot r.png -q");
    let o = run_in(d.path(), &args, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("statistical_parity_difference"),
        "table on stdout"
    );
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("a.json")).unwrap()).unwrap();
    assert_eq!(
        (
            rec["schema"].as_u64(),
            rec["tool"].as_str(),
            rec["type"].as_str()
        ),
        (Some(1), Some("bias-audit"), Some("bias_audit"))
    );
    assert_eq!(rec["rows"], 400);
    assert_eq!(rec["privileged_groups"], serde_json::json!(["A"]));
    let png = std::fs::read(d.path().join("r.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
    // existing outputs are refused without --force, kept, and replaced with it
    let o = run_in(d.path(), &args, b"");
    assert_eq!(o.status.code(), Some(2));
    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(run_in(d.path(), &forced, b"").status.success());
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names.len(), 3, "no temporaries left: {names:?}");
}

#[test]
fn clf_train_style_json_lines_on_stdin() {
    let d = tempfile::tempdir().unwrap();
    let mut s = String::new();
    for (i, line) in predictions_csv().lines().skip(1).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let lab = |x: &str| if x == "1" { "pos" } else { "neg" };
        s.push_str(&format!(
            "{{\"tokens_n\":{i},\"label\":\"{}\",\"pred\":\"{}\",\"score\":{},\"sex\":\"{}\"}}\n",
            lab(f[0]),
            lab(f[1]),
            f[2],
            f[3]
        ));
    }
    let args = words(
        "- --y-true label --y-pred pred --favorable pos --protected sex --privileged A --json",
    );
    let j = json_of(&run_in(d.path(), &args, s.as_bytes()));
    std::fs::write(d.path().join("p.csv"), predictions_csv()).unwrap();
    let c = json_of(&run_in(
        d.path(),
        &["p.csv", "--protected", "sex", "--privileged", "A", "--json"],
        b"",
    ));
    assert_eq!(j["input"], "<stdin>");
    assert_eq!(j["aif360"], c["aif360"]);
    assert_eq!(j["fairlearn"], c["fairlearn"]);
}

#[test]
fn numbers_compare_as_numbers() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.csv"),
        "y_true,y_pred,grp\n1.0,1,0\n0,0,1\n1,0,1\n0,1.0,0\n",
    )
    .unwrap();
    let v = json_of(&run_in(
        d.path(),
        &words("p.csv --protected grp --privileged 1.0 --json -q"),
        b"",
    ));
    assert_eq!(v["n_privileged"], 2);
    assert_eq!(v["aif360"]["per_group"]["overall"]["num_positives"], 2);
    assert_eq!(v["aif360"]["per_group"]["overall"]["num_pred_positives"], 2);
}

#[test]
fn bootstrap_is_seeded_and_brackets_the_estimate() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.csv"), predictions_csv()).unwrap();
    let run = |seed: &str| {
        let args = [
            "p.csv",
            "--protected",
            "sex",
            "--privileged",
            "A",
            "--bootstrap",
            "200",
            "--seed",
            seed,
            "--json",
            "-q",
        ];
        json_of(&run_in(d.path(), &args, b""))
    };
    let (a, b, c) = (run("1"), run("1"), run("2"));
    assert_eq!(a["bootstrap"], b["bootstrap"]);
    assert_ne!(a["bootstrap"]["intervals"], c["bootstrap"]["intervals"]);
    for name in [
        "statistical_parity_difference",
        "disparate_impact",
        "demographic_parity_ratio",
        "fairlearn.equalized_odds_difference",
    ] {
        let iv = &a["bootstrap"]["intervals"][name];
        let (lo, est, hi) = (
            iv["low"].as_f64().unwrap(),
            iv["estimate"].as_f64().unwrap(),
            iv["high"].as_f64().unwrap(),
        );
        assert!(lo <= est && est <= hi && lo < hi, "{name}: {iv}");
    }
    assert_eq!(
        a["bootstrap"]["intervals"]["disparate_impact"]["estimate"],
        a["aif360"]["disparate_impact"]
    );
}

#[test]
fn small_groups_are_warned_about_and_listed() {
    let d = tempfile::tempdir().unwrap();
    let mut s = predictions_csv();
    s.push_str("1,1,0.9,C\n0,0,0.1,C\n");
    std::fs::write(d.path().join("p.csv"), s).unwrap();
    let o = run_in(d.path(), &["p.csv", "--protected", "sex", "--json"], b"");
    assert!(
        stderr(&o).contains("warning: group \"C\" is too small to judge (n=2 < 30"),
        "{}",
        stderr(&o)
    );
    let v = json_of(&o);
    assert_eq!(v["small_groups"][0]["group"], "C");
    assert!(
        v.get("aif360").is_none(),
        "no AIF360 section without --privileged"
    );
    let o = run_in(
        d.path(),
        &["p.csv", "--protected", "sex", "--json", "-q"],
        b"",
    );
    assert!(o.stderr.is_empty());
}

#[test]
fn intersectional_groups() {
    let d = tempfile::tempdir().unwrap();
    let mut s = String::from("y_true,y_pred,sex,race\n");
    for i in 0..80 {
        let sex = ["F", "M"][i % 2];
        let race = ["a", "b"][(i / 2) % 2];
        s.push_str(&format!("{},{},{sex},{race}\n", (i / 4) % 2, (i / 3) % 2));
    }
    std::fs::write(d.path().join("p.csv"), s).unwrap();
    let args = words("p.csv --protected sex --protected race --privileged M|b --json -q");
    let v = json_of(&run_in(d.path(), &args, b""));
    assert_eq!(v["groups"], serde_json::json!(["F|a", "F|b", "M|a", "M|b"]));
    assert_eq!(v["privileged_groups"], serde_json::json!(["M|b"]));
    assert_eq!(v["n_privileged"], 20);
    assert_eq!(v["fairlearn"]["by_group"]["F|a"]["count"], 20);
}

#[test]
fn regression_is_detected_and_reported() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.csv"),
        "y_true,y_pred,g\n1.0,1.5,x\n2.0,2.0,x\n3.0,2.0,y\n5.0,4.0,y\n",
    )
    .unwrap();
    let o = run_in(
        d.path(),
        &words("p.csv --protected g --privileged x --json -q --fail-if mae_difference>0.5"),
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["task"], "regression");
    let r = &v["regression"];
    assert_eq!(r["by_group"]["x"]["mean_prediction"], 1.75);
    assert_eq!(r["by_group"]["y"]["mae"], 1.0);
    assert_eq!(r["mae_difference"], 0.75);
    assert_eq!(r["mean_prediction_difference"], 1.25);
    assert_eq!(r["difference"]["mean_true"], 2.5);
    let o = run_in(
        d.path(),
        &words("p.csv --protected g --plot r.png --bootstrap 50"),
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mean_pred"));
    assert!(d.path().join("r.png").is_file());
}
