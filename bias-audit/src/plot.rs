//! A PNG bar chart of per-group rates (selection rate, TPR, FPR; for regression: mean
//! prediction, mean true value, MAE), drawn with `shared::plot` (a pixel canvas, the
//! `font8x8` bitmap font and the `png` crate; see there for why no plotting library).

use std::io::Write;

use anyhow::{Context, Result};

/// Grouped bars as PNG bytes: `series` names the bars of each group, `values[g][s]` (NaN =
/// no bar); `y_unit_max` fixes the axis at [0, 1] for rates (labelled "rate"), otherwise the
/// axis fits the values (labelled "value").
pub fn bar_chart(
    title: &str,
    groups: &[String],
    series: &[&str],
    values: &[Vec<f64>],
    y_unit_max: Option<f64>,
) -> Result<Vec<u8>> {
    let y_label = if y_unit_max.is_some() {
        "rate"
    } else {
        "value"
    };
    shared::plot::bar_chart(title, groups, series, values, y_unit_max, y_label).to_png()
}

/// Writes `bytes` to an already-created atomic output.
pub fn write(mut f: shared::atomic::AtomicFile, bytes: &[u8]) -> Result<()> {
    f.write_all(bytes)
        .with_context(|| format!("{}: write failed", f.target().display()))?;
    f.commit()
}
