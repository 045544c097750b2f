//! Codes files (`hashguard encode`) and FAISS `IndexBinaryFlat` files (`export --format
//! faiss`): any bytes give codes that serialise back to the same bytes and whose Hamming
//! distances stay within the code length, or an error.

#![no_main]

use std::path::Path;

use hashguard_core::retrieval::PackedCodes;
use libfuzzer_sys::fuzz_target;

/// Every code's distance to the first is at most the code length (padding bits are zero).
fn check(codes: &PackedCodes) {
    if codes.is_empty() {
        return;
    }
    let first = codes.code(0);
    for i in 0..codes.len() {
        let d: u32 = first
            .iter()
            .zip(codes.code(i))
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert!(
            d as usize <= codes.bits(),
            "distance {d} > {} bits",
            codes.bits()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(codes) = PackedCodes::from_bytes(data, Path::new("fuzz.codes")) {
        assert_eq!(codes.to_bytes(), data);
        check(&codes);
    }
    if let Ok(codes) = PackedCodes::from_faiss_binary_flat(data, Path::new("fuzz.faiss")) {
        let again = codes
            .to_faiss_binary_flat()
            .expect("codes read from FAISS write back");
        let back = PackedCodes::from_faiss_binary_flat(&again, Path::new("again")).unwrap();
        assert_eq!(back.to_bytes(), codes.to_bytes());
        check(&codes);
    }
});
