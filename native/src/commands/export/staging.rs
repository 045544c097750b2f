//! Where an export is written: refused over an existing directory without `--force`, staged in a
//! sibling directory, and renamed into place only when complete.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Refuses an existing `out` without `force` before any work starts.
pub(super) fn check_target(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        bail!(
            "{} exists: pass --force to replace it, or --out another directory",
            out.display()
        );
    }
    Ok(())
}

/// A fresh staging directory beside `out` (same file system, so publishing is a rename).
pub(super) fn staging_dir(out: &Path) -> Result<PathBuf> {
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
pub(super) fn publish(staging: &Path, out: &Path, force: bool) -> Result<()> {
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
