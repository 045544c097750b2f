//! How UMCD's free parameters are picked without seeing an attack: k, where Theorem 1 predicts
//! an untargeted adversarial code's top-k neighbours lie against where benign queries' lie; and
//! the blur window, the largest that keeps benign retrieval within a tolerance.

use serde::{Deserialize, Serialize};

use burn::prelude::*;

use super::calibrate::point_mass_edge;
use super::{BudgetRule, ImageBatch, codes_with_transform};
use crate::data::LabelSet;
use crate::filters::{Filter, ImageShape};
use crate::metrics::threshold_at_fpr;
use crate::model::HashNet;
use crate::retrieval::{HammingIndex, PackedCodes};
use crate::{Error, Result};

/// The k values the rule considers (those below the database size).
pub const K_CANDIDATES: [usize; 7] = [1, 5, 10, 50, 100, 500, 1000];

/// Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Theorem 1's prediction of C1 for an untargeted adversarial query: its distances to the
/// `database` codes follow N(K(1−p), Kp(1−p)), p = C / (2(C−1)), so the mean of the k smallest
/// is the mean of that normal's lower k/database tail, `μ − σ φ(z) / q` with `q = k/database`
/// and `z = Φ⁻¹(q)`. Treats the distances as independent, which makes it a pessimistic (low)
/// estimate for small k.
pub fn predicted_adversarial_topk_mean(
    bits: usize,
    classes: usize,
    database: usize,
    k: usize,
) -> f64 {
    let c = classes.max(2) as f64;
    let p = c / (2.0 * (c - 1.0));
    let (mu, sigma) = (
        bits as f64 * (1.0 - p),
        (bits as f64 * p * (1.0 - p)).sqrt(),
    );
    let q = (k as f64 / database.max(1) as f64).min(1.0);
    if q >= 1.0 {
        return mu;
    }
    let z = normal_quantile(q);
    let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    mu - sigma * pdf / q
}

/// Where UMCD's calibration will put C1's threshold, so that the k rule reads the benign C1
/// value the detector will actually use rather than a fixed quantile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct C1Budget {
    /// The detector's target false-positive rate.
    pub fpr: f64,
    /// C1's share of it under [`BudgetRule::Shares`] (its normalised weight: 1/3 when the
    /// three criteria share equally).
    pub share: f64,
    /// The budget rule the detector is calibrated with.
    pub rule: BudgetRule,
}

impl C1Budget {
    /// The paper's rule: the budget split equally over C1, C2 and C3.
    pub fn equal_split(fpr: f64) -> Self {
        Self {
            fpr,
            share: 1.0 / 3.0,
            rule: BudgetRule::Shares,
        }
    }

    /// C1's threshold on these benign values (ascending) and whether it sits just above a
    /// point mass. Under the shares rule it is the threshold flagging `fpr·share` of them (the
    /// least C1 may flag: overlaps with C2/C3 only raise its share); under the point-mass rule
    /// the first value beyond the mass when there is one, as calibration places it; under
    /// Fisher's rule the same value, where C1 starts to add to the combined statistic. Never
    /// infinite: when not one sample may be flagged, the largest benign value.
    fn threshold(&self, sorted: &[f32]) -> (f64, bool) {
        let allowed = (self.fpr * sorted.len() as f64 + 1e-9).floor() as usize;
        if matches!(self.rule, BudgetRule::PointMass | BudgetRule::Fisher)
            && let Some(t) = point_mass_edge(sorted, allowed)
        {
            return (t as f64, true);
        }
        let t = threshold_at_fpr(sorted, self.fpr * self.share);
        let top = sorted.last().copied().unwrap_or(0.0);
        (if t.is_finite() { t } else { top } as f64, false)
    }
}

/// One candidate k and why it was (not) chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KChoice {
    /// Candidate k.
    pub k: usize,
    /// Benign C1 where the budget rule in use would put C1's threshold at this k.
    pub benign_quantile: f64,
    /// Whether that threshold sits just above a benign point mass (the point-mass rule).
    #[serde(default)]
    pub point_mass: bool,
    /// Theorem 1's predicted adversarial C1.
    pub predicted_adversarial: f64,
    /// `predicted_adversarial − benign_quantile`: the larger, the better.
    pub margin: f64,
}

/// Picks k from `candidates` (each with benign calibration C1 values computed at that k): the
/// k with the largest margin between Theorem 1's adversarial C1 and the threshold `budget`
/// would give C1 on the benign values; ties go to the smaller k.
pub fn choose_k(
    candidates: &[(usize, Vec<f32>)],
    bits: usize,
    classes: usize,
    database: usize,
    budget: C1Budget,
) -> (usize, Vec<KChoice>) {
    let table: Vec<KChoice> = candidates
        .iter()
        .map(|(k, benign)| {
            let mut b = benign.clone();
            b.sort_by(f32::total_cmp);
            let (benign_quantile, point_mass) = budget.threshold(&b);
            let predicted_adversarial =
                predicted_adversarial_topk_mean(bits, classes, database, *k);
            KChoice {
                k: *k,
                benign_quantile,
                point_mass,
                predicted_adversarial,
                margin: predicted_adversarial - benign_quantile,
            }
        })
        .collect();
    let best = table
        .iter()
        .fold(None::<KChoice>, |best, c| match best {
            Some(b) if b.margin >= c.margin => Some(b),
            _ => Some(*c),
        })
        .map_or(1, |c| c.k);
    (best, table)
}

/// The one rule for UMCD's k, shared by `detect`, `reproduce` and `export-web`: for each of
/// [`K_CANDIDATES`] below the database size, the C1 of every benign `calibration` code (its own
/// database entry `positions[i]` left out, from one batched search), then [`choose_k`] with
/// Theorem 1's prediction for `classes` classes against C1's threshold under `budget`.
pub fn select_k(
    index: &HammingIndex,
    calibration: &PackedCodes,
    positions: &[Option<usize>],
    classes: usize,
    budget: C1Budget,
) -> Result<(usize, Vec<KChoice>)> {
    if positions.len() != calibration.len() || calibration.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "choosing k needs calibration codes, one database position each ({} codes, {} positions)",
            calibration.len(),
            positions.len()
        )));
    }
    let cands: Vec<usize> = K_CANDIDATES
        .into_iter()
        .filter(|&k| k < index.len())
        .collect();
    let kmax = *cands.last().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "a database of {} codes is too small to choose k",
            index.len()
        ))
    })?;
    let mut per_k = vec![Vec::with_capacity(positions.len()); cands.len()];
    for (found, &own) in index
        .search(calibration, kmax + 1)
        .into_iter()
        .zip(positions)
    {
        let hits: Vec<u32> = found
            .into_iter()
            .filter(|n| Some(n.index) != own)
            .map(|n| n.distance)
            .collect();
        for (j, &k) in cands.iter().enumerate() {
            per_k[j].push(hits[..k].iter().sum::<u32>() as f32 / k as f32);
        }
    }
    let cands: Vec<(usize, Vec<f32>)> = cands.into_iter().zip(per_k).collect();
    Ok(choose_k(
        &cands,
        calibration.bits(),
        classes,
        index.len(),
        budget,
    ))
}

/// The mean-blur windows the blur rule considers.
pub const BLUR_CANDIDATES: [usize; 4] = [2, 3, 4, 5];

/// One candidate blur window and why it was (not) chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlurChoice {
    /// Side of the window.
    pub size: usize,
    /// Mean precision@100 of the blurred calibration images.
    pub precision_at_100: f64,
    /// The same for the unblurred images.
    pub clean_precision_at_100: f64,
    /// Whether the drop is within the tolerance.
    pub within_tolerance: bool,
}

/// The blur rule (Xu et al.'s for squeezers: cost little benign accuracy): the largest of
/// [`BLUR_CANDIDATES`] whose blurred calibration images keep precision@100 within `tolerance`
/// of the unblurred images'; 2 when none does. `calibration` are pixels of database images at
/// `positions` (left out of their own neighbours); `on_candidate` ticks once per window.
#[allow(clippy::too_many_arguments)]
pub fn select_blur(
    model: &HashNet,
    index: &HammingIndex,
    database_labels: &[LabelSet],
    calibration: &[f32],
    positions: &[usize],
    shape: ImageShape,
    tolerance: f64,
    batch_size: usize,
    device: &Device,
    mut on_candidate: impl FnMut(),
) -> Result<(usize, Vec<BlurChoice>)> {
    let mut clean = None;
    let mut table = Vec::new();
    let mut best = 2;
    for size in BLUR_CANDIDATES {
        let (mut f, mut ft) = (Vec::new(), Vec::new());
        for chunk in calibration.chunks(batch_size.max(1) * shape.len()) {
            let batch = ImageBatch {
                pixels: chunk,
                shape,
                database_positions: None,
            };
            let (a, b) = codes_with_transform(model, batch, Filter::MeanBlur { size }, device)?;
            f.extend(a);
            ft.extend(b);
        }
        let base =
            *clean.get_or_insert_with(|| precision_at_100(index, database_labels, &f, positions));
        let blurred = precision_at_100(index, database_labels, &ft, positions);
        let within_tolerance = base - blurred <= tolerance;
        if within_tolerance {
            best = size;
        }
        table.push(BlurChoice {
            size,
            precision_at_100: blurred,
            clean_precision_at_100: base,
            within_tolerance,
        });
        on_candidate();
    }
    Ok((best, table))
}

/// Mean precision@100 of database images' `codes` (each image's own entry left out).
fn precision_at_100(
    index: &HammingIndex,
    database_labels: &[LabelSet],
    codes: &[f32],
    positions: &[usize],
) -> f64 {
    let packed = PackedCodes::from_signs(index.codes().bits(), codes);
    let mut total = 0.0;
    for (hits, &pos) in index.search(&packed, 101).into_iter().zip(positions) {
        let own = database_labels[pos];
        let relevant = hits
            .iter()
            .filter(|n| n.index != pos)
            .take(100)
            .filter(|n| database_labels[n.index].shares(own))
            .count();
        total += relevant as f64 / 100.0;
    }
    total / positions.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_known_values() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959963985).abs() < 1e-6);
        assert!((normal_quantile(0.001) + 3.090232306).abs() < 1e-6);
    }

    #[test]
    fn predicted_topk_mean_falls_below_the_theorem_mean() {
        // 64 bits, many classes: μ = 32, σ = 4.
        let all = predicted_adversarial_topk_mean(64, 1000, 10_000, 10_000);
        assert!((all - 32.0 * (1.0 - 1000.0 / 1998.0) / 0.5).abs() < 0.1);
        // Half the database: mean of the lower half of N(μ, σ²) = μ − σ √(2/π).
        let c = 1_000_000;
        let p = c as f64 / (2.0 * (c as f64 - 1.0));
        let (mu, s) = (64.0 * (1.0 - p), (64.0 * p * (1.0 - p)).sqrt());
        let half = predicted_adversarial_topk_mean(64, c, 1000, 500);
        assert!((half - (mu - s * (2.0 / std::f64::consts::PI).sqrt())).abs() < 1e-6);
        let small = predicted_adversarial_topk_mean(64, 10, 64_000, 10);
        assert!(small < half && small > 0.0);
    }

    #[test]
    fn choose_k_takes_the_widest_margin() {
        // Benign C1 grows with k faster than the prediction does beyond k = 10.
        let cands = vec![
            (1, vec![0.0; 100]),
            (10, vec![1.0; 100]),
            (100, vec![12.0; 100]),
        ];
        let (k, table) = choose_k(&cands, 64, 10, 10_000, C1Budget::equal_split(0.05));
        assert_eq!(table.len(), 3);
        let best = table.iter().map(|c| c.margin).fold(f64::MIN, f64::max);
        assert_eq!(table.iter().find(|c| c.k == k).unwrap().margin, best);
    }

    /// 100 benign C1 values: `zeros` of them 0, then `rest`.
    fn benign(zeros: usize, rest: &[f32]) -> Vec<f32> {
        let mut v = vec![0.0; zeros];
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn choose_k_reads_c1s_own_share_of_the_budget() {
        // The 95th percentile is 0 at both k; C1's share (5 % / 3: one sample of 100) is not.
        let cands = vec![(10, benign(97, &[2.0; 3])), (1000, benign(97, &[15.0; 3]))];
        let (k, table) = choose_k(&cands, 64, 10, 10_000, C1Budget::equal_split(0.05));
        assert_eq!(k, 10, "{table:?}");
        assert!(table[1].benign_quantile >= 15.0 && !table[1].point_mass);
        // Reading the 95th percentile (0 at both k) the wider prediction at k = 1000 would win.
        assert!(table[1].predicted_adversarial > table[0].predicted_adversarial);
    }

    #[test]
    fn choose_k_reads_the_point_mass_edge_under_the_point_mass_rule() {
        let values = benign(96, &[1.0, 2.0, 3.0, 9.0]);
        let cands = vec![(1, values.clone())];
        let mass = C1Budget {
            rule: BudgetRule::PointMass,
            ..C1Budget::equal_split(0.05)
        };
        let (_, table) = choose_k(&cands, 64, 10, 10_000, mass);
        assert_eq!((table[0].benign_quantile, table[0].point_mass), (1.0, true));
        let (_, shares) = choose_k(&cands, 64, 10, 10_000, C1Budget::equal_split(0.05));
        assert_eq!(
            (shares[0].benign_quantile, shares[0].point_mass),
            (9.0, false)
        );
        // Calibration puts C1's threshold at the same value.
        let scores = crate::detectors::Scores {
            criteria: vec![crate::detectors::umcd_criteria()[0].clone()],
            values: vec![values],
        };
        let cal =
            crate::detectors::calibrate_with(&scores, 0.05, None, BudgetRule::PointMass).unwrap();
        assert_eq!(cal.thresholds[0] as f64, table[0].benign_quantile);
        // More than the budget beyond the mass: no point mass, the share's threshold.
        let wide = vec![(1, benign(90, &[1.0; 10]))];
        let (_, table) = choose_k(&wide, 64, 10, 10_000, mass);
        assert!(!table[0].point_mass && table[0].benign_quantile > 1.0);
        // Not one sample in the share: the largest benign value, never infinity.
        let tiny = C1Budget::equal_split(0.01);
        let (_, table) = choose_k(&[(1, benign(50, &[4.0; 50]))], 64, 10, 10_000, tiny);
        assert_eq!(table[0].benign_quantile, 4.0);
    }

    #[test]
    fn select_k_leaves_each_image_out_and_matches_a_naive_c1() {
        use crate::detectors::c1_mean_topk;
        let bits = 16;
        let values: Vec<f32> = (0..600 * bits)
            .map(|i| {
                if (i * 7919 + i / bits * 31) % 5 < 2 {
                    -1.0
                } else {
                    1.0
                }
            })
            .collect();
        let db = PackedCodes::from_signs(bits, &values);
        let index = HammingIndex::new(db.clone());
        let cal = PackedCodes::from_signs(bits, &values[..40 * bits]);
        let positions: Vec<Option<usize>> = (0..40).map(Some).collect();
        let (k, table) =
            select_k(&index, &cal, &positions, 10, C1Budget::equal_split(0.05)).unwrap();
        assert_eq!(
            table.iter().map(|c| c.k).collect::<Vec<_>>(),
            [1, 5, 10, 50, 100, 500]
        );
        let naive: Vec<(usize, Vec<f32>)> = table
            .iter()
            .map(|c| {
                let v = (0..40)
                    .map(|i| c1_mean_topk(&index, cal.code(i), c.k, Some(i)))
                    .collect();
                (c.k, v)
            })
            .collect();
        let (k2, table2) = choose_k(&naive, bits, 10, index.len(), C1Budget::equal_split(0.05));
        assert_eq!((k, table), (k2, table2));
        assert!(
            select_k(
                &index,
                &cal,
                &positions[..3],
                10,
                C1Budget::equal_split(0.05)
            )
            .is_err()
        );
    }
}
