//! Turns images into `[batch, channels, height, width]` float tensors in `[0, 1]`, with the
//! training augmentation (random shift with zero padding, horizontal flip) done on the CPU.

use burn::prelude::*;
use rand::Rng;

use super::ImageSet;

/// Training-time augmentation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Largest shift in pixels along each axis (the vacated border is zero).
    pub max_shift: usize,
    /// Flip half the images left-right.
    pub hflip: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        max_shift: 0,
        hflip: false,
    };
}

/// Stacks the images at `indices` into a tensor on `device`, augmented with `augment` drawn
/// from `rng`.
///
/// # Shapes
/// - output: `[indices.len(), channels, height, width]`, values in `[0, 1]`
pub fn to_tensor(
    set: &ImageSet,
    indices: &[usize],
    augment: Augment,
    rng: &mut impl Rng,
    device: &Device,
) -> Tensor<4> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let mut out = vec![0f32; indices.len() * set.image_len()];
    for (dst, &i) in out.chunks_exact_mut(set.image_len()).zip(indices) {
        let src = set.image(i);
        let s = augment.max_shift as i32;
        let (dy, dx) = if s > 0 {
            (
                rng.random_range(-s..=s) as isize,
                rng.random_range(-s..=s) as isize,
            )
        } else {
            (0, 0)
        };
        let flip = augment.hflip && rng.random_bool(0.5);
        for ch in 0..c {
            for y in 0..h {
                let sy = y as isize - dy;
                if sy < 0 || sy >= h as isize {
                    continue;
                }
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as isize - dx;
                    if sx < 0 || sx >= w as isize {
                        continue;
                    }
                    dst[ch * h * w + y * w + x] =
                        src[ch * h * w + sy as usize * w + sx as usize] as f32 / 255.0;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [indices.len(), c, h, w]), device)
}
