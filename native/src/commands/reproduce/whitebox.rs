//! `hashguard reproduce --whitebox`: flags → [`WhiteboxConfig`], then the library's white-box
//! study (the attacker who knows UMCD, paper §4.3); writes whitebox.md, whitebox.json and one
//! Fig. 5 chart per λ2.

use std::path::Path;

use anyhow::Result;
use clap::Args;
use hashguard_core::experiments::whitebox::{
    WhiteboxConfig, WhiteboxPoint, decimal, run_whitebox, whitebox_markdown,
};
use hashguard_core::run::write_atomic;
use plotters::prelude::SeriesLabelPosition;

use super::DetectionArgs;
use crate::backend::Selected;
use crate::commands::{open_with_database, pixel_budget};
use crate::plot::{Axes, PALETTE, Series, lines};
use crate::progress::Bars;

/// Flags of `reproduce --whitebox`.
#[derive(Args, Debug, Clone)]
pub struct WhiteboxArgs {
    /// White-box: L∞ budget (the paper: 32/255); step and iterations are --step and --steps.
    #[arg(long, default_value = "32/255", value_parser = pixel_budget)]
    whitebox_eps: f32,
    /// White-box: λ1 values swept (weight of L2 = −‖h(x') − f(x')‖₁; the paper: 0 … 0.03).
    #[arg(value_parser = crate::commands::non_negative::<f32>,
        long,
        value_delimiter = ',',
        default_value = "0,0.0025,0.005,0.0075,0.01,0.02,0.03"
    )]
    lambda1: Vec<f32>,
    /// White-box: λ2 values (weight of L3, the blurred copy's code distance; the paper: 0.3, 3).
    #[arg(value_parser = crate::commands::non_negative::<f32>, long, value_delimiter = ',', default_value = "0.3,3")]
    lambda2: Vec<f32>,
    /// White-box: λ1 of Table 4 (the paper: 0.0075); added to the sweep if absent.
    #[arg(value_parser = crate::commands::non_negative::<f32>, long, default_value_t = 0.0075)]
    table4_lambda1: f32,
    /// White-box: iterations of the stronger APGD attacker at Table 4's λ1 (0 skips it).
    #[arg(long, default_value_t = 200)]
    apgd_steps: usize,
    /// White-box: random restarts of the APGD attacker (each image keeps its lowest loss).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 2)]
    restarts: usize,
    /// White-box: λ4 values (weight of L4, the mean RMS distance between the image's C4
    /// thumbnail and the --looks thumbnails closest to it among what its target code retrieves:
    /// an attacker who also knows C4; 0 is the paper's attacker).
    #[arg(value_parser = crate::commands::non_negative::<f32>, long, value_delimiter = ',', default_value = "0")]
    lambda4: Vec<f32>,
    /// White-box: pick each target among its class as the database image that looks most
    /// like the query (closest C4 thumbnail) instead of at random: the C4-aware choice.
    #[arg(long)]
    lookalike_targets: bool,
    /// White-box: how many retrieved thumbnails L4 pulls towards (C4 averages over its
    /// --c4-nearest closest, 5; 1 was the first C4-aware attacker's).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 1)]
    looks: usize,
}

impl WhiteboxArgs {
    /// The flags as the library's configuration.
    fn config(&self) -> WhiteboxConfig {
        WhiteboxConfig {
            eps: self.whitebox_eps,
            lambda1: self.lambda1.clone(),
            lambda2: self.lambda2.clone(),
            table4_lambda1: self.table4_lambda1,
            apgd_steps: self.apgd_steps,
            restarts: self.restarts,
            lambda4: self.lambda4.clone(),
            lookalike: self.lookalike_targets,
            looks: self.looks,
        }
    }
}

/// Runs the white-box study into `out`: `whitebox.md`, `whitebox.json` and one Fig. 5 chart
/// per λ2.
pub fn run(c: &DetectionArgs, w: &WhiteboxArgs, out: &Path, selected: &Selected) -> Result<()> {
    let config = w.config();
    config.validate()?;
    let detection = c.config();
    detection.validate()?;
    let (opened, index) = open_with_database(&c.run, c.data.as_deref(), selected)?;
    let report = run_whitebox(
        &opened,
        &index,
        &detection,
        &config,
        selected.info.clone(),
        &selected.device,
        &mut Bars::default(),
    )?;
    write_atomic(
        &out.join("whitebox.json"),
        &crate::config::report_json(&report)?,
    )?;
    for &lambda2 in &config.lambda2 {
        let mine: Vec<&WhiteboxPoint> = report
            .points
            .iter()
            .filter(|p| p.lambda2 == decimal(lambda2) && p.lambda4 == decimal(config.lambda4[0]))
            .collect();
        fig5(&mine, lambda2, &out.join(format!("fig5_lambda2_{lambda2}")))?;
    }
    let md = whitebox_markdown(&report);
    write_atomic(&out.join("whitebox.md"), md.as_bytes())?;
    println!("{md}");
    println!(
        "whitebox.md, whitebox.json and Fig. 5 charts -> {}",
        out.display()
    );
    Ok(())
}

/// Fig. 5 analogue for one λ2: x = λ1 over the swept values; success rate, UMCD's detection
/// rate and the AUC of C1, C2 and C3 against the attack.
fn fig5(points: &[&WhiteboxPoint], lambda2: f32, stem: &Path) -> Result<()> {
    let top = points
        .iter()
        .map(|p| p.lambda1)
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let series = |name: &str, colour, get: &dyn Fn(&WhiteboxPoint) -> Option<f64>| Series {
        name: name.into(),
        colour,
        points: points
            .iter()
            .filter_map(|p| Some((p.lambda1, get(p)?)))
            .collect(),
    };
    let curves = [
        series("attack success rate", PALETTE[0], &|p| Some(p.success_rate)),
        series("UMCD detection rate", PALETTE[1], &|p| {
            p.umcd.as_ref().map(|d| d.detection_rate)
        }),
        series("AUC of C1", PALETTE[2], &|p| {
            p.umcd_criterion_auc.first().copied()
        }),
        series("AUC of C2", PALETTE[3], &|p| {
            p.umcd_criterion_auc.get(1).copied()
        }),
        series("AUC of C3", PALETTE[4], &|p| {
            p.umcd_criterion_auc.get(2).copied()
        }),
    ];
    let axes = Axes {
        title: format!("White-box attacker vs UMCD (Fig. 5), lambda2 = {lambda2}"),
        x: "lambda1 (weight of the quantisation term L2)".into(),
        y: "rate or AUC".into(),
        x_range: 0.0..top,
        // Headroom above 1 keeps the legend off the curves.
        y_range: 0.0..1.4,
    };
    lines(stem, &axes, &curves, false, SeriesLabelPosition::UpperRight)
}
