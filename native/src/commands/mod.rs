//! One module per subcommand, plus what they share: flag parsers over the library's own, and
//! opening a run with progress bars.

pub mod attack;
pub mod data;
pub mod detect;
pub mod encode;
pub mod eval;
pub mod export;
pub mod export_web;
pub mod reproduce;
pub mod train;

use std::path::Path;

use anyhow::Result;
use hashguard_core::attacks::CwMargin;
use hashguard_core::experiments::{AttackKind, parse_cw_margin, parse_fraction};
use hashguard_core::retrieval::{HammingIndex, PackedCodes};
use hashguard_core::run::OpenedRun;

use crate::backend::Selected;
use crate::progress::bar;

/// `--eps`-style flags: a number in (0, 1] or a fraction such as `8/255`.
pub fn pixel_budget(s: &str) -> Result<f32, String> {
    parse_fraction(s).map_err(|e| e.to_string())
}

/// Counts, rates and weights: a finite number above 0 (NaN, infinities, 0 and negative values
/// are refused while the command line is parsed).
pub fn positive<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let v = finite::<T>(s)?;
    if v > T::default() {
        Ok(v)
    } else {
        Err(format!("{s} must be above 0"))
    }
}

/// Weights and counts where 0 means "none": a finite number, 0 or above.
pub fn non_negative<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let v = finite::<T>(s)?;
    if v >= T::default() {
        Ok(v)
    } else {
        Err(format!("{s} must be 0 or above"))
    }
}

/// `s` as a `T`, refusing NaN and infinities (which float types parse).
fn finite<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let v = s.trim().parse::<T>().map_err(|e| format!("{s:?}: {e}"))?;
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(v),
        _ => Err(format!("{s} is not a finite number")),
    }
}

/// `--method`/`--attack`: `pgd`, `hag`, `dhta` or `cw`.
pub fn kind(s: &str) -> Result<AttackKind, String> {
    s.parse().map_err(|e: hashguard_core::Error| e.to_string())
}

/// `--cw-margin`: `logits` or `relaxed`.
pub fn margin(s: &str) -> Result<CwMargin, String> {
    parse_cw_margin(s).map_err(|e| e.to_string())
}

/// Codes of the run's images `indices`, with a progress bar named `what`.
pub fn encode(
    run: &OpenedRun,
    indices: &[usize],
    what: &str,
    selected: &Selected,
) -> Result<PackedCodes> {
    let pb = bar(indices.len() as u64, what);
    let codes = run.encode(indices, &selected.device, |done| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    Ok(codes)
}

/// The run's database codes: its current `database.codes`, else encoded with a progress bar.
pub fn database_codes(run: &OpenedRun, selected: &Selected) -> Result<PackedCodes> {
    match run.cached_database() {
        Some(codes) => Ok(codes),
        None => encode(run, &run.split.database, "database", selected),
    }
}

/// Opens the run at `root` (images from `data` when given) with its database index.
pub fn open_with_database(
    root: &Path,
    data: Option<&Path>,
    selected: &Selected,
) -> Result<(OpenedRun, HammingIndex)> {
    let run = OpenedRun::open(root, data, &selected.device)?;
    let index = HammingIndex::new(database_codes(&run, selected)?);
    Ok((run, index))
}
