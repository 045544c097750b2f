//! The paper's Fig. 6: time to answer a batch of queries with retrieval alone (one forward pass,
//! top-100 search over a 64,000-code database) and with retrieval plus UMCD (one forward pass over
//! the queries and their blurs, one search serving the result list and C1, then C2 and C3), and
//! the encoding of one and two batches that bounds any detector needing a second pass.

use std::time::Duration;

use burn::module::Module;

use criterion::{BenchmarkId, Criterion, Throughput};
use hashguard_benches::{BITS, backends, default_model, encode, random_codes, random_pixels};
use hashguard_core::detectors::{Umcd, UmcdConfig};
use hashguard_core::retrieval::HammingIndex;

/// Database size: the default Fashion-MNIST split's 64,000 images.
const DATABASE: usize = 64_000;
/// Retrieved items per query.
const K: usize = 100;

fn fig6(c: &mut Criterion) {
    let index = HammingIndex::new(random_codes(5, DATABASE));
    assert_eq!(index.codes().bits(), BITS);
    let umcd = Umcd {
        config: UmcdConfig { k: K, blur: 2 },
        index: &index,
    };
    for backend in backends() {
        let device = backend.device.clone();
        let model = default_model(&device).valid();
        let mut group = c.benchmark_group(format!("umcd_fig6/{}", backend.name));
        for batch in [1usize, 4, 16, 64, 256] {
            let pixels = random_pixels(6, batch);
            group.throughput(Throughput::Elements(batch as u64));
            super::retrieval_and_umcd(&mut group, batch, (&model, &umcd, K), &pixels, &device);
            // The floor of any UMCD: the network encodes twice the images. Encoding `batch` and
            // `2 * batch` images (read back) bounds the overhead from below at
            // (retrieval + encode(2b) - encode(b)) / retrieval, with C1-C3 and the blur free.
            let doubled = random_pixels(6, 2 * batch);
            for (name, px) in [("encode", &pixels), ("encode2x", &doubled)] {
                group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, _| {
                    b.iter(|| encode(&model, px, &device))
                });
            }
        }
        group.finish();
    }
}

criterion::criterion_group! {
    name = benches;
    config = super::config().measurement_time(Duration::from_secs(4));
    targets = fig6
}
