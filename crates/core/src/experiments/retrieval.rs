//! The retrieval experiment behind `hashguard eval`: a trained run's queries ranked against its
//! database by Hamming distance, with mAP@all, mAP@k, precision@k and the precision-recall
//! curve, as a typed report.

use std::path::PathBuf;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{BackendInfo, Progress};
use crate::data::{Split, TrainSize};
use crate::metrics::{PrPoint, evaluate_retrieval};
use crate::retrieval::HammingIndex;
use crate::run::{DataSpec, OpenedRun};
use crate::{Error, Result};

/// The split a report was measured on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// How it was drawn, in words.
    pub protocol: String,
    /// Query images.
    pub query: usize,
    /// Training images.
    pub train: usize,
    /// Database images.
    pub database: usize,
    /// Query images per class (`null` when the roles come from list files).
    pub query_per_class: Option<usize>,
    /// Training images per class, or all (`null` for list files).
    pub train_size: Option<TrainSize>,
    /// Seed of the draw (`null` for list files).
    pub seed: Option<u64>,
}

/// A metric at a cut-off k.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapAt {
    /// The cut-off.
    pub k: usize,
    /// mAP over the top k.
    pub map: f64,
}

/// Mean precision at a cut-off k.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrecisionAt {
    /// The cut-off.
    pub k: usize,
    /// Mean precision of the top k.
    pub precision: f64,
}

/// The JSON report of `hashguard eval` (fields documented in the README).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalReport {
    /// The version of hashguard that measured it.
    pub hashguard_version: String,
    /// The run.
    pub run: PathBuf,
    /// Its data set.
    pub dataset: String,
    /// The directory read, or `embedded`.
    pub data_source: String,
    /// The split.
    pub split: SplitSummary,
    /// Code length K.
    pub bits: usize,
    /// mAP over the whole database ranking.
    pub map_all: f64,
    /// mAP over the top 1000.
    pub map_at_1000: Option<f64>,
    /// The data set's conventional metric: `mAP@all`, or `mAP@k` for the field's cut-off
    /// (5000 for NUS-WIDE and MS-COCO, 1000 for ImageNet-100).
    #[serde(default)]
    pub convention: String,
    /// Its value (`null` in reports written before it existed).
    #[serde(default)]
    pub map_convention: Option<f64>,
    /// mAP over the top k, per requested k.
    pub map_at: Vec<MapAt>,
    /// Mean precision of the top k, per requested k.
    pub precision_at: Vec<PrecisionAt>,
    /// Precision and recall within each Hamming radius 0..=K.
    pub pr_curve: Vec<PrPoint>,
    /// Queries with no relevant database item (their AP counts as 0).
    pub queries_without_relevant: usize,
    /// What computed it.
    pub backend: BackendInfo,
    /// Wall time of encoding.
    pub encode_seconds: f64,
    /// Wall time of ranking and metrics.
    pub retrieval_seconds: f64,
}

/// How `split` was made from `data`, in words and figures.
pub fn split_summary(data: &DataSpec, split: &Split) -> SplitSummary {
    let own_roles = data.kind.has_own_roles();
    let protocol = if own_roles {
        "roles from the list files: test.txt = query, train.txt, database.txt"
    } else {
        match data.split.train {
            TrainSize::All => {
                "query per class; train = database = every non-query image (DeepHash-pytorch cifar10-2 style)"
            }
            TrainSize::PerClass(_) => {
                "query and train per class; database = the rest (DeepHash-pytorch cifar10 style)"
            }
        }
    };
    let drawn = !own_roles;
    SplitSummary {
        protocol: protocol.into(),
        query: split.query.len(),
        train: split.train.len(),
        database: split.database.len(),
        query_per_class: drawn.then_some(data.split.query_per_class),
        train_size: drawn.then_some(data.split.train),
        seed: drawn.then_some(data.split.seed),
    }
}

/// Encodes `run`'s queries (and its database unless `database.codes` is current), ranks the
/// database for each and measures retrieval at the cut-offs `ks` (1000 is always added).
pub fn run_retrieval(
    run: &OpenedRun,
    ks: &[usize],
    backend: BackendInfo,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<RetrievalReport> {
    if ks.contains(&0) {
        return Err(Error::InvalidArgument(
            "--k values must be at least 1".into(),
        ));
    }
    let split = &run.split;
    let start = web_time::Instant::now();
    let database = match run.cached_database() {
        Some(codes) => codes,
        None => {
            progress.phase("database", split.database.len() as u64);
            let codes = run.encode(&split.database, device, |n| progress.inc(n as u64))?;
            progress.finish();
            codes
        }
    };
    progress.phase("queries", split.query.len() as u64);
    let queries = run.encode(&split.query, device, |n| progress.inc(n as u64))?;
    progress.finish();
    let encode_seconds = start.elapsed().as_secs_f64();

    let start = web_time::Instant::now();
    let mut ks = ks.to_vec();
    let topk = run.config.data.kind.map_topk();
    for k in [Some(1000), topk].into_iter().flatten() {
        if !ks.contains(&k) {
            ks.push(k);
        }
    }
    let metrics = evaluate_retrieval(
        &queries,
        &run.labels(&split.query),
        &HammingIndex::new(database),
        &run.labels(&split.database),
        &ks,
    )?;
    let data = &run.config.data;
    Ok(RetrievalReport {
        hashguard_version: env!("CARGO_PKG_VERSION").into(),
        run: run.dir.root().to_path_buf(),
        dataset: data.dataset.clone(),
        data_source: data.source.clone(),
        split: split_summary(&run.config.data, split),
        bits: run.bits(),
        map_all: metrics.map_all,
        map_at_1000: metrics.map_at(1000),
        convention: topk.map_or("mAP@all".into(), |k| format!("mAP@{k}")),
        map_convention: Some(topk.map_or(Some(metrics.map_all), |k| metrics.map_at(k))).flatten(),
        map_at: metrics
            .map_at
            .iter()
            .map(|&(k, map)| MapAt { k, map })
            .collect(),
        precision_at: metrics
            .precision_at
            .iter()
            .map(|&(k, precision)| PrecisionAt { k, precision })
            .collect(),
        pr_curve: metrics.pr_curve,
        queries_without_relevant: metrics.queries_without_relevant,
        backend,
        encode_seconds,
        retrieval_seconds: start.elapsed().as_secs_f64(),
    })
}
