//! Adversarial attacks on deep hashing, all in pixel space under an L∞ (PGD family) or L2
//! (CW) budget: untargeted PGD in the UMCD paper's form and HAG's masked loss, targeted DHTA
//! with component-voting anchors, and untargeted Carlini-Wagner. Images stay in `[0, 1]`.

mod anchor;
mod cw;
mod pgd;

pub use anchor::{choose_target_labels, target_anchor};
pub use cw::{CwConfig, cw_untargeted};
pub use pgd::{Budget, Objective, objective_loss, pgd};

use burn::prelude::*;

use crate::model::sign_codes;

/// Per-sample outcome of an attack.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SampleStats {
    /// Largest absolute pixel change.
    pub linf: f32,
    /// Euclidean norm of the perturbation (pixel units).
    pub l2: f32,
    /// Hamming distance between the adversarial and the original binary codes.
    pub hamming_to_original: u32,
}

/// Perturbation norms and code flips of `adversarial` against `original`.
///
/// # Shapes
/// - `original`, `adversarial`: `[batch, channels, height, width]`
/// - `codes_orig`, `codes_adv`: `[batch, bits]` relaxed or binary codes
pub fn sample_stats(
    original: Tensor<4>,
    adversarial: Tensor<4>,
    codes_orig: Tensor<2>,
    codes_adv: Tensor<2>,
) -> Vec<SampleStats> {
    let delta = (adversarial - original).flatten::<2>(1, 3);
    let linf: Vec<f32> = delta
        .clone()
        .abs()
        .max_dim(1)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let l2: Vec<f32> = delta
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let flips: Vec<f32> = sign_codes(codes_orig)
        .not_equal(sign_codes(codes_adv))
        .float()
        .sum_dim(1)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    linf.iter()
        .zip(&l2)
        .zip(&flips)
        .map(|((&linf, &l2), &h)| SampleStats {
            linf,
            l2,
            hamming_to_original: h.round() as u32,
        })
        .collect()
}
