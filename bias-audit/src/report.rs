//! The human-readable table on stdout and the data behind the plot.

use std::fmt::Write;

use crate::classification::{AifGroup, Counts};
use crate::regression::RegGroup;
use crate::{Report, Tallies};

/// A number for people: 4 decimals, `-` when undefined.
pub fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "-".to_string()
    }
}

fn pad_table(rows: &[Vec<String>], out: &mut String) {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let w = widths[c];
            if c == 0 {
                let _ = write!(line, "{cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

pub fn table(r: &Report, t: &Tallies) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} rows, {} groups of {}{}{}",
        r.input,
        r.rows,
        r.groups.len(),
        r.protected.join("|"),
        r.privileged
            .as_ref()
            .map(|p| format!(", privileged {p}"))
            .unwrap_or_default(),
        r.favorable
            .as_ref()
            .map(|f| format!(", favorable {f}"))
            .unwrap_or_default(),
    );
    out.push('\n');
    let privileged = |g: &str| -> String {
        match &r.privileged_groups {
            Some(p) if p.iter().any(|x| x == g) => "*".into(),
            _ => String::new(),
        }
    };
    match t {
        Tallies::Classification(counts) => {
            let auc = r
                .fairlearn
                .as_ref()
                .and_then(|f| f.roc_auc_by_group.as_ref());
            let mut rows = vec![vec![
                "group".to_string(),
                "priv".into(),
                "n".into(),
                "base_rate".into(),
                "selection".into(),
                "tpr".into(),
                "fpr".into(),
                "ppv".into(),
                "accuracy".into(),
            ]];
            if auc.is_some() {
                rows[0].push("auc".into());
            }
            let mut row = |name: &str, mark: String, c: &Counts, a: Option<f64>| {
                let g = AifGroup::of(c);
                let mut v = vec![
                    name.to_string(),
                    mark,
                    c.n().to_string(),
                    fmt(g.base_rate.0),
                    fmt(g.selection_rate.0),
                    fmt(g.tpr.0),
                    fmt(g.fpr.0),
                    fmt(g.ppv.0),
                    fmt(g.accuracy.0),
                ];
                if let Some(a) = a {
                    v.push(fmt(a));
                }
                rows.push(v);
            };
            for (k, c) in counts.iter().enumerate() {
                let name = &r.groups[k];
                let a = auc.map(|m| m.get(name).map(|f| f.0).unwrap_or(f64::NAN));
                row(name, privileged(name), c, a);
            }
            let all = Counts::sum(counts);
            let a = r
                .fairlearn
                .as_ref()
                .and_then(|f| f.roc_auc_overall)
                .map(|f| f.0);
            row("overall", String::new(), &all, a);
            pad_table(&rows, &mut out);
        }
        Tallies::Regression(_) => {
            let reg = r.regression.as_ref().expect("regression report");
            let mut rows = vec![vec![
                "group".to_string(),
                "priv".into(),
                "n".into(),
                "mean_pred".into(),
                "mean_true".into(),
                "mae".into(),
            ]];
            let mut row = |name: &str, mark: String, g: &RegGroup| {
                rows.push(vec![
                    name.to_string(),
                    mark,
                    g.count.to_string(),
                    fmt(g.mean_prediction.0),
                    fmt(g.mean_true.0),
                    fmt(g.mae.0),
                ]);
            };
            for (name, g) in &reg.by_group {
                row(name, privileged(name), g);
            }
            row("overall", String::new(), &reg.overall);
            pad_table(&rows, &mut out);
        }
    }
    out.push('\n');
    // headline metrics, with intervals when bootstrapped
    let mut rows = vec![vec!["metric".to_string(), "value".into()]];
    let boot = r.bootstrap.as_ref();
    if boot.is_some() {
        rows[0].push("95% CI".into());
    }
    let mut push = |name: &str, v: Option<f64>| {
        let mut row = vec![name.to_string(), fmt(v.unwrap_or(f64::NAN))];
        if let Some(b) = boot {
            row.push(match b.intervals.get(name) {
                Some(iv) => format!("[{}, {}]", fmt(iv.low.0), fmt(iv.high.0)),
                None => String::new(),
            });
        }
        rows.push(row);
    };
    if let Some(a) = &r.aif360 {
        push(
            "statistical_parity_difference",
            Some(a.statistical_parity_difference.0),
        );
        push("disparate_impact", Some(a.disparate_impact.0));
        push(
            "equal_opportunity_difference",
            Some(a.equal_opportunity_difference.0),
        );
        push("average_odds_difference", Some(a.average_odds_difference.0));
        push(
            "equalized_odds_difference",
            Some(a.equalized_odds_difference.0),
        );
        push("theil_index", Some(a.theil_index.0));
    }
    if let Some(f) = &r.fairlearn {
        push(
            "demographic_parity_difference",
            Some(f.demographic_parity_difference.0),
        );
        push(
            "demographic_parity_ratio",
            Some(f.demographic_parity_ratio.0),
        );
        push(
            "fairlearn.equalized_odds_difference",
            Some(f.equalized_odds_difference.0),
        );
        push("equalized_odds_ratio", Some(f.equalized_odds_ratio.0));
        push(
            "fairlearn.equal_opportunity_difference",
            Some(f.equal_opportunity_difference.0),
        );
        push("equal_opportunity_ratio", Some(f.equal_opportunity_ratio.0));
    }
    if let Some(g) = &r.regression {
        if r.privileged.is_some() {
            push(
                "mean_prediction_difference",
                Some(g.mean_prediction_difference.0),
            );
            push("mean_prediction_ratio", Some(g.mean_prediction_ratio.0));
            push("mae_difference", Some(g.mae_difference.0));
            push("mae_ratio", Some(g.mae_ratio.0));
        }
        push(
            "regression.difference.mean_prediction",
            Some(g.difference.mean_prediction.0),
        );
        push("regression.difference.mae", Some(g.difference.mae.0));
    }
    pad_table(&rows, &mut out);
    if r.aif360.is_some() {
        out.push_str("(AIF360 names: unprivileged - privileged, ratios unprivileged / privileged; fairlearn: max - min, min / max over groups)\n");
    }
    if !r.small_groups.is_empty() {
        out.push('\n');
        for s in &r.small_groups {
            let _ = writeln!(out, "small group: {} ({})", s.group, s.reason);
        }
    }
    if !r.gates.is_empty() {
        out.push('\n');
        for g in &r.gates {
            let v = g.value.map(fmt).unwrap_or_else(|| "undefined".into());
            let _ = writeln!(
                out,
                "{} {} (value {v})",
                if g.failed { "FAIL" } else { "ok  " },
                g.expr
            );
        }
    }
    out
}

/// What the chart shows: groups, series names, values[group][series] and the y-axis top
/// (`Some(1.0)` for rates, `None` to fit the values).
pub type PlotData = (Vec<String>, Vec<&'static str>, Vec<Vec<f64>>, Option<f64>);

pub fn plot_data(r: &Report, t: &Tallies) -> PlotData {
    match t {
        Tallies::Classification(counts) => {
            let vals = counts
                .iter()
                .map(|c| {
                    let g = AifGroup::of(c);
                    vec![g.selection_rate.0, g.tpr.0, g.fpr.0]
                })
                .collect();
            (
                r.groups.clone(),
                vec!["selection rate", "TPR", "FPR"],
                vals,
                Some(1.0),
            )
        }
        Tallies::Regression(_) => {
            let reg = r.regression.as_ref().expect("regression report");
            let vals = reg
                .by_group
                .values()
                .map(|g| vec![g.mean_prediction.0, g.mean_true.0, g.mae.0])
                .collect();
            (
                reg.by_group.keys().cloned().collect(),
                vec!["mean prediction", "mean true", "MAE"],
                vals,
                None,
            )
        }
    }
}
