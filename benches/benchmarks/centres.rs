//! CgAT's centre codes and SAAT's mainstay codes from packed training codes (10 classes), at
//! the default training-set size and at the whole Fashion-MNIST training pool.

use criterion::{BenchmarkId, Criterion};
use hashguard_benches::random_codes;
use hashguard_core::adv_train::{centre_codes, mainstay_codes};
use hashguard_core::data::LabelSet;

fn codes(c: &mut Criterion) {
    let mut group = c.benchmark_group("target_codes/cpu");
    for n in [5_000usize, 69_000] {
        let codes = random_codes(4, n);
        let labels: Vec<LabelSet> = (0..n).map(|i| LabelSet::single(i % 10)).collect();
        group.bench_with_input(BenchmarkId::new("centre", n), &n, |b, _| {
            b.iter(|| centre_codes(&codes, &labels).expect("centre codes"))
        });
        group.bench_with_input(BenchmarkId::new("mainstay", n), &n, |b, _| {
            b.iter(|| mainstay_codes(&codes, &labels).expect("mainstay codes"))
        });
    }
    group.finish();
}

criterion::criterion_group! {
    name = benches;
    config = super::config();
    targets = codes
}
