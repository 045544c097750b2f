//! Table 3's figures: `table3.png` (benign mAP and each PGD length per row),
//! `table3-robust.png` (the masking-proof block), one group of bars per method with the mean
//! over its seeds and a ± one-standard-deviation whisker, and `table3-leads.png` (each
//! method's lead over FreeAT at equal updates, ± its standard error).

use std::path::Path;

use anyhow::Result;
use hashguard_core::experiments::robustness::{
    Difference, RowReport, Table3Report, grouped, mean_std, same_radius,
};

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

/// Every figure the report has data for, as `out/table3*.png` (and `.svg`).
pub(super) fn all(report: &Table3Report, out: &Path) -> Result<()> {
    bars(report, &out.join("table3"))?;
    if !report.settings.robust_eps.is_empty() {
        robust_bars(report, &out.join("table3-robust"))?;
    }
    if !report.leads.is_empty() {
        lead_bars(report, &out.join("table3-leads"))?;
    }
    Ok(())
}

/// One group of bars per row: benign mAP, then mAP under each PGD length.
fn bars(report: &Table3Report, stem: &Path) -> Result<()> {
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
fn robust_bars(report: &Table3Report, stem: &Path) -> Result<()> {
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

/// Each method's lead over FreeAT at equal updates, in mAP points: clean, then the
/// masking-proof PGD at each radius, with ± Welch's standard error where both sides have
/// several seeds. Negative bars: the method trails FreeAT.
fn lead_bars(report: &Table3Report, stem: &Path) -> Result<()> {
    let radii = &report.settings.robust_eps;
    let points =
        |d: Option<&Difference>, f: fn(&Difference) -> f64| d.map_or(f64::NAN, |d| 100.0 * f(d));
    let (mut names, mut means, mut errors): (Vec<String>, Vec<Vec<f64>>, Vec<Vec<f64>>) =
        (Vec::new(), Vec::new(), Vec::new());
    for l in &report.leads {
        let diffs: Vec<Option<&Difference>> = std::iter::once(Some(&l.clean))
            .chain(radii.iter().map(|&e| {
                let at = l.robust.iter().find(|p| same_radius(p.eps, e));
                at.map(|p| &p.pgd)
            }))
            .collect();
        names.push(format!("{} ({}/{})", l.row, l.seeds, l.reference_seeds));
        means.push(diffs.iter().map(|d| points(*d, |d| d.mean)).collect());
        errors.push(
            diffs
                .iter()
                .map(|d| points(*d, |d| d.se.unwrap_or(0.0)))
                .collect(),
        );
    }
    let legend: Vec<(String, RGBColor)> = std::iter::once("clean".to_string())
        .chain(radii.iter().map(|e| {
            format!(
                "PGD-{} x{} {:.0}/255",
                report.settings.robust_steps,
                report.settings.restarts,
                e * 255.0
            )
        }))
        .zip(PALETTE.iter().cycle().copied())
        .collect();
    // Room for the largest bar and its whisker either side of 0, and the legend above.
    let reach = means
        .iter()
        .flatten()
        .zip(errors.iter().flatten())
        .filter(|(m, _)| m.is_finite())
        .fold(1.0_f64, |r, (m, e)| r.max(m.abs() + e));
    let axes = Axes {
        title: format!(
            "Lead over FreeAT at equal updates (training eps {:.0}/255; whiskers ± 1 se)",
            report.at_eps * 255.0
        ),
        x: "training (method / FreeAT seeds)".into(),
        y: "mAP points minus FreeAT's".into(),
        x_range: 0.0..1.0,
        y_range: -1.1 * reach..1.6 * reach,
    };
    grouped_bars(stem, &axes, &names, &legend, &means, Some(&errors))
}
