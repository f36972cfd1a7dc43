//! fastai v2's learning-rate suggestions (fastai/callback/schedule.py: `valley`, `steep`,
//! `minimum`, `slide`), computed exactly as `Learner.lr_find` does:
//!
//! 1. the recorded curve is cut to `[num_it//10 : -5]` (the first tenth of the *requested*
//!    iterations and the last 5 recorded points are skipped);
//! 2. it becomes a float32 tensor (`tensor(...)`), so every comparison, difference and log
//!    below is done in f32, as torch and numpy do;
//! 3. it is cut again before the first NaN loss;
//! 4. each function runs on what is left. A function that raises in fastai (an empty curve;
//!    `steep` on one point; `slide` on fewer than 16 points) gives `None` here.
//!
//! Each suggestion also carries the point fastai marks on its plot (`(lr, loss)`; for
//! `minimum` that is the minimum itself, while the suggested lr is a tenth of it).

use serde::Serialize;

/// The four methods, in the order fastai's `SuggestionMethod` lists them in its docs.
pub const METHODS: [Method; 4] = [
    Method::Valley,
    Method::Steep,
    Method::Minimum,
    Method::Slide,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// fastai's default: a point in the longest stretch of falling loss.
    Valley,
    /// Where the loss falls fastest (per log-lr).
    Steep,
    /// A tenth of the lr at the lowest loss.
    Minimum,
    /// fastai's interval slide rule on the loss gradient.
    Slide,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Valley => "valley",
            Method::Steep => "steep",
            Method::Minimum => "minimum",
            Method::Slide => "slide",
        }
    }
}

/// A suggested learning rate and the (lr, loss) point fastai marks for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Suggestion {
    pub lr: f64,
    pub point: (f64, f64),
}

/// The curve `Learner.lr_find` hands to the suggestion functions: `[num_it//10 : -5]` of the
/// recorded points as f32, cut before the first NaN loss.
pub fn fastai_window(lrs: &[f64], losses: &[f64], num_it: usize) -> (Vec<f32>, Vec<f32>) {
    let n = lrs.len().min(losses.len());
    let start = (num_it / 10).min(n);
    let end = n.saturating_sub(5);
    if start >= end {
        return (Vec::new(), Vec::new());
    }
    let mut l: Vec<f32> = lrs[start..end].iter().map(|&x| x as f32).collect();
    let mut y: Vec<f32> = losses[start..end].iter().map(|&x| x as f32).collect();
    if let Some(k) = y.iter().position(|v| v.is_nan()) {
        l.truncate(k);
        y.truncate(k);
    }
    (l, y)
}

/// All four suggestions for a recorded curve (see the module docs).
pub fn suggest_all(
    lrs: &[f64],
    losses: &[f64],
    num_it: usize,
) -> [(Method, Option<Suggestion>); 4] {
    let (l, y) = fastai_window(lrs, losses, num_it);
    METHODS.map(|m| (m, suggest(m, &l, &y)))
}

pub fn suggest(m: Method, lrs: &[f32], losses: &[f32]) -> Option<Suggestion> {
    match m {
        Method::Valley => valley(lrs, losses),
        Method::Steep => steep(lrs, losses),
        Method::Minimum => minimum(lrs, losses),
        Method::Slide => slide(lrs, losses, 15, 0.005, 1.0),
    }
}

/// Python indexing: negative counts from the end.
fn py_index(n: usize, i: i64) -> Option<usize> {
    let k = if i < 0 { n as i64 + i } else { i };
    (0..n as i64).contains(&k).then_some(k as usize)
}

/// torch's `argmin` on a 1-d float tensor: the first minimum; a NaN counts as the minimum.
fn argmin(v: &[f32]) -> Option<usize> {
    if let Some(k) = v.iter().position(|x| x.is_nan()) {
        return Some(k);
    }
    let mut best: Option<usize> = None;
    for (i, x) in v.iter().enumerate() {
        if best.map_or(true, |b| *x < v[b]) {
            best = Some(i);
        }
    }
    best
}

/// The loss fastai marks at `lr`: `losses[min(range(len(lrs)), key=lambda i: abs(lrs[i]-lr))]`
/// (the first closest lr, distances in f32).
fn loss_at(lrs: &[f32], losses: &[f32], lr: f32) -> f64 {
    let mut best = 0usize;
    let mut best_d = f32::INFINITY;
    for (i, &x) in lrs.iter().enumerate() {
        let d = (x - lr).abs();
        if d < best_d {
            best_d = d;
            best = i;
        }
    }
    losses[best] as f64
}

/// fastai's `valley`: the longest decreasing subsequence (O(n²) dynamic programme), then a
/// point a third plus a sixth of the way into it. Kept exactly, quirks included: the start of
/// the longest run is recorded when its end is first found and not updated as that run's
/// length grows within the same `i`, and an index of −1 means the last point (Python).
pub fn valley(lrs: &[f32], losses: &[f32]) -> Option<Suggestion> {
    let n = losses.len();
    let (mut max_start, mut max_end) = (0i64, 0usize);
    let mut lds = vec![1i64; n];
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end as i64 - lds[max_end];
            }
        }
    }
    let sections = (max_end as i64 - max_start) as f64 / 3.0;
    // Python's int() truncates toward zero
    let idx = max_start + sections.trunc() as i64 + (sections / 2.0).trunc() as i64;
    let k = py_index(n, idx)?;
    let lr = lrs[k] as f64;
    Some(Suggestion {
        lr,
        point: (lr, losses[k] as f64),
    })
}

/// fastai's `steep`: the lr where `Δloss / Δlog(lr)` is lowest (the left end of that step).
pub fn steep(lrs: &[f32], losses: &[f32]) -> Option<Suggestion> {
    if lrs.len() < 2 {
        return None; // argmin of an empty tensor raises in torch
    }
    let grads: Vec<f32> = (0..lrs.len() - 1)
        .map(|i| (losses[i + 1] - losses[i]) / (lrs[i + 1].ln() - lrs[i].ln()))
        .collect();
    let k = argmin(&grads)?;
    let lr = lrs[k];
    Some(Suggestion {
        lr: lr as f64,
        point: (lr as f64, loss_at(lrs, losses, lr)),
    })
}

/// fastai's `minimum`: a tenth of the lr at the lowest loss; the marked point is the minimum.
pub fn minimum(lrs: &[f32], losses: &[f32]) -> Option<Suggestion> {
    let k = argmin(losses)?;
    let lr_min = lrs[k];
    Some(Suggestion {
        lr: lr_min as f64 / 10.0,
        point: (lr_min as f64, loss_at(lrs, losses, lr_min)),
    })
}

/// numpy's `np.gradient` of a float32 array with unit spacing (edge_order 1).
fn np_gradient(f: &[f32]) -> Option<Vec<f32>> {
    let n = f.len();
    if n < 2 {
        return None; // numpy raises
    }
    let mut g = vec![0f32; n];
    for i in 1..n - 1 {
        g[i] = (f[i + 1] - f[i - 1]) / 2.0;
    }
    g[0] = f[1] - f[0];
    g[n - 1] = f[n - 1] - f[n - 2];
    Some(g)
}

/// numpy's `np.interp(x, xp, fp)` for increasing `xp`.
fn np_interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if n == 0 {
        return f64::NAN;
    }
    if x.is_nan() {
        return x;
    }
    if x <= xp[0] {
        return fp[0];
    }
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    // xp[j] <= x < xp[j+1]
    let j = xp.partition_point(|&v| v <= x) - 1;
    if xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// fastai's `slide` (interval slide rule): walk left from the end comparing the loss
/// gradient `lr_diff` points apart; stop where they differ by at most `thresh`.
pub fn slide(
    lrs: &[f32],
    losses: &[f32],
    lr_diff: usize,
    thresh: f64,
    adjust: f64,
) -> Option<Suggestion> {
    let n = losses.len() as i64;
    let grad = np_gradient(losses)?;
    // NEP 50 (numpy 2): the Python float threshold is compared as a float32
    let thresh = thresh as f32;
    let mut r_idx: i64 = -1;
    let mut l_idx: i64 = r_idx - lr_diff as i64;
    let mut local_min_lr = lrs[py_index(lrs.len(), l_idx)?];
    while l_idx >= -n {
        let (r, l) = (py_index(grad.len(), r_idx)?, py_index(grad.len(), l_idx)?);
        // Python's `abs(...) > thresh` is false for NaN too
        let d = (grad[r] - grad[l]).abs();
        if d.is_nan() || d <= thresh {
            break;
        }
        local_min_lr = lrs[py_index(lrs.len(), l_idx)?];
        r_idx -= 1;
        l_idx -= 1;
    }
    let suggestion = local_min_lr as f64 * adjust;
    let xp: Vec<f64> = lrs.iter().map(|&x| x.log10() as f64).collect();
    let fp: Vec<f64> = losses.iter().map(|&x| x as f64).collect();
    let y = np_interp(suggestion.log10(), &xp, &fp);
    Some(Suggestion {
        lr: suggestion,
        point: (suggestion, y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_skips_the_first_tenth_and_last_five_and_stops_at_nan() {
        let lrs: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let mut losses: Vec<f64> = (0..30).map(|i| 100.0 - i as f64).collect();
        let (l, _) = fastai_window(&lrs, &losses, 30);
        assert_eq!(l.first(), Some(&3.0));
        assert_eq!(l.last(), Some(&24.0));
        losses[10] = f64::NAN;
        let (l, y) = fastai_window(&lrs, &losses, 30);
        assert_eq!(l.len(), 7);
        assert_eq!(y.len(), 7);
        // fewer points than the cuts: nothing left
        assert!(fastai_window(&lrs[..7], &losses[..7], 100).0.is_empty());
    }

    #[test]
    fn failures_are_none() {
        assert!(valley(&[], &[]).is_none());
        assert!(steep(&[1.0], &[1.0]).is_none());
        assert!(minimum(&[], &[]).is_none());
        let lrs: Vec<f32> = (1..=15).map(|i| i as f32).collect();
        assert!(
            slide(&lrs, &lrs, 15, 0.005, 1.0).is_none(),
            "slide needs 16 points"
        );
        let lrs: Vec<f32> = (1..=16).map(|i| i as f32).collect();
        assert!(slide(&lrs, &lrs, 15, 0.005, 1.0).is_some());
    }

    #[test]
    fn python_int_truncates_toward_zero() {
        // one dip: lds = [1, 2, 1, ...], max_start = -1, sections = 2/3: idx = -1 (the last)
        let lrs: Vec<f32> = (0..6).map(|i| i as f32 + 1.0).collect();
        let losses = [2.0f32, 1.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(valley(&lrs, &losses).unwrap().lr, 6.0);
    }
}
