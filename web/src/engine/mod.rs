//! The demo's computation, free of UI: the model and database sample, retrieval with
//! UMCD's three criteria for one image, and attacks advanced a few steps at a time. Every read
//! from the device is awaited (WebGPU cannot block), so no call holds a frame for long.

use burn::prelude::*;
use hashguard_core::attacks::{BestKeeper, CwStepper, PgdStepper, dhta_targets};
pub use hashguard_core::demo::demo_spec;
use hashguard_core::demo::{DemoBundle, UnionRocPoint};
use hashguard_core::detectors::{
    Calibration, ImageBatch, Scores, Umcd, calibrate, read_async, umcd_criteria,
};
use hashguard_core::experiments::{AttackKind, AttackSpec};
use hashguard_core::filters::ImageShape;
use hashguard_core::model::{HashNet, HashNetConfig};
use hashguard_core::retrieval::{HammingIndex, Neighbour, PackedCodes};
use hashguard_core::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use web_time::Instant;

use attack::Stepper;
pub use attack::{Attack, SliceTiming};

/// The model and data the desktop app and the tests are built with (written by `hashguard
/// export-web`); the browser fetches the same files beside its module instead.
#[cfg(not(target_arch = "wasm32"))]
pub mod embedded {
    /// `model.json`: the network's configuration.
    pub const MODEL_JSON: &[u8] = include_bytes!("../../assets/model.json");
    /// `model.bpk`: the trained weights.
    pub const MODEL_BPK: &[u8] = include_bytes!("../../assets/model.bpk");
    /// `demo.bin`: database sample, codes, gallery and UMCD calibration scores.
    pub const DEMO_BIN: &[u8] = include_bytes!("../../assets/demo.bin");
}

/// Retrieval and UMCD's three criteria for one image.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Binary code, ±1 per bit.
    pub signs: Vec<f32>,
    /// The ten nearest database images.
    pub neighbours: Vec<Neighbour>,
    /// C1 (mean Hamming distance to the top k), C2 (quantisation loss), C3 (disagreement
    /// with the blurred copy).
    pub criteria: [f32; 3],
    /// Milliseconds from the pixels to the verdict's inputs: encode (with the blurred copy),
    /// read back, search and the criteria.
    pub ms: f64,
}

/// UMCD's judgement of an [`Analysis`] at a calibrated false-positive rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// Each criterion's threshold.
    pub thresholds: [f32; 3],
    /// Which criteria fired.
    pub fired: [bool; 3],
    /// Any criterion fired.
    pub adversarial: bool,
}

impl Analysis {
    /// The verdict under `calibration` (thresholds from the bundle's benign scores).
    pub fn verdict(&self, calibration: &Calibration) -> Verdict {
        let scores = Scores {
            criteria: umcd_criteria(),
            values: self.criteria.iter().map(|&v| vec![v]).collect(),
        };
        let decision = calibration.decide(&scores).pop();
        let fired = decision
            .as_ref()
            .map_or([false; 3], |d| [d.fired[0], d.fired[1], d.fired[2]]);
        let t = &calibration.thresholds;
        Verdict {
            thresholds: [t[0], t[1], t[2]],
            fired,
            adversarial: decision.is_some_and(|d| d.adversarial),
        }
    }
}

/// The attacks the demo offers, in its menu's order.
pub const DEMO_ATTACKS: [AttackKind; 3] = [AttackKind::Pgd, AttackKind::Dhta, AttackKind::Cw];

/// The loaded demo.
pub struct Engine {
    /// The network, in inference mode.
    pub model: HashNet,
    /// Where it runs.
    pub device: Device,
    /// Shown in the UI, e.g. "CPU (burn-flex)".
    pub backend: String,
    /// Database sample, gallery and calibration scores.
    pub bundle: DemoBundle,
    /// The database codes.
    pub index: HammingIndex,
    /// UMCD's ROC against each attack the bundle ships scores for.
    pub roc: Vec<AttackRoc>,
    shape: ImageShape,
}

/// UMCD's detection ROC against one attack, from the bundle's scores.
#[derive(Clone, Debug)]
pub struct AttackRoc {
    /// The attack, e.g. "PGD-100, ε = 8/255".
    pub name: String,
    /// Attacked queries.
    pub queries: usize,
    /// Share of them the attack succeeded on.
    pub success_rate: f64,
    /// One point per budget of [`ROC_BUDGETS`].
    pub points: Vec<UnionRocPoint>,
}

/// The FPR budgets the page's ROC is drawn at: 0.1 % to 50 %, finer where detectors work.
pub const ROC_BUDGETS: [f64; 26] = [
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1,
    0.12, 0.14, 0.16, 0.18, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
];

impl Engine {
    /// Loads a model and bundle from bytes.
    pub fn load(
        model_json: &[u8],
        model_bpk: &[u8],
        demo: &[u8],
        device: Device,
        backend: String,
    ) -> Result<Self> {
        let config: HashNetConfig = serde_json::from_slice(model_json)
            .map_err(|e| Error::record("model.json", format!("unreadable ({e})")))?;
        let model = config
            .load(model_bpk.to_vec(), &device, "model.bpk")?
            .valid();
        let bundle = DemoBundle::from_bytes(demo)?;
        if bundle.header.bits != model.bits() || bundle.database.channels != config.in_channels {
            return Err(Error::record(
                "demo.bin",
                "the bundle was exported from another model; re-run `hashguard export-web`",
            ));
        }
        let shape = bundle.database.shape();
        let index = HammingIndex::new(bundle.codes.clone());
        let roc = (0..bundle.header.attacked.len())
            .map(|i| {
                let a = &bundle.header.attacked[i];
                Ok(AttackRoc {
                    name: a.name.clone(),
                    queries: a.values.first().map_or(0, Vec::len),
                    success_rate: a.success_rate,
                    points: bundle.header.union_roc(i, &ROC_BUDGETS)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            model,
            device,
            backend,
            bundle,
            index,
            roc,
            shape,
        })
    }

    /// The model and bundle compiled into the app.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embedded(device: Device, backend: String) -> Result<Self> {
        Self::load(
            embedded::MODEL_JSON,
            embedded::MODEL_BPK,
            embedded::DEMO_BIN,
            device,
            backend,
        )
    }

    /// UMCD's thresholds at false-positive rate `fpr`, from the bundle's benign scores.
    pub fn calibration(&self, fpr: f64) -> Result<Calibration> {
        let scores = Scores {
            criteria: umcd_criteria(),
            values: self.bundle.header.benign.clone(),
        };
        calibrate(&scores, fpr, None)
    }

    /// Layout of the demo's images.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    fn tensor(&self, pixels: &[f32], n: usize) -> Tensor<4> {
        let s = self.shape;
        Tensor::<4>::from_data(
            TensorData::new(pixels.to_vec(), [n, s.channels, s.height, s.width]),
            &self.device,
        )
    }

    /// Retrieval and UMCD's criteria for one image (pixels in `[0, 1]`, the demo's shape).
    pub async fn analyse(&self, pixels: &[f32]) -> Result<Analysis> {
        if pixels.len() != self.shape.len() || pixels.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "the image must have {} finite pixel values",
                self.shape.len()
            )));
        }
        // One forward pass over [x; blur(x)] and one search: the top 10 and C1–C3 (§3.4).
        let start = Instant::now();
        let umcd = Umcd {
            config: self.bundle.header.umcd,
            index: &self.index,
        };
        let batch = ImageBatch {
            pixels,
            shape: self.shape,
            database_positions: None,
        };
        let logits = read_async(umcd.forward(&self.model, batch, &self.device)?).await?;
        let pass = umcd.screen(self.model.bits(), batch, &logits, 10)?;
        let v = &pass.scores.values;
        Ok(Analysis {
            neighbours: pass.retrieved.into_iter().next().unwrap_or_default(),
            signs: pass.codes.signs(0),
            criteria: [v[0][0], v[1][0], v[2][0]],
            ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Starts `spec` on `pixels`, whose clean analysis is `original`.
    pub fn start_attack(
        &self,
        pixels: &[f32],
        original: &Analysis,
        spec: AttackSpec,
    ) -> Result<Attack> {
        self.begin(pixels, original, spec, None)
    }

    /// Starts an ε sweep of `spec` (PGD or DHTA) on `pixels`: one batch of copies, copy `i`
    /// attacked within `radii[i]` with the step scaled to its radius (the spec's
    /// step-to-radius ratio), all for the spec's steps.
    pub fn start_sweep(
        &self,
        pixels: &[f32],
        original: &Analysis,
        spec: AttackSpec,
        radii: &[f32],
    ) -> Result<Attack> {
        if spec.kind == AttackKind::Cw || radii.is_empty() {
            return Err(Error::InvalidArgument(
                "the ε sweep runs PGD or DHTA over at least one radius".into(),
            ));
        }
        self.begin(pixels, original, spec, Some(radii))
    }

    fn begin(
        &self,
        pixels: &[f32],
        original: &Analysis,
        spec: AttackSpec,
        radii: Option<&[f32]>,
    ) -> Result<Attack> {
        let bits = self.model.bits();
        if !DEMO_ATTACKS.contains(&spec.kind) {
            return Err(Error::InvalidArgument(format!(
                "the demo runs pgd, dhta or cw, not {}",
                spec.kind
            )));
        }
        spec.validate()?;
        let n = radii.map_or(1, <[f32]>::len);
        let copies = |v: &[f32]| v.repeat(n);
        let x = self.tensor(&copies(pixels), n);
        let h = Tensor::<2>::from_data(
            TensorData::new(copies(&original.signs), [n, bits]),
            &self.device,
        );
        let budget = spec.budget();
        let mut anchor = None;
        let stepper = if spec.kind == AttackKind::Cw {
            let config = spec.cw_config();
            Stepper::Cw(Box::new((
                CwStepper::new(x.clone(), h, &config, &[config.c]),
                BestKeeper::new(x.clone(), bits),
                x,
            )))
        } else {
            let anchors = if spec.kind.is_targeted() {
                let target = spec.target.label.unwrap_or(0);
                let mut rng = ChaCha8Rng::seed_from_u64(target as u64);
                let a = dhta_targets(
                    &[Default::default()],
                    &self.bundle.codes,
                    &self.bundle.database.labels,
                    Some(target),
                    spec.target.n_t,
                    &mut rng,
                )?
                .remove(0)
                .anchor;
                anchor = Some(PackedCodes::from_signs(bits, &a));
                Some(Tensor::<2>::from_data(
                    TensorData::new(copies(&a), [n, bits]),
                    &self.device,
                ))
            } else {
                None
            };
            let objective = spec.objective(h, anchors)?;
            Stepper::Pgd(Box::new(match radii {
                None => PgdStepper::new(x, objective, budget, spec.alpha_schedule, 0)?,
                Some(r) => PgdStepper::with_radii(x, objective, budget, r, spec.alpha_schedule)?,
            }))
        };
        Ok(Attack {
            stepper,
            spec,
            batch: n,
            original: PackedCodes::from_signs(bits, &original.signs),
            anchor,
            hamming: 0,
            to_anchor: None,
            steps_done: 0,
            slice_cap: 1,
            timing: SliceTiming::default(),
        })
    }

    async fn code_of(&self, x: Tensor<4>) -> Result<PackedCodes> {
        let z = read_async(self.model.logits(x)).await?;
        Ok(PackedCodes::from_signs(self.model.bits(), &z))
    }
}

mod attack;
#[cfg(test)]
mod tests;
