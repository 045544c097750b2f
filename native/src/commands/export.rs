//! `hashguard export`: a run's codes, labels and (from an attack report) adversarial images as
//! NumPy `.npy` arrays, and with `--format faiss` its database as a FAISS binary index, so they
//! can be taken to NumPy, FAISS or a vector database. Written to a temporary directory, renamed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use hashguard_core::data::LabelSet;
use hashguard_core::experiments::{AttackReport, run_attack};
use hashguard_core::retrieval::{HammingIndex, Neighbour, PackedCodes};
use hashguard_core::run::{OpenedRun, write_atomic};
use ndarray::{Array, Array1, Array2, ArrayD, IxDyn};
use ndarray_npy::{WritableElement, write_npy};
use serde::Serialize;

use super::{database_codes, encode};
use crate::backend::Selected;
use crate::progress::bar;

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
    #[arg(long, default_value_t = 100)]
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

/// One exported array: file name, NumPy dtype and shape.
#[derive(Debug, Serialize)]
struct ArrayEntry {
    file: String,
    dtype: &'static str,
    shape: Vec<usize>,
    what: &'static str,
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

/// The attack an export re-ran, and the figures that matched its report.
#[derive(Debug, Serialize)]
struct AttackExport {
    report: PathBuf,
    method: String,
    queries: usize,
    success_rate: f64,
    mean_linf: f64,
    mean_hamming_to_original: f64,
}

/// Arrays written so far into the staging directory.
struct Writer<'a> {
    dir: &'a Path,
    arrays: Vec<ArrayEntry>,
}

impl Writer<'_> {
    fn array<A: WritableElement, D: ndarray::Dimension>(
        &mut self,
        file: &str,
        dtype: &'static str,
        what: &'static str,
        array: &Array<A, D>,
    ) -> Result<()> {
        let path = self.dir.join(file);
        write_npy(&path, array).with_context(|| format!("writing {}", path.display()))?;
        self.arrays.push(ArrayEntry {
            file: file.into(),
            dtype,
            shape: array.shape().to_vec(),
            what,
        });
        Ok(())
    }

    fn codes(&mut self, file: &str, what: &'static str, codes: &PackedCodes) -> Result<()> {
        let rows = codes.to_byte_rows()?;
        let array = Array2::from_shape_vec((codes.len(), codes.bits() / 8), rows)?;
        self.array(file, "uint8", what, &array)
    }

    fn labels(&mut self, file: &str, labels: &[LabelSet], classes: usize) -> Result<()> {
        let array = Array2::from_shape_fn((labels.len(), classes), |(i, c)| {
            u8::from(labels[i].contains(c))
        });
        self.array(
            file,
            "uint8",
            "multi-hot labels, one column per class",
            &array,
        )
    }

    fn positions(&mut self, file: &str, what: &'static str, indices: &[usize]) -> Result<()> {
        let array = Array1::from_iter(indices.iter().map(|&i| i as i64));
        self.array(file, "int64", what, &array)
    }
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
        if report.model.as_deref().is_some_and(|m| m != model) || report.bits != run.bits() {
            bail!(
                "{} attacked another model than {}'s: export it with the run it was made on",
                path.display(),
                args.run.display()
            );
        }
    }

    let classes = run.set.num_classes();
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

/// Re-runs the attack of `report` and writes its images, codes, positions and success flags.
fn export_attack(
    run: &OpenedRun,
    index: &HammingIndex,
    path: &Path,
    report: &AttackReport,
    w: &mut Writer,
    selected: &Selected,
) -> Result<AttackExport> {
    let config = report.config.as_ref().expect("checked before encoding");
    let batches = report.queries.div_ceil(config.batch_size.max(1));
    let pb = bar(
        (batches * config.spec.total_steps()) as u64,
        "re-running the attack",
    );
    let outcome = run_attack(
        run,
        index,
        config,
        selected.info.clone(),
        &selected.device,
        || pb.inc(1),
    )?;
    pb.finish_and_clear();
    let again = &outcome.report;
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    if again.queries != report.queries
        || !same(again.success_rate, report.success_rate)
        || !same(again.mean_linf, report.mean_linf)
        || !same(
            again.mean_hamming_to_original,
            report.mean_hamming_to_original,
        )
    {
        bail!(
            "re-running the attack of {} gave success {:.4}, mean L∞ {:.6}, mean flips {:.3} \
             against the report's {:.4}, {:.6}, {:.3}: run the export on the backend the report \
             names ({} [{}]) and on the run's original data",
            path.display(),
            again.success_rate,
            again.mean_linf,
            again.mean_hamming_to_original,
            report.success_rate,
            report.mean_linf,
            report.mean_hamming_to_original,
            report.backend.kind,
            report.backend.adapter
        );
    }
    let shape = run.set.shape();
    let n = outcome.queries.len();
    let images = ArrayD::from_shape_vec(
        IxDyn(&[n, shape.channels, shape.height, shape.width]),
        outcome.campaign.adversarial.clone(),
    )?;
    w.array(
        "adversarial_images.npy",
        "float32",
        "adversarial images, N x C x H x W, pixels in [0, 1]",
        &images,
    )?;
    w.codes(
        "adversarial_codes.npy",
        "codes of the adversarial images, K/8 bytes per row",
        &outcome.campaign.adv_codes,
    )?;
    w.positions(
        "adversarial_ids.npy",
        "each adversarial image's query position in the data set",
        &outcome.queries,
    )?;
    let success = Array1::from_iter(outcome.campaign.success.iter().copied());
    w.array(
        "adversarial_success.npy",
        "bool",
        "whether the attack succeeded on each image (the report's rule)",
        &success,
    )?;
    Ok(AttackExport {
        report: path.to_path_buf(),
        method: report.method.to_string(),
        queries: n,
        success_rate: again.success_rate,
        mean_linf: again.mean_linf,
        mean_hamming_to_original: again.mean_hamming_to_original,
    })
}

/// Refuses an existing `out` without `force` before any work starts.
fn check_target(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        bail!(
            "{} exists: pass --force to replace it, or --out another directory",
            out.display()
        );
    }
    Ok(())
}

/// A fresh staging directory beside `out` (same file system, so publishing is a rename).
fn staging_dir(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("{} names no directory", out.display()))?
        .to_string_lossy();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    Ok(staging)
}

/// Renames the finished `staging` directory to `out`; an existing `out` (only with `force`) is
/// moved aside first and removed once the new one is in place.
fn publish(staging: &Path, out: &Path, force: bool) -> Result<()> {
    let mut old = None;
    if out.exists() {
        if !force {
            let _ = std::fs::remove_dir_all(staging);
            bail!(
                "{} appeared during the export: nothing replaced",
                out.display()
            );
        }
        let aside = PathBuf::from(format!("{}.old", staging.display()));
        std::fs::rename(out, &aside)
            .with_context(|| format!("moving the old {} aside", out.display()))?;
        old = Some(aside);
    }
    std::fs::rename(staging, out).with_context(|| format!("renaming into {}", out.display()))?;
    if let Some(old) = old {
        let removed = if old.is_dir() {
            std::fs::remove_dir_all(&old)
        } else {
            std::fs::remove_file(&old)
        };
        removed.with_context(|| format!("removing the replaced {}", old.display()))?;
    }
    Ok(())
}
