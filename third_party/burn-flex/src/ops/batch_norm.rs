//! Batch normalisation as fused per-channel passes over the NCHW data (a patch of hashguard's,
//! not upstream Burn: see PATCH.md). Burn's default composes it from tensor operations: two
//! `[batch, channels, ..]` -> `[channels, ..]` transposes (full copies) for the statistics and
//! about ten broadcast element-wise passes for the training gradient. Here each channel's
//! statistics are one pass over its contiguous runs (accumulated in f64), and the output or
//! input gradient one more pass. f16 and bf16 run in f32 and are converted back.

use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::{BatchNormTrain, BatchNormTrainBackward};
use burn_std::{Bytes, Shape, bf16, f16};

use crate::{Flex, FlexTensor, Layout};

/// The float types computed natively.
trait Real:
    Copy
    + Send
    + Sync
    + bytemuck::Pod
    + burn_backend::Element
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
{
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// `[batch, channels, spatial]` of a tensor of rank >= 2.
fn dims(x: &FlexTensor) -> (usize, usize, usize) {
    let s = x.layout().shape();
    let (batch, channels) = (s[0], s[1]);
    let spatial = s.num_elements().checked_div(batch * channels).unwrap_or(0);
    (batch, channels, spatial)
}

fn tensor<T: Real>(data: Vec<T>, shape: Shape, dtype: DType) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), dtype)
}

/// f16 and bf16 tensors as f32 (contiguous), others contiguous as they are.
fn widen(t: &FlexTensor) -> FlexTensor {
    let t = t.to_contiguous();
    let shape = t.layout().shape().clone();
    let data: Vec<f32> = match t.dtype() {
        DType::F16 => t.storage::<f16>().iter().map(|v| v.to_f32()).collect(),
        DType::BF16 => t.storage::<bf16>().iter().map(|v| v.to_f32()).collect(),
        _ => return t,
    };
    tensor(data, shape, DType::F32)
}

/// Converts an f32 result back to `dtype` (f16 or bf16); other dtypes are returned as is.
fn narrow(t: FlexTensor, dtype: DType) -> FlexTensor {
    let shape = t.layout().shape().clone();
    match dtype {
        DType::F16 => {
            let data: Vec<f16> = t
                .storage::<f32>()
                .iter()
                .map(|&v| f16::from_f32(v))
                .collect();
            FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), dtype)
        }
        DType::BF16 => {
            let data: Vec<bf16> = t
                .storage::<f32>()
                .iter()
                .map(|&v| bf16::from_f32(v))
                .collect();
            FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), dtype)
        }
        _ => t,
    }
}

/// Runs `f` once per channel (in parallel where rayon is on) and collects the results in
/// channel order.
fn per_channel<R: Send>(channels: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..channels).map(f).collect()
    }
}

/// Fills the output one (image, channel) run at a time, in parallel over the runs:
/// `f(c, range, run)` writes the run of channel `c` that sits at `range` in the NCHW data.
/// Each run is a plain slice loop, which the compiler vectorises.
fn map_runs<T: Real>(
    (batch, channels, spatial): (usize, usize, usize),
    f: impl Fn(usize, core::ops::Range<usize>, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let mut out = alloc::vec![T::from_f64(0.0); batch * channels * spatial];
    if spatial == 0 {
        return out;
    }
    let run =
        |(i, chunk): (usize, &mut [T])| f(i % channels, i * spatial..(i + 1) * spatial, chunk);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(spatial).enumerate().for_each(run);
    }
    #[cfg(not(feature = "rayon"))]
    out.chunks_mut(spatial).enumerate().for_each(run);
    out
}

/// Sum over a channel's runs of `f(a[i], b[i])`, in f64, with eight partial sums so that the
/// loop vectorises (a single running sum would chain every addition on the one before).
fn channel_sum<T: Real>(
    c: usize,
    (batch, channels, spatial): (usize, usize, usize),
    (a, b): (&[T], &[T]),
    f: impl Fn(f64, f64) -> f64,
) -> f64 {
    const LANES: usize = 8;
    let mut partial = [0.0f64; LANES];
    let mut tail = 0.0;
    for image in 0..batch {
        let run = (image * channels + c) * spatial..(image * channels + c + 1) * spatial;
        let (a, b) = (&a[run.clone()], &b[run]);
        let (a8, b8) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        for (x, y) in a8.remainder().iter().zip(b8.remainder()) {
            tail += f(x.to_f64(), y.to_f64());
        }
        for (x, y) in a8.zip(b8) {
            for lane in 0..LANES {
                partial[lane] += f(x[lane].to_f64(), y[lane].to_f64());
            }
        }
    }
    partial.iter().sum::<f64>() + tail
}

fn channel_values<T: Real>(t: &FlexTensor) -> Vec<f64> {
    t.storage::<T>().iter().map(|v| v.to_f64()).collect()
}

/// `y = (x - mean) / sqrt(variance + epsilon) * gamma + beta`, per channel.
fn inference<T: Real>(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let d = dims(x);
    let (g, b, m, v) = (
        channel_values::<T>(gamma),
        channel_values::<T>(beta),
        channel_values::<T>(mean),
        channel_values::<T>(variance),
    );
    let xs = x.storage::<T>();
    let out = map_runs::<T>(d, |c, run, out| {
        let scale = g[c] / (v[c] + epsilon).sqrt();
        normalise(&xs[run], (m[c], scale, b[c]), out);
    });
    tensor(out, x.layout().shape().clone(), x.dtype())
}

/// `out = (x - mean) * scale + shift`, in `T` (the per-channel constants computed in f64).
fn normalise<T: Real>(x: &[T], (mean, scale, shift): (f64, f64, f64), out: &mut [T]) {
    let (mean, scale, shift) = (T::from_f64(mean), T::from_f64(scale), T::from_f64(shift));
    for (o, &x) in out.iter_mut().zip(x) {
        *o = (x - mean) * scale + shift;
    }
}

/// The batch's own statistics (mean and biased variance per channel) and the normalised output.
fn train<T: Real>(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let d = dims(x);
    let n = (d.0 * d.2).max(1) as f64;
    let xs = x.storage::<T>();
    let stats: Vec<(f64, f64)> = per_channel(d.1, |c| {
        let mean = channel_sum(c, d, (xs, xs), |x, _| x) / n;
        let var = channel_sum(c, d, (xs, xs), |x, _| (x - mean) * (x - mean)) / n;
        (mean, var)
    });
    let mean: Vec<T> = stats.iter().map(|s| T::from_f64(s.0)).collect();
    let variance: Vec<T> = stats.iter().map(|s| T::from_f64(s.1)).collect();
    let (g, b) = (channel_values::<T>(gamma), channel_values::<T>(beta));
    let out = map_runs::<T>(d, |c, run, out| {
        let (mean, var) = stats[c];
        normalise(&xs[run], (mean, g[c] / (var + epsilon).sqrt(), b[c]), out);
    });
    let dtype = x.dtype();
    (
        tensor(out, x.layout().shape().clone(), dtype),
        tensor(mean, Shape::new([d.1]), dtype),
        tensor(variance, Shape::new([d.1]), dtype),
    )
}

/// Gradients of [`train`]: `beta' = sum dy`, `gamma' = sum dy * xhat`, and
/// `x' = gamma / std * (dy - mean(dy) - xhat * mean(dy * xhat))`.
fn train_backward<T: Real>(
    x: &FlexTensor,
    gamma: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
    dy: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let d = dims(x);
    let n = (d.0 * d.2).max(1) as f64;
    let (xs, dys) = (x.storage::<T>(), dy.storage::<T>());
    let (g, m, v) = (
        channel_values::<T>(gamma),
        channel_values::<T>(mean),
        channel_values::<T>(variance),
    );
    let inv_std: Vec<f64> = v.iter().map(|v| 1.0 / (v + epsilon).sqrt()).collect();
    let sums: Vec<(f64, f64)> = per_channel(d.1, |c| {
        let dy_sum = channel_sum(c, d, (dys, dys), |dy, _| dy);
        let dy_centred = channel_sum(c, d, (dys, xs), |dy, x| dy * (x - m[c]));
        (dy_sum, dy_centred * inv_std[c])
    });
    // x' = a * dy + b * (x - mean) + k per channel, with a = gamma / std,
    // b = -a * mean(dy * xhat) / std and k = -a * mean(dy).
    let dx = map_runs::<T>(d, |c, run, out| {
        let (dy_sum, dy_xhat) = sums[c];
        let a = g[c] * inv_std[c];
        let [a, b, k, mean] =
            [a, -a * inv_std[c] * dy_xhat / n, -a * dy_sum / n, m[c]].map(T::from_f64);
        for ((o, &dy), &x) in out.iter_mut().zip(&dys[run.clone()]).zip(&xs[run]) {
            *o = a * dy + b * (x - mean) + k;
        }
    });
    let dtype = x.dtype();
    let channel = |f: fn(&(f64, f64)) -> f64| -> FlexTensor {
        tensor(
            sums.iter().map(|s| T::from_f64(f(s))).collect::<Vec<T>>(),
            Shape::new([d.1]),
            dtype,
        )
    };
    (
        tensor(dx, x.layout().shape().clone(), dtype),
        channel(|s| s.1),
        channel(|s| s.0),
    )
}

macro_rules! by_dtype {
    ($dtype:expr, $f:ident($($arg:expr),*)) => {
        match $dtype {
            DType::F64 => $f::<f64>($($arg),*),
            _ => $f::<f32>($($arg),*),
        }
    };
}

/// Inference batch normalisation with given statistics.
pub(crate) fn batch_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let dtype = x.dtype();
    let [x, gamma, beta, mean, variance] = [&x, &gamma, &beta, &mean, &variance].map(widen);
    let out = by_dtype!(
        x.dtype(),
        inference(&x, &gamma, &beta, &mean, &variance, epsilon)
    );
    narrow(out, dtype)
}

/// Training batch normalisation: the output and the batch's statistics.
pub(crate) fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> BatchNormTrain<Flex> {
    let dtype = x.dtype();
    let [x, gamma, beta] = [&x, &gamma, &beta].map(widen);
    let (out, mean, variance) = by_dtype!(x.dtype(), train(&x, &gamma, &beta, epsilon));
    BatchNormTrain::new(
        narrow(out, dtype),
        narrow(mean, dtype),
        narrow(variance, dtype),
    )
}

/// Gradients of [`batch_norm_train`] for the input, `gamma` and `beta`.
pub(crate) fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> BatchNormTrainBackward<Flex> {
    let dtype = x.dtype();
    let [x, gamma, mean, variance, dy] = [&x, &gamma, &mean, &variance, &output_grad].map(widen);
    let (dx, dgamma, dbeta) = by_dtype!(
        x.dtype(),
        train_backward(&x, &gamma, &mean, &variance, epsilon, &dy)
    );
    BatchNormTrainBackward::new(
        narrow(dx, dtype),
        narrow(dgamma, dtype),
        narrow(dbeta, dtype),
    )
}
