//! The plot binary on synthetic metrics: which records make each curve, the files it writes,
//! and one-line errors with exit code 2 and no output.

use std::path::Path;
use std::process::{Command, Output};

use clap::Parser;
use plot::{chart, Args, Run};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_plot");

fn lm_metrics(scale: f64) -> String {
    let mut s = String::new();
    s.push_str("{\"schema\":1,\"tool\":\"lm-train\",\"type\":\"lm_start\",\"bs\":4}\n");
    for step in 1..=20u32 {
        let l = scale * (6.0 - (step as f64).ln());
        s.push_str(&format!(
            "{{\"type\":\"lm_step\",\"step\":{step},\"train_loss\":{l},\"lr\":{}}}\n",
            1e-3 * step as f64
        ));
        if step % 10 == 0 {
            s.push_str(&format!(
                "{{\"type\":\"lm_epoch\",\"epoch\":{},\"step\":{step},\"train_loss\":{l},\"valid_loss\":{},\"perplexity\":{},\"accuracy\":null}}\n",
                step / 10 - 1,
                l + 0.1,
                (l + 0.1f64).exp()
            ));
        }
    }
    s
}

fn run_of(text: &str, label: &str) -> Run {
    Run {
        label: label.into(),
        path: format!("{label}.jsonl"),
        records: text
            .lines()
            .map(|l| match serde_json::from_str(l).unwrap() {
                serde_json::Value::Object(m) => m,
                _ => unreachable!(),
            })
            .collect(),
    }
}

fn args(extra: &[&str]) -> Args {
    let mut v = vec!["plot", "x.jsonl", "-o", "x.png"];
    v.extend_from_slice(extra);
    Args::parse_from(v)
}

fn plot(dir: &Path, argv: &[&str]) -> Output {
    Command::new(BIN)
        .args(argv)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn fail(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    assert!(e.starts_with("plot: "), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[test]
fn loss_is_per_step_train_loss_and_per_epoch_valid_loss() {
    let (c, curves) = chart(&[run_of(&lm_metrics(1.0), "a")], &args(&[])).unwrap();
    assert_eq!(curves.len(), 2);
    assert_eq!(
        (curves[0].metric.as_str(), curves[0].record_type.as_str()),
        ("train_loss", "lm_step")
    );
    assert_eq!(curves[0].pts.len(), 20);
    assert_eq!(
        (curves[1].metric.as_str(), curves[1].record_type.as_str()),
        ("valid_loss", "lm_epoch")
    );
    assert_eq!(
        curves[1].pts,
        vec![
            (10.0, 6.0 - 10f64.ln() + 0.1),
            (20.0, 6.0 - 20f64.ln() + 0.1)
        ]
    );
    assert_eq!(c.x_label, "step");
    assert!(!c.x_log);
    // a null (NaN in the metrics) is skipped, not an error: accuracy has no points here
    let e = chart(&[run_of(&lm_metrics(1.0), "a")], &args(&["-y", "accuracy"]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no record has \"accuracy\" with a numeric \"step\""),
        "{e}"
    );
    assert!(
        e.contains("numeric fields: bs, epoch, lr, perplexity"),
        "{e}"
    );
}

#[test]
fn several_runs_one_color_each_and_custom_axes() {
    let runs = [
        run_of(&lm_metrics(1.0), "fp32"),
        run_of(&lm_metrics(1.1), "bf16"),
    ];
    let (c, curves) = chart(&runs, &args(&[])).unwrap();
    assert_eq!(curves.len(), 4);
    let names: Vec<&str> = c.series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fp32 train_loss",
            "fp32 valid_loss",
            "bf16 train_loss",
            "bf16 valid_loss"
        ]
    );
    assert_eq!(c.series[1].color, shared::plot::COLORS[0]);
    assert_eq!(c.series[3].color, shared::plot::COLORS[1]);
    assert_ne!(
        c.series[0].color, c.series[1].color,
        "train lighter than valid"
    );
    // one metric over epochs on a log axis: the legend names the runs
    let (c, curves) = chart(
        &runs,
        &args(&["-y", "perplexity", "-x", "epoch", "--log-y"]),
    )
    .unwrap();
    assert_eq!(curves.len(), 2);
    assert_eq!(c.series[1].name, "bf16");
    assert!(c.y_log);
    assert_eq!(curves[0].pts[0].0, 0.0);
}

#[test]
fn lr_find_curves_are_smoothed_loss_against_lr_per_repeat() {
    let mut s = String::from("{\"type\":\"lr_find_start\",\"bs\":4}\n");
    for rep in 0..2 {
        for i in 0..10 {
            let lr = 1e-7 * 10f64.powi(i);
            s.push_str(&format!(
                "{}\n",
                json!({"type":"lr_find_iter","repeat":rep,"iter":i,"lr":lr,"loss":5.0,"smooth_loss":5.0 - i as f64 * 0.1})
            ));
        }
    }
    let (c, curves) = chart(&[run_of(&s, "lr")], &args(&[])).unwrap();
    assert!(c.x_log);
    assert_eq!(c.x_label, "lr (log scale)");
    assert_eq!(curves.len(), 2);
    assert_eq!(curves[1].repeat, Some(1));
    assert_eq!(curves[0].metric, "smooth_loss");
    assert_eq!(c.series[1].name, "smooth_loss repeat 1");
}

#[test]
fn clf_train_lrs_plot_the_head_group() {
    let s = "{\"type\":\"clf_step\",\"step\":1,\"lrs\":[0.1,0.2,0.3]}\n{\"type\":\"clf_step\",\"step\":2,\"lrs\":[0.2,0.4,0.6]}\n";
    let (_, curves) = chart(&[run_of(s, "c")], &args(&["-y", "lr"])).unwrap();
    assert_eq!(curves.len(), 1);
    assert_eq!(curves[0].metric, "lr");
    assert_eq!(curves[0].pts, vec![(1.0, 0.3), (2.0, 0.6)]);
}

#[test]
fn png_and_svg_files_are_written_reproducibly() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("a.jsonl"), lm_metrics(1.0)).unwrap();
    std::fs::write(t.path().join("b.jsonl"), lm_metrics(1.2)).unwrap();
    let o = plot(
        t.path(),
        &[
            "a.jsonl", "b.jsonl", "--label", "A", "--label", "B", "-o", "c.png",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(t.path().join("c.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let o = plot(
        t.path(),
        &[
            "a.jsonl", "b.jsonl", "--label", "A", "--label", "B", "-o", "c.png", "--force", "-q",
        ],
    );
    assert!(o.status.success() && o.stderr.is_empty());
    assert_eq!(
        std::fs::read(t.path().join("c.png")).unwrap(),
        png,
        "byte-reproducible"
    );
    let o = plot(
        t.path(),
        &[
            "a.jsonl", "b.jsonl", "--label", "A", "--label", "B", "-o", "c.svg",
        ],
    );
    assert!(o.status.success());
    let svg = std::fs::read_to_string(t.path().join("c.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..40]
    );
    assert!(svg.contains("A train_loss") && svg.contains("B valid_loss"));
    // standard input
    let o = Command::new(BIN)
        .args(["-", "-o", "d.png", "-q"])
        .current_dir(t.path())
        .stdin(std::fs::File::open(t.path().join("a.jsonl")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.path().join("d.png").exists());
}

#[test]
fn bad_input_is_one_line_exit_2_and_no_output() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path();
    std::fs::write(p.join("ok.jsonl"), lm_metrics(1.0)).unwrap();
    std::fs::write(
        p.join("bad.jsonl"),
        "{\"type\":\"lm_step\",\"step\":1,\"train_loss\":2}\n\n{oops\n",
    )
    .unwrap();
    std::fs::write(p.join("arr.jsonl"), "[1,2]\n").unwrap();
    std::fs::write(p.join("empty.jsonl"), "\n  \n").unwrap();
    std::fs::write(
        p.join("latin1.jsonl"),
        b"{\"type\":\"x\\u00e9\",\"a\":\"\xe9\"}\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["bad.jsonl", "-o", "o.png"], "bad.jsonl:3: not JSON"),
        (
            &["arr.jsonl", "-o", "o.png"],
            "arr.jsonl:1: not a JSON object",
        ),
        (&["empty.jsonl", "-o", "o.png"], "empty.jsonl: no records"),
        (&["latin1.jsonl", "-o", "o.png"], "latin1.jsonl:1: not JSON"),
        (
            &["missing.jsonl", "-o", "o.png"],
            "missing.jsonl: cannot open",
        ),
        (
            &["ok.jsonl", "-o", "o.gif"],
            "o.gif: the chart is PNG or SVG",
        ),
        (
            &["ok.jsonl", "ok.jsonl", "--label", "a", "-o", "o.png"],
            "--label given 1 times for 2 inputs",
        ),
        (
            &["ok.jsonl", "-y", "mae", "-o", "o.png"],
            "ok.jsonl: no record has \"mae\"",
        ),
    ];
    for (argv, want) in cases {
        let e = fail(&plot(p, argv));
        assert!(e.contains(want), "{argv:?}: {e}");
        assert!(
            !p.join("o.png").exists() && !p.join("o.gif").exists(),
            "{argv:?}: no output"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
    // an existing chart is kept without --force
    std::fs::write(p.join("keep.png"), b"old").unwrap();
    let e = fail(&plot(p, &["ok.jsonl", "-o", "keep.png"]));
    assert!(e.contains("keep.png"), "{e}");
    assert_eq!(std::fs::read(p.join("keep.png")).unwrap(), b"old");
}
