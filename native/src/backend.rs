//! Backend choice: `cpu` is Burn's Flex backend, `wgpu` runs on Vulkan/Metal/DX12; `auto`
//! takes wgpu when a hardware GPU adapter exists and the CPU otherwise. Reports record which
//! one ran and on which adapter.

use anyhow::{Result, bail};
use burn::prelude::*;
use serde::Serialize;

/// The `--backend` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// wgpu on a hardware GPU if one is found, else cpu.
    Auto,
    /// Burn's Flex backend on the CPU (multi-threaded, SIMD).
    Cpu,
    /// Burn's wgpu backend (Vulkan, Metal or DX12; a software adapter if that is all there is).
    Wgpu,
}

/// What ran, for reports.
#[derive(Clone, Debug, Serialize)]
pub struct BackendInfo {
    /// `cpu` or `wgpu`.
    pub kind: String,
    /// Burn backend and adapter description.
    pub adapter: String,
}

/// A device and its description.
#[derive(Clone)]
pub struct Selected {
    /// The device to compute on.
    pub device: Device,
    /// Its description.
    pub info: BackendInfo,
}

fn cpu() -> Selected {
    Selected {
        device: Device::flex(),
        info: BackendInfo {
            kind: "cpu".into(),
            adapter: format!(
                "burn-flex on {} CPU threads",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
        },
    }
}

#[cfg(feature = "wgpu")]
fn wgpu(require_hardware: bool) -> Result<Option<Selected>> {
    let gpus = Device::enumerate_physical();
    if let Some(gpu) = gpus.first() {
        let device = gpu
            .devices
            .clone()
            .into_iter()
            .next()
            .unwrap_or_else(|| Device::wgpu(Default::default()));
        return Ok(Some(Selected {
            device,
            info: BackendInfo {
                kind: "wgpu".into(),
                adapter: gpu.name.clone(),
            },
        }));
    }
    if require_hardware {
        return Ok(None);
    }
    let device = Device::wgpu(Default::default());
    let adapter = device
        .identity()
        .map(|id| format!("{} (software or virtual adapter)", id.name))
        .unwrap_or_else(|| "default wgpu adapter".into());
    Ok(Some(Selected {
        device,
        info: BackendInfo {
            kind: "wgpu".into(),
            adapter,
        },
    }))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(require_hardware: bool) -> Result<Option<Selected>> {
    if require_hardware {
        return Ok(None);
    }
    bail!(
        "this hashguard was built without wgpu support: rebuild with `--features wgpu` or use --backend cpu"
    )
}

/// Resolves the flag to a device.
pub fn select(choice: BackendChoice) -> Result<Selected> {
    Ok(match choice {
        BackendChoice::Cpu => cpu(),
        BackendChoice::Wgpu => match wgpu(false)? {
            Some(s) => s,
            None => bail!(
                "no wgpu adapter found: install a Vulkan driver (e.g. mesa-vulkan-drivers) or use --backend cpu"
            ),
        },
        BackendChoice::Auto => wgpu(true)?.unwrap_or_else(cpu),
    })
}
