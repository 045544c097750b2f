//! The browser demo's data bundle (`demo.bin`, gzip of a header, pixels and codes): any bytes
//! give a bundle whose parts agree, or an error. Input not starting with gzip's magic is
//! compressed first, so mutations reach the format inside.

#![no_main]

use hashguard_core::demo::DemoBundle;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = DemoBundle::from_bytes(&common::gzipped(data)) {
        assert_eq!(bundle.codes.len(), bundle.database.len());
        assert_eq!(bundle.codes.bits(), bundle.header.bits);
    }
});
