//! hashguard-core: deep hashing models, their packed Hamming index and retrieval metrics,
//! with the data sets and training loops they need. Every algorithm lives here and runs on
//! whichever Burn device the caller hands it; the crate itself enables no backend.

pub mod adv_train;
pub mod attacks;
pub mod data;
pub mod demo;
pub mod detectors;
pub mod device;
pub mod error;
pub mod experiments;
pub mod filters;
pub mod host;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod progress;
pub mod retrieval;
pub mod run;

pub use error::{Error, Result};
