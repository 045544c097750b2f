//! The workloads: Hamming top-k, centre codes, the network's forward/train/PGD steps, and
//! retrieval with and without UMCD detection (the paper's Fig. 6), and both at database sizes
//! up to 10M codes beside the machine's read bandwidth.

pub mod centres;
pub mod detection;
pub mod hamming;
pub mod model;
pub mod scaling;

use std::time::Duration;

use burn::prelude::Device;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use hashguard_benches::{IMAGE, retrieve};
use hashguard_core::detectors::{ImageBatch, Umcd};
use hashguard_core::filters::ImageShape;
use hashguard_core::model::HashNet;

/// Criterion settings for workloads that take from milliseconds to seconds an iteration.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args()
}

/// Times retrieval alone (`retrieval/<param>`: encode, search the `k` nearest) and retrieval with
/// UMCD (`retrieval+umcd/<param>`: one pass over the images and their blurs, one search, C1-C3)
/// for `pixels` (images of [`IMAGE`]) against `umcd`'s database.
pub fn retrieval_and_umcd(
    group: &mut BenchmarkGroup<'_, WallTime>,
    param: impl std::fmt::Display,
    (model, umcd, k): (&HashNet, &Umcd<'_>, usize),
    pixels: &[f32],
    device: &Device,
) {
    let [channels, height, width] = IMAGE;
    let images = ImageBatch {
        pixels,
        shape: ImageShape {
            channels,
            height,
            width,
        },
        database_positions: None,
    };
    let param = param.to_string();
    group.bench_function(BenchmarkId::new("retrieval", &param), |b| {
        b.iter(|| retrieve(model, umcd.index, pixels, k, device))
    });
    group.bench_function(BenchmarkId::new("retrieval+umcd", &param), |b| {
        b.iter(|| {
            umcd.retrieve_and_score(model, images, k, device)
                .expect("scores")
        })
    });
}
