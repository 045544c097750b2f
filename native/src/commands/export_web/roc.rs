//! The scores behind the demo's ROC: query images attacked exactly as the page attacks them
//! (the demo's spec, DHTA's anchors voted from the shipped codes), scored by UMCD against the
//! shipped database.

use anyhow::Result;
use hashguard_core::demo::{AttackedScores, demo_spec};
use hashguard_core::detectors::{Detector, ImageBatch, Scores, Umcd};
use hashguard_core::experiments::{AttackKind, Images, attack_goals, run_campaign};
use hashguard_core::model::HashNet;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::progress::bar;

/// The attacks whose UMCD scores the bundle ships: kind, ε in grey levels, steps.
const ROC_ATTACKS: [(AttackKind, f32, usize); 3] = [
    (AttackKind::Pgd, 8.0, 100),
    (AttackKind::Pgd, 32.0, 100),
    (AttackKind::Dhta, 32.0, 100),
];

/// UMCD's scores on `queries` attacked by each of [`ROC_ATTACKS`] exactly as the page attacks
/// (the demo's spec; DHTA's anchors voted from the shipped database's codes), C1 against the
/// shipped database.
pub(super) fn attacked_scores(
    model: &HashNet,
    detector: &Umcd<'_>,
    queries: &hashguard_core::data::ImageSet,
    database: &hashguard_core::data::ImageSet,
    seed: u64,
    device: &burn::prelude::Device,
) -> Result<Vec<AttackedScores>> {
    let shape = queries.shape();
    let all: Vec<usize> = (0..queries.len()).collect();
    let pixels = queries.pixels_f32(&all);
    let total: usize = ROC_ATTACKS.iter().map(|a| a.2).sum();
    let pb = bar((total * queries.len().div_ceil(128)) as u64, "ROC attacks");
    let mut out = Vec::new();
    for (i, &(kind, levels, steps)) in ROC_ATTACKS.iter().enumerate() {
        let mut spec = demo_spec(kind, levels / 255.0, steps, 0);
        // A random other class per query, not the page's one fixed target.
        spec.target.label = None;
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64));
        let targets = attack_goals(
            &spec,
            &queries.labels,
            detector.index.codes(),
            &database.labels,
            &mut rng,
        )?;
        let campaign = run_campaign(
            model,
            Images {
                pixels: &pixels,
                shape,
            },
            &spec,
            targets.as_deref(),
            128,
            seed,
            device,
            || pb.inc(1),
        )?;
        let mut scores = Scores::empty(detector.criteria());
        let per = shape.len();
        for start in (0..queries.len()).step_by(128) {
            let end = (start + 128).min(queries.len());
            scores.extend(detector.score(
                model,
                ImageBatch {
                    pixels: &campaign.adversarial[start * per..end * per],
                    shape,
                    database_positions: None,
                },
                device,
            )?)?;
        }
        let name = format!(
            "{}-{steps}, ε = {levels}/255",
            if kind == AttackKind::Dhta {
                "DHTA"
            } else {
                "PGD"
            }
        );
        out.push(AttackedScores {
            name,
            success_rate: campaign.success_rate(),
            values: scores.values,
        });
    }
    pb.finish_and_clear();
    Ok(out)
}
