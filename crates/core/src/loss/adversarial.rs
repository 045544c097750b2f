//! Outer objectives of adversarial hashing training, added to the clean hashing loss:
//! CgAT's alignment of adversarial codes with centre codes, `−mean(f(x_adv) ⊙ c)`, and SAAT's
//! `λ·(−mean(f(x_adv) ⊙ m)) + μ·mean((f(x_adv) − sign f(x_adv))²)` with mainstay codes `m`.

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
    let sign = f_adv.clone().greater_equal_elem(0.0).float() * 2.0 - 1.0;
    let quantisation = (f_adv.clone() - sign.detach()).powi_scalar(2).mean();
    centre_alignment(f_adv, mainstays) * lambda + quantisation * mu
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
