//! hashguard-web: the browser demo (and desktop window) of hashguard — pick a query, see deep
//! hashing retrieve, attack it, and watch UMCD catch the adversarial image. The computation is
//! `hashguard-core` on Burn; the UI is egui.

pub mod app;
pub mod engine;
pub mod task;
pub mod upload;

pub use app::{DemoApp, Uploads};
pub use engine::Engine;

#[cfg(target_arch = "wasm32")]
mod web {
    //! The page's entry points: start the app on a canvas, and hand it uploaded files.

    use std::cell::RefCell;
    use std::sync::{Mutex, OnceLock};

    use burn::prelude::Device;
    #[cfg(feature = "webgpu")]
    use burn::tensor::wgpu::{WgpuBackend, wgpu};
    use wasm_bindgen::prelude::*;

    use crate::{DemoApp, Engine, Uploads};

    /// Upload queue shared by the page's file input and the running app.
    fn uploads() -> &'static Uploads {
        static QUEUE: OnceLock<Uploads> = OnceLock::new();
        QUEUE.get_or_init(|| Uploads::new(Mutex::new(Vec::new())))
    }

    thread_local! {
        static RUNNER: RefCell<Option<eframe::WebRunner>> = const { RefCell::new(None) };
    }

    /// Runs the module's static constructors (cubecl registers its kernels with `inventory`)
    /// once, at instantiation. Without an explicit call, wasm-ld treats the module as a
    /// "command" and re-runs every constructor at the top of *each* exported function — every
    /// frame and every JS call paid ~100 ms for it (measured with Chromium's profiler).
    #[wasm_bindgen(start)]
    #[allow(unsafe_code)]
    pub fn run_constructors_once() {
        unsafe extern "C" {
            fn __wasm_call_ctors();
        }
        // SAFETY: the linker-synthesised constructor runner; called once, before any other
        // export, which is what the linker's reactor model expects. inventory's constructors
        // are idempotent in any case.
        unsafe { __wasm_call_ctors() }
    }

    /// The app's state as JSON (see `DemoApp::summary`), for tests driving the page.
    #[wasm_bindgen]
    pub fn demo_state() -> String {
        with_app(|app| app.summary())
            .and_then(|summary| serde_json::to_string(&summary).ok())
            .unwrap_or_else(|| "null".into())
    }

    /// Runs `f` on the running app; `None` before it has started.
    fn with_app<R>(f: impl FnOnce(&mut DemoApp) -> R) -> Option<R> {
        RUNNER.with(|r| {
            let runner = r.borrow();
            let mut app = runner.as_ref()?.app_mut::<DemoApp>()?;
            Some(f(&mut app))
        })
    }

    /// Chooses the next attack: `method` is pgd, dhta or cw; eps in grey levels (of 255);
    /// `target` the class a targeted attack aims at (default 0).
    #[wasm_bindgen]
    pub fn demo_choose_attack(
        method: String,
        eps_levels: f32,
        steps: usize,
        target: Option<usize>,
    ) -> Result<(), JsValue> {
        let kind: hashguard_core::experiments::AttackKind = method
            .parse()
            .map_err(|e: hashguard_core::Error| e.to_string())?;
        let spec = crate::engine::demo_spec(kind, eps_levels / 255.0, steps, target.unwrap_or(0));
        with_app(|app| app.set_attack(spec)).ok_or("the app is not running")?;
        Ok(())
    }

    /// Starts the ε sweep of the chosen attack (see `demo_choose_attack`) on the current query.
    #[wasm_bindgen]
    pub fn demo_sweep() -> Result<(), JsValue> {
        with_app(|app| app.demo_mut().start_sweep()).ok_or("the app is not running")?;
        Ok(())
    }

    /// Queries the app with a file the page read (PNG or JPEG bytes).
    #[wasm_bindgen]
    pub fn upload_image(name: String, bytes: Vec<u8>) {
        uploads().lock().expect("upload queue").push((name, bytes));
    }

    /// Whether the page's address asks for the CPU backend (`?backend=cpu`).
    fn cpu_forced() -> bool {
        web_sys::window()
            .and_then(|w| w.location().search().ok())
            .is_some_and(|q| q.contains("backend=cpu"))
    }

    /// The CPU-only module (built without `webgpu`, which the page always starts first):
    /// Burn's CPU backend. The page says why in `window.hashguardCpuReason` (no adapter,
    /// `?backend=cpu`, or the WebGPU module still loading in the background).
    #[cfg(not(feature = "webgpu"))]
    async fn choose_device() -> (Device, String) {
        let why = web_sys::window()
            .and_then(|w| js_sys::Reflect::get(&w, &"hashguardCpuReason".into()).ok())
            .and_then(|v| v.as_string())
            .unwrap_or_else(|| {
                if cpu_forced() {
                    "asked for by ?backend=cpu".into()
                } else {
                    "this browser offers no WebGPU adapter".into()
                }
            });
        (Device::flex(), format!("CPU (burn-flex, wasm; {why})"))
    }

    /// Stops the running app (the page then starts the WebGPU module's app on a fresh canvas);
    /// does nothing when none runs.
    #[wasm_bindgen]
    pub fn stop() {
        if let Some(runner) = RUNNER.with(|r| r.borrow_mut().take()) {
            runner.destroy();
        }
    }

    /// WebGPU through Burn's wgpu runtime when the browser offers an adapter, else Burn's CPU
    /// backend; `?backend=cpu` in the page's address forces the CPU. The label says which,
    /// and why the CPU when WebGPU was wanted.
    #[cfg(feature = "webgpu")]
    async fn choose_device() -> (Device, String) {
        let window = web_sys::window();
        if cpu_forced() {
            return (
                Device::flex(),
                "CPU (burn-flex, wasm; asked for by ?backend=cpu)".into(),
            );
        }
        let has_webgpu = window.as_ref().is_some_and(|w| {
            js_sys::Reflect::get(&w.navigator(), &"gpu".into()).is_ok_and(|gpu| !gpu.is_undefined())
        });
        if !has_webgpu {
            return (
                Device::flex(),
                "CPU (burn-flex, wasm; this browser has no WebGPU)".into(),
            );
        }
        match Device::wgpu_options()
            .graphics_api(WgpuBackend::WebGpu)
            .init_with_setup_async()
            .await
        {
            Ok((device, setup)) => {
                let info = setup.adapter.get_info();
                // Browsers often withhold the adapter's name; the fallback flag is always there.
                let kind = if info.device_type == wgpu::DeviceType::Cpu {
                    "software adapter"
                } else {
                    "GPU adapter"
                };
                let adapter = if info.name.is_empty() {
                    kind.to_string()
                } else {
                    format!("{}, {kind}", info.name)
                };
                (device, format!("WebGPU (burn-wgpu on {adapter})"))
            }
            Err(e) => {
                web_sys::console::warn_1(&format!("hashguard: WebGPU unavailable: {e}").into());
                (
                    Device::flex(),
                    "CPU (burn-flex, wasm; WebGPU unavailable, see the console)".into(),
                )
            }
        }
    }

    /// Starts the app on the canvas with id `canvas_id`, with the model and demo data the page
    /// fetched (`model.json`, `model.bpk`, `demo.bin`: separate files, so the module stays
    /// small and the page can show their download's progress).
    #[wasm_bindgen]
    pub async fn start(
        canvas_id: String,
        model_json: Vec<u8>,
        model_bpk: Vec<u8>,
        demo_bin: Vec<u8>,
    ) -> Result<(), JsValue> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or("no document")?;
        let canvas = document
            .get_element_by_id(&canvas_id)
            .ok_or("no canvas with that id")?
            .dyn_into::<web_sys::HtmlCanvasElement>()?;
        let (device, backend) = choose_device().await;
        let engine = Engine::load(&model_json, &model_bpk, &demo_bin, device, backend)
            .map_err(|e| e.to_string());
        let app = DemoApp::new(engine, uploads().clone());
        let runner = eframe::WebRunner::new();
        runner
            .start(
                canvas,
                eframe::WebOptions::default(),
                Box::new(move |cc| {
                    crate::app::install_fonts(&cc.egui_ctx);
                    Ok(Box::new(app))
                }),
            )
            .await?;
        RUNNER.with(|r| *r.borrow_mut() = Some(runner));
        Ok(())
    }
}
