//! torchvision weights into the backbones: a `state_dict` saved by PyTorch (`.pth`/`.pt`) or as
//! safetensors, read by Burn's own store (burn-store: no hand-written pickle parser), with the
//! key mapping below; anything that does not fit is a one-line error naming the key.
//!
//! Key mapping (torchvision → hashguard, after which burn-store renumbers the indices of each
//! list contiguously, as its PyTorch loader does for `nn.Sequential` gaps):
//!
//! | torchvision | hashguard |
//! | --- | --- |
//! | AlexNet/VGG `features.N.{weight,bias}` (convolutions only) | `convs.I` (I-th convolution) |
//! | AlexNet `classifier.1`, `classifier.4` | `fc1`, `fc2` |
//! | VGG `classifier.0`, `classifier.3` | `fc1`, `fc2` |
//! | ResNet `conv1`, `bn1` | `conv1`, `bn1` |
//! | ResNet `layerS.B.convJ`, `layerS.B.bnJ` | `layers.(S−1).B.convs.(J−1)`, `….bns.(J−1)` |
//! | ResNet `layerS.B.downsample.0`, `.1` | `layers.(S−1).B.downsample.conv`, `.bn` |
//!
//! Batch norm's `weight`/`bias` become Burn's `gamma`/`beta` and Linear weights are transposed
//! (burn-store's PyTorch adapter); `running_mean`/`running_var` load as they are. Left out on
//! purpose: the 1000-class layer (`classifier.6`, `fc`) and `num_batches_tracked`. Every other
//! key must match, and every backbone tensor must be present with its shape.

use std::path::Path;

use burn::store::PyTorchToBurnAdapter;
use burn::store::{KeyRemapper, ModuleSnapshot, PytorchStore, SafetensorsStore};

use super::{Backbone, BackboneKind};
use crate::{Error, Result};

/// What an import loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    /// Tensors copied into the backbone.
    pub loaded: usize,
    /// Keys of the file left out on purpose (the classification layer, batch-norm counters).
    pub skipped: Vec<String>,
}

/// The renames from torchvision's keys to the backbone's, applied in order.
fn remapper(kind: BackboneKind) -> KeyRemapper {
    let patterns: &[(&str, &str)] = match kind {
        BackboneKind::Alexnet => &[
            (r"^features\.(\d+)\.", "convs.${1}."),
            (r"^classifier\.1\.", "fc1."),
            (r"^classifier\.4\.", "fc2."),
        ],
        BackboneKind::Vgg11 | BackboneKind::Vgg16 => &[
            (r"^features\.(\d+)\.", "convs.${1}."),
            (r"^classifier\.0\.", "fc1."),
            (r"^classifier\.3\.", "fc2."),
        ],
        BackboneKind::Resnet18 | BackboneKind::Resnet50 => &[
            (r"^layer1\.", "layers.0."),
            (r"^layer2\.", "layers.1."),
            (r"^layer3\.", "layers.2."),
            (r"^layer4\.", "layers.3."),
            (r"\.conv1\.", ".convs.0."),
            (r"\.conv2\.", ".convs.1."),
            (r"\.conv3\.", ".convs.2."),
            (r"\.bn1\.", ".bns.0."),
            (r"\.bn2\.", ".bns.1."),
            (r"\.bn3\.", ".bns.2."),
            (r"\.downsample\.0\.", ".downsample.conv."),
            (r"\.downsample\.1\.", ".downsample.bn."),
        ],
    };
    patterns.iter().fold(KeyRemapper::new(), |r, (from, to)| {
        r.add_pattern(from, *to)
            .expect("the patterns are valid regexes")
    })
}

/// Whether a key of the file is one the backbone leaves out on purpose (after remapping).
fn left_out(key: &str) -> bool {
    key.starts_with("classifier.") || key.starts_with("fc.") || key.ends_with("num_batches_tracked")
}

/// Loads a torchvision `state_dict` of `kind` from `path` into `backbone`: `.safetensors` files
/// through burn-store's safetensors reader, anything else as a PyTorch file (a bare
/// `state_dict`, or a checkpoint holding one under `state_dict` or `model`).
pub fn import_torchvision(
    backbone: &mut Backbone,
    kind: BackboneKind,
    path: &Path,
) -> Result<ImportSummary> {
    let what = path.display().to_string();
    let bad = |m: String| Error::record(&what, m);
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such weights file"),
        ));
    }
    let safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let result = if safetensors {
        let mut store = SafetensorsStore::from_file(path)
            .remap(remapper(kind))
            .with_from_adapter(PyTorchToBurnAdapter)
            .skip_enum_variants(true)
            .map_indices_contiguous(true)
            .allow_partial(true)
            .validate(false);
        backbone
            .load_from(&mut store)
            .map_err(|e| bad(format!("not readable as safetensors weights: {e}")))?
    } else {
        // The first attempt's failure is the one worth reporting.
        let mut first_failure: Option<String> = None;
        let mut result = None;
        for top in [None, Some("state_dict"), Some("model")] {
            let mut store = PytorchStore::from_file(path)
                .remap(remapper(kind))
                .allow_partial(true)
                .validate(false);
            if let Some(key) = top {
                store = store.with_top_level_key(key);
            }
            match backbone.load_from(&mut store) {
                Ok(r) if r.applied.is_empty() && r.errors.is_empty() && top.is_none() => {
                    first_failure.get_or_insert_with(|| "no tensor matches".into());
                }
                Ok(r) => {
                    result = Some(r);
                    break;
                }
                Err(e) => {
                    first_failure.get_or_insert_with(|| e.to_string());
                }
            }
        }
        result.ok_or_else(|| {
            bad(format!(
                "not readable as a PyTorch state_dict: {}",
                first_line(first_failure.as_deref().unwrap_or("no tensors"))
            ))
        })?
    };
    if let Some(e) = result.errors.first() {
        return Err(bad(format!(
            "does not fit {}: {e} (is it a torchvision {} state_dict?)",
            kind.name(),
            kind.name()
        )));
    }
    if let Some(key) = result.missing.first() {
        return Err(bad(format!(
            "has no tensor for {}'s `{}` ({} of {} missing): is it a torchvision {} state_dict?",
            kind.name(),
            key.0,
            result.missing.len(),
            result.missing.len() + result.applied.len(),
            kind.name()
        )));
    }
    let (skipped, unexpected): (Vec<String>, Vec<String>) =
        result.unused.iter().cloned().partition(|k| left_out(k));
    if let Some(key) = unexpected.first() {
        return Err(bad(format!(
            "holds `{key}`, which {} does not have ({} unexpected keys): is it a torchvision {} \
             state_dict?",
            kind.name(),
            unexpected.len(),
            kind.name()
        )));
    }
    Ok(ImportSummary {
        loaded: result.applied.len(),
        skipped,
    })
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}
