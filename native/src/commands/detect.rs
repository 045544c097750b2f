//! `hashguard detect`: flags → [`DetectionConfig`], then the library's detection experiment
//! (every detector calibrated on benign database images at a fixed FPR, the chosen attacks on
//! the queries); writes its typed report as JSON and, with `--out`, `scores.json` and figures.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hashguard_core::attacks::CwMargin;
use hashguard_core::detectors::{BudgetRule, ConsistencyConfig};
use hashguard_core::experiments::AttackKind;
use hashguard_core::experiments::detection::{
    DetectionConfig, DetectionOutcome, run_detection, table1_miss_rates,
};
use hashguard_core::run::write_atomic;

use super::{kind, margin, open_with_database, pixel_budget};
use crate::backend::Selected;
use crate::progress::Bars;

mod figures;

/// Flags shared by `detect` and `reproduce`.
#[derive(Args, Debug, Clone)]
pub struct DetectionArgs {
    /// Run directory written by `hashguard train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Read the images from this directory instead of the one the run was trained on.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Test on this many queries (a seeded random subset); default all of the split's queries.
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    pub queries: Option<usize>,
    /// Benign calibration images, drawn from the database (disjoint from the queries).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 2000)]
    pub calibration: usize,
    /// Target false-positive rate of every detector.
    #[arg(value_parser = crate::commands::positive::<f64>, long, default_value_t = 0.05)]
    pub fpr: f64,
    /// UMCD's C1: retrieved codes averaged. Default: chosen on the calibration set (README).
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    pub k: Option<usize>,
    /// UMCD's C3 (and MeanBlur): side of the mean-blur window. Default: chosen on the
    /// calibration set (README).
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    pub blur: Option<usize>,
    /// Largest drop of benign precision@100 a blur may cost when choosing --blur.
    #[arg(value_parser = crate::commands::non_negative::<f64>, long, default_value_t = 0.02)]
    pub blur_tolerance: f64,
    /// UMCD: shares of the FPR budget for C1,C2,C3 (e.g. `1,2,1`); default equal.
    #[arg(long, value_delimiter = ',', value_parser = crate::commands::positive::<f64>)]
    pub fpr_weights: Option<Vec<f64>>,
    /// UMCD: how the FPR budget is shared. `shares`: by --fpr-weights, as the paper states;
    /// `point-mass`: a criterion whose benign scores mostly sit on one value (C1 = 0) fires on
    /// anything above it, and the rest of the budget is shared by the others; `fisher`: one
    /// threshold on Fisher's combination of the criteria's benign p-values (README).
    #[arg(long, default_value = "shares", value_parser = budget_rule)]
    pub budget: BudgetRule,
    /// C4 (retrieval consistency): Hamming neighbours of a query whose thumbnails are compared
    /// with its own. C4 is scored alone and as a fourth UMCD criterion (`UMCD + C4`).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 100)]
    pub c4_neighbours: usize,
    /// C4: how many of those neighbours, the closest in thumbnail space, are averaged.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 5)]
    pub c4_nearest: usize,
    /// C4: thumbnails are this many cells a side per channel (area averages).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 7)]
    pub c4_grid: usize,
    /// LID: neighbours per estimate.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 20)]
    pub lid_k: usize,
    /// LID: benign reference mini-batch size (database images, disjoint from calibration).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 100)]
    pub lid_reference: usize,
    /// L∞ budget of PGD and DHTA (pixel units; 8/255 as in the paper).
    #[arg(long, default_value = "8/255", value_parser = pixel_budget)]
    pub eps: f32,
    /// Step of PGD and DHTA.
    #[arg(long, default_value = "1/255", value_parser = pixel_budget)]
    pub step: f32,
    /// Iterations of PGD and DHTA.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 100)]
    pub steps: usize,
    /// CW: Adam steps.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 500)]
    pub cw_steps: usize,
    /// CW: weight c of the hashing term (as `hashguard attack`: with the logit margin, c below
    /// ~100 rarely flips K/2 bits of a confident model in 500 steps).
    #[arg(value_parser = crate::commands::positive::<f32>, long, default_value_t = 1000.0)]
    pub cw_c: f32,
    /// CW: hashing term — `logits` (CW's logit margin over the K/2 + 1 cheapest bits) or
    /// `relaxed` (f·h/K on tanh codes, which saturate on confident models).
    #[arg(long, default_value = "logits", value_parser = margin)]
    pub cw_margin: CwMargin,
    /// CW: Adam learning rate (the paper: 0.01).
    #[arg(value_parser = crate::commands::positive::<f32>, long, default_value_t = 0.01)]
    pub cw_lr: f32,
    /// DHTA: database codes voting for each anchor.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 9)]
    pub n_t: usize,
    /// Images per batch (attacks and scoring).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 64)]
    pub batch_size: usize,
    /// Seed of the calibration draw, query subset, targets and random starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep the crafted adversarial examples in this directory and reuse them when the model,
    /// queries and attack settings match (`reproduce`: default OUT/examples).
    #[arg(long)]
    pub examples: Option<PathBuf>,
}

/// Flags of `hashguard detect`.
#[derive(Args, Debug)]
pub struct DetectArgs {
    #[command(flatten)]
    pub common: DetectionArgs,
    /// Attacks to detect (comma-separated): pgd, hag, dhta, cw, centre, mainstay.
    #[arg(long, value_parser = kind, value_delimiter = ',', default_value = "pgd,dhta,cw")]
    pub attack: Vec<AttackKind>,
    /// JSON report path (default RUN/detect.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write ROC curves and criterion histograms (PNG) into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl DetectionArgs {
    /// The flags as the library's configuration.
    pub fn config(&self) -> DetectionConfig {
        DetectionConfig {
            queries: self.queries,
            calibration: self.calibration,
            fpr: self.fpr,
            k: self.k,
            blur: self.blur,
            blur_tolerance: self.blur_tolerance,
            fpr_weights: self.fpr_weights.clone(),
            budget: self.budget,
            c4: ConsistencyConfig {
                neighbours: self.c4_neighbours,
                nearest: self.c4_nearest,
                grid: self.c4_grid,
            },
            lid_k: self.lid_k,
            lid_reference: self.lid_reference,
            eps: self.eps,
            step: self.step,
            steps: self.steps,
            cw_steps: self.cw_steps,
            cw_c: self.cw_c,
            cw_margin: self.cw_margin,
            cw_lr: self.cw_lr,
            n_t: self.n_t,
            batch_size: self.batch_size,
            seed: self.seed,
            examples: self.examples.clone(),
        }
    }
}

/// Runs `hashguard detect`.
pub fn run(args: DetectArgs, selected: Selected) -> Result<()> {
    let c = &args.common;
    let config = c.config();
    config.validate()?;
    let (run, index) = open_with_database(&c.run, c.data.as_deref(), &selected)?;
    let outcome = run_detection(
        &run,
        &index,
        &config,
        &args.attack,
        selected.info.clone(),
        &selected.device,
        &mut Bars::default(),
    )?;
    println!("\n{}", table1_miss_rates(&outcome.report));
    let path = args
        .report
        .clone()
        .unwrap_or_else(|| run.dir.file("detect.json"));
    write_atomic(&path, &crate::config::report_json(&outcome.report)?)
        .context("writing the report")?;
    if let Some(dir) = &args.out {
        write_outputs(&outcome, dir)?;
    }
    println!("report -> {}", path.display());
    Ok(())
}

/// `scores.json` and the figures of a detection experiment, into `dir`.
pub fn write_outputs(outcome: &DetectionOutcome<'_>, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let scores = outcome.bench.scores(&outcome.crafted);
    write_atomic(&dir.join("scores.json"), &serde_json::to_vec(&scores)?)?;
    figures::plots(&outcome.bench, &outcome.crafted, dir)
}

/// Parses `--budget`.
fn budget_rule(s: &str) -> Result<BudgetRule, String> {
    match s {
        "shares" => Ok(BudgetRule::Shares),
        "point-mass" => Ok(BudgetRule::PointMass),
        "fisher" => Ok(BudgetRule::Fisher),
        _ => Err(format!(
            "{s} is not a budget rule: use shares, point-mass or fisher"
        )),
    }
}
