//! CSQ's loss: binary cross-entropy between `(f+1)/2` and `(c+1)/2` for the item's centre `c`
//! (optionally label-smoothed), plus `lambda * mean((|f| - 1)^2)`. The BCE is evaluated from the
//! pre-tanh logits `z` (`(tanh z + 1)/2 = sigmoid(2z)`): the same function without overflow.

use burn::prelude::*;
use burn::tensor::activation::softplus;

use super::LossParts;

/// Configuration of [`CsqLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct CsqLossConfig {
    /// Weight of the quantisation term (1e-4 in DeepHash-pytorch, 0.05 in the original CSQ).
    #[config(default = 1e-4)]
    pub lambda: f64,
    /// Label smoothing ε of the BCE targets: `(c+1)/2` becomes `(1−ε)(c+1)/2 + ε/2`, so the
    /// loss is minimal at `|f| = 1−ε` instead of at infinite logits (0 is CSQ as published).
    #[config(default = 0.0)]
    pub label_smoothing: f64,
}

impl CsqLossConfig {
    /// Builds the loss.
    pub fn init(&self) -> CsqLoss {
        CsqLoss {
            lambda: self.lambda,
            label_smoothing: self.label_smoothing,
        }
    }
}

/// The CSQ loss.
#[derive(Clone, Debug)]
pub struct CsqLoss {
    lambda: f64,
    label_smoothing: f64,
}

impl CsqLoss {
    /// Computes the loss.
    ///
    /// # Shapes
    /// - `logits`: `[batch, bits]`, pre-tanh outputs `z`
    /// - `centres`: `[batch, bits]`, targets in {-1, +1}
    /// - outputs: scalars `[1]`
    pub fn forward(&self, logits: Tensor<2>, centres: Tensor<2>) -> LossParts {
        let [b, k] = logits.dims();
        assert_eq!(
            centres.dims(),
            [b, k],
            "CSQ: centres {:?} do not match logits [{b}, {k}]",
            centres.dims()
        );
        let two_z = logits.clone() * 2.0;
        let eps = self.label_smoothing;
        let target = (centres + 1.0) * ((1.0 - eps) / 2.0) + eps / 2.0;
        // -t log σ(2z) - (1 - t) log(1 - σ(2z)) = softplus(2z) - t · 2z
        let bce = (softplus(two_z.clone(), 1.0) - target * two_z).mean();
        let quantisation = (logits.tanh().abs() - 1.0).powi_scalar(2).mean();
        LossParts {
            total: bce.clone() + quantisation.clone() * self.lambda,
            similarity: bce,
            quantisation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_probability_form() {
        let device = Device::flex();
        let z = [[0.3f32, -1.2, 2.0], [-0.1, 0.7, -3.0]];
        let c = [[1f32, -1., -1.], [1., 1., -1.]];
        let parts = CsqLossConfig::new().with_lambda(0.5).init().forward(
            Tensor::from_floats(z, &device),
            Tensor::from_floats(c, &device),
        );
        let (mut bce, mut q) = (0f64, 0f64);
        for i in 0..2 {
            for j in 0..3 {
                let f = (z[i][j] as f64).tanh();
                let p = (f + 1.0) / 2.0;
                let t = (c[i][j] as f64 + 1.0) / 2.0;
                bce -= t * p.ln() + (1.0 - t) * (1.0 - p).ln();
                q += (f.abs() - 1.0).powi(2);
            }
        }
        let (bce, q) = (bce / 6.0, q / 6.0);
        let got = |t: Tensor<1>| t.into_scalar::<f32>() as f64;
        assert!((got(parts.similarity) - bce).abs() < 1e-5);
        assert!((got(parts.quantisation) - q).abs() < 1e-5);
        assert!((got(parts.total) - (bce + 0.5 * q)).abs() < 1e-5);
    }

    #[test]
    fn label_smoothing_moves_the_minimum_to_one_minus_eps() {
        let device = Device::flex();
        let loss = CsqLossConfig::new()
            .with_lambda(0.0)
            .with_label_smoothing(0.1)
            .init();
        let bce = |f: f64| {
            let z = Tensor::from_floats([[f.atanh() as f32]], &device);
            let c = Tensor::from_floats([[1f32]], &device);
            loss.forward(z, c).similarity.into_scalar::<f32>() as f64
        };
        // Smoothed target 0.95 for c = +1: minimal at (f+1)/2 = 0.95, i.e. f = 0.9.
        let at = bce(0.9);
        assert!(at < bce(0.85) && at < bce(0.95) && at < bce(0.999));
        let expected = -(0.95f64 * 0.95f64.ln() + 0.05 * 0.05f64.ln());
        assert!((at - expected).abs() < 1e-4, "{at} vs {expected}");
    }
}
