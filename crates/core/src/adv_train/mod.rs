//! Training loops for hashing networks: standard CSQ training and, on the same step and
//! checkpoint machinery, FreeAT (replayed mini-batches) and CgAT and SAAT adversarial training
//! with their centre / mainstay codes.

mod codes;
mod method;
mod parallel;
mod schedule;
mod standard;

pub use codes::{LabelCodeKind, LabelCodes, centre_codes, label_codes_for, mainstay_codes};
pub use method::{AdvTerm, AdvTraining, TargetSource};
pub use schedule::{LrSchedule, Optimizer};
pub use standard::{EpochStats, StepInfo, TrainConfig, Trainer};
