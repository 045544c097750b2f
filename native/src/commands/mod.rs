//! One module per subcommand, plus the data loading they share.

pub mod attack;
pub mod detect;
pub mod encode;
pub mod eval;
pub mod export;
pub mod train;

use std::path::Path;

use anyhow::{Context, Result};
use hashguard_core::data::{DataSource, ImageSet, Split};
use hashguard_core::run::RunConfig;

/// Loads the data a run was trained on (or `--data DIR` instead) and redraws its split.
pub fn load_run_data(config: &RunConfig, data: Option<&Path>) -> Result<(ImageSet, Split)> {
    let source = match data {
        Some(dir) => config.data.kind.resolve(Some(dir))?,
        None if config.data.source == "embedded" => DataSource::Embedded,
        None => {
            let dir = Path::new(&config.data.source);
            if !dir.is_dir() {
                anyhow::bail!(
                    "the run was trained on {}, which no longer exists: pass --data DIR",
                    dir.display()
                );
            }
            DataSource::Dir(dir.into())
        }
    };
    let set = config.data.kind.load(&source)?;
    let split = config
        .data
        .split
        .split(&set)
        .context("redrawing the run's split")?;
    Ok((set, split))
}
