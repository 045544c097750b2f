//! `hashguard export-web`: writes what the browser demo loads — the run's model (`model.bpk`,
//! int8 by default, and `model.json`) and a bundle of real database images with their codes,
//! gallery queries, UMCD's parameters, benign calibration scores and, for the page's ROC, UMCD's
//! scores on queries attacked as the page attacks (`demo.bin`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::Args;
use hashguard_core::demo::{DemoBundle, DemoHeader};
use hashguard_core::detectors::{
    C1Budget, Detector, ImageBatch, Scores, Umcd, UmcdConfig, select_k,
};
use hashguard_core::model::{encode_images, half_precision_record, int8_record};
use hashguard_core::retrieval::{HammingIndex, PackedCodes, hamming};
use hashguard_core::run::{OpenedRun, write_atomic};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::backend::Selected;
use crate::progress::bar;

mod roc;

use roc::attacked_scores;

/// Flags of `hashguard export-web`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run directory written by `hashguard train`.
    #[arg(long)]
    run: PathBuf,
    /// Directory to write model.bpk, model.json and demo.bin into (the web app embeds
    /// web/assets).
    #[arg(long, default_value = "web/assets")]
    out: PathBuf,
    /// Database images to ship (a seeded sample of the run's database).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 1000)]
    database: usize,
    /// Gallery query images per class (from the run's queries).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 3)]
    gallery_per_class: usize,
    /// UMCD's C1 neighbours; default: chosen on the shipped database by the Theorem-1 rule.
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    k: Option<usize>,
    /// UMCD's C3 mean-blur window (Table 1 chose 2 on Fashion-MNIST).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 2)]
    blur: usize,
    /// FPR used to choose k.
    #[arg(value_parser = crate::commands::positive::<f64>, long, default_value_t = 0.05)]
    fpr: f64,
    /// Seed of the samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Read the images from this directory instead of the one the run was trained on.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Precision of the shipped weights: int8 (per-slice scales) quarters the download and f16
    /// halves it (checked on export: the smaller model must give the f32 model's database
    /// codes), f32 ships the run's record as is.
    #[arg(long, value_enum, default_value_t = Precision::Int8)]
    precision: Precision,
    /// Queries (outside the gallery) attacked per attack for the page's ROC: PGD-100 at 8/255
    /// and 32/255 and DHTA-100 at 32/255 towards a random other class, as the page runs them.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 250)]
    roc_queries: usize,
}

/// Storage precision of the exported weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    /// Large weight tensors as IEEE half floats; small ones and batch-norm statistics f32.
    F16,
    /// The run's record unchanged.
    F32,
    /// Large weight tensors as int8 with one f32 scale per slice of the first dimension; small
    /// ones and batch-norm statistics f32.
    Int8,
}

/// Bits of the database codes the shipped (f16 or int8) model may flip, as a share of all bits,
/// before the export is refused (a flip needs a logit within the rounding's reach of zero).
const MAX_FLIPPED: f64 = 1e-3;

/// Runs `hashguard export-web`.
pub fn run(args: ExportArgs, selected: Selected) -> Result<()> {
    if args.blur == 0 || args.gallery_per_class == 0 || args.roc_queries == 0 {
        bail!("--blur, --gallery-per-class and --roc-queries must be at least 1");
    }
    if !(args.fpr > 0.0 && args.fpr < 0.5) {
        bail!("--fpr {} must lie in (0, 0.5)", args.fpr);
    }
    let run = OpenedRun::open(&args.run, args.data.as_deref(), &selected.device)?;
    let (config, model, set, split) = (&run.config, &run.model, &run.set, &run.split);
    let bits = run.bits();
    if args.database < 100 || args.database > split.database.len() {
        bail!(
            "--database {} must lie between 100 and the run's {} database images",
            args.database,
            split.database.len()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut db = split.database.clone();
    db.shuffle(&mut rng);
    db.truncate(args.database);
    db.sort_unstable();
    // Gallery: the first queries of each class, class by class.
    let mut gallery = Vec::new();
    for class in 0..set.num_classes() {
        gallery.extend(
            split
                .query
                .iter()
                .copied()
                .filter(|&i| set.labels[i].primary() == Some(class))
                .take(args.gallery_per_class),
        );
    }
    let mut roc_pool: Vec<usize> = split
        .query
        .iter()
        .copied()
        .filter(|i| !gallery.contains(i))
        .collect();
    if args.roc_queries > roc_pool.len() {
        bail!(
            "--roc-queries {} must be at most the run's {} queries outside the gallery",
            args.roc_queries,
            roc_pool.len()
        );
    }
    roc_pool.shuffle(&mut rng);
    roc_pool.truncate(args.roc_queries);
    roc_pool.sort_unstable();
    let database = set.subset(&db);
    let shape = database.shape();
    let all: Vec<usize> = (0..database.len()).collect();
    let pb = bar(database.len() as u64 * 2, "export");
    let relaxed = encode_images(model, &database, &all, 128, &selected.device, |n| {
        pb.inc(n as u64)
    })?;
    let codes = PackedCodes::from_signs(bits, &relaxed);
    let index = HammingIndex::new(codes.clone());

    let k = match args.k {
        Some(k) if k == 0 || k >= database.len() => {
            bail!("--k {k} must lie between 1 and {}", database.len() - 1)
        }
        Some(k) => k,
        // The rule `detect` uses, with the shipped database as benign calibration set.
        None => {
            let own: Vec<Option<usize>> = all.iter().map(|&i| Some(i)).collect();
            let budget = C1Budget::equal_split(args.fpr);
            select_k(&index, &codes, &own, set.num_classes(), budget)?.0
        }
    };
    let umcd = UmcdConfig { k, blur: args.blur };
    let detector = Umcd {
        config: umcd,
        index: &index,
    };
    let pixels = database.pixels_f32(&all);
    let positions: Vec<Option<usize>> = all.iter().map(|&i| Some(i)).collect();
    let mut benign = Scores::empty(detector.criteria());
    let per = shape.len();
    for start in (0..database.len()).step_by(128) {
        let end = (start + 128).min(database.len());
        benign.extend(detector.score(
            model,
            ImageBatch {
                pixels: &pixels[start * per..end * per],
                shape,
                database_positions: Some(&positions[start..end]),
            },
            &selected.device,
        )?)?;
        pb.inc((end - start) as u64);
    }
    pb.finish_and_clear();
    let attacked = attacked_scores(
        model,
        &detector,
        &set.subset(&roc_pool),
        &database,
        args.seed,
        &selected.device,
    )?;
    let gallery_set = set.subset(&gallery);
    let bundle = DemoBundle {
        header: DemoHeader {
            run: args.run.display().to_string(),
            bits,
            umcd,
            benign: benign.values,
            shape: [shape.channels, shape.height, shape.width],
            class_names: set.class_names.clone(),
            database_labels: database.labels.clone(),
            gallery_labels: gallery_set.labels.clone(),
            attacked,
        },
        database,
        gallery: gallery_set,
        codes,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut model_bytes =
        std::fs::read(run.dir.file("model.bpk")).context("reading the run's model.bpk")?;
    let mut agreement = String::new();
    let shrunk = match args.precision {
        Precision::F32 => None,
        Precision::F16 => Some((
            "f16",
            half_precision_record(model_bytes.clone(), "model.bpk")?,
        )),
        Precision::Int8 => Some(("int8", int8_record(model_bytes.clone(), "model.bpk")?)),
    };
    if let Some((name, (shrunk, summary))) = shrunk {
        // The shipped weights must retrieve what the trained ones do: encode the shipped
        // database again with the smaller model and count the code bits that changed.
        let shipped =
            config
                .train
                .model
                .load(shrunk.clone(), &selected.device, &format!("{name} record"))?;
        let shipped = shipped.valid();
        let again = encode_images(
            &shipped,
            &bundle.database,
            &all,
            128,
            &selected.device,
            |_| {},
        )?;
        let again = PackedCodes::from_signs(bits, &again);
        let flipped: u64 = (0..again.len())
            .map(|i| u64::from(hamming(again.code(i), bundle.codes.code(i))))
            .sum();
        let share = flipped as f64 / (again.len() * bits) as f64;
        if share > MAX_FLIPPED {
            bail!(
                "the {name} weights flip {flipped} of the database's code bits ({:.3} %): export \
                 with a wider --precision",
                100.0 * share
            );
        }
        agreement = format!(
            ", {name}: {} tensors converted, {} kept, {flipped} of {} code bits flipped",
            summary.converted,
            summary.kept,
            again.len() * bits
        );
        model_bytes = shrunk;
    }
    write_atomic(&args.out.join("model.bpk"), &model_bytes)?;
    write_atomic(
        &args.out.join("model.json"),
        &serde_json::to_vec_pretty(&config.train.model)?,
    )?;
    let bytes = bundle.to_bytes()?;
    write_atomic(&args.out.join("demo.bin"), &bytes)?;
    for (i, a) in bundle.header.attacked.iter().enumerate() {
        let roc = bundle.header.union_roc(i, &[args.fpr])?;
        eprintln!(
            "{}: {:.0} % succeeded; UMCD at {:.0} % FPR flags {:.1} % ({:.1} % of the benign)",
            a.name,
            100.0 * a.success_rate,
            100.0 * args.fpr,
            100.0 * roc[0].tpr,
            100.0 * roc[0].fpr
        );
    }
    eprintln!(
        "exported {} database images, {} gallery queries, {} attacked queries per attack, UMCD k = {k}, blur {}x{} ({} KiB bundle, {} KiB model{agreement}) -> {}",
        bundle.database.len(),
        bundle.gallery.len(),
        args.roc_queries,
        args.blur,
        args.blur,
        bytes.len() / 1024,
        model_bytes.len() / 1024,
        args.out.display()
    );
    Ok(())
}
