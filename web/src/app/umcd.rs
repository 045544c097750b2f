//! UMCD's part of the page: the verdicts, each criterion with its one-line explanation, its
//! threshold and an `egui_plot` of its benign distribution with both images' values marked, and
//! the detection ROC of the shipped calibration against the attacks the page offers.

use eframe::egui;
use egui::{Color32, RichText};

use super::DemoApp;
use super::panels::{num, static_plot};
use crate::engine::{Analysis, Verdict};

impl DemoApp {
    /// UMCD's verdicts on the query and the adversarial image, then each criterion: what it
    /// measures, its threshold, and a plot of its benign distribution with the threshold, the
    /// query's value and the adversarial image's value marked; then the ROC. Returns each
    /// plot's name and rectangle.
    pub(super) fn umcd_section(
        &self,
        ui: &mut egui::Ui,
        benign: &Analysis,
        adv: Option<&Analysis>,
    ) -> Vec<(String, egui::Rect)> {
        let mut plots = Vec::new();
        let Ok(engine) = &self.state.engine else {
            return plots;
        };
        let Some(benign_verdict) = self.state.verdict(benign) else {
            return plots;
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
            let rect = distribution_plot(ui, i, values, &marks);
            plots.push((format!("C{}", i + 1), rect));
        }
        plots.extend(self.roc_section(ui).map(|r| ("ROC".to_string(), r)));
        plots
    }

    /// The detection ROC of the shipped calibration: UMCD's union calibrated at each budget
    /// on the shipped benign images, against queries attacked as the page attacks them.
    fn roc_section(&self, ui: &mut egui::Ui) -> Option<egui::Rect> {
        use egui_plot::{Corner, Legend, Line, LineStyle, VLine};
        let Ok(engine) = &self.state.engine else {
            return None;
        };
        if engine.roc.is_empty() {
            return None;
        }
        ui.add_space(8.0);
        ui.strong("Detection ROC of the shipped calibration");
        ui.label(format!(
            "Each curve sets UMCD's three thresholds on the {} benign images at a budget from \
             0.1 % to 50 % (x: share of benign images flagged) and applies them to {} query \
             images attacked as this page attacks them (y: share flagged). The dashed line is \
             the slider's rate.",
            engine.bundle.header.benign.first().map_or(0, Vec::len),
            engine.roc[0].queries
        ));
        let at = self.state.fpr_percent / 100.0;
        for (r, colour) in engine.roc.iter().zip(SERIES) {
            // The point whose budget is closest to the slider's.
            let near = r
                .points
                .iter()
                .min_by(|a, b| (a.budget - at).abs().total_cmp(&(b.budget - at).abs()));
            let mut line = format!(
                "{}: the attack succeeded on {:.0} %",
                r.name,
                100.0 * r.success_rate
            );
            if let Some(p) = near {
                line.push_str(&format!(
                    "; at a {:.1} % budget UMCD flags {:.1} % of them ({:.1} % of benign)",
                    100.0 * p.budget,
                    100.0 * p.tpr,
                    100.0 * p.fpr
                ));
            }
            ui.colored_label(colour, line);
        }
        let curves: Vec<(String, Vec<[f64; 2]>, Color32)> = engine
            .roc
            .iter()
            .zip(SERIES)
            .map(|(r, colour)| {
                let mut xy = vec![[0.0, 0.0]];
                xy.extend(r.points.iter().map(|p| [100.0 * p.fpr, 100.0 * p.tpr]));
                (r.name.clone(), xy, colour)
            })
            .collect();
        let shown = static_plot("umcd-roc", ui, 220.0)
            .include_x(0.0)
            .include_x(50.0)
            .include_y(0.0)
            .include_y(100.0)
            .x_axis_label("benign images flagged (%)")
            .y_axis_label("attacked images flagged (%)")
            .legend(Legend::default().position(Corner::RightBottom))
            .show(ui, move |plot| {
                plot.line(
                    Line::new("chance", vec![[0.0, 0.0], [50.0, 50.0]])
                        .color(Color32::GRAY)
                        .style(LineStyle::dotted_loose()),
                );
                for (name, xy, colour) in curves {
                    plot.line(Line::new(name, xy).color(colour).width(2.0));
                }
                plot.vline(
                    VLine::new("slider", 100.0 * at)
                        .color(RED)
                        .style(LineStyle::dashed_loose()),
                );
            });
        Some(shown.response.rect)
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

pub(super) const RED: Color32 = Color32::from_rgb(200, 50, 50);
pub(super) const GREEN: Color32 = Color32::from_rgb(40, 160, 60);
pub(super) const BLUE: Color32 = Color32::from_rgb(40, 110, 220);
const ORANGE: Color32 = Color32::from_rgb(230, 140, 20);
/// Colours of the ROC's curves, in the bundle's attack order.
const SERIES: [Color32; 4] = [
    BLUE,
    Color32::from_rgb(120, 60, 180),
    ORANGE,
    Color32::from_rgb(20, 140, 140),
];

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

/// The benign distribution of criterion `i` as a bar chart, with vertical lines at `marks`;
/// returns where it was drawn.
fn distribution_plot(
    ui: &mut egui::Ui,
    i: usize,
    values: &[f32],
    marks: &[Option<(&'static str, f32, Color32)>],
) -> egui::Rect {
    use egui_plot::{Bar, BarChart, Legend, LineStyle, VLine};
    let at: Vec<f32> = marks.iter().flatten().map(|m| m.1).collect();
    let (lo, width, counts) = histogram(values, &at);
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(b, &n)| Bar::new(lo + (b as f64 + 0.5) * width, n as f64).width(width))
        .collect();
    let marks: Vec<(&'static str, f32, Color32)> = marks.iter().flatten().copied().collect();
    let shown = static_plot(format!("umcd-c{}", i + 1), ui, 110.0)
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
    shown.response.rect
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
