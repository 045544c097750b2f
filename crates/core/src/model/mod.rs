//! Hashing networks: a small CNN for low-resolution images that maps pixels in `[0, 1]` to a
//! relaxed code `f(x) = tanh(z)` in `[-1, 1]^K`; the binary code is `h(x) = sign(f(x))`.
//! Input normalisation happens inside the model, so attacks can work in pixel space. The
//! field's backbones (AlexNet, VGG, ResNet) can replace the small CNN under the hash layer.

mod backbones;
mod encode;
mod hashnet;
mod precision;
#[cfg(feature = "import")]
mod pretrained;
mod records;

pub use backbones::{AlexNet, Backbone, BackboneKind, Block, ConvBn, ResNet, Vgg};
pub use encode::encode_images;
pub use hashnet::{HashNet, HashNetConfig};
pub use precision::{INT8_SCALE_SUFFIX, ShrinkSummary, half_precision_record, int8_record};
#[cfg(feature = "import")]
pub use pretrained::{ImportSummary, import_torchvision};
pub(crate) use records::{check_model_record, check_optimizer_record, weights_fingerprint};

use burn::prelude::*;

/// Binary codes `sign(f)` with `sign(0) = +1`, so every bit is defined.
///
/// # Shapes
/// - `relaxed`: `[batch, bits]`
/// - output: `[batch, bits]`, entries in `{-1, +1}`
pub fn sign_codes(relaxed: Tensor<2>) -> Tensor<2> {
    relaxed.greater_equal_elem(0.0).float() * 2.0 - 1.0
}
