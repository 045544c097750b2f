//! `cargo run -p xtask -- web-build | web-serve`: builds the browser demo (wasm32 build of
//! hashguard-web, wasm-bindgen run as a library so no CLI of a matching version needs
//! installing, `wasm-opt` on request, gzip and brotli copies, a size report and budget) and serves
//! a directory over HTTP on localhost, precompressed copies first.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod build;
mod serve;
mod sizes;

use build::web_build;
use serve::serve;

const USAGE: &str = "usage: cargo run -p xtask -- web-build [--profile web-release|web-dev] [--out DIR] \
                     [--max-gzip-mb MB] [--wasm-opt] | web-serve [--dir DIR] [--port 8080]";

/// Runs the subcommand; an error is one line on stderr (its causes joined by `: `), exit code 1.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("web-build") => {
            let parsed = Args::parse(
                &args[1..],
                &["--profile", "--out", "--max-gzip-mb"],
                &["--wasm-opt"],
            )?;
            let profile = parsed.value("--profile").unwrap_or("web-release");
            let out = parsed
                .value("--out")
                .map_or_else(|| root.join("web/dist"), PathBuf::from);
            let budget = parsed
                .value("--max-gzip-mb")
                .map(|v| match v.parse::<f64>() {
                    Ok(mb) if mb.is_finite() && mb > 0.0 => Ok(mb),
                    _ => bail!("--max-gzip-mb must be a positive number of megabytes, not {v:?}"),
                })
                .transpose()?;
            web_build(&root, profile, &out, budget, parsed.has("--wasm-opt"))
        }
        Some("web-serve") => {
            let parsed = Args::parse(&args[1..], &["--dir", "--port"], &[])?;
            let dir = parsed
                .value("--dir")
                .map_or_else(|| root.join("web/dist"), PathBuf::from);
            let port: u16 = parsed
                .value("--port")
                .unwrap_or("8080")
                .parse()
                .context("--port must be a number")?;
            serve(&dir, port)
        }
        _ => bail!("{USAGE}"),
    }
}

/// A subcommand's arguments, read once and in order: each flag's value is the argument right
/// after it, so a value that looks like a flag (`--out --wasm-opt`) stays a value.
#[derive(Debug, Default)]
struct Args {
    values: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Args {
    /// Reads `args` (after the subcommand). Refuses an argument that is neither one of the
    /// `valued` flags followed by a value nor one of the `switches`, and a flag given twice, so a
    /// misspelt or repeated flag is not silently ignored.
    fn parse(args: &[String], valued: &[&str], switches: &[&str]) -> Result<Self> {
        let mut parsed = Self::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let seen =
                parsed.values.iter().any(|(flag, _)| flag == arg) || parsed.switches.contains(arg);
            if seen {
                bail!("{arg} given twice: {USAGE}");
            }
            if valued.contains(&arg.as_str()) {
                let Some(value) = rest.next() else {
                    bail!("{arg} needs a value: {USAGE}");
                };
                parsed.values.push((arg.clone(), value.clone()));
            } else if switches.contains(&arg.as_str()) {
                parsed.switches.push(arg.clone());
            } else {
                bail!("unknown argument {arg:?}: {USAGE}");
            }
        }
        Ok(parsed)
    }

    /// The value given to `flag`, if it was given.
    fn value(&self, flag: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the switch `name` was given.
    fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
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

#[cfg(test)]
mod tests {
    use super::Args;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_string()).collect()
    }

    fn parse(args: &[&str]) -> anyhow::Result<Args> {
        Args::parse(&strings(args), &["--out", "--port"], &["--wasm-opt"])
    }

    #[test]
    fn a_value_that_looks_like_a_switch_stays_a_value() {
        let parsed = parse(&["--out", "--wasm-opt"]).unwrap();
        assert_eq!(parsed.value("--out"), Some("--wasm-opt"));
        assert!(!parsed.has("--wasm-opt"));
        let parsed = parse(&["--wasm-opt", "--out", "d"]).unwrap();
        assert!(parsed.has("--wasm-opt"));
        assert_eq!(parsed.value("--out"), Some("d"));
        assert_eq!(parsed.value("--port"), None);
    }

    #[test]
    fn unknown_repeated_and_valueless_flags_are_refused() {
        for (args, says) in [
            (&["--wasm-opts"][..], "unknown argument"),
            (&["--out", "a", "--out", "b"][..], "given twice"),
            (&["--wasm-opt", "--wasm-opt"][..], "given twice"),
            (&["--port"][..], "needs a value"),
            (&["--out", "d", "stray"][..], "unknown argument"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(says), "{args:?}: {err}");
            assert!(err.contains("usage:"), "{args:?}: {err}");
        }
    }
}
