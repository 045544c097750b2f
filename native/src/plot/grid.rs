//! Image grids: tiles of images (originals, adversarial examples, retrieved neighbours) with
//! coloured frames, saved as one PNG.

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

/// Encodes `img` as PNG and writes it atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Png)
        .context("encoding PNG")?;
    write_atomic(path, bytes.get_ref())?;
    Ok(())
}
