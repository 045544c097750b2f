//! `hashguard data check`: validates a list-file data set or an image folder before any
//! training and prints what each role holds and every problem found (`--report` as JSON).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use hashguard_core::data::{DatasetKind, check_folder, check_lists};
use hashguard_core::run::write_atomic;

use crate::progress::Bars;

/// Subcommands of `hashguard data`.
#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Check a data set's files: list files and their images, or an image folder.
    Check(CheckArgs),
}

/// Flags of `hashguard data check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// `folder` or a list-file preset (`list`, `cifar10-list`, `nus-wide-21`, `coco`,
    /// `flickr25k`, `imagenet100`).
    #[arg(long, value_parser = super::train::parse_dataset)]
    dataset: DatasetKind,
    /// The image root (list files) or the folder of class folders.
    #[arg(long)]
    data: PathBuf,
    /// Directory of train.txt, test.txt and database.txt (default: --data).
    #[arg(long, value_name = "DIR")]
    lists: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Runs `hashguard data ...`.
pub fn run(command: DataCommand) -> Result<()> {
    let DataCommand::Check(args) = command;
    let mut bars = Bars::default();
    let report = match args.dataset {
        DatasetKind::List(preset) => check_lists(
            &args.data,
            args.lists.as_deref().unwrap_or(&args.data),
            preset,
            &mut bars,
        )?,
        DatasetKind::Folder if args.lists.is_none() => check_folder(&args.data, &mut bars)?,
        DatasetKind::Folder => bail!("--lists is for list files, not --dataset folder"),
        other => bail!(
            "`data check` checks natural-image data sets (folder or list files), not {}",
            other.name()
        ),
    };
    print!("{}", report.to_text());
    if let Some(path) = &args.report {
        write_atomic(path, &serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !report.ok {
        bail!(
            "{} problems in the data set (listed above)",
            report.problems.len()
        );
    }
    Ok(())
}
