//! Half-precision model records for shipping: the large f32 weight tensors of a record stored as
//! f16 (half the bytes of the browser demo's download), the small ones and batch-norm
//! statistics kept in f32. Loading casts every tensor back to the module's f32.

use burn::tensor::{Bytes, DType, TensorData};

use crate::{Error, Result};

/// Tensors with fewer elements than this stay f32: biases and batch-norm parameters, whose
/// bytes do not matter and whose values (running variances) can underflow f16.
const SMALL: usize = 4096;

/// What [`half_precision_record`] converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HalfSummary {
    /// Tensors stored as f16.
    pub halved: usize,
    /// Tensors left as they were (small, batch-norm statistics, or not f32).
    pub kept: usize,
    /// Record bytes before and after.
    pub bytes: (usize, usize),
}

/// The record `bytes` (a `model.bpk`) with every f32 tensor of at least 4,096 elements stored
/// as f16, except batch-norm running statistics. [`crate::model::HashNetConfig::load`] reads
/// the result into the usual f32 model (each tensor cast on load); `origin` names the record in
/// errors.
pub fn half_precision_record(bytes: Vec<u8>, origin: &str) -> Result<(Vec<u8>, HalfSummary)> {
    let before = bytes.len();
    let corrupt = |e: burn_pack::Error| {
        Error::record(
            origin,
            format!("corrupt model record ({e}); retrain or restore it"),
        )
    };
    let tensors = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes))
        .and_then(burn_pack::Reader::into_tensors)
        .map_err(corrupt)?;
    let (mut halved, mut kept) = (0, 0);
    let mut out = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let large = tensor.shape.num_elements() >= SMALL;
        let statistic = tensor.name.contains("running_");
        if tensor.dtype != DType::F32 || !large || statistic {
            kept += 1;
            out.push(tensor);
            continue;
        }
        let (name, _, shape, id, data) = tensor.into_parts().map_err(corrupt)?;
        let (data, shape, dtype) = TensorData::from_bytes(data, shape, DType::F32)
            .convert_dtype(DType::F16)
            .into_parts();
        halved += 1;
        out.push(burn_pack::Tensor::new(name, dtype, shape, id, data));
    }
    let written = burn_pack::Writer::new(out)
        .into_bytes()
        .map_err(|e| Error::record(origin, format!("writing the half-precision record: {e}")))?
        .to_vec();
    let summary = HalfSummary {
        halved,
        kept,
        bytes: (before, written.len()),
    };
    Ok((written, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HashNetConfig;
    use burn::module::Module;
    use burn::prelude::*;

    #[test]
    fn a_half_record_loads_into_the_f32_model_and_encodes_alike() {
        let device = Device::flex();
        device.seed(3);
        let config = HashNetConfig::new(32, 1).with_dropout(0.0);
        let model = config.init(&device).valid();
        let bytes = model.clone().into_record().into_bytes().unwrap().to_vec();
        let (half, summary) = half_precision_record(bytes.clone(), "test").unwrap();
        assert!(summary.halved > 0 && summary.kept > 0, "{summary:?}");
        assert!(
            half.len() < bytes.len() * 6 / 10,
            "{} -> {} bytes",
            bytes.len(),
            half.len()
        );
        let loaded = config.load(half, &device, "half").unwrap().valid();
        let x = Tensor::<4>::random(
            [16, 1, 28, 28],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let a = model
            .logits(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = loaded.logits(x).into_data().try_to_vec::<f32>().unwrap();
        // f16 keeps 11 significant bits: the logits move by well under 1 %.
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(worst > 0.0, "the weights were not rounded at all");
        assert!(worst < 1e-2 * scale, "worst {worst} of scale {scale}");
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_it() {
        let e = half_precision_record(vec![1, 2, 3], "model.bpk").unwrap_err();
        assert!(e.to_string().contains("model.bpk"), "{e}");
    }
}
