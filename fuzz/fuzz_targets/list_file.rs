//! DeepHash-style list files (`path 0 1 0 …` per line), read as `read_list` reads them: any
//! bytes give entries whose label vectors all have the list's length, or an error.

#![no_main]

use std::path::Path;

use hashguard_core::data::parse_list;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = parse_list(text, Path::new("train.txt")) {
        assert!(list.label_len > 0);
        for entry in &list.entries {
            assert!(!entry.path.is_empty() && entry.line > 0);
        }
    }
});
