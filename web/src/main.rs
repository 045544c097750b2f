//! The demo as a desktop window: `cargo run --release -p hashguard-web`.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> eframe::Result {
    use burn::prelude::Device;
    use hashguard_web::{DemoApp, Engine, Uploads};

    let engine = Engine::embedded(Device::flex(), "CPU (burn-flex, native)".into())
        .map_err(|e| e.to_string());
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

#[cfg(target_arch = "wasm32")]
fn main() {}
