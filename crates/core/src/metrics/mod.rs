//! Retrieval quality of binary codes: mAP@k (DeepHash-pytorch's definition, with queries that
//! retrieve nothing relevant counted as 0), precision@k and the precision-recall curve over
//! Hamming radii; and detection metrics: ROC, AUC, thresholds and TPR at a fixed FPR.
//! Pure Rust.

mod map;
mod roc;

pub use map::{PrPoint, RetrievalMetrics, average_precision, evaluate_retrieval};
pub use roc::{RocPoint, auc, roc_curve, threshold_at_fpr, tpr_at_fpr};
