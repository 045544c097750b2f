//! The papers' protocols as library code: typed configurations in, typed reports out (JSON and
//! Markdown are renderings of them), shared by the CLI and the browser demo: the one attack
//! specification, the one campaign loop, retrieval (eval), the attack experiment, the detection tables (1, 2), the
//! robustness table (3) and the white-box study (Table 4, Fig. 5).

mod attack;
pub mod cache;
mod campaign;
pub mod detection;
mod goals;
pub mod retrieval;
pub mod robustness;
mod spec;
pub mod whitebox;

pub use crate::progress::{Progress, Silent};
pub use attack::{AttackConfig, AttackOutcome, AttackReport, Theorem1, run_attack, subset};
pub use campaign::{Campaign, Images, run_campaign};
pub use goals::attack_goals;
pub use spec::{
    AttackKind, AttackSpec, CwSettings, TargetSelection, parse_cw_margin, parse_fraction,
};

pub use crate::device::BackendInfo;

/// Reads a figure JSON wrote as `null` because it was NaN (serde_json writes NaN as `null`), so
/// reports and cached rows read back as they were written.
pub(crate) fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
