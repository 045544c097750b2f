//! The `--backend` flag over the library's one device picker: `cpu` is Burn's Flex backend,
//! `wgpu` runs on Vulkan/Metal/DX12; `auto` takes wgpu when a hardware GPU adapter exists and
//! the CPU otherwise. Reports record which one ran and on which adapter; the process
//! environment the backends read is set here, once, before any of them starts.

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

/// Prepares the process environment for `choice` before any backend starts: Burn's default
/// device and, where needed, `XDG_RUNTIME_DIR`. Call it first in `main`, while the process has
/// one thread.
pub fn prepare_environment(choice: BackendChoice) {
    set_burn_default_device(choice);
    set_missing_runtime_dir(choice);
}

/// Sets Burn's default device for `choice` ([`burn_default_device`]) unless the
/// user set `BURN_DEVICE`. Called while the process has one thread.
#[allow(unsafe_code)]
fn set_burn_default_device(choice: BackendChoice) {
    if let Some(default) = burn_default_device(choice)
        && std::env::var_os("BURN_DEVICE").is_none()
    {
        // SAFETY: `main` calls this before anything starts a second thread (only the
        // arguments and config files have been read), so no thread reads the environment
        // while it changes.
        unsafe { std::env::set_var("BURN_DEVICE", default) };
    }
}

/// Sets `XDG_RUNTIME_DIR` to `/run/user/<uid>` (where systemd-logind puts it) when a backend
/// that may start wgpu runs without one, as in containers, `su` shells and CI: Mesa's Vulkan
/// device-select layer then asks libwayland for a display, which prints "error:
/// XDG_RUNTIME_DIR is invalid or not set in the environment." at every adapter probe (three
/// to five lines before `train` or `eval` prints anything). With the variable set and no
/// display there, the probe fails quietly, as it did before; a valid value is left alone.
/// Called while the process has one thread.
#[allow(unsafe_code)]
fn set_missing_runtime_dir(choice: BackendChoice) {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        use std::os::unix::fs::MetadataExt;
        let valid = std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|dir| std::path::Path::new(&dir).is_absolute());
        if choice == BackendChoice::Cpu || valid {
            return;
        }
        if let Ok(proc) = std::fs::metadata("/proc/self") {
            // SAFETY: as in `set_burn_default_device`: no second thread exists yet.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", format!("/run/user/{}", proc.uid())) };
        }
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    let _ = choice;
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
