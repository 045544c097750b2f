//! Retrieval at database sizes 10k → 10M codes (64 and 128 bits) beside the machine's measured
//! read bandwidth over a buffer of the same size (the bound of a one-query scan), and UMCD's
//! detection overhead at those sizes (batch 16, Flex).

use std::hint::black_box;
use std::time::Duration;

use burn::module::Module;
use criterion::{BenchmarkId, Criterion, Throughput};
use hashguard_benches::{
    backends, default_model, random_codes_of, random_pixels, read_bandwidth_sum,
};
use hashguard_core::detectors::{Umcd, UmcdConfig};
use hashguard_core::retrieval::{HammingIndex, kernel_name};

/// Database sizes of the table, with their labels.
const SIZES: [(&str, usize); 4] = [
    ("10k", 10_000),
    ("100k", 100_000),
    ("1M", 1_000_000),
    ("10M", 10_000_000),
];
/// Queries per batched search call.
const QUERIES: usize = 100;
/// Retrieved items per query.
const K: usize = 100;

/// One query and a batch of [`QUERIES`] over each database size, at 64 and 128 bits; and the
/// read bandwidth over a buffer as large as each database (`membw/read/<bytes>`).
fn search(c: &mut Criterion) {
    for bits in [64usize, 128] {
        let queries = random_codes_of(12, QUERIES, bits);
        let one = queries.select(&[0]);
        let mut group = c.benchmark_group(format!("hamming_scale/{}/{bits}b", kernel_name()));
        for (label, n) in SIZES {
            let index = HammingIndex::new(random_codes_of(11, n, bits));
            group.throughput(Throughput::Bytes((n * bits / 8) as u64));
            group.bench_with_input(BenchmarkId::new("1q", label), &index, |b, index| {
                b.iter(|| index.search(&one, K))
            });
            group.throughput(Throughput::Elements(QUERIES as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{QUERIES}q"), label),
                &index,
                |b, index| b.iter(|| index.search(&queries, K)),
            );
        }
        group.finish();
    }
    // The bound: the faster of one thread and every core reading the same bytes (as the search,
    // which splits the database over threads only when the scan is large enough to pay for it).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("membw/read");
    for bytes in SIZES
        .iter()
        .flat_map(|&(_, n)| [n * 8, n * 16])
        .collect::<std::collections::BTreeSet<_>>()
    {
        let buffer: Vec<u64> = (0..bytes as u64 / 8).collect();
        group.throughput(Throughput::Bytes(bytes as u64));
        for threads in [1, cores] {
            group.bench_with_input(
                BenchmarkId::new(format!("{threads}t"), bytes),
                &buffer,
                |b, buffer| b.iter(|| black_box(read_bandwidth_sum(buffer, threads))),
            );
        }
    }
    group.finish();
}

/// Retrieval alone and retrieval + UMCD for 16 queries over each 64-bit database size: as the
/// scan grows, the second forward pass (the blurred copies) weighs less.
fn detection(c: &mut Criterion) {
    let batch = 16;
    let pixels = random_pixels(13, batch);
    for backend in backends().into_iter().filter(|b| b.name == "flex") {
        let device = backend.device.clone();
        let model = default_model(&device).valid();
        let mut group = c.benchmark_group(format!("umcd_scale/{}/b{batch}", backend.name));
        for (label, n) in SIZES {
            let index = HammingIndex::new(random_codes_of(14, n, model.bits()));
            let umcd = Umcd {
                config: UmcdConfig { k: K, blur: 2 },
                index: &index,
            };
            super::retrieval_and_umcd(&mut group, label, (&model, &umcd, K), &pixels, &device);
        }
        group.finish();
    }
}

criterion::criterion_group! {
    name = benches;
    config = super::config().measurement_time(Duration::from_secs(3));
    targets = search, detection
}
