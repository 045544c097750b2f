//! Run configurations (`config.json`): any bytes give a configuration whose model is valid and
//! that writes back to JSON reading as the same configuration, or an error.

#![no_main]

use std::path::Path;

use hashguard_core::run::RunConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = RunConfig::from_json(data, Path::new("config.json")) {
        let again = serde_json::to_vec(&config).expect("a configuration serialises");
        let back = RunConfig::from_json(&again, Path::new("again")).expect("it reads back");
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&config).unwrap()
        );
    }
});
