//! CPU-vs-wgpu forward parity: one set of weights, loaded on both backends, must give the same
//! relaxed codes. Kept tiny because a software Vulkan adapter (lavapipe) compiles its shaders
//! on first use.

use burn::prelude::*;
use burn::tensor::DeviceKind;
use hashguard_core::model::HashNetConfig;
use rand::{Rng, SeedableRng};

#[test]
fn hashnet_forward_matches_between_flex_and_wgpu() {
    let config = HashNetConfig::new(16, 1)
        .with_widths(vec![4, 8])
        .with_convs_per_stage(1)
        .with_hidden(16);
    let cpu = Device::flex();
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);
    let model_cpu = config.init(&cpu).valid();
    let record = model_cpu.clone().into_record().into_bytes().unwrap();
    let model_gpu = config
        .init(&gpu)
        .load_record(burn::store::ModuleRecord::from_bytes(record).unwrap())
        .valid();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let pixels: Vec<f32> = (0..4 * 16 * 16)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let input =
        |d: &Device| Tensor::<4>::from_data(TensorData::new(pixels.clone(), [4, 1, 16, 16]), d);
    let a: Vec<f32> = model_cpu
        .forward(input(&cpu))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let b: Vec<f32> = model_gpu
        .forward(input(&gpu))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "flex and wgpu disagree by {worst}");
}

/// Data-parallel training over two different devices, Burn's CPU backend and wgpu: each batch
/// is split between them, the gradients summed on their way to the optimiser, and the
/// parameters brought back to the CPU device after every step. (The exact one-device
/// equivalence is a unit test in the library, on two CPU replicas.)
#[test]
fn training_splits_its_batches_over_flex_and_wgpu() {
    use hashguard_core::adv_train::{TrainConfig, Trainer};
    use hashguard_core::data::{Augment, ImageSet, LabelSet};
    use hashguard_core::loss::{CsqLossConfig, HashCentres};

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for i in 0..32 {
        let c = i % 4;
        for y in 0..16 {
            for x in 0..16 {
                let lit = (y / 8) * 2 + x / 8 == c;
                pixels.push(if lit { 200 } else { 40 } + rng.random_range(0..30u8));
            }
        }
        labels.push(LabelSet::single(c));
    }
    let names = (0..4).map(|c| c.to_string()).collect();
    let set = ImageSet::new("q", "test", [1, 16, 16], pixels, labels, names).unwrap();
    let mut model = HashNetConfig::new(16, 1)
        .with_widths(vec![4, 8])
        .with_convs_per_stage(1)
        .with_hidden(16);
    model.dropout = 0.0;
    let config = TrainConfig::new(model, CsqLossConfig::new())
        .with_epochs(4)
        .with_batch_size(16)
        .with_augment(Augment::NONE)
        .with_lr(1e-2);
    let centres = HashCentres::new(4, 16, 0).unwrap();
    let cpu = Device::flex();
    let mut trainer = Trainer::new(config, centres, &cpu).unwrap();
    trainer
        .data_parallel(&[Device::wgpu(DeviceKind::DefaultDevice)])
        .unwrap();
    assert_eq!(trainer.device_count(), 2);
    let all: Vec<usize> = (0..set.len()).collect();
    let losses: Vec<f64> = (0..4)
        .map(|_| trainer.train_epoch(&set, &all, |_| {}).unwrap().loss)
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[3] < losses[0],
        "no learning over two devices: {losses:?}"
    );
    // Every parameter is back on the CPU device: the model encodes CPU tensors.
    let x = Tensor::<4>::zeros([2, 1, 16, 16], &cpu);
    let codes = trainer.model().valid().forward(x);
    assert_eq!(codes.dims(), [2, 16]);
}
