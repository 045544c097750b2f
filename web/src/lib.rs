//! hashguard-web: the browser demo (and desktop window) of hashguard — pick a query, see deep
//! hashing retrieve, attack it, and watch UMCD catch the adversarial image. The computation is
//! `hashguard-core` on Burn; the UI is egui.

pub mod app;
pub mod engine;
pub mod upload;

pub use app::{DemoApp, Uploads};
pub use engine::Engine;

#[cfg(target_arch = "wasm32")]
mod web {
    //! The page's entry points: start the app on a canvas, and hand it uploaded files.

    use std::cell::RefCell;
    use std::sync::{Mutex, OnceLock};

    use burn::prelude::Device;
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

    /// The app's state as JSON (see `DemoApp::summary`), for tests driving the page.
    #[wasm_bindgen]
    pub fn demo_state() -> String {
        RUNNER.with(|r| {
            r.borrow()
                .as_ref()
                .and_then(|runner| runner.app_mut::<DemoApp>().map(|app| app.summary()))
                .unwrap_or_else(|| "null".into())
        })
    }

    /// Chooses the next attack: `method` is pgd, dhta or cw; eps in grey levels (of 255).
    #[wasm_bindgen]
    pub fn demo_choose_attack(
        method: String,
        eps_levels: f32,
        steps: usize,
    ) -> Result<(), JsValue> {
        let method = match method.as_str() {
            "pgd" => crate::engine::AttackMethod::Pgd,
            "dhta" => crate::engine::AttackMethod::Dhta,
            "cw" => crate::engine::AttackMethod::Cw,
            other => return Err(format!("unknown attack {other}: pgd, dhta or cw").into()),
        };
        RUNNER.with(|r| {
            let runner = r.borrow();
            let mut app = runner
                .as_ref()
                .and_then(|runner| runner.app_mut::<DemoApp>())
                .ok_or("the app is not running")?;
            app.set_attack(crate::engine::AttackSpec {
                method,
                eps: eps_levels / 255.0,
                steps,
                target: 0,
            });
            Ok(())
        })
    }

    /// Queries the app with a file the page read (PNG or JPEG bytes).
    #[wasm_bindgen]
    pub fn upload_image(name: String, bytes: Vec<u8>) {
        uploads().lock().expect("upload queue").push((name, bytes));
    }

    /// Starts the app on the canvas with id `canvas_id`.
    #[wasm_bindgen]
    pub async fn start(canvas_id: String) -> Result<(), JsValue> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or("no document")?;
        let canvas = document
            .get_element_by_id(&canvas_id)
            .ok_or("no canvas with that id")?
            .dyn_into::<web_sys::HtmlCanvasElement>()?;
        let engine = Engine::embedded(Device::flex(), "CPU (burn-flex, wasm)".into())
            .map_err(|e| e.to_string());
        let app = DemoApp::new(engine, uploads().clone());
        let runner = eframe::WebRunner::new();
        runner
            .start(
                canvas,
                eframe::WebOptions::default(),
                Box::new(move |_cc| Ok(Box::new(app))),
            )
            .await?;
        RUNNER.with(|r| *r.borrow_mut() = Some(runner));
        Ok(())
    }
}
