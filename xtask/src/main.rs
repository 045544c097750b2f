//! `cargo run -p xtask -- web-build | web-serve`: builds the browser demo (wasm32 build of
//! hashguard-web, wasm-bindgen run as a library so no CLI of a matching version needs
//! installing, `wasm-opt` on request, gzip and brotli copies, a size report and budget) and serves
//! a directory over HTTP on localhost, precompressed copies first.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod build;
mod serve;
mod sizes;

use build::web_build;
use serve::serve;

const USAGE: &str = "usage: cargo run -p xtask -- web-build [--profile web-release|web-dev] [--out DIR] \
                     [--max-gzip-mb MB] [--wasm-opt] | web-serve [--dir DIR] [--port 8080]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("web-build") => {
            check_args(
                &args,
                &["--profile", "--out", "--max-gzip-mb"],
                &["--wasm-opt"],
            )?;
            let profile = flag("--profile").unwrap_or_else(|| "web-release".into());
            let out = flag("--out").map_or_else(|| root.join("web/dist"), PathBuf::from);
            let budget = flag("--max-gzip-mb")
                .map(|v| match v.parse::<f64>() {
                    Ok(mb) if mb.is_finite() && mb > 0.0 => Ok(mb),
                    _ => bail!("--max-gzip-mb must be a positive number of megabytes, not {v:?}"),
                })
                .transpose()?;
            let wasm_opt = args.iter().any(|a| a == "--wasm-opt");
            web_build(&root, &profile, &out, budget, wasm_opt)
        }
        Some("web-serve") => {
            check_args(&args, &["--dir", "--port"], &[])?;
            let dir = flag("--dir").map_or_else(|| root.join("web/dist"), PathBuf::from);
            let port: u16 = flag("--port")
                .unwrap_or_else(|| "8080".into())
                .parse()
                .context("--port must be a number")?;
            serve(&dir, port)
        }
        _ => bail!("{USAGE}"),
    }
}

/// Refuses arguments after the subcommand that are neither one of its `valued` flags followed
/// by a value nor one of its `switches`, so a misspelt flag is not silently ignored.
fn check_args(args: &[String], valued: &[&str], switches: &[&str]) -> Result<()> {
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if valued.contains(&arg.as_str()) {
            if rest.next().is_none() {
                bail!("{arg} needs a value: {USAGE}");
            }
        } else if !switches.contains(&arg.as_str()) {
            bail!("unknown argument {arg:?}: {USAGE}");
        }
    }
    Ok(())
}

/// The workspace being worked on, asked of cargo at run time: the path compiled into the
/// binary can be stale when a shared target dir serves several clones.
fn workspace_root() -> PathBuf {
    let located = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|manifest| Path::new(manifest.trim()).parent().map(Path::to_path_buf));
    located.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in the workspace")
            .to_path_buf()
    })
}
