//! What a new training run starts from: random or torchvision weights, a trained run's
//! (`--init`), or random weights on another run's split (`--split-from`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use hashguard_core::adv_train::{AdvTraining, LrSchedule, TrainConfig};
use hashguard_core::data::{
    Augment, DataRequest, DatasetKind, ImageGeometry, ImageSet, LoadedData, Split, SplitConfig,
    TrainSize, load_data,
};
use hashguard_core::loss::{CsqLossConfig, HashCentres};
use hashguard_core::model::{HashNet, HashNetConfig};
use hashguard_core::run::{DataSpec, RunDir};

use super::TrainArgs;
use super::flags::{BACKBONE_DROPOUT, DEFAULT_LABEL_SMOOTHING, apply_flags, pretrained_backbone};
use crate::backend::Selected;
use crate::progress::Bars;

/// What a new run starts with.
pub(super) struct Fresh {
    pub(super) data: DataSpec,
    pub(super) train: TrainConfig,
    pub(super) centres: HashCentres,
    pub(super) set: ImageSet,
    pub(super) split: Split,
    /// Unreadable images left out (`--skip-bad-images`).
    pub(super) skipped: usize,
    /// Weights to start from (`--init`).
    pub(super) start: Option<HashNet>,
}

/// A new run from a random initialisation, or from torchvision weights (`--pretrained`).
pub(super) fn from_scratch(
    args: &TrainArgs,
    adversarial: Option<AdvTraining>,
    selected: &Selected,
) -> Result<Fresh> {
    let kind = args.dataset.unwrap_or(DatasetKind::FashionMnist);
    if !kind.is_natural() {
        let natural_only = [
            ("--lists", args.lists.is_some()),
            ("--image-size", args.image_size.is_some()),
            ("--resize", args.resize.is_some()),
            ("--skip-bad-images", args.skip_bad_images),
            ("--cache", args.cache.is_some()),
        ];
        if let Some((flag, _)) = natural_only.iter().find(|f| f.1) {
            bail!(
                "{flag} is for natural images (--dataset folder or list files), not {}",
                kind.name()
            );
        }
    }
    if args.lists.is_some() && !kind.has_own_roles() {
        bail!("--lists is for list-file data sets (--dataset list, nus-wide-21, coco, ...)");
    }
    let source = kind.resolve(args.data.as_deref())?;
    let pretrained = pretrained_backbone(args, selected)?;
    let geometry = match kind.is_natural() {
        true => Some(ImageGeometry::new(
            args.image_size.unwrap_or(ImageGeometry::IMAGENET.crop),
            args.resize,
        )?),
        false => None,
    };
    let split_cfg = SplitConfig {
        query_per_class: args.query_per_class.unwrap_or(100),
        train: args.train_size.unwrap_or(TrainSize::PerClass(500)),
        seed: args.seed.unwrap_or(0),
    };
    let request = DataRequest {
        kind,
        source: &source,
        lists: args.lists.as_deref(),
        geometry,
        skip_bad_images: args.skip_bad_images,
        cache: args.cache.as_deref(),
        split: &split_cfg,
    };
    let loaded = load_data(request, &mut Bars::default())?;
    report_left_out(&loaded);
    let set = loaded.set;
    // Natural images are normalised with ImageNet's statistics inside the model, as the
    // reference code's transforms do; the small grey sets with 0.5 / 0.5.
    let (mean, std) = if kind.is_natural() {
        (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec())
    } else {
        (vec![0.5; set.channels], vec![0.5; set.channels])
    };
    let mut model = HashNetConfig::new(args.bits.unwrap_or(64), set.channels)
        .with_mean(mean)
        .with_std(std);
    if let Some(backbone) = args.backbone {
        let side = set.height.min(set.width);
        if set.channels != 3 || side < backbone.min_input() {
            let (name, min) = (backbone.name(), backbone.min_input());
            bail!(
                "--backbone {name} needs colour images of at least {min}x{min} ({} has {}x{}x{}): \
                 use natural images (--dataset folder or list files) with --image-size {min} or \
                 more, or cifar10",
                set.name,
                set.channels,
                set.height,
                set.width
            );
        }
        // torchvision's dropout in AlexNet's and VGG's 4096-wide layers.
        model = model
            .with_backbone(Some(backbone))
            .with_dropout(BACKBONE_DROPOUT);
    }
    let loss = CsqLossConfig::new()
        .with_lambda(1e-4)
        .with_label_smoothing(DEFAULT_LABEL_SMOOTHING);
    let mut train = TrainConfig::new(model, loss).with_adversarial(adversarial);
    if let Some(g) = geometry {
        // The reference code's training transform: a random C crop of the S-resized image
        // and a flip. Natural sets store the S x S centre square, so moving the window by up
        // to (S - C) / 2 from the centre is that crop, with real image content.
        train.augment = Augment {
            max_shift: ((g.resize - g.crop) / 2) as usize,
            hflip: true,
        };
    }
    train.pretrained = args.pretrained.as_ref().map(|p| p.display().to_string());
    let train = apply_flags(train, args)?;
    let centres = HashCentres::new(set.num_classes(), train.model.bits, train.seed)?;
    // The hash layer starts from the run's seed, the backbone from the imported weights.
    let start = match pretrained {
        Some(backbone) => {
            selected.device.seed(train.seed);
            Some(train.model.init(&selected.device).with_backbone(backbone)?)
        }
        None => None,
    };
    let data = DataSpec {
        kind,
        dataset: set.name.clone(),
        source: source.to_string(),
        split: split_cfg,
        lists: args.lists.as_ref().map(|p| p.display().to_string()),
        geometry,
        skip_bad_images: args.skip_bad_images,
        cache: args.cache.as_ref().map(|p| p.display().to_string()),
    };
    Ok(Fresh {
        data,
        train,
        centres,
        set,
        split: loaded.split,
        skipped: loaded.skipped.len(),
        start,
    })
}

/// ImageNet's per-channel mean, the reference code's normalisation of natural images.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation.
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Says which images and files were left out of a natural-image data set.
pub(super) fn report_left_out(loaded: &LoadedData) {
    for bad in loaded.skipped.iter().take(5) {
        eprintln!("skipped {}: {}", bad.path.display(), bad.reason);
    }
    if !loaded.skipped.is_empty() {
        eprintln!(
            "{} unreadable images left out (--skip-bad-images)",
            loaded.skipped.len()
        );
    }
    if loaded.ignored_files > 0 {
        eprintln!(
            "{} files in the image folder are not images by their extension: left out",
            loaded.ignored_files
        );
    }
}

/// Whether a run made from another takes its trained weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Weights {
    /// Start from them (`--init`: fine-tuning).
    Keep,
    /// Start from a random initialisation (`--split-from`: from scratch).
    Fresh,
}

/// A new run on `init`'s data, split and hash centres, starting from its trained weights
/// (`--init`) or from random ones (`--split-from`).
pub(super) fn from_init(
    args: &TrainArgs,
    init: &Path,
    weights: Weights,
    adversarial: Option<AdvTraining>,
    selected: &Selected,
) -> Result<Fresh> {
    let flag = match weights {
        Weights::Keep => "--init",
        Weights::Fresh => "--split-from",
    };
    let taken = [
        ("--dataset", args.dataset.is_some()),
        ("--bits", args.bits.is_some()),
        ("--backbone", args.backbone.is_some()),
        ("--pretrained", args.pretrained.is_some()),
        ("--train-size", args.train_size.is_some()),
        ("--query-per-class", args.query_per_class.is_some()),
        ("--lists", args.lists.is_some()),
        ("--image-size", args.image_size.is_some()),
        ("--resize", args.resize.is_some()),
        ("--skip-bad-images", args.skip_bad_images),
        ("--cache", args.cache.is_some()),
    ];
    let clashing: Vec<_> = taken.iter().filter(|t| t.1).map(|t| t.0).collect();
    if !clashing.is_empty() {
        bail!(
            "{flag} takes the data set, split and network of {}: drop {}",
            init.display(),
            clashing.join(", ")
        );
    }
    let base_dir = RunDir::open(init)?;
    let base = base_dir.read_config()?;
    let loaded = base_dir.load_data(&base, args.data.as_deref(), &mut Bars::default())?;
    report_left_out(&loaded);
    let start = match weights {
        Weights::Keep => Some(
            base_dir
                .load_model(&base, &selected.device)
                .with_context(|| format!("loading --init {}", init.display()))?,
        ),
        Weights::Fresh => None,
    };
    let mut data = base.data.clone();
    if let Some(dir) = &args.data {
        data.source = base.data.kind.resolve(Some(dir))?.to_string();
    }
    // Same network, loss and augmentation; the method is this run's. Fine-tuning decays the
    // learning rate from its base by cosine without a warm-up (the weights are already
    // trained); from scratch keeps the base run's schedule.
    let train = match weights {
        Weights::Keep => TrainConfig {
            adversarial,
            init: Some(init.display().to_string()),
            split_from: None,
            schedule: LrSchedule::Cosine {
                floor: 0.01,
                warmup_epochs: 0,
            },
            ..base.train.clone()
        },
        Weights::Fresh => TrainConfig {
            adversarial,
            init: None,
            pretrained: None,
            split_from: Some(init.display().to_string()),
            ..base.train.clone()
        },
    };
    let train = apply_flags(train, args)?;
    Ok(Fresh {
        data,
        train,
        centres: base.centres,
        set: loaded.set,
        split: loaded.split,
        skipped: loaded.skipped.len(),
        start,
    })
}
