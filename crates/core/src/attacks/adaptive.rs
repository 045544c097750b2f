//! The white-box attacker who knows UMCD (paper eq. 10–13): targeted towards a benign image's
//! code (against C1) while keeping the quantisation loss up (against C2) and the mean-blurred
//! copy's code close (against C3), with BPDA through the blur, and optionally (hashguard's L4)
//! the thumbnail close to what the target retrieves (against C4); fixed-step PGD as in the
//! paper, or an APGD-style schedule (Croce & Hein) with random restarts.

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Budget;
use crate::filters::{Filter, ImageShape};
use crate::model::HashNet;
use crate::{Error, Result};

/// Weights of eq. 13 and the denoiser the attacker anticipates.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdaptiveWeights {
    /// λ1, weight of L2 = −‖h(x') − f(x')‖₁ (the paper sweeps 0 … 0.03).
    pub lambda1: f32,
    /// λ2, weight of L3 = D_h(f(t(x')), f(x')) (the paper: 0.3 and 3).
    pub lambda2: f32,
    /// Side of the mean-blur window t (UMCD's C3 filter).
    pub blur: usize,
    /// λ4, weight of L4 = mean RMS distance between x''s thumbnail and the looks each target
    /// carries (against C4, retrieval consistency; not in the paper, 0 leaves its attacker).
    #[serde(default)]
    pub lambda4: f32,
}

/// How the iterates move.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum StepRule {
    /// The paper's PGD: signed steps of `budget.step` from the clean image; the last iterate.
    Fixed,
    /// APGD (Croce & Hein, 2020): step 2·eps halved at checkpoints where progress stalls,
    /// momentum 0.75, restart from the best point after a halving; `restarts` runs from
    /// uniform random starts, keeping each image's lowest-loss point.
    Apgd {
        /// Runs from random starts (at least 1).
        restarts: usize,
    },
}

/// Per-image values of eq. 13's three terms (bits summed).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveTerms {
    /// L1 = D_h(f(x'), h_t) = (K − f(x')·h_t) / 2.
    pub l1: Vec<f32>,
    /// L2 = −‖sign f(x') − f(x')‖₁.
    pub l2: Vec<f32>,
    /// L3 = D_h(f(t(x')), f(x')) = (K − f(t(x'))·f(x')) / 2.
    pub l3: Vec<f32>,
    /// L4 = mean RMS distance of x''s thumbnail to its looks (0 without looks).
    pub l4: Vec<f32>,
}

/// The thumbnails of a batch as a differentiable tensor: each channel's mean over `grid` x
/// `grid` cells, the same near-equal cells as [`crate::detectors::thumbnail`] (two pooling
/// matrices, so the gradient reaches every pixel of its cell).
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`; output: `[batch, channels · cells]`
pub fn thumbnail_tensor(x: Tensor<4>, grid: usize) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    // rows: [g_h, h] with 1/len on each cell's pixels; cols: [w, g_w], likewise.
    let pool = |len: usize| {
        let cells = crate::detectors::consistency_bins(len, grid.min(len).max(1));
        let mut m = vec![0f32; cells.len() * len];
        for (i, &(a, b)) in cells.iter().enumerate() {
            for p in a..b {
                m[i * len + p] = 1.0 / (b - a) as f32;
            }
        }
        (cells.len(), m)
    };
    let (gh, rows) = pool(h);
    let (gw, cols) = pool(w);
    let rows = Tensor::<2>::from_data(TensorData::new(rows, [gh, h]), &device);
    let cols = Tensor::<2>::from_data(TensorData::new(cols, [gw, w]), &device).transpose();
    let rows: Tensor<4> = rows.unsqueeze::<4>().expand([n, c, gh, h]);
    let cols: Tensor<4> = cols.unsqueeze::<4>().expand([n, c, w, gw]);
    rows.matmul(x.matmul(cols)).reshape([n, c * gh * gw])
}

/// `t(x)` in the forward pass and the identity in the backward pass (BPDA, Athalye et al.):
/// `x + stop_gradient(t(x) − x)`. `x` may carry autodiff; the filter runs on its values.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`; output: the same
pub fn bpda(x: Tensor<4>, filter: &Filter, shape: ImageShape) -> Result<Tensor<4>> {
    let values = x
        .clone()
        .detach()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| Error::Numeric(format!("reading images for the blur: {e:?}")))?;
    let filtered = filter.apply_batch(&values, shape);
    let residual: Vec<f32> = filtered.iter().zip(&values).map(|(t, v)| t - v).collect();
    let residual = Tensor::<4>::from_data(TensorData::new(residual, x.dims()), &x.device());
    Ok(x + residual)
}

/// The per-image terms of [`adaptive_loss`], each `[batch]`, carrying `x`'s autodiff graph.
pub struct LossTerms {
    /// L1 + λ1·L2 + λ2·L3 + λ4·L4.
    pub total: Tensor<1>,
    /// L1, the distance to the target code.
    pub l1: Tensor<1>,
    /// L2, minus the quantisation loss.
    pub l2: Tensor<1>,
    /// L3, the distance to the blurred copy's code.
    pub l3: Tensor<1>,
    /// L4, the thumbnail's mean RMS distance to the looks (zeros without looks).
    pub l4: Tensor<1>,
}

/// Eq. 13 per image, L1 + λ1·L2 + λ2·L3, plus λ4·L4 when `looks` are given: each image's
/// wanted thumbnails ([`thumbnail_tensor`]'s layout; their length fixes the grid), L4 the mean
/// of its RMS distances to them. C4 averages over the closest few of the images the code
/// retrieves, so an attacker who knows it pulls towards as many.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`; `targets`: `[batch, bits]` in ±1;
///   `looks`: `[batch, looks per image, channels · grid²]`
pub fn adaptive_loss(
    model: &HashNet,
    x: Tensor<4>,
    targets: Tensor<2>,
    looks: Option<Tensor<3>>,
    weights: &AdaptiveWeights,
) -> Result<LossTerms> {
    let [n, c, h, w] = x.dims();
    let shape = ImageShape {
        channels: c,
        height: h,
        width: w,
    };
    let l4 = match looks {
        Some(looks) => {
            let [rows, m, len] = looks.dims();
            let grid = ((len / c.max(1)) as f64).sqrt().round() as usize;
            if grid == 0 || m == 0 || c * grid * grid != len || rows != n {
                return Err(Error::InvalidArgument(format!(
                    "looks of shape {:?} are not {n} sets of thumbnails of {c} channel(s) on a \
                     square grid",
                    looks.dims()
                )));
            }
            let d = thumbnail_tensor(x.clone(), grid).unsqueeze_dim::<3>(1) - looks;
            (d.clone() * d)
                .mean_dim(2)
                .add_scalar(1e-12)
                .sqrt()
                .mean_dim(1)
                .flatten::<1>(0, 2)
        }
        None => Tensor::<1>::zeros([n], &x.device()),
    };
    let blurred = bpda(x.clone(), &Filter::MeanBlur { size: weights.blur }, shape)?;
    // One forward for x' and t(x') together (batch norm is in inference mode).
    let f = model.forward(Tensor::cat(vec![x, blurred], 0));
    let k = f.dims()[1] as f64;
    let f_x = f.clone().narrow(0, 0, n);
    let f_t = f.narrow(0, n, n);
    let row = |t: Tensor<2>| t.sum_dim(1).flatten::<1>(0, 1);
    let l1 = (row(f_x.clone() * targets).neg() + k) / 2.0;
    let h = f_x.clone().detach().sign();
    let l2 = row((h - f_x.clone()).abs()).neg();
    let l3 = (row(f_t * f_x).neg() + k) / 2.0;
    let total = l1.clone()
        + l2.clone() * weights.lambda1 as f64
        + l3.clone() * weights.lambda2 as f64
        + l4.clone() * weights.lambda4 as f64;
    Ok(LossTerms {
        total,
        l1,
        l2,
        l3,
        l4,
    })
}

/// Runs the adaptive attack from `images` towards `targets` (and `looks`, see
/// [`adaptive_loss`]) and returns the adversarial batch (no autodiff) and its terms. `on_step`
/// is called after each iteration (all restarts).
///
/// # Shapes
/// - `images`: `[batch, channels, height, width]` in `[0, 1]`; `targets`: `[batch, bits]` in ±1
#[allow(clippy::too_many_arguments)]
pub fn adaptive_attack(
    model: &HashNet,
    images: Tensor<4>,
    targets: Tensor<2>,
    looks: Option<Tensor<3>>,
    weights: &AdaptiveWeights,
    budget: &Budget,
    rule: StepRule,
    seed: u64,
    mut on_step: impl FnMut(usize),
) -> Result<(Tensor<4>, AdaptiveTerms)> {
    budget.validate()?;
    if weights.blur == 0
        || !weights.lambda1.is_finite()
        || !weights.lambda2.is_finite()
        || !weights.lambda4.is_finite()
    {
        return Err(Error::InvalidArgument(format!(
            "adaptive attack: blur {} must be ≥ 1 and λ1 {}, λ2 {}, λ4 {} finite",
            weights.blur, weights.lambda1, weights.lambda2, weights.lambda4
        )));
    }
    if weights.lambda4 != 0.0 && looks.is_none() {
        return Err(Error::InvalidArgument(
            "adaptive attack: λ4 (the C4 term) needs a look per target".into(),
        ));
    }
    let clean = images.detach();
    let device = clean.device();
    let n = clean.dims()[0];
    let lower = (clean.clone() - budget.eps as f64).clamp_min(0.0);
    let upper = (clean.clone() + budget.eps as f64).clamp_max(1.0);
    let project = |x: Tensor<4>| x.max_pair(lower.clone()).min_pair(upper.clone());
    // Loss and gradient at x (gradient of the batch sum: each image's own).
    let eval = |x: &Tensor<4>| -> Result<(Vec<f32>, Tensor<4>)> {
        let xa = x.clone().autodiff().require_grad();
        let total =
            adaptive_loss(model, xa.clone(), targets.clone(), looks.clone(), weights)?.total;
        let grads = total.clone().sum().backward();
        let grad = xa.grad(&grads).ok_or_else(|| {
            Error::Numeric("no input gradient: the model is not differentiable here".into())
        })?;
        Ok((read(total.inner())?, grad))
    };
    let x = match rule {
        StepRule::Fixed => {
            let mut x = clean.clone();
            if budget.random_start {
                x = project(x + uniform(&clean, budget.eps, seed));
            }
            for i in 0..budget.steps {
                let (_, grad) = eval(&x)?;
                x = project(x - grad.sign() * budget.step as f64);
                on_step(i);
            }
            x
        }
        StepRule::Apgd { restarts } => {
            let mut best_x = clean.clone();
            let mut best_loss = vec![f32::INFINITY; n];
            for r in 0..restarts.max(1) {
                let start = project(clean.clone() + uniform(&clean, budget.eps, seed + r as u64));
                let (x, loss) = apgd(budget, start, &eval, &project, |i| {
                    on_step(r * budget.steps + i)
                })?;
                let better: Vec<bool> = loss.iter().zip(&best_loss).map(|(a, b)| a < b).collect();
                best_x = select(&better, x, best_x, &device);
                for (b, (l, keep)) in best_loss.iter_mut().zip(loss.iter().zip(&better)) {
                    if *keep {
                        *b = *l;
                    }
                }
            }
            best_x
        }
    };
    let t = adaptive_loss(model, x.clone(), targets, looks, weights)?;
    let terms = AdaptiveTerms {
        l1: read(t.l1)?,
        l2: read(t.l2)?,
        l3: read(t.l3)?,
        l4: read(t.l4)?,
    };
    Ok((x, terms))
}

/// Per-image losses and the input gradient of their sum at a point.
type LossAndGradient<'a> = dyn Fn(&Tensor<4>) -> Result<(Vec<f32>, Tensor<4>)> + 'a;

/// APGD's iterations from `start` (minimising): per-image step sizes, momentum 0.75, and at
/// each checkpoint a halving of the step (and a return to the best point) where fewer than
/// 75 % of the steps since the last checkpoint improved, or where neither the step nor the best
/// loss changed. Returns the best point of each image and its loss.
fn apgd(
    budget: &Budget,
    start: Tensor<4>,
    eval: &LossAndGradient<'_>,
    project: &dyn Fn(Tensor<4>) -> Tensor<4>,
    mut on_step: impl FnMut(usize),
) -> Result<(Tensor<4>, Vec<f32>)> {
    let device = start.device();
    let n = start.dims()[0];
    let checkpoints = apgd_checkpoints(budget.steps);
    let mut eta = vec![2.0 * budget.eps; n];
    let (mut loss, mut grad) = eval(&start)?;
    let (mut best_x, mut best_loss) = (start.clone(), loss.clone());
    let (mut x, mut prev) = (start.clone(), start);
    let mut improved = vec![0usize; n];
    let mut last = 0usize;
    let mut eta_at_last = eta.clone();
    let mut best_at_last = best_loss.clone();
    for i in 0..budget.steps {
        let step = per_image(&eta, &x.dims(), &device);
        let z = project(x.clone() - grad.sign() * step);
        let next = if i == 0 {
            z
        } else {
            project(x.clone() + (z - x.clone()) * 0.75 + (x.clone() - prev) * 0.25)
        };
        prev = x;
        x = next;
        let (new_loss, new_grad) = eval(&x)?;
        let better: Vec<bool> = new_loss
            .iter()
            .zip(&best_loss)
            .map(|(a, b)| a < b)
            .collect();
        for j in 0..n {
            if new_loss[j] < loss[j] {
                improved[j] += 1;
            }
            if better[j] {
                best_loss[j] = new_loss[j];
            }
        }
        best_x = select(&better, x.clone(), best_x, &device);
        loss = new_loss;
        grad = new_grad;
        on_step(i);
        if checkpoints.contains(&(i + 1)) {
            let span = (i + 1 - last) as f32;
            let mut restart = vec![false; n];
            for j in 0..n {
                let stalled = (improved[j] as f32) < 0.75 * span;
                let flat = eta[j] == eta_at_last[j] && best_loss[j] == best_at_last[j];
                if stalled || flat {
                    eta[j] /= 2.0;
                    restart[j] = true;
                }
            }
            eta_at_last = eta.clone();
            best_at_last = best_loss.clone();
            improved = vec![0; n];
            last = i + 1;
            if restart.iter().any(|&r| r) {
                x = select(&restart, best_x.clone(), x, &device);
                prev = x.clone();
                let (l, g) = eval(&x)?;
                loss = l;
                grad = g;
            }
        }
    }
    Ok((best_x, best_loss))
}

/// APGD's checkpoints ⌈p_j·N⌉: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06).
pub fn apgd_checkpoints(steps: usize) -> Vec<usize> {
    let mut p = vec![0.0f64, 0.22];
    while *p.last().expect("two entries") < 1.0 {
        let j = p.len() - 1;
        p.push(p[j] + (p[j] - p[j - 1] - 0.03).max(0.06));
    }
    let mut out: Vec<usize> = p
        .iter()
        .skip(1)
        .map(|q| (q * steps as f64 - 1e-9).ceil() as usize)
        .filter(|&w| w > 0 && w <= steps)
        .collect();
    out.dedup();
    out
}

/// Rows of `a` where `take` is set, of `b` elsewhere.
fn select(take: &[bool], a: Tensor<4>, b: Tensor<4>, device: &Device) -> Tensor<4> {
    let dims = a.dims();
    let mask: Vec<f32> = take.iter().map(|&t| if t { 1.0 } else { 0.0 }).collect();
    let mask = per_image(&mask, &dims, device);
    a * mask.clone() + b * (mask.neg() + 1.0)
}

/// A per-image scalar broadcast over `[n, c, h, w]`.
fn per_image(values: &[f32], dims: &[usize; 4], device: &Device) -> Tensor<4> {
    Tensor::<1>::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
        .reshape([dims[0], 1, 1, 1])
        .expand(*dims)
}

/// Uniform noise in `[−eps, eps]` shaped like `like`.
fn uniform(like: &Tensor<4>, eps: f32, seed: u64) -> Tensor<4> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise: Vec<f32> = (0..like.shape().num_elements())
        .map(|_| rng.random_range(-eps..=eps))
        .collect();
    Tensor::<4>::from_data(TensorData::new(noise, like.shape()), &like.device())
}

fn read(t: Tensor<1>) -> Result<Vec<f32>> {
    crate::host::read_floats(t, "adaptive loss")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::tiny_model;
    use crate::model::sign_codes;

    fn images(seed: u64, n: usize, device: &Device) -> Tensor<4> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..n * 64).map(|_| rng.random_range(0.0..1.0)).collect();
        Tensor::<4>::from_data(TensorData::new(v, [n, 1, 8, 8]), device)
    }

    const SHAPE: ImageShape = ImageShape {
        channels: 1,
        height: 8,
        width: 8,
    };

    /// PGD-20 at 32/255 without a random start: the white-box tests' budget.
    fn pgd20() -> Budget {
        Budget {
            eps: 32.0 / 255.0,
            step: 2.0 / 255.0,
            steps: 20,
            random_start: false,
            relax: 1.0,
        }
    }

    #[test]
    fn bpda_blurs_forward_and_passes_gradients_as_identity() {
        let device = Device::flex();
        let x = images(1, 2, &device);
        let filter = Filter::MeanBlur { size: 3 };
        let xa = x.clone().autodiff().require_grad();
        let out = bpda(xa.clone(), &filter, SHAPE).unwrap();
        // Forward: exactly the filter.
        let fwd = out.clone().inner().into_data().try_to_vec::<f32>().unwrap();
        let want = filter.apply_batch(&x.clone().into_data().try_to_vec::<f32>().unwrap(), SHAPE);
        for (a, b) in fwd.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!(
            fwd.iter()
                .zip(&x.into_data().try_to_vec::<f32>().unwrap())
                .any(|(a, b)| (a - b).abs() > 1e-3)
        );
        // Backward: d(Σ w ⊙ t(x))/dx = w, as if t were the identity.
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let w: Vec<f32> = (0..128).map(|_| rng.random_range(-1.0..1.0)).collect();
        let wt = Tensor::<4>::from_data(TensorData::new(w.clone(), [2, 1, 8, 8]), &xa.device());
        let grad = xa.grad(&(out * wt).sum().backward()).unwrap();
        let g = grad.into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in g.iter().zip(&w) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn loss_terms_match_their_definitions_on_hand_built_codes() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let x = images(3, 3, &device);
        let weights = AdaptiveWeights {
            lambda1: 0.01,
            lambda2: 3.0,
            blur: 2,
            lambda4: 0.0,
        };
        let targets = sign_codes(model.forward(images(4, 3, &device)));
        let LossTerms {
            total,
            l1,
            l2,
            l3,
            l4,
        } = adaptive_loss(&model, x.clone(), targets.clone(), None, &weights).unwrap();
        assert!(read(l4).unwrap().iter().all(|&v| v == 0.0));
        let f: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec().unwrap();
        let blurred = Filter::MeanBlur { size: 2 }
            .apply_batch(&x.into_data().try_to_vec::<f32>().unwrap(), SHAPE);
        let blurred = Tensor::<4>::from_data(TensorData::new(blurred, [3, 1, 8, 8]), &device);
        let ft: Vec<f32> = model.forward(blurred).into_data().try_to_vec().unwrap();
        let t: Vec<f32> = targets.into_data().try_to_vec().unwrap();
        let (l1, l2, l3, total) = (
            read(l1).unwrap(),
            read(l2).unwrap(),
            read(l3).unwrap(),
            read(total).unwrap(),
        );
        for i in 0..3 {
            let row = |v: &[f32]| v[i * 8..(i + 1) * 8].to_vec();
            let (fi, fti, ti) = (row(&f), row(&ft), row(&t));
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f32>();
            let want1 = (8.0 - dot(&fi, &ti)) / 2.0;
            let want2 = -fi.iter().map(|v| (v.signum() - v).abs()).sum::<f32>();
            let want3 = (8.0 - dot(&fti, &fi)) / 2.0;
            assert!((l1[i] - want1).abs() < 1e-4, "L1 {} vs {want1}", l1[i]);
            assert!((l2[i] - want2).abs() < 1e-4, "L2 {} vs {want2}", l2[i]);
            assert!((l3[i] - want3).abs() < 1e-4, "L3 {} vs {want3}", l3[i]);
            let want = want1 + 0.01 * want2 + 3.0 * want3;
            assert!((total[i] - want).abs() < 1e-4);
        }
    }

    #[test]
    fn both_rules_lower_the_loss_within_the_budget() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let x = images(5, 4, &device);
        let targets = sign_codes(model.forward(images(6, 4, &device))).neg();
        let weights = AdaptiveWeights {
            lambda1: 0.0075,
            lambda2: 0.3,
            blur: 2,
            lambda4: 0.0,
        };
        let before = adaptive_loss(&model, x.clone(), targets.clone(), None, &weights).unwrap();
        let before = read(before.total).unwrap();
        let budget = pgd20();
        for rule in [StepRule::Fixed, StepRule::Apgd { restarts: 2 }] {
            let mut calls = 0;
            let (adv, terms) = adaptive_attack(
                &model,
                x.clone(),
                targets.clone(),
                None,
                &weights,
                &budget,
                rule,
                7,
                |_| calls += 1,
            )
            .unwrap();
            let restarts = if let StepRule::Apgd { restarts } = rule {
                restarts
            } else {
                1
            };
            assert_eq!(calls, 20 * restarts);
            let a: Vec<f32> = adv.into_data().try_to_vec().unwrap();
            let c: Vec<f32> = x.clone().into_data().try_to_vec().unwrap();
            assert!(
                a.iter()
                    .zip(&c)
                    .all(|(p, q)| (0.0..=1.0).contains(p) && (p - q).abs() <= budget.eps + 1e-6)
            );
            let after: f32 = (0..4)
                .map(|i| terms.l1[i] + 0.0075 * terms.l2[i] + 0.3 * terms.l3[i])
                .sum();
            assert!(
                after < before.iter().sum::<f32>(),
                "{rule:?}: {before:?} -> {after}"
            );
        }
    }

    #[test]
    fn thumbnails_match_c4s_and_l4_pulls_the_thumbnail_towards_the_look() {
        let device = Device::flex();
        // Uneven cells: 8x8 pixels on a 3x3 grid, two channels.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let v: Vec<f32> = (0..2 * 2 * 64)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(v.clone(), [2, 2, 8, 8]), &device);
        let got: Vec<f32> = thumbnail_tensor(x, 3).into_data().try_to_vec().unwrap();
        let shape = ImageShape {
            channels: 2,
            height: 8,
            width: 8,
        };
        for i in 0..2 {
            let want = crate::detectors::thumbnail(&v[i * 128..(i + 1) * 128], shape, 3);
            for (a, b) in got[i * 18..(i + 1) * 18].iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        // L4 is the RMS distance to the look; the attack with λ4 > 0 ends closer to it than
        // the same attack without the term.
        let model = tiny_model(&device);
        let x = images(12, 3, &device);
        let targets = sign_codes(model.forward(images(13, 3, &device))).neg();
        // Two looks per image, 0.9 and 0.1 everywhere: L4 is the mean of the two distances.
        let two = Tensor::cat(
            vec![
                Tensor::<3>::full([3, 1, 9], 0.9, &device),
                Tensor::<3>::full([3, 1, 9], 0.1, &device),
            ],
            1,
        );
        let looks = Tensor::<3>::full([3, 1, 9], 0.9, &device);
        let mut weights = AdaptiveWeights {
            lambda1: 0.0,
            lambda2: 0.3,
            blur: 2,
            lambda4: 0.0,
        };
        let thumbs: Vec<f32> = thumbnail_tensor(x.clone(), 3)
            .into_data()
            .try_to_vec()
            .unwrap();
        let l4 = adaptive_loss(&model, x.clone(), targets.clone(), Some(two), &weights)
            .unwrap()
            .l4;
        let rms = |i: usize, look: f32| {
            (thumbs[i * 9..(i + 1) * 9]
                .iter()
                .map(|t| (t - look).powi(2))
                .sum::<f32>()
                / 9.0)
                .sqrt()
        };
        for (i, got) in read(l4).unwrap().iter().enumerate() {
            let want = (rms(i, 0.9) + rms(i, 0.1)) / 2.0;
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
        // Looks for another grid or another batch are refused.
        for bad in [[3, 1, 8], [2, 1, 9]] {
            let wrong = Tensor::<3>::zeros(bad, &device);
            assert!(
                adaptive_loss(&model, x.clone(), targets.clone(), Some(wrong), &weights).is_err()
            );
        }
        let budget = pgd20();
        let run = |weights: &AdaptiveWeights| {
            let (_, t) = adaptive_attack(
                &model,
                x.clone(),
                targets.clone(),
                Some(looks.clone()),
                weights,
                &budget,
                StepRule::Fixed,
                7,
                |_| {},
            )
            .unwrap();
            t.l4.iter().sum::<f32>()
        };
        let without = run(&weights);
        weights.lambda4 = 30.0;
        let with = run(&weights);
        assert!(with < without - 0.05, "L4 {without} -> {with}");
        // λ4 without looks is refused.
        assert!(
            adaptive_attack(
                &model,
                x,
                targets,
                None,
                &weights,
                &budget,
                StepRule::Fixed,
                7,
                |_| {}
            )
            .is_err()
        );
    }

    #[test]
    fn apgd_checkpoints_follow_croce_and_hein() {
        // p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (then 1.05, past the end).
        assert_eq!(apgd_checkpoints(100), vec![22, 41, 57, 70, 80, 87, 93, 99]);
    }
}
