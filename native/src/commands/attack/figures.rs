//! The figures of `hashguard attack`: the examples grid (originals, adversarial images,
//! perturbations and what each retrieves), the Hamming distances to the original codes, and
//! Theorem 1's prediction against the observed distances.

use std::path::Path;

use anyhow::Result;
use hashguard_core::experiments::AttackOutcome;
use hashguard_core::retrieval::HammingIndex;
use hashguard_core::run::OpenedRun;

use crate::plot::{Bins, Data, Grid, PALETTE, Sample, Series, histogram};

/// `examples.png` (per row: original, adversarial, amplified perturbation, top-5 retrieved
/// before and after, framed green when relevant and red otherwise), `hamming_to_original.png`
/// and, for untargeted attacks, `theorem1.png`.
pub fn draw(
    dir: &Path,
    run: &OpenedRun,
    index: &HammingIndex,
    outcome: &AttackOutcome,
    eps: f32,
) -> Result<()> {
    let set = &run.set;
    let shape = set.shape();
    let per = shape.len();
    let campaign = &outcome.campaign;
    let rows = outcome.queries.len().min(6);
    let db_labels = run.labels(&run.split.database);
    let mut grid = Grid::new(rows as u32, 13, shape.height as u32, shape.width as u32, 2);
    for r in 0..rows {
        let (row, x) = (r as u32, set.pixels_f32(&outcome.queries[r..=r]));
        let adv = &campaign.adversarial[r * per..(r + 1) * per];
        grid.put(row, 0, &x, shape, None);
        grid.put(row, 1, adv, shape, None);
        let amplified: Vec<f32> = x
            .iter()
            .zip(adv)
            .map(|(p, q)| 0.5 + (q - p) / (2.0 * eps))
            .collect();
        grid.put(row, 2, &amplified, shape, None);
        for (col0, codes) in [(3u32, &campaign.clean_codes), (8u32, &campaign.adv_codes)] {
            for (j, nb) in index.top_k(codes.code(r), 5).iter().enumerate() {
                let rel = db_labels[nb.index].shares(outcome.query_labels[r]);
                let frame = if rel { [40, 170, 40] } else { [210, 40, 40] };
                let image = run.split.database[nb.index];
                grid.put_image(row, col0 + j as u32, set, image, Some(frame));
            }
        }
    }
    grid.save(&dir.join("examples.png"))?;
    let bits = run.bits();
    let report = &outcome.report;
    let flips: Vec<f64> = campaign
        .stats
        .iter()
        .map(|s| s.hamming_to_original as f64)
        .collect();
    let samples = [Sample {
        name: format!("{} examples", report.method),
        colour: PALETTE[1],
        data: Data::Values(&flips),
    }];
    let half = [(
        format!("K/2 = {} (untargeted success above)", bits / 2),
        bits as f64 / 2.0,
    )];
    histogram(
        &dir.join("hamming_to_original"),
        &format!(
            "{} at eps {:.0}/255: Hamming distance to the original code",
            report.method,
            eps * 255.0
        ),
        "Hamming distance between h(x') and h(x) (bits)",
        Bins::integers(bits),
        &samples,
        None,
        &half,
    )?;
    if let Some(t) = &report.theorem1 {
        let (mu, var) = (t.predicted_mean, t.predicted_var);
        let gauss = Series {
            name: format!("Theorem 1: N({mu:.1}, {var:.1})"),
            colour: PALETTE[7],
            points: (0..=bits)
                .map(|d| {
                    let g = (-(d as f64 - mu).powi(2) / (2.0 * var)).exp()
                        / (2.0 * std::f64::consts::PI * var).sqrt();
                    (d as f64, g)
                })
                .collect(),
        };
        let samples = [Sample {
            name: "adversarial to other classes' codes".into(),
            colour: PALETTE[0],
            data: Data::Counts(&t.histogram),
        }];
        histogram(
            &dir.join("theorem1"),
            "Theorem 1: distances of adversarial codes to other classes' database codes",
            "Hamming distance (bits)",
            Bins::integers(bits),
            &samples,
            Some(&gauss),
            &[],
        )?;
    }
    Ok(())
}
