//! From cells to what the metrics need: favorable flags (or values), group ids, privileged
//! groups. This is where bad input is caught, with messages that say how to fix it.
//!
//! The comparison rule is the reference script's `equals`: a column is compared as numbers
//! when `--favorable` (or `--privileged`) is a number and every cell of the column is one,
//! else as whitespace-stripped strings.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

use crate::args::Task;
use crate::input::{parse_number, Cell, Table};

/// The labels, decided per column.
#[derive(Debug)]
pub enum Labels {
    Classification {
        y_true: Vec<bool>,
        y_pred: Vec<bool>,
        score: Option<Vec<f64>>,
    },
    Regression {
        y_true: Vec<f64>,
        y_pred: Vec<f64>,
    },
}

#[derive(Debug)]
pub struct Prepared {
    /// group names, sorted (intersectional: values joined by `|`)
    pub names: Vec<String>,
    /// each row's index into `names`
    pub group: Vec<u32>,
    /// per group: privileged? (when --privileged was given)
    pub privileged: Option<Vec<bool>>,
    pub labels: Labels,
}

/// `series == value` as the reference script's `equals`.
pub fn equals(cells: &[Cell], value: &str) -> Vec<bool> {
    if let Some(v) = parse_number(value) {
        if cells.iter().all(|c| c.num.is_some()) {
            return cells.iter().map(|c| c.num == Some(v)).collect();
        }
    }
    let s = value.trim();
    cells.iter().map(|c| c.text == s).collect()
}

/// A short, sorted list of the distinct texts of cells, for messages.
fn distinct(cells: &[&[Cell]]) -> (usize, String) {
    let set: BTreeSet<&str> = cells
        .iter()
        .flat_map(|c| c.iter().map(|c| c.text.as_str()))
        .collect();
    let n = set.len();
    let mut shown: Vec<String> = set
        .iter()
        .take(8)
        .map(|s| {
            if s.is_empty() {
                "\"\"".to_string()
            } else {
                s.to_string()
            }
        })
        .collect();
    if n > 8 {
        shown.push(format!("… {} more", n - 8));
    }
    (n, shown.join(", "))
}

pub struct Settings<'a> {
    pub task: Task,
    pub favorable: Option<&'a str>,
    pub privileged: Option<&'a str>,
    pub protected: &'a [String],
    pub y_true_col: &'a str,
    pub y_pred_col: &'a str,
}

pub fn prepare(t: &Table, s: &Settings) -> Result<Prepared> {
    let name = &t.name;
    // Groups: one per distinct combination of the stripped protected values.
    for (k, col) in s.protected.iter().enumerate() {
        let (n, vals) = distinct(&[&t.protected[k]]);
        if n < 2 {
            bail!("{name}: protected column \"{col}\" has a single value ({vals}); it needs two groups or more");
        }
    }
    let keys: Vec<String> = (0..t.len())
        .map(|i| {
            t.protected
                .iter()
                .map(|c| c[i].text.as_str())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    let names: Vec<String> = keys
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index: BTreeMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let group: Vec<u32> = keys.iter().map(|k| index[k.as_str()]).collect();

    let privileged = match s.privileged {
        None => None,
        Some(value) => {
            let parts: Vec<&str> = if s.protected.len() == 1 {
                vec![value]
            } else {
                value.split('|').collect()
            };
            if parts.len() != s.protected.len() {
                bail!(
                    "{name}: --privileged '{value}' has {} part(s) but there are {} protected columns ({}): \
                     give one value per column, joined by '|' (e.g. '{}')",
                    parts.len(),
                    s.protected.len(),
                    s.protected.join(", "),
                    names[0]
                );
            }
            let mut row_priv = vec![true; t.len()];
            for (k, part) in parts.iter().enumerate() {
                for (p, e) in row_priv.iter_mut().zip(equals(&t.protected[k], part)) {
                    *p &= e;
                }
            }
            let n_priv = row_priv.iter().filter(|p| **p).count();
            let what = s.protected.join("|");
            if n_priv == 0 {
                bail!(
                    "{name}: --privileged '{value}' matches no row of {what} (groups: {})",
                    list(&names)
                );
            }
            if n_priv == t.len() {
                bail!("{name}: --privileged '{value}' matches every row of {what}: there is no unprivileged group");
            }
            let mut per_group = vec![false; names.len()];
            for (i, &g) in group.iter().enumerate() {
                per_group[g as usize] = row_priv[i];
            }
            Some(per_group)
        }
    };

    let all_numeric = t.y_true.iter().chain(&t.y_pred).all(|c| c.num.is_some());
    let regression = match s.task {
        Task::Regression => true,
        Task::Classification => false,
        Task::Auto => s.favorable.is_none() && all_numeric && distinct_numbers(t) > 2,
    };
    let labels = if regression {
        let num = |cells: &[Cell], col: &str| -> Result<Vec<f64>> {
            cells
                .iter()
                .zip(&t.lines)
                .map(|(c, l)| match c.num {
                    Some(v) if v.is_finite() => Ok(v),
                    _ => bail!(
                        "{name}: line {l}: {col} \"{}\" is not a number (regression needs numbers)",
                        c.text
                    ),
                })
                .collect()
        };
        Labels::Regression {
            y_true: num(&t.y_true, s.y_true_col)?,
            y_pred: num(&t.y_pred, s.y_pred_col)?,
        }
    } else {
        let (mut n, vals) = distinct(&[&t.y_true, &t.y_pred]);
        if all_numeric {
            // 1 and 1.0 are one label
            n = distinct_numbers(t);
        }
        let cols = format!("{}/{}", s.y_true_col, s.y_pred_col);
        if s.favorable.is_none() && n > 2 {
            bail!(
                "{name}: {cols}: labels are not binary: {n} distinct values ({vals}); name the favorable \
                 label with --favorable VALUE (every other label is unfavorable), or use --task regression"
            );
        }
        let fav = s.favorable.unwrap_or("1");
        let y_true = equals(&t.y_true, fav);
        let y_pred = equals(&t.y_pred, fav);
        if !y_true.iter().chain(&y_pred).any(|b| *b) {
            let example = vals.split(", ").last().unwrap_or("VALUE");
            bail!(
                "{name}: {cols}: no label equals the favorable value '{fav}' (labels found: {vals}); \
                 name the favorable label with --favorable, e.g. --favorable {example}"
            );
        }
        let score = match &t.score {
            None => None,
            Some(cells) => {
                let col = t.score_col.as_deref().unwrap_or("score");
                let v = cells
                    .iter()
                    .zip(&t.lines)
                    .map(|(c, l)| match c.num {
                        Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
                        Some(_) => bail!(
                            "{name}: line {l}: {col} {} is outside [0, 1] (it should be the probability of the \
                             favorable label)",
                            c.text
                        ),
                        None => bail!("{name}: line {l}: {col} \"{}\" is not a number", c.text),
                    })
                    .collect::<Result<Vec<f64>>>()?;
                Some(v)
            }
        };
        Labels::Classification {
            y_true,
            y_pred,
            score,
        }
    };
    Ok(Prepared {
        names,
        group,
        privileged,
        labels,
    })
}

/// How many distinct numbers y_true and y_pred hold together (1 and 1.0, 0 and -0 are one).
fn distinct_numbers(t: &Table) -> usize {
    t.y_true
        .iter()
        .chain(&t.y_pred)
        .filter_map(|c| c.num)
        .map(|v| (v + 0.0).to_bits())
        .collect::<BTreeSet<u64>>()
        .len()
}

fn list(names: &[String]) -> String {
    let mut v: Vec<String> = names.iter().take(8).cloned().collect();
    if names.len() > 8 {
        v.push(format!("… {} more", names.len() - 8));
    }
    v.join(", ")
}
