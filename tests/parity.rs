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
