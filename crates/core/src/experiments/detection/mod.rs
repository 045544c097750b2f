//! The detection protocol of the UMCD paper (Tables 1 and 2): detectors calibrated on benign
//! database images at a fixed FPR, attacks crafted on the queries, miss rates, AUC and TPR at
//! fixed FPRs per detector and attack, and the criteria ablation — typed config in, typed report
//! out, with Markdown renderings.

mod bench;
mod protocols;
mod tables;

use std::path::PathBuf;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use bench::{DetectionBench, TWO_SIDED, UmcdVariant, VariantColumns, WITH_C4};
pub use protocols::{SUPERVISED_LID, SupervisedLid};
pub use tables::{paper_protocol_markdown, table1_markdown, table1_miss_rates, table2_markdown};

use super::{AttackKind, AttackSpec, BackendInfo, CwSettings, Progress, TargetSelection};
use crate::attacks::CwMargin;
use crate::detectors::{
    BlurChoice, BudgetRule, C1Budget, Calibration, ConsistencyConfig, Criterion, KChoice, Scores,
    UmcdConfig,
};
use crate::retrieval::HammingIndex;
use crate::run::OpenedRun;
use crate::{Error, Result};

/// Settings of the detection experiments (the `detect`/`reproduce` flags).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionConfig {
    /// Test on this many queries (a seeded subset); `None`: all of the split's queries.
    pub queries: Option<usize>,
    /// Benign calibration images drawn from the database (disjoint from the queries).
    pub calibration: usize,
    /// Target false-positive rate of every detector.
    pub fpr: f64,
    /// UMCD's k; `None`: chosen on the calibration set.
    pub k: Option<usize>,
    /// UMCD's blur window; `None`: chosen on the calibration set.
    pub blur: Option<usize>,
    /// Largest drop of benign precision@100 the chosen blur may cost.
    pub blur_tolerance: f64,
    /// UMCD: shares of the FPR budget for C1, C2, C3; `None`: equal.
    pub fpr_weights: Option<Vec<f64>>,
    /// UMCD: how the FPR budget is shared (the paper's shares, or a threshold just above a
    /// benign point mass first).
    #[serde(default)]
    pub budget: BudgetRule,
    /// C4 (retrieval consistency, scored alone and as `UMCD + C4`): neighbours, how many of
    /// them are averaged, the thumbnail grid.
    #[serde(default)]
    pub c4: ConsistencyConfig,
    /// LID: neighbours per estimate.
    pub lid_k: usize,
    /// LID: benign reference batch (database images, disjoint from calibration).
    pub lid_reference: usize,
    /// L∞ budget of PGD and DHTA.
    pub eps: f32,
    /// Their step.
    pub step: f32,
    /// Their iterations.
    pub steps: usize,
    /// CW's Adam steps.
    pub cw_steps: usize,
    /// CW's weight c.
    pub cw_c: f32,
    /// CW's hashing term.
    pub cw_margin: CwMargin,
    /// CW's Adam learning rate.
    pub cw_lr: f32,
    /// DHTA's anchor voters.
    pub n_t: usize,
    /// Images per batch (attacks and benign scoring).
    pub batch_size: usize,
    /// Seed of the calibration draw, query subset, targets and random starts.
    pub seed: u64,
    /// Cache crafted examples in this directory (and reuse them).
    pub examples: Option<PathBuf>,
}

impl Default for DetectionConfig {
    /// The paper's settings (UMCD §4): 2,000 calibration images, FPR 5 %, eps 8/255, step
    /// 1/255, 100 steps; CW-500 with c = 1000 and lr 0.01; k and blur chosen on benign data.
    fn default() -> Self {
        Self {
            queries: None,
            calibration: 2000,
            fpr: 0.05,
            k: None,
            blur: None,
            blur_tolerance: 0.02,
            fpr_weights: None,
            budget: BudgetRule::Shares,
            c4: ConsistencyConfig::default(),
            lid_k: 20,
            lid_reference: 100,
            eps: 8.0 / 255.0,
            step: 1.0 / 255.0,
            steps: 100,
            cw_steps: 500,
            cw_c: 1000.0,
            cw_margin: CwMargin::Logits,
            cw_lr: 0.01,
            n_t: 9,
            batch_size: 64,
            seed: 0,
            examples: None,
        }
    }
}

impl DetectionConfig {
    /// Where UMCD's calibration will put C1's threshold: its normalised weight's share of the
    /// FPR under the configured budget rule (what the k rule reads).
    pub fn c1_budget(&self) -> C1Budget {
        let share = match &self.fpr_weights {
            Some(w) if w.len() == 3 && w.iter().all(|x| *x > 0.0) => w[0] / w.iter().sum::<f64>(),
            _ => 1.0 / 3.0,
        };
        C1Budget {
            fpr: self.fpr,
            share,
            rule: self.budget,
        }
    }

    /// Checks the settings that need no run (the rest is checked against the run).
    pub fn validate(&self) -> Result<()> {
        if !(self.fpr > 0.0 && self.fpr < 0.5) {
            return Err(Error::InvalidArgument(format!(
                "--fpr {} must lie in (0, 0.5)",
                self.fpr
            )));
        }
        if self.batch_size == 0 || self.steps == 0 || self.cw_steps == 0 {
            return Err(Error::InvalidArgument(
                "--batch-size, --steps and --cw-steps must be at least 1".into(),
            ));
        }
        if !(self.blur_tolerance >= 0.0 && self.blur_tolerance.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "--blur-tolerance {} must be a non-negative number",
                self.blur_tolerance
            )));
        }
        if self.blur == Some(0) {
            return Err(Error::InvalidArgument("--blur must be at least 1".into()));
        }
        self.c4.validate()?;
        for kind in AttackKind::ALL {
            self.attack(kind, self.eps).validate()?;
        }
        Ok(())
    }

    /// Attack `kind` at `eps` with these settings (the paper's: no random start, α = 1,
    /// κ = 0.1, c fixed; the step capped at `eps`).
    pub fn attack(&self, kind: AttackKind, eps: f32) -> AttackSpec {
        let steps = if kind == AttackKind::Cw {
            self.cw_steps
        } else {
            self.steps
        };
        AttackSpec {
            step: self.step,
            cw: CwSettings {
                c: self.cw_c,
                margin: self.cw_margin,
                lr: self.cw_lr,
                ..CwSettings::default()
            },
            target: TargetSelection {
                label: None,
                // The white-box attacker pulls towards one benign image's code (UMCD §4.3).
                n_t: if kind == AttackKind::Adaptive {
                    1
                } else {
                    self.n_t
                },
            },
            ..AttackSpec::new(kind)
        }
        .with_eps(eps)
        .with_steps(steps)
    }
}

/// One attack's adversarial examples on the test queries.
pub struct Crafted {
    /// Its name in the tables (e.g. `Untgt eps 8/255`).
    pub label: String,
    /// The attack.
    pub spec: AttackSpec,
    /// Adversarial images, row-major.
    pub pixels: Vec<f32>,
    /// Per query: whether the attack succeeded.
    pub success: Vec<bool>,
    /// mAP (t-mAP for targeted attacks) of the clean queries.
    pub clean_map: f64,
    /// The same for the adversarial queries.
    pub adv_map: f64,
    /// Mean Hamming distance of adversarial to clean codes.
    pub mean_hamming_to_original: f64,
    /// Every detector's scores of `pixels`, set by [`DetectionBench::evaluate`].
    pub scores: Vec<Scores>,
}

impl Crafted {
    /// Share of successful attacks.
    pub fn success_rate(&self) -> f64 {
        self.success.iter().filter(|&&s| s).count() as f64 / self.success.len().max(1) as f64
    }
}

/// Per detector and attack: the paper's Table 1 metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table1Row {
    /// Detector name.
    pub detector: String,
    /// Attack label.
    pub attack: String,
    /// 1 − TPR at the calibrated thresholds, over every adversarial example.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub miss_rate: f64,
    /// The same over the successful adversarial examples only (NaN when none succeeded).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub miss_rate_successful: f64,
    /// Area under the ROC of held-out benign vs adversarial queries.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub auc: f64,
    /// TPR where that ROC has FPR 0.1.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub tpr_at_fpr_0_1: f64,
    /// TPR where it has FPR 0.2.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub tpr_at_fpr_0_2: f64,
    /// Share of adversarial examples each criterion flags (UMCD: C1, C2, C3).
    pub criterion_rates: Vec<f64>,
    /// For a detector fitted per attack (supervised LID): the share of clean queries it flags,
    /// out of fold. The others' held-out FPR is in their [`DetectorSummary`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_benign_fpr: Option<f64>,
}

/// How UMCD's k and blur were chosen, and on what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The k used.
    pub k: usize,
    /// The k rule, in words.
    pub k_rule: String,
    /// Every candidate k with the figures that chose it (empty when `--k` was given).
    pub k_candidates: Vec<KChoice>,
    /// The blur window used.
    pub blur: usize,
    /// The blur rule, in words.
    pub blur_rule: String,
    /// Every candidate window (empty when `--blur` was given).
    pub blur_candidates: Vec<BlurChoice>,
    /// UMCD's FPR shares for C1, C2, C3.
    pub fpr_weights: Vec<f64>,
    /// Benign calibration images.
    pub calibration_images: usize,
    /// How many of them the model was trained on.
    pub calibration_training_images: usize,
    /// LID's reference images.
    pub lid_reference_images: usize,
}

/// A detector's calibrated thresholds (what [`Calibration`] serialises).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRecord {
    /// The criteria, in column order.
    pub criteria: Vec<Criterion>,
    /// FPR share of each criterion.
    pub weights: Vec<f64>,
    /// The FPR asked for.
    pub target_fpr: f64,
    /// Criterion i flags `weights[i]·gamma` of benign samples.
    pub gamma: f64,
    /// Per criterion, in its own units.
    pub thresholds: Vec<f32>,
    /// Share of the calibration samples the rule flags.
    pub calibration_fpr: f64,
    /// Benign calibration samples.
    pub samples: usize,
    /// How the budget was shared.
    #[serde(default)]
    pub rule: BudgetRule,
    /// Per criterion: whether it fires just above a benign point mass.
    #[serde(default)]
    pub point_mass: Vec<bool>,
    /// Under Fisher's rule, the threshold on the combined statistic (`thresholds` are then
    /// where each criterion alone reaches it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fisher_threshold: Option<f32>,
}

impl From<&Calibration> for CalibrationRecord {
    fn from(c: &Calibration) -> Self {
        Self {
            criteria: c.criteria.clone(),
            weights: c.weights.clone(),
            target_fpr: c.target_fpr,
            gamma: c.gamma,
            thresholds: c.thresholds.clone(),
            calibration_fpr: c.calibration_fpr,
            samples: c.samples,
            rule: c.rule,
            point_mass: c.point_mass.clone(),
            fisher_threshold: c.fisher_threshold,
        }
    }
}

/// A detector in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorSummary {
    /// Its name.
    pub name: String,
    /// Its criteria.
    pub criteria: Vec<Criterion>,
    /// Its calibration.
    pub calibration: CalibrationRecord,
    /// Share of the clean test queries it flags.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub held_out_benign_fpr: f64,
}

/// CW's settings as the detection report records them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CwSummary {
    /// Weight c.
    pub c: f32,
    /// Hashing term.
    pub margin: CwMargin,
    /// Adam learning rate.
    pub lr: f32,
    /// Margin κ.
    pub kappa: f32,
}

/// An attack in the detection report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSummary {
    /// Its label.
    pub attack: String,
    /// Its kind.
    pub method: AttackKind,
    /// L∞ budget.
    pub eps: f32,
    /// Iterations.
    pub steps: usize,
    /// Clean mAP (t-mAP for DHTA).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub clean_map: f64,
    /// Adversarial mAP (t-mAP for DHTA).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub adv_map: f64,
    /// `mAP` or `t-mAP`.
    pub metric: String,
    /// Share of successful attacks.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub success_rate: f64,
    /// Mean Hamming distance of adversarial to clean codes.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub mean_hamming_to_original: f64,
    /// CW's settings.
    pub cw: Option<CwSummary>,
}

impl AttackSummary {
    /// The summary of `a`.
    pub fn of(a: &Crafted) -> Self {
        let s = &a.spec;
        Self {
            attack: a.label.clone(),
            method: s.kind,
            eps: s.eps,
            steps: s.steps,
            clean_map: a.clean_map,
            adv_map: a.adv_map,
            metric: if s.kind.is_targeted() { "t-mAP" } else { "mAP" }.into(),
            success_rate: a.success_rate(),
            mean_hamming_to_original: a.mean_hamming_to_original,
            cw: (s.kind == AttackKind::Cw).then_some(CwSummary {
                c: s.cw.c,
                margin: s.cw.margin,
                lr: s.cw.lr,
                kappa: s.cw.kappa,
            }),
        }
    }
}

/// One attack's detection rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRate {
    /// Attack label.
    pub attack: String,
    /// Share flagged.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub rate: f64,
}

/// A row of Table 2: a combination of UMCD's criteria, calibrated afresh.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table2Row {
    /// Which criteria (`C1 + C3`, …).
    pub criteria: String,
    /// Detection rate per attack.
    pub detection_rates: Vec<TableRate>,
    /// Share of clean test queries flagged.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub held_out_benign_fpr: f64,
}

/// An attack of Table 2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table2Attack {
    /// Attack label.
    pub attack: String,
    /// Its kind.
    pub method: AttackKind,
    /// Its L∞ budget.
    pub eps: f32,
    /// Clean mAP (t-mAP).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub clean_map: f64,
    /// Adversarial mAP (t-mAP).
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub adv_map: f64,
    /// Share of successful attacks.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub success_rate: f64,
}

/// The UMCD paper's Table 2: the criteria ablation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table2 {
    /// L∞ budget of its attacks.
    pub eps: f32,
    /// One row per combination.
    pub rows: Vec<Table2Row>,
    /// Its attacks.
    pub attacks: Vec<Table2Attack>,
}

/// The report of `detect` (`RUN/detect.json`) and `reproduce` (`OUT/report.json`, with Table 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionReport {
    /// The run under test.
    pub run: PathBuf,
    /// Its data set.
    pub dataset: String,
    /// Code length K.
    pub bits: usize,
    /// Test queries.
    pub queries: usize,
    /// Target FPR.
    pub target_fpr: f64,
    /// UMCD's k and blur.
    pub umcd: UmcdConfig,
    /// How they were chosen.
    pub selection: Selection,
    /// Every detector.
    pub detectors: Vec<DetectorSummary>,
    /// Every attack.
    pub attacks: Vec<AttackSummary>,
    /// Table 1: one row per detector and attack.
    pub table1: Vec<Table1Row>,
    /// The paper's protocol: each baseline and each UMCD criterion alone at the target FPR,
    /// then UMCD's union of them with its measured held-out FPR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paper_protocol: Vec<Table2Row>,
    /// What computed it.
    pub backend: BackendInfo,
    /// Table 2 (`reproduce` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table2: Option<Table2>,
}

/// Whether each query's attack succeeded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSuccess {
    /// Attack label.
    pub attack: String,
    /// Per query.
    pub success: Vec<bool>,
}

/// One attack's scores under one detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackScores {
    /// Attack label.
    pub attack: String,
    /// Per criterion, per query (`None` when not scored).
    pub values: Option<Vec<Vec<f32>>>,
}

/// One detector's every score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreDump {
    /// Detector name.
    pub name: String,
    /// Its criteria.
    pub criteria: Vec<Criterion>,
    /// Per criterion, the benign calibration images' values.
    pub benign_calibration: Vec<Vec<f32>>,
    /// Per criterion, the clean test queries' values.
    pub benign_test: Vec<Vec<f32>>,
    /// Per attack.
    pub attacks: Vec<AttackScores>,
}

/// `scores.json`: every sample's scores, for analysis outside hashguard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoresDump {
    /// Each attack's success flags.
    pub attacks: Vec<AttackSuccess>,
    /// Each detector's scores.
    pub detectors: Vec<ScoreDump>,
}

/// A finished detection experiment: the report, and the bench and examples behind it (for
/// figures and `scores.json`).
pub struct DetectionOutcome<'a> {
    /// The report.
    pub report: DetectionReport,
    /// The calibrated bench.
    pub bench: DetectionBench<'a>,
    /// Table 1's attacks, scored.
    pub crafted: Vec<Crafted>,
}

/// `hashguard detect`: every detector calibrated on `run`'s benign database images and tested
/// against `attacks` at `config.eps` on its queries.
pub fn run_detection<'a>(
    run: &'a OpenedRun,
    index: &'a HammingIndex,
    config: &DetectionConfig,
    attacks: &[AttackKind],
    backend: BackendInfo,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<DetectionOutcome<'a>> {
    let bench = DetectionBench::prepare(run, index, config, None, device, progress)?;
    let mut table1 = Vec::new();
    let mut crafted = Vec::new();
    for &kind in attacks {
        let mut cr = bench.craft(&config.attack(kind, config.eps), progress)?;
        table1.extend(bench.evaluate(&mut cr, progress)?);
        crafted.push(cr);
    }
    let report = DetectionReport {
        run: run.dir.root().to_path_buf(),
        dataset: run.config.data.dataset.clone(),
        bits: run.bits(),
        queries: bench.queries.len(),
        target_fpr: config.fpr,
        umcd: bench.umcd,
        selection: bench.selection.clone(),
        detectors: bench.detector_summaries()?,
        attacks: bench.attack_summaries(&crafted),
        table1,
        paper_protocol: bench.paper_protocol(&crafted)?,
        backend,
        table2: None,
    };
    Ok(DetectionOutcome {
        report,
        bench,
        crafted,
    })
}

/// The UMCD paper's Tables 1 and 2: [`run_detection`] against PGD, DHTA and CW, then UMCD's
/// criteria alone and together against PGD and DHTA at `ablation_eps` (Table 1's examples when
/// it ran at that budget).
pub fn run_tables_1_2<'a>(
    run: &'a OpenedRun,
    index: &'a HammingIndex,
    config: &DetectionConfig,
    ablation_eps: f32,
    backend: BackendInfo,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<DetectionOutcome<'a>> {
    let attacks = [AttackKind::Pgd, AttackKind::Dhta, AttackKind::Cw];
    let mut out = run_detection(run, index, config, &attacks, backend, device, progress)?;
    let bench = &out.bench;
    let mut fresh = Vec::new();
    if ablation_eps != config.eps {
        for kind in [AttackKind::Pgd, AttackKind::Dhta] {
            fresh.push(bench.craft(&config.attack(kind, ablation_eps), progress)?);
        }
    }
    let ablation_attacks: &[Crafted] = if fresh.is_empty() {
        &out.crafted[..2]
    } else {
        &fresh
    };
    let rows = bench.ablation(ablation_attacks, progress)?;
    out.report.table2 = Some(Table2 {
        eps: ablation_eps,
        rows,
        attacks: ablation_attacks
            .iter()
            .map(|a| Table2Attack {
                attack: a.label.clone(),
                method: a.spec.kind,
                eps: a.spec.eps,
                clean_map: a.clean_map,
                adv_map: a.adv_map,
                success_rate: a.success_rate(),
            })
            .collect(),
    });
    Ok(out)
}
