//! The egui app: pick a query (gallery or your own image), see what deep hashing retrieves,
//! attack it step by step, and watch UMCD's three criteria judge the benign and the
//! adversarial image. Device work runs as tasks polled from `ui()`: attacks advance in slices
//! of ~30 ms, and on WebGPU every read is awaited on the page's event loop.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use eframe::egui;
use egui::{Color32, RichText, TextureHandle, TextureOptions, vec2};
use hashguard_core::detectors::Calibration;
use web_time::Duration;

use crate::engine::{Analysis, Attack, AttackMethod, AttackSpec, Engine, SliceTiming, Verdict};
use crate::task::Task;
use crate::upload::decode_grey;

/// Longest slice of attack work per frame.
const FRAME_BUDGET: Duration = Duration::from_millis(30);

/// Files handed to the app from outside egui (the page's file input), drained each frame.
pub type Uploads = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The query being studied.
struct Query {
    name: String,
    label: Option<usize>,
    pixels: Vec<f32>,
    analysis: Analysis,
}

/// A query whose analysis is still being computed.
struct PendingQuery {
    name: String,
    label: Option<usize>,
    pixels: Vec<f32>,
    analysis: Task<hashguard_core::Result<Analysis>>,
}

/// The finished attack's image and what retrieval and UMCD make of it.
struct Adversarial {
    method: AttackMethod,
    pixels: Vec<f32>,
    analysis: Analysis,
}

/// Where a running attack is: between slices, in a slice, or reading its result.
enum Stage {
    Ready(Box<Attack>),
    Stepping(Task<(Box<Attack>, hashguard_core::Result<()>)>),
    Finishing(Task<hashguard_core::Result<(Vec<f32>, Analysis)>>),
}

/// A running attack and the progress shown for it.
struct Running {
    spec: AttackSpec,
    timing: SliceTiming,
    steps_done: usize,
    hamming: u32,
    to_anchor: Option<u32>,
    stage: Stage,
}

/// The demo app.
pub struct DemoApp {
    engine: Result<Rc<Engine>, String>,
    calibration: Option<Calibration>,
    uploads: Uploads,
    textures: HashMap<String, TextureHandle>,
    query: Option<Query>,
    pending_query: Option<PendingQuery>,
    spec: AttackSpec,
    eps_levels: f32,
    fpr_percent: f64,
    attack: Option<Running>,
    adversarial: Option<Adversarial>,
    message: Option<String>,
    /// Where "Run attack" was drawn last frame (for the browser test's click).
    run_button: Option<egui::Rect>,
    /// Where the last finished attack's time went, slice by slice.
    last_timing: Option<SliceTiming>,
    /// Frames drawn while an attack ran, and the milliseconds `ui()` took over them.
    ui_ms: (usize, f64),
}

impl DemoApp {
    /// An app around a loaded engine (or the reason it failed to load, shown in the window).
    pub fn new(engine: Result<Engine, String>, uploads: Uploads) -> Self {
        let (engine, calibration) = match engine {
            Ok(e) => match e.calibration(0.05) {
                Ok(c) => (Ok(Rc::new(e)), Some(c)),
                Err(err) => (Err(err.to_string()), None),
            },
            Err(err) => (Err(err), None),
        };
        let mut app = Self {
            engine,
            calibration,
            uploads,
            textures: HashMap::new(),
            query: None,
            pending_query: None,
            spec: AttackSpec {
                method: AttackMethod::Pgd,
                eps: 8.0 / 255.0,
                steps: 100,
                target: 0,
            },
            eps_levels: 8.0,
            fpr_percent: 5.0,
            attack: None,
            adversarial: None,
            message: None,
            run_button: None,
            last_timing: None,
            ui_ms: (0, 0.0),
        };
        // Start with the first gallery image so retrieval shows at once.
        if app.engine.is_ok() {
            app.select_gallery(0);
        }
        app
    }

    /// The backend line shown at the top.
    pub fn backend(&self) -> String {
        match &self.engine {
            Ok(e) => e.backend.clone(),
            Err(_) => "not loaded".into(),
        }
    }

    /// Queries with gallery image `i`.
    pub fn select_gallery(&mut self, i: usize) {
        let Ok(engine) = &self.engine else { return };
        let g = &engine.bundle.gallery;
        if i >= g.len() {
            return;
        }
        let pixels = g.pixels_f32(&[i]);
        let label = g.labels[i].primary();
        let name = format!(
            "gallery #{} ({})",
            i + 1,
            label.map_or("?", |c| g.class_names[c].as_str())
        );
        self.set_query(name, label, pixels);
    }

    /// Queries with an uploaded file's bytes.
    pub fn upload(&mut self, name: &str, bytes: &[u8]) {
        let Ok(engine) = &self.engine else { return };
        let s = engine.shape();
        match decode_grey(bytes, s.width, s.height) {
            Ok(pixels) => self.set_query(format!("upload: {name}"), None, pixels),
            Err(e) => self.message = Some(format!("{name}: {e}")),
        }
    }

    fn set_query(&mut self, name: String, label: Option<usize>, pixels: Vec<f32>) {
        let Ok(engine) = &self.engine else { return };
        let (engine, input) = (engine.clone(), pixels.clone());
        self.pending_query = Some(PendingQuery {
            name,
            label,
            pixels,
            analysis: Task::spawn(async move { engine.analyse(&input).await }),
        });
        self.poll();
    }

    /// Collects finished tasks and starts the next slice of a running attack (one per call,
    /// so a frame does at most one slice of work).
    pub fn poll(&mut self) {
        if let Some(p) = &self.pending_query
            && let Some(result) = p.analysis.take()
        {
            let p = self.pending_query.take().expect("checked above");
            self.query_ready(p.name, p.label, p.pixels, result);
        }
        let (Ok(engine), Some(mut run)) = (&self.engine, self.attack.take()) else {
            return;
        };
        run.stage = match run.stage {
            Stage::Stepping(task) => match task.take() {
                None => Stage::Stepping(task),
                Some((_, Err(e))) => {
                    self.message = Some(format!("attack failed: {e}"));
                    return;
                }
                Some((attack, Ok(()))) => {
                    run.steps_done = attack.steps_done();
                    run.hamming = attack.hamming;
                    run.to_anchor = attack.to_anchor;
                    run.timing = attack.timing;
                    Stage::Ready(attack)
                }
            },
            Stage::Finishing(task) => match task.take() {
                None => Stage::Finishing(task),
                Some(Ok((pixels, analysis))) => {
                    self.last_timing = Some(run.timing);
                    self.adversarial = Some(Adversarial {
                        method: run.spec.method,
                        pixels,
                        analysis,
                    });
                    self.textures.remove("adversarial");
                    self.textures.remove("perturbation");
                    return;
                }
                Some(Err(e)) => {
                    self.message = Some(format!("attack failed: {e}"));
                    return;
                }
            },
            ready => ready,
        };
        if let Stage::Ready(attack) = run.stage {
            let engine = engine.clone();
            run.stage = if attack.finished() {
                Stage::Finishing(Task::spawn(async move {
                    let pixels = attack.result().await?;
                    let analysis = engine.analyse(&pixels).await?;
                    Ok((pixels, analysis))
                }))
            } else {
                let mut attack = attack;
                Stage::Stepping(Task::spawn(async move {
                    let done = attack.advance(&engine, FRAME_BUDGET).await;
                    (attack, done)
                }))
            };
        }
        self.attack = Some(run);
    }

    /// Whether device work is under way (an analysis or an attack).
    pub fn busy(&self) -> bool {
        self.pending_query.is_some() || self.attack.is_some()
    }

    fn query_ready(
        &mut self,
        name: String,
        label: Option<usize>,
        pixels: Vec<f32>,
        result: hashguard_core::Result<Analysis>,
    ) {
        let Ok(engine) = &self.engine else { return };
        match result {
            Ok(analysis) => {
                let classes = engine.bundle.database.num_classes();
                if Some(self.spec.target) == label {
                    self.spec.target = (self.spec.target + 1) % classes;
                }
                self.query = Some(Query {
                    name,
                    label,
                    pixels,
                    analysis,
                });
                self.attack = None;
                self.adversarial = None;
                self.textures.remove("query");
                self.textures.remove("adversarial");
                self.textures.remove("perturbation");
                self.message = None;
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    /// Chooses the attack to run next.
    pub fn set_attack(&mut self, spec: AttackSpec) {
        self.eps_levels = spec.eps * 255.0;
        self.spec = spec;
    }

    /// Starts the chosen attack on the current query.
    pub fn start_attack(&mut self) {
        let (Ok(engine), Some(q)) = (&self.engine, &self.query) else {
            return;
        };
        self.spec.eps = self.eps_levels / 255.0;
        match engine.start_attack(&q.pixels, &q.analysis, self.spec) {
            Ok(a) => {
                self.attack = Some(Running {
                    spec: self.spec,
                    timing: SliceTiming::default(),
                    steps_done: 0,
                    hamming: 0,
                    to_anchor: None,
                    stage: Stage::Ready(Box::new(a)),
                });
                self.adversarial = None;
                self.message = None;
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    /// Whether an attack is running.
    pub fn attacking(&self) -> bool {
        self.attack.is_some()
    }

    /// UMCD's verdicts on the benign query and the adversarial image, when there are both.
    pub fn verdicts(&self) -> (Option<bool>, Option<bool>) {
        (
            self.query
                .as_ref()
                .and_then(|q| self.verdict(&q.analysis))
                .map(|v| v.adversarial),
            self.adversarial
                .as_ref()
                .and_then(|a| self.verdict(&a.analysis))
                .map(|v| v.adversarial),
        )
    }

    fn verdict(&self, analysis: &Analysis) -> Option<Verdict> {
        self.calibration.as_ref().map(|c| analysis.verdict(c))
    }

    /// The query's and the adversarial image's ten retrieved database images.
    pub fn retrieved(&self) -> (Vec<usize>, Vec<usize>) {
        let ids = |a: &Analysis| a.neighbours.iter().map(|n| n.index).collect();
        (
            self.query
                .as_ref()
                .map_or_else(Vec::new, |q| ids(&q.analysis)),
            self.adversarial
                .as_ref()
                .map_or_else(Vec::new, |a| ids(&a.analysis)),
        )
    }

    /// A JSON summary of what the app shows, for the browser end-to-end test: backend, query,
    /// retrieved database images, verdicts, attack progress and the "Run attack" button's
    /// rectangle in points.
    pub fn summary(&self) -> String {
        let (benign, adversarial) = self.retrieved();
        let (v_benign, v_adv) = self.verdicts();
        let rect = self
            .run_button
            .map(|r| [r.min.x, r.min.y, r.max.x, r.max.y]);
        serde_json::json!({
            "backend": self.backend(),
            "query": self.query.as_ref().map(|q| q.name.clone()),
            "retrieved": benign,
            "criteria": self.query.as_ref().map(|q| q.analysis.criteria),
            "adversarial_retrieved": adversarial,
            "benign_flagged": v_benign,
            "adversarial_flagged": v_adv,
            "attacking": self.attacking(),
            "busy": self.busy(),
            "progress": self.attack.as_ref().map(Running::progress),
            "run_button": rect,
            "message": self.message,
            "attack_timing": self.last_timing.map(|t| serde_json::json!({
                "slices": t.slices,
                "steps_ms_per_slice": t.steps_ms / t.slices.max(1) as f64,
                "read_ms_per_slice": t.read_ms / t.slices.max(1) as f64,
            })),
            "ui_ms_per_busy_frame": self.ui_ms.1 / self.ui_ms.0.max(1) as f64,
        })
        .to_string()
    }

    /// The last error or notice shown to the user.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    fn set_fpr(&mut self) {
        let Ok(engine) = &self.engine else { return };
        match engine.calibration(self.fpr_percent / 100.0) {
            Ok(c) => self.calibration = Some(c),
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    fn drain_uploads(&mut self, ctx: &egui::Context) {
        let pending: Vec<_> = std::mem::take(&mut *self.uploads.lock().expect("upload queue"));
        for (name, bytes) in pending {
            self.upload(&name, &bytes);
        }
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        for file in dropped {
            let name = file.path().file_name().map_or_else(
                || "dropped file".into(),
                |n| n.to_string_lossy().into_owned(),
            );
            #[cfg(not(target_arch = "wasm32"))]
            match file.bytes() {
                Ok(bytes) => self.upload(&name, &bytes),
                Err(e) => self.message = Some(format!("{name}: {e}")),
            }
            #[cfg(target_arch = "wasm32")]
            {
                let queue = self.uploads.clone();
                let ctx = ctx.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let bytes = file.bytes_async().await.unwrap_or_default();
                    queue.lock().expect("upload queue").push((name, bytes));
                    ctx.request_repaint();
                });
            }
        }
    }

    fn texture(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        pixels: impl FnOnce() -> Vec<f32>,
    ) -> TextureHandle {
        let shape = match &self.engine {
            Ok(e) => e.shape(),
            Err(_) => unreachable!("textures are only drawn with a loaded engine"),
        };
        self.textures
            .entry(key.to_string())
            .or_insert_with(|| {
                let bytes: Vec<u8> = pixels()
                    .iter()
                    .take(shape.height * shape.width)
                    .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                    .collect();
                ctx.load_texture(
                    key,
                    egui::ColorImage::from_gray([shape.width, shape.height], &bytes),
                    TextureOptions::NEAREST,
                )
            })
            .clone()
    }

    fn database_texture(&mut self, ctx: &egui::Context, i: usize) -> TextureHandle {
        let key = format!("db{i}");
        let pixels = match &self.engine {
            Ok(e) => e.bundle.database.pixels_f32(&[i]),
            Err(_) => Vec::new(),
        };
        self.texture(ctx, &key, || pixels)
    }

    fn gallery_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Queries");
        ui.label("Pick an image, or drop a PNG/JPEG of your own onto the window.");
        let Ok(engine) = &self.engine else { return };
        let n = engine.bundle.gallery.len();
        let names: Vec<String> = (0..n)
            .map(|i| {
                engine.bundle.gallery.labels[i]
                    .primary()
                    .map_or("?".into(), |c| engine.bundle.gallery.class_names[c].clone())
            })
            .collect();
        let ctx = ui.ctx().clone();
        let mut chosen = None;
        egui::Grid::new("gallery")
            .spacing(vec2(4.0, 4.0))
            .show(ui, |ui| {
                for (i, name) in names.iter().enumerate() {
                    let pixels = match &self.engine {
                        Ok(e) => e.bundle.gallery.pixels_f32(&[i]),
                        Err(_) => Vec::new(),
                    };
                    let tex = self.texture(&ctx, &format!("g{i}"), || pixels);
                    let button = egui::Button::image(
                        egui::Image::new(&tex).fit_to_exact_size(vec2(48.0, 48.0)),
                    );
                    if ui.add(button).on_hover_text(name).clicked() {
                        chosen = Some(i);
                    }
                    if i % 5 == 4 {
                        ui.end_row();
                    }
                }
            });
        if let Some(i) = chosen {
            self.select_gallery(i);
        }
    }

    fn neighbours_row(
        &mut self,
        ui: &mut egui::Ui,
        analysis: &Analysis,
        query_label: Option<usize>,
    ) {
        let ctx = ui.ctx().clone();
        let (labels, names) = match &self.engine {
            Ok(e) => (
                e.bundle.database.labels.clone(),
                e.bundle.database.class_names.clone(),
            ),
            Err(_) => return,
        };
        ui.horizontal_wrapped(|ui| {
            for n in &analysis.neighbours {
                let tex = self.database_texture(&ctx, n.index);
                let class = labels[n.index].primary();
                let same = query_label.is_some() && class == query_label;
                let colour = if query_label.is_none() {
                    Color32::GRAY
                } else if same {
                    Color32::from_rgb(40, 160, 60)
                } else {
                    Color32::from_rgb(200, 50, 50)
                };
                ui.vertical(|ui| {
                    egui::Frame::new()
                        .stroke(egui::Stroke::new(2.0, colour))
                        .show(ui, |ui| {
                            ui.add(egui::Image::new(&tex).fit_to_exact_size(vec2(48.0, 48.0)));
                        });
                    ui.small(format!("d = {}", n.distance));
                    ui.small(class.map_or("?", |c| names[c].as_str()));
                });
            }
        });
    }

    fn attack_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Attack");
        let classes: Vec<String> = match &self.engine {
            Ok(e) => e.bundle.database.class_names.clone(),
            Err(_) => return,
        };
        let running = self.attack.is_some();
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal(|ui| {
                ui.radio_value(&mut self.spec.method, AttackMethod::Pgd, "Untargeted PGD");
                ui.radio_value(&mut self.spec.method, AttackMethod::Dhta, "Targeted DHTA");
                ui.radio_value(&mut self.spec.method, AttackMethod::Cw, "Untargeted CW");
            });
            if self.spec.method != AttackMethod::Cw {
                ui.add(
                    egui::Slider::new(&mut self.eps_levels, 1.0..=32.0)
                        .step_by(1.0)
                        .text("eps (/255)"),
                );
            }
            ui.add(egui::Slider::new(&mut self.spec.steps, 10..=500).text("steps"));
            if self.spec.method == AttackMethod::Dhta {
                let query_label = self.query.as_ref().and_then(|q| q.label);
                egui::ComboBox::from_label("target class")
                    .selected_text(classes[self.spec.target].clone())
                    .show_ui(ui, |ui| {
                        for (c, name) in classes.iter().enumerate() {
                            if Some(c) != query_label {
                                ui.selectable_value(&mut self.spec.target, c, name);
                            }
                        }
                    });
            }
        });
        ui.horizontal(|ui| {
            let run = ui.add_enabled(
                !running && self.query.is_some(),
                egui::Button::new("Run attack"),
            );
            self.run_button = Some(run.rect);
            if run.clicked() {
                self.start_attack();
            }
            if running && ui.button("Stop").clicked() {
                self.attack = None;
            }
        });
        if let Some(a) = &self.attack {
            let target = a
                .to_anchor
                .map_or(String::new(), |t| format!(", to the target anchor {t}"));
            ui.add(
                egui::ProgressBar::new(a.progress())
                    .show_percentage()
                    .text(format!(
                        "step {}/{}: Hamming distance to the original code {}{target}",
                        a.steps_done, a.spec.steps, a.hamming
                    )),
            );
        }
    }

    fn umcd_panel(ui: &mut egui::Ui, title: &str, a: &Analysis, verdict: Option<Verdict>) {
        let Some(v) = verdict else { return };
        ui.vertical(|ui| {
            ui.strong(title);
            let names = [
                "C1 top-k distance",
                "C2 quantisation",
                "C3 blur disagreement",
            ];
            let flagged_high = [true, false, true];
            for i in 0..3 {
                let (value, t) = (a.criteria[i], v.thresholds[i]);
                let side = if flagged_high[i] { "≥" } else { "≤" };
                let fill = (value / (2.0 * t.abs().max(1e-6))).clamp(0.0, 1.0);
                let colour = if v.fired[i] {
                    Color32::from_rgb(200, 50, 50)
                } else {
                    Color32::from_rgb(40, 160, 60)
                };
                ui.add(
                    egui::ProgressBar::new(fill)
                        .fill(colour)
                        .desired_width(360.0)
                        .text(format!(
                            "{}: {} (flags {side} {})",
                            names[i],
                            num(value),
                            num(t)
                        )),
                );
            }
            let fired: Vec<&str> = ["C1", "C2", "C3"]
                .iter()
                .zip(v.fired)
                .filter_map(|(n, f)| f.then_some(*n))
                .collect();
            if v.adversarial {
                ui.label(
                    RichText::new(format!("UMCD: ADVERSARIAL ({} fired)", fired.join(", ")))
                        .color(Color32::from_rgb(200, 50, 50))
                        .strong(),
                );
            } else {
                ui.label(
                    RichText::new("UMCD: benign")
                        .color(Color32::from_rgb(40, 160, 60))
                        .strong(),
                );
            }
        });
    }
}

/// A criterion value for display: three decimals, or scientific notation when tiny.
fn num(v: f32) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}

impl Running {
    fn progress(&self) -> f32 {
        self.steps_done as f32 / self.spec.steps.max(1) as f32
    }
}

impl eframe::App for DemoApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if let Err(e) = &self.engine {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.heading("hashguard could not start");
                ui.label(e.as_str());
            });
            return;
        }
        let frame_start = web_time::Instant::now();
        self.drain_uploads(&ctx);
        self.poll();
        if self.busy() {
            ctx.request_repaint();
        } else if cfg!(target_arch = "wasm32") {
            // Poll the page's file input.
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("hashguard");
                ui.label("deep hashing retrieval, adversarial attacks and UMCD detection");
                ui.separator();
                ui.label(format!("Backend: {}", self.backend()));
                ui.separator();
                let changed = ui
                    .add(
                        egui::Slider::new(&mut self.fpr_percent, 1.0..=20.0)
                            .text("UMCD false-positive rate %"),
                    )
                    .changed();
                if changed {
                    self.set_fpr();
                }
            });
            if let Some(m) = &self.message {
                ui.colored_label(Color32::from_rgb(200, 50, 50), m);
            }
            if let Some(p) = &self.pending_query {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("retrieving {} …", p.name));
                });
            }
        });
        egui::Panel::left("gallery").show(ui, |ui| self.gallery_panel(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                let Some(q) = self.query.as_ref() else {
                    ui.label("Pick a query image on the left.");
                    return;
                };
                let (name, label, analysis, pixels) = (
                    q.name.clone(),
                    q.label,
                    q.analysis.clone(),
                    q.pixels.clone(),
                );
                ui.heading(format!("Query: {name}"));
                let tex = self.texture(&ctx, "query", || pixels.clone());
                ui.horizontal(|ui| {
                    ui.add(egui::Image::new(&tex).fit_to_exact_size(vec2(112.0, 112.0)));
                    ui.vertical(|ui| {
                        ui.label("Top-10 retrieved (Hamming distance d; green = same class):");
                        self.neighbours_row(ui, &analysis, label);
                    });
                });
                ui.separator();
                self.attack_panel(ui);
                if let Some(adv) = &self.adversarial {
                    let (adv_pixels, adv_analysis, method) =
                        (adv.pixels.clone(), adv.analysis.clone(), adv.method);
                    ui.separator();
                    ui.heading(format!("After the attack ({method:?})"));
                    let adv_tex = self.texture(&ctx, "adversarial", || adv_pixels.clone());
                    let pert = self.texture(&ctx, "perturbation", || {
                        adv_pixels
                            .iter()
                            .zip(&pixels)
                            .map(|(a, c)| 0.5 + 10.0 * (a - c))
                            .collect()
                    });
                    ui.horizontal(|ui| {
                        for (t, caption) in [
                            (&tex, "original"),
                            (&adv_tex, "adversarial"),
                            (&pert, "perturbation x10"),
                        ] {
                            ui.vertical(|ui| {
                                ui.add(egui::Image::new(t).fit_to_exact_size(vec2(112.0, 112.0)));
                                ui.small(caption);
                            });
                        }
                        ui.vertical(|ui| {
                            ui.label("Top-10 retrieved for the adversarial image:");
                            self.neighbours_row(ui, &adv_analysis, label);
                        });
                    });
                }
                ui.separator();
                ui.heading("UMCD detection");
                ui.horizontal(|ui| {
                    Self::umcd_panel(ui, "Benign query", &analysis, self.verdict(&analysis));
                    if let Some(adv) = &self.adversarial {
                        ui.separator();
                        let verdict = self.verdict(&adv.analysis);
                        Self::umcd_panel(ui, "Adversarial image", &adv.analysis, verdict);
                    }
                });
            });
        });
        if self.attacking() {
            self.ui_ms.0 += 1;
            self.ui_ms.1 += frame_start.elapsed().as_secs_f64() * 1e3;
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(&mut *self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::Device;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    fn app() -> DemoApp {
        DemoApp::new(
            Engine::embedded(Device::flex(), "CPU (burn-flex)".into()).map_err(|e| e.to_string()),
            Uploads::default(),
        )
    }

    #[test]
    fn the_first_gallery_image_is_retrieved_at_start() {
        let app = app();
        let (benign, _) = app.retrieved();
        assert_eq!(benign.len(), 10);
        assert_eq!(app.verdicts(), (Some(false), None));
    }

    #[test]
    fn clicking_run_attack_steps_pgd_until_umcd_flags_it() {
        let mut harness = Harness::builder()
            .with_size(vec2(1200.0, 900.0))
            .build_eframe(|_| app());
        harness.run_steps(2);
        harness.state_mut().set_attack(AttackSpec {
            method: AttackMethod::Pgd,
            eps: 32.0 / 255.0,
            steps: 100,
            target: 0,
        });
        harness.get_by_label("Run attack").click();
        harness.run_steps(2);
        assert!(harness.state().attacking(), "the attack runs across frames");
        for _ in 0..2000 {
            if !harness.state().attacking() {
                break;
            }
            harness.run_steps(1);
        }
        assert!(!harness.state().attacking());
        let (benign, adv) = harness.state().retrieved();
        assert_ne!(benign, adv, "the attack changed what is retrieved");
        assert_eq!(
            harness.state().verdicts().1,
            Some(true),
            "UMCD flags the adversarial image"
        );
        harness.get_by_label_contains("UMCD: ADVERSARIAL");
    }

    #[test]
    fn a_bad_upload_is_a_message_not_a_crash() {
        let mut a = app();
        a.upload("notes.txt", b"hello");
        assert!(a.message().unwrap().contains("PNG or JPEG"));
        assert_eq!(a.retrieved().0.len(), 10, "the previous query stays");
    }
}
