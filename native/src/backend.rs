//! The `--backend` flag over the library's one device picker: `cpu` is Burn's Flex backend,
//! `wgpu` runs on Vulkan/Metal/DX12; `auto` takes wgpu when a hardware GPU adapter exists and
//! the CPU otherwise. Reports record which one ran and on which adapter.

pub use hashguard_core::device::{BackendChoice, Selected, devices, select_device};

/// Parses `--backend`.
pub fn choice(s: &str) -> Result<BackendChoice, String> {
    s.parse().map_err(|e: hashguard_core::Error| e.to_string())
}
