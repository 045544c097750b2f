//! Burn's CPU backend as hashguard patches it (third_party/*/PATCH.md), through Burn's public
//! API: `conv2d` and both of its gradients against a direct loop in f64, and batch norm (Flex's
//! fused kernels, autodiff's one-operation inference) against its composed formula.

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// One convolution: input `[batch, c_in, h, w]`, weight `[c_out, c_in / groups, kh, kw]`.
struct Case {
    x: [usize; 4],
    w: [usize; 4],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: [(usize, usize); 2],
    groups: usize,
}

impl Case {
    fn out(&self) -> [usize; 4] {
        let len = |i: usize| {
            let (pb, pe) = self.padding[i];
            (self.x[2 + i] + pb + pe - self.dilation[i] * (self.w[2 + i] - 1) - 1) / self.stride[i]
                + 1
        };
        [self.x[0], self.w[0], len(0), len(1)]
    }

    /// `y[b, co, oy, ox] = sum x[b, ci, iy, ix] * w[co, c, ky, kx]` with every index spelt out.
    fn for_each_term(&self, mut f: impl FnMut(usize, usize, usize)) {
        let [batch, c_in, h, w] = self.x;
        let [c_out, ci_g, kh, kw] = self.w;
        let [_, _, oh, ow] = self.out();
        let co_g = c_out / self.groups;
        for b in 0..batch {
            for co in 0..c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let y = ((b * c_out + co) * oh + oy) * ow + ox;
                        for c in 0..ci_g {
                            let ci = co / co_g * ci_g + c;
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * self.stride[0] + ky * self.dilation[0])
                                        .checked_sub(self.padding[0].0);
                                    let ix = (ox * self.stride[1] + kx * self.dilation[1])
                                        .checked_sub(self.padding[1].0);
                                    let (Some(iy), Some(ix)) = (iy, ix) else {
                                        continue;
                                    };
                                    if iy >= h || ix >= w {
                                        continue;
                                    }
                                    let xi = ((b * c_in + ci) * h + iy) * w + ix;
                                    let wi = ((co * ci_g + c) * kh + ky) * kw + kx;
                                    f(y, xi, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 23) as f32 / 8.0 - 1.4)
        .collect()
}

fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}[{i}]: {g} against {w}"
        );
    }
}

/// A tensor's values as f32.
fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Asserts `a` equals `b` element by element within 1e-4 relative (plus 1e-4 absolute).
fn near(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
            "{what}[{i}]: {x} against {y}"
        );
    }
}

#[test]
fn flex_conv2d_and_its_gradients_match_a_direct_loop() {
    let case = |x, w, stride, dilation, padding, groups| Case {
        x,
        w,
        stride,
        dilation,
        padding,
        groups,
    };
    let cases = [
        // The small CNN's layers (3x3, padding 1), the first with one input channel.
        case(
            [3, 1, 9, 9],
            [4, 1, 3, 3],
            [1, 1],
            [1, 1],
            [(1, 1), (1, 1)],
            1,
        ),
        case(
            [2, 5, 8, 7],
            [6, 5, 3, 3],
            [1, 1],
            [1, 1],
            [(1, 1), (1, 1)],
            1,
        ),
        // A plane smaller than the kernel: ResNet-18's last stage on small images.
        case(
            [2, 3, 1, 1],
            [4, 3, 3, 3],
            [1, 1],
            [1, 1],
            [(1, 1), (1, 1)],
            1,
        ),
        // AlexNet's stem (11x11, stride 4), a strided ResNet layer, dilation, asymmetric padding.
        case(
            [2, 3, 23, 23],
            [4, 3, 11, 11],
            [4, 4],
            [1, 1],
            [(2, 2), (2, 2)],
            1,
        ),
        case(
            [2, 4, 9, 9],
            [5, 4, 3, 3],
            [2, 2],
            [1, 1],
            [(1, 1), (1, 1)],
            1,
        ),
        case(
            [2, 3, 10, 9],
            [2, 3, 3, 2],
            [1, 1],
            [2, 1],
            [(2, 0), (1, 1)],
            1,
        ),
        // Kept on upstream's forward paths: 1x1, grouped and depthwise, a single row.
        case(
            [2, 6, 5, 5],
            [4, 6, 1, 1],
            [1, 1],
            [1, 1],
            [(0, 0), (0, 0)],
            1,
        ),
        case(
            [2, 4, 7, 6],
            [6, 2, 3, 3],
            [1, 1],
            [1, 1],
            [(1, 2), (2, 1)],
            2,
        ),
        case(
            [2, 3, 6, 6],
            [3, 1, 3, 3],
            [2, 1],
            [1, 1],
            [(1, 1), (1, 1)],
            3,
        ),
        case(
            [2, 4, 1, 12],
            [3, 4, 1, 3],
            [1, 1],
            [1, 1],
            [(0, 0), (0, 0)],
            1,
        ),
    ];
    let device = Device::flex();
    for (n, c) in cases.iter().enumerate() {
        let (xs, ws, dys) = (
            values(c.x.iter().product(), 1),
            values(c.w.iter().product(), 2),
            values(c.out().iter().product(), 3),
        );
        let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), c.x), &device)
            .autodiff()
            .require_grad();
        let w = Tensor::<4>::from_data(TensorData::new(ws.clone(), c.w), &device)
            .autodiff()
            .require_grad();
        let dy = Tensor::<4>::from_data(TensorData::new(dys.clone(), c.out()), &device).autodiff();
        let options = ConvOptions::new_with_padding(c.stride, c.padding, c.dilation, c.groups);
        let y = conv2d(x.clone(), w.clone(), None, options);
        assert_eq!(y.dims(), c.out(), "case {n}: output shape");
        let grads = (y.clone() * dy).sum().backward();
        let read = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();

        let (mut want_y, mut want_dx, mut want_dw) = (
            vec![0f64; dys.len()],
            vec![0f64; xs.len()],
            vec![0f64; ws.len()],
        );
        c.for_each_term(|yi, xi, wi| {
            want_y[yi] += xs[xi] as f64 * ws[wi] as f64;
            want_dx[xi] += dys[yi] as f64 * ws[wi] as f64;
            want_dw[wi] += dys[yi] as f64 * xs[xi] as f64;
        });
        close(&read(y.inner()), &want_y, &format!("case {n}: output"));
        close(
            &read(x.grad(&grads).unwrap()),
            &want_dx,
            &format!("case {n}: input gradient"),
        );
        close(
            &read(w.grad(&grads).unwrap()),
            &want_dw,
            &format!("case {n}: weight gradient"),
        );
    }
}

/// Batch normalisation (training: batch statistics; inference: given ones) against the same
/// formula composed from tensor operations, whose gradient autodiff derives op by op.
#[test]
fn flex_batch_norm_and_its_gradients_match_the_composed_formula() {
    use burn::tensor::module::{batch_norm, batch_norm_train};
    let device = Device::flex();
    let shape = [3, 4, 5, 6];
    let eps = 1e-5;
    let tensor =
        |n: usize, seed: usize| Tensor::<1>::from_floats(values(n, seed).as_slice(), &device);
    let n = shape.iter().product();
    let x = tensor(n, 4).reshape(shape).autodiff().require_grad();
    let gamma = tensor(4, 5).autodiff().require_grad();
    let beta = tensor(4, 6).autodiff().require_grad();
    let dy = tensor(n, 7).reshape(shape).autodiff();

    let fused = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps);
    let per_channel = |t: Tensor<1>| t.reshape([1, 4, 1, 1]);
    let swapped = |t: Tensor<4>| t.swap_dims(0, 1).reshape([4, n / 4]);
    let mean = swapped(x.clone()).mean_dim(1).reshape([1, 4, 1, 1]);
    let centred = x.clone() - mean.clone();
    let variance = swapped(centred.clone() * centred.clone())
        .mean_dim(1)
        .reshape([1, 4, 1, 1]);
    let composed = centred / (variance.clone() + eps).sqrt() * per_channel(gamma.clone())
        + per_channel(beta.clone());

    near(
        &read(fused.output.clone().inner()),
        &read(composed.clone().inner()),
        "output",
    );
    near(&read(fused.mean.inner()), &read(mean.inner()), "mean");
    near(
        &read(fused.variance.inner()),
        &read(variance.inner()),
        "variance",
    );

    let g_fused = (fused.output * dy.clone()).sum().backward();
    let g_composed = (composed * dy).sum().backward();
    near(
        &read(x.grad(&g_fused).unwrap()),
        &read(x.grad(&g_composed).unwrap()),
        "input gradient",
    );
    near(
        &read(gamma.grad(&g_fused).unwrap()),
        &read(gamma.grad(&g_composed).unwrap()),
        "gamma gradient",
    );
    near(
        &read(beta.grad(&g_fused).unwrap()),
        &read(beta.grad(&g_composed).unwrap()),
        "beta gradient",
    );

    // Inference with given statistics, on the plain (non-autodiff) device.
    let (xi, g, b) = (x.inner(), gamma.inner(), beta.inner());
    let (m, v) = (tensor(4, 8), tensor(4, 9).abs() + 0.5);
    let fused = batch_norm(xi.clone(), g.clone(), b.clone(), m.clone(), v.clone(), eps);
    let composed =
        (xi - per_channel(m)) / (per_channel(v) + eps).sqrt() * per_channel(g) + per_channel(b);
    near(&read(fused), &read(composed), "inference output");
}

/// Inference batch normalisation on the autodiff device (the patched `burn-autodiff`, see
/// third_party/burn-autodiff/PATCH.md): with only the input tracked it is one operation whose
/// gradient scales per channel; with a statistic or parameter tracked it is recorded as the
/// composition. Both against the composed formula, differentiated op by op.
#[test]
fn autodiff_inference_batch_norm_matches_the_composed_formula() {
    use burn::tensor::module::batch_norm;
    let device = Device::flex();
    let shape = [3, 4, 5, 6];
    let eps = 1e-5;
    let n: usize = shape.iter().product();
    let tensor =
        |n: usize, seed: usize| Tensor::<1>::from_floats(values(n, seed).as_slice(), &device);
    let per_channel = |t: Tensor<1>| t.reshape([1, 4, 1, 1]);
    for track_all in [false, true] {
        let what = |s: &str| format!("{s} (statistics tracked: {track_all})");
        let leaf = |t: Tensor<1>| {
            let t = t.autodiff();
            if track_all { t.require_grad() } else { t }
        };
        let x = tensor(n, 4).reshape(shape).autodiff().require_grad();
        let (g, b) = (leaf(tensor(4, 5)), leaf(tensor(4, 6)));
        let (m, v) = (leaf(tensor(4, 8)), leaf(tensor(4, 9).abs() + 0.5));
        let dy = tensor(n, 7).reshape(shape).autodiff();
        let fused = batch_norm(x.clone(), g.clone(), b.clone(), m.clone(), v.clone(), eps);
        let composed = (x.clone() - per_channel(m.clone())) / (per_channel(v.clone()) + eps).sqrt()
            * per_channel(g.clone())
            + per_channel(b.clone());
        near(
            &read(fused.clone().inner()),
            &read(composed.clone().inner()),
            &what("output"),
        );
        let g_fused = (fused * dy.clone()).sum().backward();
        let g_composed = (composed * dy).sum().backward();
        near(
            &read(x.grad(&g_fused).unwrap()),
            &read(x.grad(&g_composed).unwrap()),
            &what("input gradient"),
        );
        for (name, t) in [("gamma", &g), ("beta", &b), ("mean", &m), ("variance", &v)] {
            match (t.grad(&g_fused), t.grad(&g_composed)) {
                (Some(f), Some(c)) => near(&read(f), &read(c), &what(name)),
                (None, None) => assert!(!track_all, "{}", what(name)),
                (f, c) => panic!(
                    "{}: gradient {:?} against {:?}",
                    what(name),
                    f.is_some(),
                    c.is_some()
                ),
            }
        }
    }
}
