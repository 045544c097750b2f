//! 2D convolution as one GEMM per image over a channel-major (NCHW) im2col matrix, and both of
//! its gradients on the same kernel (a patch of hashguard's, not upstream Burn: see PATCH.md).
//!
//! The forward pass builds, for each image, the matrix `cols[(c_in, kh, kw), (oh, ow)]` of
//! shifted input rows (row copies with zero borders, no layout conversion), then computes
//! `out[c_out, (oh, ow)] = W[c_out, (c_in, kh, kw)] @ cols` straight into the NCHW output: the
//! weight needs no reordering and the result no scatter. Images run in parallel; the GEMM of
//! one image runs in parallel instead when the batch is smaller than the thread pool.
//!
//! The input gradient of a stride-1 convolution is the forward convolution of the output
//! gradient with the weight transposed over channels and flipped in space, padded by
//! `dilation * (k - 1) - padding`: it reuses the forward kernel (a GEMM with the reduction over
//! `c_out * kh * kw`, not `c_in`, and no col2im scatter). The weight gradient is
//! `sum_b dy_b[c_out, (oh, ow)] @ cols_b^T`, summed over fixed chunks of the batch in a fixed
//! order, so the result does not depend on the thread count or on scheduling.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::ops::conv::{calculate_padding_out, pad_asymmetric_conv_input};
use burn_backend::ops::{ConvOptions, ConvTransposeOptions, FloatTensorOps, ModuleOps};
use burn_backend::{DType, Element};
use burn_std::{Bytes, Shape, Slice, f16};

use super::conv_common::{add_bias, convert_bf16_to_f32, convert_f32_to_bf16};
use crate::{Flex, FlexTensor, Layout};

/// Largest im2col tile, in elements: whole output rows are grouped up to this size (at least
/// one row), so very large images (VGG at 224x224) never materialise the full matrix.
const COLS_TILE_ELEMS: usize = 256 * 1024;

/// Number of batch chunks whose weight-gradient partial sums are added in order.
const WEIGHT_GRAD_CHUNKS: usize = 16;

/// Geometry of one 2D convolution, padding possibly asymmetric. With `groups > 1`, output
/// channel block `g` reads input channel block `g` (weight `[c_out, c_in / groups, kh, kw]`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv2dGeometry {
    pub(crate) c_in: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c_out: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) stride: [usize; 2],
    pub(crate) dilation: [usize; 2],
    pub(crate) pad_begin: [usize; 2],
    pub(crate) pad_end: [usize; 2],
    pub(crate) groups: usize,
}

impl Conv2dGeometry {
    /// Output size along one axis; `None` when the (dilated) kernel does not fit.
    fn out_len(
        len: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        pb: usize,
        pe: usize,
    ) -> Option<usize> {
        let span = dilation.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
        let padded = len.checked_add(pb)?.checked_add(pe)?;
        if stride == 0 || padded < span {
            return None;
        }
        Some((padded - span) / stride + 1)
    }

    /// Output height and width.
    pub(crate) fn out_hw(&self) -> Option<(usize, usize)> {
        Some((
            Self::out_len(
                self.h,
                self.kh,
                self.stride[0],
                self.dilation[0],
                self.pad_begin[0],
                self.pad_end[0],
            )?,
            Self::out_len(
                self.w,
                self.kw,
                self.stride[1],
                self.dilation[1],
                self.pad_begin[1],
                self.pad_end[1],
            )?,
        ))
    }

    /// Rows of the im2col matrix (all input channels).
    fn col_len(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Rows of the im2col matrix one group reads, and the output channels of a group.
    fn group_dims(&self) -> (usize, usize) {
        (self.col_len() / self.groups, self.c_out / self.groups)
    }

    /// Output rows per im2col tile.
    fn rows_per_tile(&self, ow: usize) -> usize {
        (COLS_TILE_ELEMS / (self.col_len() * ow).max(1)).max(1)
    }

    /// The geometry of the input gradient of a stride-1 convolution as a forward
    /// convolution of the output gradient, or `None` when that form does not apply.
    pub(crate) fn input_grad(&self) -> Option<Self> {
        if self.stride != [1, 1] {
            return None;
        }
        let (oh, ow) = self.out_hw()?;
        let reach = [
            self.dilation[0] * (self.kh - 1),
            self.dilation[1] * (self.kw - 1),
        ];
        let pad = |r: usize, p: usize| r.checked_sub(p);
        let g = Self {
            c_in: self.c_out,
            h: oh,
            w: ow,
            c_out: self.c_in,
            kh: self.kh,
            kw: self.kw,
            stride: [1, 1],
            dilation: self.dilation,
            pad_begin: [
                pad(reach[0], self.pad_begin[0])?,
                pad(reach[1], self.pad_begin[1])?,
            ],
            pad_end: [
                pad(reach[0], self.pad_end[0])?,
                pad(reach[1], self.pad_end[1])?,
            ],
            groups: self.groups,
        };
        (g.out_hw()? == (self.h, self.w)).then_some(g)
    }
}

/// Fills `cols[(ci, ky, kx), (oy - y0, ox)]` for output rows `y0..y1` of one image.
fn im2col<T: Copy>(
    x: &[T],
    g: &Conv2dGeometry,
    ow: usize,
    y0: usize,
    y1: usize,
    zero: T,
    cols: &mut [T],
) {
    let width = (y1 - y0) * ow;
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let [ph, pw] = g.pad_begin;
    for ci in 0..g.c_in {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut cols[((ci * g.kh + ky) * g.kw + kx) * width..][..width];
                // Output columns whose input column ox * sw + kx * dw - pw lies in 0..w.
                let shift = kx * dw;
                let ox_lo = pw.saturating_sub(shift).div_ceil(sw).min(ow);
                let ox_hi = if g.w + pw > shift {
                    (g.w + pw - shift).div_ceil(sw).min(ow).max(ox_lo)
                } else {
                    ox_lo
                };
                if sh == 1 && sw == 1 && ow == g.w {
                    // Consecutive output rows read consecutive input rows at a fixed shift:
                    // one copy for the whole block, then the out-of-range columns zeroed.
                    let off = (ky * dh) as isize - ph as isize;
                    let vy0 = (-off).clamp(y0 as isize, y1 as isize) as usize;
                    let vy1 = (g.h as isize - off).clamp(vy0 as isize, y1 as isize) as usize;
                    row[..(vy0 - y0) * ow].fill(zero);
                    row[(vy1 - y0) * ow..].fill(zero);
                    let block = &mut row[(vy0 - y0) * ow..(vy1 - y0) * ow];
                    let start = (vy0 as isize + off) * g.w as isize + shift as isize - pw as isize;
                    let lo = (-start).clamp(0, block.len() as isize) as usize;
                    let hi = (plane.len() as isize - start).clamp(lo as isize, block.len() as isize)
                        as usize;
                    if lo < hi {
                        // Only then is `start + lo` inside the plane (a tiny plane, e.g. 1x1
                        // under a 3x3 kernel, can leave the block empty or all padding).
                        let src0 = (start + lo as isize) as usize;
                        block[lo..hi].copy_from_slice(&plane[src0..src0 + (hi - lo)]);
                    }
                    block[..lo].fill(zero);
                    block[hi..].fill(zero);
                    for r in block.chunks_exact_mut(ow) {
                        r[..ox_lo].fill(zero);
                        r[ox_hi..].fill(zero);
                    }
                    continue;
                }
                for oy in y0..y1 {
                    let dst = &mut row[(oy - y0) * ow..(oy - y0 + 1) * ow];
                    let iy = oy * sh + ky * dh;
                    if iy < ph || iy - ph >= g.h {
                        dst.fill(zero);
                        continue;
                    }
                    let src = &plane[(iy - ph) * g.w..(iy - ph + 1) * g.w];
                    dst[..ox_lo].fill(zero);
                    dst[ox_hi..].fill(zero);
                    let ix0 = ox_lo * sw + shift - pw;
                    if sw == 1 {
                        dst[ox_lo..ox_hi].copy_from_slice(&src[ix0..ix0 + (ox_hi - ox_lo)]);
                    } else {
                        for (d, ix) in dst[ox_lo..ox_hi].iter_mut().zip((ix0..).step_by(sw)) {
                            *d = src[ix];
                        }
                    }
                }
            }
        }
    }
}

/// `dst[m x n] (+)= lhs[m x k] @ rhs[k x n]`, each matrix a slice read with explicit
/// (column, row) strides (`dst`'s column stride is 1).
///
/// # Panics
/// If a matrix does not lie whole inside its slice: that check is what makes the call into
/// `gemm` (which takes raw pointers and strides) sound.
#[allow(clippy::too_many_arguments)]
fn gemm_strided<T: Copy + 'static>(
    [m, k, n]: [usize; 3],
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    (lhs, lhs_cs, lhs_rs): (&[T], usize, usize),
    (rhs, rhs_cs, rhs_rs): (&[T], usize, usize),
    one: T,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    // The largest element offset a strided matrix reaches (none when it is empty).
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows > 0 && cols > 0).then(|| (rows - 1) * rs + (cols - 1) * cs)
    };
    let fits = |len: usize, last: Option<usize>| last.is_none_or(|i| i < len);
    assert!(
        fits(dst.len(), last(m, n, dst_rs, 1))
            && fits(lhs.len(), last(m, k, lhs_rs, lhs_cs))
            && fits(rhs.len(), last(k, n, rhs_rs, rhs_cs)),
        "conv2d: a GEMM operand does not lie inside its buffer"
    );
    let parallelism = if parallel && m * n * k >= 192 * 192 * 192 {
        gemm_parallelism()
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above keeps every element `gemm` reads or writes inside its
    // slice; `dst` is borrowed mutably, so it does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            one,
            one,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Cuts one image's output rows into tiles of [`Conv2dGeometry::rows_per_tile`] rows, fills
/// `cols` with each tile's im2col (`col_len x width`), and calls `f(first_row, width, cols)`.
fn for_each_tile<T: Copy>(
    x: &[T],
    g: &Conv2dGeometry,
    (oh, ow): (usize, usize),
    cols: &mut Vec<T>,
    zero: T,
    mut f: impl FnMut(usize, usize, &[T]),
) {
    let cl = g.col_len();
    let rows = g.rows_per_tile(ow);
    let mut y0 = 0;
    while y0 < oh {
        let y1 = (y0 + rows).min(oh);
        let width = (y1 - y0) * ow;
        cols.resize(cl * width, zero);
        im2col(x, g, ow, y0, y1, zero, cols);
        f(y0, width, cols);
        y0 = y1;
    }
}

#[cfg(feature = "rayon")]
fn gemm_parallelism() -> gemm::Parallelism {
    gemm::Parallelism::Rayon(0)
}

#[cfg(not(feature = "rayon"))]
fn gemm_parallelism() -> gemm::Parallelism {
    gemm::Parallelism::None
}

/// Whether images should run in parallel (else each image's GEMM runs in parallel).
fn images_in_parallel(batch: usize) -> bool {
    #[cfg(feature = "rayon")]
    {
        batch > 1 && batch >= rayon::current_num_threads().min(4)
    }
    #[cfg(not(feature = "rayon"))]
    {
        let _ = batch;
        false
    }
}

/// Forward convolution of one image: `out[c_out, oh * ow]` from `x[c_in, h * w]` and the
/// weight `w[c_out, c_in * kh * kw]`.
#[allow(clippy::too_many_arguments)]
fn conv_image<T: Copy + 'static>(
    x: &[T],
    weight: &[T],
    g: &Conv2dGeometry,
    (oh, ow): (usize, usize),
    out: &mut [T],
    cols: &mut Vec<T>,
    zero: T,
    one: T,
    parallel_gemm: bool,
) {
    let sp = oh * ow;
    let (cl_g, co_g) = g.group_dims();
    for_each_tile(x, g, (oh, ow), cols, zero, |y0, width, cols| {
        for grp in 0..g.groups {
            gemm_strided(
                [co_g, cl_g, width],
                &mut out[grp * co_g * sp + y0 * ow..],
                sp,
                false,
                (&weight[grp * co_g * cl_g..], 1, cl_g),
                (&cols[grp * cl_g * width..], 1, width),
                one,
                parallel_gemm,
            );
        }
    });
}

/// Forward 2D convolution of a contiguous NCHW batch with a contiguous
/// `[c_out, c_in / groups, kh, kw]` weight; returns the contiguous NCHW output.
pub(crate) fn conv2d<T: Copy + Send + Sync + 'static>(
    x: &[T],
    weight: &[T],
    batch: usize,
    g: &Conv2dGeometry,
    zero: T,
    one: T,
) -> Vec<T> {
    let (oh, ow) = g
        .out_hw()
        .expect("conv2d: the kernel does not fit the padded input");
    let (in_len, out_len) = (g.c_in * g.h * g.w, g.c_out * oh * ow);
    let mut out = vec![zero; batch * out_len];
    if out_len == 0 || g.col_len() == 0 {
        return out;
    }
    if images_in_parallel(batch) {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(out_len)
                .enumerate()
                .for_each_init(Vec::new, |cols, (b, o)| {
                    conv_image(
                        &x[b * in_len..][..in_len],
                        weight,
                        g,
                        (oh, ow),
                        o,
                        cols,
                        zero,
                        one,
                        false,
                    )
                });
        }
    } else {
        let mut cols = Vec::new();
        for (b, o) in out.chunks_mut(out_len).enumerate() {
            conv_image(
                &x[b * in_len..][..in_len],
                weight,
                g,
                (oh, ow),
                o,
                &mut cols,
                zero,
                one,
                true,
            );
        }
    }
    out
}

/// Input gradient of a stride-1 convolution: the forward convolution of `grad` (the output
/// gradient, `[batch, c_out, oh, ow]`) with the channel-transposed, spatially flipped weight.
/// `None` when [`Conv2dGeometry::input_grad`] does not apply.
pub(crate) fn conv2d_input_grad<T: Copy + Send + Sync + 'static>(
    grad: &[T],
    weight: &[T],
    batch: usize,
    g: &Conv2dGeometry,
    zero: T,
    one: T,
) -> Option<Vec<T>> {
    let gi = g.input_grad()?;
    let k = g.kh * g.kw;
    let (ci_g, co_g) = (g.c_in / g.groups, g.c_out / g.groups);
    // weight[g * co_g + o, c] becomes flipped[g * ci_g + c, o], each kernel reversed.
    let mut flipped = vec![zero; weight.len()];
    for grp in 0..g.groups {
        for o in 0..co_g {
            for c in 0..ci_g {
                let src = &weight[((grp * co_g + o) * ci_g + c) * k..][..k];
                let dst = &mut flipped[((grp * ci_g + c) * co_g + o) * k..][..k];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
    }
    Some(conv2d(grad, &flipped, batch, &gi, zero, one))
}

/// Adds one image's weight gradient `dy[c_out, oh * ow] @ cols^T` into `dw[c_out, col_len]`.
#[allow(clippy::too_many_arguments)]
fn weight_grad_image<T: Copy + 'static>(
    x: &[T],
    dy: &[T],
    g: &Conv2dGeometry,
    (oh, ow): (usize, usize),
    dw: &mut [T],
    cols: &mut Vec<T>,
    zero: T,
    one: T,
    parallel_gemm: bool,
) {
    let sp = oh * ow;
    let (cl_g, co_g) = g.group_dims();
    for_each_tile(x, g, (oh, ow), cols, zero, |y0, width, cols| {
        // Per group, lhs: dy's columns y0*ow.. (c_out/groups x width, row stride sp);
        // rhs: the group's rows of cols, transposed (width x cl/groups).
        for grp in 0..g.groups {
            gemm_strided(
                [co_g, width, cl_g],
                &mut dw[grp * co_g * cl_g..],
                cl_g,
                true,
                (&dy[grp * co_g * sp + y0 * ow..], 1, sp),
                (&cols[grp * cl_g * width..], width, 1),
                one,
                parallel_gemm,
            );
        }
    });
}

/// Weight gradient `[c_out, c_in / groups * kh * kw]` of a convolution from its input
/// `x` and output gradient `grad`, both contiguous NCHW. The batch is cut into at most
/// [`WEIGHT_GRAD_CHUNKS`] chunks of consecutive images whose partial sums are added in chunk
/// order, so the result is the same on any thread count.
pub(crate) fn conv2d_weight_grad<T: Copy + Send + Sync + core::ops::Add<Output = T> + 'static>(
    x: &[T],
    grad: &[T],
    batch: usize,
    g: &Conv2dGeometry,
    zero: T,
    one: T,
) -> Vec<T> {
    let (oh, ow) = g
        .out_hw()
        .expect("conv2d: the kernel does not fit the padded input");
    let (in_len, out_len) = (g.c_in * g.h * g.w, g.c_out * oh * ow);
    let w_len = g.c_out * g.group_dims().0;
    let chunk = batch.div_ceil(WEIGHT_GRAD_CHUNKS).max(1);
    let run_chunk = |c: usize, parallel_gemm: bool| {
        let mut dw = vec![zero; w_len];
        let mut cols = Vec::new();
        for b in c * chunk..((c + 1) * chunk).min(batch) {
            weight_grad_image(
                &x[b * in_len..][..in_len],
                &grad[b * out_len..][..out_len],
                g,
                (oh, ow),
                &mut dw,
                &mut cols,
                zero,
                one,
                parallel_gemm,
            );
        }
        dw
    };
    let chunks = batch.div_ceil(chunk);
    if out_len == 0 || w_len == 0 || chunks == 0 {
        return vec![zero; w_len];
    }
    let partials: Vec<Vec<T>> = if images_in_parallel(chunks) {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            (0..chunks)
                .into_par_iter()
                .map(|c| run_chunk(c, false))
                .collect()
        }
        #[cfg(not(feature = "rayon"))]
        unreachable!()
    } else {
        (0..chunks).map(|c| run_chunk(c, true)).collect()
    };
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| vec![zero; w_len]);
    for p in partials {
        for (d, v) in dw.iter_mut().zip(p) {
            *d = *d + v;
        }
    }
    dw
}

// ============================================================================
// Tensor-level entry points (dtype dispatch); `None` means "use the general path".
// ============================================================================

/// The geometry of a 2D convolution of `x` (`[batch, c_in, h, w]`) with `weight`
/// (`[c_out, c_in / groups, kh, kw]`) and its batch size, or `None` for an inconsistent shape.
fn geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<(usize, Conv2dGeometry)> {
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    let groups = options.groups;
    if xs.num_dims() != 4
        || ws.num_dims() != 4
        || groups == 0
        || !xs[1].is_multiple_of(groups)
        || !ws[0].is_multiple_of(groups)
        || xs[1] / groups != ws[1]
    {
        return None;
    }
    let g = Conv2dGeometry {
        c_in: xs[1],
        h: xs[2],
        w: xs[3],
        c_out: ws[0],
        kh: ws[2],
        kw: ws[3],
        stride: options.stride,
        dilation: options.dilation,
        pad_begin: options.padding_begin(),
        pad_end: options.padding_end(),
        groups,
    };
    g.out_hw()?;
    Some((xs[0], g))
}

/// Whether the forward pass takes this module's path: ungrouped convolutions with a kernel
/// larger than 1x1 over more than one row. Grouped (depthwise), 1x1 and 1D-like convolutions
/// keep Flex's dedicated paths.
fn forward_covers(g: &Conv2dGeometry) -> bool {
    g.groups == 1 && g.kh * g.kw > 1 && g.h > 1
}

fn has_shape(t: &FlexTensor, shape: [usize; 4]) -> bool {
    let s = t.layout().shape();
    s.num_dims() == 4 && s.dims::<4>() == shape
}

/// Whether `grad` is the output gradient of the convolution `g` over `batch` images.
fn is_output_grad(grad: &FlexTensor, batch: usize, g: &Conv2dGeometry) -> bool {
    g.out_hw()
        .is_some_and(|(oh, ow)| has_shape(grad, [batch, g.c_out, oh, ow]))
}

/// Runs `$body` with `T` bound to the tensor's float type and `zero`/`one` its constants;
/// `None` for other dtypes (bf16 is converted to f32 by the callers).
macro_rules! with_float {
    ($dtype:expr, |$zero:ident, $one:ident: $T:ident| $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                let ($zero, $one) = (0.0f32, 1.0f32);
                $body
            }
            DType::F64 => {
                type $T = f64;
                let ($zero, $one) = (0.0f64, 1.0f64);
                $body
            }
            DType::F16 => {
                type $T = f16;
                let ($zero, $one) = (f16::from_f32(0.0), f16::from_f32(1.0));
                $body
            }
            _ => None,
        }
    };
}

fn tensor<T: Element + bytemuck::Pod>(data: Vec<T>, shape: [usize; 4], dtype: DType) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape.to_vec())),
        dtype,
    )
}

/// Runs `f` on f32 copies of bf16 tensors and converts its result back; other dtypes as is.
fn via_f32_if_bf16<const N: usize>(
    tensors: [&FlexTensor; N],
    f: impl FnOnce([FlexTensor; N]) -> Option<FlexTensor>,
) -> Option<FlexTensor> {
    if tensors.iter().all(|t| t.dtype() == DType::BF16) {
        f(tensors.map(convert_bf16_to_f32)).map(|t| convert_f32_to_bf16(&t))
    } else if tensors.iter().all(|t| t.dtype() == tensors[0].dtype()) {
        f(tensors.map(FlexTensor::to_contiguous))
    } else {
        None
    }
}

/// Forward 2D convolution, when this module covers its shape and dtype.
pub(crate) fn try_conv2d(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let (batch, g) = geometry(x, weight, options)?;
    if !forward_covers(&g) || bias.is_some_and(|b| b.dtype() != x.dtype()) {
        return None;
    }
    let (oh, ow) = g.out_hw()?;
    let dtype = x.dtype();
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    if weight.dtype() != dtype {
        return None;
    }
    with_float!(dtype, |zero, one: T| {
        let mut out = conv2d::<T>(x.storage(), weight.storage(), batch, &g, zero, one);
        if let Some(bias) = bias {
            let bias = bias.to_contiguous();
            add_bias(&mut out, bias.storage::<T>(), batch, g.c_out, oh * ow);
        }
        Some(tensor(out, [batch, g.c_out, oh, ow], dtype))
    })
}

/// Input gradient of a 2D convolution when it has stride 1 (any groups, padding and
/// dilation); `None` otherwise.
pub(crate) fn try_conv2d_x_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let (batch, g) = geometry(x, weight, options)?;
    if !is_output_grad(output_grad, batch, &g) {
        return None;
    }
    g.input_grad()?;
    via_f32_if_bf16([output_grad, weight], |[dy, weight]| {
        let dtype = dy.dtype();
        with_float!(dtype, |zero, one: T| {
            let dx = conv2d_input_grad::<T>(dy.storage(), weight.storage(), batch, &g, zero, one)?;
            Some(tensor(dx, [batch, g.c_in, g.h, g.w], dtype))
        })
    })
}

/// Weight gradient of a 2D convolution (any stride, groups, padding and dilation); `None`
/// only for inconsistent shapes or dtypes.
pub(crate) fn try_conv2d_weight_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let (batch, g) = geometry(x, weight, options)?;
    if !is_output_grad(output_grad, batch, &g) {
        return None;
    }
    via_f32_if_bf16([x, output_grad], |[x, dy]| {
        let dtype = x.dtype();
        with_float!(dtype, |zero, one: T| {
            let dw = conv2d_weight_grad::<T>(x.storage(), dy.storage(), batch, &g, zero, one);
            Some(tensor(dw, [g.c_out, g.c_in / g.groups, g.kh, g.kw], dtype))
        })
    })
}

/// Burn's default input gradient (`burn_backend`'s `conv2d_x_backward`): the transposed
/// convolution of the output gradient, for the strided convolutions the flipped form does not
/// cover. Asymmetric padding is applied to the input first and cropped from the gradient.
pub(crate) fn default_conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    let input_shape = x.layout().shape().clone();
    let padding = options.padding;
    let (x, options) = pad_asymmetric_conv_input::<Flex, 2>(x, options);
    let [_, _, h, w] = x.layout().shape().dims::<4>();
    let [_, _, oh, ow] = output_grad.layout().shape().dims::<4>();
    let [_, _, kh, kw] = weight.layout().shape().dims::<4>();
    let [sh, sw] = options.stride;
    let [ph, pw] = options.padding_begin();
    let [dh, dw] = options.dilation;
    let grad = Flex::conv_transpose2d(
        output_grad,
        weight,
        None,
        ConvTransposeOptions::new(
            options.stride,
            options.padding_begin(),
            [
                calculate_padding_out(kh, sh, ph, dh, h, oh),
                calculate_padding_out(kw, sw, pw, dw, w, ow),
            ],
            options.dilation,
            options.groups,
        ),
    );
    if padding.iter().all(|(b, e)| b == e) {
        return grad;
    }
    let ranges: Vec<Slice> = (0..4)
        .map(|d| {
            let begin = if d >= 2 { padding[d - 2].0 } else { 0 };
            Slice::from(begin..begin + input_shape[d])
        })
        .collect();
    Flex::float_slice(grad, &ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct-loop reference convolution of one image (f64 accumulation).
    fn reference(x: &[f32], w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
        let (oh, ow) = g.out_hw().unwrap();
        let mut out = vec![0.0; g.c_out * oh * ow];
        let (ci_g, co_g) = (g.c_in / g.groups, g.c_out / g.groups);
        for co in 0..g.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0f64;
                    for c in 0..ci_g {
                        let ci = co / co_g * ci_g + c;
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                                    - g.pad_begin[0] as isize;
                                let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                                    - g.pad_begin[1] as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                s += x[(ci * g.h + iy as usize) * g.w + ix as usize] as f64
                                    * w[((co * ci_g + c) * g.kh + ky) * g.kw + kx] as f64;
                            }
                        }
                    }
                    out[(co * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 17) as f32 - 8.0)
            .collect()
    }

    fn geometries() -> Vec<Conv2dGeometry> {
        let g = |c_in, h, w, c_out, kh, kw, stride, dilation, pad_begin, pad_end, groups| {
            Conv2dGeometry {
                c_in,
                h,
                w,
                c_out,
                kh,
                kw,
                stride,
                dilation,
                pad_begin,
                pad_end,
                groups,
            }
        };
        vec![
            g(3, 9, 7, 4, 3, 3, [1, 1], [1, 1], [1, 1], [1, 1], 1),
            g(2, 8, 8, 3, 3, 3, [2, 2], [1, 1], [1, 1], [1, 1], 1),
            g(2, 10, 9, 3, 3, 2, [1, 2], [2, 1], [2, 0], [1, 1], 1),
            g(1, 12, 11, 5, 5, 5, [3, 1], [1, 1], [2, 2], [2, 2], 1),
            g(4, 6, 6, 2, 3, 3, [1, 1], [1, 1], [0, 0], [0, 0], 1),
            g(4, 7, 6, 6, 3, 3, [1, 1], [1, 1], [1, 2], [2, 1], 2),
            g(3, 5, 5, 3, 1, 1, [1, 1], [1, 1], [0, 0], [0, 0], 3),
            // Width-preserving stride-1 shapes (the block-copy im2col): dilated, asymmetric.
            g(2, 8, 6, 3, 3, 3, [1, 1], [2, 2], [2, 2], [2, 2], 1),
            g(2, 7, 5, 2, 3, 3, [1, 1], [1, 1], [2, 0], [0, 2], 1),
            g(3, 4, 9, 2, 5, 3, [1, 1], [1, 1], [1, 1], [3, 1], 1),
            // Planes smaller than the kernel (ResNet's last stage on small images).
            g(2, 1, 1, 3, 3, 3, [1, 1], [1, 1], [1, 1], [1, 1], 1),
            g(2, 2, 1, 2, 5, 3, [1, 1], [1, 1], [2, 1], [2, 1], 1),
            g(1, 1, 2, 2, 3, 3, [1, 1], [2, 2], [2, 2], [2, 2], 1),
        ]
    }

    #[test]
    fn forward_matches_the_direct_loop() {
        for g in geometries() {
            let batch = 3;
            let x = values(batch * g.c_in * g.h * g.w, 1);
            let w = values(g.c_out * g.group_dims().0, 2);
            let out = conv2d(&x, &w, batch, &g, 0.0, 1.0);
            let per = out.len() / batch;
            for b in 0..batch {
                let want = reference(&x[b * g.c_in * g.h * g.w..][..g.c_in * g.h * g.w], &w, &g);
                assert_eq!(&out[b * per..][..per], &want[..], "{g:?} image {b}");
            }
        }
    }

    #[test]
    fn gradients_match_their_definitions() {
        // <conv(x), dy> is linear in x and in w: its gradients are exact on small integers.
        for g in geometries() {
            let (oh, ow) = g.out_hw().unwrap();
            let batch = 2;
            let (in_len, out_len) = (g.c_in * g.h * g.w, g.c_out * oh * ow);
            let x = values(batch * in_len, 3);
            let w = values(g.c_out * g.group_dims().0, 4);
            let dy = values(batch * out_len, 5);
            let dw = conv2d_weight_grad(&x, &dy, batch, &g, 0.0, 1.0);
            for (i, got) in dw.iter().enumerate() {
                let mut unit = vec![0.0; w.len()];
                unit[i] = 1.0;
                let out = conv2d(&x, &unit, batch, &g, 0.0, 1.0);
                let want: f32 = out.iter().zip(&dy).map(|(a, b)| a * b).sum();
                assert_eq!(*got, want, "{g:?} weight {i}");
            }
            if let Some(dx) = conv2d_input_grad(&dy, &w, batch, &g, 0.0, 1.0) {
                for i in (0..x.len()).step_by(7) {
                    let mut unit = vec![0.0; x.len()];
                    unit[i] = 1.0;
                    let out = conv2d(&unit, &w, batch, &g, 0.0, 1.0);
                    let want: f32 = out.iter().zip(&dy).map(|(a, b)| a * b).sum();
                    assert_eq!(dx[i], want, "{g:?} input {i}");
                }
            } else {
                assert_ne!(
                    g.stride,
                    [1, 1],
                    "{g:?}: stride 1 must have the flipped form"
                );
            }
        }
    }

    #[cfg(feature = "rayon")]
    #[test]
    fn weight_grad_does_not_depend_on_the_thread_count() {
        let g = geometries()[0];
        let (oh, ow) = g.out_hw().unwrap();
        let batch = 37;
        let x: Vec<f32> = (0..batch * g.c_in * g.h * g.w)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let dy: Vec<f32> = (0..batch * g.c_out * oh * ow)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| conv2d_weight_grad(&x, &dy, batch, &g, 0.0, 1.0))
        };
        let one = on(1);
        assert_eq!(one, on(3));
        assert_eq!(one, on(8));
    }
}
