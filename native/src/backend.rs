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
