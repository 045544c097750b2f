//! Retrieval quality of binary codes: mAP@k (DeepHash-pytorch's definition, with queries that
//! retrieve nothing relevant counted as 0), precision@k and the precision-recall curve over
//! Hamming radii. Pure Rust over packed codes.

mod map;

pub use map::{PrPoint, RetrievalMetrics, average_precision, evaluate_retrieval};
