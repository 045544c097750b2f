//! Unsupervised detection of adversarial queries: UMCD's three criteria and the baselines
//! (MeanBlur, feature squeezing with median / non-local means / adaptive squeezers, LID), all
//! behind one [`Detector`] interface and calibrated on benign scores at a target FPR; and
//! supervised LID's cross-validated regression, the one fitted on adversarial examples.
//! Detectors never see how adversarial inputs were made: this module does not use `attacks`.

mod calibrate;
mod consistency;
mod lid;
mod select;
mod squeeze;
mod supervised;
mod umcd;

pub use calibrate::{BudgetRule, Calibration, Decision, calibrate, calibrate_with};
pub(crate) use consistency::bins as consistency_bins;
pub use consistency::{Consistency, ConsistencyConfig, Thumbnails, c4_consistency, thumbnail};
pub use lid::{Lid, lid_estimate};
pub use select::{
    BLUR_CANDIDATES, BlurChoice, C1Budget, K_CANDIDATES, KChoice, choose_k,
    predicted_adversarial_topk_mean, select_blur, select_k,
};
pub use squeeze::FeatureSqueeze;
pub use supervised::{CrossValidated, Logistic, cross_validate};
pub use umcd::{
    C3_LOW, Screening, Umcd, UmcdConfig, c1_mean_topk, c2_from_logits, c2_quantisation,
    c3_disagreement, two_sided_weights, umcd_criteria, with_low_c3,
};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::filters::{Filter, ImageShape};
use crate::model::HashNet;
use crate::{Error, Result};

/// Which side of a criterion's range is suspicious.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Large values are adversarial (C1, C3, squeezing disagreements, LID).
    High,
    /// Small values are adversarial (C2, the quantisation loss).
    Low,
}

/// One scalar a detector computes per sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criterion {
    /// Short name, e.g. `C1`.
    pub name: String,
    /// Which side is flagged.
    pub direction: Direction,
}

impl Criterion {
    /// A criterion named `name` flagged on the `direction` side.
    pub fn new(name: &str, direction: Direction) -> Self {
        Self {
            name: name.into(),
            direction,
        }
    }
}

/// Scores of a set of samples, one column per criterion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    /// The criteria, in column order.
    pub criteria: Vec<Criterion>,
    /// `values[c][i]`: criterion `c` of sample `i`, in the criterion's own units.
    pub values: Vec<Vec<f32>>,
}

impl Scores {
    /// No samples yet, for these criteria.
    pub fn empty(criteria: Vec<Criterion>) -> Self {
        let values = vec![Vec::new(); criteria.len()];
        Self { criteria, values }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the samples of `other` (same criteria).
    pub fn extend(&mut self, other: Scores) -> Result<()> {
        if other.criteria != self.criteria {
            return Err(Error::InvalidArgument(
                "cannot join scores of different criteria".into(),
            ));
        }
        for (a, b) in self.values.iter_mut().zip(other.values) {
            a.extend(b);
        }
        Ok(())
    }

    /// Column `c` turned so that higher always means more adversarial.
    pub fn oriented(&self, c: usize) -> Vec<f32> {
        match self.criteria[c].direction {
            Direction::High => self.values[c].clone(),
            Direction::Low => self.values[c].iter().map(|v| -v).collect(),
        }
    }

    /// Only the columns at `keep`, in that order (for ablations such as C1 + C3).
    pub fn columns(&self, keep: &[usize]) -> Scores {
        Scores {
            criteria: keep.iter().map(|&c| self.criteria[c].clone()).collect(),
            values: keep.iter().map(|&c| self.values[c].clone()).collect(),
        }
    }
}

/// A batch of images to score.
#[derive(Clone, Copy, Debug)]
pub struct ImageBatch<'a> {
    /// Pixels in `[0, 1]`, images back to back in `shape`'s layout.
    pub pixels: &'a [f32],
    /// Layout of each image.
    pub shape: ImageShape,
    /// For images that are themselves database items (benign calibration samples), their
    /// database position, so that retrieval-based criteria leave them out of their own results.
    pub database_positions: Option<&'a [Option<usize>]>,
}

impl ImageBatch<'_> {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.shape.len().max(1)
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<()> {
        if self.shape.is_empty() || !self.pixels.len().is_multiple_of(self.shape.len()) {
            return Err(Error::InvalidArgument(format!(
                "{} pixel values are not whole {:?} images",
                self.pixels.len(),
                self.shape
            )));
        }
        if let Some(p) = self.database_positions
            && p.len() != self.len()
        {
            return Err(Error::InvalidArgument(format!(
                "{} database positions for {} images",
                p.len(),
                self.len()
            )));
        }
        if self.pixels.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numeric(
                "an image to score has NaN or infinite pixels".into(),
            ));
        }
        Ok(())
    }
}

/// A detector of adversarial queries.
pub trait Detector {
    /// Name for reports, e.g. `UMCD` or `FS-Median`.
    fn name(&self) -> String;
    /// The criteria [`Detector::score`] returns, in column order.
    fn criteria(&self) -> Vec<Criterion>;
    /// Scores a batch (the caller picks the batch size; one forward pass per batch).
    fn score(&self, model: &HashNet, batch: ImageBatch<'_>, device: &Device) -> Result<Scores>;
}

/// Pre-tanh logits `z` of the images and of their transforms `t(x)`, computed in one batched
/// forward pass over `[x; t(x)]` (UMCD §3.4). Returns `(z(x), z(t(x)))`, `bits` values per image.
pub fn logits_with_transform(
    model: &HashNet,
    batch: ImageBatch<'_>,
    filter: Filter,
    device: &Device,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let n = batch.len();
    let mut z = read(forward_with_transform(model, batch, filter, device)?)?;
    let transformed = z.split_off(n * model.bits());
    Ok((z, transformed))
}

/// The forward pass behind [`logits_with_transform`], left on the device (nothing is read
/// back, so browsers can await the read).
///
/// # Shapes
/// - output: `[2 * batch, bits]`, the images' logits, then their transforms'
pub fn forward_with_transform(
    model: &HashNet,
    batch: ImageBatch<'_>,
    filter: Filter,
    device: &Device,
) -> Result<Tensor<2>> {
    batch.check()?;
    let mut pixels = batch.pixels.to_vec();
    pixels.extend(filter.apply_batch(batch.pixels, batch.shape));
    Ok(model.logits(images_tensor(pixels, batch.shape, device)))
}

/// Whole images of `shape`, back to back in `pixels`, as one `[n, channels, height, width]`
/// tensor on `device`.
pub(crate) fn images_tensor(pixels: Vec<f32>, shape: ImageShape, device: &Device) -> Tensor<4> {
    let n = pixels.len() / shape.len().max(1);
    let dims = [n, shape.channels, shape.height, shape.width];
    Tensor::<4>::from_data(TensorData::new(pixels, dims), device)
}

/// Relaxed codes `f = tanh(z)` of the images and of their transforms, one batched forward
/// pass (see [`logits_with_transform`]). Returns `(f(x), f(t(x)))`.
pub fn codes_with_transform(
    model: &HashNet,
    batch: ImageBatch<'_>,
    filter: Filter,
    device: &Device,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (z, zt) = logits_with_transform(model, batch, filter, device)?;
    let tanh = |v: Vec<f32>| v.into_iter().map(f32::tanh).collect();
    Ok((tanh(z), tanh(zt)))
}

/// Reads a tensor back to the host, refusing NaN. Blocks until the device is done: in a
/// browser use [`read_async`].
pub fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    finite(crate::host::read_floats(t, "model outputs")?)
}

/// [`read`] for devices that cannot block (WebGPU in a browser): awaits the transfer.
pub async fn read_async<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    finite(crate::host::read_floats_async(t, "model outputs").await?)
}

fn finite(v: Vec<f32>) -> Result<Vec<f32>> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::Numeric(
            "the model produced NaN: the model record is corrupt or training diverged".into(),
        ));
    }
    Ok(v)
}

/// The 1x8x8 image layout of the detector tests.
#[cfg(test)]
pub(crate) const TEST_SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 8,
    width: 8,
};

/// A test batch of 1x8x8 images outside the database.
#[cfg(test)]
pub(crate) fn test_batch(pixels: &[f32]) -> ImageBatch<'_> {
    ImageBatch {
        pixels,
        shape: TEST_SHAPE,
        database_positions: None,
    }
}

#[cfg(test)]
pub(crate) fn test_model(device: &Device) -> HashNet {
    crate::model::HashNetConfig::new(8, 1)
        .with_widths(vec![4, 4])
        .with_convs_per_stage(1)
        .with_hidden(8)
        .with_dropout(0.0)
        .init(device)
        .valid()
}
