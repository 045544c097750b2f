//! Which adversarial training a run uses, saved in its `config.json` (absent: standard CSQ):
//! FreeAT (replayed mini-batches), PGD-AT (Madry et al.'s min-max on the hashing loss), CgAT
//! (centre codes) or SAAT (mainstay codes), each with the budget of its inner maximisation, and
//! for CgAT/SAAT the form of the outer alignment term.

use serde::{Deserialize, Serialize};

use crate::attacks::Budget;
use crate::{Error, Result};

/// How CgAT's and SAAT's outer term measures an adversarial code's agreement with its target
/// code `c` (absent from a saved config: the papers' form).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvTerm {
    /// The papers' `−mean(tanh(z_adv) ⊙ c)`; its gradient `1 − tanh² z` vanishes on bits the
    /// inner attack flipped hard.
    #[default]
    Tanh,
    /// `mean(softplus(−2 z_adv ⊙ c))`, the BCE of `(tanh z + 1) / 2` against the code as {0, 1}
    /// targets ([`crate::loss::code_bce`]): a flipped bit keeps a gradient of about 2. Not in
    /// the papers.
    Logit,
}

impl AdvTerm {
    /// Whether this is the papers' form (left out of saved configs).
    pub fn is_tanh(&self) -> bool {
        *self == AdvTerm::Tanh
    }
}

/// Where CgAT's target codes come from (absent from a saved config: the paper's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetSource {
    /// The paper's: centre codes of the training codes B, refreshed with each batch's codes.
    #[default]
    Codes,
    /// The items' CSQ hash centres, fixed (CSQ runs only): an ablation that keeps CgAT's loss
    /// and inner attack but takes the codes' source out of the comparison. Not in the paper.
    Centres,
}

impl TargetSource {
    /// Whether this is the paper's source (left out of saved configs).
    pub fn is_codes(&self) -> bool {
        *self == TargetSource::Codes
    }
}

/// The adversarial part of a training run (`None` in a config = standard training).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum AdvTraining {
    /// FreeAT (Shafahi et al., as adapted in the UMCD appendix): every mini-batch is replayed
    /// `replays` times; each replay trains on x + δ with the hashing loss and, from the same
    /// backward pass, moves δ by eps·sign(∇ₓ L) (clipped to the eps ball). δ carries over from
    /// one mini-batch to the next, so the attack costs no extra passes.
    Free {
        /// L∞ radius, also δ's step (Shafahi et al.: the step equals eps; the paper: 8/255).
        eps: f32,
        /// Replays m of each mini-batch (the paper: 2, 4, 8, 16).
        replays: usize,
    },
    /// PGD-AT (Madry et al.), the reference row of the comparison: PGD pushes f(x_adv) away
    /// from the item's CSQ hash centre (the training loss's target, so the inner attack
    /// maximises CSQ's BCE up to its form), and the model trains on the hashing loss of x_adv
    /// alone. CSQ runs only.
    #[serde(rename = "pgd")]
    PgdAt {
        /// L∞ radius (8/255).
        eps: f32,
        /// PGD step (2/255).
        step: f32,
        /// PGD iterations (7).
        steps: usize,
    },
    /// CgAT: PGD pushes f(x_adv) away from the item's centre code c (centre codes of the
    /// training codes, refreshed with each batch's codes), and the loss adds −mean(f(x_adv) ⊙ c).
    CgAt {
        /// L∞ radius (pixel units; the paper: 8/255).
        eps: f32,
        /// PGD step (2/255).
        step: f32,
        /// PGD iterations (7).
        steps: usize,
        /// Form of the alignment term.
        #[serde(default, skip_serializing_if = "AdvTerm::is_tanh")]
        term: AdvTerm,
        /// Source of the target codes.
        #[serde(default, skip_serializing_if = "TargetSource::is_codes")]
        targets: TargetSource,
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
        /// Form of the alignment term.
        #[serde(default, skip_serializing_if = "AdvTerm::is_tanh")]
        term: AdvTerm,
    },
}

impl AdvTraining {
    /// CgAT at the papers' settings: eps 8/255, step 2/255, 7 steps.
    pub fn cgat() -> Self {
        AdvTraining::CgAt {
            eps: 8.0 / 255.0,
            step: 2.0 / 255.0,
            steps: 7,
            term: AdvTerm::Tanh,
            targets: TargetSource::Codes,
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
            term: AdvTerm::Tanh,
        }
    }

    /// PGD-AT with CgAT's inner budget: eps 8/255, step 2/255, 7 steps.
    pub fn pgd_at() -> Self {
        AdvTraining::PgdAt {
            eps: 8.0 / 255.0,
            step: 2.0 / 255.0,
            steps: 7,
        }
    }

    /// FreeAT with `replays` replays at eps 8/255.
    pub fn free(replays: usize) -> Self {
        AdvTraining::Free {
            eps: 8.0 / 255.0,
            replays,
        }
    }

    /// The same method at L∞ radius `new`; the inner PGD's step scales with it (the papers'
    /// 2/255 at 8/255, i.e. eps/4), FreeAT's step is eps itself.
    pub fn with_eps(mut self, new: f32) -> Self {
        match &mut self {
            AdvTraining::Free { eps, .. } => *eps = new,
            AdvTraining::PgdAt { eps, step, .. }
            | AdvTraining::CgAt { eps, step, .. }
            | AdvTraining::Saat { eps, step, .. } => {
                *step = *step * new / *eps;
                *eps = new;
            }
        }
        self
    }

    /// The same method with CgAT's/SAAT's alignment term in the form `term` (FreeAT has none).
    pub fn with_term(mut self, new: AdvTerm) -> Self {
        if let AdvTraining::CgAt { term, .. } | AdvTraining::Saat { term, .. } = &mut self {
            *term = new;
        }
        self
    }

    /// The same method with CgAT's target codes taken from `new` (the others have no choice).
    pub fn with_targets(mut self, new: TargetSource) -> Self {
        if let AdvTraining::CgAt { targets, .. } = &mut self {
            *targets = new;
        }
        self
    }

    /// Where the target codes come from: CgAT's choice, SAAT's mainstay codes of B
    /// ([`TargetSource::Codes`]); `None` for FreeAT and PGD-AT.
    pub fn targets(&self) -> Option<TargetSource> {
        match *self {
            AdvTraining::Free { .. } | AdvTraining::PgdAt { .. } => None,
            AdvTraining::CgAt { targets, .. } => Some(targets),
            AdvTraining::Saat { .. } => Some(TargetSource::Codes),
        }
    }

    /// CgAT's/SAAT's alignment term form; `None` for FreeAT and PGD-AT.
    pub fn term(&self) -> Option<AdvTerm> {
        match *self {
            AdvTraining::Free { .. } | AdvTraining::PgdAt { .. } => None,
            AdvTraining::CgAt { term, .. } | AdvTraining::Saat { term, .. } => Some(term),
        }
    }

    /// The inner PGD's budget of PGD-AT, CgAT and SAAT (uniform random start, as Madry et al.
    /// and both papers); `None` for FreeAT, whose perturbation is not a separate PGD.
    pub fn inner_pgd(&self) -> Option<Budget> {
        match *self {
            AdvTraining::Free { .. } => None,
            AdvTraining::PgdAt { eps, step, steps }
            | AdvTraining::CgAt {
                eps, step, steps, ..
            }
            | AdvTraining::Saat {
                eps, step, steps, ..
            } => Some(Budget {
                eps,
                step,
                steps,
                random_start: true,
                relax: 1.0,
            }),
        }
    }

    /// The L∞ radius of the training perturbations.
    pub fn eps(&self) -> f32 {
        match *self {
            AdvTraining::Free { eps, .. }
            | AdvTraining::PgdAt { eps, .. }
            | AdvTraining::CgAt { eps, .. }
            | AdvTraining::Saat { eps, .. } => eps,
        }
    }

    /// A short name for tables and logs: `freeat-m8`, `pgd-at`, `cgat`, `saat`, `cgat-logit`,
    /// `saat-logit`, and `cgat-centres` (`cgat-logit-centres`) for CgAT on the hash centres.
    pub fn label(&self) -> String {
        let suffix = match self.term() {
            Some(AdvTerm::Logit) => "-logit",
            _ => "",
        };
        match self {
            AdvTraining::Free { replays, .. } => format!("freeat-m{replays}"),
            AdvTraining::PgdAt { .. } => "pgd-at".into(),
            AdvTraining::CgAt {
                targets: TargetSource::Centres,
                ..
            } => format!("cgat{suffix}-centres"),
            AdvTraining::CgAt { .. } => format!("cgat{suffix}"),
            AdvTraining::Saat { .. } => format!("saat{suffix}"),
        }
    }

    /// Checks the budget and weights.
    pub fn validate(&self) -> Result<()> {
        match self.inner_pgd() {
            Some(budget) => budget.validate()?,
            None => {
                let eps = self.eps();
                if !(eps > 0.0 && eps <= 1.0) {
                    return Err(Error::InvalidArgument(format!(
                        "--eps {eps} must lie in (0, 1] (pixel units, e.g. 8/255)"
                    )));
                }
            }
        }
        if let AdvTraining::Free { replays, .. } = *self
            && !(1..=64).contains(&replays)
        {
            return Err(Error::InvalidArgument(format!(
                "--m {replays}: FreeAT replays each mini-batch 1 to 64 times"
            )));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_eps_scales_the_inner_step_and_keeps_the_rest() {
        let eps = 16.0 / 255.0;
        let cgat = AdvTraining::cgat().with_eps(eps);
        let budget = cgat.inner_pgd().unwrap();
        assert_eq!(budget.eps, eps);
        assert!((budget.step - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(budget.steps, 7);
        match AdvTraining::saat().with_eps(eps) {
            AdvTraining::Saat {
                step, lambda, mu, ..
            } => {
                assert!((step - 4.0 / 255.0).abs() < 1e-7);
                assert_eq!((lambda, mu), (1.0, 1e-4));
            }
            other => panic!("SAAT became {other:?}"),
        }
        assert_eq!(
            AdvTraining::free(4).with_eps(eps),
            AdvTraining::Free { eps, replays: 4 }
        );
        assert_eq!(AdvTraining::free(4).with_eps(eps).label(), "freeat-m4");
    }

    #[test]
    fn the_alignment_term_is_kept_out_of_configs_unless_it_is_the_logit_one() {
        // A config saved before the option existed still reads, as the papers' form.
        let old = r#"{"method":"cgat","eps":0.03137255,"step":0.007843138,"steps":7}"#;
        let cgat: AdvTraining = serde_json::from_str(old).unwrap();
        assert_eq!(cgat.term(), Some(AdvTerm::Tanh));
        assert!(!serde_json::to_string(&cgat).unwrap().contains("term"));
        let logit = AdvTraining::saat()
            .with_term(AdvTerm::Logit)
            .with_eps(16.0 / 255.0);
        let json = serde_json::to_string(&logit).unwrap();
        assert!(json.contains(r#""term":"logit""#), "{json}");
        assert_eq!(serde_json::from_str::<AdvTraining>(&json).unwrap(), logit);
        assert_eq!(logit.label(), "saat-logit");
        assert_eq!(AdvTraining::free(2).with_term(AdvTerm::Logit).term(), None);
    }

    #[test]
    fn the_target_source_is_kept_out_of_configs_unless_it_is_the_centres() {
        let old = r#"{"method":"cgat","eps":0.03137255,"step":0.007843138,"steps":7}"#;
        let cgat: AdvTraining = serde_json::from_str(old).unwrap();
        assert_eq!(cgat.targets(), Some(TargetSource::Codes));
        assert!(!serde_json::to_string(&cgat).unwrap().contains("targets"));
        let centres = cgat
            .with_term(AdvTerm::Logit)
            .with_targets(TargetSource::Centres);
        let json = serde_json::to_string(&centres).unwrap();
        assert!(json.contains(r#""targets":"centres""#), "{json}");
        assert_eq!(serde_json::from_str::<AdvTraining>(&json).unwrap(), centres);
        assert_eq!(centres.label(), "cgat-logit-centres");
        // Only CgAT has the choice; SAAT's are always codes of B, FreeAT and PGD-AT have none.
        let saat = AdvTraining::saat().with_targets(TargetSource::Centres);
        assert_eq!(saat.targets(), Some(TargetSource::Codes));
        assert_eq!(AdvTraining::pgd_at().targets(), None);
    }
}
