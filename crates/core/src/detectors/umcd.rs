//! UMCD (unsupervised multi-criterion detection): C1 = mean Hamming distance from h(x) to its
//! top-k database codes, C2 = ‖h(x) − f(x)‖₁ (near 0 for targeted attacks), C3 = relaxed
//! Hamming disagreement between f(MeanBlur(x)) and f(x), optionally flagged on both tails; x and
//! its blur share one forward pass.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Criterion, Detector, Direction, ImageBatch, Scores, forward_with_transform, read};
use crate::filters::Filter;
use crate::model::HashNet;
use crate::retrieval::{HammingIndex, Neighbour, PackedCodes};
use crate::{Error, Result};

/// UMCD's free parameters (the paper leaves them open; `hashguard detect` picks them by the
/// rules in the README on benign calibration data).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UmcdConfig {
    /// Retrieved codes averaged by C1.
    pub k: usize,
    /// Side of C3's mean-blur window.
    pub blur: usize,
}

/// The UMCD detector over a database index.
#[derive(Clone, Copy, Debug)]
pub struct Umcd<'a> {
    /// Parameters.
    pub config: UmcdConfig,
    /// The retrieval database C1 searches.
    pub index: &'a HammingIndex,
}

/// C1: mean Hamming distance from `code` to its `k` nearest database codes, leaving out the
/// database item `exclude` (the query itself when it is a database image).
pub fn c1_mean_topk(index: &HammingIndex, code: &[u64], k: usize, exclude: Option<usize>) -> f32 {
    let extra = usize::from(exclude.is_some());
    c1_from_hits(index.top_k(code, k + extra), k, exclude)
}

/// C1 from one search's nearest items (`k` of them, or more): `exclude` left out, then the
/// first `k` averaged.
fn c1_from_hits(mut hits: Vec<Neighbour>, k: usize, exclude: Option<usize>) -> f32 {
    if let Some(p) = exclude.and_then(|e| hits.iter().position(|n| n.index == e)) {
        hits.remove(p);
    }
    hits.truncate(k);
    hits.iter().map(|n| n.distance as f32).sum::<f32>() / hits.len().max(1) as f32
}

/// C2: quantisation loss ‖sign(f) − f‖₁ of one relaxed code (sign(0) = +1).
pub fn c2_quantisation(f: &[f32]) -> f32 {
    f.iter()
        .map(|&v| (if v >= 0.0 { 1.0 - v } else { -1.0 - v }).abs())
        .sum()
}

/// C2 from the pre-tanh logits: `Σ_j |sign(z_j) − tanh(z_j)| = Σ_j 2 / (1 + e^{2|z_j|})`,
/// the same quantity as [`c2_quantisation`] of `tanh(z)` but exact where `tanh` rounds to ±1
/// in `f32` (|z| > 9, common for confident CSQ models): accumulated in `f64`.
pub fn c2_from_logits(z: &[f32]) -> f32 {
    z.iter()
        .map(|&v| 2.0 / (1.0 + (2.0 * (v as f64).abs()).exp()))
        .sum::<f64>() as f32
}

/// C3: relaxed Hamming distance Σ (1 − a_j b_j) / 2 between two relaxed codes (equal to the
/// Hamming distance when both are binary).
pub fn c3_disagreement(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (1.0 - x * y) / 2.0).sum()
}

/// UMCD's three criteria in score order: C1 (Hamming distance to the top-k, high is
/// adversarial), C2 (quantisation loss, low is adversarial), C3 (disagreement after the blur,
/// high is adversarial). Callers that score without a [`Umcd`] at hand (the browser app) share it.
pub fn umcd_criteria() -> Vec<Criterion> {
    vec![
        Criterion::new("C1", Direction::High),
        Criterion::new("C2", Direction::Low),
        Criterion::new("C3", Direction::High),
    ]
}

/// The name of the low tail of C3 in [`with_low_c3`]'s scores.
pub const C3_LOW: &str = "C3 low";

/// UMCD's scores with a two-sided C3: the C1, C2, C3 columns and C3 again as "C3 low",
/// flagged when *small* — a blurred copy agreeing with the image more than benign images' do,
/// which is what an attacker minimising eq. 13's L3 leaves behind (issue 21, item 7). No new
/// forward pass: the column is C3's values.
pub fn with_low_c3(scores: &Scores) -> Result<Scores> {
    if scores.criteria != umcd_criteria() {
        return Err(Error::InvalidArgument(format!(
            "a two-sided C3 needs UMCD's scores (C1, C2, C3), got {:?}",
            scores.criteria.iter().map(|c| &c.name).collect::<Vec<_>>()
        )));
    }
    let mut out = scores.clone();
    out.criteria.push(Criterion::new(C3_LOW, Direction::Low));
    out.values.push(scores.values[2].clone());
    Ok(out)
}

/// FPR weights for [`with_low_c3`]'s four columns from UMCD's three (`None`: equal): C3's
/// share split evenly between its two tails, so C1's and C2's shares stay what they were.
pub fn two_sided_weights(weights: Option<&[f64]>) -> Vec<f64> {
    let w = weights.map_or_else(|| vec![1.0; 3], <[f64]>::to_vec);
    match w.as_slice() {
        [w1, w2, w3] => vec![*w1, *w2, w3 / 2.0, w3 / 2.0],
        // Malformed weights are left for calibration to refuse.
        _ => w,
    }
}

impl Detector for Umcd<'_> {
    fn name(&self) -> String {
        "UMCD".into()
    }

    fn criteria(&self) -> Vec<Criterion> {
        umcd_criteria()
    }

    fn score(&self, model: &HashNet, batch: ImageBatch<'_>, device: &Device) -> Result<Scores> {
        Ok(self.retrieve_and_score(model, batch, 0, device)?.scores)
    }
}

/// Retrieval and UMCD's scores of one batch, from one shared pass.
#[derive(Clone, Debug)]
pub struct Screening {
    /// The batch's binary codes h(x).
    pub codes: PackedCodes,
    /// Each image's nearest database items (database positions of the batch's own items left in).
    pub retrieved: Vec<Vec<Neighbour>>,
    /// C1, C2, C3 per image.
    pub scores: Scores,
}

impl Umcd<'_> {
    /// Retrieval and detection sharing their work (§3.4): one forward pass over `[x; blur(x)]`
    /// and one database search serve both the `k_retrieve` nearest items of each query and
    /// C1–C3.
    pub fn retrieve_and_score(
        &self,
        model: &HashNet,
        batch: ImageBatch<'_>,
        k_retrieve: usize,
        device: &Device,
    ) -> Result<Screening> {
        let logits = read(self.forward(model, batch, device)?)?;
        self.screen(model.bits(), batch, &logits, k_retrieve)
    }

    /// The device half of [`Self::retrieve_and_score`]: checks the configuration and records
    /// the forward pass over `[x; blur(x)]` without reading it back (browsers await the read,
    /// then call [`Self::screen`]).
    ///
    /// # Shapes
    /// - output: `[2 * batch, bits]` logits
    pub fn forward(
        &self,
        model: &HashNet,
        batch: ImageBatch<'_>,
        device: &Device,
    ) -> Result<Tensor<2>> {
        let bits = model.bits();
        if self.index.codes().bits() != bits {
            return Err(Error::InvalidArgument(format!(
                "database codes have {} bits but the model makes {bits}",
                self.index.codes().bits()
            )));
        }
        if self.config.k == 0 || self.config.k > self.index.len() {
            return Err(Error::InvalidArgument(format!(
                "UMCD k = {} must be between 1 and the database size {}",
                self.config.k,
                self.index.len()
            )));
        }
        let filter = Filter::MeanBlur {
            size: self.config.blur,
        };
        filter.validate()?;
        forward_with_transform(model, batch, filter, device)
    }

    /// The host half of [`Self::retrieve_and_score`]: from the logits of `[x; blur(x)]`
    /// (what [`Self::forward`] computed, read back), one search for the whole batch, the
    /// `k_retrieve` nearest items and C1–C3.
    pub fn screen(
        &self,
        bits: usize,
        batch: ImageBatch<'_>,
        logits: &[f32],
        k_retrieve: usize,
    ) -> Result<Screening> {
        let n = batch.len();
        if logits.len() != 2 * n * bits {
            return Err(Error::InvalidArgument(format!(
                "expected {} logits for {n} images and their blurred copies, got {}",
                2 * n * bits,
                logits.len()
            )));
        }
        let (z, zt) = logits.split_at(n * bits);
        let packed = PackedCodes::from_signs(bits, z);
        let mut scores = Scores::empty(self.criteria());
        // One search for the whole batch; one extra neighbour when the query may be in it.
        let extra = usize::from(batch.database_positions.is_some());
        let found = self
            .index
            .search(&packed, (self.config.k + extra).max(k_retrieve));
        let mut retrieved = Vec::with_capacity(found.len());
        for (i, ((row, row_t), hits)) in z.chunks(bits).zip(zt.chunks(bits)).zip(found).enumerate()
        {
            let exclude = batch.database_positions.and_then(|p| p[i]);
            let tanh = |v: &[f32]| v.iter().map(|x| x.tanh()).collect::<Vec<f32>>();
            retrieved.push(hits[..k_retrieve.min(hits.len())].to_vec());
            let c1 = c1_from_hits(hits, self.config.k, exclude);
            scores.values[0].push(c1);
            scores.values[1].push(c2_from_logits(row));
            scores.values[2].push(c3_disagreement(&tanh(row), &tanh(row_t)));
        }
        Ok(Screening {
            codes: packed,
            retrieved,
            scores,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::codes_with_transform;
    use super::*;

    fn index(rows: &[&[f32]]) -> HammingIndex {
        HammingIndex::new(PackedCodes::from_signs(4, &rows.concat()))
    }

    #[test]
    fn c1_on_hand_built_codes() {
        let db = index(&[
            &[1., 1., 1., 1.],
            &[1., 1., 1., -1.],
            &[-1., -1., 1., -1.],
            &[-1., -1., -1., -1.],
        ]);
        let q = PackedCodes::from_signs(4, &[1., 1., 1., 1.]);
        assert_eq!(c1_mean_topk(&db, q.code(0), 1, None), 0.0);
        assert_eq!(c1_mean_topk(&db, q.code(0), 2, None), 0.5);
        assert_eq!(
            c1_mean_topk(&db, q.code(0), 4, None),
            (0.0 + 1.0 + 3.0 + 4.0) / 4.0
        );
        // The query is database item 0: its own zero distance is left out.
        assert_eq!(c1_mean_topk(&db, q.code(0), 2, Some(0)), (1.0 + 3.0) / 2.0);
        // Excluding an item outside the top k changes nothing.
        assert_eq!(c1_mean_topk(&db, q.code(0), 2, Some(3)), 0.5);
    }

    #[test]
    fn c2_on_hand_built_codes() {
        assert_eq!(c2_quantisation(&[1.0, -1.0, 1.0]), 0.0);
        assert!((c2_quantisation(&[0.5, -0.25, 0.0]) - (0.5 + 0.75 + 1.0)).abs() < 1e-6);
    }

    #[test]
    fn c2_from_logits_equals_c2_of_tanh_and_stays_exact_when_saturated() {
        let z = [0.3f32, -1.2, 0.0, 2.5];
        let f: Vec<f32> = z.iter().map(|v| v.tanh()).collect();
        assert!((c2_from_logits(&z) - c2_quantisation(&f)).abs() < 1e-5);
        // tanh(20) rounds to 1 in f32, but 1 − tanh(20) = 2 / (1 + e^40) ≈ 8.5e-18.
        assert_eq!(c2_quantisation(&[20f32.tanh()]), 0.0);
        let c2 = c2_from_logits(&[20.0, -25.0]);
        assert!(c2 > 8.0e-18 && c2 < 9.0e-18, "{c2}");
    }

    #[test]
    fn the_low_tail_of_c3_is_c3_flagged_when_small() {
        let s = Scores {
            criteria: umcd_criteria(),
            values: vec![vec![0.0, 4.0], vec![1.0, 0.5], vec![2.0, 0.1]],
        };
        let two = with_low_c3(&s).unwrap();
        assert_eq!(two.criteria.len(), 4);
        assert_eq!(two.criteria[3], Criterion::new(C3_LOW, Direction::Low));
        assert_eq!(two.values[3], s.values[2]);
        assert_eq!(two.oriented(3), vec![-2.0, -0.1]);
        assert!(with_low_c3(&two).is_err());
        assert_eq!(two_sided_weights(None), vec![1.0, 1.0, 0.5, 0.5]);
        assert_eq!(
            two_sided_weights(Some(&[2.0, 1.0, 4.0])),
            vec![2.0, 1.0, 2.0, 2.0]
        );
    }

    #[test]
    fn c3_on_hand_built_codes() {
        assert_eq!(c3_disagreement(&[1., -1., 1., 1.], &[1., 1., -1., 1.]), 2.0);
        assert_eq!(
            c3_disagreement(&[0.5, 0.0], &[0.5, 1.0]),
            (0.75 + 1.0) / 2.0
        );
    }

    #[test]
    fn scores_match_the_criteria_on_a_real_forward() {
        let device = Device::flex();
        let model = super::super::test_model(&device);
        let pixels: Vec<f32> = (0..3 * 64).map(|i| ((i * 7) % 13) as f32 / 12.0).collect();
        let batch = super::super::test_batch(&pixels);
        let (f, ft) =
            codes_with_transform(&model, batch, Filter::MeanBlur { size: 3 }, &device).unwrap();
        let db = HammingIndex::new(PackedCodes::from_signs(8, &f));
        let umcd = Umcd {
            config: UmcdConfig { k: 1, blur: 3 },
            index: &db,
        };
        let s = umcd.score(&model, batch, &device).unwrap();
        for i in 0..3 {
            let row = &f[i * 8..(i + 1) * 8];
            // Each image is in the database: its nearest code is its own.
            assert_eq!(s.values[0][i], 0.0);
            assert!((s.values[1][i] - c2_quantisation(row)).abs() < 1e-4);
            let t = &ft[i * 8..(i + 1) * 8];
            assert!((s.values[2][i] - c3_disagreement(row, t)).abs() < 1e-5);
        }
        // Retrieval from the shared pass equals a plain search of the same codes.
        let pass = umcd.retrieve_and_score(&model, batch, 2, &device).unwrap();
        assert_eq!(pass.scores.values, s.values);
        assert_eq!(pass.codes, PackedCodes::from_signs(8, &f));
        for (i, found) in pass.retrieved.iter().enumerate() {
            assert_eq!(found, &db.top_k(pass.codes.code(i), 2));
        }
        // One forward of [x; t(x)] equals two separate forwards.
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [3, 1, 8, 8]), &device);
        let alone = super::super::read(model.forward(x)).unwrap();
        for (a, b) in alone.iter().zip(&f) {
            assert!((a - b).abs() < 1e-5);
        }
        // The split halves (device pass, then host scoring) agree with the whole, and the
        // host half refuses logits of the wrong length.
        let logits = super::super::read(umcd.forward(&model, batch, &device).unwrap()).unwrap();
        let split = umcd.screen(8, batch, &logits, 2).unwrap();
        assert_eq!(split.scores.values, pass.scores.values);
        assert_eq!(split.retrieved, pass.retrieved);
        assert!(umcd.screen(8, batch, &logits[1..], 2).is_err());
    }
}
