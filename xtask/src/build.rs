//! `web-build`: the two wasm modules (with and without WebGPU), wasm-bindgen as a library,
//! `wasm-opt`, and the page with its assets beside them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sizes::{Column, STAGES, compress_all};

/// The app's two builds: the subdirectory of the output each goes to and its cargo features.
/// The page starts the second (CPU-only) everywhere, then moves onto the first where the
/// browser offers a WebGPU adapter.
const MODULES: [(&str, &[&str]); 2] = [("", &["--features", "webgpu"]), ("cpu", &[])];

/// Builds the demo into `out`: both modules (see [`MODULES`]) through wasm-bindgen (and
/// wasm-opt when `wasm_opt` asks for it), the page, the assets, their compressed copies and the
/// size report; fails when what the page downloads before the demo can be used exceeds
/// `budget_mb` gzipped.
pub(crate) fn web_build(
    root: &Path,
    profile: &str,
    out: &Path,
    budget_mb: Option<f64>,
    wasm_opt: bool,
) -> Result<()> {
    let mut notes = Vec::new();
    for (dir, features) in MODULES {
        let note = build_module(root, profile, &out.join(dir), features, wasm_opt)?;
        notes.push(format!(
            "{}: {note}",
            if dir.is_empty() { "webgpu" } else { dir }
        ));
    }
    finish_web_build(root, out, budget_mb, &notes)
}

/// Builds one module of the app with `features` into `out` (wasm-bindgen's output, through
/// wasm-opt when `optimise` is set); returns what wasm-opt did.
fn build_module(
    root: &Path,
    profile: &str,
    out: &Path,
    features: &[&str],
    optimise: bool,
) -> Result<String> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "-p",
            "hashguard-web",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            profile,
        ])
        .args(features)
        .current_dir(root)
        .status()
        .context("running cargo build for wasm32")?;
    if !status.success() {
        bail!(
            "the wasm build failed (is the target installed? `rustup target add wasm32-unknown-unknown`)"
        );
    }
    let wasm = target_dir(root)?
        .join("wasm32-unknown-unknown")
        .join(profile)
        .join("hashguard_web.wasm");
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        .generate(out)
        .context("running wasm-bindgen")?;
    let bg = out.join("hashguard_web_bg.wasm");
    let before = std::fs::metadata(&bg)?.len();
    // wasm-opt only when asked: on the shipped profile it shrinks the raw modules by 15–21 %
    // but the gzip and brotli copies that browsers download grow by 3–5 %, and it takes minutes
    // (docs/BENCHMARKS.md). The features are the ones rustc's wasm32 target emits (plus SIMD,
    // which Burn's CPU kernels use); binaryen rejects a module using anything not listed.
    let optimised_tmp = out.join("hashguard_web_bg.opt.tmp");
    let opt = if optimise {
        match wasm_opt(root) {
            Ok(program) => Command::new(&program)
                .args([
                    "-Oz",
                    "--enable-bulk-memory",
                    "--enable-nontrapping-float-to-int",
                    "--enable-sign-ext",
                    "--enable-reference-types",
                    "--enable-multivalue",
                    "--enable-mutable-globals",
                    "--enable-simd",
                    "-o",
                ])
                .arg(&optimised_tmp)
                .arg(&bg)
                .status()
                .map_err(|e| format!("{} did not run ({e})", program.display())),
            Err(why) => Err(why),
        }
    } else {
        Err("not asked for (--wasm-opt)".to_string())
    };
    // The optimised module replaces the original only when wasm-opt succeeded.
    if opt.as_ref().is_ok_and(|s| s.success()) {
        std::fs::rename(&optimised_tmp, &bg).context("replacing the module by wasm-opt's")?;
    } else {
        let _ = std::fs::remove_file(&optimised_tmp);
    }
    Ok(match &opt {
        Ok(s) if s.success() => format!("wasm-opt -Oz from {:.1} MB", before as f64 / 1e6),
        Ok(s) => format!("wasm-opt failed ({s}): module left unoptimised"),
        Err(why) => format!("wasm-opt {why}"),
    })
}

/// Copies the page and the assets beside the modules, compresses everything and checks the
/// budget.
fn finish_web_build(
    root: &Path,
    out: &Path,
    budget_mb: Option<f64>,
    notes: &[String],
) -> Result<()> {
    std::fs::copy(root.join("web/index.html"), out.join("index.html"))
        .context("copying web/index.html")?;
    // The model and demo data are separate files the page fetches (with a progress bar) beside
    // the module, not bytes inside it.
    for name in ASSETS {
        std::fs::copy(root.join("web/assets").join(name), out.join(name))
            .with_context(|| format!("copying web/assets/{name}"))?;
    }
    let sizes = compress_all(out)?;
    println!("{}", sizes.table());
    println!("{}", notes.join("; "));
    let budget = budget_mb.map(|mb| (mb * 1e6) as u64);
    std::fs::write(out.join("sizes.json"), sizes.json(budget))?;
    for stage in &STAGES {
        let (gzip, brotli) = (
            sizes.total(stage, Column::Gzip),
            sizes.total(stage, Column::Brotli),
        );
        if let Some(b) = budget.filter(|_| stage.budgeted)
            && gzip > b
        {
            bail!(
                "the demo downloads {:.2} MB gzipped before it can be used ({}), over the \
                 {:.2} MB budget: see {}",
                gzip as f64 / 1e6,
                stage.name,
                b as f64 / 1e6,
                out.join("sizes.json").display()
            );
        }
        println!(
            "{}: {:.2} MB gzipped ({:.2} MB brotli){}",
            stage.name,
            gzip as f64 / 1e6,
            brotli as f64 / 1e6,
            match budget {
                Some(b) if stage.budgeted => format!(" (budget {:.2} MB gzipped)", b as f64 / 1e6),
                _ => String::new(),
            }
        );
    }
    Ok(())
}

/// The oldest binaryen whose `wasm-opt` output works: Debian 12's 108 yields a module that fails
/// `WebAssembly.Table.set` at start (checked in Chromium).
const MIN_BINARYEN: u32 = 116;

/// The `wasm-opt` to run: `$WASM_OPT`, else the one `npm ci` installs in `web/e2e` (binaryen
/// from npm), else one on `PATH`; refused when older than [`MIN_BINARYEN`].
fn wasm_opt(root: &Path) -> std::result::Result<PathBuf, String> {
    let npm = root.join("web/e2e/node_modules/.bin/wasm-opt");
    let program = std::env::var_os("WASM_OPT")
        .map(PathBuf::from)
        .or_else(|| npm.is_file().then_some(npm))
        .unwrap_or_else(|| PathBuf::from("wasm-opt"));
    let out = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|_| "not found (optional: `npm ci` in web/e2e installs binaryen's)".to_string())?;
    // "wasm-opt version 132 (version_132)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse::<u32>().ok());
    match version {
        Some(v) if v >= MIN_BINARYEN => Ok(program),
        _ => Err(format!(
            "not run: {} is {:?}, older than binaryen {MIN_BINARYEN} or unreadable (`npm ci` in \
             web/e2e installs a newer one)",
            program.display(),
            text.trim()
        )),
    }
}

/// The files the page fetches beside its module (copied from `web/assets`).
const ASSETS: [&str; 3] = ["model.json", "model.bpk", "demo.bin"];

/// The target directory cargo builds into (shared targets and `CARGO_TARGET_DIR` included).
fn target_dir(root: &Path) -> Result<PathBuf> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    Ok(PathBuf::from(
        meta["target_directory"]
            .as_str()
            .context("no target_directory in cargo metadata")?,
    ))
}
