//! Data-parallel training steps through Burn's own multi-device machinery: the batch is split
//! into one shard per device, each device runs forward and backward on a fork of the model in
//! its own thread, and Burn's `MultiGradientsParams` sums the gradients for `step_multi`.
//!
//! Burn sums, it does not average: each shard's loss is weighted by its share of the batch, so
//! the summed gradient is the full batch's mean gradient and the learning rate needs no scaling
//! (one step on two devices with half batches is one step on one device with the whole batch,
//! tested). Batch norm normalises each shard by its own statistics, as PyTorch's DDP does
//! without SyncBatchNorm, and its running averages take the mean of the shards' updates.

use std::ops::Range;

use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::prelude::*;

use crate::data::LabelSet;
use crate::loss::LossParts;
use crate::model::HashNet;
use crate::{Error, Result};

/// Images a shard needs at least: batch norm cannot normalise a single image.
const MIN_SHARD: usize = 2;

/// Splits `n` images over at most `devices` shards of at least [`MIN_SHARD`] images each,
/// contiguous and as equal as can be (the first shards take the remainder).
pub(super) fn shards(n: usize, devices: usize) -> Vec<Range<usize>> {
    let k = devices.min(n / MIN_SHARD).max(1);
    let (base, extra) = (n / k, n % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// Gradients of one batch computed over `devices` (the first is the model's own): the
/// images and labels are sharded, each shard's loss `loss(logits, labels, device)` is scaled
/// by its share of the batch, and the shards run concurrently, one thread per device.
/// Returns the gradients for `ModuleOptimizer::step_multi` and the batch's (total,
/// similarity, quantisation) loss values, the shards' weighted sum.
pub(super) fn sharded_gradients<F>(
    model: &HashNet,
    images: Tensor<4>,
    labels: &[LabelSet],
    devices: &[Device],
    loss: F,
) -> Result<(MultiGradientsParams, [f32; 3])>
where
    F: Fn(Tensor<2>, &[LabelSet], &Device) -> Result<LossParts> + Sync,
{
    let n = labels.len();
    let parts = shards(n, devices.len());
    // Batch norm's running statistics keep one pending update per thread and fold them (the
    // mean) when read from a thread that has one, or by `valid()`. The workers are new threads
    // every step, so fold the last step's updates here, before they read the statistics.
    drop(model.valid());
    let shard = |range: Range<usize>, device: &Device| -> Result<(GradientsParams, [f32; 3])> {
        let replica = model.clone().fork(device);
        let x = images
            .clone()
            .narrow(0, range.start, range.len())
            .to_device(device);
        let parts = loss(replica.logits(x), &labels[range.clone()], device)?;
        let share = range.len() as f32 / n as f32;
        let values = super::standard::loss_values(parts.clone())?.map(|v| v * share);
        let grads = (parts.total * share).backward();
        Ok((GradientsParams::from_grads(grads, &replica), values))
    };
    let results: Vec<Result<(GradientsParams, [f32; 3])>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .zip(devices)
            .map(|(range, device)| scope.spawn(move || shard(range, device)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Numeric(
                        "a data-parallel worker thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut grads = MultiGradientsParams { grads: Vec::new() };
    let mut values = [0f32; 3];
    for (result, device) in results.into_iter().zip(devices) {
        let (g, v) = result?;
        grads.grads.push((g, device.clone()));
        for (sum, v) in values.iter_mut().zip(v) {
            *sum += v;
        }
    }
    Ok((grads, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_and_never_hold_a_single_image() {
        assert_eq!(shards(8, 2), vec![0..4, 4..8]);
        assert_eq!(shards(7, 3), vec![0..3, 3..5, 5..7]);
        // Too few images for every device: fewer shards.
        assert_eq!(shards(5, 4), vec![0..3, 3..5]);
        assert_eq!(shards(3, 2), vec![0..3]);
        assert_eq!(shards(1, 2), vec![0..1]);
        for n in 2..40 {
            for d in 1..6 {
                let s = shards(n, d);
                assert_eq!(s.first().unwrap().start, 0);
                assert_eq!(s.last().unwrap().end, n);
                assert!(s.windows(2).all(|w| w[0].end == w[1].start));
                assert!(s.iter().all(|r| r.len() >= MIN_SHARD) && s.len() <= d);
            }
        }
    }
}
