//! `hashguard train`: CSQ training with a progress bar, `config.json` written first, and after
//! every epoch the model and a checkpoint, both atomically; `--resume` continues from the
//! last checkpoint with the saved configuration.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use hashguard_core::adv_train::{AdvTraining, LrSchedule, TrainConfig, Trainer};
use hashguard_core::data::{DatasetKind, ImageSet, Split, SplitConfig, TrainSize};
use hashguard_core::loss::{CsqLossConfig, HashCentres};
use hashguard_core::model::{HashNet, HashNetConfig};
use hashguard_core::run::{Checkpoint, DataSpec, RunDir, write_atomic};
use serde_json::json;

use super::load_run_data;

/// Label smoothing of new runs: CSQ's BCE then has its minimum at |f| = 0.9 instead of at
/// saturated codes (README, "Model and training").
const DEFAULT_LABEL_SMOOTHING: f64 = 0.1;
use crate::backend::Selected;
use crate::progress::{bar, log};

/// Flags of `hashguard train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run directory to create (or to continue with --resume).
    #[arg(long)]
    out: PathBuf,
    /// Data set: `fashion-mnist`, `fashion-mosaic` (multi-label 2x2 mosaics of it) or
    /// `cifar10` (binary batches; needs --data).
    #[arg(long, value_parser = parse_dataset)]
    dataset: Option<DatasetKind>,
    /// Data directory (Fashion-MNIST IDX files, plain or .gz; or CIFAR-10 binary batches).
    /// Default for Fashion-MNIST: $HASHGUARD_DATA, then /usr/share/datasets/fashion-mnist
    /// (Debian's dataset-fashion-mnist), then the embedded 10,000-image test set.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Code length K in bits.
    #[arg(long)]
    bits: Option<usize>,
    /// Training epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per optimiser step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Base learning rate (Adam, cosine schedule).
    #[arg(long)]
    lr: Option<f64>,
    /// Training images per class (DeepHash-pytorch protocol: 500), or `all` to train on every
    /// non-query image with the database equal to the training set.
    #[arg(long)]
    train_size: Option<TrainSize>,
    /// Seed of the split, initialisation, shuffling and augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// Weight of CSQ's quantisation term.
    #[arg(long)]
    lambda: Option<f64>,
    /// Label smoothing ε of CSQ's BCE targets (0 = CSQ as published; README: why 0.1).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Start from this trained run's weights (adversarial fine-tuning, as CgAT's reference
    /// code does); data, split, network and hash centres are then the run's own.
    #[arg(long, value_name = "RUN")]
    init: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, with its saved configuration.
    #[arg(long)]
    resume: bool,
}

impl TrainArgs {
    fn overrides(&self) -> Vec<&'static str> {
        [
            ("--dataset", self.dataset.is_some()),
            ("--data", self.data.is_some()),
            ("--bits", self.bits.is_some()),
            ("--epochs", self.epochs.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--train-size", self.train_size.is_some()),
            ("--seed", self.seed.is_some()),
            ("--lambda", self.lambda.is_some()),
            ("--label-smoothing", self.label_smoothing.is_some()),
            ("--init", self.init.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

fn parse_dataset(s: &str) -> Result<DatasetKind, String> {
    DatasetKind::parse(s).map_err(|e| e.to_string())
}

/// Adversarial training methods of `hashguard adv-train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AdvMethod {
    /// FreeAT: each mini-batch replayed --m times, δ updated from the same backward pass.
    Freeat,
    /// CgAT: PGD away from centre codes, loss + −mean(f(x_adv) ⊙ c).
    Cgat,
    /// SAAT: PGD away from DMFL mainstay codes, loss + λ·alignment + μ·quantisation.
    Saat,
}

/// Flags of `hashguard adv-train`: those of `train`, plus the method and its inner PGD.
#[derive(Args, Debug)]
pub struct AdvTrainArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// Adversarial training method.
    #[arg(long, value_enum)]
    method: AdvMethod,
    /// FreeAT: replays m of each mini-batch. Without --epochs, FreeAT runs ⌈30/m⌉ epochs so
    /// that its cost matches 30 epochs of standard training (Shafahi et al.).
    #[arg(long = "m", default_value_t = 8)]
    replays: usize,
    /// L∞ radius of the inner PGD, and of FreeAT's δ (pixel units).
    #[arg(long, default_value = "8/255", value_parser = super::attack::parse_fraction)]
    eps: f32,
    /// Step of the inner PGD.
    #[arg(long, default_value = "2/255", value_parser = super::attack::parse_fraction)]
    step: f32,
    /// Iterations of the inner PGD.
    #[arg(long, default_value_t = 7)]
    inner_steps: usize,
    /// SAAT: weight λ of the mainstay alignment term.
    #[arg(long, default_value_t = 1.0)]
    saat_lambda: f64,
    /// SAAT: weight μ of the quantisation term.
    #[arg(long, default_value_t = 1e-4)]
    saat_mu: f64,
}

/// Runs `hashguard adv-train`.
pub fn run_adversarial(args: AdvTrainArgs, selected: Selected) -> Result<()> {
    let (eps, step, steps) = (args.eps, args.step, args.inner_steps);
    let mut train = args.train;
    let adversarial = match args.method {
        AdvMethod::Freeat => {
            if train.epochs.is_none() && !train.resume {
                train.epochs = Some(30usize.div_ceil(args.replays.max(1)));
            }
            AdvTraining::Free {
                eps,
                replays: args.replays,
            }
        }
        AdvMethod::Cgat => AdvTraining::CgAt { eps, step, steps },
        AdvMethod::Saat => AdvTraining::Saat {
            eps,
            step,
            steps,
            lambda: args.saat_lambda,
            mu: args.saat_mu,
        },
    };
    adversarial.validate()?;
    train_run(train, Some(adversarial), selected)
}

/// Makes sure `out` holds a finished run of `adversarial` fine-tuned from `init` for `epochs`
/// epochs at base rate `lr`: trains it when absent, resumes it when interrupted, reuses it when
/// done, and refuses a directory holding a different run.
pub fn ensure_fine_tuned(
    init: &Path,
    out: &Path,
    adversarial: AdvTraining,
    epochs: usize,
    lr: f64,
    selected: &Selected,
) -> Result<()> {
    let existing = RunDir::new(out);
    let resume = existing.file("config.json").exists();
    if resume {
        let config = existing.read_config()?;
        let t = &config.train;
        let wanted = Some(init.display().to_string());
        if t.adversarial.as_ref() != Some(&adversarial)
            || t.epochs != epochs
            || t.init != wanted
            || t.lr != lr
        {
            bail!(
                "{} holds a different run ({:?}, {} epochs, lr {}, from {:?}) than this table needs \
                 ({adversarial:?}, {epochs} epochs, lr {lr}, from {}): move it away or choose another --out",
                out.display(),
                t.adversarial,
                t.epochs,
                t.lr,
                t.init,
                init.display()
            );
        }
        let done = existing.read_checkpoint()?.map_or(0, |c| c.history.len());
        if done >= epochs && existing.file("model.bpk").exists() {
            eprintln!("{}: already trained, reused", out.display());
            return Ok(());
        }
    }
    let args = TrainArgs {
        out: out.to_path_buf(),
        dataset: None,
        data: None,
        bits: None,
        epochs: (!resume).then_some(epochs),
        batch_size: None,
        lr: (!resume).then_some(lr),
        train_size: None,
        seed: None,
        lambda: None,
        label_smoothing: None,
        init: (!resume).then(|| init.to_path_buf()),
        resume,
    };
    train_run(args, Some(adversarial), selected.clone())
}

/// Runs `hashguard train`.
pub fn run(args: TrainArgs, selected: Selected) -> Result<()> {
    train_run(args, None, selected)
}

fn train_run(args: TrainArgs, adversarial: Option<AdvTraining>, selected: Selected) -> Result<()> {
    let run = RunDir::new(&args.out);
    let started = std::time::Instant::now();
    let (config, set, split, mut trainer) = if args.resume {
        let overrides = args.overrides();
        if !overrides.is_empty() {
            bail!(
                "--resume continues with the run's saved configuration; drop {}",
                overrides.join(", ")
            );
        }
        let run = RunDir::open(&args.out)?;
        let config = run.read_config()?;
        if config.train.adversarial != adversarial {
            bail!(
                "{} was trained with {}: resume it with the same command and method flags",
                args.out.display(),
                match &config.train.adversarial {
                    None => "`hashguard train`".to_string(),
                    Some(a) => format!("`hashguard adv-train` ({a:?})"),
                }
            );
        }
        let (set, split) = load_run_data(&config, None)?;
        let mut trainer = Trainer::new(
            config.train.clone(),
            config.centres.clone(),
            &selected.device,
        )?;
        match run.read_checkpoint()? {
            Some(ckpt) => {
                trainer.restore(ckpt.model, ckpt.optim, ckpt.history)?;
                eprintln!(
                    "resuming {} after epoch {}",
                    args.out.display(),
                    trainer.epochs_done()
                );
            }
            None => eprintln!(
                "no checkpoint in {} yet: starting from epoch 1",
                args.out.display()
            ),
        }
        (config, set, split, trainer)
    } else {
        if run.file("config.json").exists() {
            bail!(
                "{} already holds a run: pass --resume to continue it, or choose another --out",
                args.out.display()
            );
        }
        let fresh = match &args.init {
            Some(init) => from_init(&args, init, adversarial, &selected)?,
            None => from_scratch(&args, adversarial)?,
        };
        run.create()?;
        run.write_config(fresh.data, fresh.train.clone(), fresh.centres.clone())?;
        let mut trainer = Trainer::new(fresh.train, fresh.centres, &selected.device)?;
        if let Some(model) = &fresh.start {
            trainer.start_from(model)?;
        }
        let config = run.read_config()?;
        (config, fresh.set, fresh.split, trainer)
    };

    run.remove_stale_temps()?;
    let epochs = config.train.epochs;
    eprintln!(
        "training {}-bit CSQ{} on {} ({} train / {} query / {} database images, source {}) with {} [{}]",
        config.train.model.bits,
        match &config.train.adversarial {
            None => String::new(),
            Some(a) => format!(" + {a:?}"),
        },
        set.name,
        split.train.len(),
        split.query.len(),
        split.database.len(),
        config.data.source,
        selected.info.kind,
        selected.info.adapter
    );
    let steps = split.train.len().div_ceil(config.train.batch_size) as u64;
    let pb = bar(steps * epochs as u64, "train");
    pb.set_position(steps * trainer.epochs_done() as u64);
    pb.reset_eta();
    while trainer.epochs_done() < epochs {
        let stats = trainer.train_epoch(&set, &split.train, |s| {
            pb.set_message(format!("epoch {}/{epochs} loss {:.4}", s.epoch + 1, s.loss));
            pb.inc(1);
        })?;
        // Model first, then the checkpoint: a kill between the two loses nothing.
        run.write_model(trainer.model())?;
        let (model, optim) = trainer.checkpoint()?;
        run.write_checkpoint(&Checkpoint {
            history: trainer.history.clone(),
            model,
            optim,
        })?;
        log(
            &pb,
            format!(
                "epoch {:>3}/{epochs}: loss {:.4} (bce {:.4}, quantisation {:.4}) in {:.1}s",
                stats.epoch + 1,
                stats.loss,
                stats.bce,
                stats.quantisation,
                stats.seconds
            ),
        );
    }
    pb.finish_and_clear();
    let total: f64 = trainer.history.iter().map(|h| h.seconds).sum();
    let summary = json!({
        "epochs": trainer.history,
        "train_seconds": total,
        "this_invocation_seconds": started.elapsed().as_secs_f64(),
        "backend": selected.info,
    });
    write_atomic(
        &run.file("train.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )
    .context("writing train.json")?;
    eprintln!(
        "trained {} epochs in {:.0}s; next: hashguard eval --run {} --report report.json",
        epochs,
        total,
        args.out.display()
    );
    Ok(())
}

/// What a new run starts with.
struct Fresh {
    data: DataSpec,
    train: TrainConfig,
    centres: HashCentres,
    set: ImageSet,
    split: Split,
    /// Weights to start from (`--init`).
    start: Option<HashNet>,
}

/// Hyper-parameters a user may set on top of a base configuration.
fn apply_flags(mut train: TrainConfig, args: &TrainArgs) -> Result<TrainConfig> {
    if let Some(e) = args.epochs {
        train = train.with_epochs(e);
    }
    if let Some(b) = args.batch_size {
        train = train.with_batch_size(b);
    }
    if let Some(lr) = args.lr {
        train = train.with_lr(lr);
    }
    if let Some(seed) = args.seed {
        train = train.with_seed(seed);
    }
    if let Some(lambda) = args.lambda {
        train.loss = train.loss.with_lambda(lambda);
    }
    if let Some(eps) = args.label_smoothing {
        train.loss = train.loss.with_label_smoothing(eps);
    }
    train.validate()?;
    Ok(train)
}

/// A new run from a random initialisation.
fn from_scratch(args: &TrainArgs, adversarial: Option<AdvTraining>) -> Result<Fresh> {
    let kind = args.dataset.unwrap_or(DatasetKind::FashionMnist);
    let source = kind.resolve(args.data.as_deref())?;
    let set = kind.load(&source)?;
    let split_cfg = SplitConfig {
        train: args.train_size.unwrap_or(TrainSize::PerClass(500)),
        seed: args.seed.unwrap_or(0),
        ..SplitConfig::default()
    };
    let split = split_cfg.split(&set)?;
    let model = HashNetConfig::new(args.bits.unwrap_or(64), set.channels)
        .with_mean(vec![0.5; set.channels])
        .with_std(vec![0.5; set.channels]);
    let loss = CsqLossConfig::new()
        .with_lambda(1e-4)
        .with_label_smoothing(DEFAULT_LABEL_SMOOTHING);
    let train = TrainConfig::new(model, loss).with_adversarial(adversarial);
    let train = apply_flags(train, args)?;
    let centres = HashCentres::new(set.num_classes(), train.model.bits, train.seed)?;
    let data = DataSpec {
        kind,
        dataset: set.name.clone(),
        source: source.to_string(),
        split: split_cfg,
    };
    Ok(Fresh {
        data,
        train,
        centres,
        set,
        split,
        start: None,
    })
}

/// A new run starting from `init`'s trained weights, on its data, split and hash centres.
fn from_init(
    args: &TrainArgs,
    init: &Path,
    adversarial: Option<AdvTraining>,
    selected: &Selected,
) -> Result<Fresh> {
    let taken = [
        ("--dataset", args.dataset.is_some()),
        ("--bits", args.bits.is_some()),
        ("--train-size", args.train_size.is_some()),
    ];
    let clashing: Vec<_> = taken.iter().filter(|t| t.1).map(|t| t.0).collect();
    if !clashing.is_empty() {
        bail!(
            "--init takes the data set, split and network of {}: drop {}",
            init.display(),
            clashing.join(", ")
        );
    }
    let base_dir = RunDir::open(init)?;
    let base = base_dir.read_config()?;
    let (set, split) = load_run_data(&base, args.data.as_deref())?;
    let start = base_dir
        .load_model(&base, &selected.device)
        .with_context(|| format!("loading --init {}", init.display()))?;
    let mut data = base.data.clone();
    if let Some(dir) = &args.data {
        data.source = base.data.kind.resolve(Some(dir))?.to_string();
    }
    // Same network, loss and augmentation; the method is this run's, and the learning rate
    // decays from its base by cosine without a warm-up (the weights are already trained).
    let train = TrainConfig {
        adversarial,
        init: Some(init.display().to_string()),
        schedule: LrSchedule::Cosine {
            floor: 0.01,
            warmup_epochs: 0,
        },
        ..base.train.clone()
    };
    let train = apply_flags(train, args)?;
    Ok(Fresh {
        data,
        train,
        centres: base.centres,
        set,
        split,
        start: Some(start),
    })
}
