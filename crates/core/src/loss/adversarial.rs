//! Outer objectives of adversarial hashing training, added to the clean hashing loss:
//! CgAT's alignment of adversarial codes with centre codes, `−mean(f(x_adv) ⊙ c)`, and SAAT's
//! `λ·(−mean(f(x_adv) ⊙ m)) + μ·mean((f(x_adv) − sign f(x_adv))²)` with mainstay codes `m`; and a
//! logit-space alternative to the alignment (BCE on the pre-tanh outputs) that keeps a gradient on
//! bits an attack flipped hard.

use burn::prelude::*;

/// CgAT's adversarial term `−mean(f_adv ⊙ c)` (mean over the batch and the bits).
///
/// # Shapes
/// - `f_adv`: `[batch, bits]` relaxed codes of the adversarial images
/// - `targets`: `[batch, bits]` ±1 centre codes
/// - output: `[1]`
pub fn centre_alignment(f_adv: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    assert_eq!(
        f_adv.dims(),
        targets.dims(),
        "codes {:?} and targets {:?} differ in shape",
        f_adv.dims(),
        targets.dims()
    );
    (f_adv * targets).mean().neg()
}

/// SAAT's adversarial terms: `lambda · (−mean(f_adv ⊙ m)) + mu · mean((f_adv − sign f_adv)²)`
/// (the papers' λ = 1, μ = 1e-4).
///
/// # Shapes
/// - `f_adv`, `mainstays`: `[batch, bits]`
/// - output: `[1]`
pub fn mainstay_objective(
    f_adv: Tensor<2>,
    mainstays: Tensor<2>,
    lambda: f64,
    mu: f64,
) -> Tensor<1> {
    centre_alignment(f_adv.clone(), mainstays) * lambda + quantisation_penalty(f_adv) * mu
}

/// SAAT's quantisation term `mean((f − sign f)²)` (sign(0) = +1, no gradient through the sign).
///
/// # Shapes
/// - `f`: `[batch, bits]`; output: `[1]`
pub fn quantisation_penalty(f: Tensor<2>) -> Tensor<1> {
    let sign = f.clone().greater_equal_elem(0.0).float() * 2.0 - 1.0;
    (f - sign.detach()).powi_scalar(2).mean()
}

/// The logit-space alignment term: binary cross-entropy between `σ(2z) = (tanh z + 1) / 2`
/// and the target code as {0, 1}, i.e. `mean(softplus(−2 z ⊙ c))` (mean over the batch and the
/// bits). Its gradient in `z` is `−2c·σ(−2zc)`: about `−2c` on a bit the attack flipped hard,
/// where the papers' `−tanh(z)·c` has `−c·(1 − tanh² z)` ≈ 0. Not in the CgAT/SAAT papers
/// (issue 21's option); equal to `log 2` per bit at `z = 0`.
///
/// # Shapes
/// - `z_adv`: `[batch, bits]` pre-tanh outputs of the adversarial images
/// - `targets`: `[batch, bits]` ±1 centre or mainstay codes
/// - output: `[1]`
pub fn code_bce(z_adv: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    assert_eq!(
        z_adv.dims(),
        targets.dims(),
        "logits {:?} and targets {:?} differ in shape",
        z_adv.dims(),
        targets.dims()
    );
    burn::tensor::activation::softplus((z_adv * targets).mul_scalar(-2.0), 1.0).mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[[f32; 4]], device: &Device) -> Tensor<2> {
        Tensor::<2>::from_data(TensorData::new(rows.concat(), [rows.len(), 4]), device)
    }

    fn scalar(x: Tensor<1>) -> f32 {
        x.into_scalar::<f32>()
    }

    #[test]
    fn centre_alignment_on_hand_built_codes() {
        let d = Device::flex();
        let f = t(&[[1.0, -1.0, 0.5, 0.0], [-0.5, 0.5, 1.0, -1.0]], &d);
        let c = t(&[[1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, -1.0]], &d);
        // Products: 1, -1, 0.5, 0 | 0.5, -0.5, 1, 1 → sum 2.5 over 8.
        assert!((scalar(centre_alignment(f.clone(), c.clone())) + 2.5 / 8.0).abs() < 1e-6);
        // Perfect alignment reaches −1.
        assert!((scalar(centre_alignment(c.clone(), c)) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn code_bce_is_the_bce_of_the_tanh_probabilities_and_keeps_its_gradient_when_flipped() {
        let d = Device::flex();
        let z = t(&[[0.0, 1.0, -2.0, 30.0]], &d);
        let c = t(&[[1.0, 1.0, 1.0, -1.0]], &d);
        // BCE(p, y) with p = (tanh z + 1) / 2 and y = (c + 1) / 2, written out per bit.
        let bce = |z: f32, c: f32| {
            let p = ((z.tanh() + 1.0) / 2.0) as f64;
            let y = ((c + 1.0) / 2.0) as f64;
            -(y * p.max(1e-300).ln() + (1.0 - y) * (1.0 - p).max(1e-300).ln())
        };
        // The last bit (z = 30 against c = −1) saturates p to 1 in f32: its BCE is 60 exactly.
        let want = (bce(0.0, 1.0) + bce(1.0, 1.0) + bce(-2.0, 1.0) + 60.0) / 4.0;
        let got = scalar(code_bce(z, c)) as f64;
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        assert!((bce(0.0, 1.0) - std::f64::consts::LN_2).abs() < 1e-9);

        // Gradients on one hard-flipped bit (z = −12 against c = +1), the batch of one bit:
        // the logit term keeps ≈ −2, the papers' −tanh(z)·c has 1 − tanh²(12) ≈ 1.5e-10.
        let ad = d.clone().autodiff();
        let grad = |logit: bool| {
            let z =
                Tensor::<2>::from_data(TensorData::new(vec![-12.0f32], [1, 1]), &ad).require_grad();
            let c = Tensor::<2>::from_data(TensorData::new(vec![1.0f32], [1, 1]), &ad);
            let loss = if logit {
                code_bce(z.clone(), c)
            } else {
                centre_alignment(z.clone().tanh(), c)
            };
            let g = z.grad(&loss.backward()).unwrap();
            g.into_data().try_to_vec::<f32>().unwrap()[0]
        };
        let (logit, tanh) = (grad(true), grad(false));
        assert!((logit + 2.0).abs() < 1e-4, "{logit}");
        assert!(tanh.abs() < 1e-6, "{tanh}");
    }

    #[test]
    fn mainstay_objective_adds_the_weighted_quantisation_term() {
        let d = Device::flex();
        let f = t(&[[0.5, -0.5, 1.0, -1.0]], &d);
        let m = t(&[[1.0, 1.0, 1.0, 1.0]], &d);
        // Alignment: (0.5 − 0.5 + 1 − 1) / 4 = 0 → 0; quantisation: (0.25 + 0.25) / 4.
        let got = scalar(mainstay_objective(f.clone(), m.clone(), 1.0, 2.0));
        assert!((got - 2.0 * 0.125).abs() < 1e-6);
        let got = scalar(mainstay_objective(m.clone(), m, 3.0, 1e-4));
        assert!((got + 3.0).abs() < 1e-6);
    }
}
