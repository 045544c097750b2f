//! What the fuzz targets and the seed-corpus writer (the workspace test `fuzz_seeds`) share:
//! the tiny model and training configurations the model-record and checkpoint targets read
//! records for, and the wrapping of raw fuzz input in gzip for the gzipped readers.

#![allow(dead_code)]

use std::io::Write;

use hashguard_core::adv_train::TrainConfig;
use hashguard_core::data::{Augment, ReadLimits};
use hashguard_core::loss::{CsqLossConfig, HashCentres};
use hashguard_core::model::HashNetConfig;

/// Code length of the tiny model.
pub const BITS: usize = 16;
/// Classes of the tiny model's centres.
pub const CLASSES: usize = 4;

/// A small CNN of the same layers as the default one (a few KB of weights), so a mutated
/// record is read in microseconds.
pub fn tiny_model() -> HashNetConfig {
    HashNetConfig::new(BITS, 1)
        .with_widths(vec![4, 8])
        .with_convs_per_stage(1)
        .with_hidden(16)
        .with_dropout(0.0)
}

/// CSQ training of [`tiny_model`], one epoch, no augmentation.
pub fn tiny_train() -> TrainConfig {
    TrainConfig::new(tiny_model(), CsqLossConfig::new())
        .with_epochs(1)
        .with_batch_size(8)
        .with_augment(Augment::NONE)
}

/// Hadamard centres for [`tiny_train`].
pub fn tiny_centres() -> HashCentres {
    HashCentres::new(CLASSES, BITS, 0).expect("16-bit centres for 4 classes exist")
}

/// `data` as a gzipped reader sees it: input that already starts with gzip's magic is passed
/// through (the decompressor itself is fuzzed), anything else is compressed first so the
/// mutations reach the format inside.
pub fn gzipped(data: &[u8]) -> Vec<u8> {
    if data.starts_with(&[0x1f, 0x8b]) {
        return data.to_vec();
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Read limits for the image targets: 2,048 pixels a side, 64 MiB per image. Under the
/// defaults (16,384 and 512 MiB) a 411-byte JPEG may claim 10,240 x 7,680 CMYK pixels and
/// take seconds to decode, which stalls the fuzzer without finding anything; the same checks
/// run at a smaller scale (the limits themselves have unit tests).
pub fn fuzzing_limits() {
    ReadLimits {
        max_side: 2048,
        max_decode_bytes: 64 << 20,
        ..ReadLimits::DEFAULT
    }
    .install()
    .expect("positive limits");
}
