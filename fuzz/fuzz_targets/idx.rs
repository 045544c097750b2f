//! IDX, Fashion-MNIST's format, plain and gzipped: any bytes give an array whose dimensions
//! account for every value, or an error.

#![no_main]

use std::path::Path;

use hashguard_core::data::parse_idx;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    for bytes in [data.to_vec(), common::gzipped(data)] {
        if let Ok(array) = parse_idx(&bytes, Path::new("fuzz.idx")) {
            let values = array.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            assert_eq!(values, Some(array.data.len()), "{:?}", array.dims);
        }
    }
});
