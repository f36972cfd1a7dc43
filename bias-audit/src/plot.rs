//! A PNG bar chart of per-group rates (selection rate, TPR, FPR; for regression: mean
//! prediction, mean true value, MAE).
//!
//! Drawn on a plain RGB canvas and encoded with the `png` crate; labels use the public-domain
//! 8×8 bitmap font of `font8x8`. A plotting library would need a TrueType font from the system
//! (not there in CI) or bundled, and many more crates to build: this chart is bars, axes and
//! ASCII labels, so a canvas is enough and the output is byte-for-byte reproducible.

use std::io::Write;

use anyhow::{Context, Result};

type Rgb = [u8; 3];

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [30, 30, 30];
const GRID: Rgb = [225, 225, 225];
/// Tableau-like, distinguishable for the common forms of colour blindness.
pub const COLORS: [Rgb; 3] = [[31, 119, 180], [255, 127, 14], [44, 160, 44]];

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            px: WHITE.repeat(w * h),
        }
    }
    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }
    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.min(y1)..y0.max(y1) {
            for x in x0.min(x1)..x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }
    /// ASCII text at scale `s`; anything else is drawn as '?'.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let code = if ch.is_ascii() {
                ch as usize
            } else {
                b'?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let gx = x + (k as i64 * 8 + col) * scale;
                        let gy = y + row as i64 * scale;
                        self.rect(gx, gy, gx + scale, gy + scale, c);
                    }
                }
            }
        }
    }
    /// Text drawn upwards (rotated 90° counter-clockwise), starting at the bottom.
    fn text_up(&mut self, x: i64, y: i64, s: &str, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let code = if ch.is_ascii() {
                ch as usize
            } else {
                b'?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.set(x + row as i64, y - (k as i64 * 8 + col), c);
                    }
                }
            }
        }
    }
}

fn text_w(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 8 * scale
}

/// A "nice" upper bound for the y axis.
fn nice_max(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// Draws grouped bars: `series` names the bars of each group, `values[g][s]` (NaN = no bar).
pub fn bar_chart(
    title: &str,
    groups: &[String],
    series: &[&str],
    values: &[Vec<f64>],
    y_unit_max: Option<f64>,
) -> Result<Vec<u8>> {
    let max_v = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = y_unit_max.unwrap_or_else(|| nice_max(max_v));
    let label_w = groups.iter().map(|g| text_w(g, 1)).max().unwrap_or(0);
    let slot = (series.len() as i64 * 28 + 24).max(label_w + 16).min(260);
    let (left, right, top_m, bottom) = (70i64, 30i64, 70i64, 60i64);
    let w = (left + right + slot * groups.len() as i64).max(480);
    // few groups: widen the slots to fill the minimum width
    let slot = (w - left - right) / groups.len().max(1) as i64;
    let h = 420i64;
    let mut c = Canvas::new(w as usize, h as usize);
    let plot_h = h - top_m - bottom;
    let y_of = |v: f64| top_m + plot_h - ((v / top).clamp(0.0, 1.0) * plot_h as f64).round() as i64;

    c.text((w - text_w(title, 2)) / 2, 12, title, 2, BLACK);
    // legend
    let mut lx = left;
    for (s, name) in series.iter().enumerate() {
        c.rect(lx, 44, lx + 12, 56, COLORS[s % 3]);
        c.text(lx + 16, 46, name, 1, BLACK);
        lx += 16 + text_w(name, 1) + 24;
    }
    // grid and y ticks
    for k in 0..=4 {
        let v = top * k as f64 / 4.0;
        let y = y_of(v);
        c.rect(left, y, w - right, y + 1, GRID);
        let lab = format!("{v:.2}");
        c.text(left - 8 - text_w(&lab, 1), y - 4, &lab, 1, BLACK);
    }
    // bars
    let bar_w = ((slot - 16) / series.len().max(1) as i64).clamp(4, 40);
    for (g, name) in groups.iter().enumerate() {
        let x0 = left + slot * g as i64 + (slot - bar_w * series.len() as i64) / 2;
        for (s, v) in values[g].iter().enumerate() {
            if v.is_finite() {
                let xb = x0 + bar_w * s as i64;
                c.rect(xb + 1, y_of(*v), xb + bar_w - 1, y_of(0.0), COLORS[s % 3]);
            }
        }
        let mut lab: String = name.clone();
        if text_w(&lab, 1) > slot - 4 {
            let keep = ((slot - 4) / 8 - 1).max(1) as usize;
            lab = lab.chars().take(keep).collect::<String>() + "~";
        }
        let cx = left + slot * g as i64 + slot / 2;
        c.text(cx - text_w(&lab, 1) / 2, h - bottom + 10, &lab, 1, BLACK);
    }
    // axes
    c.rect(left, top_m, left + 1, h - bottom + 1, BLACK);
    c.rect(left, h - bottom, w - right, h - bottom + 1, BLACK);
    c.text_up(
        16,
        top_m + plot_h / 2 + text_w("rate", 1) / 2,
        if y_unit_max.is_some() {
            "rate"
        } else {
            "value"
        },
        BLACK,
    );

    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().context("PNG header")?;
        wr.write_image_data(&c.px).context("PNG data")?;
        wr.finish().context("PNG end")?;
    }
    Ok(out)
}

/// Writes `bytes` to an already-created atomic output.
pub fn write(mut f: shared::atomic::AtomicFile, bytes: &[u8]) -> Result<()> {
    f.write_all(bytes)
        .with_context(|| format!("{}: write failed", f.target().display()))?;
    f.commit()
}
