//! What the demo draws: the query gallery, retrieved neighbours, the attack controls with their
//! progress, and UMCD's criteria against their thresholds — each a method on [`DemoApp`] reading
//! its [`DemoState`](super::DemoState).

use eframe::egui;
use egui::{Color32, TextureHandle, TextureOptions, vec2};
use hashguard_core::experiments::AttackKind;

use super::DemoApp;
use crate::engine::Analysis;

impl DemoApp {
    pub(super) fn drain_uploads(&mut self, ctx: &egui::Context) {
        let pending: Vec<_> = std::mem::take(&mut *self.uploads.lock().expect("upload queue"));
        for (name, bytes) in pending {
            self.state.upload(&name, &bytes);
        }
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        for file in dropped {
            let name = file.path().file_name().map_or_else(
                || "dropped file".into(),
                |n| n.to_string_lossy().into_owned(),
            );
            #[cfg(not(target_arch = "wasm32"))]
            match file.bytes() {
                Ok(bytes) => self.state.upload(&name, &bytes),
                Err(e) => self.state.message = Some(format!("{name}: {e}")),
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

    pub(super) fn texture(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        pixels: impl FnOnce() -> Vec<f32>,
    ) -> TextureHandle {
        let shape = match &self.state.engine {
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

    pub(super) fn database_texture(&mut self, ctx: &egui::Context, i: usize) -> TextureHandle {
        let key = format!("db{i}");
        let pixels = match &self.state.engine {
            Ok(e) => e.bundle.database.pixels_f32(&[i]),
            Err(_) => Vec::new(),
        };
        self.texture(ctx, &key, || pixels)
    }

    pub(super) fn gallery_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Queries");
        ui.label("Pick an image, or drop a PNG/JPEG of your own onto the window.");
        let Ok(engine) = &self.state.engine else {
            return;
        };
        let n = engine.bundle.gallery.len();
        let names: Vec<String> = (0..n)
            .map(|i| {
                engine.bundle.gallery.labels[i]
                    .primary()
                    .map_or("?".into(), |c| engine.bundle.gallery.class_names[c].clone())
            })
            .collect();
        let ctx = ui.ctx().clone();
        // Five columns on a desktop window, three on a narrow one (more room for the results).
        let columns = if ctx.content_rect().width() >= 1000.0 {
            5
        } else {
            3
        };
        let mut chosen = None;
        egui::Grid::new("gallery")
            .spacing(vec2(4.0, 4.0))
            .show(ui, |ui| {
                for (i, name) in names.iter().enumerate() {
                    let pixels = match &self.state.engine {
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
                    if i % columns == columns - 1 {
                        ui.end_row();
                    }
                }
            });
        if let Some(i) = chosen {
            self.state.select_gallery(i);
        }
    }

    /// The ten matches of `analysis` as framed thumbnails (green: the query's class, red:
    /// another) with distance and class, in a grid `id` that fits the window; records where
    /// each was drawn.
    pub(super) fn neighbours_row(
        &mut self,
        ui: &mut egui::Ui,
        id: &str,
        analysis: &Analysis,
        query_label: Option<usize>,
    ) {
        let ctx = ui.ctx().clone();
        let (labels, names) = match &self.state.engine {
            Ok(e) => (
                e.bundle.database.labels.clone(),
                e.bundle.database.class_names.clone(),
            ),
            Err(_) => return,
        };
        let neighbours = &analysis.neighbours;
        cells(ui, id, neighbours.len(), 52.0, |ui, i| {
            let n = &neighbours[i];
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
            let cell = ui.vertical(|ui| {
                egui::Frame::new()
                    .stroke(egui::Stroke::new(2.0, colour))
                    .show(ui, |ui| {
                        ui.add(egui::Image::new(&tex).fit_to_exact_size(vec2(48.0, 48.0)));
                    });
                ui.small(format!("d = {}", n.distance));
                ui.small(class.map_or("?", |c| names[c].as_str()));
            });
            self.matches.push(cell.response.rect);
        });
    }

    pub(super) fn attack_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Attack");
        let classes: Vec<String> = match &self.state.engine {
            Ok(e) => e.bundle.database.class_names.clone(),
            Err(_) => return,
        };
        let running = self.state.attack.is_some();
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.radio_value(&mut self.state.spec.kind, AttackKind::Pgd, "Untargeted PGD");
                ui.radio_value(&mut self.state.spec.kind, AttackKind::Dhta, "Targeted DHTA");
                ui.radio_value(&mut self.state.spec.kind, AttackKind::Cw, "Untargeted CW");
            });
            if self.state.spec.kind != AttackKind::Cw {
                ui.add(
                    egui::Slider::new(&mut self.state.eps_levels, 1.0..=32.0)
                        .step_by(1.0)
                        .text("eps (/255)"),
                );
            }
            ui.add(egui::Slider::new(&mut self.state.spec.steps, 10..=500).text("steps"));
            if self.state.spec.kind == AttackKind::Dhta {
                let query_label = self.state.query.as_ref().and_then(|q| q.label);
                egui::ComboBox::from_label("target class")
                    .selected_text(classes[self.state.spec.target.label.unwrap_or(0)].clone())
                    .show_ui(ui, |ui| {
                        for (c, name) in classes.iter().enumerate() {
                            if Some(c) != query_label {
                                ui.selectable_value(
                                    &mut self.state.spec.target.label,
                                    Some(c),
                                    name,
                                );
                            }
                        }
                    });
            }
        });
        ui.horizontal(|ui| {
            let run = ui.add_enabled(
                !running && self.state.query.is_some(),
                egui::Button::new("Run attack"),
            );
            self.run_button = Some(run.rect);
            if run.clicked() {
                self.state.start_attack();
            }
            let sweepable = self.state.spec.kind != AttackKind::Cw;
            let sweep = ui
                .add_enabled(
                    !running && sweepable && self.state.query.is_some(),
                    egui::Button::new("Sweep ε 1–32/255"),
                )
                .on_hover_text(
                    "Runs the chosen attack at seven radii in one batch and plots the damage \
                     and UMCD's verdict against ε (PGD and DHTA)",
                );
            if sweep.clicked() {
                self.state.start_sweep();
            }
            if running && ui.button("Stop").clicked() {
                self.state.attack = None;
            }
        });
        if let Some(a) = &self.state.attack {
            let target = a
                .to_anchor
                .map_or(String::new(), |t| format!(", to the target anchor {t}"));
            let what = match &a.sweep {
                Some(levels) => format!(
                    "ε sweep over {} radii, step {}/{}: at {}/255 the Hamming distance to the \
                     original code is {}{target}",
                    levels.len(),
                    a.steps_done,
                    a.spec.steps,
                    levels.last().copied().unwrap_or(0.0),
                    a.hamming
                ),
                None => format!(
                    "step {}/{}: Hamming distance to the original code {}{target}",
                    a.steps_done, a.spec.steps, a.hamming
                ),
            };
            ui.add(
                egui::ProgressBar::new(a.progress())
                    .show_percentage()
                    .text(what),
            );
        }
    }
}

/// Lays `n` cells of about `width` points out in rows that fit the width available (a grid,
/// so a narrow window gets more rows instead of a row running off its edge); `add` draws cell
/// `i`.
pub(super) fn cells(
    ui: &mut egui::Ui,
    id: &str,
    n: usize,
    width: f32,
    mut add: impl FnMut(&mut egui::Ui, usize),
) {
    let spacing = 6.0;
    let per_row = (((ui.available_width() + spacing) / (width + spacing)).floor() as usize)
        .clamp(1, n.max(1));
    egui::Grid::new(id)
        .spacing(vec2(spacing, spacing))
        .show(ui, |ui| {
            for i in 0..n {
                add(ui, i);
                if i % per_row == per_row - 1 {
                    ui.end_row();
                }
            }
        });
}

/// A plot that only shows (no zoom, drag or scroll: the page scrolls over it), `height` points
/// tall and as wide as the panel allows, up to 640 points.
pub(super) fn static_plot<'a>(
    id: impl egui::AsIdSalt,
    ui: &egui::Ui,
    height: f32,
) -> egui_plot::Plot<'a> {
    egui_plot::Plot::new(id)
        .height(height)
        .width(ui.available_width().min(640.0))
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
}

/// A criterion value for display: three decimals, or scientific notation when tiny.
pub(super) fn num(v: f32) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}
