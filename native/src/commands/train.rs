//! `hashguard train`: hashing training (CSQ, DPSH or HashNet) with a progress bar, `config.json`
//! written first, and after every epoch the model and a checkpoint, both atomically; `--resume`
//! continues from the last checkpoint with the saved configuration.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use hashguard_core::adv_train::{AdvTraining, Optimizer, Trainer};
use hashguard_core::data::{DatasetKind, TrainSize};
use hashguard_core::loss::HashMethod;
use hashguard_core::model::BackboneKind;
use hashguard_core::run::{Checkpoint, RunDir, TrainSummary, write_atomic};

use crate::backend::{Selected, adapters};
use crate::progress::{Bars, bar, log};

mod adversarial;
mod curve;
mod flags;
mod fresh;

pub use adversarial::{AdvTrainArgs, TargetsArg, TermArg, ensure_trained, run_adversarial};
use curve::{epoch_line, loss_curve};
pub(crate) use flags::parse_optimizer;
use fresh::{Weights, from_init, from_scratch, report_left_out};

/// Flags of `hashguard train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run directory to create (or to continue with --resume).
    #[arg(long)]
    out: PathBuf,
    /// Data set: `fashion-mnist`, `fashion-mosaic` (multi-label 2x2 mosaics of it), `cifar10`
    /// (binary batches; needs --data), `folder` (ROOT/<class>/<images>) or list files:
    /// `list`, `cifar10-list`, `nus-wide-21`, `coco`, `flickr25k`, `imagenet100`.
    #[arg(long, value_parser = parse_dataset)]
    dataset: Option<DatasetKind>,
    /// Data directory (Fashion-MNIST IDX files, plain or .gz; CIFAR-10 binary batches; the
    /// image root of list files or folders). Default for Fashion-MNIST: $HASHGUARD_DATA, then
    /// /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist), then the embedded
    /// 10,000-image test set.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Directory of train.txt, test.txt and database.txt (list-file data sets; default: --data).
    #[arg(long, value_name = "DIR")]
    lists: Option<PathBuf>,
    /// Side of the square network input for natural images (centre crop; default 224).
    #[arg(value_parser = crate::commands::positive::<u32>, long, value_name = "C")]
    image_size: Option<u32>,
    /// Shorter side natural images are resized to before the crop (default: C x 8/7).
    #[arg(value_parser = crate::commands::positive::<u32>, long, value_name = "S")]
    resize: Option<u32>,
    /// Leave unreadable images out (and count them) instead of stopping at the first.
    #[arg(long)]
    skip_bad_images: bool,
    /// Decode natural images once into an image cache in DIR (reused while the files and the
    /// geometry are unchanged) and stream them from disk: bounded memory for data sets larger
    /// than RAM, no decoding in later commands on the run.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Query images per class of the drawn split (default 100; not for list files).
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    query_per_class: Option<usize>,
    /// Code length K in bits.
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    bits: Option<usize>,
    /// Network: `alexnet`, `vgg11`, `vgg16`, `resnet18` or `resnet50` (torchvision's layout,
    /// colour images of at least 32x32, 63x63 for AlexNet); default: the small CNN.
    #[arg(long, value_parser = flags::parse_backbone)]
    backbone: Option<BackboneKind>,
    /// Start the backbone from these torchvision weights: a `state_dict` of the --backbone as
    /// PyTorch saves it (`.pth`) or as safetensors, e.g. torchvision's ImageNet weights
    /// downloaded beforehand (nothing is fetched). The hash layer starts random.
    #[arg(long, value_name = "FILE")]
    pretrained: Option<PathBuf>,
    /// Training epochs.
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    epochs: Option<usize>,
    /// Images per optimiser step.
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    batch_size: Option<usize>,
    /// Base learning rate (cosine schedule).
    #[arg(value_parser = crate::commands::positive::<f64>, long)]
    lr: Option<f64>,
    /// L2 weight decay added to the optimiser's gradient (default 1e-4).
    #[arg(value_parser = crate::commands::non_negative::<f64>, long)]
    weight_decay: Option<f64>,
    /// Optimiser: `adam` (the default) or `sgd` with momentum 0.9 (the CgAT/SAAT reference
    /// code's; e.g. `--optimizer sgd --lr 0.01 --weight-decay 5e-4`), or `sgd:M` for momentum M.
    #[arg(long, value_parser = flags::parse_optimizer)]
    optimizer: Option<Optimizer>,
    /// Training images per class (DeepHash-pytorch protocol: 500), or `all` to train on every
    /// non-query image with the database equal to the training set.
    #[arg(long)]
    train_size: Option<TrainSize>,
    /// Seed of the split, initialisation, shuffling and augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// Hashing loss: `csq` (Hadamard centres, the default), `dpsh` (pairwise likelihood against
    /// every training image, the CgAT code's default) or `hashnet` (weighted pairwise
    /// likelihood within the batch, with continuation).
    #[arg(long, value_name = "METHOD", value_parser = flags::parse_loss)]
    loss: Option<HashMethod>,
    /// DPSH's quantisation weight or HashNet's inner-product scale (both 0.1 by default).
    #[arg(value_parser = crate::commands::positive::<f64>, long)]
    alpha: Option<f64>,
    /// Weight of CSQ's quantisation term.
    #[arg(value_parser = crate::commands::non_negative::<f64>, long)]
    lambda: Option<f64>,
    /// Label smoothing ε of CSQ's BCE targets (0 = CSQ as published; README: why 0.1).
    #[arg(value_parser = crate::commands::non_negative::<f64>, long)]
    label_smoothing: Option<f64>,
    /// Start from this trained run's weights (adversarial fine-tuning, as CgAT's reference
    /// code does); data, split, network and hash centres are then the run's own.
    #[arg(long, value_name = "RUN", conflicts_with = "split_from")]
    init: Option<PathBuf>,
    /// Train from random weights on this run's data, split and hash centres (adversarial
    /// training from scratch, evaluated on the same queries and database as that run).
    #[arg(long, value_name = "RUN")]
    split_from: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, with its saved configuration.
    #[arg(long)]
    resume: bool,
}

pub(super) fn parse_dataset(s: &str) -> Result<DatasetKind, String> {
    DatasetKind::parse(s).map_err(|e| e.to_string())
}

/// Runs `hashguard train`.
pub fn run(args: TrainArgs, selected: Selected, more: Vec<Selected>) -> Result<()> {
    train_run(args, None, selected, more)
}

pub(super) fn train_run(
    args: TrainArgs,
    adversarial: Option<AdvTraining>,
    selected: Selected,
    more: Vec<Selected>,
) -> Result<()> {
    let run = RunDir::new(&args.out);
    let started = std::time::Instant::now();
    // `_lock`: this process is the run's one writer until it returns (RunDir::lock_for_writing).
    let (config, set, split, skipped, mut trainer, _lock) = if args.resume {
        let overrides = flags::overrides(&args);
        if !overrides.is_empty() {
            bail!(
                "--resume continues with the run's saved configuration; drop {}",
                overrides.join(", ")
            );
        }
        let run = RunDir::open(&args.out)?;
        let lock = run.lock_for_writing()?;
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
        let loaded = run.load_data(&config, None, &mut Bars::default())?;
        report_left_out(&loaded);
        let (set, split, skipped) = (loaded.set, loaded.split, loaded.skipped.len());
        let mut trainer = Trainer::new(
            config.train.clone(),
            config.centres.clone(),
            &selected.device,
        )?;
        match run.read_checkpoint()? {
            Some(ckpt) => {
                trainer.restore(ckpt.model, ckpt.optim, ckpt.history, ckpt.loss_state)?;
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
        (config, set, split, skipped, trainer, lock)
    } else {
        if run.file("config.json").exists() {
            bail!(
                "{} already holds a run: pass --resume to continue it, or choose another --out",
                args.out.display()
            );
        }
        let fresh = match (&args.init, &args.split_from) {
            (Some(init), _) => from_init(&args, init, Weights::Keep, adversarial, &selected)?,
            (None, Some(base)) => from_init(&args, base, Weights::Fresh, adversarial, &selected)?,
            (None, None) => from_scratch(&args, adversarial, &selected)?,
        };
        run.create()?;
        let lock = run.lock_for_writing()?;
        if run.file("config.json").exists() {
            bail!(
                "{} received a run from another process meanwhile: choose another --out",
                args.out.display()
            );
        }
        run.write_config(fresh.data, fresh.train.clone(), fresh.centres.clone())?;
        run.write_split(&fresh.set, &fresh.split)?;
        if let Some(invocation) = crate::config::invocation() {
            write_atomic(
                &run.file("invocation.toml"),
                crate::config::invocation_toml(invocation).as_bytes(),
            )
            .context("writing invocation.toml")?;
        }
        let mut trainer = Trainer::new(fresh.train, fresh.centres, &selected.device)?;
        if let Some(model) = &fresh.start {
            trainer.start_from(model)?;
        }
        let config = run.read_config()?;
        (config, fresh.set, fresh.split, fresh.skipped, trainer, lock)
    };

    trainer.data_parallel(&more.iter().map(|s| s.device.clone()).collect::<Vec<_>>())?;
    run.remove_stale_temps()?;
    let epochs = config.train.epochs;
    eprintln!(
        "training {}-bit {}{} on {} ({} train / {} query / {} database images, source {}) with {} [{}]",
        config.train.model.bits,
        config.train.method.name().to_uppercase(),
        (config.train.adversarial.as_ref()).map_or(String::new(), |a| format!(" + {a:?}")),
        set.name,
        split.train.len(),
        split.query.len(),
        split.database.len(),
        config.data.source,
        selected.info.kind,
        adapters(&selected, &more)
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
            loss_state: trainer.loss_state(),
        })?;
        log(&pb, epoch_line(&stats, epochs));
    }
    pb.finish_and_clear();
    let total: f64 = trainer.history.iter().map(|h| h.seconds).sum();
    let summary = TrainSummary {
        epochs: trainer.history.clone(),
        train_seconds: total,
        this_invocation_seconds: started.elapsed().as_secs_f64(),
        backend: selected.info.clone(),
        skipped_images: skipped,
    };
    write_atomic(
        &run.file("train.json"),
        &crate::config::report_json(&summary)?,
    )
    .context("writing train.json")?;
    loss_curve(&trainer.history, &run.file("loss"))?;
    eprintln!(
        "trained {} epochs in {:.0}s; next: hashguard eval --run {} --report report.json",
        epochs,
        total,
        args.out.display()
    );
    Ok(())
}
