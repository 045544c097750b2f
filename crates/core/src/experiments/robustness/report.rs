//! Table 3's typed report: per-row PGD, DHTA, UMCD and masking-proof figures, the whole
//! table with its gradient-masking checks and each method's lead over FreeAT at equal updates,
//! and the paper's CIFAR-10 rows.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{MASKING_TOLERANCE, RowSettings, grouped, mean_std};
use crate::adv_train::{AdvTraining, Optimizer};
use crate::experiments::BackendInfo;
use crate::experiments::detection::Selection;

/// mAP under one PGD length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PgdRow {
    /// Iterations.
    pub steps: usize,
    /// mAP of the adversarial queries.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub map: f64,
    /// Share of successful attacks.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub success_rate: f64,
    /// Mean Hamming distance to the clean codes.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub mean_hamming_to_original: f64,
}

/// DHTA against the row's model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DhtaRow {
    /// Iterations.
    pub steps: usize,
    /// t-mAP of the clean queries.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub clean_t_map: f64,
    /// t-mAP of the adversarial queries.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub t_map: f64,
    /// Share of successful attacks.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub success_rate: f64,
}

/// The masking-proof attacks at one radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustPoint {
    /// L∞ radius.
    pub eps: f32,
    /// mAP under PGD from a random start, the best of the restarts per image.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub pgd_map: f64,
    /// Its share of successful attacks.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub pgd_success_rate: f64,
    /// DHTA's t-mAP.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub dhta_t_map: f64,
    /// DHTA's share of successful attacks.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub dhta_success_rate: f64,
    /// mAP of this model on the same PGD's examples crafted on the no-AT model (`None` for
    /// the no-AT row itself).
    pub transfer_map: Option<f64>,
}

/// Adversarial examples crafted on one model, to be scored on the others (transfer).
#[derive(Clone, Debug, PartialEq)]
pub struct TransferExamples {
    /// L∞ radius.
    pub eps: f32,
    /// Fingerprint of the clean query images they were made from.
    pub queries: String,
    /// The images, row-major.
    pub pixels: Vec<f32>,
}

/// A row's report and its masking-proof PGD examples (the no-AT row's feed the transfer
/// attack on the others).
#[derive(Clone, Debug)]
pub struct RowEvaluation {
    /// The row.
    pub report: RowReport,
    /// The masking-proof PGD examples, one set per radius.
    pub examples: Vec<TransferExamples>,
}

/// UMCD against the row's strongest PGD, calibrated on the row's own benign images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UmcdRow {
    /// Which attack (`PGD-100`).
    pub attack: String,
    /// Share flagged.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub detection_rate: f64,
    /// The same over successful attacks.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub detection_rate_successful: f64,
    /// ROC AUC.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub auc: f64,
    /// Share flagged by C1, C2, C3.
    pub criterion_rates: Vec<f64>,
    /// Share of clean queries flagged.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub held_out_benign_fpr: f64,
    /// How k and blur were chosen on this model.
    pub selection: Selection,
}

/// How a row's model was trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowTraining {
    /// The method.
    pub method: AdvTraining,
    /// Its epochs.
    pub epochs: usize,
    /// Its base learning rate.
    pub lr: f64,
    /// Its optimiser (`None`: Adam).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<Optimizer>,
    /// Its weight decay (`None`: the base run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Which training of the method: seed = the base run's seed + `replicate`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replicate: usize,
    /// Trained from random weights on the base run's split instead of fine-tuned from it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_scratch: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RowTraining {
    /// Parameter updates per training mini-batch: FreeAT's replays times its epochs, one per
    /// epoch for PGD-AT, CgAT and SAAT (the equal-budget comparison sets these equal).
    pub fn updates_per_batch(&self) -> usize {
        match self.method {
            AdvTraining::Free { replays, .. } => replays * self.epochs,
            _ => self.epochs,
        }
    }
}

/// One row of Table 3 (`OUT/rows/<row>.json` caches it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowReport {
    /// Its name.
    pub row: String,
    /// The model evaluated.
    pub run: PathBuf,
    /// Fingerprint of its weights ([`crate::run::RunDir::model_fingerprint`]); a cached report
    /// is reused for a model on disk only when they match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The evaluation settings.
    pub settings: RowSettings,
    /// How the model was trained (`None`: the base run).
    #[serde(default)]
    pub training: Option<RowTraining>,
    /// Seconds of training recorded in the run (the fine-tuning alone for AT rows).
    pub train_seconds: Option<f64>,
    /// mAP of the clean queries.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub clean_map: f64,
    /// One entry per PGD length.
    pub pgd: Vec<PgdRow>,
    /// DHTA.
    pub dhta: DhtaRow,
    /// UMCD against the strongest PGD.
    pub umcd: UmcdRow,
    /// The masking-proof block, one point per radius.
    #[serde(default)]
    pub robust: Vec<RobustPoint>,
    /// Test queries.
    pub queries: usize,
}

impl RowReport {
    /// Which training of its method (0 for the no-AT row).
    pub fn replicate(&self) -> usize {
        self.training.as_ref().map_or(0, |t| t.replicate)
    }
}

/// A row of the paper's Table 3 (CIFAR-10, ResNet-50, FreeAT from scratch), for comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaperRow {
    /// Row name.
    pub row: String,
    /// Benign mAP.
    pub clean: f64,
    /// mAP under PGD-8.
    pub pgd8: f64,
    /// Under PGD-40.
    pub pgd40: f64,
    /// Under PGD-100.
    pub pgd100: f64,
}

/// The paper's CIFAR-10 FreeAT rows.
pub fn paper_rows() -> Vec<PaperRow> {
    [
        ("no AT", 0.854, 0.028, 0.030, 0.033),
        ("freeat-m2", 0.889, 0.070, 0.035, 0.035),
        ("freeat-m4", 0.838, 0.222, 0.070, 0.055),
        ("freeat-m8", 0.769, 0.328, 0.146, 0.130),
        ("freeat-m16", 0.683, 0.278, 0.122, 0.114),
    ]
    .into_iter()
    .map(|(row, clean, pgd8, pgd40, pgd100)| PaperRow {
        row: row.into(),
        clean,
        pgd8,
        pgd40,
        pgd100,
    })
    .collect()
}

/// `table3.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table3Report {
    /// Always 3.
    pub table: u8,
    /// The run every AT row was fine-tuned from.
    pub base_run: PathBuf,
    /// Training radius of the AT rows.
    pub at_eps: f32,
    /// Evaluation settings.
    pub settings: RowSettings,
    /// The rows.
    pub rows: Vec<RowReport>,
    /// What computed it.
    pub backend: BackendInfo,
    /// The paper's rows.
    pub paper_cifar10_freeat: Vec<PaperRow>,
    /// The gradient-masking checks, one per row and seed.
    #[serde(default)]
    pub checks: Vec<MaskingChecks>,
    /// Rows of the configured table not evaluated yet ([`super::Row::stem`]s): left out by
    /// `--rows` and found in no earlier report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// Each adversarial method's lead over FreeAT at the same updates per batch and start
    /// ([`Lead::all`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leads: Vec<Lead>,
    /// How each method's lead changes from the fine-tuned block to the from-scratch one
    /// ([`super::StartEffect::all`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start: Vec<super::StartEffect>,
}

/// Whether two L∞ radii are the same (they round-trip through JSON as f32).
pub fn same_radius(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-6
}

/// A difference between two methods' means over their seeds, in mAP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The method's mean minus the reference's.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub mean: f64,
    /// Welch's standard error of that difference, √(s²/n + s²_ref/n_ref) with sample standard
    /// deviations; `None` unless both sides have two or more seeds.
    pub se: Option<f64>,
}

impl Difference {
    /// `values` against `reference`, each over seeds (non-finite values left out).
    pub fn of(values: &[f64], reference: &[f64]) -> Self {
        let finite = |v: &[f64]| v.iter().filter(|x| x.is_finite()).count() as f64;
        let ((m, s), (mr, sr)) = (mean_std(values), mean_std(reference));
        let (n, nr) = (finite(values), finite(reference));
        Self {
            mean: m - mr,
            se: (n >= 2.0 && nr >= 2.0).then(|| (s * s / n + sr * sr / nr).sqrt()),
        }
    }

    /// `self − other` for two independent differences: the means subtract, the standard
    /// errors add in quadrature (`None` unless both have one).
    pub fn minus(&self, other: &Difference) -> Difference {
        Difference {
            mean: self.mean - other.mean,
            se: self.se.zip(other.se).map(|(a, b)| a.hypot(b)),
        }
    }
}

/// A method's lead under the masking-proof PGD at one radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RadiusLead {
    /// L∞ radius.
    pub eps: f32,
    /// Its mAP minus FreeAT's.
    pub pgd: Difference,
}

/// An adversarial method's lead over FreeAT trained with the same parameter updates per batch
/// from the same start (fine-tuned, or from scratch): the equal-budget comparison of Table 3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    /// The method's row.
    pub row: String,
    /// The FreeAT row it is compared with.
    pub reference: String,
    /// Seeds of the method.
    pub seeds: usize,
    /// Seeds of the reference.
    pub reference_seeds: usize,
    /// Clean mAP minus FreeAT's (the accuracy side of the trade-off).
    pub clean: Difference,
    /// Robust mAP minus FreeAT's, at each radius both rows were attacked at.
    pub robust: Vec<RadiusLead>,
}

impl Lead {
    /// Every method's lead in `rows` (seeds of a method are adjacent rows of one name): each
    /// adversarial row that is not FreeAT against the FreeAT row with equal updates per batch and
    /// the same start (the first in table order when several FreeAT rows match), at the radii
    /// both were attacked at by the masking-proof PGD. Rows with no such FreeAT row (unequal
    /// budgets) or no common radius get none.
    pub fn all(rows: &[RowReport]) -> Vec<Self> {
        let groups = grouped(rows);
        let free = |t: &RowTraining| matches!(t.method, AdvTraining::Free { .. });
        groups
            .iter()
            .filter_map(|g| {
                let t = g[0].training.as_ref().filter(|t| !free(t))?;
                let reference = groups.iter().find(|r| {
                    r[0].training.as_ref().is_some_and(|rt| {
                        free(rt)
                            && rt.updates_per_batch() == t.updates_per_batch()
                            && rt.from_scratch == t.from_scratch
                    })
                })?;
                let diff = |f: &dyn Fn(&RowReport) -> f64| {
                    let values: Vec<f64> = g.iter().map(|x| f(x)).collect();
                    let base: Vec<f64> = reference.iter().map(|x| f(x)).collect();
                    Difference::of(&values, &base)
                };
                let at = |x: &RowReport, eps: f32| {
                    x.robust
                        .iter()
                        .find(|p| same_radius(p.eps, eps))
                        .map_or(f64::NAN, |p| p.pgd_map)
                };
                let robust: Vec<RadiusLead> = g[0]
                    .robust
                    .iter()
                    .filter(|p| {
                        reference[0]
                            .robust
                            .iter()
                            .any(|q| same_radius(q.eps, p.eps))
                    })
                    .map(|p| RadiusLead {
                        eps: p.eps,
                        pgd: diff(&|x| at(x, p.eps)),
                    })
                    .collect();
                if robust.is_empty() {
                    return None;
                }
                Some(Self {
                    row: g[0].row.clone(),
                    reference: reference[0].row.clone(),
                    seeds: g.len(),
                    reference_seeds: reference.len(),
                    clean: diff(&|x| x.clean_map),
                    robust,
                })
            })
            .collect()
    }
}

/// Whether a row's robustness could come from gradient masking rather than from the model:
/// each check compares a stronger attack with a weaker one, allowing [`MASKING_TOLERANCE`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskingChecks {
    /// The row.
    pub row: String,
    /// Its seed's replicate.
    pub replicate: usize,
    /// mAP does not rise with more PGD steps (clean, then each PGD length).
    pub steps_monotone: bool,
    /// mAP under the masking-proof PGD does not rise with the radius (clean first); `None`
    /// without the block.
    pub eps_monotone: Option<bool>,
    /// At every radius the transfer attack leaves at least the white-box mAP; `None` for the
    /// no-AT row and without the block.
    pub transfer_weaker: Option<bool>,
    /// mAP under the longest PGD minus under the next longest (`None` with one length): a
    /// change under one point says the attack has converged.
    pub longest_pgd_change: Option<f64>,
    /// mAP under the masking-proof PGD (random restarts) minus under the plain PGD of the same
    /// length at the table's radius (`None` when the lengths or radii differ).
    pub restarts_change: Option<f64>,
}

impl MaskingChecks {
    /// The checks of `row`.
    pub fn of(row: &RowReport) -> Self {
        let tol = MASKING_TOLERANCE;
        let never_rises = |v: &[f64]| v.windows(2).all(|w| w[1] <= w[0] + tol);
        let by_steps: Vec<f64> = std::iter::once(row.clean_map)
            .chain(row.pgd.iter().map(|p| p.map))
            .collect();
        let by_eps: Vec<f64> = std::iter::once(row.clean_map)
            .chain(row.robust.iter().map(|p| p.pgd_map))
            .collect();
        let transfers: Vec<bool> = row
            .robust
            .iter()
            .filter_map(|p| p.transfer_map.map(|t| t >= p.pgd_map - tol))
            .collect();
        let n = row.pgd.len();
        let plain = row
            .pgd
            .iter()
            .find(|p| p.steps == row.settings.robust_steps);
        let random = row
            .robust
            .iter()
            .find(|p| same_radius(p.eps, row.settings.eps));
        Self {
            row: row.row.clone(),
            replicate: row.replicate(),
            steps_monotone: never_rises(&by_steps),
            eps_monotone: (!row.robust.is_empty()).then(|| never_rises(&by_eps)),
            transfer_weaker: (!transfers.is_empty()).then(|| transfers.iter().all(|&t| t)),
            longest_pgd_change: (n >= 2).then(|| row.pgd[n - 1].map - row.pgd[n - 2].map),
            restarts_change: plain.zip(random).map(|(p, r)| r.pgd_map - p.map),
        }
    }
}
