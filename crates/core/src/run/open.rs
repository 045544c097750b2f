//! The one way to open a trained run: its configuration, model (inference copy), data and split,
//! and on demand its database codes (the cached `database.codes` while current, else encoded),
//! every failure a one-line error saying what to do.

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;

use super::{RunConfig, RunDir};
use crate::data::{DataSource, ImageSet, LabelSet, Split};
use crate::model::{HashNet, encode_images};
use crate::retrieval::PackedCodes;
use crate::{Error, Result};

/// Images per inference batch when encoding.
pub const ENCODE_BATCH: usize = 256;

/// A trained run, loaded.
pub struct OpenedRun {
    /// The run directory.
    pub dir: RunDir,
    /// Its `config.json`.
    pub config: RunConfig,
    /// The trained network, in inference mode.
    pub model: HashNet,
    /// The data set it was trained on (or `--data DIR` instead).
    pub set: ImageSet,
    /// Its split, redrawn from the recorded protocol and seed.
    pub split: Split,
    /// Whether the images were read from another directory than the run's own.
    pub data_override: bool,
}

impl OpenedRun {
    /// Opens the run at `root` on `device`, reading its images from `data` when given.
    pub fn open(root: &Path, data: Option<&Path>, device: &Device) -> Result<Self> {
        let dir = RunDir::open(root)?;
        let config = dir.read_config()?;
        let model = dir.load_model(&config, device)?.valid();
        let (set, split) = load_run_data(&config, data)?;
        Ok(Self {
            dir,
            config,
            model,
            set,
            split,
            data_override: data.is_some(),
        })
    }

    /// Code length K.
    pub fn bits(&self) -> usize {
        self.model.bits()
    }

    /// Labels of the images `indices`.
    pub fn labels(&self, indices: &[usize]) -> Vec<LabelSet> {
        indices.iter().map(|&i| self.set.labels[i]).collect()
    }

    /// Binary codes of the images `indices`; `on_batch(done)` after each batch.
    pub fn encode(
        &self,
        indices: &[usize],
        device: &Device,
        on_batch: impl FnMut(usize),
    ) -> Result<PackedCodes> {
        let relaxed = encode_images(
            &self.model,
            &self.set,
            indices,
            ENCODE_BATCH,
            device,
            on_batch,
        )?;
        Ok(PackedCodes::from_signs(self.bits(), &relaxed))
    }

    /// The run's `database.codes` when present, readable, of the right shape, newer than the
    /// model and made from the run's own data; `None` otherwise.
    pub fn cached_database(&self) -> Option<PackedCodes> {
        if self.data_override {
            return None;
        }
        let path = self.dir.file("database.codes");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&path)? < modified(&self.dir.file("model.bpk"))? {
            return None;
        }
        let codes = PackedCodes::from_bytes(&std::fs::read(&path).ok()?, &path).ok()?;
        (codes.bits() == self.bits() && codes.len() == self.split.database.len()).then_some(codes)
    }

    /// The database codes: [`Self::cached_database`], else freshly encoded.
    pub fn database_codes(
        &self,
        device: &Device,
        on_batch: impl FnMut(usize),
    ) -> Result<PackedCodes> {
        match self.cached_database() {
            Some(codes) => Ok(codes),
            None => self.encode(&self.split.database, device, on_batch),
        }
    }

    /// A fingerprint of the weights (FNV-1a of `model.bpk`), keying caches of derived results.
    pub fn model_fingerprint(&self) -> Result<String> {
        let path = self.dir.file("model.bpk");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        Ok(fingerprint(bytes))
    }
}

/// Loads the data a run was trained on (or `data` instead) and redraws its split.
pub fn load_run_data(config: &RunConfig, data: Option<&Path>) -> Result<(ImageSet, Split)> {
    let source = match data {
        Some(dir) => config.data.kind.resolve(Some(dir))?,
        None if config.data.source == "embedded" => DataSource::Embedded,
        None => {
            let dir = Path::new(&config.data.source);
            if !dir.is_dir() {
                return Err(Error::DataNotFound(format!(
                    "the run was trained on {}, which no longer exists: pass --data DIR",
                    dir.display()
                )));
            }
            DataSource::Dir(dir.into())
        }
    };
    let set = config.data.kind.load(&source)?;
    let split = config.data.split.split(&set).map_err(|e| match e {
        Error::InvalidArgument(m) => {
            Error::InvalidArgument(format!("redrawing the run's split: {m}"))
        }
        other => other,
    })?;
    Ok((set, split))
}

/// FNV-1a, 64 bits, as 16 hex digits: a stable fingerprint of weights, images or settings.
pub fn fingerprint(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_differ() {
        assert_ne!(fingerprint(*b"model a"), fingerprint(*b"model b"));
        assert_eq!(fingerprint(*b""), "cbf29ce484222325");
    }

    #[test]
    fn a_missing_run_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = OpenedRun::open(&dir.path().join("nope"), None, &Device::flex())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("hashguard train"), "{err}");
    }
}
