//! hashguard's workspace-level integration tests, compiled into one binary.

/// Flex's patched convolutions and their gradients against a direct loop.
mod flex_conv;

/// The same model gives the same codes on Burn's CPU (Flex) and wgpu backends.
mod parity;

/// The fuzz targets' seed corpora are accepted by their readers (and can be regenerated).
mod fuzz_seeds;
