//! CIFAR-10's binary batches: any bytes give whole records (3,072 pixels and one label 0-9
//! each), or an error.

#![no_main]

use std::path::Path;

use hashguard_core::data::parse_cifar10_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((pixels, labels)) = parse_cifar10_batch(data, Path::new("data_batch_1.bin")) {
        assert_eq!(pixels.len(), labels.len() * 3072);
        assert_eq!(labels.len() * 3073, data.len());
    }
});
