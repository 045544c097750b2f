//! The flags of `hashguard train` applied to a configuration: hyper-parameters, the loss and its
//! options, and `--pretrained` weights read before any data.

use anyhow::{Result, bail};
use hashguard_core::adv_train::{Optimizer, TrainConfig};
use hashguard_core::loss::HashMethod;
use hashguard_core::model::{Backbone, BackboneKind, import_torchvision};

use super::TrainArgs;
use crate::backend::Selected;

/// Label smoothing of new runs: CSQ's BCE then has its minimum at |f| = 0.9 instead of at
/// saturated codes (README, "Model and training").
pub(super) const DEFAULT_LABEL_SMOOTHING: f64 = 0.1;

pub(super) fn parse_loss(s: &str) -> Result<HashMethod, String> {
    HashMethod::parse(s).map_err(|e| e.to_string())
}

pub(super) fn parse_backbone(s: &str) -> Result<BackboneKind, String> {
    BackboneKind::parse(s).map_err(|e| e.to_string())
}

/// The flags given that would change a saved configuration (refused with --resume).
pub(super) fn overrides(args: &TrainArgs) -> Vec<&'static str> {
    [
        ("--dataset", args.dataset.is_some()),
        ("--data", args.data.is_some()),
        ("--lists", args.lists.is_some()),
        ("--image-size", args.image_size.is_some()),
        ("--resize", args.resize.is_some()),
        ("--skip-bad-images", args.skip_bad_images),
        ("--cache", args.cache.is_some()),
        ("--query-per-class", args.query_per_class.is_some()),
        ("--bits", args.bits.is_some()),
        ("--backbone", args.backbone.is_some()),
        ("--pretrained", args.pretrained.is_some()),
        ("--epochs", args.epochs.is_some()),
        ("--batch-size", args.batch_size.is_some()),
        ("--lr", args.lr.is_some()),
        ("--weight-decay", args.weight_decay.is_some()),
        ("--optimizer", args.optimizer.is_some()),
        ("--train-size", args.train_size.is_some()),
        ("--seed", args.seed.is_some()),
        ("--loss", args.loss.is_some()),
        ("--alpha", args.alpha.is_some()),
        ("--lambda", args.lambda.is_some()),
        ("--label-smoothing", args.label_smoothing.is_some()),
        ("--init", args.init.is_some()),
        ("--split-from", args.split_from.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// `adam`, `sgd` (momentum 0.9) or `sgd:M`.
pub(crate) fn parse_optimizer(s: &str) -> Result<Optimizer, String> {
    let momentum = match s.split_once(':') {
        None if s == "adam" => return Ok(Optimizer::Adam),
        None if s == "sgd" => 0.9,
        Some(("sgd", m)) => m
            .parse::<f64>()
            .map_err(|_| format!("sgd:{m}: the momentum must be a number, e.g. sgd:0.9"))?,
        _ => return Err(format!("{s}: expected adam, sgd or sgd:MOMENTUM")),
    };
    let sgd = Optimizer::Sgd { momentum };
    sgd.validate().map_err(|e| e.to_string())?;
    Ok(sgd)
}

/// Hyper-parameters a user may set on top of a base configuration.
pub(super) fn apply_flags(mut train: TrainConfig, args: &TrainArgs) -> Result<TrainConfig> {
    if let Some(e) = args.epochs {
        train = train.with_epochs(e);
    }
    if let Some(b) = args.batch_size {
        train = train.with_batch_size(b);
    }
    if let Some(lr) = args.lr {
        train = train.with_lr(lr);
    }
    if let Some(wd) = args.weight_decay {
        train = train.with_weight_decay(wd);
    }
    if let Some(optimizer) = args.optimizer {
        train = train.with_optimizer(Some(optimizer));
    }
    if let Some(seed) = args.seed {
        train = train.with_seed(seed);
    }
    if let Some(method) = args.loss {
        train.method = method;
    }
    let csq = train.method == HashMethod::Csq;
    for (flag, given) in [
        ("--lambda", args.lambda.is_some()),
        ("--label-smoothing", args.label_smoothing.is_some()),
    ] {
        if given && !csq {
            bail!("{flag} is CSQ's; {} takes --alpha", train.method.name());
        }
    }
    if let Some(alpha) = args.alpha {
        match &mut train.method {
            HashMethod::Csq => bail!("--alpha is DPSH's and HashNet's; CSQ takes --lambda"),
            HashMethod::Dpsh { alpha: a } | HashMethod::HashNet { alpha: a, .. } => *a = alpha,
        }
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

/// Dropout of AlexNet's and VGG's 4096-wide layers (torchvision's).
pub(super) const BACKBONE_DROPOUT: f64 = 0.5;

/// The backbone with the torchvision weights in `path` (`--pretrained`), read before any data
/// so a file that does not fit is refused at once.
pub(super) fn pretrained_backbone(
    args: &TrainArgs,
    selected: &Selected,
) -> Result<Option<Backbone>> {
    let Some(path) = &args.pretrained else {
        return Ok(None);
    };
    let Some(kind) = args.backbone else {
        bail!(
            "--pretrained {} holds a backbone's weights: add --backbone",
            path.display()
        );
    };
    let mut backbone = kind.init(BACKBONE_DROPOUT, &selected.device);
    let summary = import_torchvision(&mut backbone, kind, path)?;
    eprintln!(
        "{}: {} tensors loaded into {}, left out: {}",
        path.display(),
        summary.loaded,
        kind.name(),
        match summary.skipped.len() {
            0 => "nothing".to_string(),
            n => format!("{n} (the class layer and batch-norm counters)"),
        }
    );
    Ok(Some(backbone))
}
