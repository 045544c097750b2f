//! The network's three hot steps at batch 64 on every backend: an inference forward pass
//! (read back, as encoding does), one CSQ training step (Adam, loss read back, as `train` does)
//! and one untargeted PGD step on the eval-mode copy (synchronised before the clock is read).

use std::time::{Duration, Instant};

use burn::prelude::*;
use criterion::Criterion;
use hashguard_benches::{
    BATCH, BITS, IMAGE, backends, default_model, pgd_step_budget, random_images, random_pixels,
};
use hashguard_core::adv_train::{TrainConfig, Trainer};
use hashguard_core::attacks::{Objective, PgdStepper};
use hashguard_core::data::{Augment, ImageSet, LabelSet};
use hashguard_core::detectors::read;
use hashguard_core::loss::{CsqLossConfig, HashCentres};
use hashguard_core::model::{HashNetConfig, sign_codes};

fn steps(c: &mut Criterion) {
    for backend in backends() {
        eprintln!("backend {}: {}", backend.name, backend.adapter);
        let device = backend.device.clone();
        let model = default_model(&device).valid();
        let x = random_images(7, BATCH, &device);
        let mut group = c.benchmark_group(format!("network_b64/{}", backend.name));

        group.bench_function("forward", |b| {
            b.iter(|| read(model.logits(x.clone())).expect("finite logits"))
        });

        // A Trainer over a 64-image set runs exactly one optimiser step per "epoch": forward,
        // CSQ loss, backward, Adam, the losses read back (plus the batch assembly training does).
        let pixels: Vec<u8> = random_pixels(8, BATCH)
            .iter()
            .map(|p| (p * 255.0) as u8)
            .collect();
        let labels: Vec<LabelSet> = (0..BATCH).map(|i| LabelSet::single(i % 10)).collect();
        let names = (0..10).map(|i| i.to_string()).collect();
        let set = ImageSet::new("bench", "random", IMAGE, pixels, labels, names).expect("set");
        let config = TrainConfig::new(HashNetConfig::new(BITS, IMAGE[0]), CsqLossConfig::new())
            .with_epochs(1_000_000)
            .with_augment(Augment {
                max_shift: 0,
                hflip: false,
            });
        let centres = HashCentres::new(10, BITS, 0).expect("centres");
        let mut trainer = Trainer::new(config, centres, &device).expect("trainer");
        let all: Vec<usize> = (0..BATCH).collect();
        group.bench_function("train_step", |b| {
            b.iter(|| trainer.train_epoch(&set, &all, |_| {}).expect("train step"))
        });

        // PGD: forward on x.autodiff(), f·h(x) loss, backward to the input, signed step, clip.
        let original = sign_codes(model.forward(x.clone()));
        let budget = pgd_step_budget();
        let mut stepper = PgdStepper::new(
            x.clone(),
            Objective::Untargeted { original },
            budget,
            false,
            0,
        )
        .expect("stepper");
        group.bench_function("pgd_step", |b| {
            b.iter_custom(|iters| {
                backend.sync();
                let start = Instant::now();
                for _ in 0..iters {
                    stepper.step(&model).expect("pgd step");
                }
                backend.sync();
                start.elapsed()
            })
        });
        group.finish();
    }
}

/// Fewer, longer samples than the default: a software GPU adapter takes seconds a step.
fn config() -> Criterion {
    super::config().measurement_time(Duration::from_secs(8))
}

criterion::criterion_group! {
    name = benches;
    config = config();
    targets = steps
}
