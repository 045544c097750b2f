//! ResNet-18 hashing steps at the field's size (batch 32, 224x224, 64 bits) on Flex: one CSQ
//! training step (forward, loss, backward, Adam, losses read back) and one untargeted PGD step
//! on the eval-mode network, beside `benches/peers/resnet18_steps.py` (PyTorch CPU). Seconds a
//! step make criterion's sampling impractical here, so this times a few steps after a warm-up.
//!
//! `target/release/examples/resnet18_steps [BATCH [SIDE [STEPS]]]`; prints JSON.

use std::time::Instant;

use burn::prelude::*;
use hashguard_benches::{pgd_step_budget, random_pixels};
use hashguard_core::adv_train::{TrainConfig, Trainer};
use hashguard_core::attacks::{Objective, PgdStepper};
use hashguard_core::data::{Augment, ImageSet, LabelSet, to_tensor};
use hashguard_core::loss::{CsqLossConfig, HashCentres};
use hashguard_core::model::{BackboneKind, HashNetConfig, sign_codes};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (batch, side, steps) = (arg(1, 32), arg(2, 224), arg(3, 5));
    let device = Device::flex();
    let per_image = 3 * side * side;
    // random_pixels draws 28x28 images; ask for enough of them to fill `batch` colour images.
    let pixels: Vec<u8> = random_pixels(3, (batch * per_image).div_ceil(784))
        .iter()
        .take(batch * per_image)
        .map(|p| (p * 255.0) as u8)
        .collect();
    let labels: Vec<LabelSet> = (0..batch).map(|i| LabelSet::single(i % 10)).collect();
    let names = (0..10).map(|i| i.to_string()).collect();
    let set = ImageSet::new("bench", "random", [3, side, side], pixels, labels, names)
        .expect("a set of random images");
    let model = HashNetConfig::new(64, 3)
        .with_backbone(Some(BackboneKind::Resnet18))
        .with_mean(vec![0.485, 0.456, 0.406])
        .with_std(vec![0.229, 0.224, 0.225]);
    let config = TrainConfig::new(model, CsqLossConfig::new())
        .with_epochs(1_000_000)
        .with_batch_size(batch)
        .with_augment(Augment::NONE);
    let centres = HashCentres::new(10, 64, 0).expect("centres");
    let mut trainer = Trainer::new(config, centres, &device).expect("trainer");
    let all: Vec<usize> = (0..batch).collect();
    // One "epoch" over `batch` images is exactly one optimiser step.
    let mut train = Vec::new();
    for i in 0..=steps {
        let start = Instant::now();
        trainer.train_epoch(&set, &all, |_| {}).expect("train step");
        if i > 0 {
            train.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let eval = trainer.model().valid();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = to_tensor(&set, &all, Augment::NONE, &mut rng, &device);
    let original = sign_codes(eval.forward(x.clone()));
    let budget = pgd_step_budget();
    let mut stepper =
        PgdStepper::new(x, Objective::Untargeted { original }, budget, false, 0).expect("stepper");
    let mut pgd = Vec::new();
    for i in 0..=steps {
        let start = Instant::now();
        stepper.step(&eval).expect("pgd step");
        if i > 0 {
            pgd.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "peer": "hashguard flex",
            "batch": batch,
            "side": side,
            "train_step_ms": train,
            "train_step_median_ms": median(train.clone()),
            "pgd_step_ms": pgd,
            "pgd_step_median_ms": median(pgd.clone()),
        })
    );
}
