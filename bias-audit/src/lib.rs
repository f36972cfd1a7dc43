//! `bias-audit`: group-fairness metrics of a model's predictions.
//!
//! Reads predictions (CSV/TSV or JSON lines: true label, predicted label, optional score,
//! protected attributes), groups rows by the protected values (several `--protected` columns
//! make intersectional groups such as `Female|Black`) and reports:
//!
//! * AIF360's `ClassificationMetric` metrics, privileged vs unprivileged (see
//!   [`classification::Aif360`]),
//! * fairlearn's `MetricFrame` summaries over the raw groups, and over privileged vs the rest
//!   (`fairlearn_binary`),
//! * for regression predictions, per-group means and MAE ([`regression::Regression`]),
//! * bootstrap percentile intervals of the headline metrics, a list of groups too small to
//!   judge, and `--fail-if` gates for pipelines (exit 1).
//!
//! The reference is `shared/peer/fairness_metrics.py` (AIF360 0.6.1, fairlearn 0.15.0): on its
//! fixtures every number agrees within 1e-9 (`tests/exactness.rs`).
//!
//! The JSON record follows the metrics convention of `shared::metrics` (`schema`, `tool`,
//! `type` = `bias_audit`); undefined values (0/0) are `null`.

pub mod args;
pub mod classification;
pub mod gate;
pub mod input;
pub mod plot;
pub mod prepare;
#[cfg(feature = "probe")]
pub mod probe;
pub mod regression;
mod report;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use serde::Serialize;

pub use args::Args;
use classification::{Aif360, Counts, Fairlearn, F};
use prepare::{Labels, Prepared};
use regression::{Regression, Sums};

pub const TOOL: &str = "bias-audit";

/// Where the JSON record goes.
enum JsonOut {
    Stdout,
    File(shared::atomic::AtomicFile),
}

/// Resolved settings: parsed gates, output files already created (so a bad path fails before
/// the work; nothing appears under the real names until the end).
pub struct Config {
    pub input: PathBuf,
    pub format: args::InputFormat,
    pub columns: input::Columns,
    pub task: args::Task,
    pub favorable: Option<String>,
    pub privileged: Option<String>,
    pub bootstrap: usize,
    pub seed: u64,
    pub gates: Vec<gate::Gate>,
    pub quiet: bool,
    pub min_group_size: u64,
    pub min_positives: u64,
    table: bool,
    json: Vec<JsonOut>,
    plot: Option<shared::atomic::AtomicFile>,
}

impl Config {
    pub fn resolve(a: Args) -> Result<Config> {
        let gates = a
            .fail_if
            .iter()
            .map(|g| gate::parse(g))
            .collect::<Result<Vec<_>>>()?;
        for (i, c) in a.protected.iter().enumerate() {
            if a.protected[..i].contains(c) {
                anyhow::bail!("--protected {c} is given twice");
            }
        }
        if let Some(p) = &a.plot {
            if !p.to_string_lossy().to_ascii_lowercase().ends_with(".png") {
                anyhow::bail!("{}: --plot writes PNG; name the file FILE.png", p.display());
            }
        }
        let mut json = Vec::new();
        if a.json {
            json.push(JsonOut::Stdout);
        }
        match &a.json_out {
            Some(p) if shared::cli::is_stdio(p) && !a.json => json.push(JsonOut::Stdout),
            Some(p) if shared::cli::is_stdio(p) => {}
            Some(p) => json.push(JsonOut::File(shared::atomic::AtomicFile::create(
                p, a.force,
            )?)),
            None => {}
        }
        let table = !json.iter().any(|j| matches!(j, JsonOut::Stdout));
        let plot = match &a.plot {
            Some(p) => Some(shared::atomic::AtomicFile::create(p, a.force)?),
            None => None,
        };
        Ok(Config {
            input: a.input,
            format: a.input_format,
            columns: input::Columns {
                y_true: a.y_true,
                y_pred: a.y_pred,
                score: a.score,
                protected: a.protected,
            },
            task: a.task,
            favorable: a.favorable,
            privileged: a.privileged,
            bootstrap: a.bootstrap,
            seed: a.seed,
            gates,
            quiet: a.common.quiet,
            min_group_size: a.min_group_size,
            min_positives: a.min_positives,
            table,
            json,
            plot,
        })
    }
}

/// A group with too few rows (or positives/negatives) for its rates to mean much.
#[derive(Debug, Clone, Serialize)]
pub struct SmallGroup {
    pub group: String,
    pub n: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positives: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negatives: Option<u64>,
    pub reason: String,
}

/// A bootstrap percentile interval.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    pub estimate: F,
    pub low: F,
    pub high: F,
    /// resamples where the metric was undefined (e.g. a group drawn empty); left out
    pub undefined: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bootstrap {
    pub resamples: usize,
    pub seed: u64,
    pub confidence: f64,
    pub method: &'static str,
    pub intervals: BTreeMap<String, Interval>,
}

/// The JSON record (`type` = `bias_audit`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub tool: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub input: String,
    pub rows: usize,
    pub task: &'static str,
    pub y_true: String,
    pub y_pred: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<String>,
    pub protected: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<String>,
    /// the groups that --privileged selects
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged_groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub favorable: Option<String>,
    pub has_score: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_privileged: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_unprivileged: Option<u64>,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aif360: Option<Aif360>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairlearn: Option<Fairlearn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairlearn_binary: Option<Fairlearn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,
    pub small_groups: Vec<SmallGroup>,
    pub gates: Vec<gate::GateResult>,
}

/// Per-group tallies the metrics are computed from.
pub enum Tallies {
    Classification(Vec<Counts>),
    Regression(Vec<Sums>),
}

/// Headline metrics of classification tallies, as (gate name, value).
fn class_headline(
    names: &[String],
    groups: &[Counts],
    privileged: Option<&[bool]>,
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(p) = privileged {
        let a = Aif360::compute(groups, p);
        out.extend(
            [
                (
                    "statistical_parity_difference",
                    a.statistical_parity_difference,
                ),
                ("disparate_impact", a.disparate_impact),
                (
                    "equal_opportunity_difference",
                    a.equal_opportunity_difference,
                ),
                ("average_odds_difference", a.average_odds_difference),
                ("equalized_odds_difference", a.equalized_odds_difference),
            ]
            .map(|(n, v)| (n.to_string(), v.0)),
        );
    }
    let f = Fairlearn::compute(names, groups, None);
    out.extend(
        [
            (
                "demographic_parity_difference",
                f.demographic_parity_difference,
            ),
            ("demographic_parity_ratio", f.demographic_parity_ratio),
            (
                "fairlearn.equalized_odds_difference",
                f.equalized_odds_difference,
            ),
            ("equalized_odds_ratio", f.equalized_odds_ratio),
            (
                "fairlearn.equal_opportunity_difference",
                f.equal_opportunity_difference,
            ),
            ("equal_opportunity_ratio", f.equal_opportunity_ratio),
        ]
        .map(|(n, v)| (n.to_string(), v.0)),
    );
    out
}

fn reg_headline(
    names: &[String],
    groups: &[Sums],
    privileged: Option<&[bool]>,
) -> Vec<(String, f64)> {
    let r = Regression::compute(names, groups, privileged);
    let mut out = Vec::new();
    if privileged.is_some() {
        out.push((
            "mean_prediction_difference".to_string(),
            r.mean_prediction_difference.0,
        ));
        out.push((
            "mean_prediction_ratio".to_string(),
            r.mean_prediction_ratio.0,
        ));
        out.push(("mae_difference".to_string(), r.mae_difference.0));
    }
    out.push((
        "regression.difference.mean_prediction".to_string(),
        r.difference.mean_prediction.0,
    ));
    out.push(("regression.difference.mae".to_string(), r.difference.mae.0));
    out
}

/// numpy's `percentile(..., method="linear")` of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Percentile bootstrap: resample rows with replacement, recompute the headline metrics.
fn bootstrap(p: &Prepared, resamples: usize, seed: u64, estimates: &[(String, f64)]) -> Bootstrap {
    let n = p.group.len();
    let g = p.names.len();
    let priv_ = p.privileged.as_deref();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); estimates.len()];
    match &p.labels {
        Labels::Classification { y_true, y_pred, .. } => {
            let code: Vec<u32> = (0..n)
                .map(|i| p.group[i] * 4 + (y_true[i] as u32) * 2 + y_pred[i] as u32)
                .collect();
            let mut tally = vec![0u64; g * 4];
            for _ in 0..resamples {
                tally.iter_mut().for_each(|t| *t = 0);
                for _ in 0..n {
                    tally[code[rng.gen_range(0..n)] as usize] += 1;
                }
                let counts: Vec<Counts> = (0..g)
                    .map(|k| Counts {
                        tn: tally[4 * k],
                        fp: tally[4 * k + 1],
                        fn_: tally[4 * k + 2],
                        tp: tally[4 * k + 3],
                    })
                    .collect();
                // groups drawn empty drop out of fairlearn's frame, as they would in a real resample
                let keep: Vec<usize> = (0..g).filter(|&k| counts[k].n() > 0).collect();
                let names: Vec<String> = keep.iter().map(|&k| p.names[k].clone()).collect();
                let counts: Vec<Counts> = keep.iter().map(|&k| counts[k]).collect();
                let pv: Option<Vec<bool>> = priv_.map(|pv| keep.iter().map(|&k| pv[k]).collect());
                for (s, (_, v)) in
                    samples
                        .iter_mut()
                        .zip(class_headline(&names, &counts, pv.as_deref()))
                {
                    s.push(v);
                }
            }
        }
        Labels::Regression { y_true, y_pred } => {
            for _ in 0..resamples {
                let mut sums = vec![Sums::default(); g];
                for _ in 0..n {
                    let i = rng.gen_range(0..n);
                    sums[p.group[i] as usize].add(y_true[i], y_pred[i]);
                }
                let keep: Vec<usize> = (0..g).filter(|&k| sums[k].n > 0).collect();
                let names: Vec<String> = keep.iter().map(|&k| p.names[k].clone()).collect();
                let sums: Vec<Sums> = keep.iter().map(|&k| sums[k]).collect();
                let pv: Option<Vec<bool>> = priv_.map(|pv| keep.iter().map(|&k| pv[k]).collect());
                for (s, (_, v)) in
                    samples
                        .iter_mut()
                        .zip(reg_headline(&names, &sums, pv.as_deref()))
                {
                    s.push(v);
                }
            }
        }
    }
    let intervals = estimates
        .iter()
        .zip(samples)
        .map(|((name, est), mut v)| {
            let total = v.len();
            v.retain(|x| x.is_finite());
            v.sort_by(f64::total_cmp);
            let iv = Interval {
                estimate: F(*est),
                low: F(percentile(&v, 0.025)),
                high: F(percentile(&v, 0.975)),
                undefined: total - v.len(),
            };
            (name.clone(), iv)
        })
        .collect();
    Bootstrap {
        resamples,
        seed,
        confidence: 0.95,
        method: "percentile",
        intervals,
    }
}

/// Computes the whole report (without gates) from prepared rows.
pub fn compute(
    cfg: &Config,
    name: &str,
    score_col: Option<&str>,
    p: &Prepared,
) -> (Report, Tallies) {
    let g = p.names.len();
    let priv_ = p.privileged.as_deref();
    let mut report = Report {
        schema: shared::metrics::SCHEMA,
        tool: TOOL,
        kind: "bias_audit",
        input: name.to_string(),
        rows: p.group.len(),
        task: "classification",
        y_true: cfg.columns.y_true.clone(),
        y_pred: cfg.columns.y_pred.clone(),
        score: None,
        protected: cfg.columns.protected.clone(),
        privileged: cfg.privileged.clone(),
        privileged_groups: priv_.map(|pv| {
            p.names
                .iter()
                .zip(pv)
                .filter(|x| *x.1)
                .map(|x| x.0.clone())
                .collect()
        }),
        favorable: None,
        has_score: false,
        n_privileged: None,
        n_unprivileged: None,
        groups: p.names.clone(),
        aif360: None,
        fairlearn: None,
        fairlearn_binary: None,
        regression: None,
        bootstrap: None,
        small_groups: Vec::new(),
        gates: Vec::new(),
    };
    let sizes: Vec<u64> = {
        let mut s = vec![0u64; g];
        p.group.iter().for_each(|&k| s[k as usize] += 1);
        s
    };
    if let Some(pv) = priv_ {
        let np: u64 = sizes.iter().zip(pv).filter(|x| *x.1).map(|x| *x.0).sum();
        report.n_privileged = Some(np);
        report.n_unprivileged = Some(p.group.len() as u64 - np);
    }
    let (tallies, estimates) = match &p.labels {
        Labels::Classification {
            y_true,
            y_pred,
            score,
        } => {
            report.favorable = Some(cfg.favorable.clone().unwrap_or_else(|| "1".into()));
            let mut counts = vec![Counts::default(); g];
            for i in 0..p.group.len() {
                counts[p.group[i] as usize].add(y_true[i], y_pred[i]);
            }
            let auc = score.as_ref().map(|s| {
                let mut all: Vec<(f64, bool)> =
                    s.iter().copied().zip(y_true.iter().copied()).collect();
                let mut by: Vec<Vec<(f64, bool)>> = vec![Vec::new(); g];
                for (i, pair) in all.iter().enumerate() {
                    by[p.group[i] as usize].push(*pair);
                }
                let per: Vec<f64> = by.iter_mut().map(|v| classification::roc_auc(v)).collect();
                (classification::roc_auc(&mut all), per)
            });
            report.has_score = score.is_some();
            report.score = score.as_ref().and(score_col.map(str::to_string));
            report.fairlearn = Some(Fairlearn::compute(
                &p.names,
                &counts,
                auc.as_ref().map(|(o, v)| (*o, v.as_slice())),
            ));
            if let Some(pv) = priv_ {
                report.aif360 = Some(Aif360::compute(&counts, pv));
                let pc = Counts::sum(counts.iter().zip(pv).filter(|x| *x.1).map(|x| x.0));
                let uc = Counts::sum(counts.iter().zip(pv).filter(|x| !*x.1).map(|x| x.0));
                let bin_auc = score.as_ref().map(|s| {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    for i in 0..p.group.len() {
                        let pair = (s[i], y_true[i]);
                        if pv[p.group[i] as usize] {
                            a.push(pair)
                        } else {
                            b.push(pair)
                        }
                    }
                    (
                        classification::roc_auc(&mut a),
                        classification::roc_auc(&mut b),
                    )
                });
                let names = ["privileged".to_string(), "unprivileged".to_string()];
                let per = bin_auc.map(|(a, b)| [a, b]);
                let overall = auc.as_ref().map(|x| x.0);
                report.fairlearn_binary = Some(Fairlearn::compute(
                    &names,
                    &[pc, uc],
                    overall.zip(per.as_ref()).map(|(o, v)| (o, v.as_slice())),
                ));
            }
            for (k, c) in counts.iter().enumerate() {
                let mut why = Vec::new();
                if c.n() < cfg.min_group_size {
                    why.push(format!("n={} < {}", c.n(), cfg.min_group_size));
                }
                if c.positives() < cfg.min_positives {
                    why.push(format!(
                        "{} favorable true labels < {}",
                        c.positives(),
                        cfg.min_positives
                    ));
                }
                if c.negatives() < cfg.min_positives {
                    why.push(format!(
                        "{} unfavorable true labels < {}",
                        c.negatives(),
                        cfg.min_positives
                    ));
                }
                if !why.is_empty() {
                    report.small_groups.push(SmallGroup {
                        group: p.names[k].clone(),
                        n: c.n(),
                        positives: Some(c.positives()),
                        negatives: Some(c.negatives()),
                        reason: why.join(", "),
                    });
                }
            }
            let est = class_headline(&p.names, &counts, priv_);
            (Tallies::Classification(counts), est)
        }
        Labels::Regression { y_true, y_pred } => {
            report.task = "regression";
            let mut sums = vec![Sums::default(); g];
            for i in 0..p.group.len() {
                sums[p.group[i] as usize].add(y_true[i], y_pred[i]);
            }
            report.regression = Some(Regression::compute(&p.names, &sums, priv_));
            for (k, s) in sums.iter().enumerate() {
                if s.n < cfg.min_group_size {
                    report.small_groups.push(SmallGroup {
                        group: p.names[k].clone(),
                        n: s.n,
                        positives: None,
                        negatives: None,
                        reason: format!("n={} < {}", s.n, cfg.min_group_size),
                    });
                }
            }
            let est = reg_headline(&p.names, &sums, priv_);
            (Tallies::Regression(sums), est)
        }
    };
    if cfg.bootstrap > 0 {
        report.bootstrap = Some(bootstrap(p, cfg.bootstrap, cfg.seed, &estimates));
    }
    (report, tallies)
}

/// Runs the tool; returns the exit code (1 when a gate failed).
pub fn run(mut args: Args) -> Result<i32> {
    match args.command.take() {
        #[cfg(feature = "probe")]
        Some(args::Command::Probe(p)) => return probe::run(p, &args.common),
        #[cfg(not(feature = "probe"))]
        Some(args::Command::Probe(_)) => anyhow::bail!(
            "probe: this build has no probe (built without the `probe` feature, which needs libtorch); rebuild with default features"
        ),
        None => {}
    }
    let cfg = Config::resolve(args)?;
    let table = input::read(&cfg.input, cfg.format, &cfg.columns)?;
    let settings = prepare::Settings {
        task: cfg.task,
        favorable: cfg.favorable.as_deref(),
        privileged: cfg.privileged.as_deref(),
        protected: &cfg.columns.protected,
        y_true_col: &cfg.columns.y_true,
        y_pred_col: &cfg.columns.y_pred,
    };
    let prepared = prepare::prepare(&table, &settings)?;
    let (mut report, tallies) = compute(&cfg, &table.name, table.score_col.as_deref(), &prepared);
    drop(table);

    let value = serde_json::to_value(&report).context("serializing the report")?;
    report.gates = gate::evaluate(&cfg.gates, &value)?;

    // Everything that can fail on the input has been checked: now the outputs.
    if !cfg.quiet {
        for s in &report.small_groups {
            eprintln!(
                "{TOOL}: warning: group \"{}\" is too small to judge ({})",
                s.group, s.reason
            );
        }
    }
    for g in report.gates.iter().filter(|g| g.failed) {
        match g.value {
            Some(v) => eprintln!("{TOOL}: gate failed: {} (value {})", g.expr, report::fmt(v)),
            None => eprintln!(
                "{TOOL}: gate failed: {} (the metric is undefined: 0/0)",
                g.expr
            ),
        }
    }
    let line = serde_json::to_string(&report).context("serializing the report")?;
    let mut plot_file = None;
    if let Some(f) = cfg.plot {
        let (groups, series, values, unit) = report::plot_data(&report, &tallies);
        let title = format!(
            "{} by {}",
            if unit.is_some() { "rates" } else { "values" },
            report.protected.join("|")
        );
        plot_file = Some((f, plot::bar_chart(&title, &groups, &series, &values, unit)?));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // Files are committed together at the end: a failed write leaves none of them.
    let mut files = Vec::new();
    for j in cfg.json {
        match j {
            JsonOut::Stdout => writeln!(out, "{line}").context("writing stdout")?,
            JsonOut::File(mut f) => {
                writeln!(f, "{line}")
                    .with_context(|| format!("{}: write failed", f.target().display()))?;
                files.push(f);
            }
        }
    }
    if cfg.table {
        out.write_all(report::table(&report, &tallies).as_bytes())
            .context("writing stdout")?;
    }
    out.flush().context("writing stdout")?;
    if let Some((mut f, bytes)) = plot_file {
        f.write_all(&bytes)
            .with_context(|| format!("{}: write failed", f.target().display()))?;
        files.push(f);
    }
    shared::atomic::commit_all(files)?;
    Ok(if report.gates.iter().any(|g| g.failed) {
        shared::cli::EXIT_NEGATIVE
    } else {
        shared::cli::EXIT_OK
    })
}
