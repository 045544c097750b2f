//! Untargeted Carlini-Wagner for hashing: optimise `w` with `x' = (tanh(w) + 1) / 2` (so the
//! image is always in `[0, 1]`) by Adam on `‖x' − x‖² + c·(hashing term)`, keeping for each
//! image the smallest perturbation whose code is more than K/2 bits from `h(x)`.

use burn::prelude::*;

use crate::model::{HashNet, sign_codes};
use crate::{Error, Result};

/// How far inside `[0, 1]` the tanh-space variable starts (see [`CwStepper::new`]).
const BOX_MARGIN: f64 = 1e-3;

/// CW's hashing term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CwMargin {
    /// `max(f(x')·h(x)/K + κ, 0)` on the relaxed codes `f = tanh(α z)`: pushes every bit, and
    /// a confident model's saturated `tanh` gives no gradient on most of them.
    Relaxed,
    /// CW's own form on logits (their `f₆` uses pre-softmax logits so that saturation cannot
    /// hide the gradient): with the bit margins `m_j = h_j z_j`, the mean of `max(m_j + κ, 0)`
    /// over the K/2 + 1 bits with the smallest margins — exactly the bits whose flip makes the
    /// attack succeed at least cost (chosen afresh each step, like HAG's mask).
    Logits,
}

/// Settings of [`cw_untargeted`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CwConfig {
    /// Weight `c` of the hashing term.
    pub c: f32,
    /// Margin κ: keep pushing until `f·h/K < −κ` ([`CwMargin::Relaxed`]) or until the chosen
    /// bits' logit margins are below `−κ` ([`CwMargin::Logits`]).
    pub kappa: f32,
    /// Which hashing term.
    #[serde(default = "relaxed_margin")]
    pub margin: CwMargin,
    /// Adam learning rate on `w`.
    pub lr: f32,
    /// Adam steps.
    pub steps: usize,
    /// Relaxation α of the hashing term, `tanh(α z)` instead of `f = tanh(z)`: with α < 1 the
    /// gradient survives where a confident model's `tanh` saturates (success is always judged
    /// on the real codes `sign(z)`).
    pub relax: f32,
    /// Extra rounds of binary search over `c` per image (0: `c` fixed). Each round restarts
    /// from the clean image; an image that succeeded halves towards the last failing `c`, one
    /// that failed moves up (x10 until a success brackets it).
    pub search_steps: usize,
}

fn relaxed_margin() -> CwMargin {
    CwMargin::Relaxed
}

impl Default for CwConfig {
    fn default() -> Self {
        Self {
            c: 5.0,
            kappa: 0.1,
            margin: CwMargin::Relaxed,
            lr: 0.01,
            steps: 500,
            relax: 1.0,
            search_steps: 0,
        }
    }
}

/// Runs CW and returns the best adversarial batch and, per image, whether it succeeded
/// (Hamming distance to `h(x)` above K/2). Failed images are returned unchanged.
/// `on_step` receives the running step count over all search rounds.
///
/// # Shapes
/// - `images`: `[batch, channels, height, width]` in `[0, 1]`; `original`: `[batch, bits]` ±1
pub fn cw_untargeted(
    model: &HashNet,
    images: Tensor<4>,
    original: Tensor<2>,
    config: &CwConfig,
    mut on_step: impl FnMut(usize),
) -> Result<(Tensor<4>, Vec<bool>)> {
    if !(config.c > 0.0
        && config.lr > 0.0
        && config.steps > 0
        && config.kappa >= 0.0
        && config.relax > 0.0)
    {
        return Err(Error::InvalidArgument(format!(
            "invalid CW settings {config:?}"
        )));
    }
    let clean = images.detach();
    let b = clean.dims()[0];
    let mut keeper = BestKeeper::new(clean.clone(), original.dims()[1]);
    let mut cs = vec![config.c; b];
    let (mut lo, mut hi) = (vec![0f32; b], vec![f32::INFINITY; b]);
    for round in 0..=config.search_steps {
        let mut stepper = CwStepper::new(clean.clone(), original.clone(), config, &cs);
        let mut won = vec![false; b];
        for step in 0..config.steps {
            let probe = stepper.step(model)?;
            let flips = read(probe.flips)?;
            let l2s = read(probe.l2)?;
            for (w, s) in won.iter_mut().zip(keeper.offer(probe.x, &flips, &l2s)) {
                *w |= s;
            }
            on_step(round * config.steps + step);
        }
        // Binary search on c, per image.
        for i in 0..b {
            if won[i] {
                hi[i] = hi[i].min(cs[i]);
                cs[i] = (lo[i] + hi[i]) / 2.0;
            } else {
                lo[i] = lo[i].max(cs[i]);
                cs[i] = if hi[i].is_finite() {
                    (lo[i] + hi[i]) / 2.0
                } else {
                    cs[i] * 10.0
                };
            }
        }
    }
    Ok(keeper.into_best())
}

fn read(t: Tensor<1>) -> Result<Vec<f32>> {
    crate::host::read_floats(t, "CW step")
}

/// What one CW step evaluated, for the caller to read back (synchronously, or asynchronously
/// in the browser) and hand to [`BestKeeper::offer`].
pub struct CwProbe {
    /// The iterate the step started from, `[batch, c, h, w]`.
    pub x: Tensor<4>,
    /// Bits of its code that differ from `h(x)`, `[batch]`.
    pub flips: Tensor<1>,
    /// Its squared L2 distance to the clean image, `[batch]`.
    pub l2: Tensor<1>,
}

/// One round of CW at fixed per-image weights `c`, one Adam step at a time.
pub struct CwStepper {
    clean: Tensor<4>,
    original: Tensor<2>,
    config: CwConfig,
    c_col: Tensor<2>,
    w: Tensor<4>,
    m: Tensor<4>,
    v: Tensor<4>,
    done: usize,
}

impl CwStepper {
    /// Starts at the clean image with weight `cs[i]` for image `i`.
    pub fn new(images: Tensor<4>, original: Tensor<2>, config: &CwConfig, cs: &[f32]) -> Self {
        let clean = images.detach();
        let b = clean.dims()[0];
        // atanh(2x − 1), with x kept BOX_MARGIN off {0, 1} so w is finite. Carlini's code keeps
        // 1e-6, which starts a black or white pixel at |w| = 7.3 where tanh' is 2e-6: Adam's
        // lr-sized steps then need ~500 steps before such a pixel moves at all, and Fashion-
        // MNIST is mostly black background. At 1e-3 (|w| = 3.5) the start is within 1e-3 of
        // the clean image (L2 ≤ 0.028 over 28x28, counted in every reported L2).
        let y = clean.clone().clamp(BOX_MARGIN, 1.0 - BOX_MARGIN) * 2.0 - 1.0;
        let w = ((y.clone() + 1.0) / (-y + 1.0)).log() * 0.5;
        let c_col = Tensor::<1>::from_floats(cs, &clean.device()).reshape([b, 1]);
        Self {
            m: w.zeros_like(),
            v: w.zeros_like(),
            w,
            c_col,
            clean,
            original,
            config: *config,
            done: 0,
        }
    }

    /// One Adam step on `w`; returns what the step evaluated (before moving).
    pub fn step(&mut self, model: &HashNet) -> Result<CwProbe> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let wa = self.w.clone().autodiff().require_grad();
        let x = (wa.clone().tanh() + 1.0) / 2.0;
        let z = model.logits(x.clone());
        let f = (z.clone() * self.config.relax as f64).tanh();
        let l2 = (x.clone() - self.clean.clone())
            .powi_scalar(2)
            .flatten::<2>(1, 3)
            .sum_dim(1);
        let hash = hashing_term(
            self.config.margin,
            z,
            &self.original,
            self.config.relax,
            self.config.kappa,
        );
        let loss = (l2.clone() + hash * self.c_col.clone()).sum();
        let grads = loss.backward();
        let g = wa
            .grad(&grads)
            .ok_or_else(|| Error::Numeric("no gradient for the CW variable".into()))?;
        let flips = sign_codes(f.inner())
            .not_equal(self.original.clone())
            .float()
            .sum_dim(1)
            .flatten::<1>(0, 1);
        let t = (self.done + 1) as i32;
        self.m = self.m.clone() * b1 + g.clone() * (1.0 - b1);
        self.v = self.v.clone() * b2 + g.powi_scalar(2) * (1.0 - b2);
        let m_hat = self.m.clone() / (1.0 - b1.powi(t));
        let v_hat = self.v.clone() / (1.0 - b2.powi(t));
        self.w = self.w.clone() - m_hat / (v_hat.sqrt() + eps) * self.config.lr as f64;
        self.done += 1;
        Ok(CwProbe {
            x: x.inner(),
            flips,
            l2: l2.inner().flatten::<1>(0, 1),
        })
    }

    /// Steps taken.
    pub fn steps_done(&self) -> usize {
        self.done
    }
}

/// CW's hashing term per image from the logits `z` (`[batch, bits]`) and the original codes.
///
/// # Shapes
/// - output: `[batch, 1]`
fn hashing_term(
    margin: CwMargin,
    z: Tensor<2>,
    original: &Tensor<2>,
    relax: f32,
    kappa: f32,
) -> Tensor<2> {
    let [b, k] = z.dims();
    let kappa = kappa as f64;
    match margin {
        CwMargin::Relaxed => {
            let f = (z * relax as f64).tanh();
            ((f * original.clone()).sum_dim(1) / k as f64 + kappa).clamp_min(0.0)
        }
        CwMargin::Logits => {
            let margins = z * original.clone();
            let need = k / 2 + 1;
            // The need-th smallest margin of each row, then the bits at or below it.
            let fixed = margins.clone().inner();
            let threshold = fixed.clone().sort(1).slice([0..b, need - 1..need]);
            let chosen = fixed.lower_equal(threshold.expand([b, k])).float();
            ((margins + kappa).clamp_min(0.0) * chosen).sum_dim(1) / need as f64
        }
    }
}

/// CW's memory: per image, the smallest perturbation whose code is more than K/2 bits away.
pub struct BestKeeper {
    best: Tensor<4>,
    best_l2: Vec<f32>,
    bits: usize,
}

impl BestKeeper {
    /// Starts with the clean images (and no success), for `bits`-bit codes.
    pub fn new(clean: Tensor<4>, bits: usize) -> Self {
        let b = clean.dims()[0];
        Self {
            best: clean,
            best_l2: vec![f32::INFINITY; b],
            bits,
        }
    }

    /// Considers iterate `x` with its code flips and squared L2 norms; returns per image
    /// whether `x` is a success (more than K/2 bits flipped), whether or not it is kept.
    pub fn offer(&mut self, x: Tensor<4>, flips: &[f32], l2s: &[f32]) -> Vec<bool> {
        let [b, c, h, w] = x.dims();
        let k = self.bits as f32;
        let mut success = Vec::with_capacity(b);
        let improved: Vec<f32> = (0..b)
            .map(|i| {
                let s = flips[i] > k / 2.0;
                success.push(s);
                let ok = s && l2s[i] < self.best_l2[i];
                if ok {
                    self.best_l2[i] = l2s[i];
                }
                ok as u8 as f32
            })
            .collect();
        if improved.iter().any(|&u| u > 0.0) {
            let mask = Tensor::<1>::from_floats(improved.as_slice(), &x.device())
                .reshape([b, 1, 1, 1])
                .expand([b, c, h, w]);
            self.best = self.best.clone() * (mask.clone().neg() + 1.0) + x * mask;
        }
        success
    }

    /// The best images and, per image, whether any success was found.
    pub fn into_best(self) -> (Tensor<4>, Vec<bool>) {
        let ok = self.best_l2.iter().map(|l| l.is_finite()).collect();
        (self.best, ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn cw_keeps_images_valid_and_reports_success_honestly() {
        let device = Device::flex();
        let model = crate::attacks::tiny_model(&device);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let px: Vec<f32> = (0..4 * 36).map(|_| rng.random_range(0.0..1.0)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(px.clone(), [4, 1, 6, 6]), &device);
        let h = sign_codes(model.forward(x.clone()));
        for margin in [CwMargin::Relaxed, CwMargin::Logits] {
            let cfg = CwConfig {
                c: 20.0,
                steps: 40,
                lr: 0.05,
                search_steps: 1,
                margin,
                ..CwConfig::default()
            };
            check_cw(&model, &x, &px, &h, &cfg);
        }
        let cfg = CwConfig::default();
        assert!(
            cw_untargeted(
                &model,
                Tensor::zeros([1, 1, 6, 6], &device),
                Tensor::ones([1, 8], &device),
                &CwConfig { c: -1.0, ..cfg },
                |_| {}
            )
            .is_err()
        );
    }

    fn check_cw(model: &HashNet, x: &Tensor<4>, px: &[f32], h: &Tensor<2>, cfg: &CwConfig) {
        let (adv, ok) = cw_untargeted(model, x.clone(), h.clone(), cfg, |_| {}).unwrap();
        let flips: Vec<f32> = sign_codes(model.forward(adv.clone()))
            .not_equal(h.clone())
            .float()
            .sum_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let a: Vec<f32> = adv.into_data().try_to_vec::<f32>().unwrap();
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        for i in 0..4 {
            if ok[i] {
                assert!(
                    flips[i] > 4.0,
                    "image {i} reported successful with {} flips",
                    flips[i]
                );
            } else {
                assert_eq!(&a[i * 36..(i + 1) * 36], &px[i * 36..(i + 1) * 36]);
            }
        }
    }

    /// The logit margin is the hinge over the K/2 + 1 bits with the smallest margins `h_j z_j`:
    /// its value and its gradient (1/(K/2+1) on chosen bits still above −κ, 0 elsewhere).
    #[test]
    fn the_logit_margin_chooses_the_cheapest_bits() {
        let device = Device::flex();
        let z = Tensor::<2>::from_floats([[5.0, -1.0, 0.5, 3.0, 2.0, -4.0, 1.0, 0.2]], &device)
            .autodiff()
            .require_grad();
        let h = Tensor::<2>::from_floats([[1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]], &device);
        // Margins 5, -1, -0.5, 3, 2, -4, 1, 0.2; the 5 smallest: -4, -1, -0.5, 0.2, 1.
        let term = hashing_term(CwMargin::Logits, z.clone(), &h, 1.0, 0.1);
        let value = term.clone().inner().into_scalar::<f32>();
        assert!((value - (0.3 + 1.1) / 5.0).abs() < 1e-6, "{value}");
        let grads = term.sum().backward();
        let g: Vec<f32> = z.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        let want = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.2];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{g:?}");
        }
    }
}
