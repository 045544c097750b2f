//! `hashguard export`: a run's codes, labels and (from an attack report) adversarial images as
//! NumPy `.npy` arrays, and with `--format faiss` its database as a FAISS binary index, so they
//! can be taken to NumPy, FAISS or a vector database. Written to a temporary directory, renamed.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use hashguard_core::experiments::AttackReport;
use hashguard_core::retrieval::{HammingIndex, Neighbour};
use hashguard_core::run::{OpenedRun, write_atomic};
use ndarray::Array2;
use serde::Serialize;

use super::{database_codes, encode};
use crate::backend::Selected;

mod arrays;
mod attack;
mod staging;

use arrays::{ArrayEntry, Writer};
use attack::{AttackExport, export_attack};
use staging::{check_target, publish, staging_dir};

/// Flags of `hashguard export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run directory written by `hashguard train`.
    #[arg(long)]
    run: PathBuf,
    /// `npy`: codes (packed uint8 rows), labels and data-set positions as `.npy` arrays;
    /// `faiss`: the same arrays and the database as a FAISS `IndexBinaryFlat` (`database.faiss`).
    #[arg(long, value_enum)]
    format: Format,
    /// Directory to create (default RUN/export-FORMAT). An existing one is replaced only with
    /// --force.
    #[arg(long)]
    out: Option<PathBuf>,
    /// An attack report written by `hashguard attack`: the attack is re-run from the
    /// configuration the report saved, checked against the report's figures, and its
    /// adversarial images, codes and success flags are exported too.
    #[arg(long)]
    attack: Option<PathBuf>,
    /// Exact nearest database rows written per query as ground truth (`query_neighbours.npy`,
    /// `query_distances.npy`: ties in database order), e.g. for an approximate index's recall;
    /// 0 writes none.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 100)]
    neighbours: usize,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
    /// Read the images from this directory instead of the one the run was trained on.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// What `hashguard export` writes besides the arrays every format has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Arrays only.
    Npy,
    /// Arrays and a FAISS binary index of the database.
    Faiss,
}

/// `manifest.json` of an export: what each file holds, and where it came from.
#[derive(Debug, Serialize)]
struct Manifest {
    run: PathBuf,
    dataset: String,
    /// Fingerprint of the model whose codes these are.
    model: String,
    bits: usize,
    /// How a code's bits sit in its bytes.
    bit_order: &'static str,
    classes: Vec<String>,
    format: Format,
    arrays: Vec<ArrayEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    faiss_index: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attack: Option<AttackExport>,
}

/// Runs `hashguard export`.
pub fn run(args: ExportArgs, selected: Selected) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        args.run.join(match args.format {
            Format::Npy => "export-npy",
            Format::Faiss => "export-faiss",
        })
    });
    check_target(&out, args.force)?;
    let attack: Option<(PathBuf, AttackReport)> = match &args.attack {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the attack report {}", path.display()))?;
            let report: AttackReport = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not an attack report of `hashguard attack`",
                    path.display()
                )
            })?;
            Some((path.clone(), report))
        }
        None => None,
    };
    let run = OpenedRun::open(&args.run, args.data.as_deref(), &selected.device)?;
    if run.bits() % 8 != 0 {
        bail!(
            "the run's codes have {} bits: NumPy byte rows and FAISS need a multiple of 8",
            run.bits()
        );
    }
    let model = run.model_fingerprint()?;
    if let Some((path, report)) = &attack {
        if report.config.is_none() {
            bail!(
                "{}: written before reports kept their configuration; re-run `hashguard attack` \
                 to get one that can be exported",
                path.display()
            );
        }
        // Reports written before the weights fingerprint carry the whole file's FNV instead.
        let legacy = || {
            std::fs::read(run.dir.file("model.bpk"))
                .map(hashguard_core::run::fingerprint)
                .ok()
        };
        let other_model = report
            .model
            .as_deref()
            .is_some_and(|m| m != model && legacy().as_deref() != Some(m));
        if other_model || report.bits != run.bits() {
            bail!(
                "{} attacked another model than {}'s: export it with the run it was made on",
                path.display(),
                args.run.display()
            );
        }
    }

    let classes = run.set.num_classes();
    let db_size = run.split.database.len();
    if args.neighbours > db_size {
        bail!(
            "--neighbours {} exceeds the run's {db_size} database images: choose at most \
             {db_size} (0 writes none)",
            args.neighbours
        );
    }
    let database = database_codes(&run, &selected)?;
    let queries = encode(&run, &run.split.query, "queries", &selected)?;
    let index = HammingIndex::new(database);
    let neighbours = (args.neighbours > 0).then(|| index.search(&queries, args.neighbours));
    let database = index.codes();
    let staging = staging_dir(&out)?;
    let result = (|| -> Result<Manifest> {
        let mut w = Writer {
            dir: &staging,
            arrays: Vec::new(),
        };
        w.codes(
            "database_codes.npy",
            "database codes, K/8 bytes per row",
            database,
        )?;
        w.codes(
            "query_codes.npy",
            "query codes, K/8 bytes per row",
            &queries,
        )?;
        w.labels(
            "database_labels.npy",
            &run.labels(&run.split.database),
            classes,
        )?;
        w.labels("query_labels.npy", &run.labels(&run.split.query), classes)?;
        w.positions(
            "database_ids.npy",
            "each database row's position in the data set",
            &run.split.database,
        )?;
        w.positions(
            "query_ids.npy",
            "each query row's position in the data set",
            &run.split.query,
        )?;
        if let Some(found) = &neighbours {
            let k = found.first().map_or(0, Vec::len);
            let rows = |f: &dyn Fn(&Neighbour) -> i64| {
                Array2::from_shape_fn((found.len(), k), |(q, j)| f(&found[q][j]))
            };
            w.array(
                "query_neighbours.npy",
                "int64",
                "each query's exact nearest database rows, nearest first, ties in row order",
                &rows(&|n| n.index as i64),
            )?;
            let distances = rows(&|n| i64::from(n.distance)).mapv(|d| d as i32);
            w.array(
                "query_distances.npy",
                "int32",
                "their Hamming distances",
                &distances,
            )?;
        }
        let faiss_index = match args.format {
            Format::Npy => None,
            Format::Faiss => {
                let name = "database.faiss";
                std::fs::write(staging.join(name), database.to_faiss_binary_flat()?)
                    .with_context(|| format!("writing {name}"))?;
                Some(name.to_string())
            }
        };
        let attack = match &attack {
            Some((path, report)) => Some(export_attack(
                &run, &index, path, report, &mut w, &selected,
            )?),
            None => None,
        };
        let manifest = Manifest {
            run: args.run.clone(),
            dataset: run.config.data.dataset.clone(),
            model: model.clone(),
            bits: run.bits(),
            bit_order: "bit j of a code is bit j % 8 (lowest first) of byte j / 8, as \
                        numpy.packbits(..., bitorder='little') and FAISS pack them",
            classes: run.set.class_names.clone(),
            format: args.format,
            arrays: w.arrays,
            faiss_index,
            attack,
        };
        write_atomic(
            &staging.join("manifest.json"),
            &serde_json::to_vec_pretty(&manifest)?,
        )?;
        Ok(manifest)
    })();
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    publish(&staging, &out, args.force)?;
    eprintln!(
        "exported {} database and {} query codes ({} bits){}{} to {}",
        database.len(),
        queries.len(),
        run.bits(),
        if manifest.faiss_index.is_some() {
            ", a FAISS binary index"
        } else {
            ""
        },
        manifest.attack.as_ref().map_or(String::new(), |a| format!(
            ", {} adversarial images",
            a.queries
        )),
        out.display()
    );
    Ok(())
}
