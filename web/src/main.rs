//! The demo as a desktop window: `cargo run --release -p hashguard-web`. The model runs on
//! Burn's wgpu backend when a hardware GPU adapter exists and on the CPU (burn-flex) otherwise;
//! `HASHGUARD_BACKEND=cpu|wgpu|auto` overrides the choice.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> eframe::Result {
    use hashguard_web::{DemoApp, Engine, Uploads};

    let (device, backend) = match choose_device(std::env::var("HASHGUARD_BACKEND").ok()) {
        Ok(chosen) => chosen,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let engine = Engine::embedded(device, backend).map_err(|e| e.to_string());
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default().with_inner_size([1280.0, 900.0]),
        ..Default::default()
    };
    eframe::run_native(
        "hashguard",
        options,
        Box::new(|_cc| Ok(Box::new(DemoApp::new(engine, Uploads::default())))),
    )
}

/// The device for `HASHGUARD_BACKEND` (unset means `auto`) and the label the window shows.
#[cfg(not(target_arch = "wasm32"))]
fn choose_device(choice: Option<String>) -> Result<(burn::prelude::Device, String), String> {
    use burn::prelude::Device;

    let cpu = || (Device::flex(), "CPU (burn-flex, native)".to_string());
    match choice.as_deref().unwrap_or("auto") {
        "cpu" => Ok(cpu()),
        "wgpu" => {
            let device = Device::wgpu(Default::default());
            let adapter = device
                .identity()
                .map_or_else(|| "default adapter".into(), |id| id.name);
            Ok((device, format!("wgpu (burn-wgpu on {adapter})")))
        }
        "auto" => Ok(Device::enumerate_physical()
            .into_iter()
            .find_map(|gpu| {
                let name = gpu.name.clone();
                gpu.devices
                    .into_iter()
                    .next()
                    .map(|d| (d, format!("wgpu (burn-wgpu on {name})")))
            })
            .unwrap_or_else(cpu)),
        other => Err(format!(
            "HASHGUARD_BACKEND={other} is not a backend: use cpu, wgpu or auto"
        )),
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::choose_device;

    #[test]
    fn the_backend_variable_is_checked() {
        let (_, label) = choose_device(Some("cpu".into())).unwrap();
        assert!(label.starts_with("CPU"));
        let err = choose_device(Some("cuda".into())).unwrap_err();
        assert!(err.contains("cpu, wgpu or auto"), "{err}");
    }
}
