//! Criterion entry point: one module per workload under `benchmarks/`; group names carry the
//! backend (`flex`, `wgpu`) or the CPU kernel, so runs on different machines compare directly.

mod benchmarks;

criterion::criterion_main!(
    benchmarks::hamming::benches,
    benchmarks::centres::benches,
    benchmarks::model::benches,
    benchmarks::detection::benches,
    benchmarks::scaling::benches,
);
