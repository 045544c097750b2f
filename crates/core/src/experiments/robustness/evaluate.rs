//! Evaluating one Table 3 row: clean and attacked mAP, UMCD's detection of the strongest PGD,
//! and the masking-proof block (random-restart PGD, DHTA and transfer at every radius).

use std::path::Path;

use burn::prelude::*;

use super::report::*;
use super::{Row, RowSettings};
use crate::experiments::detection::{Crafted, DetectionBench, DetectionConfig};
use crate::experiments::{AttackKind, AttackSpec, Images, Progress};
use crate::metrics::evaluate_retrieval;
use crate::retrieval::HammingIndex;
use crate::run::{OpenedRun, RunDir, fingerprint};
use crate::{Error, Result};

/// The report cached at `path`, when it holds row `row` evaluated with `settings` (which name
/// the base run's weights) and, if `run` (the row's model) is on disk, of exactly its weights.
/// Without the model — a report carried over from an earlier session or machine, the model
/// not kept — the report stands for it: same base weights, same training settings.
pub fn cached_row(path: &Path, row: &Row, run: &Path, settings: &RowSettings) -> Option<RowReport> {
    let cached: RowReport = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if cached.row != row.name || cached.training != row.training || cached.settings != *settings {
        return None;
    }
    let fits = if run.join("model.bpk").exists() {
        // An unreadable model is a miss: its evaluation then says what is wrong with it.
        let weights = RunDir::new(run).model_fingerprint().ok();
        weights.is_some() && cached.model == weights
    } else {
        cached.model.is_some() && row.training.is_some()
    };
    fits.then_some(cached)
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
        model: Some(run.model_fingerprint()?),
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
                    "the transfer examples at eps {:.1}/255 were made from other query images: \
                     every row must share the base run's split and the same --queries/--seed",
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
