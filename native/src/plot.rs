//! Small PNG figures drawn directly into pixel buffers: image grids, bar histograms, curves
//! and grouped bars.
//! No plotting dependency: a figure is rectangles and images, labels live in the JSON.

use std::path::Path;

use anyhow::{Context, Result};
use hashguard_core::data::ImageSet;
use hashguard_core::filters::ImageShape;
use hashguard_core::run::write_atomic;
use image::{ImageFormat, Rgb, RgbImage};

/// Border between tiles, in pixels.
const GAP: u32 = 2;

/// A grid of tiles; each tile is an image given as `[channels][h][w]` values in `[0, 1]`.
pub struct Grid {
    canvas: RgbImage,
    tile: (u32, u32),
}

impl Grid {
    /// A `rows` x `cols` grid of `h` x `w` tiles, each scaled up `zoom` times.
    pub fn new(rows: u32, cols: u32, h: u32, w: u32, zoom: u32) -> Self {
        let tile = (w * zoom, h * zoom);
        let canvas = RgbImage::from_pixel(
            cols * (tile.0 + GAP) + GAP,
            rows * (tile.1 + GAP) + GAP,
            Rgb([255, 255, 255]),
        );
        Self { canvas, tile }
    }

    /// Draws `pixels` (CHW floats in `[0, 1]`, 1 or 3 channels) at `(row, col)`, framed in
    /// `frame` colour when given (green = relevant, red = not).
    pub fn put(
        &mut self,
        row: u32,
        col: u32,
        pixels: &[f32],
        shape: ImageShape,
        frame: Option<[u8; 3]>,
    ) {
        let (channels, h, w) = (shape.channels, shape.height, shape.width);
        let zoom = self.tile.0 / w as u32;
        let (x0, y0) = (
            GAP + col * (self.tile.0 + GAP),
            GAP + row * (self.tile.1 + GAP),
        );
        if let Some(c) = frame {
            for dx in 0..self.tile.0 + 2 {
                for dy in [0, self.tile.1 + 1] {
                    self.canvas.put_pixel(x0 + dx - 1, y0 + dy - 1, Rgb(c));
                }
            }
            for dy in 0..self.tile.1 + 2 {
                for dx in [0, self.tile.0 + 1] {
                    self.canvas.put_pixel(x0 + dx - 1, y0 + dy - 1, Rgb(c));
                }
            }
        }
        for y in 0..h {
            for x in 0..w {
                let v = |ch: usize| {
                    (pixels[ch * h * w + y * w + x].clamp(0.0, 1.0) * 255.0).round() as u8
                };
                let rgb = if channels == 3 {
                    [v(0), v(1), v(2)]
                } else {
                    [v(0); 3]
                };
                for zy in 0..zoom {
                    for zx in 0..zoom {
                        self.canvas.put_pixel(
                            x0 + x as u32 * zoom + zx,
                            y0 + y as u32 * zoom + zy,
                            Rgb(rgb),
                        );
                    }
                }
            }
        }
    }

    /// Draws database image `index` of `set`.
    pub fn put_image(
        &mut self,
        row: u32,
        col: u32,
        set: &ImageSet,
        index: usize,
        frame: Option<[u8; 3]>,
    ) {
        let px: Vec<f32> = set.image(index).iter().map(|&v| v as f32 / 255.0).collect();
        self.put(row, col, &px, set.shape(), frame);
    }

    /// Writes the PNG atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_png(&self.canvas, path)
    }
}

fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Png)
        .context("encoding PNG")?;
    write_atomic(path, bytes.get_ref())?;
    Ok(())
}

/// Normalised histogram of integer values over bins `0..bins` (larger values go to the last bin).
pub fn density(counts: &[u64]) -> Vec<f64> {
    let n = counts.iter().sum::<u64>().max(1) as f64;
    counts.iter().map(|&c| c as f64 / n).collect()
}

/// Overlaid bar histograms (densities over the same bins, one colour per series, bars side by
/// side), with an optional reference curve over the same bins drawn as dots.
pub fn histogram(
    series: &[(Vec<f64>, [u8; 3])],
    curve: Option<(&[f64], [u8; 3])>,
    path: &Path,
) -> Result<()> {
    let bins = series.iter().map(|(d, _)| d.len()).max().unwrap_or(1);
    let (bar_w, height) = (8u32 * series.len().max(1) as u32, 240u32);
    let width = bins as u32 * (bar_w + 2) + 20;
    let mut img = RgbImage::from_pixel(width, height + 20, Rgb([255, 255, 255]));
    let counts: Vec<&Vec<f64>> = series.iter().map(|(d, _)| d).collect();
    let peak = counts
        .iter()
        .flat_map(|c| c.iter().copied())
        .chain(curve.iter().flat_map(|(c, _)| c.iter().copied()))
        .fold(1e-9, f64::max);
    for (s, (c, (_, colour))) in counts.iter().zip(series).enumerate() {
        for (b, &frac) in c.iter().enumerate() {
            let h = (frac / peak * (height - 10) as f64).round() as u32;
            let x0 = 10 + b as u32 * (bar_w + 2) + s as u32 * 8;
            for x in x0..x0 + 7 {
                for y in height - h..height {
                    img.put_pixel(x, y, Rgb(*colour));
                }
            }
        }
    }
    if let Some((density, colour)) = curve {
        for (b, &d) in density.iter().enumerate().take(bins) {
            let y = height - (d / peak * (height - 10) as f64).round() as u32;
            let x = 10 + b as u32 * (bar_w + 2) + bar_w / 2;
            for dx in 0..3 {
                for dy in 0..3 {
                    img.put_pixel(
                        (x + dx).min(width - 1),
                        (y + dy).saturating_sub(1).min(height + 19),
                        Rgb(colour),
                    );
                }
            }
        }
    }
    // Axis and a tick every 8 bins.
    for x in 10..width - 10 {
        img.put_pixel(x, height, Rgb([0, 0, 0]));
    }
    for b in (0..bins).step_by(8) {
        let x = 10 + b as u32 * (bar_w + 2);
        for y in height..height + 6 {
            img.put_pixel(x, y, Rgb([0, 0, 0]));
        }
    }
    save_png(&img, path)
}

/// A polyline in the unit square and its colour.
pub type Curve = (Vec<(f64, f64)>, [u8; 3]);

/// Curves in the unit square (e.g. ROC: x = FPR, y = TPR) on a 400x400 plot with light grid
/// lines every 0.1 and, with `diagonal`, the grey chance line of a ROC plot.
pub fn line_plot(curves: &[Curve], diagonal: bool, path: &Path) -> Result<()> {
    const SIDE: u32 = 400;
    const MARGIN: u32 = 20;
    let mut img = RgbImage::from_pixel(SIDE + 2 * MARGIN, SIDE + 2 * MARGIN, Rgb([255, 255, 255]));
    let to_px = |x: f64, y: f64| {
        (
            MARGIN + (x.clamp(0.0, 1.0) * SIDE as f64).round() as u32,
            MARGIN + SIDE - (y.clamp(0.0, 1.0) * SIDE as f64).round() as u32,
        )
    };
    for i in 0..=10 {
        let t = i as f64 / 10.0;
        for j in 0..=SIDE {
            let s = j as f64 / SIDE as f64;
            let shade = if i == 0 || i == 10 { 0 } else { 225 };
            for (x, y) in [to_px(t, s), to_px(s, t)] {
                img.put_pixel(x, y, Rgb([shade; 3]));
            }
            if diagonal {
                let (x, y) = to_px(s, s);
                img.put_pixel(x, y, Rgb([170; 3]));
            }
        }
    }
    for (points, colour) in curves {
        for w in points.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            let steps = (((x1 - x0).abs().max((y1 - y0).abs())) * SIDE as f64).ceil() as u32 + 1;
            for s in 0..=steps {
                let t = s as f64 / steps as f64;
                let (x, y) = to_px(x0 + t * (x1 - x0), y0 + t * (y1 - y0));
                for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                    img.put_pixel(
                        (x + dx).min(SIDE + 2 * MARGIN - 1),
                        (y + dy).min(SIDE + 2 * MARGIN - 1),
                        Rgb(*colour),
                    );
                }
            }
        }
    }
    save_png(&img, path)
}

/// Groups of bars with heights in `[0, 1]` (e.g. one group per model: clean mAP, then mAP
/// under stronger and stronger attacks), the first bar of a group blue, the others grey,
/// darker with their position; light grid lines every 0.1.
pub fn bar_groups(groups: &[Vec<f64>], path: &Path) -> Result<()> {
    const HEIGHT: u32 = 300;
    const MARGIN: u32 = 20;
    const BAR: u32 = 12;
    let per = groups.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
    let group_w = per * BAR + 16;
    let width = 2 * MARGIN + group_w * groups.len().max(1) as u32;
    let mut img = RgbImage::from_pixel(width, HEIGHT + 2 * MARGIN, Rgb([255, 255, 255]));
    for i in 0..=10 {
        let y = MARGIN + HEIGHT - HEIGHT * i / 10;
        let shade = if i == 0 { 0 } else { 225 };
        for x in MARGIN..width - MARGIN {
            img.put_pixel(x, y, Rgb([shade; 3]));
        }
    }
    for (g, values) in groups.iter().enumerate() {
        for (b, &v) in values.iter().enumerate() {
            let colour = if b == 0 {
                [60, 110, 200]
            } else {
                let t = b as f64 / per.max(2) as f64;
                [(200.0 - 150.0 * t) as u8; 3]
            };
            let h = (v.clamp(0.0, 1.0) * HEIGHT as f64).round() as u32;
            let x0 = MARGIN + 8 + g as u32 * group_w + b as u32 * BAR;
            for x in x0..x0 + BAR - 2 {
                for y in MARGIN + HEIGHT - h..MARGIN + HEIGHT {
                    img.put_pixel(x, y, Rgb(colour));
                }
            }
        }
    }
    save_png(&img, path)
}
