//! Model records (`model.bpk`, f32, half precision or int8): any bytes give an error, or a model
//! whose encoding of an image is `BITS` finite values or an error (never NaN codes); the
//! half-precision and int8 rewriters refuse them or write a record they can rewrite again.

#![no_main]

use burn::prelude::*;
use hashguard_core::data::{ImageSet, LabelSet};
use hashguard_core::model::{encode_images, half_precision_record, int8_record};
use libfuzzer_sys::fuzz_target;

mod common;

thread_local! {
    static IMAGE: ImageSet = ImageSet::new(
        "one",
        "fuzz",
        [1, 28, 28],
        (0..784).map(|i| (i % 251) as u8).collect(),
        vec![LabelSet::single(0)],
        vec!["class 0".into()],
    )
    .expect("a valid image set");
}

fuzz_target!(|data: &[u8]| {
    let device = Device::flex();
    if let Ok(model) = common::tiny_model().load(data.to_vec(), &device, "model.bpk") {
        let encoded = IMAGE.with(|set| encode_images(&model, set, &[0], 1, &device, |_| {}));
        if let Ok(values) = encoded {
            assert_eq!(values.len(), common::BITS);
            assert!(values.iter().all(|v| v.is_finite()), "{values:?}");
        }
    }
    if let Ok((half, _)) = half_precision_record(data.to_vec(), "model.bpk") {
        // What the rewriter accepts as a record it can also halve again (a fixed point).
        half_precision_record(half, "halved").expect("a halved record is a record");
    }
    if let Ok((int8, _)) = int8_record(data.to_vec(), "model.bpk") {
        // An int8 record holds no large f32 tensor any more: quantising again changes nothing.
        let (again, summary) =
            int8_record(int8.clone(), "int8").expect("an int8 record is a record");
        assert_eq!(summary.converted, 0, "{summary:?}");
        assert_eq!(again.len(), int8.len());
    }
});
