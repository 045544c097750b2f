//! Training loops for hashing networks. Standard CSQ training is here; the adversarial
//! variants (FreeAT, CgAT, SAAT) build on the same step and checkpoint machinery.

mod codes;
mod schedule;
mod standard;

pub use codes::{LabelCodes, centre_codes, mainstay_codes};
pub use schedule::LrSchedule;
pub use standard::{EpochStats, StepInfo, TrainConfig, Trainer};
