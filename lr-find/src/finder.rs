//! The range test itself, independent of any model: a model only has to take one training
//! step at a given learning rate and, for `--valid-loss`, report its validation loss
//! ([`RangeTestModel`]). The language model implements it in [`crate::lm`]; a classifier at a
//! chosen unfreeze stage implements the same two methods.

use anyhow::Result;
use lm_train::args::OptimArgs;
use lm_train::step::StepHyper;
use serde::Serialize;

use crate::schedule::{Schedule, SmoothLoss, StopReason, StopRule};

/// What the range test needs from a model and its data.
/// Optimiser and regularisation settings of the test's steps, language model or classifier
/// (the flags lm-train and clf-train share).
#[derive(Debug, Clone)]
pub struct Hyper {
    pub mom: f64,
    pub sqr_mom: f64,
    pub eps: f64,
    pub wd: f64,
    pub alpha: f64,
    pub beta: f64,
    pub clip: Option<f64>,
}

impl Hyper {
    pub fn new(mom: f64, o: &OptimArgs) -> Self {
        Hyper {
            mom,
            sqr_mom: o.sqr_mom,
            eps: o.eps,
            wd: o.wd,
            alpha: o.alpha,
            beta: o.beta,
            clip: o.clip,
        }
    }

    /// One step's hyper-parameters at the learning rates `lrs`.
    pub fn step<'a>(&self, lrs: &'a [f64]) -> StepHyper<'a> {
        StepHyper::new(lrs, self.mom, self.alpha, self.beta, self.clip)
    }
}

pub trait RangeTestModel {
    /// One optimiser step at learning rate `lr` (every trainable layer group) on the next
    /// training batch, cycling the data when it runs out. Returns that batch's training loss
    /// as fastai's Recorder sees it (the loss function only, without regularisation terms).
    /// A non-finite loss is returned, not an error (the test then stops).
    fn train_step(&mut self, lr: f64) -> Result<f64>;
    /// Mean loss over the validation data with the current weights, no dropout.
    fn valid_loss(&mut self) -> Result<f64>;
}

/// Which loss the curve records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LossSource {
    /// The training batch's loss (fastai's `lr_find`).
    Train,
    /// The validation loss after every step (torch-lr-finder with `val_loader`, as in
    /// Leslie Smith's paper).
    Valid,
}

#[derive(Debug, Clone, Copy)]
pub struct TestSettings {
    pub schedule: Schedule,
    /// Smoothing factor of the loss (fastai's Recorder: 0.98).
    pub beta: f64,
    /// Stop on divergence (fastai's `stop_div`).
    pub stop_div: bool,
    pub loss: LossSource,
}

/// One iteration of the test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub iter: usize,
    pub lr: f64,
    pub loss: f64,
    pub smooth_loss: f64,
}

/// A finished range test.
#[derive(Debug, Clone)]
pub struct Curve {
    pub points: Vec<Point>,
    pub stop: StopReason,
    pub best_smooth_loss: f64,
}

impl Curve {
    pub fn lrs(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.lr).collect()
    }

    /// The smoothed losses: the curve fastai records, plots and suggests from.
    pub fn smooth_losses(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.smooth_loss).collect()
    }
}

/// Runs the schedule: step, record the (smoothed) loss, stop on divergence or after
/// `num_it` iterations. `on_point` sees each point as it is recorded (streaming output,
/// progress, Ctrl-C: an error from it ends the test with that error).
pub fn range_test<M: RangeTestModel + ?Sized>(
    model: &mut M,
    s: &TestSettings,
    mut on_point: impl FnMut(&Point) -> Result<()>,
) -> Result<Curve> {
    let mut smooth = SmoothLoss::new(s.beta);
    let mut rule = StopRule::new(s.stop_div);
    let mut points = Vec::with_capacity(s.schedule.num_it);
    for iter in 0..s.schedule.num_it {
        let lr = s.schedule.lr(iter);
        let train = model.train_step(lr)?;
        let loss = match s.loss {
            LossSource::Train => train,
            // a diverged step counts as a diverged curve, whatever the weights still give
            LossSource::Valid if !train.is_finite() => train,
            LossSource::Valid => model.valid_loss()?,
        };
        let smooth_loss = smooth.push(loss);
        let p = Point {
            iter,
            lr,
            loss,
            smooth_loss,
        };
        on_point(&p)?;
        points.push(p);
        if let Some(stop) = rule.check(smooth_loss) {
            return Ok(Curve {
                points,
                stop,
                best_smooth_loss: rule.best,
            });
        }
    }
    Ok(Curve {
        points,
        stop: StopReason::NumIt,
        best_smooth_loss: rule.best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleKind;

    /// A loss that falls with lr up to 1e-2, then explodes.
    struct Toy {
        steps: usize,
        valid_calls: usize,
    }

    impl RangeTestModel for Toy {
        fn train_step(&mut self, lr: f64) -> Result<f64> {
            self.steps += 1;
            let x = lr.log10() + 2.0;
            Ok(if x < 0.0 {
                5.0 + 0.2 * x
            } else {
                5.0 + 40.0 * x * x
            })
        }
        fn valid_loss(&mut self) -> Result<f64> {
            self.valid_calls += 1;
            Ok(1.0)
        }
    }

    fn settings(stop_div: bool, loss: LossSource) -> TestSettings {
        TestSettings {
            schedule: Schedule::new(ScheduleKind::Exp, 1e-7, 10.0, 100).unwrap(),
            beta: 0.98,
            stop_div,
            loss,
        }
    }

    #[test]
    fn stops_when_the_smoothed_loss_passes_four_times_the_best() {
        let mut m = Toy {
            steps: 0,
            valid_calls: 0,
        };
        let c = range_test(&mut m, &settings(true, LossSource::Train), |_| Ok(())).unwrap();
        assert_eq!(c.stop, StopReason::Diverged);
        assert!(
            c.points.len() < 100 && c.points.len() > 60,
            "{}",
            c.points.len()
        );
        let last = c.points.last().unwrap();
        assert!(last.smooth_loss > 4.0 * c.best_smooth_loss);
        // the point before did not pass
        assert!(c.points[c.points.len() - 2].smooth_loss <= 4.0 * c.best_smooth_loss);
        assert_eq!(m.steps, c.points.len());
        assert_eq!(m.valid_calls, 0);

        let mut m = Toy {
            steps: 0,
            valid_calls: 0,
        };
        let c = range_test(&mut m, &settings(false, LossSource::Train), |_| Ok(())).unwrap();
        assert_eq!(c.stop, StopReason::NumIt);
        assert_eq!(c.points.len(), 100);
        assert_eq!(c.points[99].iter, 99);
    }

    #[test]
    fn valid_mode_records_the_validation_loss() {
        let mut m = Toy {
            steps: 0,
            valid_calls: 0,
        };
        let c = range_test(&mut m, &settings(true, LossSource::Valid), |_| Ok(())).unwrap();
        assert_eq!(c.points.len(), 100);
        assert_eq!(m.valid_calls, 100);
        assert!(c.points.iter().all(|p| p.loss == 1.0));
    }

    #[test]
    fn nan_stops() {
        struct NanAt(usize, usize);
        impl RangeTestModel for NanAt {
            fn train_step(&mut self, _lr: f64) -> Result<f64> {
                self.1 += 1;
                Ok(if self.1 > self.0 { f64::NAN } else { 3.0 })
            }
            fn valid_loss(&mut self) -> Result<f64> {
                Ok(0.0)
            }
        }
        let c = range_test(
            &mut NanAt(10, 0),
            &settings(true, LossSource::Train),
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(c.stop, StopReason::Nan);
        assert_eq!(c.points.len(), 11);
        let c = range_test(
            &mut NanAt(10, 0),
            &settings(false, LossSource::Train),
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(c.points.len(), 100, "--no-stop-div keeps going");
    }
}
