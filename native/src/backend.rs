//! The `--backend` flag over the library's one device picker: `cpu` is Burn's Flex backend,
//! `wgpu` runs on Vulkan/Metal/DX12; `auto` takes wgpu when a hardware GPU adapter exists and
//! the CPU otherwise. Reports record which one ran and on which adapter.

pub use hashguard_core::device::{BackendChoice, Selected, devices, select_device};

/// Resolves `--device N[,N...]`: the first device (the backend's default when none is named)
/// and the others, which only training splits its batches over.
pub fn pick(choice: BackendChoice, list: &[usize]) -> anyhow::Result<(Selected, Vec<Selected>)> {
    if let Some(twice) = list
        .iter()
        .enumerate()
        .find_map(|(i, d)| list[..i].contains(d).then_some(d))
    {
        anyhow::bail!("--device names device {twice} twice: list each device once");
    }
    let main = select_device(choice, list.first().copied())?;
    let more = list
        .iter()
        .skip(1)
        .map(|&d| select_device(choice, Some(d)))
        .collect::<Result<_, _>>()?;
    Ok((main, more))
}

/// What Burn's default device must be for `choice`, when it must be set (`BURN_DEVICE`).
///
/// Burn places a few things on its default device, not on the one a run picked: an
/// optimiser's state read back from a checkpoint lands there, and moves to the parameters'
/// device at the next step. In a build with wgpu that default is wgpu, so resuming a CPU run
/// would start a wgpu runtime (seconds of set-up on a software adapter) and, on a machine
/// with no adapter at all, panic. The CPU (Flex, in every native build) is the safe default
/// for `cpu` and for `auto`, which falls back to it; `wgpu` and `cuda` keep Burn's own.
pub fn burn_default_device(choice: BackendChoice) -> Option<&'static str> {
    match choice {
        BackendChoice::Cpu | BackendChoice::Auto => Some("flex"),
        BackendChoice::Wgpu | BackendChoice::Cuda => None,
    }
}

/// Parses `--backend`.
pub fn choice(s: &str) -> Result<BackendChoice, String> {
    s.parse().map_err(|e: hashguard_core::Error| e.to_string())
}

/// The adapters of `main` and `more`, for the run's first line (`A + B` when training spreads).
pub fn adapters(main: &Selected, more: &[Selected]) -> String {
    std::iter::once(main)
        .chain(more)
        .map(|s| s.info.adapter.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}
