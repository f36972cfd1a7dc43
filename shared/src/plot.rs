//! Charts without a plotting library: a small display list ([`Drawing`]) rendered to PNG (an
//! RGB pixel canvas encoded with the `png` crate) or to SVG, and two chart builders on top of
//! it: grouped bars ([`bar_chart`], bias-audit) and lines over a linear or log axis with bands
//! and markers ([`LineChart`], lr-find).
//!
//! Why no plotting crate: one would need a TrueType font from the system (not there in CI) or
//! bundled, and many more crates to build. Our charts are rectangles, lines, filled bands and
//! ASCII labels, so a canvas is enough, and the output is byte-for-byte reproducible (tests
//! can compare files). Labels use the public-domain 8×8 bitmap font of `font8x8`; the SVG
//! writer emits the same shapes at the same coordinates with a monospace font sized to the
//! same width, so the PNG and the SVG of a chart line up.
//!
//! Coordinates are pixels, origin top-left, y down. Lines are anti-aliased (coverage from
//! the distance to each segment); rectangles and text are not (crisp bars and bitmap glyphs).

use std::fmt::Write as _;

use anyhow::{Context, Result};

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [30, 30, 30];
pub const GRID: Rgb = [225, 225, 225];
pub const GREY: Rgb = [110, 110, 110];
/// Tableau 10 (matplotlib's default cycle): distinguishable for the common forms of colour
/// blindness in its first entries.
pub const COLORS: [Rgb; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

/// One thing to draw, in pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Filled axis-aligned rectangle covering the pixels `x0..x1` × `y0..y1`.
    Rect {
        x0: i64,
        y0: i64,
        x1: i64,
        y1: i64,
        color: Rgb,
    },
    /// Open polyline of the given stroke width; points with a non-finite coordinate break it.
    Polyline {
        pts: Vec<(f64, f64)>,
        width: f64,
        color: Rgb,
    },
    /// Filled polygon (even-odd rule), blended with `opacity` in [0, 1]: bands.
    Polygon {
        pts: Vec<(f64, f64)>,
        color: Rgb,
        opacity: f64,
    },
    /// Filled disc.
    Circle {
        cx: f64,
        cy: f64,
        r: f64,
        color: Rgb,
    },
    /// ASCII text, top-left at (x, y), 8×8 glyphs times `scale`; `up` draws it rotated 90°
    /// counter-clockwise with (x, y) at the bottom-left of the first glyph.
    Text {
        x: i64,
        y: i64,
        s: String,
        scale: i64,
        color: Rgb,
        up: bool,
    },
}

/// A picture: a size and shapes drawn in order on a white background.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawing {
    pub w: u32,
    pub h: u32,
    pub shapes: Vec<Shape>,
}

impl Drawing {
    pub fn new(w: u32, h: u32) -> Drawing {
        Drawing {
            w,
            h,
            shapes: Vec::new(),
        }
    }

    pub fn push(&mut self, s: Shape) {
        self.shapes.push(s);
    }

    pub fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: Rgb) {
        self.push(Shape::Rect {
            x0,
            y0,
            x1,
            y1,
            color,
        });
    }

    pub fn text(&mut self, x: i64, y: i64, s: impl Into<String>, scale: i64, color: Rgb) {
        self.push(Shape::Text {
            x,
            y,
            s: s.into(),
            scale,
            color,
            up: false,
        });
    }

    pub fn text_up(&mut self, x: i64, y: i64, s: impl Into<String>, color: Rgb) {
        self.push(Shape::Text {
            x,
            y,
            s: s.into(),
            scale: 1,
            color,
            up: true,
        });
    }

    /// Rasterizes the drawing.
    pub fn render(&self) -> Canvas {
        let mut c = Canvas::new(self.w as usize, self.h as usize);
        for s in &self.shapes {
            match s {
                Shape::Rect {
                    x0,
                    y0,
                    x1,
                    y1,
                    color,
                } => c.rect(*x0, *y0, *x1, *y1, *color),
                Shape::Polyline { pts, width, color } => c.polyline(pts, *width, *color),
                Shape::Polygon {
                    pts,
                    color,
                    opacity,
                } => c.polygon(pts, *color, *opacity),
                Shape::Circle { cx, cy, r, color } => c.circle(*cx, *cy, *r, *color),
                Shape::Text {
                    x,
                    y,
                    s,
                    scale,
                    color,
                    up,
                } => {
                    if *up {
                        c.text_up(*x, *y, s, *color)
                    } else {
                        c.text(*x, *y, s, *scale, *color)
                    }
                }
            }
        }
        c
    }

    /// PNG bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        self.render().to_png()
    }

    /// A standalone SVG document of the same shapes.
    pub fn to_svg(&self) -> String {
        let mut o = String::new();
        let (w, h) = (self.w, self.h);
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#
        );
        let _ = writeln!(
            o,
            r#"<rect width="{w}" height="{h}" fill="{}"/>"#,
            hex(WHITE)
        );
        for s in &self.shapes {
            match s {
                Shape::Rect {
                    x0,
                    y0,
                    x1,
                    y1,
                    color,
                } => {
                    let (x, y) = (x0.min(x1), y0.min(y1));
                    let (rw, rh) = ((x1 - x0).abs(), (y1 - y0).abs());
                    if rw > 0 && rh > 0 {
                        let _ = writeln!(
                            o,
                            r#"<rect x="{x}" y="{y}" width="{rw}" height="{rh}" fill="{}"/>"#,
                            hex(*color)
                        );
                    }
                }
                Shape::Polyline { pts, width, color } => {
                    for run in finite_runs(pts) {
                        if run.len() < 2 {
                            continue;
                        }
                        let _ = writeln!(
                            o,
                            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-linejoin="round" stroke-linecap="round"/>"#,
                            svg_points(run),
                            hex(*color),
                            num(*width)
                        );
                    }
                }
                Shape::Polygon {
                    pts,
                    color,
                    opacity,
                } => {
                    let pts: Vec<(f64, f64)> = pts
                        .iter()
                        .copied()
                        .filter(|p| p.0.is_finite() && p.1.is_finite())
                        .collect();
                    if pts.len() >= 3 {
                        let _ = writeln!(
                            o,
                            r#"<polygon points="{}" fill="{}" fill-opacity="{}" fill-rule="evenodd"/>"#,
                            svg_points(&pts),
                            hex(*color),
                            num(*opacity)
                        );
                    }
                }
                Shape::Circle { cx, cy, r, color } => {
                    let _ = writeln!(
                        o,
                        r#"<circle cx="{}" cy="{}" r="{}" fill="{}"/>"#,
                        num(*cx),
                        num(*cy),
                        num(*r),
                        hex(*color)
                    );
                }
                Shape::Text {
                    x,
                    y,
                    s,
                    scale,
                    color,
                    up,
                } => {
                    let size = 8 * scale;
                    let len = text_w(s, *scale);
                    // the bitmap glyph's baseline is about 7/8 down its cell
                    let (tx, ty, rot) = if *up {
                        (
                            x + size * 7 / 8,
                            *y,
                            format!(r#" transform="rotate(-90 {} {y})""#, x + size * 7 / 8),
                        )
                    } else {
                        (*x, y + size * 7 / 8, String::new())
                    };
                    let _ = writeln!(
                        o,
                        r#"<text x="{tx}" y="{ty}" font-family="monospace" font-size="{}" textLength="{len}" lengthAdjust="spacingAndGlyphs" fill="{}"{rot}>{}</text>"#,
                        size + size / 4,
                        hex(*color),
                        xml_escape(s)
                    );
                }
            }
        }
        o.push_str("</svg>\n");
        o
    }
}

fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Shortest decimal with at most 2 fractional digits (pixel coordinates).
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn svg_points(pts: &[(f64, f64)]) -> String {
    pts.iter()
        .map(|(x, y)| format!("{},{}", num(*x), num(*y)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Maximal runs of points with finite coordinates.
fn finite_runs(pts: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    pts.split(|p| !(p.0.is_finite() && p.1.is_finite()))
        .filter(|r| !r.is_empty())
        .collect()
}

/// An RGB pixel canvas.
pub struct Canvas {
    pub w: usize,
    pub h: usize,
    /// Row-major RGB bytes.
    pub px: Vec<u8>,
}

impl Canvas {
    pub fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            px: WHITE.repeat(w * h),
        }
    }

    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Mixes `c` into the pixel with weight `a` in [0, 1].
    pub fn blend(&mut self, x: i64, y: i64, c: Rgb, a: f64) {
        if a <= 0.0 || x < 0 || y < 0 || (x as usize) >= self.w || (y as usize) >= self.h {
            return;
        }
        let a = a.min(1.0);
        let i = (y as usize * self.w + x as usize) * 3;
        for (px, &ck) in self.px[i..i + 3].iter_mut().zip(&c) {
            let old = *px as f64;
            *px = (old + (ck as f64 - old) * a).round() as u8;
        }
    }

    pub fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        let (xa, xb) = (x0.min(x1).max(0), x0.max(x1).min(self.w as i64));
        let (ya, yb) = (y0.min(y1).max(0), y0.max(y1).min(self.h as i64));
        for y in ya..yb {
            for x in xa..xb {
                self.set(x, y, c);
            }
        }
    }

    /// Anti-aliased polyline: each pixel takes the largest coverage over the segments, so
    /// joints are not painted twice.
    pub fn polyline(&mut self, pts: &[(f64, f64)], width: f64, c: Rgb) {
        let half = width.max(0.5) / 2.0;
        let mut cov: std::collections::HashMap<(i64, i64), f64> = std::collections::HashMap::new();
        for run in finite_runs(pts) {
            let segs: Vec<((f64, f64), (f64, f64))> = if run.len() == 1 {
                vec![(run[0], run[0])]
            } else {
                run.windows(2).map(|w| (w[0], w[1])).collect()
            };
            for (a, b) in segs {
                let x0 = (a.0.min(b.0) - half - 1.0).floor().max(-1.0) as i64;
                let x1 = (a.0.max(b.0) + half + 1.0).ceil().min(self.w as f64) as i64;
                let y0 = (a.1.min(b.1) - half - 1.0).floor().max(-1.0) as i64;
                let y1 = (a.1.max(b.1) + half + 1.0).ceil().min(self.h as f64) as i64;
                for y in y0..=y1 {
                    for x in x0..=x1 {
                        let d = seg_dist((x as f64 + 0.5, y as f64 + 0.5), a, b);
                        let k = (half + 0.5 - d).clamp(0.0, 1.0);
                        if k > 0.0 {
                            let e = cov.entry((x, y)).or_insert(0.0);
                            *e = e.max(k);
                        }
                    }
                }
            }
        }
        let mut v: Vec<((i64, i64), f64)> = cov.into_iter().collect();
        v.sort_by_key(|e| e.0);
        for ((x, y), k) in v {
            self.blend(x, y, c, k);
        }
    }

    /// Even-odd scanline fill at pixel centres, blended with `opacity`.
    pub fn polygon(&mut self, pts: &[(f64, f64)], c: Rgb, opacity: f64) {
        let pts: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if pts.len() < 3 {
            return;
        }
        let ymin = pts
            .iter()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min)
            .floor()
            .max(0.0) as i64;
        let ymax = pts
            .iter()
            .map(|p| p.1)
            .fold(f64::NEG_INFINITY, f64::max)
            .ceil()
            .min(self.h as f64) as i64;
        let n = pts.len();
        for y in ymin..ymax {
            let yc = y as f64 + 0.5;
            let mut xs: Vec<f64> = Vec::new();
            for i in 0..n {
                let (a, b) = (pts[i], pts[(i + 1) % n]);
                if (a.1 <= yc) != (b.1 <= yc) {
                    xs.push(a.0 + (yc - a.1) * (b.0 - a.0) / (b.1 - a.1));
                }
            }
            xs.sort_by(|a, b| a.total_cmp(b));
            for pair in xs.chunks(2) {
                if let [xa, xb] = pair {
                    let (xa, xb) = ((xa - 0.5).ceil() as i64, (xb - 0.5).floor() as i64);
                    for x in xa..=xb {
                        self.blend(x, y, c, opacity);
                    }
                }
            }
        }
    }

    /// Anti-aliased disc.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, c: Rgb) {
        let (x0, x1) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
        let (y0, y1) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
                self.blend(x, y, c, (r + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// ASCII text at scale `s`; anything else is drawn as '?'.
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY[glyph_code(ch)];
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
    pub fn text_up(&mut self, x: i64, y: i64, s: &str, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY[glyph_code(ch)];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.set(x + row as i64, y - (k as i64 * 8 + col), c);
                    }
                }
            }
        }
    }

    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.w as u32, self.h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc.write_header().context("PNG header")?;
            wr.write_image_data(&self.px).context("PNG data")?;
            wr.finish().context("PNG end")?;
        }
        Ok(out)
    }
}

fn glyph_code(ch: char) -> usize {
    if ch.is_ascii() {
        ch as usize
    } else {
        b'?' as usize
    }
}

fn seg_dist(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let l2 = dx * dx + dy * dy;
    let t = if l2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / l2).clamp(0.0, 1.0)
    };
    let (qx, qy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - qx).powi(2) + (p.1 - qy).powi(2)).sqrt()
}

/// Width in pixels of `s` drawn at `scale`.
pub fn text_w(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 8 * scale
}

/// A "nice" upper bound for an axis starting at 0: 1, 2, 2.5, 5 or 10 times a power of ten.
pub fn nice_max(v: f64) -> f64 {
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

/// A "nice" step for about `n` ticks over `span`.
pub fn nice_step(span: f64, n: usize) -> f64 {
    let raw = span / n.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= raw {
            return m * p;
        }
    }
    10.0 * p
}

/// Draws grouped bars: `series` names the bars of each group, `values[g][s]` (NaN = no bar).
/// The y axis starts at 0 and ends at `y_max` (or a nice bound of the largest value);
/// `y_label` is written up the left side.
pub fn bar_chart(
    title: &str,
    groups: &[String],
    series: &[&str],
    values: &[Vec<f64>],
    y_max: Option<f64>,
    y_label: &str,
) -> Drawing {
    let max_v = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = y_max.unwrap_or_else(|| nice_max(max_v));
    let label_w = groups.iter().map(|g| text_w(g, 1)).max().unwrap_or(0);
    let slot = (series.len() as i64 * 28 + 24).max(label_w + 16).min(260);
    let (left, right, top_m, bottom) = (70i64, 30i64, 70i64, 60i64);
    let w = (left + right + slot * groups.len() as i64).max(480);
    // few groups: widen the slots to fill the minimum width
    let slot = (w - left - right) / groups.len().max(1) as i64;
    let h = 420i64;
    let mut d = Drawing::new(w as u32, h as u32);
    let plot_h = h - top_m - bottom;
    let y_of = |v: f64| top_m + plot_h - ((v / top).clamp(0.0, 1.0) * plot_h as f64).round() as i64;
    let color = |s: usize| COLORS[s % 3];

    d.text((w - text_w(title, 2)) / 2, 12, title, 2, BLACK);
    // legend
    let mut lx = left;
    for (s, name) in series.iter().enumerate() {
        d.rect(lx, 44, lx + 12, 56, color(s));
        d.text(lx + 16, 46, *name, 1, BLACK);
        lx += 16 + text_w(name, 1) + 24;
    }
    // grid and y ticks
    for k in 0..=4 {
        let v = top * k as f64 / 4.0;
        let y = y_of(v);
        d.rect(left, y, w - right, y + 1, GRID);
        let lab = format!("{v:.2}");
        d.text(left - 8 - text_w(&lab, 1), y - 4, lab, 1, BLACK);
    }
    // bars
    let bar_w = ((slot - 16) / series.len().max(1) as i64).clamp(4, 40);
    for (g, name) in groups.iter().enumerate() {
        let x0 = left + slot * g as i64 + (slot - bar_w * series.len() as i64) / 2;
        for (s, v) in values[g].iter().enumerate() {
            if v.is_finite() {
                let xb = x0 + bar_w * s as i64;
                d.rect(xb + 1, y_of(*v), xb + bar_w - 1, y_of(0.0), color(s));
            }
        }
        let mut lab: String = name.clone();
        if text_w(&lab, 1) > slot - 4 {
            let keep = ((slot - 4) / 8 - 1).max(1) as usize;
            lab = lab.chars().take(keep).collect::<String>() + "~";
        }
        let cx = left + slot * g as i64 + slot / 2;
        d.text(cx - text_w(&lab, 1) / 2, h - bottom + 10, lab, 1, BLACK);
    }
    // axes
    d.rect(left, top_m, left + 1, h - bottom + 1, BLACK);
    d.rect(left, h - bottom, w - right, h - bottom + 1, BLACK);
    d.text_up(
        16,
        top_m + plot_h / 2 + text_w(y_label, 1) / 2,
        y_label,
        BLACK,
    );
    d
}

/// An axis scale: data value → [0, 1] along the axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear {
        min: f64,
        max: f64,
    },
    /// Base-10 logarithmic; `min` and `max` must be positive.
    Log {
        min: f64,
        max: f64,
    },
}

impl Scale {
    /// Scale over the finite (and, for log, positive) values of `vals`, padded by `pad` of
    /// the span on each side (in log space for log scales).
    pub fn fit(log: bool, vals: impl IntoIterator<Item = f64>, pad: f64) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in vals {
            let v = if log {
                if v > 0.0 {
                    v.log10()
                } else {
                    f64::NAN
                }
            } else {
                v
            };
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            let d = if lo.abs() > 1e-12 {
                lo.abs() * 0.05
            } else {
                0.5
            };
            (lo, hi) = (lo - d, hi + d);
        }
        let p = (hi - lo) * pad;
        let (lo, hi) = (lo - p, hi + p);
        if log {
            Scale::Log {
                min: 10f64.powf(lo),
                max: 10f64.powf(hi),
            }
        } else {
            Scale::Linear { min: lo, max: hi }
        }
    }

    /// Position of `v` in [0, 1] (outside when `v` is out of range; NaN when it cannot be
    /// placed, e.g. a non-positive value on a log scale).
    pub fn frac(&self, v: f64) -> f64 {
        match *self {
            Scale::Linear { min, max } => (v - min) / (max - min),
            Scale::Log { min, max } => {
                if v > 0.0 {
                    (v.log10() - min.log10()) / (max.log10() - min.log10())
                } else {
                    f64::NAN
                }
            }
        }
    }

    /// Tick values and labels: decades (1e-7, 1e-6, ...) on a log scale, with every other
    /// one labelled when there are many; nice steps on a linear one.
    pub fn ticks(&self) -> Vec<(f64, Option<String>)> {
        match *self {
            Scale::Linear { min, max } => {
                let step = nice_step(max - min, 6);
                let first = (min / step).ceil() as i64;
                let last = (max / step).floor() as i64;
                // digits after the point that the step needs (2.5 × 10^e has one more)
                let e = step.log10().floor();
                let m = step / 10f64.powf(e);
                let extra = if (m - 2.5).abs() < 1e-9 { 1.0 } else { 0.0 };
                let decimals = (extra - e).max(0.0) as usize;
                (first..=last)
                    .map(|k| {
                        let v = k as f64 * step;
                        (v, Some(format!("{v:.decimals$}")))
                    })
                    .collect()
            }
            Scale::Log { min, max } => {
                let (a, b) = (min.log10().ceil() as i64, max.log10().floor() as i64);
                let every = if b - a > 8 { 2 } else { 1 };
                (a..=b)
                    .map(|e| {
                        let lab = (e.rem_euclid(every) == 0).then(|| log_label(e));
                        (10f64.powi(e as i32), lab)
                    })
                    .collect()
            }
        }
    }
}

fn log_label(e: i64) -> String {
    match e {
        0 => "1".into(),
        1 => "10".into(),
        -1 => "0.1".into(),
        -2 => "0.01".into(),
        e => format!("1e{e}"),
    }
}

/// A line of a [`LineChart`].
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub pts: Vec<(f64, f64)>,
    pub color: Rgb,
    pub width: f64,
}

/// A filled band between `lo` and `hi` at each x (e.g. the 10th–90th percentile of repeats).
#[derive(Debug, Clone)]
pub struct Band {
    pub name: String,
    /// (x, lo, hi)
    pub pts: Vec<(f64, f64, f64)>,
    pub color: Rgb,
    pub opacity: f64,
}

/// A labelled point (e.g. a suggested learning rate on the curve), with an optional
/// horizontal range drawn as a whisker through it.
#[derive(Debug, Clone)]
pub struct Marker {
    pub name: String,
    pub x: f64,
    pub y: f64,
    pub color: Rgb,
    pub range: Option<(f64, f64)>,
}

/// Lines over a linear or log x axis, with bands and markers, and a legend.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    pub markers: Vec<Marker>,
    pub width: u32,
    pub height: u32,
}

impl LineChart {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_log: false,
            y_log: false,
            series: Vec::new(),
            bands: Vec::new(),
            markers: Vec::new(),
            width: 720,
            height: 460,
        }
    }

    /// Lays the chart out as a [`Drawing`].
    pub fn draw(&self) -> Drawing {
        let (w, h) = (self.width as i64, self.height as i64);
        let (left, right, top, bottom) = (76i64, 24i64, 52i64, 56i64);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.pts.iter().map(|p| p.0))
            .chain(self.bands.iter().flat_map(|b| b.pts.iter().map(|p| p.0)));
        let xscale = Scale::fit(self.x_log, xs.collect::<Vec<_>>(), 0.02);
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.pts.iter().map(|p| p.1))
            .chain(
                self.bands
                    .iter()
                    .flat_map(|b| b.pts.iter().flat_map(|p| [p.1, p.2])),
            )
            .chain(self.markers.iter().map(|m| m.y));
        let yscale = Scale::fit(self.y_log, ys.collect::<Vec<_>>(), 0.05);
        let px = |x: f64| left as f64 + xscale.frac(x) * pw as f64;
        let py = |y: f64| (top + ph) as f64 - yscale.frac(y) * ph as f64;
        let mut d = Drawing::new(w as u32, h as u32);

        // the title at double size when it fits, else at the normal size
        let ts = if text_w(&self.title, 2) <= w - 16 {
            2
        } else {
            1
        };
        d.text(
            ((w - text_w(&self.title, ts)) / 2).max(4),
            if ts == 2 { 12 } else { 18 },
            self.title.clone(),
            ts,
            BLACK,
        );
        // grid and ticks
        for (v, lab) in xscale.ticks() {
            let x = px(v).round() as i64;
            if x < left || x > left + pw {
                continue;
            }
            d.rect(x, top, x + 1, top + ph, GRID);
            d.rect(x, top + ph, x + 1, top + ph + 5, BLACK);
            if let Some(l) = lab {
                d.text(x - text_w(&l, 1) / 2, top + ph + 9, l, 1, BLACK);
            }
        }
        for (v, lab) in yscale.ticks() {
            let y = py(v).round() as i64;
            if y < top || y > top + ph {
                continue;
            }
            d.rect(left, y, left + pw, y + 1, GRID);
            d.rect(left - 5, y, left, y + 1, BLACK);
            if let Some(l) = lab {
                d.text(left - 9 - text_w(&l, 1), y - 4, l, 1, BLACK);
            }
        }
        // clip to the plot area by dropping what is outside (bands and lines may leave it
        // when the y range is cut)
        let clip_y = |y: f64| y.clamp(top as f64 - 1.0, (top + ph) as f64 + 1.0);
        for b in &self.bands {
            let upper = b.pts.iter().map(|p| (px(p.0), clip_y(py(p.2))));
            let lower = b.pts.iter().rev().map(|p| (px(p.0), clip_y(py(p.1))));
            d.push(Shape::Polygon {
                pts: upper.chain(lower).collect(),
                color: b.color,
                opacity: b.opacity,
            });
        }
        for s in &self.series {
            let pts = s.pts.iter().map(|p| (px(p.0), clip_y(py(p.1)))).collect();
            d.push(Shape::Polyline {
                pts,
                width: s.width,
                color: s.color,
            });
        }
        for m in &self.markers {
            let (x, y) = (px(m.x), py(m.y));
            if let Some((a, b)) = m.range {
                let (xa, xb) = (px(a), px(b));
                d.push(Shape::Polyline {
                    pts: vec![(xa, y), (xb, y)],
                    width: 2.0,
                    color: m.color,
                });
                for xe in [xa, xb] {
                    d.push(Shape::Polyline {
                        pts: vec![(xe, y - 4.0), (xe, y + 4.0)],
                        width: 2.0,
                        color: m.color,
                    });
                }
            }
            if x.is_finite() && y.is_finite() {
                d.push(Shape::Circle {
                    cx: x,
                    cy: y,
                    r: 4.5,
                    color: m.color,
                });
            }
        }
        // frame
        d.rect(left, top, left + 1, top + ph + 1, BLACK);
        d.rect(left, top + ph, left + pw + 1, top + ph + 1, BLACK);
        d.rect(left, top, left + pw + 1, top + 1, BLACK);
        d.rect(left + pw, top, left + pw + 1, top + ph + 1, BLACK);
        // axis labels
        d.text(
            left + (pw - text_w(&self.x_label, 1)) / 2,
            h - 22,
            self.x_label.clone(),
            1,
            BLACK,
        );
        d.text_up(
            14,
            top + ph / 2 + text_w(&self.y_label, 1) / 2,
            self.y_label.clone(),
            BLACK,
        );
        // legend, inside the plot in the corner that covers the fewest data points
        let mut entries: Vec<(String, Rgb, u8)> = Vec::new();
        entries.extend(
            self.series
                .iter()
                .filter(|s| !s.name.is_empty())
                .map(|s| (s.name.clone(), s.color, 0)),
        );
        entries.extend(
            self.bands
                .iter()
                .filter(|b| !b.name.is_empty())
                .map(|b| (b.name.clone(), b.color, 1)),
        );
        entries.extend(
            self.markers
                .iter()
                .filter(|m| !m.name.is_empty())
                .map(|m| (m.name.clone(), m.color, 2)),
        );
        if !entries.is_empty() {
            let lw = entries.iter().map(|e| text_w(&e.0, 1)).max().unwrap_or(0) + 34;
            let lh = entries.len() as i64 * 14 + 8;
            let data: Vec<(f64, f64)> = self
                .series
                .iter()
                .flat_map(|s| s.pts.iter().map(|p| (px(p.0), py(p.1))))
                .chain(self.bands.iter().flat_map(|b| {
                    b.pts
                        .iter()
                        .flat_map(|p| [(px(p.0), py(p.1)), (px(p.0), py(p.2))])
                }))
                .chain(self.markers.iter().map(|m| (px(m.x), py(m.y))))
                .collect();
            let corners = [
                (left + pw - lw - 8, top + 8),
                (left + 8, top + ph - lh - 8),
                (left + 8, top + 8),
                (left + pw - lw - 8, top + ph - lh - 8),
            ];
            let covered = |(x, y): (i64, i64)| {
                let (x0, y0, x1, y1) = (
                    (x - 6) as f64,
                    (y - 6) as f64,
                    (x + lw + 6) as f64,
                    (y + lh + 6) as f64,
                );
                data.iter()
                    .filter(|p| p.0 >= x0 && p.0 <= x1 && p.1 >= y0 && p.1 <= y1)
                    .count()
            };
            let (lx, ly) = corners
                .iter()
                .copied()
                .min_by_key(|c| covered(*c))
                .expect("four corners");
            d.rect(lx, ly, lx + lw, ly + lh, WHITE);
            d.rect(lx, ly, lx + lw, ly + 1, GRID);
            d.rect(lx, ly + lh - 1, lx + lw, ly + lh, GRID);
            d.rect(lx, ly, lx + 1, ly + lh, GRID);
            d.rect(lx + lw - 1, ly, lx + lw, ly + lh, GRID);
            for (k, (name, color, kind)) in entries.into_iter().enumerate() {
                let y = ly + 6 + k as i64 * 14;
                let (cx, cy) = ((lx + 16) as f64, (y + 4) as f64);
                match kind {
                    0 => d.push(Shape::Polyline {
                        pts: vec![(cx - 10.0, cy), (cx + 10.0, cy)],
                        width: 2.0,
                        color,
                    }),
                    1 => d.push(Shape::Polygon {
                        pts: vec![
                            (cx - 10.0, cy - 5.0),
                            (cx + 10.0, cy - 5.0),
                            (cx + 10.0, cy + 5.0),
                            (cx - 10.0, cy + 5.0),
                        ],
                        color,
                        opacity: 0.25,
                    }),
                    _ => d.push(Shape::Circle {
                        cx,
                        cy,
                        r: 4.0,
                        color,
                    }),
                }
                d.text(lx + 30, y, name, 1, BLACK);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scale_places_decades_evenly() {
        let s = Scale::Log {
            min: 1e-7,
            max: 10.0,
        };
        assert!((s.frac(1e-7)).abs() < 1e-12);
        assert!((s.frac(10.0) - 1.0).abs() < 1e-12);
        assert!((s.frac(1e-3) - 0.5).abs() < 1e-12);
        assert!(s.frac(0.0).is_nan());
        let t = s.ticks();
        assert_eq!(t.len(), 9);
        assert_eq!(t[0].1.as_deref(), Some("1e-7"));
        assert_eq!(t.last().unwrap().1.as_deref(), Some("10"));
    }

    #[test]
    fn linear_ticks_are_nice() {
        let s = Scale::Linear { min: 4.3, max: 9.1 };
        let t: Vec<f64> = s.ticks().iter().map(|t| t.0).collect();
        assert_eq!(t, vec![5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(s.ticks()[0].1.as_deref(), Some("5"));
        let s = Scale::Linear { min: 0.0, max: 0.5 };
        assert_eq!(s.ticks()[1].1.as_deref(), Some("0.1"));
        let s = Scale::Linear { min: 0.0, max: 1.0 };
        assert_eq!(s.ticks()[1].1.as_deref(), Some("0.2"));
        let s = Scale::Linear {
            min: 0.0,
            max: 10.0,
        };
        assert_eq!(s.ticks()[1].1.as_deref(), Some("2"));
    }

    #[test]
    fn png_and_svg_of_a_line_chart() {
        let mut c = LineChart::new("t", "x", "y");
        c.x_log = true;
        c.series.push(Series {
            name: "loss".into(),
            pts: (0..50)
                .map(|i| (1e-7 * 10f64.powf(i as f64 / 6.0), (i as f64 - 25.0).powi(2)))
                .collect(),
            color: COLORS[0],
            width: 2.0,
        });
        c.bands.push(Band {
            name: "band".into(),
            pts: (0..50)
                .map(|i| (1e-7 * 10f64.powf(i as f64 / 6.0), 0.0, 100.0))
                .collect(),
            color: COLORS[0],
            opacity: 0.2,
        });
        c.markers.push(Marker {
            name: "m".into(),
            x: 1e-3,
            y: 10.0,
            color: COLORS[1],
            range: Some((1e-4, 1e-2)),
        });
        let d = c.draw();
        let png = d.to_png().unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(png, d.to_png().unwrap(), "deterministic");
        let svg = d.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("<polyline") && svg.contains("<polygon") && svg.contains("<circle"));
        assert!(svg.contains(">1e-7</text>"));
    }

    #[test]
    fn polygon_fill_covers_inside_only() {
        let mut c = Canvas::new(10, 10);
        c.polygon(
            &[(2.0, 2.0), (8.0, 2.0), (8.0, 8.0), (2.0, 8.0)],
            [0, 0, 0],
            1.0,
        );
        let at = |x: usize, y: usize| c.px[(y * 10 + x) * 3];
        assert_eq!(at(5, 5), 0);
        assert_eq!(at(2, 2), 0);
        assert_eq!(at(1, 5), 255);
        assert_eq!(at(8, 5), 255);
    }

    #[test]
    fn svg_escapes_text() {
        let mut d = Drawing::new(10, 10);
        d.text(0, 0, "a<b & \"c\"", 1, BLACK);
        assert!(d.to_svg().contains("a&lt;b &amp; &quot;c&quot;"));
    }
}
