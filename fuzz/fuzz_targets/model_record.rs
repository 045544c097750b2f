//! Model records (`model.bpk`, f32 or half precision): any bytes give a model that encodes an
//! image to finite outputs, or an error; the half-precision rewriter refuses or rewrites them
//! into a record that loads.

#![no_main]

use burn::prelude::*;
use hashguard_core::model::half_precision_record;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let device = Device::flex();
    if let Ok(model) = common::tiny_model().load(data.to_vec(), &device, "model.bpk") {
        let image = Tensor::<4>::full([1, 1, 28, 28], 0.5, &device);
        let out: Vec<f32> = model
            .valid()
            .logits(image)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(out.len(), common::BITS);
        assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
    }
    if let Ok((half, _)) = half_precision_record(data.to_vec(), "model.bpk") {
        // What the rewriter accepts as a record it can also halve again (a fixed point).
        half_precision_record(half, "halved").expect("a halved record is a record");
    }
});
