//! Natural images from files: decoding (JPEG, PNG, GIF, BMP, WebP through the `image` crate,
//! with size limits), the evaluation transform of the field's reference code (resize the
//! shorter side to S, centre-crop C x C) and a multi-threaded decoder for whole lists.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{ImageReader, Limits, RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};

use super::ReadLimits;
use crate::progress::Progress;
use crate::{Error, Result};

/// Largest width or height a decoder accepts by default: a bigger image is refused before its
/// pixels are allocated (a 1 kB header cannot claim a 10 GB bitmap). [`ReadLimits`] changes it.
pub const MAX_SIDE: u32 = ReadLimits::DEFAULT.max_side;
/// Largest allocation a decoder may make for one image by default ([`ReadLimits`]).
pub const MAX_DECODE_BYTES: u64 = ReadLimits::DEFAULT.max_decode_bytes;

/// How decoded images become the network's input: shorter side resized to `resize`, then the
/// centre `crop` x `crop` square (torchvision's `Resize(S)` + `CenterCrop(C)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageGeometry {
    /// Length of the shorter side after resizing, in pixels.
    pub resize: u32,
    /// Side of the square centre crop, in pixels.
    pub crop: u32,
}

impl ImageGeometry {
    /// The reference code's ImageNet geometry: resize to 256, crop 224.
    pub const IMAGENET: ImageGeometry = ImageGeometry {
        resize: 256,
        crop: 224,
    };

    /// A `crop` x `crop` input with the ImageNet ratio of resize to crop (256 : 224), or
    /// `resize` when given.
    pub fn new(crop: u32, resize: Option<u32>) -> Result<Self> {
        let resize = resize.unwrap_or_else(|| (crop * 8).div_ceil(7));
        let g = Self { resize, crop };
        g.validate()?;
        Ok(g)
    }

    /// Checks the sizes: 8 ≤ crop ≤ resize ≤ 4096.
    pub fn validate(&self) -> Result<()> {
        if self.crop < 8 || self.crop > 4096 {
            return Err(Error::InvalidArgument(format!(
                "--image-size {} is out of range (8..=4096; 224 is the field's usual input)",
                self.crop
            )));
        }
        if self.resize < self.crop || self.resize > 4096 {
            return Err(Error::InvalidArgument(format!(
                "--resize {} must lie between --image-size {} and 4096",
                self.resize, self.crop
            )));
        }
        Ok(())
    }

    /// Bytes of one transformed RGB image.
    pub fn image_len(&self) -> usize {
        3 * self.crop as usize * self.crop as usize
    }

    /// The stored geometry of a training set: the whole centre `resize` square, from which
    /// training takes random `crop` windows and evaluation the centre one.
    pub fn stored(&self) -> ImageGeometry {
        ImageGeometry {
            resize: self.resize,
            crop: self.resize,
        }
    }

    /// Pixels the stored square exceeds the crop by, along each axis.
    pub fn frame(&self) -> usize {
        (self.resize - self.crop) as usize
    }
}

/// Decodes the image file at `path` to RGB, transparent pixels composited onto white.
pub fn decode_file(path: &Path) -> Result<RgbImage> {
    let reader = ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    decode(reader, path)
}

/// Decodes an in-memory image (any supported format) to RGB; `name` appears in errors.
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<RgbImage> {
    decode(
        ImageReader::new(std::io::Cursor::new(bytes)),
        Path::new(name),
    )
}

/// Decodes an in-memory image like [`decode_bytes`] and resizes it (triangle filter) to
/// `width` x `height` grey pixels in `[0, 1]`, row-major: a user's upload turned into a
/// grey model's input (the browser demo's path).
pub fn decode_grey(bytes: &[u8], name: &str, width: u32, height: u32) -> Result<Vec<f32>> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidArgument(format!(
            "cannot resize {name} to {width}x{height}: both sides must be at least 1"
        )));
    }
    let rgb = decode_bytes(bytes, name)?;
    let grey = image::DynamicImage::ImageRgb8(rgb)
        .resize_exact(width, height, image::imageops::FilterType::Triangle)
        .to_luma8();
    Ok(grey
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect())
}

fn decode<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    path: &Path,
) -> Result<RgbImage> {
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        return Err(Error::format(path, "not an image in a known format"));
    }
    let caps = ReadLimits::current();
    let mut limits = Limits::default();
    limits.max_image_width = Some(caps.max_side);
    limits.max_image_height = Some(caps.max_side);
    limits.max_alloc = Some(caps.max_decode_bytes);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l)
            if matches!(
                l.kind(),
                image::error::LimitErrorKind::DimensionError
                    | image::error::LimitErrorKind::InsufficientMemory
            ) =>
        {
            Error::format(
                path,
                format!(
                    "too large to decode (over {} pixels a side or {} MiB): use a smaller \
                     image, or raise --max-image-side and --max-image-mib if it is genuine",
                    caps.max_side,
                    caps.max_decode_bytes >> 20
                ),
            )
        }
        e => Error::format(path, format!("cannot decode: {e}")),
    })?;
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::format(path, "image has no pixels"));
    }
    Ok(if image.color().has_alpha() {
        over_white(&image.to_rgba8())
    } else {
        image.to_rgb8()
    })
}

/// Composites an RGBA image onto a white background (stamps and icons are mostly
/// transparent; their hidden colour values are arbitrary).
fn over_white(rgba: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let a = u16::from(a);
        let mix = |v: u8| ((u16::from(v) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([mix(r), mix(g), mix(b)])
    })
}

/// Version of [`transform`]'s arithmetic, part of image-cache keys: a cache written by another
/// version is decoded again.
pub const TRANSFORM_VERSION: u32 = 2;

/// The evaluation transform: resize the shorter side to `g.resize` (bilinear, antialiased
/// when shrinking), crop the centre `g.crop` square, and lay the bytes out channel-major.
/// Only the crop's source window is resampled (SIMD convolution, fast_image_resize), straight
/// to `crop x crop`: the pixels of resizing the whole image (the image crate's bilinear filter)
/// and cropping it, to within two grey levels (tested), at a quarter of the cost or less.
pub fn transform(image: &RgbImage, g: ImageGeometry) -> Vec<u8> {
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let (w, h) = (image.width(), image.height());
    let scale = g.resize as f64 / w.min(h) as f64;
    let nw = ((w as f64 * scale).round() as u32).max(g.crop);
    let nh = ((h as f64 * scale).round() as u32).max(g.crop);
    let (x0, y0) = ((nw - g.crop) / 2, (nh - g.crop) / 2);
    let side = g.crop as usize;
    let rgb: std::borrow::Cow<'_, [u8]> = if (nw, nh) == (w, h) {
        // No resampling: copy the centre window.
        let row = 3 * w as usize;
        let mut v = Vec::with_capacity(3 * side * side);
        for y in y0 as usize..y0 as usize + side {
            let start = y * row + 3 * x0 as usize;
            v.extend_from_slice(&image.as_raw()[start..start + 3 * side]);
        }
        v.into()
    } else {
        let (sx, sy) = (nw as f64 / w as f64, nh as f64 / h as f64);
        let src = ImageRef::new(w, h, image.as_raw(), PixelType::U8x3)
            .expect("an RgbImage holds width x height x 3 bytes");
        let mut dst = Image::new(g.crop, g.crop, PixelType::U8x3);
        // The window in source pixels, kept inside the image: when the crop spans a whole
        // side, crop / scale may exceed it by a rounding error.
        let (left, top) = (x0 as f64 / sx, y0 as f64 / sy);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(
                left,
                top,
                (g.crop as f64 / sx).min(w as f64 - left),
                (g.crop as f64 / sy).min(h as f64 - top),
            );
        Resizer::new()
            .resize(&src, &mut dst, &options)
            .expect("same pixel type, a crop inside the image");
        dst.into_vec().into()
    };
    let plane = side * side;
    let mut out = vec![0u8; 3 * plane];
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        out[i] = p[0];
        out[plane + i] = p[1];
        out[2 * plane + i] = p[2];
    }
    out
}

/// What happened to one file of a list being decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadImage {
    /// The file.
    pub path: PathBuf,
    /// Why it could not be used.
    pub reason: String,
}

/// Runs `work(i)` for `i` in `0..n` on worker threads (one per core, at most 16; inline on
/// wasm), ticking `progress` once per item, and returns the results in order.
pub fn parallel_map<T: Send>(
    n: usize,
    work: impl Fn(usize) -> T + Sync,
    progress: &mut dyn Progress,
) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, 16)
        .min(n.max(1));
    if cfg!(target_arch = "wasm32") || workers == 1 {
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = Some(work(i));
            progress.inc(1);
        }
    } else {
        let next = AtomicUsize::new(0);
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, T)>(4 * workers);
        std::thread::scope(|s| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (next, work) = (&next, &work);
                s.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n || tx.send((i, work(i))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (i, r) in rx {
                slots[i] = Some(r);
                progress.inc(1);
            }
        });
    }
    slots
        .into_iter()
        .map(|s| s.expect("every index is worked on"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decode_images;
    use crate::progress::Silent;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 7])
        })
    }

    #[test]
    fn transform_resizes_the_shorter_side_and_crops_the_centre() {
        let g = ImageGeometry { resize: 8, crop: 4 };
        // 16x32 → 8x16 → centre 4x4 at (2, 6).
        let out = transform(&gradient(16, 32), g);
        assert_eq!(out.len(), 3 * 16);
        // Red grows left to right, green top to bottom, blue is constant.
        assert!(out[0] < out[3], "{out:?}");
        assert!(out[16] < out[16 + 12]);
        assert!(out[32..].iter().all(|&b| b == 7));
        // The crop is the centre: green around the middle of the image's height.
        let mid = out[16 + 4 * 2] as i32;
        assert!((mid - 128).abs() < 24, "{mid}");
    }

    /// The window-only SIMD resampling agrees with resizing the whole image (the image crate's
    /// bilinear filter) and then cropping to within a grey level (rounding).
    #[test]
    fn transform_matches_resizing_the_whole_image_then_cropping() {
        for (w, h, g) in [
            (
                50,
                37,
                ImageGeometry {
                    resize: 32,
                    crop: 28,
                },
            ),
            (
                300,
                420,
                ImageGeometry {
                    resize: 64,
                    crop: 56,
                },
            ),
            (
                20,
                30,
                ImageGeometry {
                    resize: 40,
                    crop: 36,
                },
            ),
        ] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                let v =
                    |k: f64| (127.0 + 120.0 * ((x as f64 * k).sin() * (y as f64 / k).cos())) as u8;
                image::Rgb([v(0.11), v(0.07), v(0.23)])
            });
            let scale = g.resize as f64 / w.min(h) as f64;
            let (nw, nh) = (
                ((w as f64 * scale).round() as u32).max(g.crop),
                ((h as f64 * scale).round() as u32).max(g.crop),
            );
            let whole =
                image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
            let (x0, y0) = ((nw - g.crop) / 2, (nh - g.crop) / 2);
            let ours = transform(&img, g);
            let side = g.crop as usize;
            let (mut sum, mut max) = (0u64, 0u8);
            for y in 0..side {
                for x in 0..side {
                    let p = whole.get_pixel(x0 + x as u32, y0 + y as u32).0;
                    for c in 0..3 {
                        let d = ours[c * side * side + y * side + x].abs_diff(p[c]);
                        sum += u64::from(d);
                        max = max.max(d);
                    }
                }
            }
            let mean = sum as f64 / (3 * side * side) as f64;
            assert!(
                mean < 0.5 && max <= 2,
                "{w}x{h} {g:?}: mean {mean}, max {max}"
            );
        }
    }

    /// A training set stores the whole S x S centre square; the centre C window of it is the
    /// evaluation transform's image (the same resampling, the same offsets when S - C is even).
    #[test]
    fn the_stored_square_holds_the_evaluation_crop_at_its_centre() {
        let img = RgbImage::from_fn(90, 61, |x, y| {
            image::Rgb([(x * 2) as u8, (y * 4) as u8, ((x * y) % 251) as u8])
        });
        let g = ImageGeometry {
            resize: 40,
            crop: 32,
        };
        let (stored, eval) = (transform(&img, g.stored()), transform(&img, g));
        assert_eq!(stored.len(), 3 * 40 * 40);
        let set = crate::data::ImageSet::framed(
            "t",
            "test",
            [3, 32, 32],
            g.frame(),
            crate::data::Pixels::Memory(stored),
            vec![crate::data::LabelSet::single(0)],
            vec!["a".into()],
        )
        .unwrap();
        let centre = set.image(0);
        let max = centre
            .iter()
            .zip(&eval)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(max <= 1, "max difference {max}");
    }

    #[test]
    fn geometry_is_validated() {
        assert_eq!(
            ImageGeometry::new(224, None).unwrap(),
            ImageGeometry::IMAGENET
        );
        assert!(ImageGeometry::new(4, None).is_err());
        assert!(ImageGeometry::new(64, Some(32)).is_err());
    }

    #[test]
    fn files_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        let jpg = dir.path().join("b.jpg");
        gradient(20, 10).save(&png).unwrap();
        gradient(10, 20).save(&jpg).unwrap();
        let bad = dir.path().join("c.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let text = dir.path().join("d.jpg");
        std::fs::write(&text, b"hello").unwrap();
        let g = ImageGeometry { resize: 8, crop: 8 };
        let paths = vec![png.clone(), jpg, bad.clone(), text];
        let (pixels, kept, skipped) = decode_images(&paths, g, true, None, &mut Silent).unwrap();
        assert_eq!(kept, vec![0, 1]);
        assert_eq!(pixels.len(), 2 * g.image_len());
        assert_eq!(skipped.len(), 2);
        assert_eq!(
            &pixels.range(0, g.image_len())[..],
            &transform(&decode_file(&png).unwrap(), g)[..]
        );
        let err = decode_images(&paths, g, false, None, &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.png") && err.contains("--skip-bad-images"),
            "{err}"
        );
    }

    #[test]
    fn transparent_pixels_become_white() {
        let rgba = RgbaImage::from_fn(2, 1, |x, _| {
            image::Rgba([0, 0, 0, if x == 0 { 0 } else { 255 }])
        });
        let rgb = over_white(&rgba);
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
    }

    #[test]
    fn oversized_headers_are_refused_before_allocating() {
        // A PNG header claiming 30,000 x 30,000 pixels, with no pixel data.
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(b"IHDR");
        ihdr.extend_from_slice(&30_000u32.to_be_bytes());
        ihdr.extend_from_slice(&30_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        let err = decode_bytes(&png, "huge.png").unwrap_err().to_string();
        assert!(
            err.contains("huge.png") && err.contains("too large to decode"),
            "{err}"
        );
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
