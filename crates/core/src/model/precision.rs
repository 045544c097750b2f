//! Smaller model records for shipping: the large f32 weight tensors of a record stored as f16
//! (half the bytes) or as int8 with one f32 scale per slice of their first dimension (a
//! quarter); small tensors and batch-norm statistics stay f32. Loading restores f32.

use burn::tensor::{Bytes, DType, TensorData};

use crate::{Error, Result};

/// Tensors with fewer elements than this stay f32: biases and batch-norm parameters, whose
/// bytes do not matter and whose values (running variances) can underflow f16.
const SMALL: usize = 4096;

/// Name suffix of the f32 scales stored beside an int8 tensor: `conv1.weight` is stored as the
/// int8 `conv1.weight` and the f32 `conv1.weight.int8_scale`, one scale per slice of its first
/// dimension.
pub const INT8_SCALE_SUFFIX: &str = ".int8_scale";

/// What [`half_precision_record`] or [`int8_record`] converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShrinkSummary {
    /// Tensors stored in the smaller type.
    pub converted: usize,
    /// Tensors left as they were (small, batch-norm statistics, or not f32).
    pub kept: usize,
    /// Record bytes before and after.
    pub bytes: (usize, usize),
}

/// The error for a record that does not parse.
fn corrupt(origin: &str) -> impl Fn(burn_pack::Error) -> Error + '_ {
    move |e| {
        Error::record(
            origin,
            format!("corrupt model record ({e}); retrain or restore it"),
        )
    }
}

/// Rewrites every large f32 weight tensor of the record `bytes` with `convert` (which gets the
/// name, shape, parameter id and values and returns the tensors to store instead); the other
/// tensors pass through.
fn shrink(
    bytes: Vec<u8>,
    origin: &str,
    mut convert: impl FnMut(String, Vec<usize>, Option<u64>, Vec<f32>) -> Vec<burn_pack::Tensor>,
) -> Result<(Vec<u8>, ShrinkSummary)> {
    let before = bytes.len();
    let tensors = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes))
        .and_then(burn_pack::Reader::into_tensors)
        .map_err(corrupt(origin))?;
    let (mut converted, mut kept) = (0, 0);
    let mut out = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let large = tensor.shape.num_elements() >= SMALL;
        let statistic = tensor.name.contains("running_");
        if tensor.dtype != DType::F32 || !large || statistic {
            kept += 1;
            out.push(tensor);
            continue;
        }
        let (name, _, shape, id, data) = tensor.into_parts().map_err(corrupt(origin))?;
        let values = TensorData::from_bytes(data, shape.clone(), DType::F32)
            .try_into_vec::<f32>()
            .map_err(|e| Error::record(origin, format!("corrupt model record ({e:?})")))?;
        converted += 1;
        out.extend(convert(name, shape.to_vec(), id, values));
    }
    let written = burn_pack::Writer::new(out)
        .into_bytes()
        .map_err(|e| Error::record(origin, format!("writing the smaller record: {e}")))?
        .to_vec();
    let summary = ShrinkSummary {
        converted,
        kept,
        bytes: (before, written.len()),
    };
    Ok((written, summary))
}

/// The record `bytes` (a `model.bpk`) with every f32 tensor of at least 4,096 elements stored
/// as f16, except batch-norm running statistics. [`crate::model::HashNetConfig::load`] reads
/// the result into the usual f32 model (each tensor cast on load); `origin` names the record in
/// errors.
pub fn half_precision_record(bytes: Vec<u8>, origin: &str) -> Result<(Vec<u8>, ShrinkSummary)> {
    shrink(bytes, origin, |name, shape, id, values| {
        let (data, shape, dtype) = TensorData::new(values, shape)
            .convert_dtype(DType::F16)
            .into_parts();
        vec![burn_pack::Tensor::new(name, dtype, shape, id, data)]
    })
}

/// The record `bytes` with every f32 tensor of at least 4,096 elements (batch-norm running
/// statistics excepted) quantised to int8: symmetric, one f32 scale per slice of the first
/// dimension (a convolution's output channel; a linear layer's input feature, as Burn stores
/// linear weights `[in, out]`), `q = round(w / s)` with `s = max |w| / 127`, so each weight moves
/// by at most half its slice's step. The scales are stored as `<name>.int8_scale`;
/// [`crate::model::HashNetConfig::load`] dequantises before loading.
pub fn int8_record(bytes: Vec<u8>, origin: &str) -> Result<(Vec<u8>, ShrinkSummary)> {
    shrink(bytes, origin, |name, shape, id, values| {
        let rows = shape[0].max(1);
        let width = values.len() / rows;
        let mut scales = Vec::with_capacity(rows);
        let mut quantised = Vec::with_capacity(values.len());
        for row in values.chunks(width.max(1)) {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = max / 127.0;
            scales.push(scale);
            quantised.extend(row.iter().map(|&v| {
                if scale > 0.0 {
                    (v / scale).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                }
            }));
        }
        let scale_name = format!("{name}{INT8_SCALE_SUFFIX}");
        vec![
            burn_pack::Tensor::new(name, DType::I8, shape, id, Bytes::from_elems(quantised)),
            burn_pack::Tensor::new(
                scale_name,
                DType::F32,
                [rows],
                None,
                Bytes::from_elems(scales),
            ),
        ]
    })
}

/// The record `bytes` with the int8 tensors of [`int8_record`] restored to f32 (each value
/// times its slice's scale), or `bytes` unchanged when it holds none. An int8 tensor without
/// its scales, or scales without their tensor, is a corrupt record.
pub(crate) fn dequantised_record(bytes: Vec<u8>, origin: &str) -> Result<Vec<u8>> {
    let (tensors, _) = super::records::tensors(&bytes, "model record", origin)?;
    if !tensors.iter().any(|t| t.dtype == DType::I8) {
        return Ok(bytes);
    }
    let bad = |m: String| {
        Error::record(
            origin,
            format!("corrupt model record ({m}); re-export or restore it"),
        )
    };
    let mut scales = std::collections::BTreeMap::new();
    let mut rest = Vec::with_capacity(tensors.len());
    for t in tensors {
        match t.name.strip_suffix(INT8_SCALE_SUFFIX) {
            Some(base) if t.dtype == DType::F32 => {
                let base = base.to_string();
                let data = t.into_bytes().map_err(corrupt(origin))?;
                let values: Vec<f32> = data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect();
                if values.iter().any(|s| !s.is_finite() || *s < 0.0) {
                    return Err(bad(format!("{base} has a negative or non-finite scale")));
                }
                scales.insert(base, values);
            }
            _ => rest.push(t),
        }
    }
    let mut out = Vec::with_capacity(rest.len());
    for t in rest {
        if t.dtype != DType::I8 {
            out.push(t);
            continue;
        }
        let (name, _, shape, id, data) = t.into_parts().map_err(corrupt(origin))?;
        let scale = scales
            .remove(&name)
            .ok_or_else(|| bad(format!("{name} is int8 without its scales")))?;
        let rows = shape.first().copied().unwrap_or(1).max(1);
        if scale.len() != rows || data.len() % rows != 0 {
            return Err(bad(format!(
                "{name} has {} scales for {rows} slices",
                scale.len()
            )));
        }
        let width = data.len() / rows;
        let values: Vec<f32> = data
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q as i8) * scale[i / width.max(1)])
            .collect();
        out.push(burn_pack::Tensor::new(
            name,
            DType::F32,
            shape,
            id,
            Bytes::from_elems(values),
        ));
    }
    if let Some(name) = scales.keys().next() {
        return Err(bad(format!(
            "scales for {name}, which is not an int8 tensor"
        )));
    }
    Ok(burn_pack::Writer::new(out)
        .into_bytes()
        .map_err(|e| Error::record(origin, format!("restoring the int8 record: {e}")))?
        .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HashNetConfig;
    use burn::module::Module;
    use burn::prelude::*;

    /// A record rewriter: [`half_precision_record`] or [`int8_record`].
    type Rewriter = fn(Vec<u8>, &str) -> Result<(Vec<u8>, ShrinkSummary)>;

    /// A seeded model with its f32 record and the record a rewriter made of it.
    struct Shrunk {
        config: HashNetConfig,
        model: crate::model::HashNet,
        bytes: Vec<u8>,
        small: Vec<u8>,
        summary: ShrinkSummary,
    }

    /// A seeded model, its f32 record and the record `shrink` wrote, which must have converted
    /// some tensors, kept others and be under `tenths` tenths of the f32 record's bytes.
    fn shrunk(seed: u64, shrink: Rewriter, tenths: usize) -> Shrunk {
        let device = Device::flex();
        device.seed(seed);
        let config = HashNetConfig::new(32, 1).with_dropout(0.0);
        let model = config.init(&device).valid();
        let bytes = model.clone().into_record().into_bytes().unwrap().to_vec();
        let (small, summary) = shrink(bytes.clone(), "test").unwrap();
        assert!(summary.converted > 0 && summary.kept > 0, "{summary:?}");
        assert!(
            small.len() < bytes.len() * tenths / 10,
            "{} -> {} bytes",
            bytes.len(),
            small.len()
        );
        Shrunk {
            config,
            model,
            bytes,
            small,
            summary,
        }
    }

    #[test]
    fn a_half_record_loads_into_the_f32_model_and_encodes_alike() {
        let device = Device::flex();
        let Shrunk {
            config,
            model,
            small: half,
            ..
        } = shrunk(3, half_precision_record, 6);
        let loaded = config.load(half, &device, "half").unwrap().valid();
        let (worst, scale) = logit_error(&model, &loaded);
        // f16 keeps 11 significant bits: the logits move by well under 1 %.
        assert!(worst > 0.0, "the weights were not rounded at all");
        assert!(worst < 1e-2 * scale, "worst {worst} of scale {scale}");
    }

    /// The largest logit difference between `model` and `other` on the same 16 random images,
    /// with the largest logit's magnitude.
    fn logit_error(model: &crate::model::HashNet, other: &crate::model::HashNet) -> (f32, f32) {
        let device = Device::flex();
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
        let b = other.logits(x).into_data().try_to_vec::<f32>().unwrap();
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        (worst, scale)
    }

    #[test]
    fn an_int8_record_loads_into_the_f32_model_within_its_rounding() {
        let device = Device::flex();
        let Shrunk {
            config,
            model,
            bytes,
            small: int8,
            summary,
        } = shrunk(5, int8_record, 3);
        // Every restored weight lies within half a step of its slice's scale of the original.
        let restored = dequantised_record(int8.clone(), "test").unwrap();
        let original = super::super::records::tensors(&bytes, "model record", "test")
            .unwrap()
            .0;
        let back = super::super::records::tensors(&restored, "model record", "test")
            .unwrap()
            .0;
        assert_eq!(original.len(), back.len());
        let mut checked = 0;
        for (o, r) in original.into_iter().zip(back) {
            assert_eq!((&o.name, o.dtype, &o.shape), (&r.name, r.dtype, &r.shape));
            let (o, r) = (o.into_bytes().unwrap(), r.into_bytes().unwrap());
            let f = |b: &[u8]| -> Vec<f32> {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            };
            let (o, r) = (f(&o), f(&r));
            if o.len() < SMALL {
                assert_eq!(o, r, "small tensors pass through");
                continue;
            }
            let max = o.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = o
                .iter()
                .zip(&r)
                .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst > 0.0, "the weights were not rounded at all");
            assert!(
                worst <= max / 127.0 * 0.5 * 1.0001,
                "worst {worst} of max {max}"
            );
            checked += 1;
        }
        assert_eq!(checked, summary.converted);
        let loaded = config.load(int8, &device, "int8").unwrap().valid();
        let (worst, scale) = logit_error(&model, &loaded);
        // 8 bits per slice: the logits move by a few per cent of their range at most.
        assert!(
            worst > 0.0 && worst < 5e-2 * scale,
            "worst {worst} of scale {scale}"
        );
    }

    #[test]
    fn an_int8_record_without_its_scales_is_an_error() {
        let device = Device::flex();
        let model = HashNetConfig::new(32, 1).init(&device);
        let bytes = model.into_record().into_bytes().unwrap().to_vec();
        let (int8, _) = int8_record(bytes, "test").unwrap();
        let tensors = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(int8))
            .and_then(burn_pack::Reader::into_tensors)
            .unwrap();
        let (scales, rest): (Vec<_>, Vec<_>) = tensors
            .into_iter()
            .partition(|t| t.name.ends_with(INT8_SCALE_SUFFIX));
        let without = burn_pack::Writer::new(rest).into_bytes().unwrap().to_vec();
        let e = HashNetConfig::new(32, 1)
            .load(without, &device, "model.bpk")
            .unwrap_err();
        assert!(e.to_string().contains("without its scales"), "{e}");
        assert!(e.to_string().contains("model.bpk"), "{e}");
        assert!(!scales.is_empty());
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_it() {
        let e = half_precision_record(vec![1, 2, 3], "model.bpk").unwrap_err();
        assert!(e.to_string().contains("model.bpk"), "{e}");
    }
}
