//! The field's backbones in Burn — AlexNet, VGG-11, VGG-16, ResNet-18, ResNet-50 — laid out as
//! torchvision builds them (same layers, shapes and parameter counts; the last classification
//! layer left out), each mapping normalised images to the feature vector a hash layer reads.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which backbone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// AlexNet (torchvision's single-tower variant): 5 convolutions, two 4096-wide layers.
    Alexnet,
    /// VGG-11 (configuration A, no batch norm): the CgAT code's default with DPSH.
    Vgg11,
    /// VGG-16 (configuration D, no batch norm).
    Vgg16,
    /// ResNet-18 (basic blocks 2-2-2-2).
    Resnet18,
    /// ResNet-50 (bottleneck blocks 3-4-6-3, stride on the 3x3 convolution as torchvision).
    Resnet50,
}

impl BackboneKind {
    /// Every backbone, in CLI order.
    pub const ALL: [BackboneKind; 5] = [
        Self::Alexnet,
        Self::Vgg11,
        Self::Vgg16,
        Self::Resnet18,
        Self::Resnet50,
    ];

    /// The CLI spelling (`--backbone` value).
    pub fn name(self) -> &'static str {
        match self {
            Self::Alexnet => "alexnet",
            Self::Vgg11 => "vgg11",
            Self::Vgg16 => "vgg16",
            Self::Resnet18 => "resnet18",
            Self::Resnet50 => "resnet50",
        }
    }

    /// Parses the CLI spelling.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown backbone `{s}`: use {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }

    /// Length of the feature vector the hash layer reads.
    pub fn feature_dim(self) -> usize {
        match self {
            Self::Alexnet | Self::Vgg11 | Self::Vgg16 => 4096,
            Self::Resnet18 => 512,
            Self::Resnet50 => 2048,
        }
    }

    /// Smallest input side the network accepts (every stride and pooling leaves ≥ 1 pixel).
    pub fn min_input(self) -> usize {
        match self {
            Self::Alexnet => 63,
            Self::Vgg11 | Self::Vgg16 | Self::Resnet18 | Self::Resnet50 => 32,
        }
    }

    /// Builds the backbone with fresh (Kaiming-uniform, Burn's default) weights on `device`;
    /// `dropout` is the probability of the 4096-wide layers' dropout (torchvision: 0.5).
    pub fn init(self, dropout: f64, device: &Device) -> Backbone {
        self.init_narrow(dropout, 1, device)
    }

    /// [`BackboneKind::init`] with every channel count and fully connected width divided by
    /// `divisor` (same layers and parameter names): the small models the weight-import
    /// fixtures hold.
    pub fn init_narrow(self, dropout: f64, divisor: usize, device: &Device) -> Backbone {
        let d = divisor.max(1);
        match self {
            Self::Alexnet => Backbone::Alexnet(AlexNet::new(dropout, d, device)),
            Self::Vgg11 => Backbone::Vgg(Vgg::new(&VGG11, dropout, d, device)),
            Self::Vgg16 => Backbone::Vgg(Vgg::new(&VGG16, dropout, d, device)),
            Self::Resnet18 => Backbone::Resnet(ResNet::new(false, [2, 2, 2, 2], d, device)),
            Self::Resnet50 => Backbone::Resnet(ResNet::new(true, [3, 4, 6, 3], d, device)),
        }
    }
}

/// A backbone network (see [`BackboneKind`]).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone {
    /// AlexNet.
    Alexnet(AlexNet),
    /// VGG-11 or VGG-16.
    Vgg(Vgg),
    /// ResNet-18 or ResNet-50.
    Resnet(ResNet),
}

impl Backbone {
    /// Features of normalised images.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, height, width]` (normalised; height and width ≥ the kind's minimum)
    /// - output: `[batch, feature_dim]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Alexnet(m) => m.forward(x),
            Self::Vgg(m) => m.forward(x),
            Self::Resnet(m) => m.forward(x),
        }
    }
}

fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .init(device)
}

fn max_pool(k: usize, stride: usize, pad: usize) -> MaxPool2d {
    MaxPool2dConfig::new([k, k])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .init()
}

/// torchvision's AlexNet without its last layer.
#[derive(Module, Debug)]
pub struct AlexNet {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
    avgpool: AdaptiveAvgPool2d,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
    relu: Relu,
}

impl AlexNet {
    fn new(dropout: f64, d: usize, device: &Device) -> Self {
        let convs = vec![
            conv(3, 64 / d, 11, 4, 2, true, device),
            conv(64 / d, 192 / d, 5, 1, 2, true, device),
            conv(192 / d, 384 / d, 3, 1, 1, true, device),
            conv(384 / d, 256 / d, 3, 1, 1, true, device),
            conv(256 / d, 256 / d, 3, 1, 1, true, device),
        ];
        Self {
            convs,
            pool: max_pool(3, 2, 0),
            avgpool: AdaptiveAvgPool2dConfig::new([6, 6]).init(),
            fc1: LinearConfig::new(256 / d * 6 * 6, 4096 / d).init(device),
            fc2: LinearConfig::new(4096 / d, 4096 / d).init(device),
            dropout: DropoutConfig::new(dropout).init(),
            relu: Relu::new(),
        }
    }

    fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for (i, c) in self.convs.iter().enumerate() {
            x = self.relu.forward(c.forward(x));
            // Pooling after the first, second and last convolution.
            if matches!(i, 0 | 1 | 4) {
                x = self.pool.forward(x);
            }
        }
        let x = self.avgpool.forward(x).flatten::<2>(1, 3);
        let x = self.relu.forward(self.fc1.forward(self.dropout.forward(x)));
        self.relu.forward(self.fc2.forward(self.dropout.forward(x)))
    }
}

/// A VGG configuration: output channels of each 3x3 convolution, 0 for a 2x2 max-pool.
const VGG11: [usize; 13] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
const VGG16: [usize; 18] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];

/// torchvision's VGG (no batch norm) without its last layer.
#[derive(Module, Debug)]
pub struct Vgg {
    convs: Vec<Conv2d>,
    /// For each convolution, whether a 2x2 max-pool follows it.
    pool_after: Vec<bool>,
    pool: MaxPool2d,
    avgpool: AdaptiveAvgPool2d,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
    relu: Relu,
}

impl Vgg {
    fn new(cfg: &[usize], dropout: f64, d: usize, device: &Device) -> Self {
        let (mut convs, mut pool_after) = (Vec::new(), Vec::new());
        let mut c_in = 3;
        for &c in cfg {
            if c == 0 {
                if let Some(last) = pool_after.last_mut() {
                    *last = true;
                }
            } else {
                convs.push(conv(c_in, c / d, 3, 1, 1, true, device));
                pool_after.push(false);
                c_in = c / d;
            }
        }
        Self {
            convs,
            pool_after,
            pool: max_pool(2, 2, 0),
            avgpool: AdaptiveAvgPool2dConfig::new([7, 7]).init(),
            fc1: LinearConfig::new(512 / d * 7 * 7, 4096 / d).init(device),
            fc2: LinearConfig::new(4096 / d, 4096 / d).init(device),
            dropout: DropoutConfig::new(dropout).init(),
            relu: Relu::new(),
        }
    }

    fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for (c, &pool) in self.convs.iter().zip(&self.pool_after) {
            x = self.relu.forward(c.forward(x));
            if pool {
                x = self.pool.forward(x);
            }
        }
        let x = self.avgpool.forward(x).flatten::<2>(1, 3);
        let x = self.dropout.forward(self.relu.forward(self.fc1.forward(x)));
        self.dropout.forward(self.relu.forward(self.fc2.forward(x)))
    }
}

/// A convolution followed by batch norm (ResNet's shortcut projection).
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// A residual block: basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 with 4x expansion).
#[derive(Module, Debug)]
pub struct Block {
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm>,
    downsample: Option<ConvBn>,
    relu: Relu,
}

impl Block {
    fn new(bottleneck: bool, c_in: usize, width: usize, stride: usize, device: &Device) -> Self {
        let c_out = if bottleneck { width * 4 } else { width };
        let convs = if bottleneck {
            vec![
                conv(c_in, width, 1, 1, 0, false, device),
                conv(width, width, 3, stride, 1, false, device),
                conv(width, c_out, 1, 1, 0, false, device),
            ]
        } else {
            vec![
                conv(c_in, width, 3, stride, 1, false, device),
                conv(width, width, 3, 1, 1, false, device),
            ]
        };
        let bns = convs
            .iter()
            .map(|c| BatchNormConfig::new(c.weight.dims()[0]).init(device))
            .collect();
        let downsample = (stride != 1 || c_in != c_out).then(|| ConvBn {
            conv: conv(c_in, c_out, 1, stride, 0, false, device),
            bn: BatchNormConfig::new(c_out).init(device),
        });
        Self {
            convs,
            bns,
            downsample,
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        let last = self.convs.len() - 1;
        let mut y = x;
        for (i, (c, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            y = bn.forward(c.forward(y));
            if i < last {
                y = self.relu.forward(y);
            }
        }
        self.relu.forward(y + identity)
    }
}

/// torchvision's ResNet without its last layer.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    relu: Relu,
    maxpool: MaxPool2d,
    layers: Vec<Vec<Block>>,
    avgpool: AdaptiveAvgPool2d,
}

impl ResNet {
    fn new(bottleneck: bool, depths: [usize; 4], d: usize, device: &Device) -> Self {
        let expansion = if bottleneck { 4 } else { 1 };
        let mut c_in = 64 / d;
        let mut layers = Vec::new();
        for (stage, &depth) in depths.iter().enumerate() {
            let width = (64 / d) << stage;
            let stride = if stage == 0 { 1 } else { 2 };
            let mut blocks = Vec::new();
            for b in 0..depth {
                blocks.push(Block::new(
                    bottleneck,
                    c_in,
                    width,
                    if b == 0 { stride } else { 1 },
                    device,
                ));
                c_in = width * expansion;
            }
            layers.push(blocks);
        }
        Self {
            conv1: conv(3, 64 / d, 7, 2, 3, false, device),
            bn1: BatchNormConfig::new(64 / d).init(device),
            relu: Relu::new(),
            maxpool: max_pool(3, 2, 1),
            layers,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.relu.forward(self.bn1.forward(self.conv1.forward(x)));
        let mut x = self.maxpool.forward(x);
        for block in self.layers.iter().flatten() {
            x = block.forward(x);
        }
        self.avgpool.forward(x).flatten::<2>(1, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameter counts of torchvision's models minus their last layer (`fc` or
    /// `classifier[6]`, 1000 classes): the architectures match layer for layer. Burn also
    /// counts batch norm's running mean and variance (torchvision's buffers): two per channel
    /// of the 4,800 (ResNet-18) and 26,560 (ResNet-50) batch-normalised channels.
    #[test]
    fn parameter_counts_match_torchvision() {
        let device = Device::flex();
        let expected = [
            (
                BackboneKind::Resnet18,
                11_689_512 - (512 * 1000 + 1000) + 2 * 4_800,
            ),
            (
                BackboneKind::Resnet50,
                25_557_032 - (2048 * 1000 + 1000) + 2 * 26_560,
            ),
            (BackboneKind::Alexnet, 61_100_840 - (4096 * 1000 + 1000)),
            (BackboneKind::Vgg11, 132_863_336 - (4096 * 1000 + 1000)),
            (BackboneKind::Vgg16, 138_357_544 - (4096 * 1000 + 1000)),
        ];
        for (kind, params) in expected {
            assert_eq!(kind.init(0.5, &device).num_params(), params, "{kind:?}");
        }
    }

    #[test]
    fn features_have_the_documented_width_at_the_smallest_input() {
        let device = Device::flex();
        for kind in [
            BackboneKind::Resnet18,
            BackboneKind::Resnet50,
            BackboneKind::Alexnet,
            BackboneKind::Vgg11,
        ] {
            let side = kind.min_input();
            let x = Tensor::<4>::ones([2, 3, side, side], &device);
            let f = kind.init(0.0, &device).forward(x);
            assert_eq!(f.dims(), [2, kind.feature_dim()], "{kind:?}");
        }
        assert!(BackboneKind::parse("resnet34").is_err());
        assert_eq!(BackboneKind::parse("vgg16").unwrap(), BackboneKind::Vgg16);
    }
}
