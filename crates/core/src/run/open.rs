//! The one way to open a trained run: its configuration, model (inference copy), data and split,
//! and on demand its database codes (the cached `database.codes` while current, else encoded),
//! every failure a one-line error saying what to do.

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;

use super::{RunConfig, RunDir};
use crate::data::{DataRequest, DataSource, ImageSet, LabelSet, LoadedData, Split, load_data};
use crate::model::{HashNet, encode_images};
use crate::progress::{Progress, Silent};
use crate::retrieval::PackedCodes;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

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
        let LoadedData { set, split, .. } = dir.load_data(&config, data, &mut Silent)?;
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

    /// A fingerprint of the weights ([`RunDir::model_fingerprint`]), keying caches of derived
    /// results.
    pub fn model_fingerprint(&self) -> Result<String> {
        self.dir.model_fingerprint()
    }
}

/// `split.json`: the roles a run's images played, with a fingerprint of the images they index,
/// so a run is never evaluated on a data set that changed under it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedSplit {
    /// Images in the data set.
    pub images: usize,
    /// [`ImageSet::fingerprint`] of the data set.
    pub data_fingerprint: String,
    /// The roles.
    pub split: Split,
}

impl RunDir {
    /// A fingerprint of the run's weights (FNV-1a of `model.bpk`'s tensor data, so the same
    /// weights saved twice match), keying caches of derived results; fails when the run has no
    /// weights yet or they are not a model record.
    pub fn model_fingerprint(&self) -> Result<String> {
        let path = self.file("model.bpk");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        crate::model::weights_fingerprint(&bytes, &path.display().to_string())
    }

    /// Writes `split.json` for `set` and `split`.
    pub fn write_split(&self, set: &ImageSet, split: &Split) -> Result<()> {
        let saved = SavedSplit {
            images: set.len(),
            data_fingerprint: set.fingerprint(),
            split: split.clone(),
        };
        let json = serde_json::to_vec_pretty(&saved).expect("split serialises");
        super::write_atomic(&self.file("split.json"), &json)
    }

    /// Loads the data the run was trained on (or `data` instead), decoding natural images with
    /// progress, and its roles: `split.json` when the run has one (and the images are the same
    /// as when it was written), else the split redrawn from the recorded protocol.
    pub fn load_data(
        &self,
        config: &RunConfig,
        data: Option<&Path>,
        progress: &mut dyn Progress,
    ) -> Result<LoadedData> {
        let mut loaded = load_recorded(config, data, progress)?;
        let path = self.file("split.json");
        if data.is_some() || !path.is_file() {
            return Ok(loaded);
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let saved: SavedSplit = serde_json::from_slice(&bytes)
            .map_err(|e| Error::record(&path, format!("unreadable split ({e})")))?;
        let n = loaded.set.len();
        if saved.images != n || saved.data_fingerprint != loaded.set.fingerprint() {
            return Err(Error::InvalidArgument(format!(
                "the images under {} changed since the run was trained ({} images then, {n} now): \
                 restore them, or pass --data DIR to evaluate on other images deliberately",
                config.data.source, saved.images
            )));
        }
        let roles = [
            &saved.split.query,
            &saved.split.train,
            &saved.split.database,
        ];
        if roles.iter().any(|r| r.iter().any(|&i| i >= n)) {
            return Err(Error::record(&path, "split indices beyond the data set"));
        }
        loaded.split = saved.split;
        Ok(loaded)
    }
}

/// Loads the data `config` records (or `data` instead) and draws its split.
fn load_recorded(
    config: &RunConfig,
    data: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<LoadedData> {
    let spec = &config.data;
    let source = match data {
        Some(dir) => spec.kind.resolve(Some(dir))?,
        None if spec.source == "embedded" => DataSource::Embedded,
        None => {
            let dir = Path::new(&spec.source);
            if !dir.is_dir() {
                return Err(Error::DataNotFound(format!(
                    "the run was trained on {}, which no longer exists: pass --data DIR",
                    dir.display()
                )));
            }
            DataSource::Dir(dir.into())
        }
    };
    let lists = spec.lists.as_deref().map(Path::new);
    if let Some(dir) = lists.filter(|d| !d.is_dir()) {
        return Err(Error::DataNotFound(format!(
            "the run's list directory {} no longer exists",
            dir.display()
        )));
    }
    let request = DataRequest {
        kind: spec.kind,
        source: &source,
        lists,
        geometry: spec.geometry,
        skip_bad_images: spec.skip_bad_images,
        cache: spec.cache.as_deref().map(Path::new),
        split: &spec.split,
    };
    load_data(request, progress).map_err(|e| match e {
        Error::InvalidArgument(m) => {
            Error::InvalidArgument(format!("reloading the run's data: {m}"))
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::fingerprint;

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
