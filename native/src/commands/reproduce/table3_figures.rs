//! Table 3's figures: `table3.png` (benign mAP and each PGD length per row) and
//! `table3-robust.png` (the masking-proof block), one group of bars per method with the mean
//! over its seeds and, for several seeds, a ± one-standard-deviation whisker.

use std::path::Path;

use anyhow::Result;
use hashguard_core::experiments::robustness::{RowReport, Table3Report, grouped, mean_std};

use plotters::style::RGBColor;

use crate::plot::{Axes, PALETTE, grouped_bars};

/// Table 3's rows per method: labels (with the seed count when above 1), and for each of
/// `columns(row)`'s values the mean and sample standard deviation over the method's seeds.
struct PerMethod {
    names: Vec<String>,
    means: Vec<Vec<f64>>,
    stds: Vec<Vec<f64>>,
    several_seeds: bool,
}

impl PerMethod {
    fn of(report: &Table3Report, columns: impl Fn(&RowReport) -> Vec<f64>) -> Self {
        let mut out = Self {
            names: Vec::new(),
            means: Vec::new(),
            stds: Vec::new(),
            several_seeds: false,
        };
        for g in grouped(&report.rows) {
            let per_seed: Vec<Vec<f64>> = g.iter().map(|r| columns(r)).collect();
            let n = per_seed.first().map_or(0, Vec::len);
            let (mean, std): (Vec<f64>, Vec<f64>) = (0..n)
                .map(|i| {
                    let v: Vec<f64> = per_seed.iter().filter_map(|r| r.get(i).copied()).collect();
                    mean_std(&v)
                })
                .unzip();
            out.several_seeds |= g.len() > 1;
            out.names.push(match g.len() {
                1 => g[0].row.clone(),
                seeds => format!("{} ({seeds} seeds)", g[0].row),
            });
            out.means.push(mean);
            out.stds.push(std);
        }
        out
    }

    /// The title's note on the whiskers, when some method has several seeds.
    fn whisker_note(&self) -> &'static str {
        if self.several_seeds {
            "; whiskers ± 1 sd"
        } else {
            ""
        }
    }

    /// The chart, one group per method.
    fn draw(&self, stem: &Path, axes: &Axes, legend: &[(String, RGBColor)]) -> Result<()> {
        grouped_bars(
            stem,
            axes,
            &self.names,
            legend,
            &self.means,
            Some(&self.stds),
        )
    }
}

/// One group of bars per row: benign mAP, then mAP under each PGD length.
pub(super) fn bars(report: &Table3Report, stem: &Path) -> Result<()> {
    let methods = PerMethod::of(report, |r| {
        std::iter::once(r.clean_map)
            .chain(r.pgd.iter().map(|p| p.map))
            .collect()
    });
    let legend: Vec<(String, RGBColor)> = std::iter::once("benign".to_string())
        .chain(report.settings.pgd_steps.iter().map(|s| format!("PGD-{s}")))
        .zip(PALETTE)
        .collect();
    let axes = Axes {
        title: format!(
            "Robustness: mAP under PGD at eps {:.0}/255 (training eps {:.0}/255{})",
            report.settings.eps * 255.0,
            report.at_eps * 255.0,
            methods.whisker_note()
        ),
        x: "training".into(),
        y: "mAP over the whole database".into(),
        x_range: 0.0..1.0,
        y_range: 0.0..1.0,
    };
    methods.draw(stem, &axes, &legend)
}

/// The masking-proof block: per row, benign mAP, then at each radius the random-restart PGD's
/// and the transfer attack's mAP (the no-AT row's transfer bar is its white-box one).
pub(super) fn robust_bars(report: &Table3Report, stem: &Path) -> Result<()> {
    let st = &report.settings;
    let methods = PerMethod::of(report, |r| {
        let mut v = vec![r.clean_map];
        for p in &r.robust {
            v.push(p.pgd_map);
            v.push(p.transfer_map.unwrap_or(p.pgd_map));
        }
        v
    });
    let mut legend_names = vec!["benign".to_string()];
    for e in &st.robust_eps {
        legend_names.push(format!(
            "PGD-{} x{} {:.0}/255",
            st.robust_steps,
            st.restarts,
            e * 255.0
        ));
        legend_names.push(format!("transfer {:.0}/255", e * 255.0));
    }
    let legend: Vec<(String, RGBColor)> = legend_names
        .into_iter()
        .zip(PALETTE.iter().cycle().copied())
        .collect();
    let axes = Axes {
        title: format!(
            "Random-restart PGD and transfer from no AT (training eps {:.0}/255{})",
            report.at_eps * 255.0,
            methods.whisker_note()
        ),
        x: "training".into(),
        y: "mAP over the whole database".into(),
        x_range: 0.0..1.0,
        // Headroom above the bars for the legend.
        y_range: 0.0..1.3,
    };
    methods.draw(stem, &axes, &legend)
}
