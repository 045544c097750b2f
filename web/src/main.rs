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
        Box::new(|cc| {
            hashguard_web::app::install_fonts(&cc.egui_ctx);
            Ok(Box::new(DemoApp::new(engine, Uploads::default())))
        }),
    )
}

/// The device for `HASHGUARD_BACKEND` (unset means `auto`), through the library's one picker,
/// and the label the window shows.
#[cfg(not(target_arch = "wasm32"))]
fn choose_device(choice: Option<String>) -> Result<(burn::prelude::Device, String), String> {
    use hashguard_core::device::{BackendChoice, select};

    let choice: BackendChoice = choice
        .as_deref()
        .unwrap_or("auto")
        .parse()
        .map_err(|e: hashguard_core::Error| format!("HASHGUARD_BACKEND: {e}"))?;
    let selected = select(choice).map_err(|e| e.to_string())?;
    let label = match selected.info.kind.as_str() {
        "cpu" => format!("CPU ({}, native)", selected.info.adapter),
        _ => format!("wgpu (burn-wgpu on {})", selected.info.adapter),
    };
    Ok((selected.device, label))
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
        let err = choose_device(Some("tpu".into())).unwrap_err();
        assert!(err.contains("cpu, wgpu, cuda or auto"), "{err}");
    }
}
