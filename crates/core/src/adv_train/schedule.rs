//! Learning-rate schedules, evaluated per optimiser step from the epoch and step within it, so
//! a resumed run continues on exactly the curve it left; and the optimiser the rates drive
//! (Adam, or SGD with momentum as the CgAT/SAAT reference code).

use serde::{Deserialize, Serialize};

/// How the learning rate evolves over training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant,
    /// Multiply by `factor` every `every` epochs (original CSQ: 0.7 every 10).
    Step {
        /// Epochs between decays.
        every: usize,
        /// Multiplier at each decay.
        factor: f64,
    },
    /// Cosine from the base rate down to `base * floor` over all steps, after a linear warm-up
    /// of `warmup_epochs`.
    Cosine {
        /// Final rate as a fraction of the base rate.
        floor: f64,
        /// Epochs of linear warm-up.
        warmup_epochs: usize,
    },
}

impl LrSchedule {
    /// The rate at `step` (0-based) of `epoch` (0-based), for `epochs` epochs of
    /// `steps_per_epoch` steps.
    pub fn rate(
        &self,
        base: f64,
        epoch: usize,
        step: usize,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> f64 {
        let steps_per_epoch = steps_per_epoch.max(1);
        let t = (epoch * steps_per_epoch + step) as f64;
        match *self {
            Self::Constant => base,
            Self::Step { every, factor } => base * factor.powi((epoch / every.max(1)) as i32),
            Self::Cosine {
                floor,
                warmup_epochs,
            } => {
                let warm = (warmup_epochs * steps_per_epoch) as f64;
                if t < warm {
                    return base * (t + 1.0) / warm;
                }
                let total = ((epochs * steps_per_epoch) as f64 - warm).max(1.0);
                let progress = ((t - warm) / total).clamp(0.0, 1.0);
                let low = base * floor;
                low + (base - low) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// The optimiser of a training run (absent from configs saved before SGD existed: Adam).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-5: Burn's), with the weight decay added to the gradient.
    #[default]
    Adam,
    /// SGD with heavy-ball momentum and no dampening (PyTorch's `SGD(momentum=…)`, as the CgAT
    /// and SAAT reference code: momentum 0.9, weight decay 5e-4), the weight decay added to the
    /// gradient.
    Sgd {
        /// Momentum factor.
        momentum: f64,
    },
}

impl Optimizer {
    /// The optimiser with `weight_decay`, ready to step a module.
    pub fn init(&self, weight_decay: f64) -> burn::optim::ModuleOptimizer {
        let decay = Some(burn::optim::decay::WeightDecayConfig::new(
            weight_decay as f32,
        ));
        match *self {
            Optimizer::Adam => burn::optim::AdamConfig::new()
                .with_weight_decay(decay)
                .init(),
            Optimizer::Sgd { momentum } => burn::optim::SgdConfig::new()
                .with_weight_decay(decay)
                .with_momentum(Some(
                    burn::optim::momentum::MomentumConfig::new()
                        .with_momentum(momentum)
                        .with_dampening(0.0),
                ))
                .init(),
        }
    }

    /// Checks the momentum.
    pub fn validate(&self) -> crate::Result<()> {
        match *self {
            Optimizer::Sgd { momentum } if !(0.0..1.0).contains(&momentum) => Err(
                crate::Error::InvalidArgument(format!("--momentum {momentum} must lie in [0, 1)")),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let step = LrSchedule::Step {
            every: 10,
            factor: 0.7,
        };
        assert_eq!(step.rate(1.0, 9, 5, 30, 10), 1.0);
        assert!((step.rate(1.0, 25, 0, 30, 10) - 0.49).abs() < 1e-12);
        let cos = LrSchedule::Cosine {
            floor: 0.01,
            warmup_epochs: 1,
        };
        assert!((cos.rate(1.0, 0, 4, 10, 10) - 0.5).abs() < 1e-12);
        assert!((cos.rate(1.0, 1, 0, 10, 10) - 1.0).abs() < 1e-12);
        assert!((cos.rate(1.0, 9, 9, 10, 10) - 0.01).abs() < 1e-3);
        assert_eq!(LrSchedule::Constant.rate(0.3, 4, 4, 5, 5), 0.3);
    }
}
