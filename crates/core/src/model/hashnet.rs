//! The hashing network: either the small CNN (stages of 3x3 conv, batch norm and ReLU ending in
//! 2x2 max-pooling, an adaptive average pool, a hidden layer with dropout) or one of the field's
//! backbones, then a linear hash layer under tanh.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;

use super::backbones::{Backbone, BackboneKind};
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
    /// A backbone instead of the small CNN (`widths`, `convs_per_stage` and `hidden` then
    /// unused): its features feed the hash layer directly, as the reference code does; the
    /// dropout probability is the backbone's (AlexNet's and VGG's 4096-wide layers).
    #[config(default = "None")]
    pub backbone: Option<BackboneKind>,
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
    /// The hidden layer of the small CNN (`None` with a backbone; an `Option` adds no record
    /// key, so records written before backbones existed load unchanged).
    hidden: Option<Linear>,
    dropout: Dropout,
    activation: Relu,
    hash: Linear,
    mean: Tensor<4>,
    inv_std: Tensor<4>,
    bits: usize,
    /// The backbone, when one replaces the small CNN.
    backbone: Option<Backbone>,
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
        if self.mean.iter().any(|m| !m.is_finite()) {
            return bad("normalisation means must be finite numbers".into());
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad("normalisation standard deviations must be positive finite numbers".into());
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
        if let Some(kind) = self.backbone
            && self.in_channels != 3
        {
            return bad(format!(
                "the {} backbone takes colour images, not {} channels",
                kind.name(),
                self.in_channels
            ));
        }
        Ok(())
    }

    /// Builds a freshly initialised network on `device`.
    ///
    /// # Panics
    /// If the configuration is invalid; call [`HashNetConfig::validate`] first on untrusted input.
    pub fn init(&self, device: &Device) -> HashNet {
        self.validate().expect("invalid HashNetConfig");
        let channel_tensor =
            |v: &[f32]| Tensor::<1>::from_floats(v, device).reshape([1, self.in_channels, 1, 1]);
        let mut convs = Vec::new();
        let mut c_in = self.in_channels;
        let (hidden, hash, backbone) = match self.backbone {
            Some(kind) => (
                None,
                LinearConfig::new(kind.feature_dim(), self.bits).init(device),
                Some(kind.init(self.dropout, device)),
            ),
            None => {
                for &w in &self.widths {
                    for _ in 0..self.convs_per_stage {
                        convs.push(ConvBnRelu::new(c_in, w, device));
                        c_in = w;
                    }
                }
                (
                    Some(LinearConfig::new(c_in * SQUEEZED * SQUEEZED, self.hidden).init(device)),
                    LinearConfig::new(self.hidden, self.bits).init(device),
                    None,
                )
            }
        };
        HashNet {
            convs,
            convs_per_stage: self.convs_per_stage,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            squeeze: AdaptiveAvgPool2dConfig::new([SQUEEZED, SQUEEZED]).init(),
            hidden,
            dropout: DropoutConfig::new(self.dropout).init(),
            activation: Relu::new(),
            hash,
            mean: channel_tensor(&self.mean),
            inv_std: channel_tensor(&self.std.iter().map(|s| 1.0 / s).collect::<Vec<_>>()),
            bits: self.bits,
            backbone,
        }
    }

    /// Builds the network on `device` with the weights of a serialised record (`model.bpk`
    /// bytes, f32 or with tensors shrunk by [`crate::model::half_precision_record`] or
    /// [`crate::model::int8_record`]); `origin` names the record in errors.
    pub fn load(&self, bytes: Vec<u8>, device: &Device, origin: &str) -> Result<HashNet> {
        self.validate()?;
        let bytes = crate::model::precision::dequantised_record(bytes, origin)?;
        crate::model::check_model_record(&bytes, origin)?;
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| {
                    crate::Error::record(
                        origin,
                        format!("corrupt model record ({e}); retrain or restore it"),
                    )
                })?
                // f16 tensors (a shipped record, `half_precision_record`) become the model's f32.
                .cast_to_module_dtype();
        self.init(device).try_load_record(record).map_err(|e| {
            crate::Error::record(
                origin,
                format!("model record does not fit its configuration ({e})"),
            )
        })
    }
}

impl HashNet {
    /// The network with `backbone` (e.g. one holding imported torchvision weights) in place of
    /// its own; the hash layer keeps its initialisation. The backbone must be the configured
    /// kind (a record of the model would not load otherwise).
    pub fn with_backbone(mut self, backbone: Backbone) -> Result<Self> {
        match self.backbone {
            Some(_) => {
                self.backbone = Some(backbone);
                Ok(self)
            }
            None => Err(Error::InvalidArgument(
                "pretrained weights are for a backbone network: add --backbone".into(),
            )),
        }
    }

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
    /// (features for LID); with a backbone, its feature vector and the hash layer.
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
        if let Some(backbone) = &self.backbone {
            let features = backbone.forward(x);
            if keep {
                out.push(features.clone());
            }
            out.push(self.hash.forward(features));
            return out;
        }
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
        let hidden = self
            .hidden
            .as_ref()
            .expect("the small CNN has a hidden layer");
        let x = self
            .dropout
            .forward(self.activation.forward(hidden.forward(x)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record_bytes(model: HashNet) -> Vec<u8> {
        model.valid().into_record().into_bytes().unwrap().to_vec()
    }

    /// Found by the `model_record` fuzz target: a record with a NaN weight loaded silently
    /// and gave NaN logits (so codes that mean nothing).
    #[test]
    fn a_record_with_non_finite_weights_is_refused() {
        let device = Device::flex();
        let config = HashNetConfig::new(16, 1)
            .with_widths(vec![4, 8])
            .with_convs_per_stage(1)
            .with_hidden(16);
        let bytes = record_bytes(config.init(&device));
        assert!(config.load(bytes.clone(), &device, "ok").is_ok());
        let tensors = burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .and_then(burn_pack::Reader::into_tensors)
            .unwrap();
        let poisoned: Vec<burn_pack::Tensor> = tensors
            .into_iter()
            .map(|t| {
                if t.dtype != burn::tensor::DType::F32 || !t.name.ends_with("weight") {
                    return t;
                }
                let (name, dtype, shape, id, data) = t.into_parts().unwrap();
                let mut data = data.to_vec();
                data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
                burn_pack::Tensor::new(
                    name,
                    dtype,
                    shape,
                    id,
                    burn::tensor::Bytes::from_bytes_vec(data),
                )
            })
            .collect();
        let bad = burn_pack::Writer::new(poisoned)
            .into_bytes()
            .unwrap()
            .to_vec();
        let e = config.load(bad, &device, "model.bpk").unwrap_err();
        assert!(e.to_string().contains("NaN or infinite weights"), "{e}");
    }

    #[test]
    fn a_backbone_network_round_trips_through_its_record() {
        let device = Device::flex();
        let config = HashNetConfig::new(16, 3)
            .with_mean(vec![0.485, 0.456, 0.406])
            .with_std(vec![0.229, 0.224, 0.225])
            .with_backbone(Some(BackboneKind::Resnet18));
        let model = config.init(&device).valid();
        let pixels: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|i| (i * 37 % 101) as f32 / 100.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [2, 3, 32, 32]), &device);
        let before = model.logits(x.clone());
        assert_eq!(before.dims(), [2, 16]);
        assert_eq!(model.features(x.clone()).len(), 2);
        let loaded = config.load(record_bytes(model), &device, "test").unwrap();
        let after = loaded.valid().logits(x);
        let diff = (before - after).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{diff}");
        // A small-CNN record does not fit a backbone network, with a clear error.
        let small = HashNetConfig::new(16, 3)
            .with_mean(vec![0.5; 3])
            .with_std(vec![0.5; 3]);
        let err = config
            .load(record_bytes(small.init(&device)), &device, "model.bpk")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not fit"), "{err}");
        // Grey images cannot feed a backbone.
        assert!(
            HashNetConfig::new(16, 1)
                .with_backbone(Some(BackboneKind::Vgg11))
                .validate()
                .is_err()
        );
    }
}
