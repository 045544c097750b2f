//! CIFAR-10's binary batches: each record is one label byte then 3,072 bytes of pixels
//! (1,024 red, 1,024 green, 1,024 blue, row-major 32x32), 10,000 records per standard file.

use std::path::Path;

use super::{ImageSet, LabelSet};
use crate::{Error, Result};

/// The ten CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const PIXELS: usize = 3 * 32 * 32;
const RECORD: usize = 1 + PIXELS;

/// Reads one binary batch file into `(pixels, labels)`.
///
/// The file length must be a non-zero multiple of 3,073 bytes and every label below 10.
pub fn read_cifar10_batch(path: &Path) -> Result<(Vec<u8>, Vec<LabelSet>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_cifar10_batch(&bytes, path)
}

/// Parses the bytes of one binary batch file (read from `path`, which errors name) into
/// `(pixels, labels)`, with the checks of [`read_cifar10_batch`].
pub fn parse_cifar10_batch(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<LabelSet>)> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::format(
            path,
            format!(
                "{} bytes is not a whole number of CIFAR-10 records (3,073 bytes each): truncated or not a CIFAR-10 binary batch",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        let label = record[0] as usize;
        if label >= CIFAR10_CLASSES.len() {
            return Err(Error::format(
                path,
                format!("record {i} has label {label}, CIFAR-10 labels are 0-9"),
            ));
        }
        labels.push(LabelSet::single(label));
        pixels.extend_from_slice(&record[1..]);
    }
    Ok((pixels, labels))
}

/// Loads the standard CIFAR-10 binary directory: `data_batch_1.bin` … `data_batch_5.bin`
/// then `test_batch.bin` (60,000 images in the standard distribution).
pub fn load_cifar10_dir(dir: &Path) -> Result<ImageSet> {
    let names = (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(std::iter::once("test_batch.bin".to_string()));
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if !path.is_file() {
            return Err(Error::DataNotFound(format!(
                "{} is missing: a CIFAR-10 directory needs data_batch_1..5.bin and test_batch.bin",
                path.display()
            )));
        }
        let (p, l) = read_cifar10_batch(&path)?;
        pixels.extend(p);
        labels.extend(l);
    }
    ImageSet::new(
        "cifar-10",
        dir.display().to_string(),
        [3, 32, 32],
        pixels,
        labels,
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `n` records whose label is `i % 10` and whose pixels encode `i` and position.
    fn write_batch(path: &Path, n: usize, offset: usize) {
        let mut out = Vec::with_capacity(n * RECORD);
        for i in 0..n {
            out.push(((i + offset) % 10) as u8);
            out.extend((0..PIXELS).map(|p| ((i + offset) * 31 + p) as u8));
        }
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn reads_a_directory_in_the_exact_binary_format() {
        let dir = tempfile::tempdir().unwrap();
        for b in 1..=5 {
            write_batch(
                &dir.path().join(format!("data_batch_{b}.bin")),
                4,
                (b - 1) * 4,
            );
        }
        write_batch(&dir.path().join("test_batch.bin"), 3, 20);
        let set = load_cifar10_dir(dir.path()).unwrap();
        assert_eq!(set.len(), 23);
        assert_eq!([set.channels, set.height, set.width], [3, 32, 32]);
        assert_eq!(set.labels[21], LabelSet::single(1));
        // Channel-major layout: the first green byte of image 5 sits 1,024 bytes in.
        assert_eq!(set.image(5)[1024], (5 * 31 + 1024) as u8);
    }

    #[test]
    fn refuses_wrong_length_and_bad_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data_batch_1.bin");
        std::fs::write(&p, vec![0u8; RECORD * 2 - 5]).unwrap();
        assert!(
            read_cifar10_batch(&p)
                .unwrap_err()
                .to_string()
                .contains("whole number")
        );
        let mut bad = vec![0u8; RECORD];
        bad[0] = 12;
        std::fs::write(&p, bad).unwrap();
        assert!(
            read_cifar10_batch(&p)
                .unwrap_err()
                .to_string()
                .contains("label 12")
        );
        assert!(load_cifar10_dir(dir.path()).is_err());
    }
}
