//! Multi-label data from single-label images: 2x2 mosaics of four half-size images whose label
//! set is the union of the four, so every code path (centres, relevance, mAP) meets multi-label
//! items without needing COCO or NUS-WIDE.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{ImageSet, LabelSet};
use crate::{Error, Result};

/// Builds `count` mosaics from `set`, each tiling four random images shrunk 2x (2x2 mean).
///
/// The mosaic has the source's image shape, so a model for the source runs on it unchanged.
/// Image height and width must be even.
pub fn make_mosaics(set: &ImageSet, count: usize, seed: u64) -> Result<ImageSet> {
    let (c, h, w) = (set.channels, set.height, set.width);
    if h % 2 != 0 || w % 2 != 0 || set.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "mosaics need a non-empty set of even-sized images, got {} images of {h}x{w}",
            set.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = vec![0u8; count * set.image_len()];
    let mut labels = Vec::with_capacity(count);
    for (m, out) in pixels.chunks_exact_mut(set.image_len()).enumerate() {
        let mut label = LabelSet::default();
        for tile in 0..4 {
            let src = rng.random_range(0..set.len());
            label = label.union(set.labels[src]);
            let img = set.image(src);
            let (oy, ox) = ((tile / 2) * h / 2, (tile % 2) * w / 2);
            for ch in 0..c {
                for y in 0..h / 2 {
                    for x in 0..w / 2 {
                        let at = |dy: usize, dx: usize| {
                            img[ch * h * w + (2 * y + dy) * w + 2 * x + dx] as u32
                        };
                        let mean = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1) + 2) / 4;
                        out[ch * h * w + (oy + y) * w + ox + x] = mean as u8;
                    }
                }
            }
        }
        debug_assert!(m < count);
        labels.push(label);
    }
    ImageSet::new(
        format!("{}-mosaic", set.name),
        set.origin.clone(),
        [c, h, w],
        pixels,
        labels,
        set.class_names.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_shrunk_sources_and_labels_are_unions() {
        // Each source image is a constant intensity equal to 10 * its class.
        let n = 5;
        let set = ImageSet::new(
            "flat",
            "test",
            [1, 4, 4],
            (0..n).flat_map(|i| vec![(10 * i) as u8; 16]).collect(),
            (0..n).map(LabelSet::single).collect(),
            (0..n).map(|i| i.to_string()).collect(),
        )
        .unwrap();
        let mos = make_mosaics(&set, 20, 3).unwrap();
        assert_eq!(mos.len(), 20);
        for i in 0..mos.len() {
            let img = mos.image(i);
            let tiles = [img[0], img[2], img[8], img[10]];
            let expect = LabelSet::from_classes(tiles.iter().map(|&v| v as usize / 10));
            assert_eq!(mos.labels[i], expect);
            // Each quadrant is constant.
            assert_eq!(img[0], img[5]);
            assert_eq!(img[10], img[15]);
        }
        assert!(mos.is_multi_label());
        assert!(make_mosaics(&set.subset(&[]), 1, 0).is_err());
    }
}
