//! Small PNG figures drawn directly into pixel buffers: image grids, bar histograms, curves
//! and grouped bars, with numeric tick labels in a built-in 3x5 pixel font.
//! No plotting dependency: a figure is rectangles, images and digits; titles live in the docs.

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

/// A 3x5 glyph: five rows, three bits each (the highest bit is the left column).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b011, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0, 0, 0, 0, 0b010],
        '-' => [0, 0, 0b111, 0, 0],
        '+' => [0, 0b010, 0b111, 0b010, 0],
        'e' => [0, 0b111, 0b111, 0b100, 0b111],
        // Anything else (only a space is ever asked for) is blank.
        _ => [0; 5],
    }
}

/// Pixel size of each glyph cell.
const FONT_SCALE: u32 = 2;

/// Width in pixels of `s` drawn by [`text`].
fn text_width(s: &str) -> u32 {
    (s.chars().count() as u32 * 4).saturating_sub(1) * FONT_SCALE
}

/// Draws `s` in black with its top-left corner at `(x, y)`; pixels off the canvas are skipped.
fn text(img: &mut RgbImage, x: u32, y: u32, s: &str) {
    for (i, c) in s.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3u32 {
                if bits & (0b100 >> col) == 0 {
                    continue;
                }
                for dy in 0..FONT_SCALE {
                    for dx in 0..FONT_SCALE {
                        let px = x + (i as u32 * 4 + col) * FONT_SCALE + dx;
                        let py = y + row as u32 * FONT_SCALE + dy;
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, Rgb([0, 0, 0]));
                        }
                    }
                }
            }
        }
    }
}

/// A tick value in at most four significant characters: integers as integers, small or large
/// magnitudes in `1e-5` form, the rest with up to two decimals (trailing zeros dropped).
pub fn tick_label(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e5).contains(&a) {
        let exp = a.log10().floor() as i32;
        let mantissa = v / 10f64.powi(exp);
        let m = format!("{mantissa:.0}");
        return format!("{m}e{exp}");
    }
    if (v - v.round()).abs() < 1e-9 {
        return format!("{}", v.round() as i64);
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Where a histogram's bins sit on the value axis: bin `b` starts at `first + b * step`.
#[derive(Clone, Copy, Debug)]
pub struct BinAxis {
    /// Value at the left edge of bin 0.
    pub first: f64,
    /// Width of a bin in value units.
    pub step: f64,
}

impl BinAxis {
    /// Integer bins 0, 1, 2, … (Hamming distances).
    pub const INTEGERS: BinAxis = BinAxis {
        first: 0.0,
        step: 1.0,
    };
}

/// Normalised histogram of integer values over bins `0..bins` (larger values go to the last bin).
pub fn density(counts: &[u64]) -> Vec<f64> {
    let n = counts.iter().sum::<u64>().max(1) as f64;
    counts.iter().map(|&c| c as f64 / n).collect()
}

/// Overlaid bar histograms (densities over the same bins, one colour per series, bars side by
/// side), with an optional reference curve over the same bins drawn as dots. Every eighth bin
/// gets a tick labelled with its value on `axis`; the top-left corner gives the tallest
/// bar's density.
pub fn histogram(
    series: &[(Vec<f64>, [u8; 3])],
    curve: Option<(&[f64], [u8; 3])>,
    axis: BinAxis,
    path: &Path,
) -> Result<()> {
    let bins = series.iter().map(|(d, _)| d.len()).max().unwrap_or(1);
    let (bar_w, height) = (8u32 * series.len().max(1) as u32, 240u32);
    let width = bins as u32 * (bar_w + 2) + 40;
    let mut img = RgbImage::from_pixel(width, height + 28, Rgb([255, 255, 255]));
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
        let label = tick_label(axis.first + b as f64 * axis.step);
        text(
            &mut img,
            x.saturating_sub(text_width(&label) / 2),
            height + 9,
            &label,
        );
    }
    text(&mut img, 2, 0, &tick_label(peak));
    save_png(&img, path)
}

/// A polyline in the unit square and its colour.
pub type Curve = (Vec<(f64, f64)>, [u8; 3]);

/// Curves in the unit square (e.g. ROC: x = FPR, y = TPR) on a 400x400 plot with light grid
/// lines every 0.1 and, with `diagonal`, the grey chance line of a ROC plot.
pub fn line_plot(curves: &[Curve], diagonal: bool, path: &Path) -> Result<()> {
    const SIDE: u32 = 400;
    const MARGIN: u32 = 32;
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
    for i in (0..=10).step_by(2) {
        let t = i as f64 / 10.0;
        let label = tick_label(t);
        let (x, y) = to_px(t, 0.0);
        text(&mut img, x - text_width(&label) / 2, y + 6, &label);
        let (x, y) = to_px(0.0, t);
        text(&mut img, x - text_width(&label) - 5, y - 5, &label);
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
    const MARGIN: u32 = 32;
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
        if i % 2 == 0 {
            let label = tick_label(i as f64 / 10.0);
            text(&mut img, MARGIN - text_width(&label) - 5, y - 5, &label);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short_and_exact() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(32.0), "32");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(-5.3), "-5.3");
        assert_eq!(tick_label(-0.001), "-1e-3");
        assert_eq!(tick_label(250000.0), "2e5");
        assert_eq!(tick_label(f64::NAN), "");
    }

    #[test]
    fn text_draws_glyph_pixels_and_clips_at_the_edge() {
        let mut img = RgbImage::from_pixel(20, 12, Rgb([255, 255, 255]));
        text(&mut img, 0, 0, "1");
        // '1' has its top row in the middle column only.
        let black = |x, y| img.get_pixel(x, y).0 == [0, 0, 0];
        assert!(black(FONT_SCALE, 0) && !black(0, 0) && !black(2 * FONT_SCALE, 0));
        assert_eq!(text_width("10"), 7 * FONT_SCALE);
        text(&mut img, 18, 10, "888"); // runs off the canvas: must not panic
    }
}
