//! Exact Hamming top-100 over 10k / 100k / 1M packed 64-bit codes for a batch of 1,000 queries
//! (the FAISS `IndexBinaryFlat` comparison in `peers.py` uses the same SplitMix64 data).

use criterion::{BenchmarkId, Criterion, Throughput};
use hashguard_benches::random_codes;
use hashguard_core::retrieval::{HammingIndex, kernel_name};

/// Queries per search call.
const QUERIES: usize = 1000;

fn top100(c: &mut Criterion) {
    let queries = random_codes(2, QUERIES);
    let mut group = c.benchmark_group(format!("hamming_top100/{}", kernel_name()));
    group.throughput(Throughput::Elements(QUERIES as u64));
    for (label, n) in [("10k", 10_000), ("100k", 100_000), ("1M", 1_000_000)] {
        let index = HammingIndex::new(random_codes(1, n));
        group.bench_with_input(BenchmarkId::new("1000q", label), &index, |b, index| {
            b.iter(|| index.search(&queries, 100))
        });
    }
    // One query at a time over 1M codes: the latency of a single search (database split).
    let index = HammingIndex::new(random_codes(1, 1_000_000));
    let one = queries.select(&[0]);
    group.throughput(Throughput::Elements(1));
    group.bench_function("1q/1M", |b| b.iter(|| index.search(&one, 100)));
    group.finish();
}

criterion::criterion_group! {
    name = benches;
    config = super::config();
    targets = top100
}
