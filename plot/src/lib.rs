//! `plot`: training curves from the metrics JSON lines of any tool (lm-train, clf-train,
//! lr-find, or anything writing `{"type": ..., "step": ..., "<metric>": ...}` records) to a
//! PNG or SVG chart, several runs on one chart for comparison.
//!
//! A curve is a metric (a numeric field, or the last element of a numeric array such as
//! clf-train's per-group `lrs`) against an x field (`step` by default), taken from the record
//! type of the run that has the most points for it: `train_loss` comes from the per-step
//! records (`lm_step`, `clf_step`) when there are any, `valid_loss`, `perplexity` and
//! `accuracy` from the per-epoch ones. `loss` means `train_loss` and `valid_loss` (for
//! lr-find's records: the smoothed loss against the learning rate, on a log axis). lr-find's
//! repeats are separate curves. The chart is drawn by `shared::plot` (no plotting library,
//! byte-reproducible output) and written atomically.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::Value;
use shared::atomic::AtomicFile;
use shared::cli::{CommonArgs, EXIT_CODES_HELP, EXIT_OK};
use shared::plot::{LineChart, Rgb, Series, COLORS};

pub const TOOL: &str = "plot";

const AFTER_HELP: &str = "\
Examples:
  plot lm.jsonl -o loss.png                           # train and valid loss against step
  plot fp32.jsonl bf16.jsonl --label fp32 --label bf16 -o compare.svg
  plot lm.jsonl -y perplexity -x epoch --log-y -o ppl.png
  plot clf.jsonl -y accuracy -y valid_loss -o clf.png
  plot lr_find.jsonl -o lr.png                        # lr-find's curve (smoothed loss vs lr)
  lm-train shards -o lm --metrics /dev/stdout | plot - -o live.png

Metrics: loss (= train_loss and valid_loss; for lr-find records smooth_loss against lr),
or any numeric field of the records: train_loss, valid_loss, perplexity, accuracy, macro_f1,
lr (clf-train's lrs: the head's), mom, grad_norm, tokens_per_s, mae, r2, ... Each curve comes
from the record type with the most points for it (per-step records for train_loss when
there are any, per-epoch records for validation metrics).

";

#[derive(Debug, Parser)]
#[command(
    name = "plot",
    version,
    about = "Training curves from metrics JSON lines (lm-train, clf-train, lr-find, ...) to PNG or SVG",
    after_help = format!("{AFTER_HELP}{EXIT_CODES_HELP}"),
    args_override_self = true
)]
pub struct Args {
    /// Metrics files (JSON lines), one run each; `-` is standard input.
    #[arg(required = true, value_name = "METRICS")]
    pub inputs: Vec<PathBuf>,
    /// The chart: FILE.png or FILE.svg (written atomically).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Metric to draw (repeatable): loss, train_loss, valid_loss, perplexity, accuracy, lr,
    /// or any numeric field.
    #[arg(short = 'y', long = "y", value_name = "METRIC", default_value = "loss")]
    pub y: Vec<String>,
    /// Field on the x axis [default: step; lr for lr-find's curves].
    #[arg(short = 'x', long = "x", value_name = "FIELD")]
    pub x: Option<String>,
    /// Name of each run in the legend, in the order of the inputs [default: file names].
    #[arg(long, value_name = "NAME")]
    pub label: Vec<String>,
    /// Only records of these types (repeatable), e.g. lm_epoch.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Logarithmic x axis (the default for learning rates).
    #[arg(long)]
    pub log_x: bool,
    /// Logarithmic y axis.
    #[arg(long)]
    pub log_y: bool,
    #[arg(long)]
    pub title: Option<String>,
    /// Chart size in pixels.
    #[arg(long, default_value_t = 720, value_name = "PX")]
    pub width: u32,
    #[arg(long, default_value_t = 460, value_name = "PX")]
    pub height: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// One metrics file: its records (JSON objects) in order.
pub struct Run {
    pub label: String,
    pub path: String,
    pub records: Vec<serde_json::Map<String, Value>>,
}

/// Reads JSON lines; blank lines are skipped; anything else that is not a JSON object is an
/// error naming the file and line.
pub fn read_run(path: &Path, label: String) -> Result<Run> {
    let name = shared::cli::input_name(path);
    let reader: Box<dyn Read> = if shared::cli::is_stdio(path) {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("{name}: cannot open"))?)
    };
    let mut records = Vec::new();
    let mut r = BufReader::new(reader);
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        line.clear();
        let got = r
            .read_until(b'\n', &mut line)
            .with_context(|| format!("{name}: read failed"))?;
        if got == 0 {
            break;
        }
        n += 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice::<Value>(&line) {
            Ok(Value::Object(m)) => records.push(m),
            Ok(_) => bail!("{name}:{n}: not a JSON object (metrics are one object per line)"),
            Err(e) => bail!("{name}:{n}: not JSON: {e}"),
        }
    }
    if records.is_empty() {
        bail!("{name}: no records (an empty metrics file)");
    }
    Ok(Run {
        label,
        path: name,
        records,
    })
}

/// A number from a field: a JSON number, or the last element of an array of numbers.
fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::Array(a) => a.last().and_then(|x| x.as_f64()),
        _ => None,
    }
}

/// The fields a requested metric stands for (`loss` is two, or lr-find's smoothed loss).
fn expand(metric: &str, is_lr_find: bool) -> Vec<String> {
    match metric {
        "loss" if is_lr_find => vec!["smooth_loss".into()],
        "loss" => vec!["train_loss".into(), "valid_loss".into()],
        "lr" => vec!["lr".into(), "lrs".into()],
        m => vec![m.into()],
    }
}

/// A curve: a run's metric over x, from one record type (one per lr-find repeat).
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub run: usize,
    pub metric: String,
    pub record_type: String,
    pub repeat: Option<i64>,
    pub pts: Vec<(f64, f64)>,
}

/// One record type's points: the order the type was first seen, and (repeat, x, y) per record.
type TypePoints = (usize, Vec<(Option<i64>, f64, f64)>);

/// The curves of `field` in a run: from the record type with the most points (ties: the
/// first type seen), split by lr-find's `repeat`.
fn curves_of(run: &Run, idx: usize, field: &str, x: &str, types: &[String]) -> Vec<Curve> {
    let mut by_type: BTreeMap<String, TypePoints> = BTreeMap::new();
    let mut order = 0usize;
    for r in &run.records {
        let ty = r
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        if !types.is_empty() && !types.contains(&ty) {
            continue;
        }
        let (Some(xv), Some(yv)) = (num(r.get(x)), num(r.get(field))) else {
            continue;
        };
        if !xv.is_finite() || !yv.is_finite() {
            continue;
        }
        let rep = r.get("repeat").and_then(|v| v.as_i64());
        let e = by_type.entry(ty).or_insert_with(|| {
            order += 1;
            (order, Vec::new())
        });
        e.1.push((rep, xv, yv));
    }
    let Some((ty, (_, pts))) = by_type
        .into_iter()
        .max_by(|a, b| a.1 .1.len().cmp(&b.1 .1.len()).then(b.1 .0.cmp(&a.1 .0)))
    else {
        return Vec::new();
    };
    let mut reps: BTreeMap<Option<i64>, Vec<(f64, f64)>> = BTreeMap::new();
    for (rep, xv, yv) in pts {
        reps.entry(rep).or_default().push((xv, yv));
    }
    let many = reps.len() > 1;
    reps.into_iter()
        .map(|(rep, pts)| Curve {
            run: idx,
            metric: if field == "lrs" {
                "lr".into()
            } else {
                field.to_string()
            },
            record_type: ty.clone(),
            repeat: if many { rep } else { None },
            pts,
        })
        .collect()
}

fn lighter(c: Rgb) -> Rgb {
    c.map(|v| (v as f64 * 0.5 + 255.0 * 0.5).round() as u8)
}

/// The chart of the runs' curves (tests call it without the files).
pub fn chart(runs: &[Run], a: &Args) -> Result<(LineChart, Vec<Curve>)> {
    let is_lr_find = |r: &Run| {
        r.records
            .iter()
            .any(|m| m.get("type").and_then(|t| t.as_str()) == Some("lr_find_iter"))
    };
    let all_lr_find = runs.iter().all(is_lr_find);
    let x = a.x.clone().unwrap_or_else(|| {
        if all_lr_find {
            "lr".into()
        } else {
            "step".into()
        }
    });
    let log_x = a.log_x || x == "lr";
    let mut metrics: Vec<String> = Vec::new();
    for m in &a.y {
        for f in expand(m, all_lr_find) {
            if !metrics.contains(&f) {
                metrics.push(f);
            }
        }
    }
    let mut curves: Vec<Curve> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let before = curves.len();
        for f in &metrics {
            let mut c = curves_of(run, i, f, &x, &a.types);
            if a.log_y {
                for cv in &mut c {
                    cv.pts.retain(|p| p.1 > 0.0);
                }
            }
            if log_x {
                for cv in &mut c {
                    cv.pts.retain(|p| p.0 > 0.0);
                }
            }
            c.retain(|cv| !cv.pts.is_empty());
            curves.extend(c);
        }
        if curves.len() == before {
            let mut seen: Vec<String> = run
                .records
                .iter()
                .flat_map(|r| {
                    r.iter()
                        .filter(|(_, v)| num(Some(v)).is_some())
                        .map(|(k, _)| k.clone())
                })
                .collect();
            seen.sort();
            seen.dedup();
            bail!(
                "{}: no record has {} with a numeric {x:?}{} (numeric fields: {})",
                run.path,
                a.y.iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                if a.log_y || log_x {
                    " (positive, for a log axis)"
                } else {
                    ""
                },
                if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join(", ")
                }
            );
        }
    }
    let names: Vec<String> = {
        let mut v: Vec<String> = curves.iter().map(|c| c.metric.clone()).collect();
        v.dedup();
        let mut u = Vec::new();
        for m in v {
            if !u.contains(&m) {
                u.push(m);
            }
        }
        u
    };
    let title = a.title.clone().unwrap_or_else(|| {
        let runs_part = if runs.len() == 1 {
            format!(" ({})", runs[0].label)
        } else {
            String::new()
        };
        format!("{} vs {x}{runs_part}", names.join(", "))
    });
    let mut c = LineChart::new(
        title,
        if log_x {
            format!("{x} (log scale)")
        } else {
            x.clone()
        },
        if a.log_y {
            format!("{} (log scale)", names.join(", "))
        } else {
            names.join(", ")
        },
    );
    c.x_log = log_x;
    c.y_log = a.log_y;
    c.width = a.width.clamp(200, 4000);
    c.height = a.height.clamp(150, 4000);
    let many_runs = runs.len() > 1;
    let many_metrics = names.len() > 1;
    for (k, cv) in curves.iter().enumerate() {
        let mi = names.iter().position(|m| *m == cv.metric).unwrap_or(0);
        let (color, width) = if many_runs {
            // a color per run; the first metric lighter and thinner (e.g. train vs valid)
            let base = COLORS[cv.run % COLORS.len()];
            if many_metrics && mi == 0 {
                (lighter(base), 1.5)
            } else {
                (base, 2.0)
            }
        } else if cv.repeat.is_some() {
            (COLORS[k % COLORS.len()], 1.5)
        } else {
            (COLORS[mi % COLORS.len()], 2.0)
        };
        let mut name = match (many_runs, many_metrics) {
            (true, true) => format!("{} {}", runs[cv.run].label, cv.metric),
            (true, false) => runs[cv.run].label.clone(),
            _ => cv.metric.clone(),
        };
        if let Some(r) = cv.repeat {
            name.push_str(&format!(" repeat {r}"));
        }
        c.series.push(Series {
            name,
            pts: cv.pts.clone(),
            color,
            width,
        });
    }
    Ok((c, curves))
}

pub fn run(a: Args) -> Result<i32> {
    let kind = match a
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .as_deref()
    {
        Some("png") => "png",
        Some("svg") => "svg",
        _ => bail!(
            "{}: the chart is PNG or SVG; name the file FILE.png or FILE.svg",
            a.output.display()
        ),
    };
    if !a.label.is_empty() && a.label.len() != a.inputs.len() {
        bail!(
            "--label given {} times for {} inputs: one label per input, in order",
            a.label.len(),
            a.inputs.len()
        );
    }
    if a.inputs.iter().filter(|p| shared::cli::is_stdio(p)).count() > 1 {
        bail!("standard input (-) can be read only once");
    }
    // the output first, so a bad path fails before the inputs are read
    let mut out = AtomicFile::create(&a.output, a.force)?;
    let mut runs = Vec::with_capacity(a.inputs.len());
    for (i, p) in a.inputs.iter().enumerate() {
        let label = a.label.get(i).cloned().unwrap_or_else(|| {
            if shared::cli::is_stdio(p) {
                "stdin".into()
            } else {
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.display().to_string())
            }
        });
        runs.push(read_run(p, label)?);
    }
    let (c, curves) = chart(&runs, &a)?;
    let d = c.draw();
    let bytes = if kind == "png" {
        d.to_png()?
    } else {
        d.to_svg().into_bytes()
    };
    out.write_all(&bytes)
        .with_context(|| format!("{}: write failed", a.output.display()))?;
    out.commit()?;
    if !a.common.quiet {
        let n: usize = curves.iter().map(|c| c.pts.len()).sum();
        eprintln!(
            "{TOOL}: {}: {} curves, {n} points ({})",
            a.output.display(),
            curves.len(),
            curves
                .iter()
                .map(|c| format!("{} {} from {}", runs[c.run].label, c.metric, c.record_type))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(EXIT_OK)
}
