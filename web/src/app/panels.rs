//! What the demo draws: the query gallery, retrieved neighbours, the attack controls with their
//! progress, and UMCD's criteria against their thresholds — each a method on [`DemoApp`] reading
//! its [`DemoState`](super::DemoState).

use eframe::egui;
use egui::{Color32, RichText, TextureHandle, TextureOptions, vec2};
use hashguard_core::experiments::AttackKind;

use super::DemoApp;
use crate::engine::{Analysis, Verdict};

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
                    if i % 5 == 4 {
                        ui.end_row();
                    }
                }
            });
        if let Some(i) = chosen {
            self.state.select_gallery(i);
        }
    }

    pub(super) fn neighbours_row(
        &mut self,
        ui: &mut egui::Ui,
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
            if running && ui.button("Stop").clicked() {
                self.state.attack = None;
            }
        });
        if let Some(a) = &self.state.attack {
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

    /// UMCD's verdicts on the query and the adversarial image, then each criterion: what it
    /// measures, its threshold, and a plot of its benign distribution with the threshold, the
    /// query's value and the adversarial image's value marked.
    pub(super) fn umcd_section(
        &self,
        ui: &mut egui::Ui,
        benign: &Analysis,
        adv: Option<&Analysis>,
    ) {
        let Ok(engine) = &self.state.engine else {
            return;
        };
        let Some(benign_verdict) = self.state.verdict(benign) else {
            return;
        };
        let adv_verdict = adv.and_then(|a| self.state.verdict(a));
        ui.heading("UMCD detection");
        ui.label(format!(
            "Three unsupervised criteria, each with a threshold set on the {} shipped benign \
             images so that together they flag {:.0}% of benign queries (the slider above). An \
             image is flagged when any criterion crosses its threshold.",
            engine.bundle.header.benign.first().map_or(0, Vec::len),
            self.state.fpr_percent
        ));
        ui.horizontal_wrapped(|ui| {
            verdict_label(ui, "Benign query", &benign_verdict);
            if let Some(v) = &adv_verdict {
                ui.separator();
                verdict_label(ui, "Adversarial image", v);
            }
        });
        let k = engine.bundle.header.umcd.k;
        for (i, criterion) in CRITERIA.iter().enumerate() {
            ui.add_space(6.0);
            let t = benign_verdict.thresholds[i];
            let side = if criterion.flags_high { "≥" } else { "≤" };
            ui.strong(criterion.name.replace("{k}", &ordinal(k)));
            ui.label(criterion.explains);
            let mut line = format!(
                "threshold: flagged when {side} {}; benign query {}",
                num(t),
                num(benign.criteria[i])
            );
            if let Some(a) = adv {
                line.push_str(&format!("; adversarial image {}", num(a.criteria[i])));
            }
            let fired = benign_verdict.fired[i] || adv_verdict.is_some_and(|v| v.fired[i]);
            ui.colored_label(
                if fired {
                    RED
                } else {
                    ui.visuals().text_color()
                },
                line,
            );
            let values = &engine.bundle.header.benign[i];
            let marks = [
                Some(("threshold", t, RED)),
                Some(("benign query", benign.criteria[i], BLUE)),
                adv.map(|a| ("adversarial image", a.criteria[i], ORANGE)),
            ];
            distribution_plot(ui, i, values, &marks);
        }
    }
}

/// One UMCD criterion as the page explains it.
struct CriterionText {
    name: &'static str,
    explains: &'static str,
    flags_high: bool,
}

const CRITERIA: [CriterionText; 3] = [
    CriterionText {
        name: "C1 · Hamming distance to the {k} nearest database code",
        explains: "An untargeted attack pushes the code into empty Hamming space, far from every \
                   database image; a code that lands on another class's codes looks benign here.",
        flags_high: true,
    },
    CriterionText {
        name: "C2 · quantisation loss (how far the network's outputs are from ±1)",
        explains: "A targeted attack drives the code onto its target so hard that the outputs \
                   saturate: an unusually low value is suspicious.",
        flags_high: false,
    },
    CriterionText {
        name: "C3 · bits that flip when the image is blurred (2x2 mean)",
        explains: "Adversarial perturbations are fragile: blurring undoes part of them and many \
                   bits flip back, while a benign image's code barely moves.",
        flags_high: true,
    },
];

const RED: Color32 = Color32::from_rgb(200, 50, 50);
const GREEN: Color32 = Color32::from_rgb(40, 160, 60);
const BLUE: Color32 = Color32::from_rgb(40, 110, 220);
const ORANGE: Color32 = Color32::from_rgb(230, 140, 20);

/// "Benign query — UMCD: benign" or "… UMCD: ADVERSARIAL (C2 fired)".
fn verdict_label(ui: &mut egui::Ui, what: &str, v: &Verdict) {
    let fired: Vec<&str> = ["C1", "C2", "C3"]
        .iter()
        .zip(v.fired)
        .filter_map(|(n, f)| f.then_some(*n))
        .collect();
    let (text, colour) = if v.adversarial {
        (
            format!("{what} — UMCD: ADVERSARIAL ({} fired)", fired.join(", ")),
            RED,
        )
    } else {
        (format!("{what} — UMCD: benign"), GREEN)
    };
    ui.label(RichText::new(text).color(colour).strong());
}

/// Bars of `values` over `BINS` bins spanning them and the `marks`: the counts per bin.
pub(super) fn histogram(values: &[f32], marks: &[f32]) -> (f64, f64, Vec<usize>) {
    const BINS: usize = 40;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values.iter().chain(marks) {
        if v.is_finite() {
            lo = lo.min(f64::from(v));
            hi = hi.max(f64::from(v));
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0, vec![0; BINS]);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let width = (hi - lo) / BINS as f64;
    let mut counts = vec![0; BINS];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = ((f64::from(v) - lo) / width) as usize;
        counts[b.min(BINS - 1)] += 1;
    }
    (lo, width, counts)
}

/// The benign distribution of criterion `i` as a bar chart, with vertical lines at `marks`.
fn distribution_plot(
    ui: &mut egui::Ui,
    i: usize,
    values: &[f32],
    marks: &[Option<(&'static str, f32, Color32)>],
) {
    use egui_plot::{Bar, BarChart, Legend, LineStyle, Plot, VLine};
    let at: Vec<f32> = marks.iter().flatten().map(|m| m.1).collect();
    let (lo, width, counts) = histogram(values, &at);
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(b, &n)| Bar::new(lo + (b as f64 + 0.5) * width, n as f64).width(width))
        .collect();
    let marks: Vec<(&'static str, f32, Color32)> = marks.iter().flatten().copied().collect();
    Plot::new(format!("umcd-c{}", i + 1))
        .height(110.0)
        .width(ui.available_width().min(640.0))
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .show_y(false)
        .y_axis_label("benign images")
        .legend(Legend::default())
        .show(ui, move |plot| {
            plot.bar_chart(BarChart::new("benign images", bars).color(Color32::GRAY));
            for (name, x, colour) in marks {
                let line = VLine::new(name, f64::from(x)).color(colour).width(2.0);
                let line = if name == "threshold" {
                    line.style(LineStyle::dashed_loose())
                } else {
                    line
                };
                plot.vline(line);
            }
        });
}

/// 1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, 21st, …
pub(super) fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A criterion value for display: three decimals, or scientific notation when tiny.
fn num(v: f32) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}
