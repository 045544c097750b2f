//! Table 3's figures: `table3.png` (benign mAP and each PGD length per row) and
//! `table3-robust.png` (the masking-proof block), one group of bars per method with the mean
//! over its seeds and, for several seeds, a ± one-standard-deviation whisker.

use std::path::Path;

use anyhow::Result;
use hashguard_core::experiments::robustness::{RowReport, Table3Report, grouped, mean_std};

use crate::plot::{Axes, PALETTE, grouped_bars};

/// Per method: its label (with the seed count when above 1), then the mean and the sample
/// standard deviation over its seeds of each of `columns(row)`'s values.
type Grouped = (Vec<String>, Vec<Vec<f64>>, Vec<Vec<f64>>);

fn means(report: &Table3Report, columns: impl Fn(&RowReport) -> Vec<f64>) -> Grouped {
    let (mut names, mut means, mut stds) = (Vec::new(), Vec::new(), Vec::new());
    for g in grouped(&report.rows) {
        let per_seed: Vec<Vec<f64>> = g.iter().map(|r| columns(r)).collect();
        let n = per_seed.first().map_or(0, Vec::len);
        let (mean, std): (Vec<f64>, Vec<f64>) = (0..n)
            .map(|i| {
                let v: Vec<f64> = per_seed.iter().filter_map(|r| r.get(i).copied()).collect();
                mean_std(&v)
            })
            .unzip();
        names.push(match g.len() {
            1 => g[0].row.clone(),
            seeds => format!("{} ({seeds} seeds)", g[0].row),
        });
        means.push(mean);
        stds.push(std);
    }
    (names, means, stds)
}

/// The title's note on the whiskers, when some method has several seeds.
fn whisker_note(report: &Table3Report) -> &'static str {
    if grouped(&report.rows).iter().any(|g| g.len() > 1) {
        "; whiskers ± 1 sd"
    } else {
        ""
    }
}

/// One group of bars per row: benign mAP, then mAP under each PGD length.
pub(super) fn bars(report: &Table3Report, stem: &Path) -> Result<()> {
    let (names, values, errors) = means(report, |r| {
        std::iter::once(r.clean_map)
            .chain(r.pgd.iter().map(|p| p.map))
            .collect()
    });
    let legend: Vec<(String, plotters::style::RGBColor)> = std::iter::once("benign".to_string())
        .chain(report.settings.pgd_steps.iter().map(|s| format!("PGD-{s}")))
        .zip(PALETTE)
        .collect();
    let axes = Axes {
        title: format!(
            "Robustness: mAP under PGD at eps {:.0}/255 (training eps {:.0}/255{})",
            report.settings.eps * 255.0,
            report.at_eps * 255.0,
            whisker_note(report)
        ),
        x: "training".into(),
        y: "mAP over the whole database".into(),
        x_range: 0.0..1.0,
        y_range: 0.0..1.0,
    };
    grouped_bars(stem, &axes, &names, &legend, &values, Some(&errors))
}

/// The masking-proof block: per row, benign mAP, then at each radius the random-restart PGD's
/// and the transfer attack's mAP (the no-AT row's transfer bar is its white-box one).
pub(super) fn robust_bars(report: &Table3Report, stem: &Path) -> Result<()> {
    let st = &report.settings;
    let (names, values, errors) = means(report, |r| {
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
    let legend: Vec<(String, plotters::style::RGBColor)> = legend_names
        .into_iter()
        .zip(PALETTE.iter().cycle().copied())
        .collect();
    let axes = Axes {
        title: format!(
            "Random-restart PGD and transfer from no AT (training eps {:.0}/255{})",
            report.at_eps * 255.0,
            whisker_note(report)
        ),
        x: "training".into(),
        y: "mAP over the whole database".into(),
        x_range: 0.0..1.0,
        // Headroom above the bars for the legend.
        y_range: 0.0..1.3,
    };
    grouped_bars(stem, &axes, &names, &legend, &values, Some(&errors))
}
