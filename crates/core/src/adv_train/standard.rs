//! The training loop: shuffled mini-batches (a fresh permutation per epoch, derived from the
//! seed and the epoch so a resumed run sees the same batches), augmentation, Adam, a NaN guard,
//! and optionally CgAT/SAAT's inner PGD and target-code term. Checkpointing is the caller's,
//! through [`Trainer::checkpoint`].

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{AdvTraining, LrSchedule, centre_codes, mainstay_codes};
use crate::attacks::{Objective, pgd};
use crate::data::LabelSet;
use crate::data::{Augment, ImageSet, to_tensor};
use crate::loss::{CsqLoss, CsqLossConfig, HashCentres};
use crate::loss::{centre_alignment, mainstay_objective};
use crate::model::encode_images;
use crate::model::{HashNet, HashNetConfig};
use crate::retrieval::PackedCodes;
use crate::{Error, Result};

/// Everything that defines a training run; saved as `config.json` beside the model.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// The network.
    pub model: HashNetConfig,
    /// The loss.
    pub loss: CsqLossConfig,
    /// Number of epochs.
    #[config(default = 30)]
    pub epochs: usize,
    /// Images per optimiser step.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Base learning rate of Adam.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Decoupled weight decay (AdamW-style penalty added to the gradient by Burn's Adam).
    #[config(default = 1e-4)]
    pub weight_decay: f64,
    /// Learning-rate schedule.
    #[config(default = "LrSchedule::Cosine { floor: 0.01, warmup_epochs: 1 }")]
    pub schedule: LrSchedule,
    /// Augmentation of training images.
    #[config(default = "Augment { max_shift: 2, hflip: true }")]
    pub augment: Augment,
    /// Seed for initialisation, shuffling, augmentation and dropout.
    #[config(default = 0)]
    pub seed: u64,
    /// Adversarial training (CgAT, SAAT); `None` trains on clean images only (and is what
    /// configs saved before adversarial training existed load as).
    #[config(default = "None")]
    pub adversarial: Option<AdvTraining>,
}

impl TrainConfig {
    /// Checks values a user can set.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("--epochs and --batch-size must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr {} must be a positive number", self.lr));
        }
        let negative_or_nan = |v: f64| v.is_nan() || v < 0.0;
        if negative_or_nan(self.weight_decay) || negative_or_nan(self.loss.lambda) {
            return bad("weight decay and the quantisation weight must be non-negative".into());
        }
        self.adversarial
            .as_ref()
            .map_or(Ok(()), AdvTraining::validate)
    }
}

/// Progress of one optimiser step.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based step within the epoch.
    pub step: usize,
    /// Steps in this epoch.
    pub steps: usize,
    /// Total loss of this step.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f64,
}

/// Summary of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean total loss.
    pub loss: f64,
    /// Mean BCE term.
    pub bce: f64,
    /// Mean quantisation term.
    pub quantisation: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// CgAT/SAAT's codes B of every training image, encoded at the first adversarial epoch (and
/// after a resume) and refreshed with each batch's codes.
struct TrainCodes {
    train: Vec<usize>,
    position: std::collections::HashMap<usize, usize>,
    labels: Vec<LabelSet>,
    codes: PackedCodes,
}

impl TrainCodes {
    fn encode(model: &HashNet, set: &ImageSet, train: &[usize], device: &Device) -> Result<Self> {
        let f = encode_images(model, set, train, 256, device, |_| {})?;
        Ok(Self {
            train: train.to_vec(),
            position: train.iter().enumerate().map(|(p, &i)| (i, p)).collect(),
            labels: train.iter().map(|&i| set.labels[i]).collect(),
            codes: PackedCodes::from_signs(model.bits(), &f),
        })
    }
}

/// A training run in progress: model, optimiser state and the epochs done so far.
pub struct Trainer {
    config: TrainConfig,
    centres: HashCentres,
    loss: CsqLoss,
    model: Option<HashNet>,
    optim: ModuleOptimizer,
    device: Device,
    inner_device: Device,
    /// CgAT/SAAT: the training images' current codes B (positions in `train` order).
    train_codes: Option<TrainCodes>,
    /// Statistics of every completed epoch.
    pub history: Vec<EpochStats>,
}

impl Trainer {
    /// Starts a run on `device` (autodiff is enabled on it here).
    pub fn new(config: TrainConfig, centres: HashCentres, device: &Device) -> Result<Self> {
        config.validate()?;
        if centres.bits != config.model.bits {
            return Err(Error::InvalidArgument(format!(
                "centres have {} bits, the model {}",
                centres.bits, config.model.bits
            )));
        }
        let inner_device = device.clone();
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        let optim = AdamConfig::new()
            .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
                config.weight_decay as f32,
            )))
            .init();
        Ok(Self {
            loss: config.loss.init(),
            config,
            centres,
            model: Some(model),
            optim,
            device,
            inner_device,
            train_codes: None,
            history: Vec::new(),
        })
    }

    /// The run's configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The hash centres being trained towards.
    pub fn centres(&self) -> &HashCentres {
        &self.centres
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// The model in its current state (training mode; call `.valid()` to evaluate).
    pub fn model(&self) -> &HashNet {
        self.model.as_ref().expect("model present between steps")
    }

    /// Runs the next epoch over the images `train` of `set`, calling `on_step` after each step.
    pub fn train_epoch(
        &mut self,
        set: &ImageSet,
        train: &[usize],
        mut on_step: impl FnMut(StepInfo),
    ) -> Result<EpochStats> {
        if set.channels != self.config.model.in_channels {
            return Err(Error::InvalidArgument(format!(
                "the model takes {} channels but {} has {}",
                self.config.model.in_channels, set.name, set.channels
            )));
        }
        if train.is_empty() {
            return Err(Error::InvalidArgument("no training images".into()));
        }
        let start = web_time::Instant::now();
        let epoch = self.epochs_done();
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed.wrapping_add(1 + epoch as u64));
        self.device.seed(
            self.config
                .seed
                .wrapping_add(1_000_003 * (epoch as u64 + 1)),
        );
        if self.config.adversarial.is_some()
            && self.train_codes.as_ref().is_none_or(|c| c.train != train)
        {
            self.train_codes = Some(TrainCodes::encode(
                &self.model().valid(),
                set,
                train,
                &self.inner_device,
            )?);
        }
        let mut order = train.to_vec();
        order.shuffle(&mut rng);
        let bs = self.config.batch_size;
        // Drop a final batch of one: batch norm cannot normalise a single image.
        let batches: Vec<&[usize]> = order.chunks(bs).filter(|b| b.len() > 1).collect();
        let steps = batches.len();
        let (mut sum_loss, mut sum_bce, mut sum_q) = (0f64, 0f64, 0f64);
        for (step, idx) in batches.into_iter().enumerate() {
            let lr =
                self.config
                    .schedule
                    .rate(self.config.lr, epoch, step, self.config.epochs, steps);
            let images = to_tensor(set, idx, self.config.augment, &mut rng, &self.device);
            let labels: Vec<_> = idx.iter().map(|&i| set.labels[i]).collect();
            let targets = self.centres.targets(&labels, &self.device);
            let model = self.model.take().expect("model present between steps");
            let logits = model.logits(images.clone());
            let mut parts = self.loss.forward(logits.clone(), targets);
            if let Some(adv) = &self.config.adversarial {
                let budget = adv.budget();
                let codes = self.train_codes.as_mut().expect("codes encoded above");
                let target = match adv {
                    AdvTraining::Saat { .. } => mainstay_codes(&codes.codes, &codes.labels)?,
                    AdvTraining::CgAt { .. } => centre_codes(&codes.codes, &codes.labels)?,
                };
                let flat = target.signs_for(&labels)?;
                let shape = [idx.len(), self.config.model.bits];
                let c_inner = Tensor::<2>::from_data(
                    TensorData::new(flat.clone(), shape),
                    &self.inner_device,
                );
                let c = Tensor::<2>::from_data(TensorData::new(flat, shape), &self.device);
                // Inner maximisation on an eval-mode copy: push f(x_adv) away from c.
                let seed = self.config.seed ^ ((epoch as u64) << 32 | step as u64);
                let x_adv = pgd(
                    &model.valid(),
                    images.inner(),
                    &Objective::Untargeted { original: c_inner },
                    &budget,
                    false,
                    seed,
                    |_| {},
                )?;
                let f_adv = model.forward(x_adv.autodiff());
                let extra = match *adv {
                    AdvTraining::Saat { lambda, mu, .. } => {
                        mainstay_objective(f_adv, c, lambda, mu)
                    }
                    AdvTraining::CgAt { .. } => centre_alignment(f_adv, c),
                };
                parts.total = parts.total + extra;
                // Refresh B with this batch's codes.
                let z: Vec<f32> = logits
                    .clone()
                    .detach()
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| Error::Numeric(format!("reading codes: {e:?}")))?;
                for (row, &i) in z.chunks(self.config.model.bits).zip(idx.iter()) {
                    codes.codes.set_signs(codes.position[&i], row);
                }
            }
            let grads = GradientsParams::from_grads(parts.total.backward(), &model);
            self.model = Some(self.optim.step(lr, model, grads));
            let values: Vec<f32> = Tensor::cat(vec![parts.total, parts.bce, parts.quantisation], 0)
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::Numeric(format!("reading the loss: {e:?}")))?;
            if values.iter().any(|v| !v.is_finite()) {
                return Err(Error::Numeric(format!(
                    "training diverged: loss is {} at epoch {} step {step}; lower --lr",
                    values[0],
                    epoch + 1
                )));
            }
            sum_loss += values[0] as f64;
            sum_bce += values[1] as f64;
            sum_q += values[2] as f64;
            on_step(StepInfo {
                epoch,
                step,
                steps,
                loss: values[0],
                lr,
            });
        }
        let n = steps.max(1) as f64;
        let stats = EpochStats {
            epoch,
            loss: sum_loss / n,
            bce: sum_bce / n,
            quantisation: sum_q / n,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.history.push(stats.clone());
        Ok(stats)
    }

    /// The model and optimiser state as bytes, for a checkpoint.
    pub fn checkpoint(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        // `valid()` first: it folds batch norm's per-thread running statistics into the record.
        let model = self
            .model()
            .valid()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::Numeric(format!("serialising the model: {e}")))?;
        let optim = self
            .optim
            .into_bytes()
            .map_err(|e| Error::Numeric(format!("serialising the optimiser: {e}")))?;
        Ok((model.to_vec(), optim.to_vec()))
    }

    /// Restores a checkpoint written by [`Trainer::checkpoint`] after `history.len()` epochs.
    pub fn restore(
        &mut self,
        model: Vec<u8>,
        optim: Vec<u8>,
        history: Vec<EpochStats>,
    ) -> Result<()> {
        let fresh = self.model.take().expect("model present between steps");
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(model))
                .map_err(|e| {
                    Error::record("checkpoint", format!("model record unreadable: {e}"))
                })?;
        let loaded = fresh.clone().try_load_record(record).map_err(|e| {
            Error::record(
                "checkpoint",
                format!("model record does not fit the configured network: {e}"),
            )
        });
        match loaded {
            Ok(m) => self.model = Some(m),
            Err(e) => {
                self.model = Some(fresh);
                return Err(e);
            }
        }
        let optim_state = std::mem::replace(&mut self.optim, AdamConfig::new().init());
        self.optim = optim_state
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(optim))
            .map_err(|e| {
                Error::record("checkpoint", format!("optimiser record unreadable: {e}"))
            })?;
        self.history = history;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LabelSet;

    /// Four classes of 8x8 images, each bright in its own quadrant, with noise.
    fn quadrants(per_class: usize) -> ImageSet {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..4 * per_class {
            let c = i % 4;
            for y in 0..8 {
                for x in 0..8 {
                    let lit = (y / 4) * 2 + x / 4 == c;
                    let base: i32 = if lit { 200 } else { 40 };
                    pixels.push((base + rand::Rng::random_range(&mut rng, -30..30)) as u8);
                }
            }
            labels.push(LabelSet::single(c));
        }
        ImageSet::new(
            "quadrants",
            "test",
            [1, 8, 8],
            pixels,
            labels,
            (0..4).map(|c| c.to_string()).collect(),
        )
        .unwrap()
    }

    fn tiny_config(epochs: usize) -> TrainConfig {
        let model = HashNetConfig::new(16, 1)
            .with_widths(vec![8, 16])
            .with_convs_per_stage(1)
            .with_hidden(32);
        TrainConfig::new(model, CsqLossConfig::new())
            .with_epochs(epochs)
            .with_batch_size(16)
            .with_augment(Augment::NONE)
            .with_lr(3e-3)
    }

    #[test]
    fn loss_falls_on_a_tiny_synthetic_run() {
        let set = quadrants(24);
        let idx: Vec<usize> = (0..set.len()).collect();
        let config = tiny_config(8);
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let mut trainer = Trainer::new(config, centres, &Device::flex()).unwrap();
        let mut losses = Vec::new();
        for _ in 0..8 {
            losses.push(trainer.train_epoch(&set, &idx, |_| {}).unwrap().loss);
        }
        assert!(losses[7] < 0.5 * losses[0], "loss did not fall: {losses:?}");
    }

    #[test]
    fn restore_reproduces_the_checkpointed_model() {
        let set = quadrants(8);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let mut a = Trainer::new(tiny_config(3), centres.clone(), &device).unwrap();
        a.train_epoch(&set, &idx, |_| {}).unwrap();
        let (model, optim) = a.checkpoint().unwrap();
        let mut b = Trainer::new(tiny_config(3).with_seed(99), centres, &device).unwrap();
        b.restore(model, optim, a.history.clone()).unwrap();
        assert_eq!(b.epochs_done(), 1);
        let x = to_tensor(
            &set,
            &idx[..4],
            Augment::NONE,
            &mut ChaCha8Rng::seed_from_u64(0),
            &device,
        );
        let fa: Vec<f32> = a
            .model()
            .valid()
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let fb: Vec<f32> = b
            .model()
            .valid()
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (p, q) in fa.iter().zip(&fb) {
            assert!((p - q).abs() < 1e-6);
        }
        assert!(b.restore(vec![1, 2, 3], vec![], vec![]).is_err());
    }

    #[test]
    fn cgat_and_saat_epochs_train_against_their_target_codes() {
        let set = quadrants(12);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        for method in [AdvTraining::cgat(), AdvTraining::saat()] {
            let config = tiny_config(2).with_adversarial(Some(method.clone()));
            let centres = HashCentres::new(4, 16, 0).unwrap();
            let mut trainer = Trainer::new(config, centres, &device).unwrap();
            for _ in 0..2 {
                let stats = trainer.train_epoch(&set, &idx, |_| {}).unwrap();
                assert!(stats.loss.is_finite(), "{method:?}: {stats:?}");
            }
            let codes = trainer.train_codes.as_ref().unwrap();
            assert_eq!(codes.codes.len(), idx.len());
        }
    }

    #[test]
    fn inner_maximisation_pushes_codes_away_from_centre_codes() {
        let set = quadrants(12);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let mut trainer = Trainer::new(tiny_config(6), centres, &device).unwrap();
        for _ in 0..6 {
            trainer.train_epoch(&set, &idx, |_| {}).unwrap();
        }
        let model = trainer.model().valid();
        let codes = TrainCodes::encode(&model, &set, &idx, &device).unwrap();
        let target = centre_codes(&codes.codes, &codes.labels).unwrap();
        let flat = target.signs_for(&codes.labels[..16]).unwrap();
        let c = Tensor::<2>::from_data(TensorData::new(flat, [16, 16]), &device);
        let x = to_tensor(
            &set,
            &idx[..16],
            Augment::NONE,
            &mut ChaCha8Rng::seed_from_u64(0),
            &device,
        );
        let budget = AdvTraining::cgat().budget();
        let objective = Objective::Untargeted {
            original: c.clone(),
        };
        let adv = pgd(&model, x.clone(), &objective, &budget, false, 3, |_| {}).unwrap();
        let align = |images: Tensor<4>| -> f32 {
            (model.forward(images) * c.clone())
                .mean()
                .into_scalar::<f32>()
        };
        let (before, after) = (align(x), align(adv));
        // The inner loss −mean(f(x_adv) ⊙ c) rises.
        assert!(after < before, "alignment {before} -> {after}");
    }

    #[test]
    fn configs_saved_before_adversarial_training_still_load() {
        let json = serde_json::to_value(tiny_config(1)).unwrap();
        let mut obj = json.as_object().unwrap().clone();
        assert_eq!(obj.remove("adversarial"), Some(serde_json::Value::Null));
        let old: TrainConfig = serde_json::from_value(serde_json::Value::Object(obj)).unwrap();
        assert_eq!(old.adversarial, None);
        let cgat = tiny_config(1).with_adversarial(Some(AdvTraining::cgat()));
        let back: TrainConfig =
            serde_json::from_value(serde_json::to_value(&cgat).unwrap()).unwrap();
        assert_eq!(back.adversarial, Some(AdvTraining::cgat()));
    }
}
