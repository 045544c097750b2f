//! `hashguard encode`: the run's database images through the trained model into packed codes,
//! saved as `database.codes` in the run directory (reused by `eval` while still current).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hashguard_core::run::{OpenedRun, write_atomic};

use crate::backend::Selected;

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

/// Runs `hashguard encode`.
pub fn run(args: EncodeArgs, selected: Selected) -> Result<()> {
    let run = OpenedRun::open(&args.run, args.data.as_deref(), &selected.device)?;
    let start = std::time::Instant::now();
    let codes = super::encode(&run, &run.split.database, "encode", &selected)?;
    let path = run.dir.file("database.codes");
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
