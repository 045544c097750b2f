//! `hashguard eval`: encodes the queries (and the database unless `database.codes` is current),
//! ranks the database by Hamming distance and reports mAP@all, mAP@k, precision@k and the
//! precision-recall curve as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::module::Module;
use clap::Args;
use hashguard_core::metrics::evaluate_retrieval;
use hashguard_core::retrieval::HammingIndex;
use hashguard_core::run::{RunDir, write_atomic};
use serde_json::json;

use super::encode::{database_codes, encode};
use super::load_run_data;
use crate::backend::Selected;

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
    /// Cut-offs k for mAP@k and precision@k (besides mAP over the whole ranking).
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 100])]
    k: Vec<usize>,
}

/// Runs `hashguard eval`.
pub fn run(args: EvalArgs, selected: Selected) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    if args.k.contains(&0) {
        anyhow::bail!("--k values must be at least 1");
    }
    let config = run.read_config()?;
    let model = run.load_model(&config, &selected.device)?.valid();
    let (set, split) = load_run_data(&config, args.data.as_deref())?;
    let bits = config.train.model.bits;

    let start = std::time::Instant::now();
    let database = database_codes(
        &run,
        &model,
        &set,
        &split.database,
        args.data.is_some(),
        &selected,
    )?;
    let queries = encode(&model, &set, &split.query, "queries", &selected)?;
    let encode_seconds = start.elapsed().as_secs_f64();

    let start = std::time::Instant::now();
    let query_labels: Vec<_> = split.query.iter().map(|&i| set.labels[i]).collect();
    let db_labels: Vec<_> = split.database.iter().map(|&i| set.labels[i]).collect();
    let mut ks = args.k.clone();
    if !ks.contains(&1000) {
        ks.push(1000);
    }
    let metrics = evaluate_retrieval(
        &queries,
        &query_labels,
        &HammingIndex::new(database),
        &db_labels,
        &ks,
    )?;
    let retrieval_seconds = start.elapsed().as_secs_f64();

    let report = json!({
        "hashguard_version": env!("CARGO_PKG_VERSION"),
        "run": args.run,
        "dataset": config.data.dataset,
        "data_source": config.data.source,
        "split": {
            "protocol": match config.data.split.train {
                hashguard_core::data::TrainSize::All => "query per class; train = database = every non-query image (DeepHash-pytorch cifar10-2 style)",
                hashguard_core::data::TrainSize::PerClass(_) => "query and train per class; database = the rest (DeepHash-pytorch cifar10 style)",
            },
            "query": split.query.len(),
            "train": split.train.len(),
            "database": split.database.len(),
            "query_per_class": config.data.split.query_per_class,
            "train_size": config.data.split.train,
            "seed": config.data.split.seed,
        },
        "bits": bits,
        "map_all": metrics.map_all,
        "map_at_1000": metrics.map_at(1000),
        "map_at": metrics.map_at.iter().map(|(k, v)| json!({"k": k, "map": v})).collect::<Vec<_>>(),
        "precision_at": metrics.precision_at.iter().map(|(k, v)| json!({"k": k, "precision": v})).collect::<Vec<_>>(),
        "pr_curve": metrics.pr_curve,
        "queries_without_relevant": metrics.queries_without_relevant,
        "backend": selected.info,
        "encode_seconds": encode_seconds,
        "retrieval_seconds": retrieval_seconds,
    });
    let path = args.report.unwrap_or_else(|| run.file("report.json"));
    write_atomic(&path, &serde_json::to_vec_pretty(&report)?).context("writing the report")?;
    println!(
        "{}-bit {} ({} queries vs {} database): mAP@all {:.4}, mAP@1000 {:.4} [{} on {}] -> {}",
        bits,
        config.data.dataset,
        split.query.len(),
        split.database.len(),
        metrics.map_all,
        metrics.map_at(1000).unwrap_or(f64::NAN),
        selected.info.kind,
        selected.info.adapter,
        path.display()
    );
    Ok(())
}
