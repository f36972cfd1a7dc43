//! The learning-rate schedule of the range test, the loss smoothing and the stop rule, as
//! fastai's `LRFinder` and `Recorder` (fastai/callback/schedule.py, fastai/learner.py).

use anyhow::{bail, Result};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// fastai's `SchedExp`: `start · (end/start)^pos`.
    Exp,
    /// `SchedLin`: `start + pos · (end − start)` (Leslie Smith's original range test).
    Linear,
}

/// The lr of each iteration: iteration `i` (0-based) runs at `pos = i / num_it`, as
/// `LRFinder.before_batch` sets it (`train_iter / num_it`), so the last of `num_it`
/// iterations runs just below `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub start: f64,
    pub end: f64,
    pub num_it: usize,
}

impl Schedule {
    pub fn new(kind: ScheduleKind, start: f64, end: f64, num_it: usize) -> Result<Schedule> {
        if !(start.is_finite() && end.is_finite()) {
            bail!("--start-lr and --end-lr must be finite numbers");
        }
        if start >= end {
            bail!("--start-lr {start:e} must be below --end-lr {end:e}");
        }
        if kind == ScheduleKind::Exp && start <= 0.0 {
            bail!("--start-lr {start:e} must be positive for the exponential schedule (or use --schedule linear)");
        }
        if kind == ScheduleKind::Linear && start < 0.0 {
            bail!("--start-lr {start:e} must not be negative");
        }
        if num_it == 0 {
            bail!("--num-it must be at least 1");
        }
        Ok(Schedule {
            kind,
            start,
            end,
            num_it,
        })
    }

    pub fn lr(&self, i: usize) -> f64 {
        let pos = i as f64 / self.num_it as f64;
        match self.kind {
            ScheduleKind::Exp => self.start * (self.end / self.start).powf(pos),
            ScheduleKind::Linear => self.start + pos * (self.end - self.start),
        }
    }
}

/// fastai's `AvgSmoothLoss`: an exponential moving average with bias correction,
/// `val ← torch.lerp(loss, val, β)` then `val / (1 − β^count)`.
#[derive(Debug, Clone)]
pub struct SmoothLoss {
    beta: f64,
    count: i32,
    val: f64,
}

impl SmoothLoss {
    pub fn new(beta: f64) -> Self {
        SmoothLoss {
            beta,
            count: 0,
            val: 0.0,
        }
    }

    /// Adds a loss and returns the smoothed value.
    pub fn push(&mut self, loss: f64) -> f64 {
        self.count += 1;
        self.val = loss + self.beta * (self.val - loss);
        self.value()
    }

    pub fn value(&self) -> f64 {
        self.val / (1.0 - self.beta.powi(self.count))
    }
}

/// Why a range test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All `num_it` iterations ran.
    NumIt,
    /// The smoothed loss went above 4 × the best one.
    Diverged,
    /// The smoothed loss became NaN (or infinite).
    Nan,
}

/// `LRFinder.after_batch`: keep the best smoothed loss; stop when the smoothed loss exceeds
/// `factor` × the best (fastai: 4) or, unlike fastai (which keeps going on NaN and drops the
/// NaN points before suggesting), when it is not finite. `enabled = false` is `--no-stop-div`.
#[derive(Debug, Clone)]
pub struct StopRule {
    pub enabled: bool,
    pub factor: f64,
    pub best: f64,
}

impl StopRule {
    pub fn new(enabled: bool) -> Self {
        StopRule {
            enabled,
            factor: 4.0,
            best: f64::INFINITY,
        }
    }

    /// Called with each smoothed loss after it is recorded.
    pub fn check(&mut self, smooth: f64) -> Option<StopReason> {
        if smooth < self.best {
            self.best = smooth;
        }
        if !self.enabled {
            return None;
        }
        if !smooth.is_finite() {
            return Some(StopReason::Nan);
        }
        (smooth > self.factor * self.best).then_some(StopReason::Diverged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_schedule_matches_fastai() {
        let s = Schedule::new(ScheduleKind::Exp, 1e-7, 10.0, 100).unwrap();
        assert_eq!(s.lr(0), 1e-7);
        // fastai's first recorded lrs (results/lr_find_tiny.json)
        assert!((s.lr(1) / 1.202264434617413e-07 - 1.0).abs() < 1e-12);
        assert!((s.lr(50) / 1e-3 - 1.0).abs() < 1e-12);
        assert!((s.lr(99) / 8.317637711026709 - 1.0).abs() < 1e-12);
        assert!((s.lr(100) - 10.0).abs() < 1e-12);
        let l = Schedule::new(ScheduleKind::Linear, 0.0, 1.0, 4).unwrap();
        assert_eq!(
            (0..5).map(|i| l.lr(i)).collect::<Vec<_>>(),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!(Schedule::new(ScheduleKind::Exp, 1.0, 1.0, 10).is_err());
        assert!(Schedule::new(ScheduleKind::Exp, 10.0, 1e-7, 10).is_err());
        assert!(Schedule::new(ScheduleKind::Exp, 0.0, 1.0, 10).is_err());
        assert!(Schedule::new(ScheduleKind::Linear, 0.0, 1.0, 10).is_ok());
        assert!(Schedule::new(ScheduleKind::Exp, 1e-7, 10.0, 0).is_err());
    }

    #[test]
    fn smoothing_is_fastai_avg_smooth_loss() {
        let mut s = SmoothLoss::new(0.98);
        // bias correction: the first value is the loss itself
        assert!((s.push(5.0) - 5.0).abs() < 1e-12);
        // second: (0.98·0.02·5 + 0.02·3) / (1 − 0.98²)
        let want = (0.98 * 0.02 * 5.0 + 0.02 * 3.0) / (1.0 - 0.98f64.powi(2));
        assert!((s.push(3.0) - want).abs() < 1e-12);
        // a constant loss stays constant
        let mut c = SmoothLoss::new(0.98);
        for _ in 0..200 {
            assert!((c.push(2.5) - 2.5).abs() < 1e-9);
        }
        let mut n = SmoothLoss::new(0.98);
        n.push(1.0);
        assert!(n.push(f64::NAN).is_nan());
    }

    #[test]
    fn stop_rule_is_four_times_the_best_or_nan() {
        let mut r = StopRule::new(true);
        assert_eq!(r.check(3.0), None);
        assert_eq!(r.check(2.0), None);
        assert_eq!(r.check(8.0), None, "exactly 4× is not above");
        assert_eq!(r.check(8.01), Some(StopReason::Diverged));
        let mut r = StopRule::new(true);
        r.check(1.0);
        assert_eq!(r.check(f64::NAN), Some(StopReason::Nan));
        assert_eq!(
            StopRule::new(true).check(f64::INFINITY),
            Some(StopReason::Nan)
        );
        let mut off = StopRule::new(false);
        off.check(1.0);
        assert_eq!(off.check(100.0), None);
        assert_eq!(off.check(f64::NAN), None);
    }
}
