//! Turns images into `[batch, channels, height, width]` float tensors in `[0, 1]`, with the
//! training augmentation (a randomly placed window — within a stored frame it is the reference
//! code's random crop, beyond it zero padding — and a horizontal flip) done on the CPU.

use burn::prelude::*;
use rand::Rng;

use super::ImageSet;

/// Training-time augmentation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Largest shift of the window from the centre, in pixels along each axis: pixels come from
    /// the set's stored frame where it has one, zeros beyond (a set stored with frame `f` and a
    /// shift of `f / 2` gives the reference code's random crop).
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

/// Batches a training epoch assembles ahead of the step that consumes them.
pub const PREFETCH: usize = 2;

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
    let pixels = batch_pixels(set, indices, augment, rng);
    Tensor::from_data(
        TensorData::new(pixels, batch_shape(set, indices.len())),
        device,
    )
}

/// The shape of a batch of `n` images of `set`.
pub fn batch_shape(set: &ImageSet, n: usize) -> [usize; 4] {
    [n, set.channels, set.height, set.width]
}

/// Calls `consume(step, pixels)` for each of `batches` in order, with the batch's pixels as
/// [`to_tensor`] lays them out (augmentation drawn from `rng` in batch order, so the result
/// does not depend on timing). A worker thread assembles up to [`PREFETCH`] batches ahead —
/// reading the image cache, cropping, flipping — while `consume` runs the step (inline on
/// wasm). The first error of `consume` stops the epoch and is returned.
pub fn prefetch_batches<R: Rng + Send>(
    set: &ImageSet,
    batches: &[&[usize]],
    augment: Augment,
    mut rng: R,
    mut consume: impl FnMut(usize, Vec<f32>) -> crate::Result<()>,
) -> crate::Result<()> {
    if cfg!(target_arch = "wasm32") {
        for (step, idx) in batches.iter().enumerate() {
            consume(step, batch_pixels(set, idx, augment, &mut rng))?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH);
        scope.spawn(move || {
            for idx in batches {
                // The consumer stopped (an error): stop assembling.
                if tx.send(batch_pixels(set, idx, augment, &mut rng)).is_err() {
                    break;
                }
            }
        });
        for (step, pixels) in rx.iter().enumerate() {
            consume(step, pixels)?;
        }
        Ok(())
    })
}

/// The pixels of [`to_tensor`] on the host.
pub fn batch_pixels(
    set: &ImageSet,
    indices: &[usize],
    augment: Augment,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let [sh, sw] = set.stored_size();
    // The centre window's top-left corner in the stored image.
    let o = (set.frame() / 2) as isize;
    let mut out = vec![0f32; indices.len() * set.image_len()];
    for (dst, &i) in out.chunks_exact_mut(set.image_len()).zip(indices) {
        let src = set.stored_image(i);
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
            let plane = &src[ch * sh * sw..(ch + 1) * sh * sw];
            for y in 0..h {
                let sy = y as isize + o - dy;
                if sy < 0 || sy >= sh as isize {
                    continue;
                }
                let row = &plane[sy as usize * sw..(sy as usize + 1) * sw];
                let out_row = &mut dst[ch * h * w + y * w..ch * h * w + (y + 1) * w];
                for (x, d) in out_row.iter_mut().enumerate() {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as isize + o - dx;
                    if sx >= 0 && sx < sw as isize {
                        *d = row[sx as usize] as f32 / 255.0;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{LabelSet, Pixels};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Two 2-channel images stored 6x7 around a 4x5 centre (frame 2); every stored byte is
    /// distinct and non-zero, so a window's position can be read off its first pixel.
    fn framed_set() -> ImageSet {
        let stored = 2 * 6 * 7;
        let pixels: Vec<u8> = (0..2 * stored).map(|v| (v + 1) as u8).collect();
        let labels = vec![LabelSet::single(0), LabelSet::single(1)];
        let names = vec!["a".into(), "b".into()];
        ImageSet::framed(
            "t",
            "test",
            [2, 4, 5],
            2,
            Pixels::Memory(pixels),
            labels,
            names,
        )
        .unwrap()
    }

    fn values(t: Tensor<4>) -> Vec<u8> {
        let v = t.into_data().try_to_vec::<f32>().unwrap();
        v.iter().map(|&x| (x * 255.0).round() as u8).collect()
    }

    #[test]
    fn without_augmentation_a_framed_set_gives_the_centre_of_each_stored_image() {
        let set = framed_set();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let got = values(to_tensor(
            &set,
            &[1, 0],
            Augment::NONE,
            &mut rng,
            &Device::flex(),
        ));
        let mut want = set.image(1).into_owned();
        want.extend_from_slice(&set.image(0));
        assert_eq!(got, want);
        // The centre of each image: stored rows 1..5, columns 1..6 of each 6x7 plane.
        let image0 = set.image(0);
        assert_eq!(&image0[..5], &[9, 10, 11, 12, 13]);
        assert_eq!(&image0[5..10], &[16, 17, 18, 19, 20]);
        assert_eq!(set.image(1)[0], 84 + 9);
    }

    #[test]
    fn random_crops_stay_inside_the_frame_and_reach_every_offset() {
        let set = framed_set();
        let augment = Augment {
            max_shift: 1,
            hflip: false,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let got = values(to_tensor(&set, &[0], augment, &mut rng, &Device::flex()));
            // No zero padding: every pixel is stored image content.
            assert!(got.iter().all(|&v| v > 0), "{got:?}");
            // The window is a contiguous 4x5 block of the stored 6x7 plane.
            let first = got[0] as usize - 1;
            let (oy, ox) = (first / 7, first % 7);
            for y in 0..4 {
                for x in 0..5 {
                    assert_eq!(got[y * 5 + x] as usize - 1, (oy + y) * 7 + ox + x);
                }
            }
            seen.insert((oy, ox));
        }
        assert_eq!(seen.len(), 9, "all 3x3 window positions: {seen:?}");
    }

    #[test]
    fn prefetched_batches_match_assembling_them_in_turn_and_an_error_stops_the_epoch() {
        let set = framed_set();
        let augment = Augment {
            max_shift: 1,
            hflip: true,
        };
        let batches: Vec<&[usize]> = vec![&[0, 1], &[1], &[1, 0], &[0]];
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let want: Vec<Vec<f32>> = batches
            .iter()
            .map(|b| batch_pixels(&set, b, augment, &mut rng))
            .collect();
        let mut got = Vec::new();
        let rng = ChaCha8Rng::seed_from_u64(4);
        prefetch_batches(&set, &batches, augment, rng, |step, pixels| {
            assert_eq!(step, got.len());
            got.push(pixels);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, want);
        let mut steps = 0;
        let rng = ChaCha8Rng::seed_from_u64(4);
        let err = prefetch_batches(&set, &batches, augment, rng, |step, _| {
            steps += 1;
            if step == 1 {
                Err(crate::Error::Numeric("stop".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!((steps, err.to_string().contains("stop")), (2, true));
    }

    #[test]
    fn shifts_beyond_the_frame_bring_in_zeros_and_flips_mirror_the_window() {
        let pixels: Vec<u8> = (1..=16).collect();
        let set = ImageSet::new(
            "t",
            "test",
            [1, 4, 4],
            pixels,
            vec![LabelSet::single(0)],
            vec!["a".into()],
        )
        .unwrap();
        let augment = Augment {
            max_shift: 1,
            hflip: true,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut zeros, mut flipped) = (false, false);
        for _ in 0..100 {
            let got = values(to_tensor(&set, &[0], augment, &mut rng, &Device::flex()));
            zeros |= got.contains(&0);
            // A row read right to left: a flipped window.
            flipped |= got.chunks(4).any(|r| r[0] > r[3] && r[3] > 0);
        }
        assert!(zeros && flipped);
    }
}
