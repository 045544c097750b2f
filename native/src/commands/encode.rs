//! `hashguard encode`: the run's database images through the trained model into packed codes,
//! saved as `database.codes` in the run directory (reused by `eval` while still current).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use clap::Args;
use hashguard_core::data::ImageSet;
use hashguard_core::model::{HashNet, encode_images};
use hashguard_core::retrieval::PackedCodes;
use hashguard_core::run::{RunDir, write_atomic};

use super::load_run_data;
use crate::backend::Selected;
use crate::progress::bar;

/// Images per inference batch.
pub const ENCODE_BATCH: usize = 256;

/// Flags of `hashguard encode`.
#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// Run directory written by `hashguard train`.
    #[arg(long)]
    run: PathBuf,
    /// Read the images from this directory instead of the one the run was trained on.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Binary codes of `indices`, with a progress bar.
pub fn encode(
    model: &HashNet,
    set: &ImageSet,
    indices: &[usize],
    what: &str,
    selected: &Selected,
) -> Result<PackedCodes> {
    let pb = bar(indices.len() as u64, what);
    let relaxed = encode_images(
        model,
        set,
        indices,
        ENCODE_BATCH,
        &selected.device,
        |done| pb.set_position(done as u64),
    )?;
    pb.finish_and_clear();
    Ok(PackedCodes::from_signs(model.bits(), &relaxed))
}

/// The cached database codes, if present, readable, of the right shape and newer than the model.
pub fn cached_database(run: &RunDir, bits: usize, count: usize) -> Option<PackedCodes> {
    let path = run.file("database.codes");
    let newer = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if newer(&path)? < newer(&run.file("model.bpk"))? {
        return None;
    }
    let codes = PackedCodes::from_bytes(&std::fs::read(&path).ok()?, &path).ok()?;
    (codes.bits() == bits && codes.len() == count).then_some(codes)
}

/// The database codes: the run's cached `database.codes` when it is current and the data is
/// the run's own (`data_override` is false), else freshly encoded.
pub fn database_codes(
    run: &RunDir,
    model: &HashNet,
    set: &ImageSet,
    database: &[usize],
    data_override: bool,
    selected: &Selected,
) -> Result<PackedCodes> {
    match (!data_override)
        .then(|| cached_database(run, model.bits(), database.len()))
        .flatten()
    {
        Some(codes) => Ok(codes),
        None => encode(model, set, database, "database", selected),
    }
}

/// Runs `hashguard encode`.
pub fn run(args: EncodeArgs, selected: Selected) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    let config = run.read_config()?;
    let model = run.load_model(&config, &selected.device)?.valid();
    let (set, split) = load_run_data(&config, args.data.as_deref())?;
    let start = std::time::Instant::now();
    let codes = encode(&model, &set, &split.database, "encode", &selected)?;
    let path = run.file("database.codes");
    write_atomic(&path, &codes.to_bytes()).context("writing the database codes")?;
    eprintln!(
        "encoded {} database images into {}-bit codes in {:.1}s with {} [{}]: {}",
        codes.len(),
        codes.bits(),
        start.elapsed().as_secs_f64(),
        selected.info.kind,
        selected.info.adapter,
        path.display()
    );
    Ok(())
}
