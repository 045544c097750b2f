//! Training loops for hashing networks. Standard CSQ training is here; the adversarial
//! variants (FreeAT, CgAT, SAAT) build on the same step and checkpoint machinery.

mod schedule;
mod standard;

pub use schedule::LrSchedule;
pub use standard::{EpochStats, StepInfo, TrainConfig, Trainer};
