//! The engine against its shipped files: the f16 weights must reproduce what the bundle was
//! computed with.

use super::*;
use hashguard_core::detectors::Detector;
use hashguard_core::model::encode_images;
use hashguard_core::retrieval::hamming;

/// The shipped weights are f16 (`export-web --precision f16`); the bundle's codes and benign
/// scores were computed with the run's f32 weights. The app must retrieve and calibrate as
/// the f32 model would.
#[test]
fn the_shipped_weights_give_the_bundle_s_codes_and_thresholds() {
    let engine = Engine::embedded(Device::flex(), "CPU".into()).unwrap();
    let db = &engine.bundle.database;
    let all: Vec<usize> = (0..db.len()).collect();
    let bits = engine.model.bits();
    let z = encode_images(&engine.model, db, &all, 256, &engine.device, |_| {}).unwrap();
    let codes = PackedCodes::from_signs(bits, &z);
    let flipped: u32 = (0..codes.len())
        .map(|i| hamming(codes.code(i), engine.bundle.codes.code(i)))
        .sum();
    assert!(
        (flipped as f64) <= 1e-3 * (codes.len() * bits) as f64,
        "{flipped} of {} code bits flipped",
        codes.len() * bits
    );

    // Benign scores of the first 500 database images, recomputed, against the bundle's.
    let umcd = Umcd {
        config: engine.bundle.header.umcd,
        index: &engine.index,
    };
    let n = 500;
    let pixels = db.pixels_f32(&all[..n]);
    let positions: Vec<Option<usize>> = (0..n).map(Some).collect();
    let batch = ImageBatch {
        pixels: &pixels,
        shape: engine.shape(),
        database_positions: Some(&positions),
    };
    let ours = umcd.score(&engine.model, batch, &engine.device).unwrap();
    let quantile = |v: &[f32], q: f64| {
        let mut v = v.to_vec();
        v.sort_by(f32::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    for (c, (mine, shipped)) in ours
        .values
        .iter()
        .zip(&engine.bundle.header.benign)
        .enumerate()
    {
        // Where the thresholds are read (the median and the 95th percentile) the scores
        // agree to a few percent; C2 is a tiny quantity, so the comparison is relative.
        for q in [0.5, 0.95] {
            let (a, b) = (quantile(mine, q), quantile(&shipped[..n], q));
            assert!(
                (a - b).abs() <= 1e-9 + 0.05 * b.abs(),
                "C{}: quantile {q} is {a} with f16 weights, {b} with f32",
                c + 1
            );
        }
    }
}

/// The shipped model is the label-smoothed one: C2 spreads over benign images (the ε = 0 model's
/// C2 sat near 5e-6 for every image, so its threshold could never fire) and every criterion gets
/// a threshold inside its benign range.
#[test]
fn every_criterion_can_fire_on_the_shipped_model() {
    let engine = Engine::embedded(Device::flex(), "CPU".into()).unwrap();
    let calibration = engine.calibration(0.05).unwrap();
    for (c, (values, &t)) in engine
        .bundle
        .header
        .benign
        .iter()
        .zip(&calibration.thresholds)
        .enumerate()
    {
        let (lo, hi) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        eprintln!("C{}: benign {lo} .. {hi}, threshold {t}", c + 1);
        assert!(hi > lo, "C{} is constant over benign images", c + 1);
    }
    let c2 = &engine.bundle.header.benign[1];
    let median = {
        let mut v = c2.clone();
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    assert!(
        median > 0.1,
        "benign C2 median {median}: the saturated ε = 0 model is back"
    );
    assert!(
        calibration.thresholds[1] > 0.01,
        "C2's threshold {}",
        calibration.thresholds[1]
    );
}
