//! Which data set a run uses and how to load it: Fashion-MNIST (directory or embedded),
//! 2x2 multi-label mosaics of it, or a CIFAR-10 binary directory.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    DataSource, ImageSet, load_cifar10_dir, load_fashion_mnist, make_mosaics,
    resolve_fashion_source,
};
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
            other => Err(Error::InvalidArgument(format!(
                "unknown data set `{other}`: use fashion-mnist, fashion-mosaic or cifar10"
            ))),
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
        }
    }

    /// Loads the data set from `source`.
    pub fn load(self, source: &DataSource) -> Result<ImageSet> {
        match (self, source) {
            (Self::FashionMnist, _) => load_fashion_mnist(source),
            (Self::FashionMosaic, _) => {
                let base = load_fashion_mnist(source)?;
                make_mosaics(&base, base.len(), MOSAIC_SEED)
            }
            (Self::Cifar10, DataSource::Dir(dir)) => load_cifar10_dir(dir),
            (Self::Cifar10, DataSource::Embedded) => Err(Error::DataNotFound(
                "CIFAR-10 is not bundled: pass --data DIR".into(),
            )),
        }
    }
}
