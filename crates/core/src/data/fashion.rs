//! Fashion-MNIST: where to find it (flag, `$HASHGUARD_DATA`, Debian's `dataset-fashion-mnist`,
//! then the embedded test set) and how to read its IDX file pairs into an [`ImageSet`].

use std::path::{Path, PathBuf};

#[cfg(feature = "embedded-data")]
use super::idx::parse_idx;
use super::idx::{IdxArray, read_idx};
use super::{ImageSet, LabelSet};
use crate::{Error, Result};

/// The ten Fashion-MNIST class names.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Directory where Debian's `dataset-fashion-mnist` package installs the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable naming a data directory.
pub const DATA_ENV: &str = "HASHGUARD_DATA";

#[cfg(feature = "embedded-data")]
const EMBEDDED_IMAGES: &[u8] =
    include_bytes!("../../assets/fashion-mnist/t10k-images-idx3-ubyte.gz");
#[cfg(feature = "embedded-data")]
const EMBEDDED_LABELS: &[u8] =
    include_bytes!("../../assets/fashion-mnist/t10k-labels-idx1-ubyte.gz");

/// Where a data set is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// A directory of data files.
    Dir(PathBuf),
    /// The Fashion-MNIST test set compiled into the binary.
    Embedded,
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => write!(f, "{}", p.display()),
            Self::Embedded => write!(f, "embedded"),
        }
    }
}

/// Picks the Fashion-MNIST source: `explicit` (a `--data` flag), else `$HASHGUARD_DATA`, else
/// Debian's package directory if it exists, else the embedded test set.
///
/// A directory named explicitly or through the environment must exist: a typo never falls
/// back silently to other data.
pub fn resolve_fashion_source(explicit: Option<&Path>) -> Result<DataSource> {
    let named = explicit
        .map(|p| (p.to_path_buf(), "--data"))
        .or_else(|| std::env::var_os(DATA_ENV).map(|v| (PathBuf::from(v), DATA_ENV)));
    if let Some((dir, via)) = named {
        if !dir.is_dir() {
            return Err(Error::DataNotFound(format!(
                "data directory {} (from {via}) does not exist: point it at a folder holding the Fashion-MNIST IDX files, or omit it to use the default data",
                dir.display()
            )));
        }
        return Ok(DataSource::Dir(dir));
    }
    if Path::new(DEBIAN_DIR).is_dir() {
        return Ok(DataSource::Dir(PathBuf::from(DEBIAN_DIR)));
    }
    if cfg!(feature = "embedded-data") {
        Ok(DataSource::Embedded)
    } else {
        Err(Error::DataNotFound(format!(
            "no Fashion-MNIST found: pass --data DIR, set {DATA_ENV}, or install the dataset-fashion-mnist package"
        )))
    }
}

/// Loads Fashion-MNIST from `source`.
///
/// A directory may hold the training pair (`train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`), the test pair (`t10k-…`) or both; the images are
/// returned training set first. Half a pair, or neither pair, is an error.
pub fn load_fashion_mnist(source: &DataSource) -> Result<ImageSet> {
    match source {
        DataSource::Embedded => embedded(),
        DataSource::Dir(dir) => {
            let mut set: Option<ImageSet> = None;
            for prefix in ["train", "t10k"] {
                let images = find(dir, &format!("{prefix}-images-idx3-ubyte"));
                let labels = find(dir, &format!("{prefix}-labels-idx1-ubyte"));
                let part = match (images, labels) {
                    (None, None) => continue,
                    (Some(i), Some(l)) => pair(
                        read_idx(&i)?,
                        &i,
                        read_idx(&l)?,
                        &l,
                        &dir.display().to_string(),
                    )?,
                    (Some(p), None) | (None, Some(p)) => {
                        return Err(Error::DataNotFound(format!(
                            "{} has no matching {} file beside it",
                            p.display(),
                            if p.to_string_lossy().contains("images") {
                                "labels"
                            } else {
                                "images"
                            }
                        )));
                    }
                };
                set = Some(match set {
                    None => part,
                    Some(s) => s.concat(&part)?,
                });
            }
            set.ok_or_else(|| {
                Error::DataNotFound(format!(
                    "{} holds no Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and their labels)",
                    dir.display()
                ))
            })
        }
    }
}

fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

#[cfg(feature = "embedded-data")]
fn embedded() -> Result<ImageSet> {
    let ip = Path::new("embedded:t10k-images-idx3-ubyte.gz");
    let lp = Path::new("embedded:t10k-labels-idx1-ubyte.gz");
    pair(
        parse_idx(EMBEDDED_IMAGES, ip)?,
        ip,
        parse_idx(EMBEDDED_LABELS, lp)?,
        lp,
        "embedded",
    )
}

#[cfg(not(feature = "embedded-data"))]
fn embedded() -> Result<ImageSet> {
    Err(Error::DataNotFound(
        "this build has no embedded data (feature `embedded-data` is off)".into(),
    ))
}

/// Joins an image array and a label array into a set, checking shapes and class range.
fn pair(
    images: IdxArray,
    image_path: &Path,
    labels: IdxArray,
    label_path: &Path,
    origin: &str,
) -> Result<ImageSet> {
    let [n, h, w] = images.dims[..] else {
        return Err(Error::format(
            image_path,
            format!(
                "expected a rank-3 image array, found dimensions {:?}",
                images.dims
            ),
        ));
    };
    if labels.dims != [n] {
        return Err(Error::format(
            label_path,
            format!(
                "expected {n} labels to match the images, found dimensions {:?}",
                labels.dims
            ),
        ));
    }
    if let Some(bad) = labels
        .data
        .iter()
        .find(|&&l| l as usize >= FASHION_CLASSES.len())
    {
        return Err(Error::format(
            label_path,
            format!("label {bad} is not a Fashion-MNIST class (0-9)"),
        ));
    }
    ImageSet::new(
        "fashion-mnist",
        origin,
        [1, h, w],
        images.data,
        labels
            .data
            .iter()
            .map(|&l| LabelSet::single(l as usize))
            .collect(),
        FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::idx::tests::encode;
    use super::*;

    fn write_pair(dir: &Path, prefix: &str, n: u32, gzip: bool) {
        let ext = if gzip { ".gz" } else { "" };
        let images: Vec<u8> = (0..n * 4).map(|v| (v * 7) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|v| (v % 10) as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte{ext}")),
            encode(&[n, 2, 2], &images, gzip),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")),
            encode(&[n], &labels, gzip),
        )
        .unwrap();
    }

    #[test]
    fn reads_both_pairs_train_first() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "train", 6, true);
        write_pair(dir.path(), "t10k", 3, false);
        let set = load_fashion_mnist(&DataSource::Dir(dir.path().into())).unwrap();
        assert_eq!(set.len(), 9);
        assert_eq!([set.channels, set.height, set.width], [1, 2, 2]);
        assert_eq!(set.labels[6], LabelSet::single(0));
        assert_eq!(&set.image(1)[..], &[28, 35, 42, 49]);
    }

    #[test]
    fn refuses_half_pairs_and_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let src = DataSource::Dir(dir.path().into());
        assert!(
            load_fashion_mnist(&src)
                .unwrap_err()
                .to_string()
                .contains("holds no")
        );
        write_pair(dir.path(), "t10k", 3, false);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
        assert!(
            load_fashion_mnist(&src)
                .unwrap_err()
                .to_string()
                .contains("no matching labels")
        );
    }

    #[test]
    fn refuses_label_image_count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "t10k", 3, false);
        std::fs::write(
            dir.path().join("t10k-labels-idx1-ubyte"),
            encode(&[2], &[0, 1], false),
        )
        .unwrap();
        let err = load_fashion_mnist(&DataSource::Dir(dir.path().into())).unwrap_err();
        assert!(err.to_string().contains("expected 3 labels"), "{err}");
    }

    #[test]
    fn missing_explicit_dir_is_an_error() {
        let err = resolve_fashion_source(Some(Path::new("/no/such/dir"))).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }

    #[cfg(feature = "embedded-data")]
    #[test]
    fn embedded_set_is_the_fashion_test_set() {
        let set = load_fashion_mnist(&DataSource::Embedded).unwrap();
        assert_eq!(set.len(), 10_000);
        assert_eq!([set.channels, set.height, set.width], [1, 28, 28]);
        for c in 0..10 {
            assert_eq!(set.labels.iter().filter(|l| l.contains(c)).count(), 1000);
        }
    }
}
