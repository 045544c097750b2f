//! Adversarial attacks on deep hashing, all in pixel space under an L∞ (PGD family) or L2
//! (CW) budget: untargeted PGD in the UMCD paper's form and HAG's masked loss, targeted DHTA
//! with component-voting anchors, untargeted Carlini-Wagner, and the white-box attacker who
//! knows UMCD. Images stay in `[0, 1]`.

mod adaptive;
mod anchor;
mod cw;
mod pgd;

pub use adaptive::{
    AdaptiveTerms, AdaptiveWeights, LossTerms, StepRule, adaptive_attack, adaptive_loss,
    apgd_checkpoints, bpda, thumbnail_tensor,
};
pub use anchor::{Target, choose_target_labels, dhta_targets, target_anchor};
pub use cw::{BestKeeper, CwConfig, CwMargin, CwProbe, CwStepper, cw_untargeted};
pub use pgd::{Budget, Objective, PgdStepper, objective_loss, pgd};

use burn::prelude::*;

use crate::Result;
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
) -> Result<Vec<SampleStats>> {
    let read = |t: Tensor<1>| crate::host::read_floats(t, "attack statistics");
    let delta = (adversarial - original).flatten::<2>(1, 3);
    let linf = read(delta.clone().abs().max_dim(1).flatten(0, 1))?;
    let l2 = read(delta.powi_scalar(2).sum_dim(1).sqrt().flatten(0, 1))?;
    let flips = read(
        sign_codes(codes_orig)
            .not_equal(sign_codes(codes_adv))
            .float()
            .sum_dim(1)
            .flatten(0, 1),
    )?;
    Ok(linf
        .iter()
        .zip(&l2)
        .zip(&flips)
        .map(|((&linf, &l2), &h)| SampleStats {
            linf,
            l2,
            hamming_to_original: h.round() as u32,
        })
        .collect())
}

/// A tiny network for the attack tests.
#[cfg(test)]
pub(crate) fn tiny_model(device: &Device) -> crate::model::HashNet {
    crate::model::HashNetConfig::new(8, 1)
        .with_widths(vec![4])
        .with_convs_per_stage(1)
        .with_hidden(8)
        .with_dropout(0.0)
        .init(device)
        .valid()
}
