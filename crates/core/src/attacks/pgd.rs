//! Projected gradient descent on a hashing objective: signed-gradient steps of size `step`,
//! projected back onto the L∞ ball of radius `eps` around the image and onto `[0, 1]`.
//! The model should be a `valid()` copy; gradients flow to the input only.

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::HashNet;
use crate::{Error, Result};

/// L∞ budget and schedule of a PGD attack, in pixel units (`8/255` is 8 grey levels).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// Radius of the L∞ ball around the clean image.
    pub eps: f32,
    /// Size of each signed-gradient step.
    pub step: f32,
    /// Number of steps.
    pub steps: usize,
    /// Start from a uniform random point of the ball instead of the clean image.
    pub random_start: bool,
    /// Relaxation α: the objective sees `tanh(α z)`; α < 1 keeps gradients alive where the
    /// model's `tanh` saturates (1 is the paper's `f(x)`).
    pub relax: f32,
}

impl Budget {
    /// Checks `0 < eps <= 1`, `0 < step <= 1` and `steps >= 1`.
    pub fn validate(&self) -> Result<()> {
        if !(self.eps > 0.0 && self.eps <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "--eps {} must be in (0, 1] (pixel units, e.g. 8/255)",
                self.eps
            )));
        }
        if !(self.step > 0.0 && self.step <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "--step {} must be in (0, 1]",
                self.step
            )));
        }
        if !(self.relax > 0.0 && self.relax <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "--relax {} must be in (0, 1]",
                self.relax
            )));
        }
        if self.steps == 0 {
            return Err(Error::InvalidArgument("--steps must be at least 1".into()));
        }
        Ok(())
    }
}

/// What an attack minimises, given the relaxed codes of the adversarial batch.
#[derive(Clone, Debug)]
pub enum Objective {
    /// UMCD's untargeted form: minimise `f(x')·h(x) / K` (maximise Hamming distance).
    Untargeted {
        /// `h(x)` of the clean images, `[batch, bits]` in ±1.
        original: Tensor<2>,
    },
    /// HAG (Yang et al.): `((Σ_j m_j f_j h_j / Σ_j m_j) + 1)² + β·(mean_j f_j)²` with the mask
    /// `m = 1[|f(x') − h(x)| < 1.5]`, which stops pushing bits that have already flipped.
    Hag {
        /// `h(x)` of the clean images, `[batch, bits]` in ±1.
        original: Tensor<2>,
        /// Weight of the bit-balance term (1 in the reference).
        beta: f32,
    },
    /// DHTA (Bai et al.): minimise `−f(x')·h_t / K` towards each sample's anchor code `h_t`.
    Targeted {
        /// Anchor codes, `[batch, bits]` in ±1.
        anchors: Tensor<2>,
    },
}

/// The objective summed over the batch (so each sample's gradient is its own).
///
/// # Shapes
/// - `f`: `[batch, bits]` relaxed codes
/// - output: `[1]`
pub fn objective_loss(objective: &Objective, f: Tensor<2>) -> Tensor<1> {
    let [_, k] = f.dims();
    match objective {
        Objective::Untargeted { original } => (f * original.clone()).sum() / k as f64,
        Objective::Hag { original, beta } => {
            let mask = (f.clone().detach() - original.clone())
                .abs()
                .lower_elem(1.5)
                .float();
            let masked = (f.clone() * original.clone() * mask.clone()).sum_dim(1)
                / mask.sum_dim(1).clamp_min(1.0);
            let agree = (masked + 1.0).powi_scalar(2).sum();
            let balance = f.mean_dim(1).powi_scalar(2).sum() * (*beta as f64);
            agree + balance
        }
        Objective::Targeted { anchors } => -(f * anchors.clone()).sum() / k as f64,
    }
}

/// PGD one iteration at a time, for callers that must not block (the browser app steps it
/// from its frame loop). A step only records tensor operations: nothing is read back.
pub struct PgdStepper {
    x: Tensor<4>,
    lower: Tensor<4>,
    upper: Tensor<4>,
    /// Per-sample step sizes, `[batch, 1, 1, 1]`, when the samples have radii of their own.
    steps: Option<Tensor<4>>,
    objective: Objective,
    budget: Budget,
    alpha_schedule: bool,
    done: usize,
}

impl PgdStepper {
    /// Starts from `images` (or a seeded uniform point of the ball with `random_start`); see
    /// [`pgd`] for the arguments.
    pub fn new(
        images: Tensor<4>,
        objective: Objective,
        budget: Budget,
        alpha_schedule: bool,
        seed: u64,
    ) -> Result<Self> {
        budget.validate()?;
        let clean = images.detach();
        let device = clean.device();
        let lower = (clean.clone() - budget.eps as f64).clamp_min(0.0);
        let upper = (clean.clone() + budget.eps as f64).clamp_max(1.0);
        let mut x = clean.clone();
        if budget.random_start {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let noise: Vec<f32> = (0..clean.shape().num_elements())
                .map(|_| rng.random_range(-budget.eps..=budget.eps))
                .collect();
            let noise = Tensor::<4>::from_data(TensorData::new(noise, clean.shape()), &device);
            x = (x + noise).max_pair(lower.clone()).min_pair(upper.clone());
        }
        Ok(Self {
            x,
            lower,
            upper,
            steps: None,
            objective,
            budget,
            alpha_schedule,
            done: 0,
        })
    }

    /// Starts from `images` with a radius per sample: sample `i` stays within `radii[i]` of
    /// its image and steps `budget.step · radii[i] / budget.eps` (the budget's step-to-radius
    /// ratio), so one batch runs an ε sweep. No random start.
    pub fn with_radii(
        images: Tensor<4>,
        objective: Objective,
        budget: Budget,
        radii: &[f32],
        alpha_schedule: bool,
    ) -> Result<Self> {
        budget.validate()?;
        let [n, c, h, w] = images.dims();
        if radii.len() != n || radii.iter().any(|r| !(*r > 0.0 && *r <= 1.0)) {
            return Err(Error::InvalidArgument(format!(
                "{} radii for {n} images, each must lie in (0, 1]",
                radii.len()
            )));
        }
        let clean = images.detach();
        let device = clean.device();
        let column =
            |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [n, 1, 1, 1]), &device);
        let eps = column(radii.to_vec()).expand([n, c, h, w]);
        let ratio = budget.step / budget.eps;
        let steps = column(radii.iter().map(|r| (r * ratio).min(1.0)).collect());
        Ok(Self {
            x: clean.clone(),
            lower: (clean.clone() - eps.clone()).clamp_min(0.0),
            upper: (clean + eps).clamp_max(1.0),
            steps: Some(steps.expand([n, c, h, w])),
            objective,
            budget,
            alpha_schedule,
            done: 0,
        })
    }

    /// One signed-gradient step (a no-op once all `budget.steps` are done).
    pub fn step(&mut self, model: &HashNet) -> Result<()> {
        if self.finished() {
            return Ok(());
        }
        let i = self.done;
        let xa = self.x.clone().autodiff().require_grad();
        let logits = model.logits(xa.clone());
        let top = self.budget.relax as f64;
        let alpha = if self.alpha_schedule {
            0.1 + (top - 0.1).max(0.0) * i as f64 / (self.budget.steps.max(2) - 1) as f64
        } else {
            top
        };
        let f = (logits * alpha).tanh();
        let loss = objective_loss(&self.objective, f);
        let grads = loss.backward();
        let grad = xa.grad(&grads).ok_or_else(|| {
            Error::Numeric("no input gradient: the model is not differentiable here".into())
        })?;
        let moved = match &self.steps {
            None => grad.sign() * self.budget.step as f64,
            Some(steps) => grad.sign() * steps.clone(),
        };
        self.x = (self.x.clone() - moved)
            .max_pair(self.lower.clone())
            .min_pair(self.upper.clone());
        self.done += 1;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> usize {
        self.done
    }

    /// Whether every step of the budget has been taken.
    pub fn finished(&self) -> bool {
        self.done >= self.budget.steps
    }

    /// The current adversarial batch (no autodiff).
    pub fn current(&self) -> Tensor<4> {
        self.x.clone()
    }
}

/// Runs PGD from `images` and returns the adversarial batch (on `images`' device, without
/// autodiff). `alpha_schedule` relaxes `f = tanh(α z)` with α ramped linearly from 0.1 to
/// `budget.relax` over the steps (DHTA's schedule); otherwise α = `budget.relax` throughout
/// (1 is the plain `f(x)`); `on_step(i)` is called after each step.
///
/// # Shapes
/// - `images`: `[batch, channels, height, width]`, pixels in `[0, 1]`
/// - output: same shape, within `eps` of `images` in L∞ and inside `[0, 1]`
pub fn pgd(
    model: &HashNet,
    images: Tensor<4>,
    objective: &Objective,
    budget: &Budget,
    alpha_schedule: bool,
    seed: u64,
    mut on_step: impl FnMut(usize),
) -> Result<Tensor<4>> {
    let mut stepper = PgdStepper::new(images, objective.clone(), *budget, alpha_schedule, seed)?;
    while !stepper.finished() {
        stepper.step(model)?;
        on_step(stepper.steps_done() - 1);
    }
    Ok(stepper.current())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sign_codes;
    use proptest::prelude::*;

    fn tiny() -> (HashNet, Device) {
        let device = Device::flex();
        (crate::attacks::tiny_model(&device), device)
    }

    fn images(seed: u64, n: usize, device: &Device) -> Tensor<4> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..n * 36)
            .map(|_| rand::Rng::random_range(&mut rng, 0.0..1.0))
            .collect();
        Tensor::from_data(TensorData::new(v, [n, 1, 6, 6]), device)
    }

    /// The analytic input gradient of each objective matches central finite differences.
    #[test]
    fn objective_gradients_match_finite_differences() {
        let (model, device) = tiny();
        let x = images(3, 2, &device);
        let h = sign_codes(model.forward(images(4, 2, &device)));
        for objective in [
            Objective::Untargeted {
                original: h.clone(),
            },
            Objective::Hag {
                original: h.clone(),
                beta: 1.0,
            },
            Objective::Targeted { anchors: h.clone() },
        ] {
            let loss_at = |x: Tensor<4>| -> f64 {
                objective_loss(&objective, model.forward(x)).into_scalar::<f32>() as f64
            };
            let xa = x.clone().autodiff().require_grad();
            let grads = objective_loss(&objective, model.forward(xa.clone())).backward();
            let grad: Vec<f32> = xa
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let base: Vec<f32> = x.clone().into_data().try_to_vec::<f32>().unwrap();
            let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [2, 1, 6, 6]), &device);
            let fd = |i: usize, h: f32| -> f64 {
                let mut plus = base.clone();
                let mut minus = base.clone();
                plus[i] += h;
                minus[i] -= h;
                (loss_at(t(plus)) - loss_at(t(minus))) / (2.0 * h as f64)
            };
            // ReLU, max-pooling and HAG's mask are piecewise: a pixel whose finite differences
            // at two step sizes disagree sits near a kink and proves nothing either way.
            let mut checked = 0;
            for i in (0..72).step_by(5) {
                let (coarse, fine) = (fd(i, 1e-3), fd(i, 5e-4));
                if (coarse - fine).abs() > 1e-3 + 0.02 * fine.abs() {
                    continue;
                }
                checked += 1;
                let tol = 2e-3 + 0.05 * fine.abs();
                assert!(
                    (grad[i] as f64 - fine).abs() < tol,
                    "{objective:?} pixel {i}: analytic {} vs finite difference {fine}",
                    grad[i]
                );
            }
            assert!(
                checked >= 8,
                "{objective:?}: only {checked} of 15 pixels away from kinks"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// Whatever the start, budget and objective, the result stays in the ball and in [0, 1].
        #[test]
        fn pgd_respects_budget_and_range(
            seed in 0u64..1000,
            eps in 0.001f32..0.5,
            step_frac in 0.1f32..3.0,
            steps in 1usize..4,
            random_start: bool,
            targeted: bool,
        ) {
            let (model, device) = tiny();
            let x = images(seed, 3, &device);
            let codes = sign_codes(model.forward(x.clone()));
            let objective = if targeted {
                Objective::Targeted { anchors: codes.neg() }
            } else {
                Objective::Untargeted { original: codes }
            };
            let budget = Budget { eps, step: (eps * step_frac).min(1.0), steps, random_start, relax: 1.0 };
            let adv = pgd(&model, x.clone(), &objective, &budget, false, seed, |_| {}).unwrap();
            let a: Vec<f32> = adv.into_data().try_to_vec::<f32>().unwrap();
            let c: Vec<f32> = x.into_data().try_to_vec::<f32>().unwrap();
            for (p, q) in a.iter().zip(&c) {
                prop_assert!((0.0..=1.0).contains(p));
                prop_assert!((p - q).abs() <= eps + 1e-6);
            }
        }
    }

    /// One batch with a radius per sample keeps each sample in its own ball and moves it as a
    /// run at that radius alone does.
    #[test]
    fn per_sample_radii_run_an_eps_sweep_in_one_batch() {
        let (model, device) = tiny();
        let one = images(9, 1, &device);
        let radii = [2.0 / 255.0, 8.0 / 255.0, 32.0 / 255.0];
        let batch = Tensor::cat(vec![one.clone(); 3], 0);
        let h = sign_codes(model.forward(batch.clone()));
        let budget = Budget {
            eps: 8.0 / 255.0,
            step: 2.0 / 255.0,
            steps: 5,
            random_start: false,
            relax: 1.0,
        };
        let objective = Objective::Untargeted {
            original: h.clone(),
        };
        let mut sweep =
            PgdStepper::with_radii(batch.clone(), objective, budget, &radii, false).unwrap();
        while !sweep.finished() {
            sweep.step(&model).unwrap();
        }
        let swept: Vec<f32> = sweep.current().into_data().try_to_vec::<f32>().unwrap();
        let clean: Vec<f32> = one.clone().into_data().try_to_vec::<f32>().unwrap();
        for (i, r) in radii.iter().enumerate() {
            let alone = Budget {
                eps: *r,
                step: budget.step * r / budget.eps,
                ..budget
            };
            let objective = Objective::Untargeted {
                original: h.clone().slice(i..i + 1),
            };
            let x = pgd(&model, one.clone(), &objective, &alone, false, 0, |_| {}).unwrap();
            let alone: Vec<f32> = x.into_data().try_to_vec::<f32>().unwrap();
            let mine = &swept[i * 36..(i + 1) * 36];
            let linf = mine
                .iter()
                .zip(&clean)
                .map(|(a, c)| (a - c).abs())
                .fold(0.0, f32::max);
            assert!(linf <= r + 1e-6, "sample {i} left its ball: {linf}");
            let apart = mine
                .iter()
                .zip(&alone)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                apart < 1e-5,
                "sample {i} differs from its own run by {apart}"
            );
        }
        let bad = PgdStepper::with_radii(
            batch,
            Objective::Untargeted { original: h },
            budget,
            &[0.1, 0.0, 0.1],
            false,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn bad_budgets_are_refused() {
        for (eps, step, steps) in [
            (0.0, 0.1, 1),
            (1.5, 0.1, 1),
            (0.1, 0.0, 1),
            (0.1, 0.1, 0),
            (f32::NAN, 0.1, 1),
        ] {
            assert!(
                Budget {
                    eps,
                    step,
                    steps,
                    random_start: false,
                    relax: 1.0,
                }
                .validate()
                .is_err()
            );
        }
    }
}
