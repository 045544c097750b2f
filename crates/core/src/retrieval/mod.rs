//! Binary codes packed 64 bits to a word, Hamming distance by popcount, and exact ranking of a
//! database by distance (ties kept in database order). Pure Rust without tensors, so the hot
//! loop runs the same natively and in wasm.

mod codes;
mod faiss;
mod index;
mod scan;

pub use codes::{PackedCodes, hamming};
pub use index::{HammingIndex, Neighbour};
pub use scan::kernel_name;
