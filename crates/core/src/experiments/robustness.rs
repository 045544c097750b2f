//! The UMCD appendix's Table 3, extended: each adversarially trained model (FreeAT for every m,
//! CgAT, SAAT; fine-tuned from one trained run) against PGD of several lengths and DHTA, with
//! UMCD's detection of the strongest PGD. Typed rows and report, a Markdown rendering, and the
//! paper's CIFAR-10 rows for comparison; the caller trains the rows' models.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::detection::{DetectionBench, DetectionConfig, Selection};
use super::{AttackKind, BackendInfo, Progress};
use crate::adv_train::{AdvTerm, AdvTraining, Optimizer};
use crate::retrieval::HammingIndex;
use crate::run::OpenedRun;
use crate::{Error, Result};

/// Which adversarially trained rows Table 3 has and how they are evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustnessConfig {
    /// FreeAT's replays m, one row each.
    pub freeat_m: Vec<usize>,
    /// Cost of each FreeAT row in passes over the training set (⌈budget / m⌉ epochs).
    pub freeat_budget: usize,
    /// Epochs of CgAT and SAAT.
    pub at_epochs: usize,
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
}

fn papers_term() -> Vec<AdvTerm> {
    vec![AdvTerm::Tanh]
}

impl Default for RobustnessConfig {
    fn default() -> Self {
        Self {
            freeat_m: vec![2, 4, 8, 16],
            freeat_budget: 16,
            at_epochs: 3,
            at_lr: 3e-4,
            at_eps: 8.0 / 255.0,
            pgd_steps: vec![8, 40, 100],
            at_terms: papers_term(),
            at_optimizer: None,
        }
    }
}

/// One row of the table: a name and, for adversarially trained rows, how and how long.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `no AT`, `freeat-m8`, `cgat`, …
    pub name: String,
    /// How its model is trained (`None`: the base run itself).
    pub training: Option<RowTraining>,
}

impl RobustnessConfig {
    /// Checks the settings, naming the flag to fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.into()));
        if self.freeat_m.iter().any(|&m| m == 0 || m > 64) {
            return bad("--freeat-m values must lie in 1..=64");
        }
        if self.freeat_budget == 0 || self.at_epochs == 0 {
            return bad("--freeat-budget and --at-epochs must be at least 1");
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
        Ok(())
    }

    /// The PGD lengths, sorted and without repeats.
    pub fn steps(&self) -> Vec<usize> {
        let mut s = self.pgd_steps.clone();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// The table's rows in order: no AT, FreeAT per m, CgAT, SAAT.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![Row {
            name: "no AT".into(),
            training: None,
        }];
        for &m in &self.freeat_m {
            let a = AdvTraining::free(m).with_eps(self.at_eps);
            rows.push(Row {
                name: a.label(),
                training: Some(RowTraining {
                    epochs: self.freeat_budget.div_ceil(m),
                    method: a,
                    lr: self.at_lr,
                    optimizer: self.at_optimizer,
                }),
            });
        }
        for a in [AdvTraining::cgat(), AdvTraining::saat()] {
            for &term in &self.at_terms {
                let a = a.clone().with_eps(self.at_eps).with_term(term);
                rows.push(Row {
                    name: a.label(),
                    training: Some(RowTraining {
                        method: a,
                        epochs: self.at_epochs,
                        lr: self.at_lr,
                        optimizer: self.at_optimizer,
                    }),
                });
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
}

impl RowSettings {
    /// The settings of `detection` with `pgd_steps`.
    pub fn new(detection: &DetectionConfig, pgd_steps: &[usize]) -> Self {
        Self {
            eps: detection.eps,
            step: detection.step,
            pgd_steps: pgd_steps.to_vec(),
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
}

impl RowTraining {
    /// Parameter updates per training mini-batch: FreeAT's replays times its epochs, one per
    /// epoch for CgAT and SAAT (the equal-budget comparison sets these equal).
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
    /// Test queries.
    pub queries: usize,
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
}

/// A row reused from `path` when it was made from `run` with `settings` after `run`'s weights.
pub fn cached_row(path: &Path, run: &Path, settings: &RowSettings) -> Option<RowReport> {
    let row: RowReport = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = modified(path)? >= modified(&run.join("model.bpk"))?;
    (fresh && row.settings == *settings && row.run == run).then_some(row)
}

/// Evaluates the model of `run` as row `row`: clean mAP, mAP under each PGD length, DHTA
/// t-mAP, and UMCD (calibrated on this model's benign images) against the longest PGD.
pub fn evaluate_row(
    row: &Row,
    run: &OpenedRun,
    index: &HammingIndex,
    detection: &DetectionConfig,
    settings: &RowSettings,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<RowReport> {
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
    let train_seconds = std::fs::read(run.dir.file("train.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["train_seconds"].as_f64());
    Ok(RowReport {
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
        queries: bench.queries.len(),
    })
}

/// `table3.md`: the rows, then the paper's CIFAR-10 rows.
pub fn table3_markdown(r: &Table3Report) -> String {
    let f = |x: f64| format!("{x:.3}");
    let pct = |x: f64| format!("{:.1}", 100.0 * x);
    let st = &r.settings;
    let queries = r.rows.first().map_or(0, |x| x.queries);
    let mut s = format!(
        "# Table 3 analogue: adversarial training vs attacks and UMCD\n\n\
         Adversarial training at eps {:.0}/255. mAP over the whole database on {queries} queries; \
         attacks at eps {:.0}/255, step {:.0}/255 (no random start); DHTA-{} t-mAP towards a class the query lacks; UMCD detection rate \
         (%) of PGD-{} examples at a {:.0}% FPR calibrated on each model's own benign images, \
         with the share each criterion flags (C1/C2/C3).\n\n| Training | Benign |",
        r.at_eps * 255.0,
        st.eps * 255.0,
        st.step.min(st.eps) * 255.0,
        st.dhta_steps,
        st.pgd_steps.last().copied().unwrap_or(0),
        st.fpr * 100.0
    );
    for steps in &st.pgd_steps {
        s.push_str(&format!(" PGD-{steps} |"));
    }
    s.push_str(
        " DHTA t-mAP | UMCD detection % | C1 / C2 / C3 % | updates / batch | train s |\n|---|---:|",
    );
    s.push_str(&"---:|".repeat(st.pgd_steps.len() + 5));
    s.push('\n');
    for row in &r.rows {
        s.push_str(&format!("| {} | {} |", row.row, f(row.clean_map)));
        for p in &row.pgd {
            s.push_str(&format!(" {} |", f(p.map)));
        }
        let crit: Vec<String> = row.umcd.criterion_rates.iter().map(|&x| pct(x)).collect();
        s.push_str(&format!(
            " {} | {} | {} | {} | {} |\n",
            f(row.dhta.t_map),
            pct(row.umcd.detection_rate),
            crit.join(" / "),
            row.training
                .as_ref()
                .map_or("–".into(), |t| t.updates_per_batch().to_string()),
            row.train_seconds.map_or("–".into(), |x| format!("{x:.0}"))
        ));
    }
    s.push_str(
        "\nTraining seconds of adversarial rows are the fine-tuning alone (they start from the \
         no-AT run). Figure table3.png (and .svg): one group of bars per row, in table order — \
         benign, then each PGD column.\n\n\
         The paper's CIFAR-10 rows (ResNet-50, FreeAT from scratch), for comparison:\n\n\
         | Training | Benign | PGD-8 | PGD-40 | PGD-100 |\n|---|---:|---:|---:|---:|\n",
    );
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
                "cgat",
                "cgat-logit",
                "saat",
                "saat-logit"
            ]
        );
        // Equal budgets: FreeAT m = 4 for 2 epochs and 8 epochs of CgAT/SAAT both make 8.
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
    }
}
