//! Reading tensors back to the host with one error mapping for the whole crate: the
//! synchronous read native devices allow and the awaited one WebGPU in a browser needs.

use burn::prelude::*;

use crate::{Error, Result};

/// The tensor's values in row-major order; `what` names them in the error.
pub fn read_floats<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| Error::Numeric(format!("reading the {what}: {e:?}")))
}

/// [`read_floats`] for devices that cannot block (WebGPU in a browser): awaits the transfer.
pub async fn read_floats_async<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.into_data_async()
        .await
        .map_err(|e| Error::Numeric(format!("reading the {what}: {e:?}")))?
        .try_to_vec::<f32>()
        .map_err(|e| Error::Numeric(format!("reading the {what}: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_in_row_major_order() {
        let t = Tensor::<2>::from_data([[1.0f32, 2.0], [3.0, 4.0]], &Device::flex());
        assert_eq!(read_floats(t, "codes").unwrap(), [1.0, 2.0, 3.0, 4.0]);
    }
}
