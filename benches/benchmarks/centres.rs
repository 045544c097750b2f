//! CgAT's centre codes and SAAT's mainstay codes from packed training codes: single-label (10
//! classes, where the two coincide) at the default training-set size and at the whole
//! Fashion-MNIST pool, and multi-label (1–3 of 21 classes, NUS-WIDE-like) where they differ.

use criterion::{BenchmarkId, Criterion};
use hashguard_benches::{random_codes, splitmix64};
use hashguard_core::adv_train::{centre_codes, mainstay_codes};
use hashguard_core::data::LabelSet;

/// One to three of 21 classes per item, from SplitMix64.
fn multi_labels(n: usize) -> Vec<LabelSet> {
    (0..n as u64)
        .map(|i| {
            let r = splitmix64(9, i);
            let count = 1 + (r % 3) as usize;
            LabelSet::from_classes((0..count).map(|j| ((r >> (8 + 8 * j)) % 21) as usize))
        })
        .collect()
}

fn codes(c: &mut Criterion) {
    let mut group = c.benchmark_group("target_codes/cpu");
    for (kind, n) in [
        ("single", 5_000usize),
        ("single", 69_000),
        ("multi", 69_000),
    ] {
        let codes = random_codes(4, n);
        let labels: Vec<LabelSet> = match kind {
            "single" => (0..n).map(|i| LabelSet::single(i % 10)).collect(),
            _ => multi_labels(n),
        };
        let id = format!("{kind}/{n}");
        group.bench_with_input(BenchmarkId::new("centre", &id), &n, |b, _| {
            b.iter(|| centre_codes(&codes, &labels).expect("centre codes"))
        });
        group.bench_with_input(BenchmarkId::new("mainstay", &id), &n, |b, _| {
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
