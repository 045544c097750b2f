//! LID (Ma et al.): local intrinsic dimensionality of a sample's features at every layer,
//! estimated from its k nearest neighbours in a benign reference mini-batch. Unsupervised here:
//! the per-layer LIDs are z-scored with benign calibration statistics and averaged.

use burn::prelude::*;

use super::{Criterion, Detector, Direction, ImageBatch, Scores, images_tensor, read};
use crate::model::HashNet;
use crate::{Error, Result};

/// Maximum-likelihood LID from the distances to the k nearest neighbours (ascending):
/// `-(1/k Σ log(r_i / r_k))^-1`. Zero distances are skipped; `0` if nothing is left.
pub fn lid_estimate(sorted_distances: &[f32]) -> f32 {
    let d: Vec<f32> = sorted_distances
        .iter()
        .copied()
        .filter(|&r| r > 0.0)
        .collect();
    let Some(&rk) = d.last() else { return 0.0 };
    let mean_log: f32 = d.iter().map(|r| (r / rk).ln()).sum::<f32>() / d.len() as f32;
    if mean_log == 0.0 {
        0.0
    } else {
        -1.0 / mean_log
    }
}

/// The LID detector: reference features and benign statistics per layer.
#[derive(Clone, Debug)]
pub struct Lid {
    /// Neighbours per estimate (Ma et al.: 20 for mini-batches of 100).
    pub k: usize,
    /// Per layer: reference features, row-major, and their width.
    reference: Vec<(Vec<f32>, usize)>,
    /// Per layer: mean and standard deviation of benign calibration LIDs.
    norm: Vec<(f32, f32)>,
}

impl Lid {
    /// Fits the detector: features of the benign `reference` batch (Ma et al.'s mini-batch)
    /// become the neighbour pool, and benign `calibration` images (disjoint from it) give each
    /// layer's LID mean and spread. Nothing adversarial is seen. Also returns the calibration
    /// images' [`Lid::layer_scores`] from the same pass (no second feature extraction).
    pub fn fit_scored(
        model: &HashNet,
        reference: ImageBatch<'_>,
        calibration: ImageBatch<'_>,
        k: usize,
        batch_size: usize,
        device: &Device,
    ) -> Result<(Self, Vec<Vec<f32>>)> {
        if k < 2 || k > reference.len() {
            return Err(Error::InvalidArgument(format!(
                "LID needs 2 ≤ k ≤ {} reference images, got k = {k}",
                reference.len()
            )));
        }
        let reference = layer_features(model, reference, device)?;
        let mut lid = Lid {
            k,
            reference,
            norm: Vec::new(),
        };
        let layers = lid.reference.len();
        let mut raw = vec![Vec::new(); layers];
        for chunk in chunks(calibration, batch_size) {
            for (l, v) in lid.raw(model, chunk, device)?.into_iter().enumerate() {
                raw[l].extend(v);
            }
        }
        lid.norm = raw
            .iter()
            .map(|v| {
                let n = v.len().max(1) as f32;
                let m = v.iter().sum::<f32>() / n;
                let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / n).sqrt();
                (m, s.max(1e-6))
            })
            .collect();
        let scored = (0..calibration.len())
            .map(|i| lid.normalise(raw.iter().map(|v| v[i])))
            .collect();
        Ok((lid, scored))
    }

    /// One sample's raw per-layer LIDs, z-scored by the benign statistics.
    fn normalise(&self, raw: impl Iterator<Item = f32>) -> Vec<f32> {
        raw.zip(&self.norm).map(|(v, (m, s))| (v - m) / s).collect()
    }

    /// This detector's scores from [`Lid::layer_scores`]: each sample's mean over the layers.
    pub fn scores_from_layers(&self, layers: &[Vec<f32>]) -> Scores {
        let mut scores = Scores::empty(self.criteria());
        scores.values[0] = layers
            .iter()
            .map(|l| l.iter().sum::<f32>() / l.len().max(1) as f32)
            .collect();
        scores
    }

    /// Each sample's z-scored LID at every layer (`[sample][layer]`): the features supervised
    /// LID (Ma et al.) fits its logistic regression on; their mean is this detector's score.
    pub fn layer_scores(
        &self,
        model: &HashNet,
        batch: ImageBatch<'_>,
        batch_size: usize,
        device: &Device,
    ) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(batch.len());
        for chunk in chunks(batch, batch_size) {
            let raw = self.raw(model, chunk, device)?;
            out.extend((0..chunk.len()).map(|i| self.normalise(raw.iter().map(|v| v[i]))));
        }
        Ok(out)
    }

    /// Raw LID per layer (`[layer][sample]`).
    fn raw(
        &self,
        model: &HashNet,
        batch: ImageBatch<'_>,
        device: &Device,
    ) -> Result<Vec<Vec<f32>>> {
        let feats = layer_features(model, batch, device)?;
        let mut out = Vec::with_capacity(feats.len());
        for ((f, dim), (r, _)) in feats.iter().zip(&self.reference) {
            let mut lids = Vec::with_capacity(batch.len());
            for row in f.chunks(*dim) {
                let mut d: Vec<f32> = r
                    .chunks(*dim)
                    .map(|q| {
                        row.iter()
                            .zip(q)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f32>()
                            .sqrt()
                    })
                    .collect();
                d.sort_by(f32::total_cmp);
                lids.push(lid_estimate(&d[..self.k]));
            }
            out.push(lids);
        }
        Ok(out)
    }
}

/// Splits a batch into batches of at most `size` images.
pub(crate) fn chunks(batch: ImageBatch<'_>, size: usize) -> Vec<ImageBatch<'_>> {
    let per = batch.shape.len();
    (0..batch.len())
        .step_by(size.max(1))
        .map(|start| {
            let end = (start + size.max(1)).min(batch.len());
            ImageBatch {
                pixels: &batch.pixels[start * per..end * per],
                shape: batch.shape,
                database_positions: batch.database_positions.map(|p| &p[start..end]),
            }
        })
        .collect()
}

/// Every layer's features of `batch`, row-major with their widths.
fn layer_features(
    model: &HashNet,
    batch: ImageBatch<'_>,
    device: &Device,
) -> Result<Vec<(Vec<f32>, usize)>> {
    batch.check()?;
    let x = images_tensor(batch.pixels.to_vec(), batch.shape, device);
    model
        .features(x)
        .into_iter()
        .map(|t| {
            let dim = t.dims()[1];
            Ok((read(t)?, dim))
        })
        .collect()
}

impl Detector for Lid {
    fn name(&self) -> String {
        "LID".into()
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![Criterion::new("LID", Direction::High)]
    }

    fn score(&self, model: &HashNet, batch: ImageBatch<'_>, device: &Device) -> Result<Scores> {
        let layers = self.layer_scores(model, batch, batch.len().max(1), device)?;
        Ok(self.scores_from_layers(&layers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::ImageShape;
    use rand::{Rng, SeedableRng};

    #[test]
    fn estimate_recovers_the_dimension_of_uniform_points() {
        // Points uniform in a d-ball: P(r < t) = t^d, so r_i = (i / n)^(1/d).
        for d in [2.0f32, 5.0, 10.0] {
            let n = 2000;
            let r: Vec<f32> = (1..=n)
                .map(|i| (i as f32 / n as f32).powf(1.0 / d))
                .collect();
            let est = lid_estimate(&r[..200]);
            assert!((est - d).abs() < 0.1 * d, "d = {d}: {est}");
        }
        assert_eq!(lid_estimate(&[0.0, 0.0]), 0.0);
    }

    #[test]
    fn benign_calibration_scores_centre_on_zero() {
        let device = Device::flex();
        let model = super::super::test_model(&device);
        let shape = super::super::TEST_SHAPE;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // Smooth benign images: gradients with a random slope.
        let mut smooth = |n: usize| -> Vec<f32> {
            (0..n)
                .flat_map(|_| {
                    let (a, b): (f32, f32) = (rng.random(), rng.random());
                    (0..64).map(move |p| (a * (p / 8) as f32 + b * (p % 8) as f32) / 16.0)
                })
                .collect()
        };
        let (reference, calibration) = (smooth(40), smooth(60));
        fn batch(pixels: &[f32], shape: ImageShape) -> ImageBatch<'_> {
            ImageBatch {
                pixels,
                shape,
                database_positions: None,
            }
        }
        let cal = batch(&calibration, shape);
        let (lid, _) =
            Lid::fit_scored(&model, batch(&reference, shape), cal, 10, 16, &device).unwrap();
        let s = lid.score(&model, cal, &device).unwrap();
        let mean = s.values[0].iter().sum::<f32>() / s.len() as f32;
        assert!(mean.abs() < 1e-3, "benign mean z-score {mean}");
        // The scores fit returns from its own pass equal a fresh scoring of the same images.
        let (_, scored) =
            Lid::fit_scored(&model, batch(&reference, shape), cal, 10, 16, &device).unwrap();
        let again = lid.layer_scores(&model, cal, 16, &device).unwrap();
        assert_eq!(scored.len(), again.len());
        for (a, b) in scored.iter().flatten().zip(again.iter().flatten()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert_eq!(lid.scores_from_layers(&again).values, s.values);
        assert!(Lid::fit_scored(&model, batch(&reference, shape), cal, 1, 16, &device).is_err());
    }
}
