//! `hashguard`: the command-line lab for deep hashing. It parses flags, picks the backend,
//! shows progress and writes reports; every algorithm lives in `hashguard-core`.

mod backend;
mod commands;
mod config;
mod plot;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use backend::BackendChoice;
use hashguard_core::data::ReadLimits;

/// Train deep hashing models, index their binary codes and measure retrieval.
#[derive(Parser, Debug)]
#[command(name = "hashguard", version, about, long_about = None)]
struct Cli {
    /// Compute backend: `cpu` (Burn Flex), `wgpu` (Vulkan/Metal/DX12), `cuda` (NVIDIA; builds
    /// with the `cuda` feature) or `auto` (wgpu when a hardware GPU adapter is found, else cpu).
    #[arg(long, default_value = "auto", value_parser = backend::choice, global = true)]
    backend: BackendChoice,
    /// Which device of the backend (`hashguard devices` lists them; default: the first
    /// hardware GPU for wgpu and auto, the CPU for cpu). `train` also takes a list, `0,1`:
    /// each batch is split over those devices (data parallelism; CSQ training).
    #[arg(long, value_name = "N[,N...]", global = true, value_delimiter = ',')]
    device: Vec<usize>,
    /// TOML file of flags for train, adv-train, eval, attack, detect or reproduce (`eps = "8/255"`,
    /// `steps = 100`, `random-start = true`, lists as arrays); flags on the command line win. A
    /// report's JSON works too: it re-runs the experiment the report came from.
    // Read and removed by `config::expand` before clap parses; declared here for `--help`.
    #[arg(long, value_name = "FILE", global = true)]
    #[allow(dead_code)]
    config: Option<std::path::PathBuf>,
    /// Largest width or height, in pixels, of an image to decode: a larger one is refused from
    /// its header, before its pixels are allocated.
    #[arg(long, global = true, value_name = "PIXELS",
          default_value_t = ReadLimits::DEFAULT.max_side,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_image_side: u32,
    /// Most memory, in MiB, a decoder may allocate for one image.
    #[arg(long, global = true, value_name = "MIB",
          default_value_t = ReadLimits::DEFAULT.max_decode_bytes >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_image_mib: u64,
    /// Most bytes, in MiB, a gzipped data file may inflate to (a small file that inflates past
    /// it is refused, not followed).
    #[arg(long, global = true, value_name = "MIB",
          default_value_t = ReadLimits::DEFAULT.max_inflate_bytes >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_inflate_mib: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a hashing model (CSQ, DPSH or HashNet) into a run directory (checkpointed every
    /// epoch).
    Train(commands::train::TrainArgs),
    /// Adversarially train (CgAT or SAAT) into a run directory, same format as `train`.
    AdvTrain(commands::train::AdvTrainArgs),
    /// Encode the run's database images into packed binary codes (`database.codes`).
    Encode(commands::encode::EncodeArgs),
    /// Measure retrieval (mAP@all, mAP@1000, precision, PR curve) of a trained run.
    Eval(commands::eval::EvalArgs),
    /// Attack the run's queries (PGD, HAG, DHTA or CW) and measure the damage.
    Attack(commands::attack::AttackArgs),
    /// Calibrate UMCD and the baselines on benign data, attack the queries, measure detection.
    Detect(commands::detect::DetectArgs),
    /// Reproduce the UMCD paper's Tables 1 and 2 (detection: Markdown, JSON, ROC and
    /// histogram PNGs), its adversarial-training table (--table 3) or the white-box study
    /// (--table 4: Fig. 5 and Table 4).
    // Boxed: its flags outweigh every other command's.
    Reproduce(Box<commands::reproduce::ReproduceArgs>),
    /// Work with data sets: `data check` validates list files or an image folder.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Export a run's codes, labels and an attack's adversarial images as NumPy arrays, and
    /// its database as a FAISS binary index (`--format faiss`).
    Export(commands::export::ExportArgs),
    /// Export a run's model and a sample of its database for the browser demo (web/assets).
    ExportWeb(commands::export_web::ExportArgs),
    /// List the devices `--device N` can pick for `--backend`.
    Devices,
}

fn main() -> ExitCode {
    let definition = Cli::command();
    let expanded = match config::expand(std::env::args_os().collect(), &definition) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = match definition.clone().try_get_matches_from(&expanded.args) {
        Ok(m) => m,
        Err(e) => match config::config_error(&e, &expanded.source) {
            Some(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
            None => e.exit(),
        },
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    config::record(&definition, &matches);
    backend::prepare_environment(cli.backend);
    let result = (|| {
        ReadLimits {
            max_side: cli.max_image_side,
            max_decode_bytes: cli.max_image_mib << 20,
            max_inflate_bytes: cli.max_inflate_mib << 20,
        }
        .install()?;
        if let Command::Data(command) = cli.command {
            return commands::data::run(command);
        }
        if let Command::Devices = cli.command {
            let all = backend::devices(cli.backend);
            if all.is_empty() {
                println!("no hardware GPU for --backend {} here", cli.backend.name());
            }
            for (i, s) in all.iter().enumerate() {
                println!("{i}: {} ({})", s.info.adapter, s.info.kind);
            }
            return Ok(());
        }
        let (selected, more) = backend::pick(cli.backend, &cli.device)?;
        match cli.command {
            Command::Train(args) => commands::train::run(args, selected, more),
            Command::AdvTrain(args) => commands::train::run_adversarial(args, selected, more),
            _ if !more.is_empty() => Err(anyhow::anyhow!(
                "only `train` splits its batches over several devices: pass one --device"
            )),
            Command::Encode(args) => commands::encode::run(args, selected),
            Command::Eval(args) => commands::eval::run(args, selected),
            Command::Attack(args) => commands::attack::run(args, selected),
            Command::Detect(args) => commands::detect::run(args, selected),
            Command::Reproduce(args) => commands::reproduce::run(*args, selected),
            Command::Export(args) => commands::export::run(args, selected),
            Command::ExportWeb(args) => commands::export_web::run(args, selected),
            Command::Data(_) | Command::Devices => {
                unreachable!("handled before a backend is picked")
            }
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn burn_s_default_device_is_the_cpu_unless_a_gpu_backend_is_named() {
        use super::BackendChoice;
        use crate::backend::burn_default_device;
        assert_eq!(burn_default_device(BackendChoice::Cpu), Some("flex"));
        assert_eq!(burn_default_device(BackendChoice::Auto), Some("flex"));
        assert_eq!(burn_default_device(BackendChoice::Wgpu), None);
        assert_eq!(burn_default_device(BackendChoice::Cuda), None);
    }

    #[test]
    fn flags_are_consistent() {
        // Clap's own checks (duplicate flag names, defaults its parsers reject, …) run only in
        // debug builds when a command is parsed; this runs them for every subcommand.
        Cli::command().debug_assert();
    }

    /// Flags whose value may be 0 (a seed, a class number, or 0 meaning "none" as its help
    /// says).
    const ZERO_ALLOWED: [&str; 19] = [
        "seed",
        "target",
        "device",
        "cw-search",
        "apgd-restarts",
        "apgd-steps",
        "hag-beta",
        "cw-kappa",
        "lambda1",
        "lambda2",
        "table4-lambda1",
        "lambda4",
        "blur-tolerance",
        "weight-decay",
        "at-weight-decay",
        "lambda",
        "label-smoothing",
        "saat-lambda",
        "saat-mu",
    ];

    /// Every numeric flag of every subcommand refuses NaN, infinities and negative numbers, and
    /// zero unless zero means something ([`ZERO_ALLOWED`]), while clap parses the command line:
    /// before any file is opened or any work starts. A flag is numeric when `1` parses and
    /// `abc` does not.
    #[test]
    fn numeric_flags_refuse_bad_values_at_parse_time() {
        let mut cli = Cli::command();
        cli.build();
        let mut numeric = 0;
        let mut wrong = Vec::new();
        for sub in cli.get_subcommands() {
            let name = sub.get_name().to_string();
            // Required flags get a value each parser takes (paths take anything).
            let mut base = vec!["hashguard".to_string(), name.clone()];
            for arg in sub.get_arguments().filter(|a| a.is_required_set()) {
                base.push(format!("--{}", arg.get_long().unwrap()));
                base.push("1".into());
            }
            let parses = |flag: &str, value: &str| {
                let mut args = base.clone();
                args.extend([format!("--{flag}"), value.to_string()]);
                cli.clone().try_get_matches_from(args).is_ok()
            };
            for arg in sub.get_arguments() {
                let Some(flag) = arg.get_long() else { continue };
                if !arg.get_action().takes_values() || arg.is_required_set() {
                    continue;
                }
                if !parses(flag, "1") || parses(flag, "abc") {
                    continue;
                }
                numeric += 1;
                for bad in ["NaN", "inf", "-inf", "-1", "1e999"] {
                    if parses(flag, bad) {
                        wrong.push(format!("{name} --{flag} {bad}"));
                    }
                }
                if !ZERO_ALLOWED.contains(&flag) && parses(flag, "0") {
                    wrong.push(format!("{name} --{flag} 0"));
                }
            }
        }
        assert!(numeric >= 40, "only {numeric} numeric flags found");
        assert!(
            wrong.is_empty(),
            "accepted at parse time:\n{}",
            wrong.join("\n")
        );
    }
}
