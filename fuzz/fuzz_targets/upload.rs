//! The browser demo's upload path: decode any file, turn it grey and resize it to the model's
//! 28x28 input. Any bytes give 784 finite pixels in `[0, 1]`, or an error.

#![no_main]

use hashguard_core::data::decode_grey;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(
    init: common::fuzzing_limits(),
    |data: &[u8]| {
        if let Ok(pixels) = decode_grey(data, "upload", 28, 28) {
            assert_eq!(pixels.len(), 28 * 28);
            assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)));
        }
    }
);
