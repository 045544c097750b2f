//! The Rust half of the backbone parity check: reads what `benches/peers/backbone_parity.py`
//! exported (torchvision `state_dict` files, one input, PyTorch's features), imports each file
//! into hashguard's backbone and compares the features.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use hashguard_core::model::{BackboneKind, import_torchvision};
use serde::{Deserialize, Serialize};

/// `manifest.json` as the script writes it.
#[derive(Debug, Deserialize)]
struct Manifest {
    torch: String,
    input: Blob,
    backbones: Vec<Exported>,
}

#[derive(Debug, Deserialize)]
struct Blob {
    file: String,
    shape: Vec<usize>,
}

#[derive(Debug, Deserialize)]
struct Exported {
    name: String,
    weights: String,
    divisor: usize,
    features: String,
    shape: Vec<usize>,
    parameters: usize,
    torch_forward_seconds: f64,
}

/// One backbone's comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Parity {
    /// Backbone name (`--backbone` spelling).
    pub backbone: String,
    /// Width divisor (1: the full-size network).
    pub divisor: usize,
    /// The weights file.
    pub weights: PathBuf,
    /// Tensors in the file.
    pub parameters: usize,
    /// Tensors loaded into the backbone.
    pub loaded: usize,
    /// Keys left out on purpose (the 1000-class layer, batch-norm counters).
    pub skipped: usize,
    /// Largest absolute difference between Burn's and PyTorch's features.
    pub max_abs_diff: f32,
    /// Largest absolute PyTorch feature (for scale).
    pub max_abs_feature: f32,
    /// Seconds of Burn's forward pass (after the import).
    pub burn_forward_seconds: f64,
    /// Seconds of PyTorch's forward pass, as the script measured it.
    pub torch_forward_seconds: f64,
    /// PyTorch version that exported the weights.
    pub torch: String,
}

fn read_f32(path: &Path, expected: usize) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() != expected * 4 {
        return Err(format!(
            "{}: {} bytes, expected {} float32 values",
            path.display(),
            bytes.len(),
            expected
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

/// Imports and compares every backbone the export in `dir` holds, on `device`.
pub fn check_export(dir: &Path, device: &Device) -> Result<Vec<Parity>, String> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let shape: [usize; 4] = manifest
        .input
        .shape
        .clone()
        .try_into()
        .map_err(|_| "the input must be NCHW".to_string())?;
    let input = read_f32(&dir.join(&manifest.input.file), shape.iter().product())?;
    let mut rows = Vec::new();
    for b in &manifest.backbones {
        let kind = BackboneKind::parse(&b.name).map_err(|e| e.to_string())?;
        let mut backbone = kind.init_narrow(0.0, b.divisor, device);
        let weights = dir.join(&b.weights);
        let summary =
            import_torchvision(&mut backbone, kind, &weights).map_err(|e| e.to_string())?;
        let expected = read_f32(&dir.join(&b.features), b.shape.iter().product())?;
        let x = Tensor::<4>::from_data(TensorData::new(input.clone(), shape), device);
        let start = std::time::Instant::now();
        let got = backbone
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        let seconds = start.elapsed().as_secs_f64();
        if got.len() != expected.len() {
            return Err(format!(
                "{}: Burn gives {} features, PyTorch {}",
                b.name,
                got.len(),
                expected.len()
            ));
        }
        let max_abs_diff = got
            .iter()
            .zip(&expected)
            .map(|(a, e)| (a - e).abs())
            .fold(0f32, f32::max);
        rows.push(Parity {
            backbone: b.name.clone(),
            divisor: b.divisor,
            weights,
            parameters: b.parameters,
            loaded: summary.loaded,
            skipped: summary.skipped.len(),
            max_abs_diff,
            max_abs_feature: expected.iter().map(|v| v.abs()).fold(0f32, f32::max),
            burn_forward_seconds: seconds,
            torch_forward_seconds: b.torch_forward_seconds,
            torch: manifest.torch.clone(),
        });
    }
    Ok(rows)
}
