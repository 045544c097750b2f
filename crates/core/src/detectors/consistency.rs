//! Retrieval consistency, C4 (a hashguard extension beside UMCD's three criteria): how far a
//! query's thumbnail lies from the thumbnails of the images its code retrieves. An L∞
//! perturbation of ε moves each thumbnail cell by at most ε, so an example pulled onto another
//! category's codes keeps its own look while retrieving that category's images.

use std::sync::Arc;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Criterion, Detector, Direction, ImageBatch, Scores, images_tensor, read};
use crate::filters::ImageShape;
use crate::model::HashNet;
use crate::retrieval::{HammingIndex, PackedCodes};
use crate::{Error, Result};

/// C4's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyConfig {
    /// Hamming neighbours of the query whose thumbnails are compared with its own.
    pub neighbours: usize,
    /// C4 averages the distances to this many of them, the closest in thumbnail space (a
    /// category looks several ways: one look-alike among the neighbours is enough).
    pub nearest: usize,
    /// Thumbnails are `grid` x `grid` cells per channel (fewer when the image is smaller).
    pub grid: usize,
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        Self {
            neighbours: 100,
            nearest: 5,
            grid: 7,
        }
    }
}

impl ConsistencyConfig {
    /// Refuses settings C4 cannot use.
    pub fn validate(&self) -> Result<()> {
        if self.neighbours == 0 || self.nearest == 0 || self.nearest > self.neighbours {
            return Err(Error::InvalidArgument(format!(
                "C4 averages the --c4-nearest {} closest of its --c4-neighbours {} neighbours: \
                 both must be at least 1, and --c4-nearest at most --c4-neighbours",
                self.nearest, self.neighbours
            )));
        }
        if self.grid == 0 {
            return Err(Error::InvalidArgument(
                "--c4-grid must be at least 1 cell".into(),
            ));
        }
        Ok(())
    }
}

/// Cell boundaries of `cells` near-equal bins over `len` pixels (`len >= cells`).
pub(crate) fn bins(len: usize, cells: usize) -> Vec<(usize, usize)> {
    (0..cells)
        .map(|i| (i * len / cells, (i + 1) * len / cells))
        .collect()
}

/// The thumbnail of one image: the mean of each of `grid` x `grid` near-equal cells per
/// channel (area pooling; the grid shrinks to the image when the image is smaller).
pub fn thumbnail(image: &[f32], shape: ImageShape, grid: usize) -> Vec<f32> {
    let (rows, cols) = (
        bins(shape.height, grid.min(shape.height)),
        bins(shape.width, grid.min(shape.width)),
    );
    let plane = shape.height * shape.width;
    let mut out = Vec::with_capacity(shape.channels * rows.len() * cols.len());
    for c in 0..shape.channels {
        let p = &image[c * plane..(c + 1) * plane];
        for &(r0, r1) in &rows {
            for &(c0, c1) in &cols {
                let sum: f32 = (r0..r1)
                    .map(|r| {
                        p[r * shape.width + c0..r * shape.width + c1]
                            .iter()
                            .sum::<f32>()
                    })
                    .sum();
                out.push(sum / ((r1 - r0) * (c1 - c0)) as f32);
            }
        }
    }
    out
}

/// Thumbnails of the database images, in database order.
#[derive(Clone, Debug, PartialEq)]
pub struct Thumbnails {
    /// Values per thumbnail.
    pub len: usize,
    /// The thumbnails back to back.
    pub data: Vec<f32>,
}

impl Thumbnails {
    /// No thumbnails yet, `len` values each.
    pub fn new(len: usize) -> Self {
        Self {
            len,
            data: Vec::new(),
        }
    }

    /// No thumbnails yet, sized for images of `shape` on a `grid` x `grid` grid.
    pub fn for_shape(shape: ImageShape, grid: usize) -> Self {
        let cells = grid.min(shape.height) * grid.min(shape.width);
        Self::new(shape.channels * cells)
    }

    /// The thumbnails of the images `ids`, in that order. `pixels` decodes a slice of them
    /// (row-major images in `shape`); it is asked for about 64 MiB of pixels at a time,
    /// whatever the image size, so a large database never sits decoded in memory.
    pub fn of_images(
        ids: &[usize],
        shape: ImageShape,
        grid: usize,
        mut pixels: impl FnMut(&[usize]) -> Vec<f32>,
    ) -> Self {
        let mut out = Self::for_shape(shape, grid);
        let per_chunk = ((64 << 20) / (4 * shape.len().max(1))).max(1);
        for chunk in ids.chunks(per_chunk) {
            out.push_images(&pixels(chunk), shape, grid);
        }
        out
    }

    /// Appends the thumbnails of `pixels` (whole images in `shape`).
    pub fn push_images(&mut self, pixels: &[f32], shape: ImageShape, grid: usize) {
        for image in pixels.chunks(shape.len().max(1)) {
            self.data.extend(thumbnail(image, shape, grid));
        }
    }

    /// Number of thumbnails.
    pub fn count(&self) -> usize {
        self.data.len() / self.len.max(1)
    }

    /// Thumbnail of database item `i`.
    pub fn get(&self, i: usize) -> &[f32] {
        &self.data[i * self.len..(i + 1) * self.len]
    }
}

/// Root-mean-square difference of two thumbnails (pixel units).
fn rms(a: &[f32], b: &[f32]) -> f32 {
    let s: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (s / a.len().max(1) as f32).sqrt()
}

/// C4 of one query: the mean of the `nearest` smallest RMS distances between `thumb` and the
/// thumbnails of `neighbours` (database positions).
pub fn c4_consistency(
    thumb: &[f32],
    neighbours: impl IntoIterator<Item = usize>,
    thumbs: &Thumbnails,
    nearest: usize,
) -> f32 {
    let mut d: Vec<f32> = neighbours
        .into_iter()
        .map(|i| rms(thumb, thumbs.get(i)))
        .collect();
    d.sort_by(f32::total_cmp);
    d.truncate(nearest);
    d.iter().sum::<f32>() / d.len().max(1) as f32
}

/// The C4 detector over a database index and its images' thumbnails.
#[derive(Clone, Debug)]
pub struct Consistency<'a> {
    /// Parameters.
    pub config: ConsistencyConfig,
    /// The retrieval database.
    pub index: &'a HammingIndex,
    /// Its images' thumbnails (same order, same grid), shared with whoever else needs them
    /// (the C4-aware white-box attacker).
    pub thumbnails: Arc<Thumbnails>,
}

impl Consistency<'_> {
    /// The report's name of the detector.
    pub const NAME: &'static str = "C4 consistency";
}

impl Detector for Consistency<'_> {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![Criterion::new("C4", Direction::High)]
    }

    fn score(&self, model: &HashNet, batch: ImageBatch<'_>, device: &Device) -> Result<Scores> {
        self.config.validate()?;
        batch.check()?;
        if self.thumbnails.count() != self.index.len() {
            return Err(Error::InvalidArgument(format!(
                "{} thumbnails for a database of {} codes",
                self.thumbnails.count(),
                self.index.len()
            )));
        }
        let s = batch.shape;
        let z = read(model.logits(images_tensor(batch.pixels.to_vec(), s, device)))?;
        let packed = PackedCodes::from_signs(model.bits(), &z);
        let extra = usize::from(batch.database_positions.is_some());
        let found = self.index.search(&packed, self.config.neighbours + extra);
        let mut scores = Scores::empty(self.criteria());
        for (i, (image, hits)) in batch.pixels.chunks(s.len()).zip(found).enumerate() {
            let exclude = batch.database_positions.and_then(|p| p[i]);
            let thumb = thumbnail(image, s, self.config.grid);
            if thumb.len() != self.thumbnails.len {
                return Err(Error::InvalidArgument(format!(
                    "a {}-value query thumbnail against {}-value database thumbnails",
                    thumb.len(),
                    self.thumbnails.len
                )));
            }
            let near = hits
                .iter()
                .map(|h| h.index)
                .filter(|&j| Some(j) != exclude)
                .take(self.config.neighbours);
            scores.values[0].push(c4_consistency(
                &thumb,
                near,
                &self.thumbnails,
                self.config.nearest,
            ));
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_average_their_cells() {
        let shape = ImageShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let image: Vec<f32> = (0..16).map(|v| v as f32).collect();
        // 2x2 cells: means of {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}.
        assert_eq!(thumbnail(&image, shape, 2), vec![2.5, 4.5, 10.5, 12.5]);
        // A grid finer than the image is the image.
        assert_eq!(thumbnail(&image, shape, 9), image);
        // Uneven cells: 3 over 4 pixels are 1, 1 and 2 wide.
        assert_eq!(bins(4, 3), vec![(0, 1), (1, 2), (2, 4)]);
    }

    #[test]
    fn thumbnails_of_images_decode_in_bounded_chunks_and_keep_the_order() {
        let shape = super::super::TEST_SHAPE;
        let image =
            |id: usize| -> Vec<f32> { (0..64).map(|i| ((i * 3 + id) % 11) as f32).collect() };
        let ids = [4, 0, 7];
        let thumbs = Thumbnails::of_images(&ids, shape, 4, |chunk| {
            chunk.iter().flat_map(|&id| image(id)).collect()
        });
        assert_eq!(thumbs.count(), 3);
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(thumbs.get(i), thumbnail(&image(id), shape, 4));
        }
        // A large image: about 64 MiB of pixels per request, never the whole list at once.
        let big = ImageShape {
            channels: 3,
            height: 512,
            width: 512,
        };
        let mut requests = Vec::new();
        let thumbs = Thumbnails::of_images(&(0..25).collect::<Vec<_>>(), big, 2, |chunk| {
            requests.push(chunk.len());
            vec![0.5; chunk.len() * big.len()]
        });
        assert_eq!(requests, vec![21, 4]);
        assert_eq!(thumbs.count(), 25);
        assert!(thumbs.data.iter().all(|&v| v == 0.5));
    }

    #[test]
    fn c4_takes_the_closest_neighbours_and_an_eps_perturbation_moves_it_at_most_eps() {
        let mut thumbs = Thumbnails::new(2);
        thumbs.data = vec![0.0, 0.0, 1.0, 1.0, 0.5, 0.5];
        assert_eq!(c4_consistency(&[0.0, 0.0], [1, 0, 2], &thumbs, 1), 0.0);
        assert_eq!(c4_consistency(&[0.0, 0.0], [1, 2], &thumbs, 2), 0.75);
        let eps = 0.1;
        let moved = c4_consistency(&[eps, -eps], [1, 2], &thumbs, 2);
        assert!((moved - 0.75).abs() <= eps + 1e-6, "{moved}");
    }

    #[test]
    fn scores_leave_the_query_out_of_its_own_neighbours() {
        let device = Device::flex();
        let model = super::super::test_model(&device);
        let shape = super::super::TEST_SHAPE;
        let pixels: Vec<f32> = (0..4 * 64).map(|i| ((i * 7) % 13) as f32 / 12.0).collect();
        let z = read(model.logits(Tensor::<4>::from_data(
            TensorData::new(pixels.clone(), [4, 1, 8, 8]),
            &device,
        )))
        .unwrap();
        let index = HammingIndex::new(PackedCodes::from_signs(8, &z));
        let mut thumbs = Thumbnails::new(16);
        thumbs.push_images(&pixels, shape, 4);
        // Every database item is a neighbour, so ties in Hamming distance cannot hide one.
        let config = ConsistencyConfig {
            neighbours: 4,
            nearest: 1,
            grid: 4,
        };
        let det = Consistency {
            config,
            index: &index,
            thumbnails: thumbs.into(),
        };
        // Outside the database each image finds itself: C4 = 0.
        let s = det
            .score(&model, super::super::test_batch(&pixels), &device)
            .unwrap();
        assert!(s.values[0].iter().all(|&v| v == 0.0), "{:?}", s.values);
        // As database items they are left out, and the other images differ from them.
        let positions: Vec<Option<usize>> = (0..4).map(Some).collect();
        let batch = ImageBatch {
            pixels: &pixels,
            shape,
            database_positions: Some(&positions),
        };
        let s = det.score(&model, batch, &device).unwrap();
        assert!(s.values[0].iter().all(|&v| v > 0.0), "{:?}", s.values);
        // Thumbnails of another grid are refused.
        let mut coarse = Thumbnails::new(4);
        coarse.push_images(&pixels, shape, 2);
        let det = Consistency {
            thumbnails: coarse.into(),
            ..det
        };
        assert!(det.score(&model, batch, &device).is_err());
    }
}
