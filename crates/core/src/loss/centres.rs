//! Hash centres: rows of `[H_K; -H_K]` for a Hadamard matrix `H_K` (pairwise Hamming distance
//! K/2 or K), random balanced centres when there are more than 2K classes or K is not a power
//! of two, and the centre of a multi-label item (sign of the summed centres).

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::LabelSet;
use crate::{Error, Result};

/// The Sylvester Hadamard matrix of order `k` (a power of two), entries ±1, row-major.
pub fn hadamard(k: usize) -> Option<Vec<Vec<i8>>> {
    if k == 0 || !k.is_power_of_two() {
        return None;
    }
    let mut h = vec![vec![1i8]];
    while h.len() < k {
        let n = h.len();
        let mut next = vec![vec![0i8; 2 * n]; 2 * n];
        for (i, row) in h.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                next[i][j] = v;
                next[i][j + n] = v;
                next[i + n][j] = v;
                next[i + n][j + n] = -v;
            }
        }
        h = next;
    }
    Some(h)
}

/// How many random draws the random-centre fallback tries before keeping its best.
const RANDOM_TRIES: usize = 20;

/// One ±1 centre per class, plus the fixed centre that fills ties of multi-label sums.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HashCentres {
    /// Code length K.
    pub bits: usize,
    /// `num_classes` rows of K entries in {-1, +1}.
    pub centres: Vec<Vec<i8>>,
    /// Fills the bits where a multi-label item's summed centres are 0.
    pub tie_fill: Vec<i8>,
    /// `hadamard` or `random`.
    pub kind: String,
}

fn balanced_random(bits: usize, rng: &mut ChaCha8Rng) -> Vec<i8> {
    let mut c: Vec<i8> = (0..bits)
        .map(|i| if i < bits / 2 { -1 } else { 1 })
        .collect();
    c.shuffle(rng);
    c
}

fn hamming(a: &[i8], b: &[i8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

impl HashCentres {
    /// Centres for `num_classes` classes of `bits`-bit codes, drawn from `seed` when random.
    ///
    /// Uses the rows of `[H; -H]` when K is a power of two and `num_classes <= 2K`; otherwise
    /// balanced random centres (K/2 bits at -1), redrawn up to 20 times until the minimum
    /// pairwise distance exceeds K/4 and the mean reaches K/2, keeping the best draw.
    pub fn new(num_classes: usize, bits: usize, seed: u64) -> Result<Self> {
        if num_classes == 0 || bits < 2 {
            return Err(Error::InvalidArgument(format!(
                "hash centres need at least one class and two bits, got {num_classes} classes and {bits} bits"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (centres, kind) = match hadamard(bits) {
            Some(h) if num_classes <= 2 * bits => {
                let neg: Vec<Vec<i8>> = h.iter().map(|r| r.iter().map(|v| -v).collect()).collect();
                let rows = h.into_iter().chain(neg).take(num_classes).collect();
                (rows, "hadamard")
            }
            _ => {
                let mut best: Option<(usize, Vec<Vec<i8>>)> = None;
                for _ in 0..RANDOM_TRIES {
                    let draw: Vec<Vec<i8>> = (0..num_classes)
                        .map(|_| balanced_random(bits, &mut rng))
                        .collect();
                    let (mut min, mut sum, mut pairs) = (usize::MAX, 0usize, 0usize);
                    for i in 0..num_classes {
                        for j in i + 1..num_classes {
                            let d = hamming(&draw[i], &draw[j]);
                            min = min.min(d);
                            sum += d;
                            pairs += 1;
                        }
                    }
                    let good = pairs == 0
                        || (min > bits / 4 && sum as f64 / pairs as f64 >= bits as f64 / 2.0);
                    if best.as_ref().is_none_or(|(m, _)| min > *m) {
                        best = Some((min, draw));
                    }
                    if good {
                        break;
                    }
                }
                (best.expect("at least one draw").1, "random")
            }
        };
        Ok(Self {
            bits,
            centres,
            tie_fill: balanced_random(bits, &mut rng),
            kind: kind.into(),
        })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.centres.len()
    }

    /// The centre of an item: its class centre, or for several labels the sign of the sum of
    /// their centres with zero bits taken from `tie_fill`.
    pub fn centre_of(&self, labels: LabelSet) -> Vec<i8> {
        let mut sum = vec![0i32; self.bits];
        for c in labels.classes() {
            for (s, &v) in sum.iter_mut().zip(&self.centres[c]) {
                *s += v as i32;
            }
        }
        sum.iter()
            .zip(&self.tie_fill)
            .map(|(&s, &fill)| match s.signum() {
                0 => fill,
                v => v as i8,
            })
            .collect()
    }

    /// Target centres of a batch as a ±1 float tensor.
    ///
    /// # Shapes
    /// - output: `[labels.len(), bits]`
    pub fn targets(&self, labels: &[LabelSet], device: &Device) -> Tensor<2> {
        let flat = self.signs(labels);
        Tensor::from_data(TensorData::new(flat, [labels.len(), self.bits]), device)
    }

    /// The centres of `labels` as ±1 values, `bits` per item, row after row.
    pub fn signs(&self, labels: &[LabelSet]) -> Vec<f32> {
        labels
            .iter()
            .flat_map(|&l| self.centre_of(l))
            .map(f32::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hadamard_centres_are_pairwise_half_or_full_distance() {
        for bits in [16, 32, 64] {
            let c = HashCentres::new(2 * bits, bits, 0).unwrap();
            assert_eq!(c.kind, "hadamard");
            for i in 0..c.num_classes() {
                for j in i + 1..c.num_classes() {
                    let d = hamming(&c.centres[i], &c.centres[j]);
                    let expected = if j == i + bits { bits } else { bits / 2 };
                    assert_eq!(d, expected, "bits {bits}, centres {i} and {j}");
                }
            }
        }
        // The first ten (Fashion-MNIST) are all at exactly K/2.
        let c = HashCentres::new(10, 64, 0).unwrap();
        for i in 0..10 {
            for j in i + 1..10 {
                assert_eq!(hamming(&c.centres[i], &c.centres[j]), 32);
            }
        }
    }

    #[test]
    fn random_fallback_is_balanced_and_separated() {
        let c = HashCentres::new(40, 16, 3).unwrap();
        assert_eq!(c.kind, "random");
        for row in &c.centres {
            assert_eq!(row.iter().filter(|&&v| v == -1).count(), 8);
        }
        let c = HashCentres::new(5, 24, 3).unwrap(); // 24 is not a power of two
        assert_eq!(c.kind, "random");
        for i in 0..5 {
            for j in i + 1..5 {
                assert!(hamming(&c.centres[i], &c.centres[j]) > 6);
            }
        }
    }

    #[test]
    fn multi_label_centre_is_sign_of_sum_with_fill() {
        let c = HashCentres::new(4, 8, 1).unwrap();
        assert_eq!(c.centre_of(LabelSet::single(2)), c.centres[2]);
        let pair = c.centre_of(LabelSet::from_classes([0, 1]));
        for (k, &got) in pair.iter().enumerate() {
            let s = c.centres[0][k] + c.centres[1][k];
            let expect = if s == 0 { c.tie_fill[k] } else { s.signum() };
            assert_eq!(got, expect);
        }
        let triple = c.centre_of(LabelSet::from_classes([0, 1, 2]));
        for (k, &got) in triple.iter().enumerate() {
            let s: i8 = (0..3).map(|l| c.centres[l][k]).sum();
            assert_eq!(got, s.signum());
        }
    }
}
