//! FS-Adaptive (Liang et al., "Detecting adversarial image examples in deep neural networks with
//! adaptive noise reduction"): the image's entropy picks how coarsely it is quantised, and
//! high-entropy images are also smoothed with a cross-shaped 3x3 mean filter.

use super::{ImageShape, quantise, reflect};

/// Shannon entropy (bits) of the image's 256-level histogram, all channels pooled.
pub fn entropy_bits(image: &[f32]) -> f32 {
    let mut hist = [0u32; 256];
    for &v in image {
        hist[(v.clamp(0.0, 1.0) * 255.0).round() as usize] += 1;
    }
    let n = image.len().max(1) as f32;
    hist.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

/// Liang et al.'s adaptive squeezer. Entropy H < 4 → 2 quantisation levels, 4 ≤ H < 5 → 4,
/// H ≥ 5 → 6 levels (evenly spaced over `[0, 1]`, so 0 and 1 stay put); images with H ≥ 5 are
/// then smoothed by the mean over each pixel and its 4 neighbours (SciPy `reflect` borders).
/// Deviation: the paper gives interval counts; which value an interval maps to is not fixed
/// there, and the evenly spaced levels here keep black and white backgrounds unchanged.
pub fn adaptive_squeeze(image: &[f32], shape: ImageShape) -> Vec<f32> {
    let entropy = entropy_bits(image);
    let levels = if entropy < 4.0 {
        2
    } else if entropy < 5.0 {
        4
    } else {
        6
    };
    let q = quantise(image, levels - 1);
    if entropy < 5.0 {
        return q;
    }
    let (h, w) = (shape.height, shape.width);
    let mut out = vec![0.0; q.len()];
    for (src, dst) in q.chunks(shape.plane()).zip(out.chunks_mut(shape.plane())) {
        for y in 0..h {
            for x in 0..w {
                let at = |dy: isize, dx: isize| {
                    src[reflect(y as isize + dy, h) * w + reflect(x as isize + dx, w)]
                };
                dst[y * w + x] = (at(0, 0) + at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1)) / 5.0;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_histograms() {
        assert_eq!(entropy_bits(&[0.5; 16]), 0.0);
        let two: Vec<f32> = (0..16).map(|i| (i % 2) as f32).collect();
        assert!((entropy_bits(&two) - 1.0).abs() < 1e-6);
        let all: Vec<f32> = (0..256).map(|i| i as f32 / 255.0).collect();
        assert!((entropy_bits(&all) - 8.0).abs() < 1e-5);
    }

    #[test]
    fn low_entropy_images_are_binarised() {
        let shape = ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        };
        assert_eq!(
            adaptive_squeeze(&[0.1, 0.6, 0.0, 1.0], shape),
            vec![0.0, 1.0, 0.0, 1.0]
        );
    }

    #[test]
    fn high_entropy_images_are_quantised_then_smoothed() {
        let shape = ImageShape {
            channels: 1,
            height: 16,
            width: 16,
        };
        let image: Vec<f32> = (0..256).map(|i| ((i * 37) % 256) as f32 / 255.0).collect();
        let out = adaptive_squeeze(&image, shape);
        let q = quantise(&image, 5);
        // Pixel (5, 7): the cross mean of the 6-level image.
        let at = |y: usize, x: usize| q[y * 16 + x];
        let want = (at(5, 7) + at(4, 7) + at(6, 7) + at(5, 6) + at(5, 8)) / 5.0;
        assert!((out[5 * 16 + 7] - want).abs() < 1e-6);
    }
}
