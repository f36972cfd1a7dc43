//! `--fail-if` gates: `METRIC OP NUMBER` or `abs(METRIC) OP NUMBER`.
//!
//! METRIC is a headline name (see [`headline_paths`]) or a dotted path into the JSON record
//! (`aif360.per_group.unprivileged.tpr`). The gate fails (exit 1) when the comparison holds, or
//! when the metric is undefined (null): a check that cannot be made must not pass silently.

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub expr: String,
    pub metric: String,
    pub abs: bool,
    pub op: Op,
    pub threshold: f64,
}

/// One evaluated gate, as written in the JSON record.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub expr: String,
    /// the metric's value (after abs()), null when undefined
    pub value: Option<f64>,
    pub failed: bool,
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '|')
}

/// Parses `abs(equal_opportunity_difference) > 0.1`.
pub fn parse(expr: &str) -> Result<Gate> {
    let bad = |why: &str| {
        anyhow::anyhow!("--fail-if '{expr}': {why} (form: METRIC<0.8 or abs(METRIC)>0.1)")
    };
    let s: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let (abs, rest) = match s.strip_prefix("abs(") {
        Some(r) => {
            let close = r.find(')').ok_or_else(|| bad("abs( is not closed"))?;
            (true, (r[..close].to_string(), r[close + 1..].to_string()))
        }
        None => {
            let end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
            (false, (s[..end].to_string(), s[end..].to_string()))
        }
    };
    let (metric, rest) = rest;
    if metric.is_empty() || !metric.chars().all(is_name_char) {
        return Err(bad("expected a metric name"));
    }
    let ops = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let Some((tok, op)) = ops.iter().find(|(t, _)| rest.starts_with(t)) else {
        return Err(bad("expected a comparison: <, <=, >, >=, == or !="));
    };
    let num = &rest[tok.len()..];
    let threshold: f64 = num
        .parse()
        .map_err(|_| bad(&format!("\"{num}\" is not a number")))?;
    if !threshold.is_finite() {
        return Err(bad("the threshold must be a finite number"));
    }
    Ok(Gate {
        expr: expr.trim().to_string(),
        metric,
        abs,
        op: *op,
        threshold,
    })
}

/// AIF360's scalar metrics (bare gate names that always mean AIF360's signed,
/// privileged-referenced value, never fairlearn's max − min of the same name).
pub const AIF360_SCALARS: &[&str] = &[
    "statistical_parity_difference",
    "disparate_impact",
    "equal_opportunity_difference",
    "average_odds_difference",
    "average_abs_odds_difference",
    "equalized_odds_difference",
    "true_positive_rate_difference",
    "false_positive_rate_difference",
    "false_negative_rate_difference",
    "false_discovery_rate_difference",
    "false_omission_rate_difference",
    "error_rate_difference",
    "error_rate_ratio",
    "false_positive_rate_ratio",
    "false_negative_rate_ratio",
    "false_discovery_rate_ratio",
    "false_omission_rate_ratio",
    "average_predictive_value_difference",
    "theil_index",
    "coefficient_of_variation",
    "generalized_entropy_index",
    "between_group_theil_index",
    "between_group_coefficient_of_variation",
    "between_group_generalized_entropy_index",
];

/// Headline names and the record paths they stand for. AIF360's names come bare (they are the
/// signed, privileged-referenced metrics); fairlearn's are bare where no AIF360 metric has the
/// name, and always reachable as `fairlearn.NAME` / `fairlearn_binary.NAME`.
pub fn headline_paths(record: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let scalars = |sec: &str| -> Vec<String> {
        match record.get(sec) {
            Some(Value::Object(m)) => m
                .iter()
                .filter(|(_, v)| v.is_number() || v.is_null())
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        }
    };
    let aif = scalars("aif360");
    for k in &aif {
        out.push((k.clone(), format!("aif360.{k}")));
    }
    for sec in ["regression"] {
        for k in scalars(sec) {
            out.push((k.clone(), format!("{sec}.{k}")));
        }
    }
    for sec in ["fairlearn", "fairlearn_binary"] {
        for k in scalars(sec) {
            if sec == "fairlearn" && !AIF360_SCALARS.contains(&k.as_str()) {
                out.push((k.clone(), format!("{sec}.{k}")));
            }
            out.push((format!("{sec}.{k}"), format!("{sec}.{k}")));
        }
    }
    // keep record order stable but unique
    let mut seen = std::collections::HashSet::new();
    out.retain(|(n, _)| seen.insert(n.clone()));
    out
}

fn lookup<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    // Group names may contain dots; try the longest key at each level first.
    fn walk<'a>(v: &'a Value, rest: &str) -> Option<&'a Value> {
        if rest.is_empty() {
            return Some(v);
        }
        let Value::Object(m) = v else { return None };
        if let Some(x) = m.get(rest) {
            return Some(x);
        }
        let mut cut = rest.len();
        while let Some(i) = rest[..cut].rfind('.') {
            if let Some(x) = m.get(&rest[..i]) {
                if let Some(found) = walk(x, &rest[i + 1..]) {
                    return Some(found);
                }
            }
            cut = i;
        }
        None
    }
    walk(record, path)
}

/// Evaluates every gate against the record. Unknown metric names are an error that lists
/// the known headline names.
pub fn evaluate(gates: &[Gate], record: &Value) -> Result<Vec<GateResult>> {
    let heads = headline_paths(record);
    let mut out = Vec::new();
    for g in gates {
        let path = heads
            .iter()
            .find(|(n, _)| *n == g.metric)
            .map(|(_, p)| p.clone())
            .unwrap_or(g.metric.clone());
        let v = match lookup(record, &path) {
            Some(v @ (Value::Number(_) | Value::Null)) => v.as_f64(),
            _ if AIF360_SCALARS.contains(&g.metric.as_str()) => {
                bail!(
                    "--fail-if '{}': {} is an AIF360 metric: it needs --privileged VALUE",
                    g.expr,
                    g.metric
                )
            }
            _ => {
                let names: Vec<&str> = heads
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| !n.starts_with("fairlearn_binary."))
                    .collect();
                bail!(
                    "--fail-if '{}': unknown metric \"{}\" (known: {}; also fairlearn_binary.NAME, or a dotted \
                     path to a number in the JSON record, e.g. aif360.per_group.unprivileged.tpr)",
                    g.expr,
                    g.metric,
                    names.join(", ")
                );
            }
        };
        let v = v.map(|x| if g.abs { x.abs() } else { x });
        let failed = match v {
            Some(x) => g.op.holds(x, g.threshold),
            None => true,
        };
        out.push(GateResult {
            expr: g.expr.clone(),
            value: v,
            failed,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let g = parse("disparate_impact<0.8").unwrap();
        assert_eq!(
            (g.metric.as_str(), g.abs, g.op, g.threshold),
            ("disparate_impact", false, Op::Lt, 0.8)
        );
        let g = parse(" abs( equal_opportunity_difference ) >= 1e-1 ").unwrap();
        assert_eq!(
            (g.metric.as_str(), g.abs, g.op, g.threshold),
            ("equal_opportunity_difference", true, Op::Ge, 0.1)
        );
        let g = parse("fairlearn.by_group.Female.tpr!=-2").unwrap();
        assert_eq!((g.op, g.threshold), (Op::Ne, -2.0));
        for bad in ["", "x", "x<", "x<abc", "abs(x>1", "<1", "x=1", "x<inf"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn evaluates_with_abs_null_and_paths() {
        let rec: Value = serde_json::json!({
            "aif360": {"disparate_impact": 0.7, "equal_opportunity_difference": -0.2, "x": null,
                       "per_group": {"unprivileged": {"tpr": 0.5}}},
            "fairlearn": {"equal_opportunity_difference": 0.2, "demographic_parity_ratio": 0.9,
                          "by_group": {"a.b": {"tpr": 0.25}}}
        });
        let gates: Vec<Gate> = [
            "disparate_impact<0.8",
            "abs(equal_opportunity_difference)>0.1",
            "x>0",
            "demographic_parity_ratio<0.8",
            "aif360.per_group.unprivileged.tpr<0.4",
            "fairlearn.by_group.a.b.tpr<0.3",
            "equal_opportunity_difference<0",
        ]
        .iter()
        .map(|s| parse(s).unwrap())
        .collect();
        let r = evaluate(&gates, &rec).unwrap();
        let failed: Vec<bool> = r.iter().map(|g| g.failed).collect();
        assert_eq!(failed, [true, true, true, false, false, true, true]);
        let e = evaluate(&[parse("nope<1").unwrap()], &rec)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown metric \"nope\"") && e.contains("disparate_impact"),
            "{e}"
        );
    }
}
