//! Non-local means (Buades et al.), the form feature squeezing used through OpenCV: each pixel
//! becomes a weighted mean over a search window, weights `exp(-d²/h²)` from the mean squared
//! difference `d²` (0–255 scale) between the patches around the two pixels.

use super::{ImageShape, reflect};

/// Non-local means with odd `search` and `patch` sides and strength `h` on the 0–255 scale.
///
/// The image is first padded by `search/2 + patch/2` pixels (SciPy `reflect`), and every patch
/// is read from that padded image, so border pixels compare against mirrored neighbours.
/// Distances average over the patch and the channels; all channels share one weight per
/// neighbour, as OpenCV's coloured variant does. Runs in O(pixels · search²) with one box sum
/// over the patch per search offset.
pub fn non_local_means(
    image: &[f32],
    shape: ImageShape,
    search: usize,
    patch: usize,
    h: f32,
) -> Vec<f32> {
    let (s, p) = ((search / 2) as isize, (patch / 2) as isize);
    let pad = s + p;
    let padded = Padded::new(image, shape, pad);
    let (hh, ww) = (shape.height as isize, shape.width as isize);
    let scale = 255.0f32 * 255.0 / (patch * patch * shape.channels) as f32;
    let inv_h2 = 1.0 / (h * h);
    // Squared differences over the patch-extended region, then box sums over patches.
    let (eh, ew) = (hh + 2 * p, ww + 2 * p);
    let mut diff = vec![0.0f32; (eh * ew) as usize];
    let mut rows = vec![0.0f32; (hh * ew) as usize];
    let mut weight_sum = vec![0.0f32; shape.plane()];
    let mut acc = vec![0.0f32; image.len()];
    for dy in -s..=s {
        for dx in -s..=s {
            for y in 0..eh {
                for x in 0..ew {
                    let (py, px) = (y - p, x - p);
                    let mut d = 0.0;
                    for c in 0..shape.channels {
                        let t = padded.at(c, py, px) - padded.at(c, py + dy, px + dx);
                        d += t * t;
                    }
                    diff[(y * ew + x) as usize] = d;
                }
            }
            // Vertical then horizontal patch sums.
            for y in 0..hh {
                for x in 0..ew {
                    rows[(y * ew + x) as usize] = (0..2 * p + 1)
                        .map(|i| diff[((y + i) * ew + x) as usize])
                        .sum();
                }
            }
            for y in 0..hh {
                for x in 0..ww {
                    let d2: f32 = (0..2 * p + 1)
                        .map(|j| rows[(y * ew + x + j) as usize])
                        .sum::<f32>()
                        * scale;
                    let wgt = (-d2 * inv_h2).exp();
                    let i = (y * ww + x) as usize;
                    weight_sum[i] += wgt;
                    for c in 0..shape.channels {
                        acc[c * shape.plane() + i] += wgt * padded.at(c, y + dy, x + dx);
                    }
                }
            }
        }
    }
    acc.iter()
        .enumerate()
        .map(|(i, v)| v / weight_sum[i % shape.plane()])
        .collect()
}

/// An image padded on every side with SciPy `reflect` borders.
pub(crate) struct Padded {
    data: Vec<f32>,
    pad: isize,
    side_w: isize,
    plane: isize,
}

impl Padded {
    pub(crate) fn new(image: &[f32], shape: ImageShape, pad: isize) -> Self {
        let (ph, pw) = (
            shape.height as isize + 2 * pad,
            shape.width as isize + 2 * pad,
        );
        let mut data = Vec::with_capacity((ph * pw) as usize * shape.channels);
        for c in 0..shape.channels {
            for y in -pad..shape.height as isize + pad {
                let row = reflect(y, shape.height);
                for x in -pad..shape.width as isize + pad {
                    data.push(
                        image[c * shape.plane() + row * shape.width + reflect(x, shape.width)],
                    );
                }
            }
        }
        Self {
            data,
            pad,
            side_w: pw,
            plane: ph * pw,
        }
    }

    /// Pixel at image coordinates `(y, x)`, which may lie up to `pad` outside the image.
    pub(crate) fn at(&self, c: usize, y: isize, x: isize) -> f32 {
        self.data[(c as isize * self.plane + (y + self.pad) * self.side_w + x + self.pad) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::super::window::tests::random_images;
    use super::*;

    /// Straight from the definition: for each pixel, each neighbour, each patch offset.
    fn naive(im: &[f32], sh: ImageShape, search: usize, patch: usize, h: f32) -> Vec<f32> {
        let (s, p) = ((search / 2) as isize, (patch / 2) as isize);
        let pd = Padded::new(im, sh, s + p);
        let mut out = vec![0.0; im.len()];
        for y in 0..sh.height as isize {
            for x in 0..sh.width as isize {
                let (mut wsum, mut vals) = (0.0f64, vec![0.0f64; sh.channels]);
                for dy in -s..=s {
                    for dx in -s..=s {
                        let mut d2 = 0.0f64;
                        for c in 0..sh.channels {
                            for oy in -p..=p {
                                for ox in -p..=p {
                                    let a = pd.at(c, y + oy, x + ox) as f64 * 255.0;
                                    let b = pd.at(c, y + dy + oy, x + dx + ox) as f64 * 255.0;
                                    d2 += (a - b) * (a - b);
                                }
                            }
                        }
                        d2 /= (patch * patch * sh.channels) as f64;
                        let w = (-d2 / (h as f64 * h as f64)).exp();
                        wsum += w;
                        for (c, v) in vals.iter_mut().enumerate() {
                            *v += w * pd.at(c, y + dy, x + dx) as f64;
                        }
                    }
                }
                for (c, v) in vals.iter().enumerate() {
                    out[c * sh.plane() + (y as usize) * sh.width + x as usize] = (v / wsum) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn equals_naive_definition() {
        for (im, sh) in random_images(3) {
            // Small pixel differences so that the weights are not all ~0.
            let im: Vec<f32> = im.iter().map(|v| 0.5 + 0.02 * v).collect();
            for (search, patch, h) in [(3, 1, 3.0), (5, 3, 4.0), (13, 3, 2.0)] {
                let got = non_local_means(&im, sh, search, patch, h);
                let want = naive(&im, sh, search, patch, h);
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() < 1e-4,
                        "{search}-{patch}-{h} {sh:?}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn strong_filter_flattens_noise() {
        let (im, sh) = random_images(4).remove(3);
        let out = non_local_means(&im, sh, 5, 3, 1e4);
        let spread = |v: &[f32]| {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            v.iter().map(|x| (x - m).powi(2)).sum::<f32>()
        };
        assert!(spread(&out) < 0.2 * spread(&im));
    }
}
