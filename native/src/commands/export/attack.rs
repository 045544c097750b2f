//! Exporting an attack: its report's saved configuration re-run against the same model, checked
//! against the report's figures, and the adversarial images, codes, positions and success flags
//! written as arrays.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use hashguard_core::experiments::{AttackReport, run_attack};
use hashguard_core::retrieval::HammingIndex;
use hashguard_core::run::OpenedRun;
use ndarray::{Array1, ArrayD, IxDyn};
use serde::Serialize;

use super::arrays::Writer;
use crate::backend::Selected;
use crate::progress::bar;

/// The attack an export re-ran, and the figures that matched its report.
#[derive(Debug, Serialize)]
pub(super) struct AttackExport {
    report: PathBuf,
    method: String,
    pub(super) queries: usize,
    success_rate: f64,
    mean_linf: f64,
    mean_hamming_to_original: f64,
}

/// Re-runs the attack of `report` and writes its images, codes, positions and success flags.
pub(super) fn export_attack(
    run: &OpenedRun,
    index: &HammingIndex,
    path: &Path,
    report: &AttackReport,
    w: &mut Writer,
    selected: &Selected,
) -> Result<AttackExport> {
    let config = report.config.as_ref().expect("checked before encoding");
    let batches = report.queries.div_ceil(config.batch_size.max(1));
    let pb = bar(
        (batches * config.spec.total_steps()) as u64,
        "re-running the attack",
    );
    let outcome = run_attack(
        run,
        index,
        config,
        selected.info.clone(),
        &selected.device,
        || pb.inc(1),
    )?;
    pb.finish_and_clear();
    let again = &outcome.report;
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    if again.queries != report.queries
        || !same(again.success_rate, report.success_rate)
        || !same(again.mean_linf, report.mean_linf)
        || !same(
            again.mean_hamming_to_original,
            report.mean_hamming_to_original,
        )
    {
        bail!(
            "re-running the attack of {} gave success {:.4}, mean L∞ {:.6}, mean flips {:.3} \
             against the report's {:.4}, {:.6}, {:.3}: run the export on the backend the report \
             names ({} [{}]) and on the run's original data",
            path.display(),
            again.success_rate,
            again.mean_linf,
            again.mean_hamming_to_original,
            report.success_rate,
            report.mean_linf,
            report.mean_hamming_to_original,
            report.backend.kind,
            report.backend.adapter
        );
    }
    let shape = run.set.shape();
    let n = outcome.queries.len();
    let images = ArrayD::from_shape_vec(
        IxDyn(&[n, shape.channels, shape.height, shape.width]),
        outcome.campaign.adversarial.clone(),
    )?;
    w.array(
        "adversarial_images.npy",
        "float32",
        "adversarial images, N x C x H x W, pixels in [0, 1]",
        &images,
    )?;
    w.codes(
        "adversarial_codes.npy",
        "codes of the adversarial images, K/8 bytes per row",
        &outcome.campaign.adv_codes,
    )?;
    w.positions(
        "adversarial_ids.npy",
        "each adversarial image's query position in the data set",
        &outcome.queries,
    )?;
    let success = Array1::from_iter(outcome.campaign.success.iter().copied());
    w.array(
        "adversarial_success.npy",
        "bool",
        "whether the attack succeeded on each image (the report's rule)",
        &success,
    )?;
    Ok(AttackExport {
        report: path.to_path_buf(),
        method: report.method.to_string(),
        queries: n,
        success_rate: again.success_rate,
        mean_linf: again.mean_linf,
        mean_hamming_to_original: again.mean_hamming_to_original,
    })
}
