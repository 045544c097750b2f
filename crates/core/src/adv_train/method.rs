//! Which adversarial training a run uses, saved in its `config.json` (absent: standard CSQ): CgAT
//! (centre codes) or SAAT (mainstay codes), each with its inner PGD maximisation's budget.

use serde::{Deserialize, Serialize};

use crate::attacks::Budget;
use crate::{Error, Result};

/// The adversarial part of a training run (`None` in a config = standard training).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum AdvTraining {
    /// CgAT: PGD pushes f(x_adv) away from the item's centre code c (centre codes of the
    /// training codes, refreshed with each batch's codes), and the loss adds −mean(f(x_adv) ⊙ c).
    CgAt {
        /// L∞ radius (pixel units; the paper: 8/255).
        eps: f32,
        /// PGD step (2/255).
        step: f32,
        /// PGD iterations (7).
        steps: usize,
    },
    /// SAAT: as CgAT with DMFL mainstay codes m, and the loss adds
    /// λ·(−mean(f(x_adv) ⊙ m)) + μ·mean((f(x_adv) − sign f(x_adv))²).
    Saat {
        /// L∞ radius (8/255).
        eps: f32,
        /// PGD step (2/255).
        step: f32,
        /// PGD iterations (7).
        steps: usize,
        /// Weight λ of the alignment term (1).
        lambda: f64,
        /// Weight μ of the quantisation term (1e-4).
        mu: f64,
    },
}

impl AdvTraining {
    /// CgAT at the papers' settings: eps 8/255, step 2/255, 7 steps.
    pub fn cgat() -> Self {
        AdvTraining::CgAt {
            eps: 8.0 / 255.0,
            step: 2.0 / 255.0,
            steps: 7,
        }
    }

    /// SAAT at the papers' settings: eps 8/255, step 2/255, 7 steps, λ 1, μ 1e-4.
    pub fn saat() -> Self {
        AdvTraining::Saat {
            eps: 8.0 / 255.0,
            step: 2.0 / 255.0,
            steps: 7,
            lambda: 1.0,
            mu: 1e-4,
        }
    }

    /// The inner maximisation's budget (uniform random start, as CgAT and SAAT).
    pub fn budget(&self) -> Budget {
        let (AdvTraining::CgAt { eps, step, steps }
        | AdvTraining::Saat {
            eps, step, steps, ..
        }) = *self;
        Budget {
            eps,
            step,
            steps,
            random_start: true,
            relax: 1.0,
        }
    }

    /// Checks the budget and weights.
    pub fn validate(&self) -> Result<()> {
        self.budget().validate()?;
        if let AdvTraining::Saat { lambda, mu, .. } = *self
            && (lambda.is_nan() || lambda < 0.0 || mu.is_nan() || mu < 0.0)
        {
            return Err(Error::InvalidArgument(format!(
                "SAAT weights λ = {lambda}, μ = {mu} must be non-negative"
            )));
        }
        Ok(())
    }
}
