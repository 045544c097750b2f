//! The UMCD appendix's Table 3, extended: each adversarially trained model (FreeAT for every m,
//! CgAT, SAAT; fine-tuned from one trained run, optionally several seeds) against PGD of several
//! lengths and DHTA, UMCD's detection of the strongest PGD, and a masking-proof block (PGD with
//! random restarts, DHTA and a transfer attack at several radii, with gradient-masking checks).
//! Typed rows and report, a Markdown rendering with mean ± std over seeds, and the paper's
//! CIFAR-10 rows for comparison; the caller trains the rows' models.

use serde::{Deserialize, Serialize};

use super::detection::DetectionConfig;
use crate::adv_train::{AdvTerm, AdvTraining, Optimizer, TargetSource};
use crate::{Error, Result};

mod evaluate;
mod markdown;
mod report;
mod start;
#[cfg(test)]
mod tests;

pub use evaluate::{cached_row, evaluate_row, transfer_examples};
pub use markdown::{grouped, mean_std, table3_markdown};
pub use report::*;
pub use start::StartEffect;

/// Which adversarially trained rows Table 3 has and how they are evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustnessConfig {
    /// FreeAT's replays m, one row each.
    pub freeat_m: Vec<usize>,
    /// Cost of each FreeAT row in passes over the training set (⌈budget / m⌉ epochs).
    pub freeat_budget: usize,
    /// Epochs of PGD-AT, CgAT and SAAT.
    pub at_epochs: usize,
    /// Whether the table has PGD-AT's reference row (Madry et al. on the hashing loss).
    #[serde(default)]
    pub pgd_at: bool,
    /// A second block of every adversarial row trained from scratch (random weights, the base
    /// run's split) with this budget: FreeAT m ⌈budget / m⌉ epochs, the others `budget`
    /// epochs (`None`: no such block).
    #[serde(default)]
    pub scratch_budget: Option<usize>,
    /// Base learning rate of the adversarial fine-tuning.
    pub at_lr: f64,
    /// L∞ radius of the adversarial training.
    pub at_eps: f32,
    /// PGD lengths evaluated (the last also feeds UMCD).
    pub pgd_steps: Vec<usize>,
    /// CgAT's and SAAT's alignment terms, one row pair each (the papers': tanh).
    #[serde(default = "papers_term")]
    pub at_terms: Vec<AdvTerm>,
    /// Sources of CgAT's target codes, a row each (per term): the paper's centre codes of the
    /// training codes, and the ablation's CSQ hash centres (CSQ base runs only).
    #[serde(default = "papers_targets")]
    pub at_targets: Vec<TargetSource>,
    /// Optimiser of every adversarial row (`None`: Adam).
    #[serde(default)]
    pub at_optimizer: Option<Optimizer>,
    /// Weight decay of every adversarial row (`None`: the base run's).
    #[serde(default)]
    pub at_weight_decay: Option<f64>,
    /// Independent trainings of each adversarial row: seeds base, base + 1, … (the table
    /// reports mean ± std over them).
    #[serde(default = "one")]
    pub at_seeds: usize,
    /// Radii of the masking-proof block: PGD with a random start and `restarts` runs, DHTA, and
    /// PGD crafted on the no-AT model (transfer), each at every radius (empty: no block).
    #[serde(default = "robust_eps")]
    pub robust_eps: Vec<f32>,
    /// Iterations of the masking-proof PGD.
    #[serde(default = "robust_steps")]
    pub robust_steps: usize,
    /// Its runs per image, each from its own uniform random start in the ball.
    #[serde(default = "restarts")]
    pub restarts: usize,
}

fn papers_term() -> Vec<AdvTerm> {
    vec![AdvTerm::Tanh]
}

fn papers_targets() -> Vec<TargetSource> {
    vec![TargetSource::Codes]
}

fn one() -> usize {
    1
}

fn robust_eps() -> Vec<f32> {
    vec![8.0 / 255.0, 16.0 / 255.0]
}

fn robust_steps() -> usize {
    100
}

fn restarts() -> usize {
    5
}

/// How much mAP may rise with a stronger attack (more steps, a larger radius, white-box
/// instead of transfer) before the masking checks call it a violation: half a point, about the
/// spread of mAP over a few hundred queries between runs of the same attack.
pub const MASKING_TOLERANCE: f64 = 0.005;

impl Default for RobustnessConfig {
    fn default() -> Self {
        Self {
            freeat_m: vec![2, 4, 8, 16],
            freeat_budget: 16,
            at_epochs: 3,
            pgd_at: true,
            scratch_budget: None,
            at_lr: 3e-4,
            at_eps: 8.0 / 255.0,
            pgd_steps: vec![8, 40, 100],
            at_terms: papers_term(),
            at_targets: papers_targets(),
            at_optimizer: None,
            at_weight_decay: None,
            at_seeds: 1,
            robust_eps: robust_eps(),
            robust_steps: robust_steps(),
            restarts: restarts(),
        }
    }
}

/// One row of the table: a name and, for adversarially trained rows, how and how long.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `no AT`, `freeat-m8`, `cgat`, … (the seeds of one method share it).
    pub name: String,
    /// How its model is trained (`None`: the base run itself).
    pub training: Option<RowTraining>,
}

impl Row {
    /// A file-name stem unique to the row and its seed: `no-AT`, `cgat`, `cgat-r1`, …
    pub fn stem(&self) -> String {
        stem(&self.name, self.replicate())
    }

    /// Which training of its method (0 for the no-AT row).
    pub fn replicate(&self) -> usize {
        self.training.as_ref().map_or(0, |t| t.replicate)
    }

    /// Whether `selector` picks this row: its name (every seed of the method), its file stem,
    /// or the stem with the seed spelled out (`cgat-r0` for the first seed alone).
    pub fn matches(&self, selector: &str) -> bool {
        selector == self.name
            || selector == self.stem()
            || selector == format!("{}-r{}", stem(&self.name, 0), self.replicate())
    }
}

fn stem(name: &str, replicate: usize) -> String {
    let name = name.replace(" (scratch)", "-scratch").replace(' ', "-");
    if replicate == 0 {
        name
    } else {
        format!("{name}-r{replicate}")
    }
}

impl RobustnessConfig {
    /// Checks the settings, naming the flag to fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.into()));
        if self.freeat_m.iter().any(|&m| m == 0 || m > 64) {
            return bad("--freeat-m values must lie in 1..=64");
        }
        if self.freeat_budget == 0 || self.at_epochs == 0 || self.scratch_budget == Some(0) {
            return bad("--freeat-budget, --at-epochs and --scratch-budget must be at least 1");
        }
        if !(self.at_lr > 0.0 && self.at_lr.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "--at-lr {} must be a positive number",
                self.at_lr
            )));
        }
        if self.pgd_steps.is_empty() || self.pgd_steps.contains(&0) {
            return bad("--pgd-steps needs at least one positive iteration count");
        }
        if self.at_terms.is_empty() {
            return bad("--at-term needs at least one of tanh, logit");
        }
        if self.at_targets.is_empty() {
            return bad("--at-targets needs at least one of codes, centres");
        }
        self.at_optimizer.unwrap_or_default().validate()?;
        if let Some(wd) = self.at_weight_decay
            && !(wd >= 0.0 && wd.is_finite())
        {
            return Err(Error::InvalidArgument(format!(
                "--at-weight-decay {wd} must be a non-negative number"
            )));
        }
        if self.at_seeds == 0 || self.at_seeds > 100 {
            return bad("--at-seeds must lie in 1..=100");
        }
        if self
            .robust_eps
            .iter()
            .any(|&e| !(e > 0.0 && e <= 1.0 && e.is_finite()))
        {
            return bad("--robust-eps values must lie in (0, 1]");
        }
        if self.robust_steps == 0 || self.restarts == 0 {
            return bad("--robust-steps and --robust-restarts must be at least 1");
        }
        Ok(())
    }

    /// The masking-proof radii, sorted and without repeats.
    pub fn radii(&self) -> Vec<f32> {
        let mut r = self.robust_eps.clone();
        r.sort_unstable_by(f32::total_cmp);
        r.dedup();
        r
    }

    /// The PGD lengths, sorted and without repeats.
    pub fn steps(&self) -> Vec<usize> {
        let mut s = self.pgd_steps.clone();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// The table's rows in order: no AT, FreeAT per m, PGD-AT, CgAT (each target source and
    /// term), SAAT (each term), then
    /// the same methods trained from scratch when a scratch budget is set; every adversarial
    /// row once per seed, its seeds adjacent.
    pub fn rows(&self) -> Vec<Row> {
        let methods = |freeat_budget: usize, epochs: usize| {
            let mut m: Vec<(AdvTraining, usize)> = self
                .freeat_m
                .iter()
                .map(|&r| {
                    let a = AdvTraining::free(r).with_eps(self.at_eps);
                    (a, freeat_budget.div_ceil(r))
                })
                .collect();
            if self.pgd_at {
                m.push((AdvTraining::pgd_at().with_eps(self.at_eps), epochs));
            }
            let cgat = self
                .at_targets
                .iter()
                .map(|&t| AdvTraining::cgat().with_targets(t));
            for a in cgat.chain([AdvTraining::saat()]) {
                for &term in &self.at_terms {
                    m.push((a.clone().with_eps(self.at_eps).with_term(term), epochs));
                }
            }
            m
        };
        let mut blocks = vec![(false, methods(self.freeat_budget, self.at_epochs))];
        if let Some(b) = self.scratch_budget {
            blocks.push((true, methods(b, b)));
        }
        let mut rows = vec![Row {
            name: "no AT".into(),
            training: None,
        }];
        for (from_scratch, methods) in blocks {
            for (method, epochs) in methods {
                for replicate in 0..self.at_seeds.max(1) {
                    let label = method.label();
                    rows.push(Row {
                        name: if from_scratch {
                            format!("{label} (scratch)")
                        } else {
                            label
                        },
                        training: Some(RowTraining {
                            method: method.clone(),
                            epochs,
                            lr: self.at_lr,
                            optimizer: self.at_optimizer,
                            weight_decay: self.at_weight_decay,
                            replicate,
                            from_scratch,
                        }),
                    });
                }
            }
        }
        rows
    }
}

/// The evaluation settings a row's figures depend on (a cached row is reused only when equal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowSettings {
    /// Attack budget.
    pub eps: f32,
    /// PGD and DHTA step.
    pub step: f32,
    /// PGD lengths.
    pub pgd_steps: Vec<usize>,
    /// DHTA's length.
    pub dhta_steps: usize,
    /// Query subset.
    pub queries: Option<usize>,
    /// Calibration images.
    pub calibration: usize,
    /// Target FPR.
    pub fpr: f64,
    /// Seed.
    pub seed: u64,
    /// UMCD's k, when fixed.
    pub k: Option<usize>,
    /// UMCD's blur, when fixed.
    pub blur: Option<usize>,
    /// DHTA's voters.
    pub n_t: usize,
    /// Radii of the masking-proof block (empty in rows made before it existed).
    #[serde(default)]
    pub robust_eps: Vec<f32>,
    /// Its PGD's iterations.
    #[serde(default)]
    pub robust_steps: usize,
    /// Its PGD's random restarts.
    #[serde(default)]
    pub restarts: usize,
    /// Fingerprint of the base run's weights ([`crate::run::RunDir::model_fingerprint`]): the
    /// no-AT row's model, the start of the fine-tuned rows and the split of them all (`None` in
    /// rows made before it was recorded, which are never reused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
}

impl RowSettings {
    /// The settings of `detection` with `config`'s PGD lengths and masking-proof block, for
    /// rows built on the base run whose weights have fingerprint `base_model`.
    pub fn new(detection: &DetectionConfig, config: &RobustnessConfig, base_model: String) -> Self {
        Self {
            base_model: Some(base_model),
            eps: detection.eps,
            step: detection.step,
            pgd_steps: config.steps(),
            robust_eps: config.radii(),
            robust_steps: config.robust_steps,
            restarts: config.restarts,
            dhta_steps: detection.steps,
            queries: detection.queries,
            calibration: detection.calibration,
            fpr: detection.fpr,
            seed: detection.seed,
            k: detection.k,
            blur: detection.blur,
            n_t: detection.n_t,
        }
    }
}
