//! Image transforms shared by the detectors (and later the adaptive attack): mean blur, median
//! filter, non-local means, bit-depth reduction and Liang et al.'s entropy-adaptive squeezer.
//! Pure Rust over channel-major `[channels, height, width]` images with pixels in `[0, 1]`.

mod adaptive;
mod nlm;
mod window;

pub use adaptive::{adaptive_squeeze, entropy_bits};
pub use nlm::non_local_means;
pub use window::{mean_blur, median};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Layout of one image: channel-major, rows then columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour channels (1 for grey).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// Values per image.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether an image of this shape has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per channel plane.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }
}

/// Index of `i` reflected into `0..n` the way SciPy's `reflect` mode does (`d c b a | a b c d`).
pub(crate) fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let m = i.rem_euclid(2 * n);
    (if m < n { m } else { 2 * n - 1 - m }) as usize
}

/// Offsets of a `size`-wide window around its anchor: `-(size/2) ..= size - 1 - size/2`, so odd
/// windows are centred and even ones lean towards lower indices (SciPy's default origin).
pub(crate) fn window_offsets(size: usize) -> std::ops::RangeInclusive<isize> {
    let lo = -((size / 2) as isize);
    lo..=lo + size as isize - 1
}

/// An input transform `t(x)`, applied image by image.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Filter {
    /// `size`x`size` mean filter (MeanBlur; UMCD's C3).
    MeanBlur {
        /// Window side.
        size: usize,
    },
    /// `size`x`size` median filter (feature squeezing, Xu et al.).
    Median {
        /// Window side.
        size: usize,
    },
    /// Non-local means (feature squeezing, Xu et al.: search 13, patch 3, h 2).
    NonLocalMeans {
        /// Side of the search window.
        search: usize,
        /// Side of the compared patches.
        patch: usize,
        /// Filter strength on the 0–255 scale.
        h: f32,
    },
    /// Scalar quantisation to `2^bits` levels (feature squeezing's bit-depth reduction).
    BitDepth {
        /// Bits kept per pixel.
        bits: u32,
    },
    /// Entropy-adaptive quantisation and smoothing (FS-Adaptive, Liang et al.).
    Adaptive,
}

impl Filter {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Filter::MeanBlur { size } | Filter::Median { size } => (1..=15).contains(&size),
            Filter::NonLocalMeans { search, patch, h } => {
                search % 2 == 1 && patch % 2 == 1 && search <= 31 && patch <= 15 && h > 0.0
            }
            Filter::BitDepth { bits } => (1..=8).contains(&bits),
            Filter::Adaptive => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "bad filter parameters {self:?}: window sides 1..=15 (NLM: odd search ≤ 31, odd \
                 patch ≤ 15, h > 0), bit depth 1..=8"
            )))
        }
    }

    /// Short name for reports, e.g. `mean-3x3`.
    pub fn name(&self) -> String {
        match *self {
            Filter::MeanBlur { size } => format!("mean-{size}x{size}"),
            Filter::Median { size } => format!("median-{size}x{size}"),
            Filter::NonLocalMeans { search, patch, h } => format!("nlm-{search}-{patch}-{h}"),
            Filter::BitDepth { bits } => format!("bit-depth-{bits}"),
            Filter::Adaptive => "adaptive".into(),
        }
    }

    /// Transforms one image.
    ///
    /// # Panics
    /// If `image.len() != shape.len()`.
    pub fn apply(&self, image: &[f32], shape: ImageShape) -> Vec<f32> {
        assert_eq!(
            image.len(),
            shape.len(),
            "image has {} values, shape {shape:?} needs {}",
            image.len(),
            shape.len()
        );
        match *self {
            Filter::MeanBlur { size } => mean_blur(image, shape, size),
            Filter::Median { size } => median(image, shape, size),
            Filter::NonLocalMeans { search, patch, h } => {
                non_local_means(image, shape, search, patch, h)
            }
            Filter::BitDepth { bits } => quantise(image, (1u32 << bits) - 1),
            Filter::Adaptive => adaptive_squeeze(image, shape),
        }
    }

    /// Transforms a batch of images stored back to back.
    ///
    /// # Panics
    /// If `images.len()` is not a multiple of `shape.len()`.
    pub fn apply_batch(&self, images: &[f32], shape: ImageShape) -> Vec<f32> {
        assert!(
            !shape.is_empty() && images.len().is_multiple_of(shape.len()),
            "batch of {} values is not a whole number of {shape:?} images",
            images.len()
        );
        images
            .chunks(shape.len())
            .flat_map(|im| self.apply(im, shape))
            .collect()
    }
}

/// Rounds every pixel to the nearest of `levels + 1` evenly spaced values in `[0, 1]`.
pub(crate) fn quantise(image: &[f32], levels: u32) -> Vec<f32> {
    let l = levels as f32;
    image
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * l).round() / l)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_scipy_reflect_mode() {
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn windows_lean_low_when_even() {
        assert_eq!(window_offsets(3), -1..=1);
        assert_eq!(window_offsets(2), -1..=0);
        assert_eq!(window_offsets(1), 0..=0);
    }

    #[test]
    fn bit_depth_one_is_thresholding() {
        let f = Filter::BitDepth { bits: 1 };
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 4,
        };
        assert_eq!(
            f.apply(&[0.1, 0.49, 0.51, 0.9], shape),
            vec![0.0, 0.0, 1.0, 1.0]
        );
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(Filter::MeanBlur { size: 0 }.validate().is_err());
        assert!(
            Filter::NonLocalMeans {
                search: 12,
                patch: 3,
                h: 2.0
            }
            .validate()
            .is_err()
        );
        assert!(Filter::BitDepth { bits: 9 }.validate().is_err());
        assert!(Filter::Median { size: 2 }.validate().is_ok());
    }
}
