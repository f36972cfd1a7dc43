//! The range test's chart (PNG or SVG through `shared::plot`) and a small text chart for the
//! terminal. Both follow fastai's `plot_lr_find`: the smoothed loss against the lr on a log
//! axis, without the last 5 points (`skip_end=5`: they are the divergence that would squash
//! the rest), and each suggestion's marked point.

use shared::plot::{Band, LineChart, Marker, Series, COLORS};

use crate::suggest::{Method, Suggestion};

/// fastai's `plot_lr_find(skip_end=5)`.
pub const SKIP_END: usize = 5;

/// (lr, p10, p90) of each iteration of the repeats' band.
pub type BandPts = Vec<(f64, f64, f64)>;
/// A method's suggestion with the p10–p90 range of its lr over repeats.
pub type Marked = (Method, Suggestion, Option<(f64, f64)>);

/// What the charts show.
pub struct ChartData {
    pub title: String,
    /// (lr, smoothed loss), the median with repeats.
    pub curve: Vec<(f64, f64)>,
    /// (lr, p10, p90) with repeats.
    pub band: Option<(usize, BandPts)>,
    /// Each method's suggestion, and the p10–p90 range of the suggested lr over repeats.
    pub suggestions: Vec<Marked>,
    pub log_x: bool,
}

fn skip_end<T: Clone>(v: &[T]) -> Vec<T> {
    let n = v.len();
    // a curve too short to lose 5 points is drawn whole
    if n > SKIP_END + 1 {
        v[..n - SKIP_END].to_vec()
    } else {
        v.to_vec()
    }
}

pub fn line_chart(d: &ChartData) -> LineChart {
    let mut c = LineChart::new(
        d.title.clone(),
        if d.log_x {
            "learning rate (log scale)"
        } else {
            "learning rate"
        },
        "loss (smoothed)",
    );
    c.x_log = d.log_x;
    if let Some((k, band)) = &d.band {
        c.bands.push(Band {
            name: format!("10th-90th percentile ({k} runs)"),
            pts: skip_end(band),
            color: COLORS[0],
            opacity: 0.22,
        });
    }
    c.series.push(Series {
        name: if d.band.is_some() {
            "median".into()
        } else {
            "smoothed loss".into()
        },
        pts: skip_end(&d.curve),
        color: COLORS[0],
        width: 2.0,
    });
    for (k, (m, s, range)) in d.suggestions.iter().enumerate() {
        c.markers.push(Marker {
            name: format!("{} {}", m.name(), fmt_lr(s.lr)),
            x: s.point.0,
            y: s.point.1,
            color: COLORS[1 + k % (COLORS.len() - 1)],
            // for `minimum` the point is the minimum and the lr a tenth of it: scale the range
            range: range.map(|(a, b)| {
                let f = if s.lr != 0.0 { s.point.0 / s.lr } else { 1.0 };
                (a * f, b * f)
            }),
        });
    }
    c
}

/// Learning rate with 3 significant digits: `2.51e-3`, `0.209`.
pub fn fmt_lr(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if (1e-2..1e3).contains(&v.abs()) {
        let d = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.d$}")
    } else {
        let s = format!("{v:.2e}");
        s.replace("e-0", "e-").replace("e0", "e")
    }
}

/// The letter of a method in the text chart (steep and slide share their initial).
fn mark_char(m: Method) -> char {
    match m {
        Method::Valley => 'v',
        Method::Steep => 's',
        Method::Minimum => 'm',
        Method::Slide => 'l',
    }
}

/// A text chart of the curve, `w` × `h` characters plus axes, with each suggestion's column
/// marked by its initial under the axis.
pub fn text_chart(d: &ChartData, w: usize, h: usize) -> String {
    let pts: Vec<(f64, f64)> = skip_end(&d.curve)
        .into_iter()
        .filter(|p| p.1.is_finite() && (!d.log_x || p.0 > 0.0))
        .collect();
    if pts.len() < 2 || w < 4 || h < 2 {
        return String::new();
    }
    let fx = |x: f64| if d.log_x { x.log10() } else { x };
    let (x0, x1) = (fx(pts[0].0), fx(pts[pts.len() - 1].0));
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in &pts {
        y0 = y0.min(p.1);
        y1 = y1.max(p.1);
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let col = |x: f64| {
        (((fx(x) - x0) / (x1 - x0).max(1e-12)) * (w - 1) as f64)
            .round()
            .clamp(0.0, (w - 1) as f64) as usize
    };
    let row = |y: f64| {
        (((y1 - y) / (y1 - y0)) * (h - 1) as f64)
            .round()
            .clamp(0.0, (h - 1) as f64) as usize
    };
    let mut grid = vec![vec![' '; w]; h];
    for p in &pts {
        grid[row(p.1)][col(p.0)] = '*';
    }
    let mut marks = vec![' '; w];
    for (m, s, _) in &d.suggestions {
        if s.point.0.is_finite() && s.point.1.is_finite() {
            let c = col(s.point.0);
            let ch = mark_char(*m);
            grid[row(s.point.1)][c] = ch.to_ascii_uppercase();
            marks[c] = ch;
        }
    }
    let lab_hi = format!("{y1:.3}");
    let lab_lo = format!("{y0:.3}");
    let lw = lab_hi.len().max(lab_lo.len());
    let mut out = String::new();
    for (r, line) in grid.iter().enumerate() {
        let lab = if r == 0 {
            lab_hi.clone()
        } else if r == h - 1 {
            lab_lo.clone()
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{lab:>lw$} |{}\n",
            line.iter().collect::<String>().trim_end()
        ));
    }
    out.push_str(&format!("{:>lw$} +{}\n", "", "-".repeat(w)));
    out.push_str(&format!(
        "{:>lw$}  {}\n",
        "",
        marks.iter().collect::<String>().trim_end()
    ));
    let (a, b) = (fmt_lr(pts[0].0), fmt_lr(pts[pts.len() - 1].0));
    let gap = w.saturating_sub(a.len() + b.len()).max(1);
    out.push_str(&format!(
        "{:>lw$}  {a}{}{b}  (lr{})\n",
        "",
        " ".repeat(gap),
        if d.log_x { ", log scale" } else { "" }
    ));
    let legend: Vec<String> = d
        .suggestions
        .iter()
        .map(|(m, s, _)| format!("{}={} {}", mark_char(*m), m.name(), fmt_lr(s.lr)))
        .collect();
    if !legend.is_empty() {
        out.push_str(&format!("{:>lw$}  {}\n", "", legend.join("  ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_formatting() {
        assert_eq!(fmt_lr(0.002511886414140463), "2.51e-3");
        assert_eq!(fmt_lr(0.2089296132326126), "0.209");
        assert_eq!(fmt_lr(1e-7), "1.00e-7");
        assert_eq!(fmt_lr(2.5), "2.50");
        assert_eq!(fmt_lr(f64::NAN), "n/a");
    }

    #[test]
    fn text_chart_draws_the_curve_and_marks() {
        let curve: Vec<(f64, f64)> = (0..60)
            .map(|i| {
                (
                    1e-7 * 10f64.powf(i as f64 / 7.0),
                    ((i as f64 - 30.0) / 10.0).powi(2),
                )
            })
            .collect();
        let d = ChartData {
            title: "t".into(),
            curve,
            band: None,
            suggestions: vec![(
                Method::Valley,
                Suggestion {
                    lr: 1e-4,
                    point: (1e-4, 1.0),
                },
                None,
            )],
            log_x: true,
        };
        let t = text_chart(&d, 50, 10);
        assert!(
            t.contains('*') && t.contains('V') && t.contains("v=valley 1.00e-4"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 10 + 4);
    }
}
