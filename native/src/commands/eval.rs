//! `hashguard eval`: the library's retrieval experiment on a trained run — queries ranked
//! against the database by Hamming distance — written as its typed JSON report (mAP@all,
//! mAP@k, precision@k, the precision-recall curve).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hashguard_core::experiments::retrieval::run_retrieval;
use hashguard_core::run::{OpenedRun, write_atomic};

use crate::backend::Selected;
use crate::progress::Bars;

/// Flags of `hashguard eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory written by `hashguard train`.
    #[arg(long)]
    run: PathBuf,
    /// JSON report to write (fields documented in the README). Default: RUN/report.json.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Read the images from this directory instead of the one the run was trained on.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Cut-offs k for mAP@k and precision@k (besides mAP over the whole ranking); default
    /// 1000,100. Cut-offs given here must not exceed the run's database.
    #[arg(value_parser = crate::commands::positive::<usize>, long, value_delimiter = ',')]
    k: Vec<usize>,
}

/// Runs `hashguard eval`.
pub fn run(args: EvalArgs, selected: Selected) -> Result<()> {
    if args.k.contains(&0) {
        anyhow::bail!("--k values must be at least 1");
    }
    let run = OpenedRun::open(&args.run, args.data.as_deref(), &selected.device)?;
    // Checked against the run before any encoding: a cut-off past the database is a mistake.
    // (The defaults stay for any run: past a small database, mAP@k is mAP over all of it.)
    let database = run.split.database.len();
    if let Some(k) = args.k.iter().find(|&&k| k > database) {
        anyhow::bail!(
            "--k {k} exceeds the run's {database} database images: choose k ≤ {database}"
        );
    }
    let ks = if args.k.is_empty() {
        vec![1000, 100]
    } else {
        args.k
    };
    let report = run_retrieval(
        &run,
        &ks,
        selected.info.clone(),
        &selected.device,
        &mut Bars::default(),
    )?;
    let path = args.report.unwrap_or_else(|| run.dir.file("report.json"));
    write_atomic(&path, &crate::config::report_json(&report)?).context("writing the report")?;
    println!(
        "{}-bit {} ({} queries vs {} database): mAP@all {:.4}, mAP@1000 {:.4} [{} on {}] -> {}",
        report.bits,
        report.dataset,
        report.split.query,
        report.split.database,
        report.map_all,
        report.map_at_1000.unwrap_or(f64::NAN),
        selected.info.kind,
        selected.info.adapter,
        path.display()
    );
    Ok(())
}
