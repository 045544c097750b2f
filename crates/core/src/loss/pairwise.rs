//! The pairwise hashing losses of the seeds' code beside CSQ: DPSH (Li et al., IJCAI 2016; the
//! CgAT code's default) and HashNet (Cao et al., ICCV 2017), as DeepHash-pytorch computes them,
//! with the method choice saved in a run's `config.json`.

use std::collections::HashMap;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::LossParts;
use crate::data::LabelSet;
use crate::{Error, Result};

/// The hashing loss a run trains with (absent in configs saved before there was a choice: CSQ).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum HashMethod {
    /// CSQ: BCE to the item's Hadamard centre plus quantisation ([`super::CsqLoss`]).
    Csq,
    /// DPSH: the pairwise likelihood of the batch against every training image's latest output
    /// (a bank refreshed with each batch), plus `alpha · mean((u − sign u)²)` on the raw
    /// outputs u (no tanh, as DeepHash-pytorch's DPSH network).
    Dpsh {
        /// Weight of the quantisation term (DeepHash-pytorch: 0.1).
        alpha: f64,
    },
    /// HashNet: the weighted pairwise likelihood within the batch on u = tanh(β·z), with
    /// β = √(⌊epoch / step_continuation⌋ + 1) (the continuation), inner products scaled by
    /// `alpha`.
    HashNet {
        /// Scale of the inner products in the sigmoid (DeepHash-pytorch: 0.1).
        alpha: f64,
        /// Epochs between increases of β (DeepHash-pytorch: 20).
        step_continuation: usize,
    },
}

impl HashMethod {
    /// DPSH at DeepHash-pytorch's settings (α 0.1).
    pub fn dpsh() -> Self {
        HashMethod::Dpsh { alpha: 0.1 }
    }

    /// HashNet at DeepHash-pytorch's settings (α 0.1, continuation every 20 epochs).
    pub fn hashnet() -> Self {
        HashMethod::HashNet {
            alpha: 0.1,
            step_continuation: 20,
        }
    }

    /// The method named `csq`, `dpsh` or `hashnet`, at its reference settings.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "csq" => Ok(HashMethod::Csq),
            "dpsh" => Ok(Self::dpsh()),
            "hashnet" => Ok(Self::hashnet()),
            _ => Err(Error::InvalidArgument(format!(
                "unknown hashing loss {name:?}: use csq, dpsh or hashnet"
            ))),
        }
    }

    /// Short name, as [`HashMethod::parse`] reads it.
    pub fn name(&self) -> &'static str {
        match self {
            HashMethod::Csq => "csq",
            HashMethod::Dpsh { .. } => "dpsh",
            HashMethod::HashNet { .. } => "hashnet",
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let alpha = match *self {
            HashMethod::Csq => return Ok(()),
            HashMethod::Dpsh { alpha } => alpha,
            HashMethod::HashNet {
                alpha,
                step_continuation,
            } => {
                if step_continuation == 0 {
                    return Err(Error::InvalidArgument(
                        "HashNet's step_continuation must be at least 1 epoch".into(),
                    ));
                }
                alpha
            }
        };
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "{}'s alpha {alpha} must be a non-negative number",
                self.name()
            )));
        }
        Ok(())
    }
}

/// Pairwise similarity of two lists of images (1 when they share a label, else 0), on the host.
#[derive(Clone, Debug)]
pub struct PairSimilarity {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
    positives: usize,
}

impl PairSimilarity {
    /// `s[i][j] = 1` when `rows[i]` and `cols[j]` share a class.
    pub fn new(rows: &[LabelSet], cols: &[LabelSet]) -> Self {
        let values: Vec<f32> = rows
            .iter()
            .flat_map(|r| cols.iter().map(move |c| f32::from(u8::from(r.shares(*c)))))
            .collect();
        let positives = values.iter().filter(|&&v| v > 0.0).count();
        Self {
            rows: rows.len(),
            cols: cols.len(),
            values,
            positives,
        }
    }

    /// The matrix `[rows, cols]` on `device`.
    pub fn tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(self.values.clone(), [self.rows, self.cols]),
            device,
        )
    }

    /// Similar pairs.
    pub fn positives(&self) -> usize {
        self.positives
    }

    /// Dissimilar pairs.
    pub fn negatives(&self) -> usize {
        self.values.len() - self.positives
    }
}

/// `log(1 + e^θ) − s·θ`, the negative log-likelihood of similarity s under σ(θ), in the
/// overflow-free form `log(1 + e^−|θ|) + max(θ, 0) − s·θ`.
fn pair_nll(theta: Tensor<2>, similarity: Tensor<2>) -> Tensor<2> {
    let softplus = theta.clone().abs().neg().exp().log1p() + theta.clone().clamp_min(0.0);
    softplus - similarity * theta
}

/// DPSH's loss of a batch's raw outputs `u` `[b, k]` against the bank `[n, k]` (detached; the
/// batch's own rows already refreshed with `u`) and the similarity `[b, n]`:
/// `mean(nll(u·Uᵀ/2, s)) + alpha · mean((u − sign u)²)`.
pub fn dpsh_loss(
    u: Tensor<2>,
    bank: Tensor<2>,
    similarity: &PairSimilarity,
    alpha: f64,
) -> LossParts {
    let [b, k] = u.dims();
    let [n, kb] = bank.dims();
    assert!(
        kb == k && similarity.rows == b && similarity.cols == n,
        "DPSH: outputs [{b}, {k}], bank [{n}, {kb}] and similarity [{}, {}] do not fit",
        similarity.rows,
        similarity.cols
    );
    let device = u.device();
    let theta = u.clone().matmul(bank.transpose()) * 0.5;
    let likelihood = pair_nll(theta, similarity.tensor(&device)).mean();
    let quantisation = (u.clone() - u.sign()).powi_scalar(2).mean();
    LossParts {
        total: likelihood.clone() + quantisation.clone() * alpha,
        similarity: likelihood,
        quantisation,
    }
}

/// HashNet's β after `epoch` (0-based) epochs: √(⌊epoch / step_continuation⌋ + 1).
pub fn hashnet_scale(epoch: usize, step_continuation: usize) -> f64 {
    ((epoch / step_continuation.max(1) + 1) as f64).sqrt()
}

/// HashNet's loss of a batch's pre-tanh outputs `z` `[b, k]` with the batch's own similarity
/// `[b, b]`: with u = tanh(scale·z) and θ = alpha·u·uᵀ, the mean of `nll(θ, s)` over the similar
/// pairs plus its mean over the dissimilar pairs (DeepHash-pytorch weights each pair by
/// `S/S₁` or `S/S₀` and divides the sum by S, which is the same). A kind of pair that does not
/// occur adds nothing. The quantisation term is reported (`mean((|u| − 1)²)`), not optimised.
pub fn hashnet_loss(
    z: Tensor<2>,
    similarity: &PairSimilarity,
    alpha: f64,
    scale: f64,
) -> LossParts {
    let [b, _] = z.dims();
    assert!(
        similarity.rows == b && similarity.cols == b,
        "HashNet: {b} outputs but a [{}, {}] similarity",
        similarity.rows,
        similarity.cols
    );
    let device = z.device();
    let u = (z * scale).tanh();
    let theta = u.clone().matmul(u.clone().transpose()) * alpha;
    let s = similarity.tensor(&device);
    let nll = pair_nll(theta, s.clone());
    let weight = |count: usize| if count == 0 { 0.0 } else { 1.0 / count as f64 };
    let weights = s.clone() * weight(similarity.positives())
        + (s.neg() + 1.0) * weight(similarity.negatives());
    let likelihood = (nll * weights).sum();
    let quantisation = (u.abs() - 1.0).powi_scalar(2).mean();
    LossParts {
        total: likelihood.clone(),
        similarity: likelihood,
        quantisation: quantisation.detach(),
    }
}

/// DPSH's bank: every training image's latest raw output u (zeros before its first batch, as
/// in DeepHash-pytorch) and labels, refreshed with each batch. Saved with checkpoints so a
/// resumed run sees the bank the uninterrupted run would.
#[derive(Clone, Debug)]
pub struct DpshBank {
    bits: usize,
    train: Vec<usize>,
    position: HashMap<usize, usize>,
    labels: Vec<LabelSet>,
    outputs: Vec<f32>,
}

impl DpshBank {
    /// An empty (all-zero) bank over the training images `train` with their `labels`.
    pub fn new(bits: usize, train: &[usize], labels: Vec<LabelSet>) -> Self {
        Self {
            bits,
            train: train.to_vec(),
            position: train.iter().enumerate().map(|(p, &i)| (i, p)).collect(),
            labels,
            outputs: vec![0.0; train.len() * bits],
        }
    }

    /// The training images (data-set indices) the bank covers.
    pub fn train(&self) -> &[usize] {
        &self.train
    }

    /// Stores the batch's outputs `u` (`idx.len() x bits`, row-major) as the rows of `idx`.
    pub fn update(&mut self, idx: &[usize], u: &[f32]) -> Result<()> {
        if u.len() != idx.len() * self.bits {
            return Err(Error::InvalidArgument(format!(
                "DPSH bank: {} values for {} images of {} bits",
                u.len(),
                idx.len(),
                self.bits
            )));
        }
        for (row, i) in u.chunks(self.bits).zip(idx) {
            let p = *self.position.get(i).ok_or_else(|| {
                Error::InvalidArgument(format!("DPSH bank: image {i} is not a training image"))
            })?;
            self.outputs[p * self.bits..(p + 1) * self.bits].copy_from_slice(row);
        }
        Ok(())
    }

    /// The bank `[n, bits]` on `device`.
    pub fn tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(self.outputs.clone(), [self.train.len(), self.bits]),
            device,
        )
    }

    /// Similarity of the batch's `labels` to every banked image.
    pub fn similarity(&self, labels: &[LabelSet]) -> PairSimilarity {
        PairSimilarity::new(labels, &self.labels)
    }

    /// The outputs as little-endian bytes, for a checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.outputs.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Restores outputs written by [`DpshBank::to_bytes`] for the same training images.
    pub fn load_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() != self.outputs.len() * 4 {
            return Err(Error::record(
                "checkpoint",
                format!(
                    "the DPSH bank holds {} bytes but {} training images of {} bits need {}",
                    bytes.len(),
                    self.train.len(),
                    self.bits,
                    self.outputs.len() * 4
                ),
            ));
        }
        for (v, b) in self.outputs.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    /// log(1 + e^θ) − s·θ in f64.
    fn nll(theta: f64, s: f64) -> f64 {
        (1.0 + theta.exp()).ln() - s * theta
    }

    #[test]
    fn dpsh_matches_a_hand_computed_case() {
        let device = Device::flex();
        let u = [[0.5f32, -1.5], [2.0, 0.25]];
        let bank = [[1f32, -1.], [0.5, 0.5], [-2., 1.]];
        let labels = [LabelSet::single(0), LabelSet::from_classes([1, 2])];
        let bank_labels = [
            LabelSet::single(0),
            LabelSet::single(2),
            LabelSet::single(3),
        ];
        let s = PairSimilarity::new(&labels, &bank_labels);
        assert_eq!((s.positives(), s.negatives()), (2, 4));
        let parts = dpsh_loss(
            Tensor::from_floats(u, &device),
            Tensor::from_floats(bank, &device),
            &s,
            0.1,
        );
        // s = [[1, 0, 0], [0, 1, 0]]
        let sim = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let (mut like, mut quant) = (0.0, 0.0);
        for i in 0..2 {
            for j in 0..3 {
                let theta = 0.5
                    * (0..2)
                        .map(|d| u[i][d] as f64 * bank[j][d] as f64)
                        .sum::<f64>();
                like += nll(theta, sim[i][j]);
            }
            for v in u[i].map(f64::from) {
                quant += (v - v.signum()).powi(2);
            }
        }
        let (like, quant) = (like / 6.0, quant / 4.0);
        assert!((scalar(parts.similarity) - like).abs() < 1e-5);
        assert!((scalar(parts.quantisation) - quant).abs() < 1e-6);
        assert!((scalar(parts.total) - (like + 0.1 * quant)).abs() < 1e-5);
    }

    #[test]
    fn dpsh_stays_finite_for_large_inner_products() {
        let device = Device::flex();
        let u = Tensor::<2>::from_floats([[300f32, -300.]], &device);
        let bank = Tensor::<2>::from_floats([[300f32, -300.]], &device);
        let s = PairSimilarity::new(&[LabelSet::single(0)], &[LabelSet::single(1)]);
        // θ = 90,000 for a dissimilar pair: the loss is θ itself, not inf.
        let like = scalar(dpsh_loss(u, bank, &s, 0.0).similarity);
        assert!((like - 90_000.0).abs() < 1.0, "{like}");
    }

    #[test]
    fn hashnet_matches_deephash_pytorchs_weighting() {
        let device = Device::flex();
        let z = [[0.3f32, -1.2, 2.0], [-0.1, 0.7, -3.0], [1.5, 0.2, -0.4]];
        let labels = [
            LabelSet::single(0),
            LabelSet::from_classes([0, 1]),
            LabelSet::single(2),
        ];
        let s = PairSimilarity::new(&labels, &labels);
        let (alpha, scale) = (0.1, hashnet_scale(45, 20));
        assert!((scale - 3f64.sqrt()).abs() < 1e-12);
        let parts = hashnet_loss(Tensor::from_floats(z, &device), &s, alpha, scale);
        // DeepHash-pytorch: every pair's nll times S/S1 (similar) or S/S0, summed, over S.
        let u: Vec<Vec<f64>> = z
            .iter()
            .map(|r| r.iter().map(|&v| (scale * v as f64).tanh()).collect())
            .collect();
        let sim = |i: usize, j: usize| f64::from(u8::from(labels[i].shares(labels[j])));
        let s1: f64 = (0..3)
            .flat_map(|i| (0..3).map(move |j| (i, j)))
            .map(|(i, j)| sim(i, j))
            .sum();
        let (total, s0) = (9.0, 9.0 - s1);
        assert_eq!(s1, 5.0); // the diagonal, and images 0 and 1 both ways
        let mut loss = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                let theta = alpha * (0..3).map(|d| u[i][d] * u[j][d]).sum::<f64>();
                let w = if sim(i, j) > 0.0 {
                    total / s1
                } else {
                    total / s0
                };
                loss += nll(theta, sim(i, j)) * w;
            }
        }
        loss /= total;
        assert!((scalar(parts.total) - loss).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn hashnet_with_only_similar_pairs_is_finite() {
        let device = Device::flex();
        let labels = [LabelSet::single(1); 2];
        let s = PairSimilarity::new(&labels, &labels);
        let z = Tensor::<2>::from_floats([[1f32, -1.], [0.5, 0.5]], &device);
        let loss = scalar(hashnet_loss(z, &s, 0.1, 1.0).total);
        assert!(loss.is_finite() && loss > 0.0);
    }

    #[test]
    fn the_bank_refreshes_rows_and_round_trips() {
        let labels = vec![
            LabelSet::single(0),
            LabelSet::single(1),
            LabelSet::single(0),
        ];
        let mut bank = DpshBank::new(2, &[7, 3, 9], labels);
        bank.update(&[9, 7], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(bank.outputs, [3.0, 4.0, 0.0, 0.0, 1.0, 2.0]);
        assert!(bank.update(&[5], &[1.0, 1.0]).is_err());
        assert!(bank.update(&[7], &[1.0]).is_err());
        let mut back = DpshBank::new(2, &[7, 3, 9], bank.labels.clone());
        back.load_bytes(&bank.to_bytes()).unwrap();
        assert_eq!(back.outputs, bank.outputs);
        assert!(back.load_bytes(&[0; 5]).is_err());
        let s = bank.similarity(&[LabelSet::single(0)]);
        assert_eq!(s.values, [1.0, 0.0, 1.0]);
    }

    #[test]
    fn methods_parse_and_validate() {
        assert_eq!(HashMethod::parse("DPSH").unwrap(), HashMethod::dpsh());
        assert_eq!(HashMethod::parse("hashnet").unwrap().name(), "hashnet");
        assert!(HashMethod::parse("dsh").is_err());
        assert!(HashMethod::Dpsh { alpha: f64::NAN }.validate().is_err());
        let no_steps = HashMethod::HashNet {
            alpha: 0.1,
            step_continuation: 0,
        };
        assert!(no_steps.validate().is_err());
        let json = serde_json::to_string(&HashMethod::hashnet()).unwrap();
        assert_eq!(
            serde_json::from_str::<HashMethod>(&json).unwrap(),
            HashMethod::hashnet()
        );
    }
}
