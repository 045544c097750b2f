//! The CNN hashing network: stages of (3x3 conv, batch norm, ReLU) ending in 2x2 max-pooling,
//! an adaptive average pool, a hidden layer with dropout, and a linear hash layer under tanh.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;

use crate::{Error, Result};

/// Configuration of a [`HashNet`].
#[derive(Config, Debug, PartialEq)]
pub struct HashNetConfig {
    /// Code length K (16, 32 or 64 are usual; any value ≥ 8 works).
    pub bits: usize,
    /// Input channels (1 for grey images, 3 for RGB).
    pub in_channels: usize,
    /// Output channels of each stage; each stage ends with 2x2 max-pooling.
    #[config(default = "vec![32, 64, 128]")]
    pub widths: Vec<usize>,
    /// 3x3 convolutions per stage.
    #[config(default = 2)]
    pub convs_per_stage: usize,
    /// Width of the hidden fully connected layer.
    #[config(default = 512)]
    pub hidden: usize,
    /// Dropout probability before the hash layer.
    #[config(default = 0.3)]
    pub dropout: f64,
    /// Per-channel mean subtracted inside the model (pixel units).
    #[config(default = "vec![0.5]")]
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided inside the model (pixel units).
    #[config(default = "vec![0.5]")]
    pub std: Vec<f32>,
}

/// One convolution, batch norm and ReLU.
#[derive(Module, Debug)]
struct ConvBnRelu {
    conv: Conv2d,
    norm: BatchNorm,
    activation: Relu,
}

impl ConvBnRelu {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(c_out).init(device),
            activation: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.activation
            .forward(self.norm.forward(self.conv.forward(x)))
    }
}

/// A CNN mapping images to relaxed hash codes.
#[derive(Module, Debug)]
pub struct HashNet {
    convs: Vec<ConvBnRelu>,
    convs_per_stage: usize,
    pool: MaxPool2d,
    squeeze: AdaptiveAvgPool2d,
    hidden: Linear,
    dropout: Dropout,
    activation: Relu,
    hash: Linear,
    mean: Tensor<4>,
    inv_std: Tensor<4>,
    bits: usize,
}

/// Side of the feature map left by the adaptive pool.
const SQUEEZED: usize = 2;

impl HashNetConfig {
    /// Checks the configuration's values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.bits < 8 || self.bits > 4096 {
            return bad(format!(
                "--bits {} is out of range (8..=4096; 16, 32 or 64 are usual)",
                self.bits
            ));
        }
        if self.in_channels == 0
            || self.mean.len() != self.in_channels
            || self.std.len() != self.in_channels
        {
            return bad(format!(
                "model expects {} input channels but has {} means and {} standard deviations",
                self.in_channels,
                self.mean.len(),
                self.std.len()
            ));
        }
        if self.std.iter().any(|s| s.is_nan() || *s <= 0.0) {
            return bad("normalisation standard deviations must be positive".into());
        }
        if self.widths.is_empty()
            || self.widths.contains(&0)
            || self.convs_per_stage == 0
            || self.hidden == 0
        {
            return bad(
                "model widths, convolutions per stage and hidden size must be positive".into(),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} must be in [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// Builds a freshly initialised network on `device`.
    ///
    /// # Panics
    /// If the configuration is invalid; call [`HashNetConfig::validate`] first on untrusted input.
    pub fn init(&self, device: &Device) -> HashNet {
        self.validate().expect("invalid HashNetConfig");
        let mut convs = Vec::new();
        let mut c_in = self.in_channels;
        for &w in &self.widths {
            for _ in 0..self.convs_per_stage {
                convs.push(ConvBnRelu::new(c_in, w, device));
                c_in = w;
            }
        }
        let channel_tensor =
            |v: &[f32]| Tensor::<1>::from_floats(v, device).reshape([1, self.in_channels, 1, 1]);
        HashNet {
            convs,
            convs_per_stage: self.convs_per_stage,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            squeeze: AdaptiveAvgPool2dConfig::new([SQUEEZED, SQUEEZED]).init(),
            hidden: LinearConfig::new(c_in * SQUEEZED * SQUEEZED, self.hidden).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            activation: Relu::new(),
            hash: LinearConfig::new(self.hidden, self.bits).init(device),
            mean: channel_tensor(&self.mean),
            inv_std: channel_tensor(&self.std.iter().map(|s| 1.0 / s).collect::<Vec<_>>()),
            bits: self.bits,
        }
    }

    /// Builds the network on `device` with the weights of a serialised record (`model.bpk`
    /// bytes); `origin` names the record in errors.
    pub fn load(&self, bytes: Vec<u8>, device: &Device, origin: &str) -> Result<HashNet> {
        self.validate()?;
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| {
                    crate::Error::record(
                        origin,
                        format!("corrupt model record ({e}); retrain or restore it"),
                    )
                })?;
        self.init(device).try_load_record(record).map_err(|e| {
            crate::Error::record(
                origin,
                format!("model record does not fit its configuration ({e})"),
            )
        })
    }
}

impl HashNet {
    /// Code length K.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Pre-tanh hash-layer outputs `z`, with `f(x) = tanh(z)`.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, height, width]`, pixels in `[0, 1]`
    /// - output: `[batch, bits]`
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.layers(images, false).pop().expect("the hash layer")
    }

    /// Every layer's output, flattened per image: each stage after pooling, the adaptive pool,
    /// the hidden layer (after ReLU and dropout) and the pre-tanh hash layer, in that order
    /// (features for LID).
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, height, width]`, pixels in `[0, 1]`
    /// - output: one `[batch, features]` tensor per layer
    pub fn features(&self, images: Tensor<4>) -> Vec<Tensor<2>> {
        self.layers(images, true)
    }

    /// The forward pass; keeps the intermediate layers when `keep` (else only the logits).
    fn layers(&self, images: Tensor<4>, keep: bool) -> Vec<Tensor<2>> {
        let mut out = Vec::new();
        let mut x = (images - self.mean.clone()) * self.inv_std.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.forward(x);
            if (i + 1) % self.convs_per_stage == 0 {
                x = self.pool.forward(x);
                if keep {
                    out.push(x.clone().flatten::<2>(1, 3));
                }
            }
        }
        let x = self.squeeze.forward(x).flatten::<2>(1, 3);
        if keep {
            out.push(x.clone());
        }
        let x = self
            .dropout
            .forward(self.activation.forward(self.hidden.forward(x)));
        if keep {
            out.push(x.clone());
        }
        out.push(self.hash.forward(x));
        out
    }

    /// Relaxed codes `f(x) = tanh(z)` in `[-1, 1]`.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, height, width]`, pixels in `[0, 1]`
    /// - output: `[batch, bits]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.logits(images).tanh()
    }
}
