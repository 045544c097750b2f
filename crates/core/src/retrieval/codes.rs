//! [`PackedCodes`]: n codes of K bits, bit j of a code set when the code's j-th entry is +1,
//! stored in `ceil(K / 64)` little-endian u64 words per code; with a versioned file format.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Hamming distance between two packed codes of equal length.
#[inline]
pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// A matrix of binary codes, one per row, packed into u64 words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedCodes {
    bits: usize,
    words: usize,
    data: Vec<u64>,
}

const MAGIC: &[u8; 8] = b"HGCODES1";

impl PackedCodes {
    /// An empty set of `bits`-bit codes.
    pub fn new(bits: usize) -> Self {
        Self {
            bits,
            words: bits.div_ceil(64),
            data: Vec::new(),
        }
    }

    /// Packs `values` (row-major, `bits` per code): a value `>= 0` is bit 1, `< 0` bit 0.
    ///
    /// # Panics
    /// If `values.len()` is not a multiple of `bits`.
    pub fn from_signs(bits: usize, values: &[f32]) -> Self {
        assert!(
            bits > 0 && values.len().is_multiple_of(bits),
            "{} values are not whole {bits}-bit codes",
            values.len()
        );
        let mut codes = Self::new(bits);
        for row in values.chunks_exact(bits) {
            codes.push_signs(row);
        }
        codes
    }

    /// Appends one code given as signs (`>= 0` is bit 1).
    pub fn push_signs(&mut self, row: &[f32]) {
        assert_eq!(row.len(), self.bits, "code length mismatch");
        let start = self.data.len();
        self.data.resize(start + self.words, 0);
        for (j, &v) in row.iter().enumerate() {
            if v >= 0.0 {
                self.data[start + j / 64] |= 1 << (j % 64);
            }
        }
    }

    /// Replaces code `i` by the signs of `row` (`>= 0` is bit 1).
    pub fn set_signs(&mut self, i: usize, row: &[f32]) {
        assert_eq!(row.len(), self.bits, "code length mismatch");
        assert!(i < self.len(), "code {i} of {}", self.len());
        let start = i * self.words;
        self.data[start..start + self.words].fill(0);
        for (j, &v) in row.iter().enumerate() {
            if v >= 0.0 {
                self.data[start + j / 64] |= 1 << (j % 64);
            }
        }
    }

    /// Appends every code of `other` (which must have the same length).
    pub fn extend(&mut self, other: &PackedCodes) {
        assert_eq!(self.bits, other.bits, "code length mismatch");
        self.data.extend_from_slice(&other.data);
    }

    /// Code length K.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Words per code.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.data.len() / self.words.max(1)
    }

    /// Whether there are no codes.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Every code's words back to back (`words()` per code), for bulk scans.
    pub fn as_words(&self) -> &[u64] {
        &self.data
    }

    /// Builds codes from raw words (`bits.div_ceil(64)` per code); bits past K in a code's
    /// last word are cleared.
    ///
    /// # Panics
    /// If `bits` is 0 or `data` is not whole codes.
    pub fn from_words(bits: usize, mut data: Vec<u64>) -> Self {
        let words = bits.div_ceil(64);
        assert!(
            bits > 0 && data.len().is_multiple_of(words),
            "{} words are not whole {bits}-bit codes",
            data.len()
        );
        if !bits.is_multiple_of(64) {
            let mask = (1u64 << (bits % 64)) - 1;
            for code in data.chunks_exact_mut(words) {
                code[words - 1] &= mask;
            }
        }
        Self { bits, words, data }
    }

    /// The packed words of code `i`.
    pub fn code(&self, i: usize) -> &[u64] {
        &self.data[i * self.words..(i + 1) * self.words]
    }

    /// Bit `j` of code `i` as ±1.
    pub fn sign(&self, i: usize, j: usize) -> f32 {
        if self.code(i)[j / 64] >> (j % 64) & 1 == 1 {
            1.0
        } else {
            -1.0
        }
    }

    /// Code `i` as ±1 values.
    pub fn signs(&self, i: usize) -> Vec<f32> {
        (0..self.bits).map(|j| self.sign(i, j)).collect()
    }

    /// The codes at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> PackedCodes {
        let mut out = Self::new(self.bits);
        for &i in indices {
            out.data.extend_from_slice(self.code(i));
        }
        out
    }

    /// Serialises to bytes: magic, bits (u64 LE), count (u64 LE), words (u64 LE each).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.data.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.bits as u64).to_le_bytes());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for w in &self.data {
            out.write_all(&w.to_le_bytes()).expect("writing to a Vec");
        }
        out
    }

    /// Parses [`PackedCodes::to_bytes`] output; `origin` names the source in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        let bad = |m: &str| {
            Error::format(
                origin,
                format!("{m}: not a hashguard codes file, re-run `hashguard encode`"),
            )
        };
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err(bad("bad header"));
        }
        let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let (bits, n) = (word(8) as usize, word(16) as usize);
        let words = bits.div_ceil(64);
        if bits == 0
            || n.checked_mul(words).and_then(|w| w.checked_mul(8)) != Some(bytes.len() - 24)
        {
            return Err(bad("length does not match the header"));
        }
        let data: Vec<u64> = bytes[24..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        // Bits past the code length must be clear: a set one would count in every distance.
        let used = bits % 64;
        if used != 0
            && let Some(i) = data
                .chunks_exact(words)
                .position(|code| code[words - 1] >> used != 0)
        {
            return Err(bad(&format!("code {i} has bits set past its {bits} bits")));
        }
        Ok(Self { bits, words, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(a: &[f32], b: &[f32]) -> u32 {
        a.iter()
            .zip(b)
            .filter(|(x, y)| (**x >= 0.0) != (**y >= 0.0))
            .count() as u32
    }

    proptest! {
        #[test]
        fn packed_hamming_equals_naive_bit_loop(
            bits in 1usize..200,
            seed_a in proptest::collection::vec(-1.0f32..1.0, 200),
            seed_b in proptest::collection::vec(-1.0f32..1.0, 200),
        ) {
            let (a, b) = (&seed_a[..bits], &seed_b[..bits]);
            let codes = PackedCodes::from_signs(bits, &[a, b].concat());
            prop_assert_eq!(hamming(codes.code(0), codes.code(1)), naive(a, b));
            let back = codes.signs(0);
            prop_assert_eq!(naive(&back, a), 0);
        }
    }

    #[test]
    fn bytes_round_trip_and_corruption_is_refused() {
        let codes = PackedCodes::from_signs(
            70,
            &(0..210).map(|i| (i % 3) as f32 - 1.0).collect::<Vec<_>>(),
        );
        let bytes = codes.to_bytes();
        assert_eq!(
            PackedCodes::from_bytes(&bytes, Path::new("c")).unwrap(),
            codes
        );
        assert!(PackedCodes::from_bytes(&bytes[..bytes.len() - 3], Path::new("c")).is_err());
        assert!(PackedCodes::from_bytes(b"garbage garbage garbage!", Path::new("c")).is_err());
    }

    /// Found by the `codes` fuzz target: a 46-bit file whose words had bits set past bit 46
    /// read as codes at Hamming distance 63 from each other (beyond the code length).
    #[test]
    fn bits_past_the_code_length_are_refused() {
        let codes = PackedCodes::from_signs(46, &[1.0; 92]);
        let mut bytes = codes.to_bytes();
        assert!(PackedCodes::from_bytes(&bytes, Path::new("c")).is_ok());
        let last = bytes.len() - 1;
        bytes[last] |= 0x80;
        let e = PackedCodes::from_bytes(&bytes, Path::new("c")).unwrap_err();
        assert!(
            e.to_string()
                .contains("code 1 has bits set past its 46 bits"),
            "{e}"
        );
    }
}
