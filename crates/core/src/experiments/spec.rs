//! One attack specification — kind, L∞ budget, steps, restarts, CW's settings and how DHTA's
//! targets are chosen — parsed and validated in one place for the CLI, the web engine and the
//! wasm bindings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::attacks::{AdaptiveWeights, Budget, CwConfig, CwMargin, StepRule};
use crate::{Error, Result};

/// The attacks hashguard runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackKind {
    /// Untargeted PGD minimising f(x')·h(x) / K (the UMCD paper's eq. 4).
    Pgd,
    /// Untargeted PGD on HAG's masked, bit-balanced loss.
    Hag,
    /// Targeted DHTA towards a component-voting anchor of a label the query lacks.
    Dhta,
    /// Untargeted Carlini-Wagner (L2, tanh space, Adam), no L∞ budget.
    Cw,
    /// The white-box attacker who knows UMCD (UMCD §4.3, eq. 13): targeted towards one benign
    /// image's code while keeping C2 up and the blurred copy's code close.
    Adaptive,
    /// CgAT's attack: untargeted PGD away from the centre code of the query's labels
    /// (minimise `f(x')·c / K`), not from the query's own code.
    Centre,
    /// SAAT's attack: untargeted PGD away from the DMFL mainstay code of the query's labels
    /// (the centre code on single-label data).
    Mainstay,
}

impl AttackKind {
    /// Every kind, in the order the CLI lists them.
    pub const ALL: [AttackKind; 7] = [
        Self::Pgd,
        Self::Hag,
        Self::Dhta,
        Self::Cw,
        Self::Adaptive,
        Self::Centre,
        Self::Mainstay,
    ];

    /// The spelling of flags, file names and reports (`pgd`, `hag`, `dhta`, `cw`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pgd => "pgd",
            Self::Hag => "hag",
            Self::Dhta => "dhta",
            Self::Cw => "cw",
            Self::Adaptive => "adaptive",
            Self::Centre => "centre",
            Self::Mainstay => "mainstay",
        }
    }

    /// Whether the attack pushes away from a code of the query's labels (CgAT's centre code,
    /// SAAT's mainstay code) rather than from its own code; it is judged as untargeted.
    pub fn uses_label_codes(self) -> bool {
        matches!(self, Self::Centre | Self::Mainstay)
    }

    /// Whether the attack needs a code per query besides its own: the targeted attacks'
    /// anchors, or the label codes of [`AttackKind::uses_label_codes`].
    pub fn needs_goals(self) -> bool {
        self.is_targeted() || self.uses_label_codes()
    }

    /// Whether the attack pulls codes towards a target (judged against an anchor code).
    pub fn is_targeted(self) -> bool {
        matches!(self, Self::Dhta | Self::Adaptive)
    }

    /// The column heading of the UMCD paper's Table 1 (`Untgt`, `Tgt`, `Untgt CW`).
    pub fn column(self) -> &'static str {
        match self {
            Self::Pgd => "Untgt",
            Self::Hag => "Untgt-HAG",
            Self::Dhta => "Tgt",
            Self::Cw => "Untgt CW",
            Self::Adaptive => "White-box",
            Self::Centre => "Untgt-centre",
            Self::Mainstay => "Untgt-mainstay",
        }
    }

    /// Whether a failed attack hands back the clean image itself (CW keeps an image only once
    /// it succeeds, as Carlini and Wagner's search does); the others return their last or best
    /// perturbed iterate either way.
    pub fn returns_clean_on_failure(self) -> bool {
        self == Self::Cw
    }

    /// Iterations when none are given: 500 Adam steps for CW, 100 signed steps otherwise.
    pub fn default_steps(self) -> usize {
        if self == Self::Cw { 500 } else { 100 }
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AttackKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown attack `{s}`: use pgd, hag, dhta, cw, adaptive, centre or mainstay"
                ))
            })
    }
}

/// CW's settings besides the step count (which is [`AttackSpec::steps`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CwSettings {
    /// Weight c of the hashing term.
    pub c: f32,
    /// Margin κ of the hashing term.
    pub kappa: f32,
    /// Which hashing term: CW's logit margin or the relaxed `f·h/K`.
    pub margin: CwMargin,
    /// Adam learning rate.
    pub lr: f32,
    /// Rounds of per-image binary search over c after the first (0 keeps c fixed).
    pub search_steps: usize,
}

impl Default for CwSettings {
    /// The CLI's defaults: the logit margin, c = 1000, κ = 0.1, Adam lr 0.01 (README, Attacks).
    fn default() -> Self {
        Self {
            c: 1000.0,
            kappa: 0.1,
            margin: CwMargin::Logits,
            lr: 0.01,
            search_steps: 0,
        }
    }
}

/// How a targeted attack picks each query's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSelection {
    /// One label for every query; `None` draws, per query, a label it lacks.
    pub label: Option<usize>,
    /// Database codes of the target label voting for the anchor (DHTA's n_t; 1 takes one
    /// benign image's code, as the white-box attacker of UMCD §4.3 does).
    pub n_t: usize,
}

impl Default for TargetSelection {
    fn default() -> Self {
        Self {
            label: None,
            n_t: 9,
        }
    }
}

/// One attack with every setting that changes its output.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSpec {
    /// Which attack.
    pub kind: AttackKind,
    /// L∞ radius in pixel units (ignored by CW).
    pub eps: f32,
    /// Signed-gradient step of the PGD family, pixel units.
    pub step: f32,
    /// Iterations (CW: Adam steps per search round).
    pub steps: usize,
    /// PGD family: start from a uniform random point of the ball.
    pub random_start: bool,
    /// PGD family: independent runs per image (each from its own random start); every image
    /// keeps the run that did best on the attack's own success measure.
    pub restarts: usize,
    /// Relaxation α: objectives see tanh(α z); 1 is the papers' f(x).
    pub relax: f32,
    /// PGD family: ramp α from 0.1 to `relax` over the steps (DHTA's schedule).
    pub alpha_schedule: bool,
    /// HAG's bit-balance weight β.
    pub hag_beta: f32,
    /// CW's settings.
    pub cw: CwSettings,
    /// Targeted attacks' target selection.
    pub target: TargetSelection,
    /// The white-box attacker's weights of eq. 13 and the blur it anticipates.
    pub adaptive: AdaptiveWeights,
    /// The white-box attacker's steps: fixed PGD (the paper) or APGD with restarts.
    pub rule: StepRule,
}

impl AttackSpec {
    /// `kind` at the papers' settings: eps 8/255, step 1/255, [`AttackKind::default_steps`],
    /// no random start, one run, α = 1, HAG β = 1, CW's logit margin with c = 1000, n_t = 9
    /// (1 for the white-box attacker: one benign image's code, with λ1 = 0.0075, λ2 = 3, a 2x2
    /// blur and fixed steps, Table 4's setting).
    pub fn new(kind: AttackKind) -> Self {
        Self {
            kind,
            eps: 8.0 / 255.0,
            step: 1.0 / 255.0,
            steps: kind.default_steps(),
            random_start: false,
            restarts: 1,
            relax: 1.0,
            alpha_schedule: false,
            hag_beta: 1.0,
            cw: CwSettings::default(),
            target: TargetSelection {
                label: None,
                n_t: if kind == AttackKind::Adaptive { 1 } else { 9 },
            },
            adaptive: AdaptiveWeights {
                lambda1: 0.0075,
                lambda2: 3.0,
                blur: 2,
                lambda4: 0.0,
            },
            rule: StepRule::Fixed,
        }
    }

    /// The same attack with radius `eps`; the step is capped at `eps`.
    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self.step = self.step.min(eps);
        self
    }

    /// The same attack with `steps` iterations.
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// Checks every setting, with messages naming the CLI flag to fix.
    pub fn validate(&self) -> Result<()> {
        self.budget().validate()?;
        let positive = |v: f32| v > 0.0 && v.is_finite();
        for (flag, v) in [("--cw-c", self.cw.c), ("--cw-lr", self.cw.lr)] {
            if self.kind == AttackKind::Cw && !positive(v) {
                return Err(Error::InvalidArgument(format!(
                    "{flag} {v} must be positive (a finite number above 0)"
                )));
            }
        }
        if !(self.cw.kappa >= 0.0 && self.cw.kappa.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "--cw-kappa {} must be a non-negative number",
                self.cw.kappa
            )));
        }
        if !(self.hag_beta >= 0.0 && self.hag_beta.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "--hag-beta {} must be a non-negative number",
                self.hag_beta
            )));
        }
        if self.target.n_t == 0 {
            return Err(Error::InvalidArgument("--n-t must be at least 1".into()));
        }
        if self.restarts == 0 {
            return Err(Error::InvalidArgument(
                "--restarts must be at least 1".into(),
            ));
        }
        if self.restarts > 1 && !self.random_start {
            return Err(Error::InvalidArgument(
                "--restarts above 1 needs --random-start: runs from the clean image repeat each other"
                    .into(),
            ));
        }
        if self.restarts > 1 && matches!(self.kind, AttackKind::Cw | AttackKind::Adaptive) {
            return Err(Error::InvalidArgument(format!(
                "--restarts is for the PGD family: {} has its own ({})",
                self.kind,
                if self.kind == AttackKind::Cw {
                    "--cw-search"
                } else {
                    "APGD's restarts"
                }
            )));
        }
        if self.kind == AttackKind::Adaptive {
            let w = &self.adaptive;
            let ok = |v: f32| v.is_finite() && v >= 0.0;
            if w.blur == 0 || !ok(w.lambda1) || !ok(w.lambda2) {
                return Err(Error::InvalidArgument(format!(
                    "--lambda1 {} and --lambda2 {} must be non-negative numbers and the blur {} at least 1",
                    w.lambda1, w.lambda2, w.blur
                )));
            }
            if self.rule == (StepRule::Apgd { restarts: 0 }) {
                return Err(Error::InvalidArgument(
                    "APGD needs at least one restart".into(),
                ));
            }
        }
        Ok(())
    }

    /// The PGD family's budget.
    pub fn budget(&self) -> Budget {
        Budget {
            eps: self.eps,
            step: self.step,
            steps: self.steps,
            random_start: self.random_start,
            relax: self.relax,
        }
    }

    /// CW's configuration (steps and relaxation from this spec).
    pub fn cw_config(&self) -> CwConfig {
        CwConfig {
            c: self.cw.c,
            kappa: self.cw.kappa,
            margin: self.cw.margin,
            lr: self.cw.lr,
            steps: self.steps,
            relax: self.relax,
            search_steps: self.cw.search_steps,
        }
    }

    /// Iterations the whole attack takes per batch (CW: every search round; PGD: every restart).
    pub fn total_steps(&self) -> usize {
        match (self.kind, self.rule) {
            (AttackKind::Cw, _) => self.steps * (1 + self.cw.search_steps),
            (AttackKind::Adaptive, StepRule::Apgd { restarts }) => self.steps * restarts,
            _ => self.steps * self.restarts,
        }
    }

    /// The white-box attacker's step rule, as `reproduce --whitebox` reports it.
    pub fn rule_label(&self) -> String {
        match self.rule {
            StepRule::Fixed => String::new(),
            StepRule::Apgd { restarts } => format!(" APGD-{}x{restarts}", self.steps),
        }
    }

    /// The attack's name in tables: `Untgt eps 8/255`, or for CW (no L∞ budget) its c and lr.
    pub fn label(&self) -> String {
        match self.kind {
            AttackKind::Cw => format!("{} c {} lr {}", self.kind.column(), self.cw.c, self.cw.lr),
            AttackKind::Adaptive => format!(
                "white-box λ1 {} λ2 {}{}",
                self.adaptive.lambda1,
                self.adaptive.lambda2,
                self.rule_label()
            ),
            k => format!("{} eps {:.0}/255", k.column(), self.eps * 255.0),
        }
    }
}

/// Parses a pixel-unit budget: `0.03` or a fraction such as `8/255`, in (0, 1].
pub fn parse_fraction(s: &str) -> Result<f32> {
    let bad = || Error::InvalidArgument(format!("`{s}` is not a number or fraction"));
    let value = match s.split_once('/') {
        Some((a, b)) => {
            let a: f32 = a.trim().parse().map_err(|_| bad())?;
            let b: f32 = b.trim().parse().map_err(|_| bad())?;
            a / b
        }
        None => s.trim().parse().map_err(|_| bad())?,
    };
    if !(value > 0.0 && value <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "{s} = {value} is outside (0, 1]: budgets are in pixel units, e.g. 8/255"
        )));
    }
    Ok(value)
}

/// Parses CW's hashing term: `logits` or `relaxed`.
pub fn parse_cw_margin(s: &str) -> Result<CwMargin> {
    match s.trim() {
        "logits" => Ok(CwMargin::Logits),
        "relaxed" => Ok(CwMargin::Relaxed),
        other => Err(Error::InvalidArgument(format!(
            "{other} is not a CW margin: use logits or relaxed"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_as_numbers_or_fractions() {
        assert!((parse_fraction("8/255").unwrap() - 8.0 / 255.0).abs() < 1e-9);
        assert_eq!(parse_fraction("0.5").unwrap(), 0.5);
        assert_eq!(parse_fraction("1").unwrap(), 1.0);
        for bad in ["0", "-1/255", "2", "8/0", "x/255", "nan", "inf", ""] {
            assert!(parse_fraction(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in AttackKind::ALL {
            assert_eq!(k.name().parse::<AttackKind>().unwrap(), k);
        }
        let err = "fgsm".parse::<AttackKind>().unwrap_err().to_string();
        assert!(err.contains("cw, adaptive, centre or mainstay"), "{err}");
        assert_eq!(parse_cw_margin("logits").unwrap(), CwMargin::Logits);
        assert!(parse_cw_margin("tanh").is_err());
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let ok = AttackSpec::new(AttackKind::Pgd);
        assert!(ok.validate().is_ok());
        let cases: [(AttackSpec, &str); 6] = [
            (ok.with_steps(0), "--steps"),
            (AttackSpec { restarts: 3, ..ok }, "--random-start"),
            (AttackSpec { restarts: 0, ..ok }, "--restarts"),
            (
                AttackSpec {
                    target: TargetSelection {
                        label: None,
                        n_t: 0,
                    },
                    ..ok
                },
                "--n-t",
            ),
            (
                AttackSpec {
                    cw: CwSettings {
                        lr: f32::NAN,
                        ..ok.cw
                    },
                    ..AttackSpec::new(AttackKind::Cw)
                },
                "--cw-lr",
            ),
            (AttackSpec { eps: 2.0, ..ok }, "--eps"),
        ];
        for (spec, flag) in cases {
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{err} should name {flag}");
        }
    }

    #[test]
    fn labels_and_step_counts() {
        let pgd = AttackSpec::new(AttackKind::Pgd).with_eps(32.0 / 255.0);
        assert_eq!(pgd.label(), "Untgt eps 32/255");
        assert_eq!(pgd.step, 1.0 / 255.0);
        assert_eq!(
            AttackSpec::new(AttackKind::Pgd).with_eps(0.5 / 255.0).step,
            0.5 / 255.0
        );
        let cw = AttackSpec::new(AttackKind::Cw);
        assert_eq!(cw.label(), "Untgt CW c 1000 lr 0.01");
        assert_eq!(cw.steps, 500);
        let searched = AttackSpec {
            cw: CwSettings {
                search_steps: 2,
                ..cw.cw
            },
            ..cw
        };
        assert_eq!(searched.total_steps(), 1500);
    }
}
