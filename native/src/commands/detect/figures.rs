//! The figures of `detect` and `reproduce`: one ROC chart per attack (every detector and
//! UMCD + C4, held-out benign queries against the attack's examples) and histograms of UMCD's C1, C2 (log10) and C3
//! for the benign queries and each attack, with UMCD's calibrated thresholds marked.

use std::path::Path;

use anyhow::Result;
use hashguard_core::experiments::detection::{Crafted, DetectionBench, WITH_C4};
use hashguard_core::metrics::roc_curve;
use plotters::prelude::SeriesLabelPosition;

use crate::plot::{Axes, Bins, Data, PALETTE, Sample, Series, histogram, lines};

/// UMCD's criteria: file name, axis label, and whether the histogram bins log10 of the value.
const CRITERIA: [(&str, &str, bool); 3] = [
    (
        "c1",
        "C1: mean Hamming distance to the top-k database codes (bits)",
        false,
    ),
    (
        "c2",
        "C2: quantisation loss ||sign f(x) - f(x)||_1 (log10)",
        true,
    ),
    (
        "c3",
        "C3: disagreement of f(x) and f(blur x) (sum over bits)",
        false,
    ),
];

/// ROC charts per attack and C1/C2/C3 histograms (benign vs each attack) into `dir`.
pub fn plots(bench: &DetectionBench<'_>, crafted: &[Crafted], dir: &Path) -> Result<()> {
    for a in crafted {
        let mut series: Vec<Series> = bench
            .detectors
            .iter()
            .zip(&bench.calibrations)
            .zip(&bench.benign_test)
            .zip(&a.scores)
            .enumerate()
            .map(|(i, (((det, cal), benign), adv))| {
                let roc = roc_curve(&cal.combined_score(benign), &cal.combined_score(adv));
                // UMCD, the detector under study, in black; the baselines in colour.
                let colour = if det.name() == "UMCD" {
                    PALETTE[7]
                } else {
                    PALETTE[i % 7]
                };
                Series {
                    name: det.name(),
                    colour,
                    points: roc.iter().map(|p| (p.fpr, p.tpr)).collect(),
                }
            })
            .collect();
        // UMCD with C4 as a fourth criterion, in grey beside UMCD's black.
        if let Some(v) = bench.umcd_variants.iter().find(|v| v.name == WITH_C4) {
            let benign = v
                .calibration
                .combined_score(&bench.variant_scores(v, &bench.benign_test)?);
            let adv = v
                .calibration
                .combined_score(&bench.variant_scores(v, &a.scores)?);
            series.push(Series {
                name: v.name.clone(),
                colour: PALETTE[6],
                points: roc_curve(&benign, &adv)
                    .iter()
                    .map(|p| (p.fpr, p.tpr))
                    .collect(),
            });
        }
        let axes = Axes {
            title: format!("ROC against {} ({} queries)", a.label, a.success.len()),
            x: "false-positive rate (held-out benign queries)".into(),
            y: "true-positive rate (adversarial queries)".into(),
            x_range: 0.0..1.0,
            y_range: 0.0..1.0,
        };
        let stem = dir.join(format!("roc_{}_{:.0}", a.spec.kind, a.spec.eps * 255.0));
        lines(&stem, &axes, &series, true, SeriesLabelPosition::LowerRight)?;
    }
    let u = bench.detectors.len() - 1;
    let cal = &bench.calibrations[u];
    for (c, (name, label, log)) in CRITERIA.into_iter().enumerate() {
        // C2 spans orders of magnitude on confident models: bin its log10.
        let view = |v: &[f32]| -> Vec<f64> {
            v.iter()
                .map(|&x| {
                    let x = x as f64;
                    if log { x.max(1e-30).log10() } else { x }
                })
                .collect()
        };
        let benign = view(&bench.benign_test[u].values[c]);
        let attacks: Vec<Vec<f64>> = crafted
            .iter()
            .map(|a| view(&a.scores[u].values[c]))
            .collect();
        let mut samples = vec![Sample {
            name: "benign queries".into(),
            colour: PALETTE[6],
            data: Data::Values(&benign),
        }];
        for (i, (a, values)) in crafted.iter().zip(&attacks).enumerate() {
            samples.push(Sample {
                name: a.label.clone(),
                colour: PALETTE[i % 6],
                data: Data::Values(values),
            });
        }
        let t = cal.thresholds[c] as f64;
        let side = if c == 1 { "≤" } else { "≥" };
        let threshold = if log { t.max(1e-30).log10() } else { t };
        let at = [threshold];
        let sets: Vec<&[f64]> = std::iter::once(&benign[..])
            .chain(attacks.iter().map(Vec::as_slice))
            .chain([&at[..]])
            .collect();
        let marks = [(
            format!(
                "UMCD threshold (flags {side}), FPR {:.0}%",
                100.0 * cal.target_fpr
            ),
            threshold,
        )];
        let title = format!(
            "UMCD {}: benign queries vs attacks (k = {}, blur {})",
            name.to_uppercase(),
            bench.umcd.k,
            bench.umcd.blur
        );
        let stem = dir.join(format!("hist_{name}"));
        histogram(
            &stem,
            &title,
            label,
            Bins::spanning(&sets, 40),
            &samples,
            None,
            &marks,
        )?;
    }
    Ok(())
}
