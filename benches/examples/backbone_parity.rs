//! Checks hashguard's backbones against PyTorch on an export of
//! `benches/peers/backbone_parity.py`: prints a table and writes `DIR/parity.json`.
//!
//! `cargo run --release -p hashguard-benches --example backbone_parity -- DIR`

use std::process::ExitCode;

use burn::prelude::*;
use hashguard_benches::parity::check_export;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: backbone_parity DIR (an export of benches/peers/backbone_parity.py)");
        return ExitCode::FAILURE;
    };
    let dir = std::path::PathBuf::from(dir);
    let rows = match check_export(&dir, &Device::flex()) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "| backbone | divisor | tensors loaded | max abs diff | max abs feature | Burn forward s | PyTorch forward s |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2e} | {:.3} | {:.3} | {:.3} |",
            r.backbone,
            r.divisor,
            r.loaded,
            r.max_abs_diff,
            r.max_abs_feature,
            r.burn_forward_seconds,
            r.torch_forward_seconds
        );
    }
    let json = serde_json::to_vec_pretty(&rows).expect("rows serialise");
    let out = dir.join("parity.json");
    if let Err(e) = std::fs::write(&out, json) {
        eprintln!("error: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let worst = rows.iter().map(|r| r.max_abs_diff).fold(0f32, f32::max);
    if worst > 1e-4 {
        eprintln!("parity FAILED: max abs diff {worst:.2e} > 1e-4");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
