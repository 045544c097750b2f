//! Target codes of adversarial hashing training: CgAT's centre codes and SAAT's (DMFL) mainstay
//! codes. Both depend on an item only through its label set, so they are computed per distinct
//! label set from per-group bit counts of packed codes: O(groups² · K), never O(N²).

use std::collections::HashMap;

use crate::data::LabelSet;
use crate::retrieval::PackedCodes;
use crate::{Error, Result};

/// One target code per distinct label set.
#[derive(Clone, Debug)]
pub struct LabelCodes {
    sets: HashMap<LabelSet, usize>,
    codes: PackedCodes,
}

impl LabelCodes {
    /// The target code of items labelled `labels`, if that label set was seen.
    pub fn code_for(&self, labels: LabelSet) -> Option<&[u64]> {
        self.sets.get(&labels).map(|&i| self.codes.code(i))
    }

    /// The target codes of `labels` as ±1 values, `bits` per item (for a training batch).
    pub fn signs_for(&self, labels: &[LabelSet]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(labels.len() * self.codes.bits());
        for &l in labels {
            let &i = self.sets.get(&l).ok_or_else(|| {
                Error::InvalidArgument(format!("no target code for label set {l:?}"))
            })?;
            out.extend(self.codes.signs(i));
        }
        Ok(out)
    }

    /// Share of bits, over the items labelled `labels` (one entry per item), where an item's
    /// target code equals `reference` of its label set (a ±1 code, e.g. CSQ's hash centre of
    /// the same labels): 1 when the target codes are those references, about 0.5 when
    /// unrelated to them.
    pub fn agreement(
        &self,
        labels: &[LabelSet],
        reference: impl Fn(LabelSet) -> Vec<i8>,
    ) -> Result<f64> {
        let bits = self.codes.bits();
        let mut per_set: HashMap<LabelSet, usize> = HashMap::new();
        let mut equal = 0usize;
        for &l in labels {
            if let Some(&n) = per_set.get(&l) {
                equal += n;
                continue;
            }
            let own = self.signs_for(&[l])?;
            let want = reference(l);
            if want.len() != bits {
                return Err(Error::InvalidArgument(format!(
                    "a {}-bit reference code for {bits}-bit target codes",
                    want.len()
                )));
            }
            let n = own
                .iter()
                .zip(&want)
                .filter(|&(&a, &b)| (a > 0.0) == (b > 0))
                .count();
            per_set.insert(l, n);
            equal += n;
        }
        Ok(equal as f64 / (labels.len().max(1) * bits) as f64)
    }

    /// Number of distinct label sets.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether no label set was seen.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// Items grouped by label set: the sets, their sizes and per-bit sums of ±1 codes.
struct Groups {
    sets: Vec<LabelSet>,
    sizes: Vec<f64>,
    sums: Vec<Vec<f64>>,
}

fn group(codes: &PackedCodes, labels: &[LabelSet]) -> Result<Groups> {
    if codes.len() != labels.len() || codes.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{} codes for {} labels: need one label set per code, and at least one code",
            codes.len(),
            labels.len()
        )));
    }
    let bits = codes.bits();
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    let mut sets = Vec::new();
    let mut ones: Vec<Vec<u64>> = Vec::new();
    let mut sizes = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        let g = *index.entry(l).or_insert_with(|| {
            sets.push(l);
            ones.push(vec![0; bits]);
            sizes.push(0u64);
            sets.len() - 1
        });
        sizes[g] += 1;
        for (w, &word) in codes.code(i).iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                let b = rest.trailing_zeros() as usize;
                ones[g][w * 64 + b] += 1;
                rest &= rest - 1;
            }
        }
    }
    let sums = ones
        .iter()
        .zip(&sizes)
        .map(|(o, &n)| o.iter().map(|&c| 2.0 * c as f64 - n as f64).collect())
        .collect();
    Ok(Groups {
        sets,
        sizes: sizes.into_iter().map(|n| n as f64).collect(),
        sums,
    })
}

/// Packs, per group, `sign(Σ_M wp(M) S_M / Σ_M wp(M) n_M − Σ_{M neg} S_M / Σ_{M neg} n_M)`
/// (sign(0) = +1; an empty side contributes 0).
/// `wanted` are the label sets to compute codes for (any set, seen or not).
fn weighted_codes(
    g: &Groups,
    bits: usize,
    wanted: &[LabelSet],
    weight: impl Fn(LabelSet, LabelSet) -> f64,
) -> LabelCodes {
    let mut codes = PackedCodes::new(bits);
    let mut sets = HashMap::new();
    for &la in wanted {
        if sets.contains_key(&la) {
            continue;
        }
        let (mut pos, mut neg) = (vec![0.0; bits], vec![0.0; bits]);
        let (mut pos_n, mut neg_n) = (0.0, 0.0);
        for (m, &lm) in g.sets.iter().enumerate() {
            let (acc, n, w) = if la.shares(lm) {
                (&mut pos, &mut pos_n, weight(la, lm))
            } else {
                (&mut neg, &mut neg_n, 1.0)
            };
            for (x, s) in acc.iter_mut().zip(&g.sums[m]) {
                *x += w * s;
            }
            *n += w * g.sizes[m];
        }
        let row: Vec<f32> = (0..bits)
            .map(|j| {
                let p = if pos_n > 0.0 { pos[j] / pos_n } else { 0.0 };
                let q = if neg_n > 0.0 { neg[j] / neg_n } else { 0.0 };
                (p - q) as f32
            })
            .collect();
        sets.insert(la, codes.len());
        codes.push_signs(&row);
    }
    LabelCodes { sets, codes }
}

/// Which seed's target codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelCodeKind {
    /// CgAT's centre codes: every positive weighs the same.
    Centre,
    /// SAAT's (DMFL) mainstay codes: positives weighted by label-vector cosine similarity.
    Mainstay,
}

/// The codes of `kind` for the label sets `wanted` (seen among `labels` or not: a query's set
/// need not occur in the training data), from the items' `codes` and `labels`.
pub fn label_codes_for(
    kind: LabelCodeKind,
    codes: &PackedCodes,
    labels: &[LabelSet],
    wanted: &[LabelSet],
) -> Result<LabelCodes> {
    let g = group(codes, labels)?;
    Ok(match kind {
        LabelCodeKind::Centre => weighted_codes(&g, codes.bits(), wanted, |_, _| 1.0),
        LabelCodeKind::Mainstay => weighted_codes(&g, codes.bits(), wanted, |a, b| {
            let common = LabelSet(a.0 & b.0).count() as f64;
            common / ((a.count() * b.count()) as f64).sqrt()
        }),
    })
}

/// CgAT's centre codes: for an item with labels L, positives are the training items sharing a
/// label with L (itself included), negatives the rest, and `c = sign(mean_pos b − mean_neg b)`.
/// One code per label set among `labels`.
pub fn centre_codes(codes: &PackedCodes, labels: &[LabelSet]) -> Result<LabelCodes> {
    label_codes_for(LabelCodeKind::Centre, codes, labels, labels)
}

/// SAAT's (DMFL) mainstay codes: `m = sign(Σ_j w1_j b_j − Σ_j w2_j b_j)` with positives weighted
/// by the cosine similarity of multi-hot label vectors, `w1_j = cos(y, y_j) / Σ_j cos(y, y_j)`,
/// and negatives (cosine 0) averaged, `w2_j = 1 / N_neg`. On single-label data it equals the
/// centre code. One code per label set among `labels`.
pub fn mainstay_codes(codes: &PackedCodes, labels: &[LabelSet]) -> Result<LabelCodes> {
    label_codes_for(LabelCodeKind::Mainstay, codes, labels, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random ±1 codes, packed and dense.
    fn random_codes(n: usize, bits: usize, seed: u64) -> (PackedCodes, Vec<Vec<f32>>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let dense: Vec<Vec<f32>> = (0..n)
            .map(|_| {
                (0..bits)
                    .map(|_| if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                    .collect()
            })
            .collect();
        (PackedCodes::from_signs(bits, &dense.concat()), dense)
    }

    fn random_labels(n: usize, classes: usize, multi: bool, seed: u64) -> Vec<LabelSet> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let first = rng.random_range(0..classes);
                if multi && rng.random_bool(0.5) {
                    LabelSet::from_classes([first, rng.random_range(0..classes)])
                } else {
                    LabelSet::single(first)
                }
            })
            .collect()
    }

    fn cosine(a: LabelSet, b: LabelSet) -> f64 {
        LabelSet(a.0 & b.0).count() as f64 / ((a.count() * b.count()) as f64).sqrt()
    }

    /// The O(N²) definitions, straight from the papers' formulas.
    fn naive(dense: &[Vec<f32>], labels: &[LabelSet], query: LabelSet, mainstay: bool) -> Vec<f32> {
        let bits = dense[0].len();
        let (mut pos, mut neg) = (vec![0.0f64; bits], vec![0.0f64; bits]);
        let (mut wsum, mut nneg) = (0.0f64, 0.0f64);
        for (j, b) in dense.iter().enumerate() {
            if query.shares(labels[j]) {
                let w = if mainstay {
                    cosine(query, labels[j])
                } else {
                    1.0
                };
                wsum += w;
                for k in 0..bits {
                    pos[k] += w * b[k] as f64;
                }
            } else {
                nneg += 1.0;
                for k in 0..bits {
                    neg[k] += b[k] as f64;
                }
            }
        }
        (0..bits)
            .map(|k| {
                let d = pos[k] / wsum - if nneg > 0.0 { neg[k] / nneg } else { 0.0 };
                if d >= 0.0 { 1.0 } else { -1.0 }
            })
            .collect()
    }

    #[test]
    fn centre_and_mainstay_codes_equal_the_naive_definitions() {
        for (multi, seed) in [(false, 1), (true, 2), (true, 3)] {
            let (packed, dense) = random_codes(300, 70, seed);
            let labels = random_labels(300, 6, multi, seed + 10);
            let centres = centre_codes(&packed, &labels).unwrap();
            let mainstays = mainstay_codes(&packed, &labels).unwrap();
            for i in 0..300 {
                let c = centres.signs_for(&[labels[i]]).unwrap();
                assert_eq!(
                    c,
                    naive(&dense, &labels, labels[i], false),
                    "centre {i} multi {multi}"
                );
                let m = mainstays.signs_for(&[labels[i]]).unwrap();
                assert_eq!(
                    m,
                    naive(&dense, &labels, labels[i], true),
                    "mainstay {i} multi {multi}"
                );
            }
        }
    }

    #[test]
    fn codes_of_label_sets_the_data_lacks_equal_the_naive_definitions() {
        // Single-label items; queries with two labels, or a label no item has.
        let (packed, dense) = random_codes(200, 40, 4);
        let labels = random_labels(200, 5, false, 14);
        let wanted = [
            LabelSet::from_classes([0, 1]),
            LabelSet::from_classes([2, 4]),
            LabelSet::single(3),
        ];
        for (kind, mainstay) in [
            (LabelCodeKind::Centre, false),
            (LabelCodeKind::Mainstay, true),
        ] {
            let codes = label_codes_for(kind, &packed, &labels, &wanted).unwrap();
            assert_eq!(codes.len(), 3);
            for &w in &wanted {
                let got = codes.signs_for(&[w]).unwrap();
                assert_eq!(got, naive(&dense, &labels, w, mainstay), "{kind:?} {w:?}");
            }
            assert!(codes.signs_for(&[LabelSet::single(0)]).is_err());
        }
    }

    #[test]
    fn single_label_mainstay_equals_centre_and_follows_the_class() {
        // Two classes with opposite patterns and a few flipped bits: the centre of each is its
        // pattern (the other class's mean is the negated pattern).
        let bits = 16;
        let pattern = |k: usize| -> Vec<f32> {
            (0..bits)
                .map(|j| {
                    if ((j * 7 + 3) % 5 < 2) == (k == 0) {
                        1.0
                    } else {
                        -1.0
                    }
                })
                .collect()
        };
        let mut dense = Vec::new();
        let mut labels = Vec::new();
        for i in 0..40 {
            let k = i % 2;
            let mut c = pattern(k);
            c[i % bits] = -c[i % bits];
            dense.extend(c);
            labels.push(LabelSet::single(k));
        }
        let packed = PackedCodes::from_signs(bits, &dense);
        let c = centre_codes(&packed, &labels).unwrap();
        let m = mainstay_codes(&packed, &labels).unwrap();
        for k in 0..2 {
            let l = LabelSet::single(k);
            assert_eq!(c.code_for(l), m.code_for(l));
            assert_eq!(c.signs_for(&[l]).unwrap(), pattern(k), "class {k}");
        }
        assert!(c.signs_for(&[LabelSet::single(9)]).is_err());
        assert!(centre_codes(&packed, &labels[..3]).is_err());
    }

    #[test]
    fn agreement_counts_the_bits_each_item_shares_with_its_reference() {
        // Two classes whose codes are exactly ±pattern: the centre codes are the patterns.
        let bits = 16;
        let pattern: Vec<i8> = (0..bits).map(|j| if j % 3 == 0 { 1 } else { -1 }).collect();
        let signs = |k: usize| -> Vec<f32> {
            let s = if k == 0 { 1.0 } else { -1.0 };
            pattern.iter().map(|&v| s * f32::from(v)).collect()
        };
        let labels: Vec<LabelSet> = (0..10).map(|i| LabelSet::single(i % 2)).collect();
        let dense: Vec<f32> = labels
            .iter()
            .flat_map(|l| signs(l.classes().next().unwrap()))
            .collect();
        let codes = centre_codes(&PackedCodes::from_signs(bits, &dense), &labels).unwrap();
        let own = |l: LabelSet| -> Vec<i8> {
            let k = l.classes().next().unwrap();
            signs(k).iter().map(|&v| v as i8).collect()
        };
        assert_eq!(codes.agreement(&labels, own).unwrap(), 1.0);
        let negated = |l: LabelSet| own(l).iter().map(|v| -v).collect();
        assert_eq!(codes.agreement(&labels, negated).unwrap(), 0.0);
        // Class 0's reference off in 4 of 16 bits: items [0, 0, 1] share 12 + 12 + 16 bits.
        let off = |l: LabelSet| -> Vec<i8> {
            let mut r = own(l);
            if l == LabelSet::single(0) {
                r[..4].iter_mut().for_each(|v| *v = -*v);
            }
            r
        };
        let some = [
            LabelSet::single(0),
            LabelSet::single(0),
            LabelSet::single(1),
        ];
        assert_eq!(codes.agreement(&some, off).unwrap(), 40.0 / 48.0);
        assert!(codes.agreement(&[LabelSet::single(5)], own).is_err());
        assert!(codes.agreement(&some, |_| vec![1; 8]).is_err());
    }
}
