//! Summaries over repeated range tests: per-iteration median and 10th–90th percentile band,
//! and the spread of each suggestion. Percentiles are numpy's default (linear interpolation
//! between closest ranks).

use serde::Serialize;

use crate::finder::Curve;

/// The `q`-quantile (0..=1) of `v` (any order; NaNs are ignored). None when empty.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(s[lo] + (s[hi] - s[lo]) * (pos - lo as f64))
}

/// Median and 10th/90th percentiles of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    /// How many values it summarises.
    pub n: usize,
}

pub fn spread(v: &[f64]) -> Option<Spread> {
    let n = v.iter().filter(|x| !x.is_nan()).count();
    Some(Spread {
        median: quantile(v, 0.5)?,
        p10: quantile(v, 0.1)?,
        p90: quantile(v, 0.9)?,
        n,
    })
}

/// One iteration of the repeats' band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandPoint {
    pub iter: usize,
    pub lr: f64,
    /// Median of the repeats' smoothed losses at this iteration.
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    /// Repeats that reached this iteration.
    pub repeats: usize,
}

/// The per-iteration median and 10th–90th percentile of the smoothed losses, over the
/// iterations that at least half of the repeats reached (a repeat that stopped early no
/// longer counts after its last point; beyond half, a median would describe the few runs
/// that happened to last).
pub fn band(curves: &[Curve]) -> Vec<BandPoint> {
    let k = curves.len();
    let longest = curves.iter().map(|c| c.points.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        let at: Vec<f64> = curves
            .iter()
            .filter_map(|c| c.points.get(i))
            .map(|p| p.smooth_loss)
            .collect();
        if at.len() * 2 < k || at.is_empty() {
            break;
        }
        let lr = curves
            .iter()
            .find_map(|c| c.points.get(i))
            .map(|p| p.lr)
            .unwrap_or(f64::NAN);
        let Some(s) = spread(&at) else { break };
        out.push(BandPoint {
            iter: i,
            lr,
            median: s.median,
            p10: s.p10,
            p90: s.p90,
            repeats: at.len(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finder::Point;
    use crate::schedule::StopReason;

    #[test]
    fn quantiles_are_numpy_linear() {
        let v = [3.0, 1.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert!((quantile(&v, 0.1).unwrap() - 1.3).abs() < 1e-12);
        assert!((quantile(&v, 0.9).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[f64::NAN, 2.0], 0.5), Some(2.0));
    }

    fn curve(losses: &[f64]) -> Curve {
        Curve {
            points: losses
                .iter()
                .enumerate()
                .map(|(i, &l)| Point {
                    iter: i,
                    lr: 10f64.powi(i as i32 - 7),
                    loss: l,
                    smooth_loss: l,
                })
                .collect(),
            stop: StopReason::NumIt,
            best_smooth_loss: 0.0,
        }
    }

    #[test]
    fn band_has_one_point_per_iteration_reached_by_half_the_repeats() {
        let cs = vec![
            curve(&[1.0, 2.0, 3.0, 4.0]),
            curve(&[2.0, 3.0, 4.0]),
            curve(&[3.0, 4.0]),
            curve(&[4.0]),
        ];
        let b = band(&cs);
        assert_eq!(
            b.len(),
            3,
            "iteration 2 is reached by 2 of 4 repeats (half), 3 by 1"
        );
        let b3 = band(&cs[..3]);
        assert_eq!(b3.len(), 3, "iteration 2: 2 of 3");
        assert_eq!(b[0].repeats, 4);
        assert_eq!(b[0].median, 2.5);
        assert!(b.iter().all(|p| p.p10 <= p.median && p.median <= p.p90));
        assert_eq!(b[1].lr, 1e-6);
    }
}
