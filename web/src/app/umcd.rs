//! UMCD's part of the page: the verdicts, and each criterion with its one-line explanation, its
//! threshold and an `egui_plot` of its benign distribution with both images' values marked.

use eframe::egui;
use egui::{Color32, RichText};

use super::DemoApp;
use super::panels::num;
use crate::engine::{Analysis, Verdict};

impl DemoApp {
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
