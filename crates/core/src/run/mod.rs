//! Run directories: `config.json` (everything needed to rebuild the run), `model.bpk` (the
//! latest weights), `checkpoint.bin` (weights, optimiser state and history for `--resume`) and
//! the outputs of later commands. Every file is written to a temporary name, synced, then
//! renamed, so a crash never leaves a half-written file under a real name.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::adv_train::{EpochStats, TrainConfig};
use crate::data::{DatasetKind, ImageGeometry, SplitConfig};
use crate::loss::HashCentres;
use crate::model::HashNet;
use crate::{Error, Result};

mod open;

pub use crate::data::fingerprint;
pub use open::{ENCODE_BATCH, OpenedRun, SavedSplit};

/// Writes `bytes` to `path` atomically (temporary file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Persist the rename itself.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Where the data of a run came from and how it was split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// Data set kind.
    pub kind: DatasetKind,
    /// Data set name (`fashion-mnist`, `fashion-mnist-mosaic`, `cifar-10`, a list preset, or
    /// the image folder's name).
    pub dataset: String,
    /// The directory read (the image root for natural images), or `embedded`.
    pub source: String,
    /// The split protocol (unused by list files, whose roles are their own).
    pub split: SplitConfig,
    /// The list directory of list-file data sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lists: Option<String>,
    /// How natural images are resized and cropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<ImageGeometry>,
    /// Whether unreadable natural images are left out (and counted) instead of failing.
    #[serde(default)]
    pub skip_bad_images: bool,
    /// The image cache directory natural images are decoded into and streamed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
}

/// The contents of `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// Format version of this file.
    pub version: u32,
    /// Data set and split.
    pub data: DataSpec,
    /// Training hyper-parameters and model configuration.
    pub train: TrainConfig,
    /// The hash centres trained towards.
    pub centres: HashCentres,
}

/// `train.json`: what a finished training run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Per-epoch loss, its terms and time.
    pub epochs: Vec<EpochStats>,
    /// Seconds of training over every epoch (across resumes).
    pub train_seconds: f64,
    /// Seconds of the invocation that finished the run.
    pub this_invocation_seconds: f64,
    /// What computed the last invocation.
    pub backend: crate::device::BackendInfo,
    /// Unreadable images left out of the data (`--skip-bad-images`).
    #[serde(default)]
    pub skipped_images: usize,
}

/// The contents of `checkpoint.bin`.
#[derive(Debug)]
pub struct Checkpoint {
    /// Completed epochs' statistics (its length is the number of epochs done).
    pub history: Vec<EpochStats>,
    /// Model record (burnpack bytes).
    pub model: Vec<u8>,
    /// Optimiser record (burnpack bytes).
    pub optim: Vec<u8>,
    /// The loss's own state ([`crate::adv_train::Trainer::loss_state`]: DPSH's bank; empty
    /// for the other losses and in checkpoints written before it existed).
    pub loss_state: Vec<u8>,
}

/// Checkpoints with history, model, optimiser and loss state.
const CHECKPOINT_MAGIC: &[u8; 8] = b"HGCKPT02";
/// Checkpoints written before the loss state: history, model, optimiser.
const CHECKPOINT_MAGIC_V1: &[u8; 8] = b"HGCKPT01";
const RUN_VERSION: u32 = 1;

/// The writer lock of a run directory (see [`RunDir::lock_for_writing`]); released on drop.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// A run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// A handle on `root` (nothing is read or created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A file inside the run directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Opens an existing run, failing with a hint when it is missing or not a run.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let run = Self::new(root);
        if !run.file("config.json").is_file() {
            return Err(Error::DataNotFound(format!(
                "{} is not a hashguard run (no config.json): train one with `hashguard train --out {}`",
                run.root.display(),
                run.root.display()
            )));
        }
        Ok(run)
    }

    /// Creates the directory if needed.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))
    }

    /// Takes the run's writer lock: `.lock` in the directory (which must exist), locked with the
    /// operating system's advisory file lock, which the kernel drops when the process ends —
    /// a killed writer never leaves it stuck. A second writer gets [`Error::Busy`] naming the
    /// holder's process id. Held until the returned guard is dropped.
    pub fn lock_for_writing(&self) -> Result<RunLock> {
        use std::io::{Read, Seek, Write};
        let path = self.file(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Busy(format!(
                    "{} is being written by another hashguard process{}: wait for it to end, or \
                     choose another --out",
                    self.root.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" ({holder})")
                    }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // Who holds it, for the message a second writer sees (informational only: the lock is
        // the kernel's, not this text).
        let noted = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "process {}", std::process::id()));
        noted.map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { _file: file })
    }

    /// Deletes temporary files left by a write that was interrupted (a killed process).
    pub fn remove_stale_temps(&self) -> Result<()> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// Writes `config.json`.
    pub fn write_config(
        &self,
        data: DataSpec,
        train: TrainConfig,
        centres: HashCentres,
    ) -> Result<()> {
        let cfg = RunConfig {
            version: RUN_VERSION,
            data,
            train,
            centres,
        };
        let json = serde_json::to_vec_pretty(&cfg).expect("config serialises");
        write_atomic(&self.file("config.json"), &json)
    }

    /// Reads `config.json`.
    pub fn read_config(&self) -> Result<RunConfig> {
        let path = self.file("config.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        RunConfig::from_json(&bytes, &path)
    }

    /// Writes `model.bpk` from `model`.
    pub fn write_model(&self, model: &HashNet) -> Result<()> {
        let bytes = model
            .valid()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::Numeric(format!("serialising the model: {e}")))?;
        write_atomic(&self.file("model.bpk"), &bytes)
    }

    /// Rebuilds the trained model on `device` from `config.json` and `model.bpk`.
    pub fn load_model(&self, config: &RunConfig, device: &Device) -> Result<HashNet> {
        let path = self.file("model.bpk");
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::record(
                &path,
                "no trained model yet: run `hashguard train` (or `--resume`) first",
            ),
            _ => Error::io(&path, e),
        })?;
        config
            .train
            .model
            .load(bytes, device, &path.display().to_string())
    }

    /// Writes `checkpoint.bin`.
    pub fn write_checkpoint(&self, ckpt: &Checkpoint) -> Result<()> {
        let history = serde_json::to_vec(&ckpt.history).expect("history serialises");
        let parts = [&history, &ckpt.model, &ckpt.optim, &ckpt.loss_state];
        let mut out = Vec::with_capacity(40 + parts.iter().map(|p| p.len()).sum::<usize>());
        out.extend_from_slice(CHECKPOINT_MAGIC);
        for part in parts {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        write_atomic(&self.file("checkpoint.bin"), &out)
    }

    /// Reads `checkpoint.bin`, or `None` when there is none.
    pub fn read_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let path = self.file("checkpoint.bin");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        Checkpoint::from_bytes(&bytes, &path).map(Some)
    }
}

impl RunConfig {
    /// Parses `config.json`'s bytes (read from `path`, which errors name), checking the format
    /// version and every value training checks (model, loss, optimiser, adversarial budget).
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self> {
        let cfg: RunConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::record(path, format!("unreadable run configuration ({e})")))?;
        if cfg.version != RUN_VERSION {
            return Err(Error::record(
                path,
                format!(
                    "run format {} is not supported (expected {RUN_VERSION})",
                    cfg.version
                ),
            ));
        }
        // Every check training applies: a number out of f32's range reads as infinity, which
        // would be written back as `null` and the file would no longer read.
        cfg.train
            .validate()
            .map_err(|e| Error::record(path, e.to_string()))?;
        Ok(cfg)
    }
}

impl Checkpoint {
    /// Parses `checkpoint.bin`'s bytes (read from `path`, which errors name) into its parts;
    /// the model and optimiser records are checked when they are loaded.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupt = || {
            Error::record(
                path,
                "corrupt checkpoint: delete it to restart training from scratch",
            )
        };
        let count = match bytes.get(..8) {
            Some(m) if m == CHECKPOINT_MAGIC => 4,
            Some(m) if m == CHECKPOINT_MAGIC_V1 => 3,
            _ => return Err(corrupt()),
        };
        let mut parts = Vec::new();
        let mut at = 8;
        for _ in 0..count {
            let len_bytes = bytes.get(at..at + 8).ok_or_else(corrupt)?;
            let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
            at += 8;
            let part = bytes
                .get(at..at.checked_add(len).ok_or_else(corrupt)?)
                .ok_or_else(corrupt)?;
            parts.push(part.to_vec());
            at += len;
        }
        if at != bytes.len() {
            return Err(corrupt());
        }
        let loss_state = match count {
            4 => parts.pop().expect("four parts"),
            _ => Vec::new(),
        };
        let optim = parts.pop().expect("three parts");
        let model = parts.pop().expect("three parts");
        let history = serde_json::from_slice(&parts[0]).map_err(|_| corrupt())?;
        Ok(Checkpoint {
            history,
            model,
            optim,
            loss_state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails after its bytes went to the temporary file (here the rename, onto
    /// a directory) reports the path, removes the temporary file and leaves what was there.
    #[test]
    fn a_failed_atomic_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("report.json");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), b"kept").unwrap();
        let err = write_atomic(&blocked, b"new bytes").unwrap_err();
        assert!(err.to_string().contains("report.json"), "{err}");
        assert_eq!(std::fs::read(blocked.join("inside")).unwrap(), b"kept");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.json"], "no temporary file left");
        // And a good write replaces a file whole.
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    /// One writer at a time: a second lock on the same run is refused with the holder's
    /// process id, and the lock is free again once the first is dropped.
    #[test]
    fn a_run_has_one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let first = run.lock_for_writing().unwrap();
        let err = run.lock_for_writing().unwrap_err();
        assert!(matches!(err, Error::Busy(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("process {}", std::process::id()))
                && message.contains("another --out"),
            "{message}"
        );
        drop(first);
        let again = run.lock_for_writing().unwrap();
        drop(again);
        assert!(
            RunDir::new(dir.path().join("missing"))
                .lock_for_writing()
                .is_err()
        );
    }

    #[test]
    fn checkpoint_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert!(run.read_checkpoint().unwrap().is_none());
        let ckpt = Checkpoint {
            history: vec![EpochStats {
                epoch: 0,
                loss: 1.0,
                bce: 0.9,
                quantisation: 0.1,
                seconds: 2.0,
                target_agreement: None,
            }],
            model: vec![1, 2, 3],
            optim: vec![4, 5],
            loss_state: vec![6, 7, 8, 9],
        };
        run.write_checkpoint(&ckpt).unwrap();
        let back = run.read_checkpoint().unwrap().unwrap();
        assert_eq!(
            (&back.history, &back.model, &back.optim, &back.loss_state),
            (&ckpt.history, &ckpt.model, &ckpt.optim, &ckpt.loss_state)
        );
        let path = run.file("checkpoint.bin");
        let bytes = std::fs::read(&path).unwrap();
        // A checkpoint written before the loss state (three parts) still reads, with none.
        let history_len = 8 + u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
        let mut v1 = b"HGCKPT01".to_vec();
        v1.extend_from_slice(&bytes[8..8 + history_len]);
        for part in [&ckpt.model, &ckpt.optim] {
            v1.extend_from_slice(&(part.len() as u64).to_le_bytes());
            v1.extend_from_slice(part);
        }
        std::fs::write(&path, &v1).unwrap();
        let old = run.read_checkpoint().unwrap().unwrap();
        assert_eq!((old.optim, old.loss_state), (ckpt.optim.clone(), vec![]));
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(
            run.read_checkpoint()
                .unwrap_err()
                .to_string()
                .contains("corrupt checkpoint")
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    /// A number beyond f32's range reads as infinity and would be written back as `null`: such
    /// a configuration is refused on reading, with the value named (found by the fuzzer).
    #[test]
    fn a_configuration_with_numbers_out_of_range_is_refused() {
        let seed = include_str!("../../../../fuzz/seeds/run_config/csq.json");
        let good = RunConfig::from_json(seed.as_bytes(), Path::new("config.json")).unwrap();
        let again = serde_json::to_vec(&good).unwrap();
        RunConfig::from_json(&again, Path::new("again")).unwrap();
        let with = |pointer: &str, value: serde_json::Value| {
            let mut json: serde_json::Value = serde_json::from_str(seed).unwrap();
            *json.pointer_mut(pointer).unwrap() = value;
            let bytes = serde_json::to_vec(&json).unwrap();
            RunConfig::from_json(&bytes, Path::new("config.json"))
                .unwrap_err()
                .to_string()
        };
        let huge = serde_json::json!([1e39]);
        let err = with("/train/model/mean", huge.clone());
        assert!(
            err.contains("config.json") && err.contains("means"),
            "{err}"
        );
        let err = with("/train/model/std", huge);
        assert!(err.contains("standard deviations"), "{err}");
        let err = with("/train/lr", serde_json::json!(-1.0));
        assert!(err.contains("--lr"), "{err}");
    }

    #[test]
    fn opening_a_missing_run_says_what_to_do() {
        let err = RunDir::open("/no/such/run").unwrap_err().to_string();
        assert!(err.contains("hashguard train"), "{err}");
    }
}
