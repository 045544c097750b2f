//! Sliding-window filters with SciPy's `reflect` borders: a separable running-sum mean filter
//! and a median filter by partial selection (upper median for even windows, as SciPy).

use super::{ImageShape, reflect, window_offsets};

/// `size`x`size` mean filter, each channel separately.
pub fn mean_blur(image: &[f32], shape: ImageShape, size: usize) -> Vec<f32> {
    let (h, w) = (shape.height, shape.width);
    let offsets = window_offsets(size);
    let (lo, hi) = (*offsets.start(), *offsets.end());
    let norm = 1.0 / (size * size) as f32;
    let mut out = vec![0.0; image.len()];
    let mut rows = vec![0.0f32; shape.plane()];
    let mut line = Vec::with_capacity(h.max(w) + size);
    for (src, dst) in image
        .chunks(shape.plane())
        .zip(out.chunks_mut(shape.plane()))
    {
        // Horizontal running sums over each reflected row.
        for y in 0..h {
            line.clear();
            line.extend((lo..w as isize + hi).map(|x| src[y * w + reflect(x, w)]));
            let mut acc: f32 = line[..size].iter().sum();
            rows[y * w] = acc;
            for x in 1..w {
                acc += line[x + size - 1] - line[x - 1];
                rows[y * w + x] = acc;
            }
        }
        // Vertical running sums over each reflected column of the row sums.
        for x in 0..w {
            line.clear();
            line.extend((lo..h as isize + hi).map(|y| rows[reflect(y, h) * w + x]));
            let mut acc: f32 = line[..size].iter().sum();
            dst[x] = acc * norm;
            for y in 1..h {
                acc += line[y + size - 1] - line[y - 1];
                dst[y * w + x] = acc * norm;
            }
        }
    }
    out
}

/// `size`x`size` median filter, each channel separately; for an even number of window values
/// the upper of the two middle ones (SciPy's `median_filter`).
pub fn median(image: &[f32], shape: ImageShape, size: usize) -> Vec<f32> {
    let (h, w) = (shape.height, shape.width);
    let mut out = vec![0.0; image.len()];
    let mut window = Vec::with_capacity(size * size);
    let mid = size * size / 2;
    for (src, dst) in image
        .chunks(shape.plane())
        .zip(out.chunks_mut(shape.plane()))
    {
        for y in 0..h {
            for x in 0..w {
                window.clear();
                for dy in window_offsets(size) {
                    let row = reflect(y as isize + dy, h) * w;
                    for dx in window_offsets(size) {
                        window.push(src[row + reflect(x as isize + dx, w)]);
                    }
                }
                let (_, m, _) = window.select_nth_unstable_by(mid, f32::total_cmp);
                dst[y * w + x] = *m;
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random images of assorted shapes.
    pub(crate) fn random_images(seed: u64) -> Vec<(Vec<f32>, ImageShape)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        [(1, 7, 5), (3, 4, 9), (1, 1, 6), (2, 10, 10)]
            .into_iter()
            .map(|(channels, height, width)| {
                let shape = ImageShape {
                    channels,
                    height,
                    width,
                };
                (
                    (0..shape.len()).map(|_| rng.random::<f32>()).collect(),
                    shape,
                )
            })
            .collect()
    }

    /// Every window value of pixel (c, y, x), SciPy-reflected.
    fn window_values(
        im: &[f32],
        s: ImageShape,
        size: usize,
        c: usize,
        y: usize,
        x: usize,
    ) -> Vec<f32> {
        let half = (size / 2) as isize;
        let mut v = Vec::new();
        for i in 0..size as isize {
            for j in 0..size as isize {
                let yy = reflect(y as isize - half + i, s.height);
                let xx = reflect(x as isize - half + j, s.width);
                v.push(im[c * s.plane() + yy * s.width + xx]);
            }
        }
        v
    }

    fn naive(im: &[f32], s: ImageShape, size: usize, f: impl Fn(Vec<f32>) -> f32) -> Vec<f32> {
        let mut out = Vec::new();
        for c in 0..s.channels {
            for y in 0..s.height {
                for x in 0..s.width {
                    out.push(f(window_values(im, s, size, c, y, x)));
                }
            }
        }
        out
    }

    #[test]
    fn mean_blur_equals_naive_window_average() {
        for (im, s) in random_images(1) {
            for size in [1, 2, 3, 4, 5] {
                let want = naive(&im, s, size, |v| v.iter().sum::<f32>() / v.len() as f32);
                let got = mean_blur(&im, s, size);
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "size {size} {s:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn median_equals_naive_sorted_window() {
        for (im, s) in random_images(2) {
            for size in [1, 2, 3, 5] {
                let want = naive(&im, s, size, |mut v| {
                    v.sort_by(f32::total_cmp);
                    v[v.len() / 2]
                });
                assert_eq!(median(&im, s, size), want, "size {size} {s:?}");
            }
        }
    }

    #[test]
    fn mean_blur_keeps_constant_images() {
        let s = ImageShape {
            channels: 1,
            height: 5,
            width: 5,
        };
        let got = mean_blur(&[0.25; 25], s, 3);
        assert!(got.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }
}
