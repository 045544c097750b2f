//! The egui app: pick a query (gallery or your own image), see what deep hashing retrieves,
//! attack it step by step, and watch UMCD's three criteria judge the benign and the
//! adversarial image. [`DemoState`] holds and computes the demo; `panels` draws it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eframe::egui;
use egui::{Color32, TextureHandle, vec2};
use hashguard_core::experiments::{AttackKind, AttackSpec};

use crate::engine::Engine;

mod fonts;
mod panels;
mod state;
mod sweep;
mod umcd;

pub use fonts::install_fonts;
pub use state::{Adversarial, DemoState, PendingQuery, Query, Running, Stage};
pub use sweep::{SWEEP_LEVELS, Sweep, SweepPoint};

/// Files handed to the app from outside egui (the page's file input), drained each frame.
pub type Uploads = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The demo app: its state and what drawing it keeps (textures, the button's place, timings).
pub struct DemoApp {
    state: DemoState,
    uploads: Uploads,
    textures: HashMap<String, TextureHandle>,
    /// The state's revision the cached query/adversarial textures belong to.
    drawn_revision: u64,
    /// Where "Run attack" was drawn last frame (for the browser test's click).
    run_button: Option<egui::Rect>,
    /// Frames drawn while an attack ran, and the milliseconds `ui()` took over them.
    ui_ms: (usize, f64),
    /// The plots drawn last frame: name and rectangle (for the browser test's checks).
    plots: Vec<(String, egui::Rect)>,
    /// Where each match (of the query, then of the adversarial image) was drawn last frame.
    matches: Vec<egui::Rect>,
}

impl DemoApp {
    /// An app around a loaded engine (or the reason it failed to load, shown in the window).
    pub fn new(engine: Result<Engine, String>, uploads: Uploads) -> Self {
        Self {
            state: DemoState::new(engine),
            uploads,
            textures: HashMap::new(),
            drawn_revision: 0,
            run_button: None,
            ui_ms: (0, 0.0),
            plots: Vec::new(),
            matches: Vec::new(),
        }
    }

    /// The demo's state.
    pub fn demo(&self) -> &DemoState {
        &self.state
    }

    /// The demo's state, to change.
    pub fn demo_mut(&mut self) -> &mut DemoState {
        &mut self.state
    }

    /// Chooses the attack to run next.
    pub fn set_attack(&mut self, spec: AttackSpec) {
        self.state.set_attack(spec);
    }

    /// What the app shows, for the browser end-to-end test: backend, query, retrieved database
    /// images, verdicts, attack progress and the "Run attack" button's rectangle in points.
    pub fn summary(&self) -> Summary {
        let (retrieved, adversarial_retrieved) = self.state.retrieved();
        let (benign_flagged, adversarial_flagged) = self.state.verdicts();
        Summary {
            backend: self.state.backend(),
            query: self.state.query.as_ref().map(|q| q.name.clone()),
            retrieved,
            criteria: self.state.query.as_ref().map(|q| q.analysis.criteria),
            query_ms: self.state.query.as_ref().map(|q| q.analysis.ms),
            adversarial_retrieved,
            benign_flagged,
            adversarial_flagged,
            attacking: self.state.attacking(),
            busy: self.state.busy(),
            progress: self.state.attack.as_ref().map(Running::progress),
            run_button: self
                .run_button
                .map(|r| [r.min.x, r.min.y, r.max.x, r.max.y]),
            message: self.state.message.clone(),
            attack_timing: self.state.last_timing.map(|t| AttackTiming {
                slices: t.slices,
                steps_ms_per_slice: t.steps_ms / t.slices.max(1) as f64,
                read_ms_per_slice: t.read_ms / t.slices.max(1) as f64,
            }),
            ui_ms_per_busy_frame: self.ui_ms.1 / self.ui_ms.0.max(1) as f64,
            plots: (self.plots.iter())
                .map(|(name, r)| PlotRect {
                    name: name.clone(),
                    rect: [r.min.x, r.min.y, r.max.x, r.max.y],
                })
                .collect(),
            matches: (self.matches.iter())
                .map(|r| [r.min.x, r.min.y, r.max.x, r.max.y])
                .collect(),
            sweep: self.sweep_summary(),
            sweeping: self.state.sweeping(),
        }
    }

    /// The finished sweep's rows, for the browser test.
    fn sweep_summary(&self) -> Vec<SweepSummary> {
        let Some(sweep) = &self.state.sweep else {
            return Vec::new();
        };
        self.sweep_rows(sweep)
            .into_iter()
            .map(|r| SweepSummary {
                eps_levels: r.eps,
                flipped: r.flipped,
                damage: r.damage,
                flagged: r.flagged,
            })
            .collect()
    }
}

/// A plot on the page and where it was drawn (points, in the window's coordinates).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PlotRect {
    /// "C1", "C2", "C3", "ROC" or "sweep".
    pub name: String,
    /// min x, min y, max x, max y.
    pub rect: [f32; 4],
}

/// One row of a finished ε sweep, as the page shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SweepSummary {
    /// ε in grey levels (0: the clean query).
    pub eps_levels: f64,
    /// Code bits flipped.
    pub flipped: usize,
    /// Share of the ten matches damaged.
    pub damage: f64,
    /// UMCD flags it at the slider's rate.
    pub flagged: bool,
}

/// Where a finished attack's time went, per slice.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct AttackTiming {
    /// Slices run.
    pub slices: usize,
    /// Milliseconds recording (or computing) steps, per slice.
    pub steps_ms_per_slice: f64,
    /// Milliseconds awaiting the live code, per slice.
    pub read_ms_per_slice: f64,
}

/// What the app shows (`demo_state()` in the page returns it as JSON).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The backend line.
    pub backend: String,
    /// The query's name.
    pub query: Option<String>,
    /// Database images retrieved for the query.
    pub retrieved: Vec<usize>,
    /// The query's C1, C2, C3.
    pub criteria: Option<[f32; 3]>,
    /// Milliseconds the query's encode, search and criteria took.
    pub query_ms: Option<f64>,
    /// Database images retrieved for the adversarial image.
    pub adversarial_retrieved: Vec<usize>,
    /// UMCD's verdict on the query.
    pub benign_flagged: Option<bool>,
    /// UMCD's verdict on the adversarial image.
    pub adversarial_flagged: Option<bool>,
    /// An attack is running.
    pub attacking: bool,
    /// Device work is under way.
    pub busy: bool,
    /// The running attack's share done.
    pub progress: Option<f32>,
    /// The "Run attack" button's rectangle (points): min x, min y, max x, max y.
    pub run_button: Option<[f32; 4]>,
    /// The last error or notice.
    pub message: Option<String>,
    /// The last finished attack's timing.
    pub attack_timing: Option<AttackTiming>,
    /// Milliseconds `ui()` took per frame while an attack ran.
    pub ui_ms_per_busy_frame: f64,
    /// The plots drawn last frame.
    pub plots: Vec<PlotRect>,
    /// Where each match was drawn last frame (points: min x, min y, max x, max y), the
    /// query's ten, then the adversarial image's.
    pub matches: Vec<[f32; 4]>,
    /// The finished ε sweep: the clean query, then each radius.
    pub sweep: Vec<SweepSummary>,
    /// An ε sweep is running.
    pub sweeping: bool,
}

impl eframe::App for DemoApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if let Err(e) = &self.state.engine {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.heading("hashguard could not start");
                ui.label(e.as_str());
            });
            return;
        }
        let frame_start = web_time::Instant::now();
        let mut plots = Vec::new();
        self.matches.clear();
        self.drain_uploads(&ctx);
        self.state.poll();
        if self.state.revision != self.drawn_revision {
            for key in ["query", "adversarial", "perturbation"] {
                self.textures.remove(key);
            }
            self.drawn_revision = self.state.revision;
        }
        if self.state.busy() {
            ctx.request_repaint();
        } else if cfg!(target_arch = "wasm32") {
            // Poll the page's file input.
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.heading("hashguard");
                ui.label("deep hashing retrieval, adversarial attacks and UMCD detection");
                ui.separator();
                ui.label(format!("Backend: {}", self.state.backend()));
                ui.separator();
                let changed = ui
                    .add(
                        egui::Slider::new(&mut self.state.fpr_percent, 1.0..=20.0)
                            .text("UMCD false-positive rate %"),
                    )
                    .changed();
                if changed {
                    self.state.set_fpr();
                }
            });
            if let Some(m) = &self.state.message {
                ui.colored_label(Color32::from_rgb(200, 50, 50), m);
            }
            if let Some(p) = &self.state.pending_query {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("retrieving {} …", p.name));
                });
            }
        });
        egui::Panel::left("gallery").show(ui, |ui| self.gallery_panel(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                let Some(q) = self.state.query.as_ref() else {
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
                ui.add(egui::Image::new(&tex).fit_to_exact_size(vec2(112.0, 112.0)));
                if label.is_none() {
                    let shape = self.state.engine.as_ref().map(|e| e.shape()).ok();
                    if let Some(shape) = shape {
                        ui.small(format!(
                            "Your image as the model sees it: {}x{} {}, resized from the file.",
                            shape.width,
                            shape.height,
                            if shape.channels == 1 {
                                "greyscale"
                            } else {
                                "colour"
                            }
                        ));
                    }
                }
                ui.label("Top-10 retrieved (Hamming distance d; green = same class, red = other):");
                self.neighbours_row(ui, "query-matches", &analysis, label);
                ui.separator();
                self.attack_panel(ui);
                if let Some(adv) = &self.state.adversarial {
                    let (adv_pixels, adv_analysis, method) =
                        (adv.pixels.clone(), adv.analysis.clone(), adv.method);
                    ui.separator();
                    let name = match method {
                        AttackKind::Pgd => "untargeted PGD",
                        AttackKind::Dhta => "targeted DHTA",
                        AttackKind::Cw => "untargeted CW",
                        other => other.name(),
                    };
                    ui.heading(format!("After the attack ({name})"));
                    let adv_tex = self.texture(&ctx, "adversarial", || adv_pixels.clone());
                    let pert = self.texture(&ctx, "perturbation", || {
                        adv_pixels
                            .iter()
                            .zip(&pixels)
                            .map(|(a, c)| 0.5 + 10.0 * (a - c))
                            .collect()
                    });
                    let shown = [
                        (&tex, "original"),
                        (&adv_tex, "adversarial"),
                        (&pert, "perturbation x10"),
                    ];
                    panels::cells(ui, "adversarial-images", shown.len(), 112.0, |ui, i| {
                        ui.vertical(|ui| {
                            let (t, caption) = shown[i];
                            ui.add(egui::Image::new(t).fit_to_exact_size(vec2(112.0, 112.0)));
                            ui.small(caption);
                        });
                    });
                    ui.label("Top-10 retrieved for the adversarial image:");
                    self.neighbours_row(ui, "adversarial-matches", &adv_analysis, label);
                }
                plots.extend(self.sweep_section(ui).map(|r| ("sweep".to_string(), r)));
                ui.separator();
                let adversarial = self.state.adversarial.as_ref().map(|a| a.analysis.clone());
                plots.extend(self.umcd_section(ui, &analysis, adversarial.as_ref()));
            });
        });
        self.plots = plots;
        if self.state.attacking() {
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
mod tests;
