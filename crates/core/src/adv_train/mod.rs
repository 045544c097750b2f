//! Training loops for hashing networks: standard CSQ training and, on the same step and
//! checkpoint machinery, CgAT and SAAT adversarial training with their centre / mainstay codes.
//! FreeAT is still to come.

mod codes;
mod method;
mod schedule;
mod standard;

pub use codes::{LabelCodes, centre_codes, mainstay_codes};
pub use method::AdvTraining;
pub use schedule::LrSchedule;
pub use standard::{EpochStats, StepInfo, TrainConfig, Trainer};
