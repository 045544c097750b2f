//! Hashing losses and the hash centres they pull codes towards. CSQ (central similarity
//! quantisation) is the first: Hadamard centres, BCE to the item's centre plus a quantisation
//! penalty. The adversarial-training objectives (CgAT, SAAT) are added to it.

mod adversarial;
mod centres;
mod csq;

pub use adversarial::{centre_alignment, mainstay_objective};
pub use centres::{HashCentres, hadamard};
pub use csq::{CsqLoss, CsqLossConfig, CsqLossParts};
