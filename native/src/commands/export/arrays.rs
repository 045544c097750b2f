//! The export's arrays: each written as a NumPy `.npy` file with `ndarray-npy` into the staging
//! directory and listed (file, dtype, shape, what it holds) for the manifest.

use std::path::Path;

use anyhow::{Context, Result};
use hashguard_core::data::LabelSet;
use hashguard_core::retrieval::PackedCodes;
use ndarray::{Array, Array1, Array2};
use ndarray_npy::{WritableElement, write_npy};
use serde::Serialize;

/// One exported array: file name, NumPy dtype and shape.
#[derive(Debug, Serialize)]
pub(super) struct ArrayEntry {
    file: String,
    dtype: &'static str,
    shape: Vec<usize>,
    what: &'static str,
}

/// Arrays written so far into the staging directory.
pub(super) struct Writer<'a> {
    pub(super) dir: &'a Path,
    pub(super) arrays: Vec<ArrayEntry>,
}

impl Writer<'_> {
    pub(super) fn array<A: WritableElement, D: ndarray::Dimension>(
        &mut self,
        file: &str,
        dtype: &'static str,
        what: &'static str,
        array: &Array<A, D>,
    ) -> Result<()> {
        let path = self.dir.join(file);
        write_npy(&path, array).with_context(|| format!("writing {}", path.display()))?;
        self.arrays.push(ArrayEntry {
            file: file.into(),
            dtype,
            shape: array.shape().to_vec(),
            what,
        });
        Ok(())
    }

    pub(super) fn codes(
        &mut self,
        file: &str,
        what: &'static str,
        codes: &PackedCodes,
    ) -> Result<()> {
        let rows = codes.to_byte_rows()?;
        let array = Array2::from_shape_vec((codes.len(), codes.bits() / 8), rows)?;
        self.array(file, "uint8", what, &array)
    }

    pub(super) fn labels(&mut self, file: &str, labels: &[LabelSet], classes: usize) -> Result<()> {
        let array = Array2::from_shape_fn((labels.len(), classes), |(i, c)| {
            u8::from(labels[i].contains(c))
        });
        self.array(
            file,
            "uint8",
            "multi-hot labels, one column per class",
            &array,
        )
    }

    pub(super) fn positions(
        &mut self,
        file: &str,
        what: &'static str,
        indices: &[usize],
    ) -> Result<()> {
        let array = Array1::from_iter(indices.iter().map(|&i| i as i64));
        self.array(file, "int64", what, &array)
    }
}
