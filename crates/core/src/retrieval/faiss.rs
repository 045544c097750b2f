//! Codes in the layouts other retrieval systems read: rows of `K / 8` bytes (bit j of a code is
//! bit `j % 8` of byte `j / 8`, as FAISS's `fvecs2bitvecs` packs them) and FAISS's serialised
//! `IndexBinaryFlat` (what `faiss.write_index_binary` writes and `read_index_binary` loads).

use std::path::Path;

use super::codes::PackedCodes;
use crate::{Error, Result};

/// FAISS's four-character code of a serialised `IndexBinaryFlat`.
const FOURCC: &[u8; 4] = b"IBxF";
/// Bytes before the codes: fourcc, d (i32), code_size (i32), ntotal (i64), is_trained (u8),
/// metric_type (i32), then the code vector's length (u64).
const HEADER: usize = 4 + 4 + 4 + 8 + 1 + 4 + 8;
/// The metric FAISS's binary indexes record (`METRIC_L2`, the value `IndexBinaryFlat` keeps; the
/// search is Hamming whatever it says).
const METRIC: i32 = 1;

impl PackedCodes {
    /// Bytes per code in the byte-row layout: `K / 8`.
    ///
    /// # Errors
    /// If K is not a multiple of 8 (FAISS's binary indexes need whole bytes).
    pub fn row_bytes(&self) -> Result<usize> {
        if !self.bits().is_multiple_of(8) {
            return Err(Error::InvalidArgument(format!(
                "{}-bit codes do not fill whole bytes: FAISS and the byte-row export need a code \
                 length that is a multiple of 8",
                self.bits()
            )));
        }
        Ok(self.bits() / 8)
    }

    /// The codes as `len() × K / 8` bytes, row-major: byte b of a row holds bits 8b..8b + 7 of
    /// its code, lowest bit first (NumPy's `packbits(..., bitorder="little")`, FAISS's layout).
    ///
    /// # Errors
    /// If K is not a multiple of 8.
    pub fn to_byte_rows(&self) -> Result<Vec<u8>> {
        let per = self.row_bytes()?;
        let mut out = Vec::with_capacity(self.len() * per);
        for i in 0..self.len() {
            out.extend(self.code(i).iter().flat_map(|w| w.to_le_bytes()).take(per));
        }
        Ok(out)
    }

    /// Codes of `bits` bits from rows of `bits / 8` bytes ([`PackedCodes::to_byte_rows`]).
    ///
    /// # Errors
    /// If `bits` is 0 or not a multiple of 8, or `rows` is not whole rows.
    pub fn from_byte_rows(bits: usize, rows: &[u8]) -> Result<Self> {
        let per = bits / 8;
        if bits == 0 || !bits.is_multiple_of(8) || !rows.len().is_multiple_of(per) {
            return Err(Error::InvalidArgument(format!(
                "{} bytes are not whole rows of {bits}-bit codes",
                rows.len()
            )));
        }
        let words = bits.div_ceil(64);
        let mut data = Vec::with_capacity(rows.len() / per * words);
        for row in rows.chunks_exact(per) {
            for w in 0..words {
                let mut bytes = [0u8; 8];
                let part = &row[w * 8..row.len().min(w * 8 + 8)];
                bytes[..part.len()].copy_from_slice(part);
                data.push(u64::from_le_bytes(bytes));
            }
        }
        Ok(Self::from_words(bits, data))
    }

    /// The codes as a serialised FAISS `IndexBinaryFlat` of dimension K, ready for
    /// `faiss.read_index_binary` (exact Hamming search, same distances as [`super::HammingIndex`]).
    ///
    /// # Errors
    /// If K is not a multiple of 8.
    pub fn to_faiss_binary_flat(&self) -> Result<Vec<u8>> {
        let rows = self.to_byte_rows()?;
        let dimension = i32::try_from(self.bits())
            .map_err(|_| Error::InvalidArgument("code length beyond FAISS's i32".into()))?;
        let mut out = Vec::with_capacity(HEADER + rows.len());
        out.extend_from_slice(FOURCC);
        out.extend_from_slice(&dimension.to_le_bytes());
        out.extend_from_slice(&(dimension / 8).to_le_bytes());
        out.extend_from_slice(&(self.len() as i64).to_le_bytes());
        out.push(1); // is_trained: a flat index needs no training
        out.extend_from_slice(&METRIC.to_le_bytes());
        out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
        out.extend_from_slice(&rows);
        Ok(out)
    }

    /// Reads a serialised FAISS `IndexBinaryFlat` (as `faiss.write_index_binary` writes one);
    /// `origin` names the source in errors.
    ///
    /// # Errors
    /// If the bytes are not a whole `IndexBinaryFlat` (another index type, a truncated file, or
    /// sizes that disagree with each other).
    pub fn from_faiss_binary_flat(bytes: &[u8], origin: &Path) -> Result<Self> {
        let bad = |m: String| Error::format(origin, format!("{m}: not a FAISS IndexBinaryFlat"));
        if bytes.len() < HEADER {
            return Err(bad(format!(
                "{} bytes, shorter than the header",
                bytes.len()
            )));
        }
        if &bytes[..4] != FOURCC {
            return Err(bad(format!(
                "index type {:?}",
                String::from_utf8_lossy(&bytes[..4])
            )));
        }
        let i32_at = |i: usize| i32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let (d, code_size, ntotal) = (i32_at(4), i32_at(8), u64_at(12));
        let stored = u64_at(25);
        if d <= 0 || d % 8 != 0 || code_size != d / 8 {
            return Err(bad(format!("dimension {d} with {code_size}-byte codes")));
        }
        let expected = ntotal.checked_mul(code_size as u64);
        if expected != Some(stored) || stored != (bytes.len() - HEADER) as u64 {
            return Err(bad(format!(
                "{ntotal} codes of {code_size} bytes in a vector of {stored} bytes, {} present",
                bytes.len() - HEADER
            )));
        }
        Self::from_byte_rows(d as usize, &bytes[HEADER..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn byte_rows_and_faiss_files_round_trip() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for bits in [8usize, 16, 48, 64, 72, 128] {
            let words = bits.div_ceil(64);
            let codes =
                PackedCodes::from_words(bits, (0..37 * words).map(|_| rng.random()).collect());
            let rows = codes.to_byte_rows().unwrap();
            assert_eq!(rows.len(), 37 * bits / 8);
            // Bit j of code i is bit j % 8 of byte j / 8 of row i.
            for i in [0usize, 5, 36] {
                for j in 0..bits {
                    let set = codes.code(i)[j / 64] >> (j % 64) & 1 == 1;
                    assert_eq!(rows[i * bits / 8 + j / 8] >> (j % 8) & 1 == 1, set);
                }
            }
            assert_eq!(PackedCodes::from_byte_rows(bits, &rows).unwrap(), codes);
            let file = codes.to_faiss_binary_flat().unwrap();
            assert_eq!(
                PackedCodes::from_faiss_binary_flat(&file, Path::new("f")).unwrap(),
                codes
            );
        }
    }

    #[test]
    fn the_faiss_header_is_the_one_faiss_writes() {
        // `faiss.write_index_binary` of an IndexBinaryFlat(16) holding [1, 2] and [255, 0].
        let faiss: &[u8] = &[
            0x49, 0x42, 0x78, 0x46, 0x10, 0, 0, 0, 0x02, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0x01,
            0x01, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0xff, 0x00,
        ];
        let codes = PackedCodes::from_faiss_binary_flat(faiss, Path::new("f")).unwrap();
        assert_eq!(codes.bits(), 16);
        assert_eq!(codes.as_words(), &[0x0201, 0x00ff]);
        assert_eq!(codes.to_faiss_binary_flat().unwrap(), faiss);
    }

    #[test]
    fn bad_lengths_and_files_are_refused() {
        let codes = PackedCodes::from_words(12, vec![0xabc, 0x123]);
        assert!(codes.to_byte_rows().is_err());
        assert!(codes.to_faiss_binary_flat().is_err());
        assert!(PackedCodes::from_byte_rows(16, &[1, 2, 3]).is_err());
        assert!(PackedCodes::from_byte_rows(0, &[]).is_err());
        let good = PackedCodes::from_words(16, vec![1, 2])
            .to_faiss_binary_flat()
            .unwrap();
        let origin = Path::new("f");
        assert!(PackedCodes::from_faiss_binary_flat(&good[..good.len() - 1], origin).is_err());
        assert!(PackedCodes::from_faiss_binary_flat(&good[..10], origin).is_err());
        let mut other = good.clone();
        other[..4].copy_from_slice(b"IBxH");
        assert!(PackedCodes::from_faiss_binary_flat(&other, origin).is_err());
        let mut huge = good.clone();
        huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(PackedCodes::from_faiss_binary_flat(&huge, origin).is_err());
    }
}
