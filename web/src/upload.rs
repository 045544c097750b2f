//! Turning a user's image (PNG or JPEG, any size, colour or grey) into the model's input:
//! decoded by the library's decoder, which refuses a huge or hostile file before allocating
//! (never an out-of-memory abort of the page), converted to grey, resized to the demo's image
//! size, pixels in `[0, 1]`.

/// Decodes `bytes` and resizes to `width` x `height` grey pixels; the error is one line a
/// person can act on.
pub fn decode_grey(bytes: &[u8], width: usize, height: usize) -> Result<Vec<f32>, String> {
    if bytes.is_empty() {
        return Err("the file is empty: choose a PNG or JPEG image".into());
    }
    let side = |n: usize| u32::try_from(n).map_err(|_| format!("{n} pixels is not a usable size"));
    hashguard_core::data::decode_grey(bytes, "upload", side(width)?, side(height)?).map_err(|e| {
        match e {
            // The library's message names the CLI's flags; the page has none.
            hashguard_core::Error::Format { reason, .. } if reason.contains("too large") => {
                let limits = hashguard_core::data::ReadLimits::current();
                format!(
                    "the image is too large to decode here (over {} pixels a side or {} MiB): \
                     choose a smaller one",
                    limits.max_side,
                    limits.max_decode_bytes >> 20
                )
            }
            hashguard_core::Error::Format { reason, .. } => {
                format!("{reason} (a PNG or JPEG image is expected)")
            }
            e => format!("{e}: choose a PNG or JPEG image"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn png(w: u32, h: u32, rgb: bool) -> Vec<u8> {
        let img = if rgb {
            image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, _| {
                image::Rgb([(x * 7) as u8, 200, 10])
            }))
        } else {
            image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([((x + y) * 3) as u8])
            }))
        };
        encode(img, image::ImageFormat::Png)
    }

    /// CRC-32 (IEEE), as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }

    /// A valid small PNG whose header claims `w` x `h` pixels (its IHDR rewritten, CRC fixed):
    /// what a decompression bomb or a 30,000 x 30,000 photo looks like to the decoder.
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = png(4, 4, false);
        // Signature (8), IHDR length (4), "IHDR" (4), width, height, …; CRC over type + data.
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn any_size_and_colour_becomes_28x28_grey_in_unit_range() {
        for (w, h, rgb) in [
            (28, 28, false),
            (640, 480, true),
            (3, 100, true),
            (1, 1, false),
        ] {
            let px = decode_grey(&png(w, h, rgb), 28, 28).unwrap();
            assert_eq!(px.len(), 784);
            assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        let jpeg = encode(
            image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(50, 30, |x, y| {
                image::Rgb([x as u8 * 5, y as u8 * 8, 90])
            })),
            image::ImageFormat::Jpeg,
        );
        assert_eq!(decode_grey(&jpeg, 28, 28).unwrap().len(), 784);
    }

    #[test]
    fn undecodable_files_get_a_clear_message() {
        for junk in [
            &b"hello, not an image"[..],
            b"GIF89a\x02\x00\x02\x00 cut short",
        ] {
            let e = decode_grey(junk, 28, 28).unwrap_err();
            assert!(e.contains("PNG or JPEG"), "{e}");
        }
        assert!(decode_grey(&[], 28, 28).unwrap_err().contains("empty"));
        let mut truncated = png(40, 40, true);
        truncated.truncate(truncated.len() / 2);
        assert!(decode_grey(&truncated, 28, 28).is_err());
    }

    /// A header claiming 30,000 x 30,000 pixels (2.7 GB decoded) is refused by the limits
    /// before anything that size is allocated; the rewritten header itself is valid (a claim
    /// within the limits decodes as far as its data goes).
    #[test]
    fn huge_images_are_refused_before_allocation() {
        let e = decode_grey(&png_claiming(30_000, 30_000), 28, 28).unwrap_err();
        assert!(e.contains("too large") && !e.contains("--max"), "{e}");
        let side = hashguard_core::data::MAX_SIDE;
        let e = decode_grey(&png_claiming(side + 1, 4), 28, 28).unwrap_err();
        assert!(e.contains("too large"), "{e}");
        let e = decode_grey(&png_claiming(8, 4), 28, 28).unwrap_err();
        assert!(!e.contains("too large"), "{e}");
    }

    /// A CMYK JPEG (written by Pillow: `Image.new("CMYK", (40, 30))` with a gradient, quality
    /// 90) decodes to grey like any photo, and not to a flat image.
    #[test]
    fn a_cmyk_jpeg_decodes_to_grey() {
        let px = decode_grey(include_bytes!("../testdata/cmyk-40x30.jpg"), 28, 28).unwrap();
        assert_eq!(px.len(), 784);
        let lo = px.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = px.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
        assert!(hi - lo > 0.1, "flat: {lo}..{hi}");
    }

    /// An animated GIF is read as its first frame (white here, the second black).
    #[test]
    fn an_animated_gif_is_its_first_frame() {
        use image::codecs::gif::GifEncoder;
        use image::{Frame, Rgba, RgbaImage};
        let mut gif = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut gif);
            for v in [255u8, 0] {
                let frame = RgbaImage::from_pixel(28, 28, Rgba([v, v, v, 255]));
                encoder.encode_frame(Frame::new(frame)).unwrap();
            }
        }
        let px = decode_grey(&gif, 28, 28).unwrap();
        assert!(px.iter().all(|&v| v > 0.95), "not the first (white) frame");
    }
}
