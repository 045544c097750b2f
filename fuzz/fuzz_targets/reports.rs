//! Reports and configs read back: `--config FILE` (a TOML table of flags, or the invocation a
//! JSON report saved, read by the CLI's own reader), Table 3's cached rows and the attack
//! cache's metadata. Any bytes give a value or an error; a value that is read also writes.

#![no_main]

use hashguard_core::experiments::cache::CachedAttack;
use hashguard_core::experiments::robustness::RowReport;
use libfuzzer_sys::fuzz_target;

/// The CLI's `--config` reader, compiled from its source (the CLI is a binary, not a library).
#[path = "../../native/src"]
#[allow(dead_code, unused_imports, unreachable_pub)]
mod cli {
    pub mod config;
}

thread_local! {
    static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
}

fuzz_target!(|data: &[u8]| {
    let file = DIR.with(|d| d.path().join("experiment.toml"));
    std::fs::write(&file, data).expect("writing the input");
    if let Ok(flags) = cli::config::read_flags(&file, "attack") {
        toml::to_string(&flags).expect("a table read also writes");
    }
    if let Ok(row) = serde_json::from_slice::<RowReport>(data) {
        serde_json::to_vec(&row).expect("a row read also writes");
    }
    if let Ok(meta) = serde_json::from_slice::<CachedAttack>(data) {
        serde_json::to_vec(&meta).expect("metadata read also writes");
    }
});
