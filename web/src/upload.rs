//! Turning a user's PNG or JPEG (any size, colour or grey) into the model's input: decoded,
//! converted to grey, resized to the demo's image size, pixels in `[0, 1]`.

use image::imageops::FilterType;

/// Decodes `bytes` and resizes to `width` x `height` grey pixels; the error is one line a
/// person can act on.
pub fn decode_grey(bytes: &[u8], width: usize, height: usize) -> Result<Vec<f32>, String> {
    if bytes.is_empty() {
        return Err("the file is empty: choose a PNG or JPEG image".into());
    }
    let img = image::load_from_memory(bytes).map_err(|e| {
        format!("could not decode the file as PNG or JPEG ({e}): choose another image")
    })?;
    if img.width() == 0 || img.height() == 0 {
        return Err("the image has no pixels: choose another image".into());
    }
    let grey = img
        .resize_exact(width as u32, height as u32, FilterType::Triangle)
        .to_luma8();
    Ok(grey.as_raw().iter().map(|&v| v as f32 / 255.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, rgb: bool) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        if rgb {
            image::RgbImage::from_fn(w, h, |x, _| image::Rgb([(x * 7) as u8, 200, 10]))
                .write_to(&mut out, image::ImageFormat::Png)
                .unwrap();
        } else {
            image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x + y) * 3) as u8]))
                .write_to(&mut out, image::ImageFormat::Png)
                .unwrap();
        }
        out.into_inner()
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
    }

    #[test]
    fn undecodable_files_get_a_clear_message() {
        let e = decode_grey(b"GIF89a not really", 28, 28).unwrap_err();
        assert!(e.contains("PNG or JPEG"), "{e}");
        assert!(decode_grey(&[], 28, 28).unwrap_err().contains("empty"));
        let mut truncated = png(40, 40, true);
        truncated.truncate(truncated.len() / 2);
        assert!(decode_grey(&truncated, 28, 28).is_err());
    }
}
