//! The workloads: Hamming top-k, centre codes, the network's forward/train/PGD steps, and
//! retrieval with and without UMCD detection (the paper's Fig. 6), and both at database sizes
//! up to 10M codes beside the machine's read bandwidth.

pub mod centres;
pub mod detection;
pub mod hamming;
pub mod model;
pub mod scaling;

use std::time::Duration;

use criterion::Criterion;

/// Criterion settings for workloads that take from milliseconds to seconds an iteration.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args()
}
