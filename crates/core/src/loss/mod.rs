//! Hashing losses and the hash centres they pull codes towards: CSQ (Hadamard centres, BCE to
//! the item's centre plus a quantisation penalty), the pairwise DPSH and HashNet, and the
//! adversarial-training objectives (CgAT, SAAT) added to them.

mod adversarial;
mod centres;
mod csq;
mod pairwise;

use burn::prelude::*;

pub use adversarial::{centre_alignment, code_bce, mainstay_objective, quantisation_penalty};
pub use centres::{HashCentres, hadamard};
pub use csq::{CsqLoss, CsqLossConfig};
pub use pairwise::{DpshBank, HashMethod, PairSimilarity, dpsh_loss, hashnet_loss, hashnet_scale};

/// A hashing loss and its two terms, each a scalar `[1]`.
#[derive(Clone, Debug)]
pub struct LossParts {
    /// What the optimiser descends: the similarity term plus the weighted quantisation term.
    pub total: Tensor<1>,
    /// The term that carries the labels: CSQ's centre BCE, DPSH's and HashNet's pairwise
    /// negative log-likelihood.
    pub similarity: Tensor<1>,
    /// The quantisation term, unweighted: `mean((|f| − 1)²)` for CSQ and HashNet (HashNet only
    /// reports it), `mean((u − sign u)²)` for DPSH.
    pub quantisation: Tensor<1>,
}
