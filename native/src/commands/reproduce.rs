//! `hashguard reproduce`: one command per table of the UMCD paper — Tables 1 and 2 (detection,
//! the default), Table 3 (adversarial training, `--table 3`) and Table 4 with Fig. 5 (the
//! white-box attacker, `--table 4`) — each writing Markdown, JSON and figures into `--out`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use hashguard_core::experiments::AttackKind;
use hashguard_core::experiments::detection::{
    DetectionReport, run_tables_1_2, table1_markdown, table1_miss_rates, table2_markdown,
};
use hashguard_core::run::write_atomic;
use plotters::prelude::SeriesLabelPosition;

use super::detect::{DetectionArgs, write_outputs};
use super::{open_with_database, pixel_budget};
use crate::backend::Selected;
use crate::plot::{Axes, PALETTE, Series, lines};
use crate::progress::Bars;

mod robustness;
mod table3_figures;
mod whitebox;

/// Flags of `hashguard reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    #[command(flatten)]
    common: DetectionArgs,
    /// Output directory: table1.md, table2.md, report.json, ROC and histogram PNGs.
    #[arg(long)]
    out: PathBuf,
    /// L∞ budget of the ablation (Table 2; the paper: 32/255).
    #[arg(long, default_value = "32/255", value_parser = pixel_budget)]
    ablation_eps: f32,
    /// Which table: 1 or 2 (detection, computed together; the default), 3 (adversarial
    /// training: trains FreeAT, CgAT and SAAT from --run, then attacks every model) or 4 (the
    /// white-box attacker, with the Fig. 5 sweep).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    table: Option<u8>,
    /// Same as --table 3.
    #[arg(long, conflicts_with = "whitebox")]
    robustness: bool,
    /// Same as --table 4.
    #[arg(long)]
    whitebox: bool,
    #[command(flatten)]
    adversarial_training: robustness::RobustnessArgs,
    #[command(flatten)]
    white_box: whitebox::WhiteboxArgs,
}

/// Runs `hashguard reproduce`.
pub fn run(args: ReproduceArgs, selected: Selected) -> Result<()> {
    let c = &args.common;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    match (args.table, args.robustness, args.whitebox) {
        (Some(3) | None, true, false) | (Some(3), false, false) => {
            return robustness::run(c, &args.adversarial_training, &args.out, &selected);
        }
        (Some(4) | None, false, true) | (Some(4), false, false) => {
            return whitebox::run(c, &args.white_box, &args.out, &selected);
        }
        (None | Some(1 | 2), false, false) => {}
        _ => bail!("--table, --robustness and --whitebox name different tables: pass one"),
    }
    let mut config = c.config();
    config
        .examples
        .get_or_insert_with(|| args.out.join("examples"));
    config.validate()?;
    let (run, index) = open_with_database(&c.run, c.data.as_deref(), &selected)?;
    let outcome = run_tables_1_2(
        &run,
        &index,
        &config,
        args.ablation_eps,
        selected.info.clone(),
        &selected.device,
        &mut Bars::default(),
    )?;
    let report = &outcome.report;
    println!("\n{}", table1_miss_rates(report));
    write_atomic(
        &args.out.join("report.json"),
        &crate::config::report_json(report)?,
    )?;
    write_atomic(
        &args.out.join("table1.md"),
        table1_markdown(report).as_bytes(),
    )?;
    if let Some(t2) = &report.table2 {
        let md = table2_markdown(t2);
        write_atomic(&args.out.join("table2.md"), md.as_bytes())?;
        println!("\n{md}");
    }
    write_outputs(&outcome, &args.out)?;
    map_vs_eps(report, &args.out.join("map_vs_eps"))?;
    println!("tables, report.json and figures -> {}", args.out.display());
    Ok(())
}

/// mAP (PGD) and t-mAP (DHTA) against the L∞ budget: clean at 0, then Table 1's and Table 2's
/// budgets.
fn map_vs_eps(report: &DetectionReport, stem: &std::path::Path) -> Result<()> {
    let mut series = Vec::new();
    for (i, (kind, metric)) in [(AttackKind::Pgd, "mAP"), (AttackKind::Dhta, "t-mAP")]
        .into_iter()
        .enumerate()
    {
        let mut points: Vec<(f64, f64)> = Vec::new();
        for a in report.attacks.iter().filter(|a| a.method == kind) {
            points.push((0.0, a.clean_map));
            points.push((a.eps as f64 * 255.0, a.adv_map));
        }
        let table2 = report.table2.iter().flat_map(|t| &t.attacks);
        for a in table2.filter(|a| a.method == kind) {
            points.push((a.eps as f64 * 255.0, a.adv_map));
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|a, b| a.0 == b.0);
        series.push(Series {
            name: format!("{} {metric}", kind.column()),
            colour: PALETTE[i],
            points,
        });
    }
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let axes = Axes {
        title: format!(
            "Retrieval under attack ({} queries, {} steps)",
            report.queries,
            report.attacks.first().map_or(0, |a| a.steps)
        ),
        x: "L-infinity budget eps (grey levels of 255)".into(),
        y: "mAP (PGD) / t-mAP towards the target (DHTA)".into(),
        x_range: 0.0..top * 1.05,
        // Headroom above 1 keeps the legend off the curves.
        y_range: 0.0..1.25,
    };
    lines(stem, &axes, &series, false, SeriesLabelPosition::UpperRight)
}
