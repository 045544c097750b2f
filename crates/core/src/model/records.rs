//! Checks on serialised records before Burn loads them. Burn's loaders trust what they read: a
//! model record with a NaN weight loads silently (and every code it gives is garbage), and an
//! optimiser tensor without its parameter id panics. These read the record once more, on the
//! host, and refuse such files with an error that says what to do.

use std::collections::BTreeMap;

use burn::tensor::{Bytes, DType};

use crate::{Error, Result};

/// The tensors of a burnpack record, each with as many bytes as its shape and type claim, and
/// its scalars.
pub(super) fn tensors(
    bytes: &[u8],
    what: &str,
    origin: &str,
) -> Result<(Vec<burn_pack::Tensor>, BTreeMap<String, burn_pack::Scalar>)> {
    let corrupt = |e: String| {
        Error::record(
            origin,
            format!("corrupt {what} ({e}); retrain or restore it"),
        )
    };
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| corrupt(e.to_string()))?;
    let scalars = reader.scalars().clone();
    let tensors = reader.into_tensors().map_err(|e| corrupt(e.to_string()))?;
    for t in &tensors {
        let elements = t
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| corrupt(format!("tensor {} has an impossible shape", t.name)))?;
        let expected = match t.dtype {
            DType::QFloat(_) => continue,
            dtype => elements.checked_mul(dtype.size()),
        };
        if expected != Some(t.byte_len()) {
            return Err(corrupt(format!(
                "tensor {} holds {} bytes, its shape {:?} needs {}",
                t.name,
                t.byte_len(),
                t.shape.as_slice(),
                expected.map_or("more than memory".into(), |n| n.to_string())
            )));
        }
    }
    Ok((tensors, scalars))
}

/// Whether every value of a float tensor's little-endian bytes is finite (other types: true).
fn all_finite(dtype: DType, bytes: &[u8]) -> bool {
    match dtype {
        DType::F64 => bytes
            .chunks_exact(8)
            .all(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")).is_finite()),
        DType::F32 | DType::Flex32 => bytes
            .chunks_exact(4)
            .all(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")).is_finite()),
        // Half types are infinite or NaN exactly when all their exponent bits are set.
        DType::F16 => bytes
            .chunks_exact(2)
            .all(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7C00 != 0x7C00),
        DType::BF16 => bytes
            .chunks_exact(2)
            .all(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7F80 != 0x7F80),
        _ => true,
    }
}

/// A fingerprint of a model record's weights: FNV-1a of its tensor data section. The metadata
/// is left out: its `param_id`s are fresh random numbers at every save, so two bit-identical
/// trainings write files that differ there and only there (the tensor names and shapes it also
/// holds are fixed by the network). Refuses a file that is not a burnpack record.
pub(crate) fn weights_fingerprint(bytes: &[u8], origin: &str) -> Result<String> {
    let corrupt = |e: String| {
        Error::record(
            origin,
            format!("corrupt model record ({e}); retrain or restore it"),
        )
    };
    let header = burn_pack::Header::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
    let start = burn_pack::aligned_data_section_start(header.metadata_size as usize);
    let data = bytes.get(start..).ok_or_else(|| {
        corrupt(format!(
            "{} bytes, shorter than its {}-byte metadata",
            bytes.len(),
            header.metadata_size
        ))
    })?;
    Ok(crate::data::fingerprint(data.iter().copied()))
}

/// Refuses a model record (`model.bpk` or a checkpoint's model) that is not a whole burnpack
/// file or holds a NaN or infinite weight.
pub(crate) fn check_model_record(bytes: &[u8], origin: &str) -> Result<()> {
    for t in tensors(bytes, "model record", origin)?.0 {
        let (name, dtype, _, _, data) = t
            .into_parts()
            .map_err(|e| Error::record(origin, format!("corrupt model record ({e})")))?;
        // Every parameter of the network is a float tensor: Burn's loader panics on another.
        if !(dtype.is_float() || matches!(dtype, DType::QFloat(_))) {
            return Err(Error::record(
                origin,
                format!(
                    "corrupt model record ({name} holds {dtype:?} values where the network has \
                     float weights); retrain or restore it"
                ),
            ));
        }
        if !all_finite(dtype, &data) {
            return Err(Error::record(
                origin,
                format!(
                    "model record holds NaN or infinite weights in {name}: the run diverged or \
                     the file is damaged; retrain or restore it"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses an optimiser record (a checkpoint's) that is not a whole burnpack file or has a
/// tensor without the parameter id Burn's loader needs.
///
/// Burn 0.22's loader panics on both (and on a state tensor whose rank is not its parameter's),
/// where an error would do: these checks stand in for that until it returns one.
pub(crate) fn check_optimizer_record(bytes: &[u8], origin: &str) -> Result<()> {
    let (tensors, scalars) = tensors(bytes, "optimiser record", origin)?;
    let corrupt = |m: String| {
        Error::record(
            origin,
            format!(
                "corrupt optimiser record ({m}); delete the checkpoint to restart training from \
                 scratch"
            ),
        )
    };
    // Each parameter's rank as the loader decides it: its `ID.__rank` scalar, else the rank
    // of its first tensor.
    let mut ranks: BTreeMap<u64, usize> = BTreeMap::new();
    for (name, value) in &scalars {
        if let Some(id) = name.strip_suffix(".__rank")
            && let (Ok(id), Ok(rank)) = (id.parse::<u64>(), usize::try_from(*value))
        {
            ranks.insert(id, rank);
        }
    }
    for t in &tensors {
        let id = t
            .param_id
            .ok_or_else(|| corrupt(format!("tensor {} has no parameter id", t.name)))?;
        ranks.entry(id).or_insert(t.shape.len());
    }
    // The loader builds parameter ID's state from the tensors named `ID.…`.
    for t in &tensors {
        let rank = t
            .name
            .split_once('.')
            .and_then(|(id, _)| id.parse::<u64>().ok())
            .and_then(|id| ranks.get(&id));
        if let Some(&rank) = rank
            && rank != t.shape.len()
        {
            return Err(corrupt(format!(
                "tensor {} has {} dimensions, its parameter {rank}",
                t.name,
                t.shape.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_types_are_checked_by_their_exponent_bits() {
        let bits = |v: &[u16]| v.iter().flat_map(|b| b.to_le_bytes()).collect::<Vec<u8>>();
        // f16: 1.5, -65504 (the largest), then NaN and infinity.
        assert!(all_finite(DType::F16, &bits(&[0x3E00, 0xFBFF])));
        assert!(!all_finite(DType::F16, &bits(&[0x3E00, 0x7E00])));
        assert!(!all_finite(DType::F16, &bits(&[0x7C00])));
        // bf16: 3.0e38, then -infinity.
        assert!(all_finite(DType::BF16, &bits(&[0x7F61])));
        assert!(!all_finite(DType::BF16, &bits(&[0xFF80])));
        assert!(!all_finite(DType::F32, &f32::NAN.to_le_bytes()));
        assert!(all_finite(DType::F32, &1.0f32.to_le_bytes()));
        assert!(all_finite(DType::I64, &[0xFF; 8]));
    }

    #[test]
    fn the_weights_fingerprint_ignores_the_metadata_and_nothing_else() {
        // A burnpack file: header, metadata (holding the random parameter ids), padding to
        // the aligned data section, tensor data.
        let file = |metadata: &[u8], data: &[u8]| {
            let mut b = burn_pack::Header::new(metadata.len() as u32)
                .into_bytes()
                .to_vec();
            b.extend_from_slice(metadata);
            b.resize(burn_pack::aligned_data_section_start(metadata.len()), 0);
            b.extend_from_slice(data);
            b
        };
        let weights = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let a = weights_fingerprint(&file(b"param_id 17", &weights), "a").unwrap();
        let b = weights_fingerprint(&file(b"param_id 99", &weights), "b").unwrap();
        assert_eq!(a, b, "same weights, other parameter ids");
        let mut changed = weights;
        changed[7] ^= 1;
        let c = weights_fingerprint(&file(b"param_id 17", &changed), "c").unwrap();
        assert_ne!(a, c, "one weight bit differs");
        // Not a burnpack file, or cut inside its metadata: refused, naming the file.
        let e = weights_fingerprint(b"cgat weights", "run/model.bpk").unwrap_err();
        assert!(e.to_string().contains("run/model.bpk"), "{e}");
        let whole = file(&[7; 300], &weights);
        assert!(weights_fingerprint(&whole[..200], "cut").is_err());
    }
}
