//! The training loop: shuffled mini-batches (a fresh permutation per epoch, derived from the
//! seed and the epoch so a resumed run sees the same batches), augmentation, Adam, a NaN guard,
//! and optionally adversarial training (FreeAT's replays, or CgAT/SAAT's inner PGD and
//! target-code term). Checkpointing is the caller's, through [`Trainer::checkpoint`].

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, PoisonError};

use super::{
    AdvTerm, AdvTraining, LabelCodes, LrSchedule, Optimizer, TargetSource, centre_codes,
    mainstay_codes,
};
use crate::attacks::{Objective, pgd};
use crate::data::LabelSet;
use crate::data::{Augment, ImageSet, batch_shape, prefetch_batches};
use crate::host::read_floats;
use crate::loss::{CsqLoss, CsqLossConfig, HashCentres, LossParts};
use crate::loss::{DpshBank, HashMethod, PairSimilarity, dpsh_loss, hashnet_loss, hashnet_scale};
use crate::loss::{centre_alignment, code_bce, quantisation_penalty};
use crate::model::encode_images;
use crate::model::{HashNet, HashNetConfig};
use crate::retrieval::PackedCodes;
use crate::{Error, Result};

/// Everything that defines a training run; saved as `config.json` beside the model.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// The network.
    pub model: HashNetConfig,
    /// CSQ's hyper-parameters (used when `method` is CSQ).
    pub loss: CsqLossConfig,
    /// The hashing loss: CSQ (what configs saved before DPSH and HashNet existed load as),
    /// DPSH or HashNet.
    #[config(default = "HashMethod::Csq")]
    pub method: HashMethod,
    /// Number of epochs.
    #[config(default = 30)]
    pub epochs: usize,
    /// Images per optimiser step.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Base learning rate.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// L2 weight decay: `weight_decay · θ` added to the gradient before the optimiser's update
    /// (for Adam, before its moments: not AdamW's decoupled decay).
    #[config(default = 1e-4)]
    pub weight_decay: f64,
    /// The optimiser; `None` (and configs saved before there was a choice) is Adam.
    #[config(default = "None")]
    pub optimizer: Option<Optimizer>,
    /// Learning-rate schedule.
    #[config(default = "LrSchedule::Cosine { floor: 0.01, warmup_epochs: 1 }")]
    pub schedule: LrSchedule,
    /// Augmentation of training images.
    #[config(default = "Augment { max_shift: 2, hflip: true }")]
    pub augment: Augment,
    /// Seed for initialisation, shuffling, augmentation and dropout.
    #[config(default = 0)]
    pub seed: u64,
    /// Adversarial training (FreeAT, CgAT, SAAT); `None` trains on clean images only (and is
    /// what configs saved before adversarial training existed load as).
    #[config(default = "None")]
    pub adversarial: Option<AdvTraining>,
    /// The run whose trained weights this run started from (adversarial fine-tuning), for the
    /// record; `None` starts from a random initialisation.
    #[config(default = "None")]
    pub init: Option<String>,
    /// The run whose data, split and hash centres this run took while starting from random
    /// weights (`--split-from`: adversarial training from scratch, comparable with that run),
    /// for the record.
    #[config(default = "None")]
    pub split_from: Option<String>,
    /// The torchvision weights file the backbone started from (`--pretrained`), for the
    /// record; `None`: random initialisation or `init`.
    #[config(default = "None")]
    pub pretrained: Option<String>,
}

impl TrainConfig {
    /// Checks values a user can set.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.method.validate()?;
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("--epochs and --batch-size must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr {} must be a positive number", self.lr));
        }
        self.optimizer.unwrap_or_default().validate()?;
        let negative_or_nan = |v: f64| v.is_nan() || v < 0.0;
        if negative_or_nan(self.weight_decay) || negative_or_nan(self.loss.lambda) {
            return bad("weight decay and the quantisation weight must be non-negative".into());
        }
        if !(0.0..1.0).contains(&self.loss.label_smoothing) {
            return bad(format!(
                "label smoothing {} must lie in [0, 1)",
                self.loss.label_smoothing
            ));
        }
        if matches!(self.adversarial, Some(AdvTraining::PgdAt { .. }))
            && self.method != HashMethod::Csq
        {
            return bad(format!(
                "PGD-AT attacks CSQ's hash centres: train with --loss csq, not {}",
                self.method.name()
            ));
        }
        if self.adversarial.as_ref().and_then(AdvTraining::targets) == Some(TargetSource::Centres)
            && self.method != HashMethod::Csq
        {
            return bad(format!(
                "CgAT on hash centres needs CSQ's centres: train with --loss csq, not {}",
                self.method.name()
            ));
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
    /// Mean similarity term: CSQ's centre BCE, DPSH's or HashNet's pairwise likelihood (the
    /// name predates the pairwise losses and is kept so saved histories load).
    pub bce: f64,
    /// Mean quantisation term.
    pub quantisation: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CgAT/SAAT on CSQ: the share of bits where the target codes of the training images
    /// (centre or mainstay codes of B) equal their hash centres, at the epoch's start and at
    /// its end (1: the seeds' codes are CSQ's own targets; about 0.5: unrelated). Absent for
    /// other runs and in histories written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_agreement: Option<[f64; 2]>,
}

/// CgAT/SAAT's codes B of every training image, encoded at the first adversarial epoch and
/// refreshed with each batch's codes; checkpointed with the loss state, so a resumed run goes on
/// with the B it stopped with (re-encoding B from the restored weights would change every row
/// that has not been refreshed yet, and the run would no longer equal an uninterrupted one).
struct TrainCodes {
    train: Vec<usize>,
    position: std::collections::HashMap<usize, usize>,
    labels: Vec<LabelSet>,
    codes: PackedCodes,
}

impl TrainCodes {
    /// B as checkpointed: `codes` in `train`'s order.
    fn restore(codes: PackedCodes, set: &ImageSet, train: &[usize]) -> Self {
        Self {
            train: train.to_vec(),
            position: train.iter().enumerate().map(|(p, &i)| (i, p)).collect(),
            labels: train.iter().map(|&i| set.labels[i]).collect(),
            codes,
        }
    }

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

/// Tag of a sectioned loss state (see [`Trainer::loss_state`]).
const LOSS_STATE_MAGIC: &[u8; 8] = b"HGLOSS02";

/// Splits a checkpoint's loss state into DPSH's bank and CgAT/SAAT's codes B; an untagged
/// state is an older checkpoint's bank alone.
fn split_loss_state(state: Vec<u8>) -> Result<(Option<Vec<u8>>, Option<PackedCodes>)> {
    if state.is_empty() {
        return Ok((None, None));
    }
    if !state.starts_with(LOSS_STATE_MAGIC) {
        return Ok((Some(state), None));
    }
    let bad = || {
        Error::record(
            "checkpoint",
            "the loss state is truncated: resume is impossible, retrain or restore the file",
        )
    };
    let mut parts = Vec::new();
    let mut at = LOSS_STATE_MAGIC.len();
    for _ in 0..2 {
        let len = state
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(bad)?;
        let len = usize::try_from(len).map_err(|_| bad())?;
        let part = state
            .get(at + 8..at.saturating_add(8).saturating_add(len))
            .ok_or_else(bad)?;
        parts.push(part.to_vec());
        at += 8 + len;
    }
    let codes = parts.pop().expect("two parts");
    let bank = parts.pop().expect("two parts");
    let codes = if codes.is_empty() {
        None
    } else {
        Some(PackedCodes::from_bytes(
            &codes,
            std::path::Path::new("checkpoint (codes B)"),
        )?)
    };
    Ok(((!bank.is_empty()).then_some(bank), codes))
}

/// Held while a trainer seeds the backend and draws its initial weights.
static INIT: Mutex<()> = Mutex::new(());

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
    /// FreeAT: the perturbation δ carried from one mini-batch to the next (inner device).
    free_delta: Option<Tensor<4>>,
    /// DPSH: every training image's latest output.
    bank: Option<DpshBank>,
    /// DPSH: a restored checkpoint's bank, loaded when the epoch's training images are known.
    restored_bank: Option<Vec<u8>>,
    /// CgAT/SAAT's B from a checkpoint, taken up at the next epoch.
    restored_codes: Option<PackedCodes>,
    /// Data parallelism: the devices besides `device` each batch is split over (autodiff).
    replicas: Vec<Device>,
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
        let model = {
            // The backend has one RNG per process: seeding and drawing the initial weights
            // under one lock keeps concurrent trainers (parallel tests, several runs in one
            // process) from interleaving, so the weights follow the seed alone.
            let _turn = INIT.lock().unwrap_or_else(PoisonError::into_inner);
            device.seed(config.seed);
            config.model.init(&device)
        };
        let optim = config
            .optimizer
            .unwrap_or_default()
            .init(config.weight_decay);
        Ok(Self {
            loss: config.loss.init(),
            config,
            centres,
            model: Some(model),
            optim,
            device,
            inner_device,
            train_codes: None,
            free_delta: None,
            bank: None,
            restored_bank: None,
            restored_codes: None,
            replicas: Vec::new(),
            history: Vec::new(),
        })
    }

    /// Splits every batch over the run's device and `more` (data parallelism through Burn's
    /// multi-device optimiser step; see the `parallel` module for the arithmetic). CSQ
    /// training without adversarial examples only: DPSH's bank and HashNet's in-batch pairs
    /// would change meaning per shard, and adversarial training's inner attacks run on one
    /// device.
    /// With no other device, training stays on one device whatever the method.
    pub fn data_parallel(&mut self, more: &[Device]) -> Result<()> {
        if more.is_empty() {
            self.replicas.clear();
            return Ok(());
        }
        if !matches!(self.config.method, HashMethod::Csq) || self.config.adversarial.is_some() {
            return Err(Error::InvalidArgument(
                "training on several devices supports standard CSQ training only: train \
                 DPSH, HashNet or adversarially on one device"
                    .into(),
            ));
        }
        self.replicas = more.iter().map(|d| d.clone().autodiff()).collect();
        Ok(())
    }

    /// How many devices each batch is split over.
    pub fn device_count(&self) -> usize {
        1 + self.replicas.len()
    }

    /// Starts from `model`'s weights instead of the random initialisation (adversarial
    /// fine-tuning of a trained run); only before the first epoch.
    pub fn start_from(&mut self, model: &HashNet) -> Result<()> {
        if self.epochs_done() > 0 {
            return Err(Error::InvalidArgument(
                "a run can only start from other weights before its first epoch".into(),
            ));
        }
        let bytes = model
            .valid()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::Numeric(format!("serialising the initial model: {e}")))?;
        self.load_model_bytes(bytes.to_vec(), "initial model")
    }

    /// Replaces the model's weights by a serialised record, keeping the current model when the
    /// record is unreadable or does not fit.
    fn load_model_bytes(&mut self, bytes: Vec<u8>, what: &str) -> Result<()> {
        let fresh = self.model.take().expect("model present between steps");
        let record = crate::model::check_model_record(&bytes, what).and_then(|()| {
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| Error::record(what, format!("model record unreadable: {e}")))
        });
        let loaded = record.and_then(|record| {
            fresh.clone().try_load_record(record).map_err(|e| {
                Error::record(
                    what,
                    format!("model record does not fit the configured network: {e}"),
                )
            })
        });
        match loaded {
            Ok(m) => {
                self.model = Some(m);
                Ok(())
            }
            Err(e) => {
                self.model = Some(fresh);
                Err(e)
            }
        }
    }

    /// The run's configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The hash centres being trained towards.
    pub fn centres(&self) -> &HashCentres {
        &self.centres
    }

    /// Whether the run keeps the training codes B: CgAT and SAAT on target codes of B.
    fn needs_codes(&self) -> bool {
        self.config
            .adversarial
            .as_ref()
            .and_then(AdvTraining::targets)
            == Some(TargetSource::Codes)
    }

    /// CgAT/SAAT on CSQ, once B is encoded (only those keep B): how far the target codes of B agree with the
    /// training images' hash centres ([`EpochStats::target_agreement`]); `None` otherwise.
    fn target_agreement(&self) -> Result<Option<f64>> {
        let (Some(adv), Some(codes), HashMethod::Csq) = (
            &self.config.adversarial,
            &self.train_codes,
            &self.config.method,
        ) else {
            return Ok(None);
        };
        let target = target_codes(adv, codes)?;
        target
            .agreement(&codes.labels, |l| self.centres.centre_of(l))
            .map(Some)
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
        let needs_codes = self.needs_codes();
        if needs_codes && self.train_codes.as_ref().is_none_or(|c| c.train != train) {
            let restored = self
                .restored_codes
                .take()
                .filter(|c| c.len() == train.len() && c.bits() == self.config.model.bits);
            self.train_codes = Some(match restored {
                Some(codes) => TrainCodes::restore(codes, set, train),
                None => TrainCodes::encode(&self.model().valid(), set, train, &self.inner_device)?,
            });
        }
        if matches!(self.config.method, HashMethod::Dpsh { .. })
            && self.bank.as_ref().is_none_or(|b| b.train() != train)
        {
            let labels = train.iter().map(|&i| set.labels[i]).collect();
            let mut bank = DpshBank::new(self.config.model.bits, train, labels);
            if let Some(bytes) = self.restored_bank.take() {
                bank.load_bytes(&bytes)?;
            }
            self.bank = Some(bank);
        }
        let agreement_before = self.target_agreement()?;
        let mut order = train.to_vec();
        order.shuffle(&mut rng);
        let bs = self.config.batch_size;
        // Drop a final batch of one: batch norm cannot normalise a single image.
        let batches: Vec<&[usize]> = order.chunks(bs).filter(|b| b.len() > 1).collect();
        let steps = batches.len();
        let (mut sum_loss, mut sum_bce, mut sum_q) = (0f64, 0f64, 0f64);
        let augment = self.config.augment;
        prefetch_batches(set, &batches, augment, rng, |step, pixels| {
            let idx = batches[step];
            let shape = batch_shape(set, idx.len());
            let images = Tensor::from_data(TensorData::new(pixels, shape), &self.device);
            let labels: Vec<_> = idx.iter().map(|&i| set.labels[i]).collect();
            let model = self.model.take().expect("model present between steps");
            let (schedule, base, epochs) =
                (self.config.schedule, self.config.lr, self.config.epochs);
            let (model, values, lr) = match self.config.adversarial {
                Some(AdvTraining::Free { eps, replays }) => {
                    // Every replay is an optimiser step: the schedule runs over m·steps updates.
                    let rate = |r: usize| {
                        schedule.rate(base, epoch, step * replays + r, epochs, steps * replays)
                    };
                    let batch = Batch {
                        idx,
                        labels: &labels,
                        epoch,
                    };
                    let (model, values) =
                        self.free_replays(model, images, batch, eps, replays, rate)?;
                    (model, values, rate(replays - 1))
                }
                _ => {
                    let lr = schedule.rate(base, epoch, step, epochs, steps);
                    let batch = Batch {
                        idx,
                        labels: &labels,
                        epoch,
                    };
                    let (model, values) = if self.replicas.is_empty() {
                        self.pgd_step(model, images, batch, lr, step)?
                    } else {
                        self.parallel_step(model, images, batch, lr)?
                    };
                    (model, values, lr)
                }
            };
            self.model = Some(model);
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
            Ok(())
        })?;
        let n = steps.max(1) as f64;
        let stats = EpochStats {
            epoch,
            loss: sum_loss / n,
            bce: sum_bce / n,
            quantisation: sum_q / n,
            seconds: start.elapsed().as_secs_f64(),
            target_agreement: agreement_before
                .zip(self.target_agreement()?)
                .map(|(a, b)| [a, b]),
        };
        self.history.push(stats.clone());
        Ok(stats)
    }

    /// One optimiser step of standard training; of PGD-AT: inner PGD away from the batch's hash
    /// centres, then the hashing loss of the adversarial images alone; or of CgAT/SAAT: inner
    /// PGD away from the batch's centre/mainstay codes, the target-code term added to the
    /// hashing loss, and the batch's rows of B refreshed. Returns the updated model and
    /// (total, BCE, quantisation).
    fn pgd_step(
        &mut self,
        model: HashNet,
        images: Tensor<4>,
        batch: Batch,
        lr: f64,
        step: usize,
    ) -> Result<(HashNet, [f32; 3])> {
        let Batch { idx, labels, epoch } = batch;
        let seed = self.config.seed ^ ((epoch as u64) << 32 | step as u64);
        if let Some(adv @ AdvTraining::PgdAt { .. }) = &self.config.adversarial
            && let Some(budget) = adv.inner_pgd()
        {
            // Madry et al.: the inner attack maximises the training loss (CSQ's BCE against
            // the centre, whose sign pattern is what the attack moves away from); the outer
            // step minimises it on the attack's images.
            let centres = self.centres.targets(labels, &self.inner_device);
            let x_adv = pgd(
                &model.valid(),
                images.inner(),
                &Objective::Untargeted { original: centres },
                &budget,
                false,
                seed,
                |_| {},
            )?;
            let parts = self.hash_loss(model.logits(x_adv.autodiff()), batch)?;
            let grads = GradientsParams::from_grads(parts.total.backward(), &model);
            let model = self.optim.step(lr, model, grads);
            return Ok((model, loss_values(parts)?));
        }
        let logits = model.logits(images.clone());
        let mut parts = self.hash_loss(logits.clone(), batch)?;
        if let Some(adv) = &self.config.adversarial
            && let Some(budget) = adv.inner_pgd()
        {
            let flat = match self.train_codes.as_ref() {
                Some(codes) => target_codes(adv, codes)?.signs_for(labels)?,
                // CgAT on the hash centres: fixed targets, no B.
                None => self.centres.signs(labels),
            };
            let shape = [idx.len(), self.config.model.bits];
            let c_inner =
                Tensor::<2>::from_data(TensorData::new(flat.clone(), shape), &self.inner_device);
            let c = Tensor::<2>::from_data(TensorData::new(flat, shape), &self.device);
            // Inner maximisation on an eval-mode copy: push f(x_adv) away from c.
            let x_adv = pgd(
                &model.valid(),
                images.inner(),
                &Objective::Untargeted { original: c_inner },
                &budget,
                false,
                seed,
                |_| {},
            )?;
            let z_adv = model.logits(x_adv.autodiff());
            let f_adv = z_adv.clone().tanh();
            let alignment = match adv.term() {
                Some(AdvTerm::Logit) => code_bce(z_adv, c),
                _ => centre_alignment(f_adv.clone(), c),
            };
            let extra = match *adv {
                AdvTraining::Saat { lambda, mu, .. } => {
                    alignment * lambda + quantisation_penalty(f_adv) * mu
                }
                _ => alignment,
            };
            parts.total = parts.total + extra;
            // Refresh B with this batch's codes.
            if let Some(codes) = self.train_codes.as_mut() {
                let z = read_floats(logits.detach(), "codes")?;
                for (row, &i) in z.chunks(self.config.model.bits).zip(idx) {
                    codes.codes.set_signs(codes.position[&i], row);
                }
            }
        }
        let grads = GradientsParams::from_grads(parts.total.backward(), &model);
        let model = self.optim.step(lr, model, grads);
        Ok((model, loss_values(parts)?))
    }

    /// One optimiser step of standard CSQ training with the batch split over the run's
    /// devices: Burn sums the shards' gradients (each loss weighted by its share of the
    /// batch), and the parameters, which `step_multi` leaves spread over the devices, come
    /// back to the main one.
    fn parallel_step(
        &mut self,
        model: HashNet,
        images: Tensor<4>,
        batch: Batch,
        lr: f64,
    ) -> Result<(HashNet, [f32; 3])> {
        let devices: Vec<Device> = std::iter::once(self.device.clone())
            .chain(self.replicas.iter().cloned())
            .collect();
        let (centres, loss) = (&self.centres, &self.loss);
        let (grads, values) = super::parallel::sharded_gradients(
            &model,
            images,
            batch.labels,
            &devices,
            |logits, labels, device| Ok(loss.forward(logits, centres.targets(labels, device))),
        )?;
        let model = self.optim.step_multi(lr, model, grads).fork(&self.device);
        Ok((model, values))
    }

    /// FreeAT on one mini-batch: `replays` optimiser steps on x + δ, each also moving δ by
    /// eps·sign(∇ₓ L_hash) from the same backward pass; δ is kept for the next mini-batch (cut
    /// or zero-filled when the batch size differs). Returns the model and the mean losses.
    fn free_replays(
        &mut self,
        mut model: HashNet,
        images: Tensor<4>,
        batch: Batch,
        eps: f32,
        replays: usize,
        rate: impl Fn(usize) -> f64,
    ) -> Result<(HashNet, [f32; 3])> {
        let clean = images.inner();
        let dims = clean.dims();
        let mut delta = match self.free_delta.take() {
            Some(d) if d.dims() == dims => d,
            Some(d) if d.dims()[0] > dims[0] && d.dims()[1..] == dims[1..] => {
                d.narrow(0, 0, dims[0])
            }
            _ => Tensor::<4>::zeros(dims, &self.inner_device),
        };
        let mut sums = [0f32; 3];
        for r in 0..replays {
            let x = (clean.clone() + delta.clone())
                .clamp(0.0, 1.0)
                .autodiff()
                .require_grad();
            let parts = self.hash_loss(model.logits(x.clone()), batch)?;
            let grads = parts.total.backward();
            let gx = x.grad(&grads).ok_or_else(|| {
                Error::Numeric("no input gradient: the model is not differentiable here".into())
            })?;
            delta = free_ascent(delta, gx, eps);
            let grads = GradientsParams::from_grads(grads, &model);
            model = self.optim.step(rate(r), model, grads);
            for (s, v) in sums.iter_mut().zip(loss_values(parts)?) {
                *s += v / replays as f32;
            }
        }
        self.free_delta = Some(delta);
        Ok((model, sums))
    }

    /// The hashing loss of a batch from its pre-tanh outputs: CSQ against the labels' centres,
    /// DPSH against the bank (refreshed with these outputs first), HashNet within the batch.
    fn hash_loss(&mut self, logits: Tensor<2>, batch: Batch) -> Result<LossParts> {
        match self.config.method {
            HashMethod::Csq => {
                let targets = self.centres.targets(batch.labels, &self.device);
                Ok(self.loss.forward(logits, targets))
            }
            HashMethod::Dpsh { alpha } => {
                let bank = self
                    .bank
                    .as_mut()
                    .expect("DPSH bank made at the epoch's start");
                bank.update(batch.idx, &read_floats(logits.clone().detach(), "outputs")?)?;
                let similarity = bank.similarity(batch.labels);
                Ok(dpsh_loss(
                    logits,
                    bank.tensor(&self.device),
                    &similarity,
                    alpha,
                ))
            }
            HashMethod::HashNet {
                alpha,
                step_continuation,
            } => {
                let similarity = PairSimilarity::new(batch.labels, batch.labels);
                let scale = hashnet_scale(batch.epoch, step_continuation);
                Ok(hashnet_loss(logits, &similarity, alpha, scale))
            }
        }
    }

    /// State of the loss that a resumed run needs beside the weights, for a checkpoint: DPSH's
    /// bank and CgAT/SAAT's codes B (empty when there is neither: CSQ or HashNet without
    /// CgAT/SAAT). Tagged sections; an untagged state is an older checkpoint's DPSH bank.
    pub fn loss_state(&self) -> Vec<u8> {
        let bank = self.bank.as_ref().map(DpshBank::to_bytes);
        let codes = self.train_codes.as_ref().map(|c| c.codes.to_bytes());
        if bank.is_none() && codes.is_none() {
            return Vec::new();
        }
        let mut out = LOSS_STATE_MAGIC.to_vec();
        for part in [bank, codes] {
            let part = part.unwrap_or_default();
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(&part);
        }
        out
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

    /// Restores a checkpoint written by [`Trainer::checkpoint`] and [`Trainer::loss_state`]
    /// after `history.len()` epochs (an empty loss state starts DPSH's bank from zeros).
    ///
    /// Burn reads the optimiser's state onto its default device (`BURN_DEVICE`, else the first
    /// GPU backend compiled in) and moves it to the parameters' device at the next step: a
    /// caller training on the CPU in a build with wgpu sets `BURN_DEVICE=flex` first, as the
    /// CLI does, or the restore starts a wgpu runtime.
    pub fn restore(
        &mut self,
        model: Vec<u8>,
        optim: Vec<u8>,
        history: Vec<EpochStats>,
        loss_state: Vec<u8>,
    ) -> Result<()> {
        crate::model::check_optimizer_record(&optim, "checkpoint")?;
        self.load_model_bytes(model, "checkpoint")?;
        self.bank = None;
        self.train_codes = None;
        let (bank, codes) = split_loss_state(loss_state)?;
        self.restored_bank = bank;
        self.restored_codes = codes;
        let fresh = (self.config.optimizer.unwrap_or_default()).init(self.config.weight_decay);
        let optim_state = std::mem::replace(&mut self.optim, fresh);
        self.optim = optim_state
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(optim))
            .map_err(|e| {
                Error::record("checkpoint", format!("optimiser record unreadable: {e}"))
            })?;
        self.history = history;
        Ok(())
    }
}

/// FreeAT's perturbation update: a signed step of eps up the gradient of the loss the
/// parameters descend, clipped back to the L∞ ball.
fn free_ascent(delta: Tensor<4>, grad: Tensor<4>, eps: f32) -> Tensor<4> {
    (delta + grad.sign() * eps as f64).clamp(-eps as f64, eps as f64)
}

/// The images of one mini-batch: data-set indices, labels, and the 0-based epoch.
#[derive(Clone, Copy)]
struct Batch<'a> {
    idx: &'a [usize],
    labels: &'a [LabelSet],
    epoch: usize,
}

/// (total, similarity, quantisation) of a loss as numbers.
/// CgAT's centre codes or SAAT's mainstay codes of the training codes B.
fn target_codes(adv: &AdvTraining, codes: &TrainCodes) -> Result<LabelCodes> {
    match adv {
        AdvTraining::Saat { .. } => mainstay_codes(&codes.codes, &codes.labels),
        _ => centre_codes(&codes.codes, &codes.labels),
    }
}

pub(super) fn loss_values(parts: LossParts) -> Result<[f32; 3]> {
    let v = read_floats(
        Tensor::cat(vec![parts.total, parts.similarity, parts.quantisation], 0),
        "loss",
    )?;
    Ok([v[0], v[1], v[2]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{LabelSet, to_tensor};

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

    /// Without dropout: its masks come from the backend's one RNG, which tests running in
    /// parallel share, so a test's result would depend on what ran beside it.
    fn tiny_config(epochs: usize) -> TrainConfig {
        let model = HashNetConfig::new(16, 1)
            .with_widths(vec![8, 16])
            .with_convs_per_stage(1)
            .with_hidden(32)
            .with_dropout(0.0);
        TrainConfig::new(model, CsqLossConfig::new())
            .with_epochs(epochs)
            .with_batch_size(16)
            .with_augment(Augment::NONE)
            .with_lr(3e-3)
    }

    /// Burn's multi-device step sums the shards' gradients; with each shard's loss weighted by
    /// its share, two devices on half batches take the same steps as one device on the whole
    /// batch. The halves hold the same images, so batch norm sees the same statistics, and the
    /// weight decay makes the summed gradient's scale matter (Adam alone would hide a factor 2).
    #[test]
    fn two_devices_with_half_batches_step_like_one_device_with_the_whole_batch() {
        let set = quadrants(2);
        let config = tiny_config(1).with_weight_decay(0.5);
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let idx = [0, 1, 0, 1];
        let labels: Vec<_> = idx.iter().map(|&i| set.labels[i]).collect();
        let probe_idx: Vec<usize> = (0..set.len()).collect();
        // One initial model for both runs (the device's seed is shared with parallel tests).
        let initial = Trainer::new(config.clone(), centres.clone(), &Device::flex()).unwrap();
        let run = |devices: usize| {
            let mut t = Trainer::new(config.clone(), centres.clone(), &Device::flex()).unwrap();
            t.start_from(initial.model()).unwrap();
            if devices > 1 {
                t.data_parallel(&vec![Device::flex(); devices - 1]).unwrap();
            }
            assert_eq!(t.device_count(), devices);
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let mut losses = Vec::new();
            for step in 0..3 {
                let model = t.model.take().unwrap();
                let images = to_tensor(&set, &idx, Augment::NONE, &mut rng, &t.device);
                let batch = Batch {
                    idx: &idx,
                    labels: &labels,
                    epoch: 0,
                };
                let (model, values) = if devices == 1 {
                    t.pgd_step(model, images, batch, 1e-2, step)
                } else {
                    t.parallel_step(model, images, batch, 1e-2)
                }
                .unwrap();
                t.model = Some(model);
                losses.push(values[0]);
            }
            let probe = to_tensor(&set, &probe_idx, Augment::NONE, &mut rng, &Device::flex());
            let out = read_floats(t.model().valid().forward(probe), "probe").unwrap();
            (losses, out)
        };
        let (one_loss, one) = run(1);
        let (two_loss, two) = run(2);
        for (a, b) in one_loss.iter().zip(&two_loss) {
            assert!((a - b).abs() < 1e-5, "{one_loss:?} vs {two_loss:?}");
        }
        // The weights moved (the outputs after three steps differ from a fresh model's) ...
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let probe = to_tensor(&set, &probe_idx, Augment::NONE, &mut rng, &Device::flex());
        let start = read_floats(initial.model().valid().forward(probe), "probe").unwrap();
        let moved = one
            .iter()
            .zip(&start)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(moved > 1e-2, "{moved}");
        // ... and moved the same way on one device and on two.
        let diff = one
            .iter()
            .zip(&two)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "max output difference {diff}");
    }

    #[test]
    fn data_parallel_training_refuses_what_it_cannot_shard() {
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let config = tiny_config(1).with_method(HashMethod::dpsh());
        let mut t = Trainer::new(config, centres, &Device::flex()).unwrap();
        let err = t.data_parallel(&[Device::flex()]).unwrap_err().to_string();
        assert!(err.contains("one device"), "{err}");
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
    fn dpsh_and_hashnet_train_on_a_tiny_run() {
        let set = quadrants(24);
        let idx: Vec<usize> = (0..set.len()).collect();
        for method in [HashMethod::dpsh(), HashMethod::hashnet()] {
            let config = tiny_config(6).with_method(method);
            let centres = HashCentres::new(4, 16, 0).unwrap();
            let mut trainer = Trainer::new(config, centres, &Device::flex()).unwrap();
            let mut losses = Vec::new();
            for _ in 0..6 {
                losses.push(trainer.train_epoch(&set, &idx, |_| {}).unwrap().loss);
            }
            assert!(losses[5] < 0.7 * losses[0], "{method:?}: {losses:?}");
            // Codes of one class agree more with each other than with other classes'.
            let f = encode_images(
                &trainer.model().valid(),
                &set,
                &idx,
                64,
                &Device::flex(),
                |_| {},
            )
            .unwrap();
            let codes = PackedCodes::from_signs(16, &f);
            let (mut same, mut other) = ((0, 0), (0, 0));
            for i in 0..idx.len() {
                for j in 0..i {
                    let d = crate::retrieval::hamming(codes.code(i), codes.code(j)) as usize;
                    let acc = if set.labels[i] == set.labels[j] {
                        &mut same
                    } else {
                        &mut other
                    };
                    *acc = (acc.0 + d, acc.1 + 1);
                }
            }
            let mean = |(d, n): (usize, usize)| d as f64 / n as f64;
            assert!(
                mean(same) + 2.0 < mean(other),
                "{method:?}: {same:?} {other:?}"
            );
        }
    }

    #[test]
    fn a_resumed_dpsh_run_keeps_its_bank() {
        let set = quadrants(8);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let config = tiny_config(2).with_method(HashMethod::dpsh());
        // One run checkpointed after its first epoch, then continued (no dropout and no
        // augmentation, so nothing else of the second epoch depends on global random state).
        let mut first = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
        first.train_epoch(&set, &idx, |_| {}).unwrap();
        let (model, optim) = first.checkpoint().unwrap();
        let state = first.loss_state();
        let expected = first.train_epoch(&set, &idx, |_| {}).unwrap().loss;
        first.history.pop();
        let second_epoch = |state: Vec<u8>| {
            let mut resumed = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
            resumed
                .restore(model.clone(), optim.clone(), first.history.clone(), state)
                .unwrap();
            resumed.train_epoch(&set, &idx, |_| {}).unwrap().loss
        };
        let resumed = second_epoch(state);
        assert!((resumed - expected).abs() < 1e-5, "{resumed} vs {expected}");
        // Without the bank the second epoch differs: the check above can fail.
        let cold = second_epoch(Vec::new());
        assert!((cold - expected).abs() > 1e-4, "{cold} vs {expected}");
    }

    #[test]
    fn sgd_trains_and_its_momentum_survives_a_checkpoint() {
        let set = quadrants(8);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let config = tiny_config(3)
            .with_optimizer(Some(Optimizer::Sgd { momentum: 0.9 }))
            .with_weight_decay(5e-4)
            .with_lr(0.05);
        let mut first = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
        let start = first.train_epoch(&set, &idx, |_| {}).unwrap().loss;
        let (model, optim) = first.checkpoint().unwrap();
        let expected = first.train_epoch(&set, &idx, |_| {}).unwrap().loss;
        assert!(
            expected < start,
            "SGD did not lower the loss: {start} -> {expected}"
        );
        first.history.pop();
        let second_epoch = |optim: Vec<u8>| {
            let mut resumed = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
            resumed
                .restore(model.clone(), optim, first.history.clone(), Vec::new())
                .unwrap();
            resumed.train_epoch(&set, &idx, |_| {}).unwrap().loss
        };
        let resumed = second_epoch(optim);
        assert!((resumed - expected).abs() < 1e-5, "{resumed} vs {expected}");
        // Restored without its velocity (a fresh optimiser's state) the epoch differs: the
        // check above can fail.
        let fresh = Trainer::new(config.clone(), centres.clone(), &device)
            .unwrap()
            .checkpoint()
            .unwrap()
            .1;
        let cold = second_epoch(fresh);
        assert!((cold - expected).abs() > 1e-4, "{cold} vs {expected}");
        // Momentum outside [0, 1) is refused.
        let bad = tiny_config(1).with_optimizer(Some(Optimizer::Sgd { momentum: 1.0 }));
        assert!(Trainer::new(bad, centres, &device).is_err());
    }

    /// Configs saved before the optimiser could be chosen have no `optimizer` key: they load,
    /// as Adam.
    #[test]
    fn a_config_without_an_optimizer_loads_as_adam() {
        let mut json = serde_json::to_value(tiny_config(1)).unwrap();
        assert_eq!(json["optimizer"], serde_json::Value::Null);
        json.as_object_mut().unwrap().remove("optimizer");
        let config: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(config.optimizer.unwrap_or_default(), Optimizer::Adam);
        let sgd = tiny_config(1).with_optimizer(Some(Optimizer::Sgd { momentum: 0.5 }));
        let back: TrainConfig =
            serde_json::from_value(serde_json::to_value(&sgd).unwrap()).unwrap();
        assert_eq!(back.optimizer, sgd.optimizer);
    }

    #[test]
    fn a_damaged_optimiser_record_is_an_error_not_a_panic() {
        let set = quadrants(8);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let mut a = Trainer::new(tiny_config(1), centres.clone(), &device).unwrap();
        a.train_epoch(&set, &idx, |_| {}).unwrap();
        let (model, optim) = a.checkpoint().unwrap();
        // Found by the `checkpoint` fuzz target: a tensor without its parameter id made
        // Burn's optimiser loader panic.
        let tensors = burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(optim))
            .and_then(burn_pack::Reader::into_tensors)
            .unwrap();
        assert!(!tensors.is_empty());
        let stripped: Vec<burn_pack::Tensor> = tensors
            .into_iter()
            .map(|mut t| {
                t.param_id = None;
                t
            })
            .collect();
        let damaged = burn_pack::Writer::new(stripped)
            .into_bytes()
            .unwrap()
            .to_vec();
        let mut b = Trainer::new(tiny_config(1), centres, &device).unwrap();
        let e = b
            .restore(model, damaged, a.history.clone(), Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("no parameter id"), "{e}");
        assert_eq!(b.epochs_done(), 0, "nothing restored");
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
        b.restore(model, optim, a.history.clone(), a.loss_state())
            .unwrap();
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
        assert!(b.restore(vec![1, 2, 3], vec![], vec![], vec![]).is_err());
    }

    /// CgAT/SAAT's codes B travel with the checkpoint: the resumed second epoch equals the
    /// uninterrupted one, and re-encoding B from the restored weights (older checkpoints) does
    /// not, so the check can fail. Older untagged DPSH states and truncated ones are handled.
    #[test]
    fn a_resumed_cgat_run_keeps_its_codes_b() {
        let set = quadrants(12);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        for method in [AdvTraining::cgat(), AdvTraining::saat()] {
            let config = tiny_config(2).with_adversarial(Some(method.clone()));
            let mut first = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
            first.train_epoch(&set, &idx, |_| {}).unwrap();
            let (model, optim) = first.checkpoint().unwrap();
            let state = first.loss_state();
            assert!(state.starts_with(LOSS_STATE_MAGIC), "{method:?}");
            let expected = first.train_epoch(&set, &idx, |_| {}).unwrap().loss;
            first.history.pop();
            let second_epoch = |state: Vec<u8>| {
                let mut resumed = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
                resumed
                    .restore(model.clone(), optim.clone(), first.history.clone(), state)
                    .unwrap();
                resumed.train_epoch(&set, &idx, |_| {}).unwrap().loss
            };
            let resumed = second_epoch(state.clone());
            assert_eq!(resumed, expected, "{method:?}");
            let cold = second_epoch(Vec::new());
            assert_ne!(
                cold, expected,
                "{method:?}: re-encoded B gave the same epoch"
            );
            let mut cut = state;
            cut.truncate(cut.len() - 3);
            let mut t = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
            let err = t
                .restore(model.clone(), optim.clone(), vec![], cut)
                .unwrap_err();
            assert!(err.to_string().contains("truncated"), "{err}");
        }
        let (bank, codes) = split_loss_state(vec![7, 8, 9]).unwrap();
        assert_eq!((bank, codes.is_none()), (Some(vec![7, 8, 9]), true));
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
            // The agreement with the hash centres is recorded at each epoch's start and end;
            // B carries over, so an epoch starts where the last one ended, and the last end is
            // what B says now.
            let h = &trainer.history;
            let [a0, b0] = h[0].target_agreement.unwrap();
            let [a1, b1] = h[1].target_agreement.unwrap();
            assert!(
                (0.0..=1.0).contains(&a0) && (0.0..=1.0).contains(&b0),
                "{h:?}"
            );
            assert_eq!(a1, b0, "{method:?}");
            let target = target_codes(&method, codes).unwrap();
            let now = target
                .agreement(&codes.labels, |l| trainer.centres.centre_of(l))
                .unwrap();
            assert_eq!(b1, now, "{method:?}");
        }
        // CgAT on the hash centres keeps no B and records no agreement (it is 1 by definition);
        // it needs CSQ's centres.
        let on_centres = AdvTraining::cgat().with_targets(TargetSource::Centres);
        let config = tiny_config(1).with_adversarial(Some(on_centres.clone()));
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let mut trainer = Trainer::new(config, centres, &device).unwrap();
        let stats = trainer.train_epoch(&set, &idx, |_| {}).unwrap();
        assert!(stats.loss.is_finite(), "{stats:?}");
        assert!(trainer.train_codes.is_none() && stats.target_agreement.is_none());
        let dpsh = TrainConfig {
            method: HashMethod::Dpsh { alpha: 0.1 },
            ..tiny_config(1).with_adversarial(Some(on_centres))
        };
        assert!(dpsh.validate().is_err());
    }

    #[test]
    fn pgd_at_trains_on_the_attack_s_images_and_needs_no_codes() {
        let set = quadrants(12);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let mut base = Trainer::new(tiny_config(4), centres.clone(), &device).unwrap();
        for _ in 0..4 {
            base.train_epoch(&set, &idx, |_| {}).unwrap();
        }
        // One step from the same weights on the same batch: PGD-AT's loss is the hashing loss
        // of the inner attack's images, which that attack raised above the clean loss.
        let batch_idx = &idx[..16];
        let labels: Vec<_> = batch_idx.iter().map(|&i| set.labels[i]).collect();
        let step = |adversarial: Option<AdvTraining>| {
            let config = tiny_config(1).with_adversarial(adversarial);
            let mut t = Trainer::new(config, centres.clone(), &device).unwrap();
            t.start_from(base.model()).unwrap();
            let images = to_tensor(
                &set,
                batch_idx,
                Augment::NONE,
                &mut ChaCha8Rng::seed_from_u64(0),
                &t.device,
            );
            let model = t.model.take().unwrap();
            let batch = Batch {
                idx: batch_idx,
                labels: &labels,
                epoch: 0,
            };
            let (_, values) = t.pgd_step(model, images, batch, 1e-3, 0).unwrap();
            values[1]
        };
        let (clean, adversarial) = (step(None), step(Some(AdvTraining::pgd_at())));
        assert!(
            adversarial > clean + 1e-3,
            "BCE on the attack's images {adversarial} vs clean {clean}"
        );
        // Whole epochs run, without CgAT's code bank.
        let config = tiny_config(1).with_adversarial(Some(AdvTraining::pgd_at()));
        let mut t = Trainer::new(config, centres.clone(), &device).unwrap();
        let stats = t.train_epoch(&set, &idx, |_| {}).unwrap();
        assert!(stats.loss.is_finite(), "{stats:?}");
        assert!(t.train_codes.is_none() && stats.target_agreement.is_none());
        // CSQ only: the inner attack moves away from hash centres.
        let dpsh = TrainConfig {
            method: HashMethod::Dpsh { alpha: 0.1 },
            ..tiny_config(1).with_adversarial(Some(AdvTraining::pgd_at()))
        };
        assert!(dpsh.validate().is_err());
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
        let budget = AdvTraining::cgat().inner_pgd().unwrap();
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
    fn freeat_keeps_delta_in_the_ball_and_its_step_raises_the_hashing_loss() {
        let set = quadrants(12);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let eps = 8.0 / 255.0;
        let config = tiny_config(3).with_adversarial(Some(AdvTraining::Free { eps, replays: 3 }));
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let mut trainer = Trainer::new(config, centres.clone(), &device).unwrap();
        let mut steps = 0;
        for _ in 0..3 {
            let stats = trainer.train_epoch(&set, &idx, |_| steps += 1).unwrap();
            assert!(stats.loss.is_finite(), "{stats:?}");
        }
        assert_eq!(
            steps,
            3 * 3,
            "one progress call per mini-batch, not per replay"
        );
        let delta = read_floats(trainer.free_delta.clone().unwrap(), "delta").unwrap();
        assert!(delta.iter().all(|d| d.abs() <= eps + 1e-6));
        assert!(delta.iter().any(|d| d.abs() > eps / 2.0), "δ never moved");

        // One ascent step from δ = 0 on the trained model raises the loss it ascends.
        let model = trainer.model().valid();
        let x = to_tensor(
            &set,
            &idx[..16],
            Augment::NONE,
            &mut ChaCha8Rng::seed_from_u64(0),
            &device,
        );
        let labels: Vec<_> = idx[..16].iter().map(|&i| set.labels[i]).collect();
        let targets = centres.targets(&labels, &device);
        let loss = |images: Tensor<4>| {
            trainer
                .loss
                .forward(model.logits(images), targets.clone())
                .total
                .into_scalar::<f32>()
        };
        let xa = x.clone().autodiff().require_grad();
        let parts = trainer.loss.forward(
            model.logits(xa.clone()),
            centres.targets(&labels, &xa.device()),
        );
        let grad = xa.grad(&parts.total.backward()).unwrap();
        let step = free_ascent(Tensor::zeros(x.dims(), &device), grad, eps);
        let (before, after) = (loss(x.clone()), loss((x + step).clamp(0.0, 1.0)));
        assert!(after > before, "loss {before} -> {after}");
    }

    /// Same epochs, steps and learning rates after a restore (weights are not compared: the CPU
    /// backend's multi-threaded reductions are not bit-reproducible between runs).
    #[test]
    fn a_resumed_run_continues_on_the_same_step_schedule() {
        let set = quadrants(8);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        for adversarial in [None, Some(AdvTraining::free(2)), Some(AdvTraining::cgat())] {
            let config = tiny_config(2).with_adversarial(adversarial.clone());
            let mut straight = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
            straight.train_epoch(&set, &idx, |_| {}).unwrap();
            let mut expected = Vec::new();
            straight
                .train_epoch(&set, &idx, |s| expected.push((s.epoch, s.step, s.lr)))
                .unwrap();

            let mut first = Trainer::new(config.clone(), centres.clone(), &device).unwrap();
            first.train_epoch(&set, &idx, |_| {}).unwrap();
            let (model, optim) = first.checkpoint().unwrap();
            let mut resumed = Trainer::new(config, centres.clone(), &device).unwrap();
            resumed
                .restore(model, optim, first.history.clone(), first.loss_state())
                .unwrap();
            let mut seen = Vec::new();
            resumed
                .train_epoch(&set, &idx, |s| seen.push((s.epoch, s.step, s.lr)))
                .unwrap();
            assert_eq!(seen, expected, "{adversarial:?}");
            assert_eq!(resumed.epochs_done(), 2);
        }
    }

    #[test]
    fn starting_from_trained_weights_copies_them_once() {
        let set = quadrants(8);
        let idx: Vec<usize> = (0..set.len()).collect();
        let device = Device::flex();
        let centres = HashCentres::new(4, 16, 0).unwrap();
        let mut base = Trainer::new(tiny_config(1), centres.clone(), &device).unwrap();
        base.train_epoch(&set, &idx, |_| {}).unwrap();
        let mut tuned = Trainer::new(tiny_config(1).with_seed(5), centres, &device).unwrap();
        tuned.start_from(&base.model().valid()).unwrap();
        let x = to_tensor(
            &set,
            &idx[..4],
            Augment::NONE,
            &mut ChaCha8Rng::seed_from_u64(0),
            &device,
        );
        let a = read_floats(base.model().valid().forward(x.clone()), "a").unwrap();
        let b = read_floats(tuned.model().valid().forward(x), "b").unwrap();
        assert_eq!(a, b);
        tuned.train_epoch(&set, &idx, |_| {}).unwrap();
        assert!(tuned.start_from(&base.model().valid()).is_err());
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
