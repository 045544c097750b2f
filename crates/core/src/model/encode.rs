//! Batched inference: relaxed codes `f(x)` for many images, read back to the host. Runs the
//! model as given, so pass a `valid()` copy for evaluation.

use burn::prelude::*;

use super::HashNet;
use crate::data::{Augment, ImageSet, to_tensor};
use crate::{Error, Result};

/// Relaxed codes of the images `indices` of `set`, `bits` values per image, row-major.
///
/// `on_batch(done)` is called after each batch with the number of images encoded so far.
pub fn encode_images(
    model: &HashNet,
    set: &ImageSet,
    indices: &[usize],
    batch_size: usize,
    device: &Device,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(indices.len() * model.bits());
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    for chunk in indices.chunks(batch_size.max(1)) {
        let images = to_tensor(set, chunk, Augment::NONE, &mut rng, device);
        let codes: Vec<f32> = model
            .forward(images)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::Numeric(format!("reading codes: {e:?}")))?;
        if codes.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numeric(
                "the model produced NaN codes: the model record is corrupt or training diverged"
                    .into(),
            ));
        }
        out.extend(codes);
        on_batch(out.len() / model.bits());
    }
    Ok(out)
}
