//! Which data set a run uses and how to load it: Fashion-MNIST (directory or embedded),
//! 2x2 multi-label mosaics of it, a CIFAR-10 binary directory, list files (DeepHash-pytorch
//! format, with the field's presets) or an image folder; and the split each one gets.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::decode::{BadImage, ImageGeometry};
use super::folder::load_folder;
use super::listfile::{ListPreset, load_lists};
use super::{
    DataSource, ImageSet, Split, SplitConfig, load_cifar10_dir, load_fashion_mnist, make_mosaics,
    resolve_fashion_source,
};
use crate::progress::Progress;
use crate::{Error, Result};

/// A data set kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Fashion-MNIST (28x28 grey, 10 classes).
    FashionMnist,
    /// One 2x2 mosaic per Fashion-MNIST image (multi-label: the union of its tiles' classes).
    FashionMosaic,
    /// CIFAR-10 binary batches (32x32 RGB, 10 classes).
    Cifar10,
    /// Natural images named by list files (`train.txt`, `test.txt`, `database.txt`), with a
    /// preset's conventions; the roles come from the files.
    List(ListPreset),
    /// Natural images in class folders (`ROOT/<class>/...`), split per class.
    Folder,
}

/// Seed of the mosaic draw (fixed, so a run's data never depends on its training seed).
const MOSAIC_SEED: u64 = 0x6d6f7361;

impl DatasetKind {
    /// Parses the CLI spelling.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "fashion-mnist" => Ok(Self::FashionMnist),
            "fashion-mosaic" => Ok(Self::FashionMosaic),
            "cifar10" => Ok(Self::Cifar10),
            "folder" => Ok(Self::Folder),
            other => ListPreset::parse(other).map(Self::List).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown data set `{other}`: use fashion-mnist, fashion-mosaic, cifar10, folder or list files ({})",
                    ListPreset::ALL.map(ListPreset::name).join(", ")
                ))
            }),
        }
    }

    /// The CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::FashionMnist => "fashion-mnist",
            Self::FashionMosaic => "fashion-mosaic",
            Self::Cifar10 => "cifar10",
            Self::Folder => "folder",
            Self::List(p) => p.name(),
        }
    }

    /// Whether the kind reads natural images from files (decoded to a chosen geometry).
    pub fn is_natural(self) -> bool {
        matches!(self, Self::List(_) | Self::Folder)
    }

    /// Whether the roles come from the data's own files rather than a seeded draw.
    pub fn has_own_roles(self) -> bool {
        matches!(self, Self::List(_))
    }

    /// The field's mAP cut-off for the data set (`None`: mAP over the whole ranking).
    pub fn map_topk(self) -> Option<usize> {
        match self {
            Self::List(p) => p.map_topk(),
            _ => None,
        }
    }

    /// Resolves where to read from: `explicit` if given, else the kind's default lookup.
    pub fn resolve(self, explicit: Option<&Path>) -> Result<DataSource> {
        match self {
            Self::FashionMnist | Self::FashionMosaic => resolve_fashion_source(explicit),
            Self::Cifar10 => match explicit {
                Some(dir) if dir.is_dir() => Ok(DataSource::Dir(dir.into())),
                Some(dir) => Err(Error::DataNotFound(format!(
                    "CIFAR-10 directory {} does not exist",
                    dir.display()
                ))),
                None => Err(Error::DataNotFound(
                    "CIFAR-10 is not bundled: pass --data DIR with data_batch_1..5.bin and test_batch.bin".into(),
                )),
            },
            Self::List(_) | Self::Folder => match explicit {
                Some(dir) if dir.is_dir() => Ok(DataSource::Dir(dir.into())),
                Some(dir) => Err(Error::DataNotFound(format!(
                    "image root {} does not exist",
                    dir.display()
                ))),
                None => Err(Error::DataNotFound(format!(
                    "--dataset {} reads your own images: pass --data ROOT{}",
                    self.name(),
                    if self.has_own_roles() {
                        " (the image root) and --lists DIR (train.txt, test.txt, database.txt)"
                    } else {
                        " (one folder per class)"
                    }
                ))),
            },
        }
    }
}

/// What to read: a data set kind at a source, and the options natural images need.
#[derive(Clone, Copy, Debug)]
pub struct DataRequest<'a> {
    /// The kind.
    pub kind: DatasetKind,
    /// Where its files are (the image root for natural images).
    pub source: &'a DataSource,
    /// The list directory (list files; default: the image root).
    pub lists: Option<&'a Path>,
    /// How natural images are resized and cropped (default: [`ImageGeometry::IMAGENET`]).
    pub geometry: Option<ImageGeometry>,
    /// Leave unreadable natural images out (and count them) instead of failing.
    pub skip_bad_images: bool,
    /// Decode natural images once into a pixel file in this directory and read them from disk
    /// (bounded memory; later loads skip decoding); `None` keeps them in memory.
    pub cache: Option<&'a Path>,
    /// The split drawn when the data has no roles of its own.
    pub split: &'a SplitConfig,
}

/// A data set (in memory or streamed from an image cache) with its roles.
#[derive(Clone, Debug)]
pub struct LoadedData {
    /// The images.
    pub set: ImageSet,
    /// Query, train and database indices.
    pub split: Split,
    /// Unreadable images left out (`skip_bad_images`).
    pub skipped: Vec<BadImage>,
    /// Files in an image folder that are not images by their extension (left out).
    pub ignored_files: usize,
}

/// Loads the data `req` names, natural images decoded on worker threads (reported to
/// `progress`), and gives it its roles: the list files' own, or the seeded split.
pub fn load_data(req: DataRequest<'_>, progress: &mut dyn Progress) -> Result<LoadedData> {
    let g = req.geometry.unwrap_or(ImageGeometry::IMAGENET);
    let natural_root = || match req.source {
        DataSource::Dir(dir) => Ok(dir.as_path()),
        DataSource::Embedded => Err(Error::DataNotFound(format!(
            "--dataset {} has no embedded copy: pass --data ROOT",
            req.kind.name()
        ))),
    };
    let (set, skipped, ignored_files) = match req.kind {
        DatasetKind::List(preset) => {
            let root = natural_root()?;
            let data = load_lists(
                root,
                req.lists.unwrap_or(root),
                preset,
                g,
                req.skip_bad_images,
                req.cache,
                progress,
            )?;
            return Ok(LoadedData {
                set: data.set,
                split: data.split,
                skipped: data.skipped,
                ignored_files: 0,
            });
        }
        DatasetKind::Folder => {
            load_folder(natural_root()?, g, req.skip_bad_images, req.cache, progress)?
        }
        DatasetKind::FashionMnist => (load_fashion_mnist(req.source)?, Vec::new(), 0),
        DatasetKind::FashionMosaic => {
            let base = load_fashion_mnist(req.source)?;
            (make_mosaics(&base, base.len(), MOSAIC_SEED)?, Vec::new(), 0)
        }
        DatasetKind::Cifar10 => match req.source {
            DataSource::Dir(dir) => (load_cifar10_dir(dir)?, Vec::new(), 0),
            DataSource::Embedded => {
                return Err(Error::DataNotFound(
                    "CIFAR-10 is not bundled: pass --data DIR".into(),
                ));
            }
        },
    };
    let split = req.split.split(&set)?;
    Ok(LoadedData {
        set,
        split,
        skipped,
        ignored_files,
    })
}
