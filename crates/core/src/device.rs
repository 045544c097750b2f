//! The one device picker of every entry point (CLI, desktop window, benches): `cpu` is Burn's
//! Flex backend, `wgpu` Vulkan/Metal/DX12 (or a software adapter), `auto` wgpu on a hardware
//! GPU and the CPU otherwise, `cuda` NVIDIA GPUs (builds with the `cuda` feature). Compiled with
//! the crate's `flex`/`wgpu`/`cuda` features, which the binaries turn on; the library code
//! itself never picks a device.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which backend and device computed a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `cpu`, `wgpu` or `cuda`.
    pub kind: String,
    /// Burn backend and adapter description.
    pub adapter: String,
}

/// Which backend to run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// wgpu on a hardware GPU if one is found, else the CPU.
    #[default]
    Auto,
    /// Burn's Flex backend on the CPU (multi-threaded, SIMD).
    Cpu,
    /// Burn's wgpu backend (Vulkan, Metal or DX12; a software adapter if that is all there is).
    Wgpu,
    /// Burn's CUDA backend (NVIDIA GPUs; only in builds with the `cuda` feature).
    Cuda,
}

impl BackendChoice {
    /// Every choice, in the order flags list them.
    pub const ALL: [BackendChoice; 4] = [Self::Auto, Self::Cpu, Self::Wgpu, Self::Cuda];

    /// The spelling of flags and variables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{s} is not a backend: use cpu, wgpu, cuda or auto"))
            })
    }
}

/// A device and its description.
#[derive(Clone, Debug)]
pub struct Selected {
    /// The device to compute on.
    pub device: Device,
    /// What it is, for reports.
    pub info: BackendInfo,
}

/// Burn's Flex backend on every CPU thread.
#[cfg(feature = "flex")]
pub fn cpu() -> Selected {
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

/// The hardware GPU adapters this build reaches, in Burn's order (`--device N` is the N-th).
#[cfg(feature = "wgpu")]
pub fn gpus() -> Vec<Selected> {
    Device::enumerate_physical()
        .into_iter()
        .filter_map(|gpu| {
            let adapter = gpu.name.clone();
            gpu.devices.into_iter().next().map(|device| Selected {
                device,
                info: BackendInfo {
                    kind: "wgpu".into(),
                    adapter,
                },
            })
        })
        .collect()
}

/// The first hardware GPU adapter, if any.
#[cfg(feature = "wgpu")]
fn hardware_gpu() -> Option<Selected> {
    gpus().into_iter().next()
}

/// CUDA device `index`, if the driver reports it.
#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Option<Selected> {
    let device = Device::cuda(index);
    let id = device.identity()?;
    Some(Selected {
        device,
        info: BackendInfo {
            kind: "cuda".into(),
            adapter: id.name,
        },
    })
}

/// The CUDA devices the driver reports, in CUDA's order.
#[cfg(feature = "cuda")]
fn cuda_devices() -> Vec<Selected> {
    (0..).map_while(cuda).collect()
}

/// Why a build without the `cuda` feature cannot run `--backend cuda`.
#[cfg(all(feature = "flex", not(feature = "cuda")))]
const NO_CUDA: &str = "this build has no CUDA support: build with `cargo build --release -p \
                       hashguard --features cuda` on a machine with NVIDIA's driver, or use wgpu";

/// The devices `--device N` can name: the CPU for the cpu backend, else the hardware GPUs.
#[cfg(feature = "flex")]
pub fn devices(choice: BackendChoice) -> Vec<Selected> {
    match choice {
        BackendChoice::Cpu => vec![cpu()],
        #[cfg(feature = "cuda")]
        BackendChoice::Cuda => cuda_devices(),
        #[cfg(not(feature = "cuda"))]
        BackendChoice::Cuda => Vec::new(),
        #[cfg(feature = "wgpu")]
        _ => gpus(),
        #[cfg(not(feature = "wgpu"))]
        _ => vec![cpu()],
    }
}

/// [`select`], then the `index`-th device of the backend ([`devices`]) when one is named.
#[cfg(feature = "flex")]
pub fn select_device(choice: BackendChoice, index: Option<usize>) -> Result<Selected> {
    #[cfg(not(feature = "cuda"))]
    if choice == BackendChoice::Cuda {
        return Err(Error::InvalidArgument(NO_CUDA.into()));
    }
    let Some(n) = index else {
        return select(choice);
    };
    let mut all = devices(choice);
    if n < all.len() {
        return Ok(all.swap_remove(n));
    }
    let listed = all
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{i}: {}", s.info.adapter))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::InvalidArgument(match all.len() {
        0 => format!(
            "--device {n}: the {} backend finds no hardware GPU here (use --backend cpu, or \
             --backend wgpu without --device for a software adapter)",
            choice.name()
        ),
        k => format!(
            "--device {n}: the {} backend has {k} device(s) ({listed})",
            choice.name()
        ),
    }))
}

/// wgpu on the best adapter there is: a hardware GPU, else a software or virtual one.
#[cfg(feature = "wgpu")]
pub fn wgpu() -> Selected {
    hardware_gpu().unwrap_or_else(|| {
        let device = Device::wgpu(Default::default());
        let adapter = device
            .identity()
            .map(|id| format!("{} (software or virtual adapter)", id.name))
            .unwrap_or_else(|| "default wgpu adapter".into());
        Selected {
            device,
            info: BackendInfo {
                kind: "wgpu".into(),
                adapter,
            },
        }
    })
}

/// Resolves `choice` to a device, with a one-line error saying what to do when it cannot be had.
#[cfg(feature = "flex")]
pub fn select(choice: BackendChoice) -> Result<Selected> {
    match choice {
        BackendChoice::Cpu => Ok(cpu()),
        #[cfg(feature = "cuda")]
        BackendChoice::Cuda => cuda(0).ok_or_else(|| {
            Error::InvalidArgument(
                "--backend cuda: the CUDA driver reports no device (is NVIDIA's driver \
                 installed?)"
                    .into(),
            )
        }),
        #[cfg(not(feature = "cuda"))]
        BackendChoice::Cuda => Err(Error::InvalidArgument(NO_CUDA.into())),
        #[cfg(feature = "wgpu")]
        BackendChoice::Wgpu => Ok(wgpu()),
        #[cfg(feature = "wgpu")]
        BackendChoice::Auto => Ok(hardware_gpu().unwrap_or_else(cpu)),
        #[cfg(not(feature = "wgpu"))]
        BackendChoice::Wgpu => Err(Error::InvalidArgument(
            "this build has no wgpu support: rebuild with the `wgpu` feature or use the cpu backend"
                .into(),
        )),
        #[cfg(not(feature = "wgpu"))]
        BackendChoice::Auto => Ok(cpu()),
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_the_cpu_is_always_there() {
        for c in BackendChoice::ALL {
            assert_eq!(c.name().parse::<BackendChoice>().unwrap(), c);
        }
        let err = "tpu".parse::<BackendChoice>().unwrap_err().to_string();
        assert!(err.contains("cpu, wgpu, cuda or auto"), "{err}");
        #[cfg(not(feature = "cuda"))]
        {
            let err = select(BackendChoice::Cuda).unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        let cpu = select(BackendChoice::Cpu).unwrap();
        assert_eq!(cpu.info.kind, "cpu");
        // The cpu backend has one device: 0 picks it, 1 is refused with the list.
        let first = select_device(BackendChoice::Cpu, Some(0)).unwrap();
        assert_eq!(first.info.kind, "cpu");
        let err = select_device(BackendChoice::Cpu, Some(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--device 1") && err.contains("0: burn-flex"),
            "{err}"
        );
    }
}
