//! The page's "attack strength" plot: a finished ε sweep of the current query, with the damage
//! to its ten matches, the code bits flipped and UMCD's verdict (at the slider's rate) against
//! ε, as an `egui_plot` and as a table.

use eframe::egui;
use egui::{Color32, RichText};

use super::Sweep;
use crate::app::DemoApp;
use crate::app::panels::{num, static_plot};
use crate::app::umcd::{BLUE, GREEN, RED};

impl DemoApp {
    /// The finished sweep's plot and table, when there is one; returns the plot's rectangle.
    pub(in crate::app) fn sweep_section(&self, ui: &mut egui::Ui) -> Option<egui::Rect> {
        use egui_plot::{Corner, Legend, Line, MarkerShape, Points};
        let (Some(sweep), Some(q)) = (&self.state.sweep, &self.state.query) else {
            return None;
        };
        let bits = q.analysis.signs.len().max(1) as f64;
        let rows = self.sweep_rows(sweep);
        ui.separator();
        let attack = if sweep.spec.kind.is_targeted() {
            let names = self
                .state
                .engine
                .as_ref()
                .map(|e| e.bundle.database.class_names.clone())
                .unwrap_or_default();
            let t = sweep.spec.target.label.unwrap_or(0);
            format!(
                "targeted DHTA towards {}",
                names.get(t).map_or("?", String::as_str)
            )
        } else {
            "untargeted PGD".into()
        };
        ui.heading(format!(
            "Attack strength: {attack}, {} steps",
            sweep.spec.steps
        ));
        ui.label(damage_text(sweep, q.label.is_some()));
        let mut damage = Vec::new();
        let mut flips = Vec::new();
        let (mut flagged, mut passed) = (Vec::new(), Vec::new());
        for r in &rows {
            damage.push([r.eps, 100.0 * r.damage]);
            flips.push([r.eps, 100.0 * r.flipped as f64 / bits]);
            let at = [r.eps, 100.0 * r.damage];
            if r.flagged {
                flagged.push(at);
            } else {
                passed.push(at);
            }
        }
        let shown = static_plot("sweep", ui, 200.0)
            .include_x(0.0)
            .include_y(0.0)
            .include_y(100.0)
            .x_axis_label("ε (grey levels of 255)")
            .y_axis_label("%")
            .legend(Legend::default().position(Corner::RightBottom))
            .show(ui, move |plot| {
                plot.line(
                    Line::new("damage to the 10 matches", damage)
                        .color(BLUE)
                        .width(2.0),
                );
                plot.line(Line::new("code bits flipped", flips).color(Color32::GRAY));
                plot.points(
                    Points::new("flagged by UMCD", flagged)
                        .shape(MarkerShape::Circle)
                        .filled(true)
                        .radius(5.0)
                        .color(RED),
                );
                plot.points(
                    Points::new("not flagged", passed)
                        .shape(MarkerShape::Circle)
                        .filled(false)
                        .radius(5.0)
                        .color(GREEN),
                );
            });
        egui::Grid::new("sweep-table")
            .striped(true)
            .num_columns(7)
            .show(ui, |ui| {
                for h in ["ε", "bits flipped", "damage", "C1", "C2", "C3", "UMCD"] {
                    ui.strong(h);
                }
                ui.end_row();
                for r in &rows {
                    ui.label(if r.eps == 0.0 {
                        "0 (query)".to_string()
                    } else {
                        format!("{}/255", r.eps)
                    });
                    ui.label(r.flipped.to_string());
                    ui.label(format!("{:.0} %", 100.0 * r.damage));
                    for c in r.criteria {
                        ui.label(num(c));
                    }
                    let (text, colour) = if r.flagged {
                        (format!("flagged ({})", r.fired), RED)
                    } else {
                        ("benign".to_string(), GREEN)
                    };
                    ui.label(RichText::new(text).color(colour));
                    ui.end_row();
                }
            });
        Some(shown.response.rect)
    }

    /// The clean query (ε = 0) and each radius, with damage and verdict at the slider's rate.
    pub(in crate::app) fn sweep_rows(&self, sweep: &Sweep) -> Vec<SweepRow> {
        let Some(q) = &self.state.query else {
            return Vec::new();
        };
        let clean = (0.0, 0, &q.analysis);
        let points = sweep
            .points
            .iter()
            .map(|p| (f64::from(p.eps_levels), p.flipped, &p.analysis));
        std::iter::once(clean)
            .chain(points)
            .map(|(eps, flipped, analysis)| {
                let verdict = self.state.verdict(analysis);
                let fired: Vec<&str> = ["C1", "C2", "C3"]
                    .iter()
                    .zip(verdict.map_or([false; 3], |v| v.fired))
                    .filter_map(|(n, f)| f.then_some(*n))
                    .collect();
                SweepRow {
                    eps,
                    flipped,
                    damage: self.state.damage(&sweep.spec, analysis).unwrap_or(0.0),
                    criteria: analysis.criteria,
                    flagged: verdict.is_some_and(|v| v.adversarial),
                    fired: fired.join(", "),
                }
            })
            .collect()
    }
}

/// One row of the sweep's table.
pub(in crate::app) struct SweepRow {
    /// ε in grey levels (0: the clean query).
    pub eps: f64,
    /// Code bits flipped.
    pub flipped: usize,
    /// Share of the ten matches damaged (see `DemoState::damage`).
    pub damage: f64,
    /// C1, C2, C3.
    pub criteria: [f32; 3],
    /// UMCD flags it at the slider's rate.
    pub flagged: bool,
    /// Which criteria fired, e.g. "C2, C3".
    pub fired: String,
}

/// What "damage" means for this sweep.
fn damage_text(sweep: &Sweep, labelled: bool) -> &'static str {
    match (sweep.spec.kind.is_targeted(), labelled) {
        (true, _) => {
            "Damage: the share of the ten matches in the target class. Each radius is attacked \
             in the same batch with the step scaled to it; UMCD judges each image at the \
             slider's rate."
        }
        (false, true) => {
            "Damage: the share of the ten matches of another class than the query's. Each \
             radius is attacked in the same batch with the step scaled to it; UMCD judges each \
             image at the slider's rate."
        }
        (false, false) => {
            "Damage: the share of the query's own ten matches that are gone. Each radius is \
             attacked in the same batch with the step scaled to it; UMCD judges each image at \
             the slider's rate."
        }
    }
}
