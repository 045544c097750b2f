//! The UMCD appendix's Table 3, extended: each adversarially trained model (FreeAT for every m,
//! CgAT, SAAT; fine-tuned from one trained run, optionally several seeds) against PGD of several
//! lengths and DHTA, UMCD's detection of the strongest PGD, and a masking-proof block (PGD with
//! random restarts, DHTA and a transfer attack at several radii, with gradient-masking checks).
//! Typed rows and report, a Markdown rendering with mean ± std over seeds, and the paper's
//! CIFAR-10 rows for comparison; the caller trains the rows' models.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::detection::{Crafted, DetectionBench, DetectionConfig, Selection};
use super::{AttackKind, AttackSpec, BackendInfo, Progress};
use crate::adv_train::{AdvTerm, AdvTraining, Optimizer};
use crate::experiments::Images;
use crate::metrics::evaluate_retrieval;
use crate::retrieval::HammingIndex;
use crate::run::{OpenedRun, fingerprint};
use crate::{Error, Result};

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
        stem(
            &self.name,
            self.training.as_ref().map_or(0, |t| t.replicate),
        )
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

    /// The table's rows in order: no AT, FreeAT per m, PGD-AT, CgAT, SAAT (each term), then
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
            for a in [AdvTraining::cgat(), AdvTraining::saat()] {
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
}

impl RowSettings {
    /// The settings of `detection` with `config`'s PGD lengths and masking-proof block.
    pub fn new(detection: &DetectionConfig, config: &RobustnessConfig) -> Self {
        Self {
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
            .find(|p| (p.eps - row.settings.eps).abs() < 1e-6);
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

/// A row reused from `path` when it was made from `run` with `settings` after `run`'s weights.
pub fn cached_row(path: &Path, run: &Path, settings: &RowSettings) -> Option<RowReport> {
    let row: RowReport = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = modified(path)? >= modified(&run.join("model.bpk"))?;
    (fresh && row.settings == *settings && row.run == run).then_some(row)
}

/// Evaluates the model of `run` as row `row`: clean mAP, mAP under each PGD length, DHTA
/// t-mAP, UMCD (calibrated on this model's benign images) against the longest PGD, and the
/// masking-proof block — PGD from random starts with restarts, DHTA, and `transfer` (examples
/// of the same PGD crafted on another model, normally the no-AT row's) at every radius.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_row(
    row: &Row,
    run: &OpenedRun,
    index: &HammingIndex,
    detection: &DetectionConfig,
    settings: &RowSettings,
    transfer: &[TransferExamples],
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<RowEvaluation> {
    let bench = DetectionBench::prepare(run, index, detection, Some(&[]), device, progress)?;
    let mut pgd = Vec::new();
    let mut strongest = None;
    let mut clean_map = 0.0;
    for &steps in &settings.pgd_steps {
        let spec = detection
            .attack(AttackKind::Pgd, detection.eps)
            .with_steps(steps);
        let crafted = bench.craft(&spec, progress)?;
        clean_map = crafted.clean_map;
        pgd.push(PgdRow {
            steps,
            map: crafted.adv_map,
            success_rate: crafted.success_rate(),
            mean_hamming_to_original: crafted.mean_hamming_to_original,
        });
        strongest = Some(crafted);
    }
    let mut strongest =
        strongest.ok_or_else(|| Error::InvalidArgument("--pgd-steps is empty".into()))?;
    let outcome = bench
        .evaluate(&mut strongest, progress)?
        .into_iter()
        .find(|r| r.detector == "UMCD")
        .ok_or_else(|| Error::Numeric("UMCD was not scored".into()))?;
    let dhta = bench.craft(&detection.attack(AttackKind::Dhta, detection.eps), progress)?;
    let (robust, examples) = masking_proof(&bench, settings, transfer, &dhta, progress)?;
    let train_seconds = std::fs::read(run.dir.file("train.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["train_seconds"].as_f64());
    let report = RowReport {
        row: row.name.clone(),
        run: run.dir.root().to_path_buf(),
        settings: settings.clone(),
        training: row.training.clone(),
        train_seconds,
        clean_map,
        pgd,
        dhta: DhtaRow {
            steps: detection.steps,
            clean_t_map: dhta.clean_map,
            t_map: dhta.adv_map,
            success_rate: dhta.success_rate(),
        },
        umcd: UmcdRow {
            attack: format!("PGD-{}", settings.pgd_steps.last().copied().unwrap_or(0)),
            detection_rate: 1.0 - outcome.miss_rate,
            detection_rate_successful: 1.0 - outcome.miss_rate_successful,
            auc: outcome.auc,
            criterion_rates: outcome.criterion_rates,
            held_out_benign_fpr: bench.calibrations[0].flag_rate(&bench.benign_test[0]),
            selection: bench.selection.clone(),
        },
        robust,
        queries: bench.queries.len(),
    };
    Ok(RowEvaluation { report, examples })
}

/// The masking-proof PGD at radius `eps`: from a uniform random start, `settings.restarts`
/// runs per image.
fn robust_pgd(bench: &DetectionBench, settings: &RowSettings, eps: f32) -> AttackSpec {
    let mut spec = bench
        .config
        .attack(AttackKind::Pgd, eps)
        .with_steps(settings.robust_steps);
    spec.random_start = true;
    spec.restarts = settings.restarts;
    spec
}

fn queries_fingerprint(bench: &DetectionBench) -> String {
    fingerprint(bench.q_pixels.iter().flat_map(|v| v.to_le_bytes()))
}

/// The masking-proof PGD's examples on `run`'s model at every radius of `settings` — what
/// [`evaluate_row`] returns for the no-AT row, without the rest of its evaluation (for when
/// that row's report is cached; the attacks come from the example cache when it holds them).
pub fn transfer_examples(
    run: &OpenedRun,
    index: &HammingIndex,
    detection: &DetectionConfig,
    settings: &RowSettings,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Vec<TransferExamples>> {
    let bench = DetectionBench::prepare(run, index, detection, Some(&[]), device, progress)?;
    let queries = queries_fingerprint(&bench);
    settings
        .robust_eps
        .iter()
        .map(|&eps| {
            let pgd = bench.craft(&robust_pgd(&bench, settings, eps), progress)?;
            Ok(TransferExamples {
                eps,
                queries: queries.clone(),
                pixels: pgd.pixels,
            })
        })
        .collect()
}

/// The masking-proof block of one row: at every radius of `settings`, PGD from a uniform
/// random start keeping each image's best of the restarts, DHTA (`dhta`, already crafted at
/// the table's radius, is reused there), and this model's mAP on `transfer`'s examples.
fn masking_proof(
    bench: &DetectionBench,
    settings: &RowSettings,
    transfer: &[TransferExamples],
    dhta: &Crafted,
    progress: &mut dyn Progress,
) -> Result<(Vec<RobustPoint>, Vec<TransferExamples>)> {
    let queries = queries_fingerprint(bench);
    let (mut points, mut examples) = (Vec::new(), Vec::new());
    for &eps in &settings.robust_eps {
        let pgd = bench.craft(&robust_pgd(bench, settings, eps), progress)?;
        let (dhta_t_map, dhta_success_rate) = if (eps - dhta.spec.eps).abs() < 1e-7 {
            (dhta.adv_map, dhta.success_rate())
        } else {
            let d = bench.craft(&bench.config.attack(AttackKind::Dhta, eps), progress)?;
            (d.adv_map, d.success_rate())
        };
        let transfer_map = match transfer.iter().find(|t| (t.eps - eps).abs() < 1e-7) {
            None => None,
            Some(t) if t.queries != queries || t.pixels.len() != bench.q_pixels.len() => {
                return Err(Error::InvalidArgument(format!(
                    "the transfer examples at eps {:.1}/255 were made from other query images:                      every row must share the base run's split and the same --queries/--seed",
                    eps * 255.0
                )));
            }
            Some(t) => {
                let images = Images {
                    pixels: &t.pixels,
                    shape: bench.shape(),
                };
                let codes = images.codes(bench.model(), bench.config.batch_size, bench.device())?;
                let m = evaluate_retrieval(
                    &codes,
                    &bench.query_labels(),
                    bench.index,
                    &bench.db_labels,
                    &[],
                )?;
                progress.log(&format!(
                    "transfer PGD at eps {:.1}/255 from the no-AT model: mAP {:.4} (white-box {:.4})",
                    eps * 255.0,
                    m.map_all,
                    pgd.adv_map
                ));
                Some(m.map_all)
            }
        };
        points.push(RobustPoint {
            eps,
            pgd_map: pgd.adv_map,
            pgd_success_rate: pgd.success_rate(),
            dhta_t_map,
            dhta_success_rate,
            transfer_map,
        });
        examples.push(TransferExamples {
            eps,
            queries: queries.clone(),
            pixels: pgd.pixels,
        });
    }
    Ok((points, examples))
}

/// Rows of the same method (its seeds), in table order.
pub fn grouped(rows: &[RowReport]) -> Vec<Vec<&RowReport>> {
    let mut groups: Vec<Vec<&RowReport>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|g| g[0].row == row.row) {
            Some(g) => g.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
}

/// Mean and sample standard deviation (0 for one value) of the finite `values`.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// `0.717` for one seed, `0.717 ± 0.004` for several; `scale` 100 renders percentages.
fn cell(values: &[f64], scale: f64, decimals: usize) -> String {
    let (m, sd) = mean_std(values);
    if m.is_nan() {
        "–".into()
    } else if values.len() > 1 {
        format!("{:.decimals$} ± {:.decimals$}", m * scale, sd * scale)
    } else {
        format!("{:.decimals$}", m * scale)
    }
}

/// `yes`, `no`, or `no (1 of 3)` over a row's seeds; `–` when not measured.
fn verdict(values: &[Option<bool>]) -> String {
    let v: Vec<bool> = values.iter().flatten().copied().collect();
    let failed = v.iter().filter(|&&b| !b).count();
    match (v.len(), failed) {
        (0, _) => "–".into(),
        (_, 0) => "yes".into(),
        (n, f) if n == f => "no".into(),
        (n, f) => format!("no ({f} of {n})"),
    }
}

/// `table3.md`: the rows (mean ± std over seeds), the masking-proof block and its checks, then
/// the paper's CIFAR-10 rows.
pub fn table3_markdown(r: &Table3Report) -> String {
    let st = &r.settings;
    let queries = r.rows.first().map_or(0, |x| x.queries);
    let groups = grouped(&r.rows);
    let seeds = groups.iter().map(|g| g.len()).max().unwrap_or(1);
    let col = |g: &[&RowReport], f: &dyn Fn(&RowReport) -> f64| {
        let v: Vec<f64> = g.iter().map(|x| f(x)).collect();
        cell(&v, 1.0, 3)
    };
    let mut s = format!(
        "# Table 3 analogue: adversarial training vs attacks and UMCD\n\n\
         Adversarial training at eps {:.0}/255. mAP over the whole database on {queries} queries; \
         attacks at eps {:.0}/255, step {:.0}/255 (no random start); DHTA-{} t-mAP towards a class the query lacks; UMCD detection rate \
         (%) of PGD-{} examples at a {:.0}% FPR calibrated on each model's own benign images, \
         with the share each criterion flags (C1/C2/C3).{}\n\n| Training | Benign |",
        r.at_eps * 255.0,
        st.eps * 255.0,
        st.step.min(st.eps) * 255.0,
        st.dhta_steps,
        st.pgd_steps.last().copied().unwrap_or(0),
        st.fpr * 100.0,
        if seeds > 1 {
            format!(
                " Adversarial rows: mean ± sample std over {seeds} trainings (seeds base … base + \
                 {}); the same queries and attacks evaluate every seed.",
                seeds - 1
            )
        } else {
            String::new()
        }
    );
    for steps in &st.pgd_steps {
        s.push_str(&format!(" PGD-{steps} |"));
    }
    s.push_str(
        " DHTA t-mAP | UMCD detection % | C1 / C2 / C3 % | updates / batch | train s |\n|---|---:|",
    );
    s.push_str(&"---:|".repeat(st.pgd_steps.len() + 5));
    s.push('\n');
    for g in &groups {
        let first = g[0];
        s.push_str(&format!("| {} | {} |", first.row, col(g, &|x| x.clean_map)));
        for i in 0..first.pgd.len() {
            s.push_str(&format!(
                " {} |",
                col(g, &|x| x.pgd.get(i).map_or(f64::NAN, |p| p.map))
            ));
        }
        let crit: Vec<String> = (0..first.umcd.criterion_rates.len())
            .map(|i| {
                let v: Vec<f64> = g
                    .iter()
                    .map(|x| x.umcd.criterion_rates.get(i).copied().unwrap_or(f64::NAN))
                    .collect();
                format!("{:.1}", 100.0 * mean_std(&v).0)
            })
            .collect();
        let secs: Vec<f64> = g.iter().filter_map(|x| x.train_seconds).collect();
        s.push_str(&format!(
            " {} | {} | {} | {} | {} |\n",
            col(g, &|x| x.dhta.t_map),
            cell(
                &g.iter().map(|x| x.umcd.detection_rate).collect::<Vec<_>>(),
                100.0,
                1
            ),
            crit.join(" / "),
            first
                .training
                .as_ref()
                .map_or("–".into(), |t| t.updates_per_batch().to_string()),
            if secs.is_empty() {
                "–".into()
            } else {
                format!("{:.0}", mean_std(&secs).0)
            }
        ));
    }
    s.push_str(
        "\nTraining seconds of adversarial rows are the fine-tuning alone (they start from the \
         no-AT run); rows marked (scratch) start from random weights on the no-AT run's split. Figure table3.png (and .svg): one group of bars per row, in table order — \
         benign, then each PGD column.\n",
    );
    if !st.robust_eps.is_empty() {
        s.push_str(&robust_markdown(r, &groups));
    }
    s.push_str(
        "\nThe paper's CIFAR-10 rows (ResNet-50, FreeAT from scratch), for comparison:\n\n\
         | Training | Benign | PGD-8 | PGD-40 | PGD-100 |\n|---|---:|---:|---:|---:|\n",
    );
    let f = |x: f64| format!("{x:.3}");
    for p in &r.paper_cifar10_freeat {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            p.row,
            f(p.clean),
            f(p.pgd8),
            f(p.pgd40),
            f(p.pgd100)
        ));
    }
    s
}

/// The masking-proof block and the gradient-masking checks of `table3.md`.
fn robust_markdown(r: &Table3Report, groups: &[Vec<&RowReport>]) -> String {
    let st = &r.settings;
    let radius = |e: f32| format!("{:.0}/255", e * 255.0);
    let mut s = format!(
        "\n## Masking-proof evaluation\n\n\
         PGD-{} from a uniform random start in the ball, {} run(s) per image keeping each image's \
         best (lowest-mAP) run; DHTA-{} t-mAP; transfer: this model's mAP on the same PGD's \
         examples crafted on the no-AT model (a transfer attack weaker than the white-box one is \
         expected; the reverse points to gradient masking).\n\n| Training | Benign |",
        st.robust_steps, st.restarts, st.dhta_steps
    );
    for &e in &st.robust_eps {
        s.push_str(&format!(
            " PGD {0} | DHTA t-mAP {0} | transfer {0} |",
            radius(e)
        ));
    }
    s.push_str("\n|---|---:|");
    s.push_str(&"---:|---:|---:|".repeat(st.robust_eps.len()));
    s.push('\n');
    for g in groups {
        let v = |f: &dyn Fn(&RowReport) -> f64| {
            cell(&g.iter().map(|x| f(x)).collect::<Vec<_>>(), 1.0, 3)
        };
        s.push_str(&format!("| {} | {} |", g[0].row, v(&|x| x.clean_map)));
        for i in 0..st.robust_eps.len() {
            let point = |x: &RowReport| x.robust.get(i).cloned();
            s.push_str(&format!(
                " {} | {} | {} |",
                v(&|x| point(x).map_or(f64::NAN, |p| p.pgd_map)),
                v(&|x| point(x).map_or(f64::NAN, |p| p.dhta_t_map)),
                v(&|x| point(x).and_then(|p| p.transfer_map).unwrap_or(f64::NAN)),
            ));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\nGradient-masking checks (a stronger attack may not raise mAP by more than {:.1} \
         points): mAP falls with PGD's steps (clean, then each length) and with the radius; the \
         transfer attack is weaker than the white-box one; the change from the next-longest to \
         the longest PGD and from the plain PGD-{} to its random-restart form at {} (under one \
         point: converged).\n\n\
         | Training | falls with steps | falls with eps | transfer weaker | longest PGD Δ | restarts Δ |\n\
         |---|---|---|---|---:|---:|\n",
        100.0 * MASKING_TOLERANCE,
        st.robust_steps,
        radius(st.eps)
    ));
    for g in groups {
        let checks: Vec<MaskingChecks> = g
            .iter()
            .map(|x| {
                r.checks
                    .iter()
                    .find(|c| c.row == x.row && c.replicate == x.replicate())
                    .cloned()
                    .unwrap_or_else(|| MaskingChecks::of(x))
            })
            .collect();
        let delta = |f: &dyn Fn(&MaskingChecks) -> Option<f64>| {
            let v: Vec<f64> = checks.iter().filter_map(f).collect();
            if v.is_empty() {
                "–".into()
            } else {
                cell(&v, 100.0, 2)
            }
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            g[0].row,
            verdict(
                &checks
                    .iter()
                    .map(|c| Some(c.steps_monotone))
                    .collect::<Vec<_>>()
            ),
            verdict(&checks.iter().map(|c| c.eps_monotone).collect::<Vec<_>>()),
            verdict(&checks.iter().map(|c| c.transfer_weaker).collect::<Vec<_>>()),
            delta(&|c| c.longest_pgd_change),
            delta(&|c| c.restarts_change),
        ));
    }
    s.push_str("\nΔ in mAP points (negative: the stronger attack found lower mAP).\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cover_each_term_and_count_updates_per_batch() {
        let config = RobustnessConfig {
            freeat_m: vec![4],
            freeat_budget: 8,
            at_epochs: 8,
            at_terms: vec![AdvTerm::Tanh, AdvTerm::Logit],
            at_optimizer: Some(Optimizer::Sgd { momentum: 0.9 }),
            ..RobustnessConfig::default()
        };
        config.validate().unwrap();
        let rows = config.rows();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "no AT",
                "freeat-m4",
                "pgd-at",
                "cgat",
                "cgat-logit",
                "saat",
                "saat-logit"
            ]
        );
        // Equal budgets: FreeAT m = 4 for 2 epochs and 8 epochs of PGD-AT/CgAT/SAAT all make 8.
        for row in &rows[1..] {
            let t = row.training.as_ref().unwrap();
            assert_eq!(t.updates_per_batch(), 8, "{}", row.name);
            assert_eq!(t.optimizer, config.at_optimizer);
        }
        assert!(rows[0].training.is_none());
        // A config saved before the options existed reads as the papers' term and Adam.
        let mut json = serde_json::to_value(RobustnessConfig::default()).unwrap();
        let map = json.as_object_mut().unwrap();
        map.remove("at_terms");
        map.remove("at_optimizer");
        let old: RobustnessConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old, RobustnessConfig::default());
        let empty = RobustnessConfig {
            at_terms: Vec::new(),
            ..RobustnessConfig::default()
        };
        assert!(empty.validate().is_err());
        for bad in [
            RobustnessConfig {
                at_seeds: 0,
                ..RobustnessConfig::default()
            },
            RobustnessConfig {
                robust_eps: vec![f32::NAN],
                ..RobustnessConfig::default()
            },
            RobustnessConfig {
                restarts: 0,
                ..RobustnessConfig::default()
            },
            RobustnessConfig {
                at_weight_decay: Some(-1.0),
                ..RobustnessConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_scratch_budget_adds_a_block_of_every_method_from_random_weights() {
        let config = RobustnessConfig {
            freeat_m: vec![4],
            scratch_budget: Some(8),
            ..RobustnessConfig::default()
        };
        config.validate().unwrap();
        let rows = config.rows();
        let stems: Vec<String> = rows.iter().map(Row::stem).collect();
        assert_eq!(
            stems,
            [
                "no-AT",
                "freeat-m4",
                "pgd-at",
                "cgat",
                "saat",
                "freeat-m4-scratch",
                "pgd-at-scratch",
                "cgat-scratch",
                "saat-scratch"
            ]
        );
        for row in &rows[5..] {
            let t = row.training.as_ref().unwrap();
            assert!(t.from_scratch && row.name.ends_with(" (scratch)"));
            assert_eq!(t.updates_per_batch(), 8, "{}", row.name);
        }
        assert!(!rows[1].training.as_ref().unwrap().from_scratch);
        let zero = RobustnessConfig {
            scratch_budget: Some(0),
            ..RobustnessConfig::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn seeds_make_adjacent_rows_with_their_own_files() {
        let config = RobustnessConfig {
            freeat_m: vec![4],
            at_seeds: 3,
            pgd_at: false,
            ..RobustnessConfig::default()
        };
        let rows = config.rows();
        let stems: Vec<String> = rows.iter().map(Row::stem).collect();
        assert_eq!(
            stems,
            [
                "no-AT",
                "freeat-m4",
                "freeat-m4-r1",
                "freeat-m4-r2",
                "cgat",
                "cgat-r1",
                "cgat-r2",
                "saat",
                "saat-r1",
                "saat-r2"
            ]
        );
        // Seed 0 serialises as before (no key), so earlier rows' files stay comparable.
        let t = rows[1].training.as_ref().unwrap();
        let json = serde_json::to_value(t).unwrap();
        assert!(json.get("replicate").is_none() && json.get("weight_decay").is_none());
        let back: RowTraining = serde_json::from_value(
            serde_json::to_value(rows[2].training.as_ref().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(back.replicate, 1);
    }

    #[test]
    fn masking_checks_flag_each_symptom() {
        // A sound row: mAP falls with steps and radius, transfer is weaker, PGD has converged.
        let sound = report(
            "cgat",
            0,
            &[0.8, 0.75, 0.72],
            &[(0.715, Some(0.78)), (0.6, Some(0.7))],
        );
        let c = MaskingChecks::of(&sound);
        assert!(c.steps_monotone);
        assert_eq!(
            (c.eps_monotone, c.transfer_weaker),
            (Some(true), Some(true))
        );
        assert!((c.longest_pgd_change.unwrap() - (0.72 - 0.75)).abs() < 1e-12);
        // The random-restart PGD-100 at the table's radius against the plain PGD-100.
        assert!((c.restarts_change.unwrap() - (0.715 - 0.72)).abs() < 1e-12);
        // Masking symptoms: longer PGD raises mAP, a larger radius raises it, transfer beats
        // the white-box attack.
        let masked = report(
            "cgat",
            1,
            &[0.8, 0.6, 0.7],
            &[(0.6, Some(0.5)), (0.65, Some(0.7))],
        );
        let m = MaskingChecks::of(&masked);
        assert!(!m.steps_monotone);
        assert_eq!(
            (m.eps_monotone, m.transfer_weaker),
            (Some(false), Some(false))
        );
        // Within the tolerance is not a violation.
        let noisy = report("cgat", 2, &[0.8, 0.7, 0.703], &[(0.7, None), (0.702, None)]);
        let n = MaskingChecks::of(&noisy);
        assert!(n.steps_monotone && n.eps_monotone == Some(true));
        assert_eq!(n.transfer_weaker, None, "no transfer examples, no verdict");

        // Seeds of one method render as one row with mean ± std and a split verdict.
        let base = report("no AT", 0, &[0.83, 0.4, 0.36], &[(0.3, None), (0.1, None)]);
        let rows = vec![base, sound, masked, noisy];
        let table = Table3Report {
            table: 3,
            base_run: PathBuf::from("run"),
            at_eps: 8.0 / 255.0,
            settings: rows[0].settings.clone(),
            checks: rows.iter().map(MaskingChecks::of).collect(),
            rows,
            backend: BackendInfo {
                kind: "cpu".into(),
                adapter: String::new(),
            },
            paper_cifar10_freeat: paper_rows(),
        };
        assert_eq!(grouped(&table.rows).len(), 2);
        let md = table3_markdown(&table);
        assert!(
            md.contains("| cgat | 0.800 ± 0.000 | 0.683 ± 0.076 |"),
            "{md}"
        );
        assert!(md.contains("mean ± sample std over 3 trainings"), "{md}");
        assert!(
            md.contains("| cgat | no (1 of 3) | no (1 of 3) | no (1 of 2) |"),
            "{md}"
        );
        assert!(md.contains("| no AT | yes | yes | – |"), "{md}");
        assert!(
            md.contains("PGD 16/255 | DHTA t-mAP 16/255 | transfer 16/255"),
            "{md}"
        );
        let (m, sd) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
    }

    fn report(
        name: &str,
        replicate: usize,
        maps: &[f64],
        robust: &[(f64, Option<f64>)],
    ) -> RowReport {
        let config = RobustnessConfig {
            pgd_steps: vec![8, 100],
            robust_eps: vec![8.0 / 255.0, 16.0 / 255.0],
            ..RobustnessConfig::default()
        };
        let detection = DetectionConfig::default();
        RowReport {
            row: name.into(),
            run: PathBuf::from(name),
            settings: RowSettings::new(&detection, &config),
            training: (name != "no AT").then(|| RowTraining {
                method: AdvTraining::cgat(),
                epochs: 1,
                lr: 0.01,
                optimizer: None,
                weight_decay: None,
                replicate,
                from_scratch: false,
            }),
            train_seconds: Some(10.0),
            clean_map: maps[0],
            pgd: [8, 100]
                .iter()
                .zip(&maps[1..])
                .map(|(&steps, &map)| PgdRow {
                    steps,
                    map,
                    success_rate: 0.0,
                    mean_hamming_to_original: 0.0,
                })
                .collect(),
            dhta: DhtaRow {
                steps: 100,
                clean_t_map: 0.1,
                t_map: 0.2,
                success_rate: 0.1,
            },
            umcd: UmcdRow {
                attack: "PGD-100".into(),
                detection_rate: 0.5,
                detection_rate_successful: 0.5,
                auc: 0.9,
                criterion_rates: vec![0.1, 0.2, 0.3],
                held_out_benign_fpr: 0.05,
                selection: Selection {
                    k: 10,
                    k_rule: String::new(),
                    k_candidates: Vec::new(),
                    blur: 2,
                    blur_rule: String::new(),
                    blur_candidates: Vec::new(),
                    fpr_weights: vec![1.0 / 3.0; 3],
                    calibration_images: 100,
                    calibration_training_images: 0,
                    lid_reference_images: 100,
                },
            },
            robust: [8.0 / 255.0, 16.0 / 255.0]
                .iter()
                .zip(robust)
                .map(|(&eps, &(pgd_map, transfer_map))| RobustPoint {
                    eps,
                    pgd_map,
                    pgd_success_rate: 0.0,
                    dhta_t_map: 0.3,
                    dhta_success_rate: 0.2,
                    transfer_map,
                })
                .collect(),
            queries: 300,
        }
    }
}
