//! Feature squeezing for hashing (Xu et al.; also MeanBlur, Li & Li): the score is the L1
//! distance between the relaxed codes of x and of a squeezed copy t(x), the hashing analogue of
//! Xu et al.'s L1 distance between softmax vectors. One batched forward over [x; t(x)].

use burn::prelude::*;

use super::{Criterion, Detector, Direction, ImageBatch, Scores, codes_with_transform};
use crate::Result;
use crate::filters::Filter;
use crate::model::HashNet;

/// A single-squeezer detector.
#[derive(Clone, Debug)]
pub struct FeatureSqueeze {
    /// Name in reports, e.g. `FS-Median`.
    pub name: String,
    /// The squeezer t.
    pub filter: Filter,
}

impl FeatureSqueeze {
    /// A detector called `name` squeezing with `filter`.
    pub fn new(name: &str, filter: Filter) -> Result<Self> {
        filter.validate()?;
        Ok(Self {
            name: name.into(),
            filter,
        })
    }
}

/// L1 distance between two relaxed codes.
pub fn l1_disagreement(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

impl Detector for FeatureSqueeze {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![Criterion::new(
            &format!("L1({})", self.filter.name()),
            Direction::High,
        )]
    }

    fn score(&self, model: &HashNet, batch: ImageBatch<'_>, device: &Device) -> Result<Scores> {
        let bits = model.bits();
        let (f, ft) = codes_with_transform(model, batch, self.filter, device)?;
        let mut scores = Scores::empty(self.criteria());
        scores.values[0] = f
            .chunks(bits)
            .zip(ft.chunks(bits))
            .map(|(a, b)| l1_disagreement(a, b))
            .collect();
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_squeezer_scores_zero_and_blur_does_not() {
        let device = Device::flex();
        let model = super::super::test_model(&device);
        let pixels: Vec<f32> = (0..2 * 64).map(|i| ((i * 5) % 11) as f32 / 10.0).collect();
        let batch = super::super::test_batch(&pixels);
        let same = FeatureSqueeze::new("id", Filter::MeanBlur { size: 1 }).unwrap();
        let s = same.score(&model, batch, &device).unwrap();
        assert!(s.values[0].iter().all(|&v| v.abs() < 1e-5));
        let blur = FeatureSqueeze::new("blur", Filter::MeanBlur { size: 3 }).unwrap();
        let s = blur.score(&model, batch, &device).unwrap();
        assert!(s.values[0].iter().all(|&v| v > 0.0));
        assert_eq!(l1_disagreement(&[1.0, -0.5], &[0.0, 0.5]), 2.0);
    }
}
