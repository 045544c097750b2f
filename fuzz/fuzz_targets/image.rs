//! The image decode path of list files and folders (JPEG, PNG, GIF, BMP, WebP with size
//! limits), then the evaluation transform (resize the shorter side, centre-crop): any bytes
//! give a crop of the promised size, or an error.

#![no_main]

use hashguard_core::data::{ImageGeometry, decode_bytes, transform};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(
    init: common::fuzzing_limits(),
    |data: &[u8]| {
        let Ok(rgb) = decode_bytes(data, "fuzz image") else {
            return;
        };
        assert!(rgb.width() > 0 && rgb.height() > 0);
        let geometry = ImageGeometry::new(8, Some(10)).expect("a valid geometry");
        assert_eq!(transform(&rgb, geometry).len(), 3 * 8 * 8);
    }
);
