//! DHTA's target codes: for a target label, the anchor is the component-wise majority vote
//! (`sign` of the sum, ties to +1) of `n_t` database codes carrying that label; the target
//! label of a query is drawn among the labels that share nothing with it; [`dhta_targets`] does
//! both for a batch of queries.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::data::LabelSet;
use crate::retrieval::PackedCodes;
use crate::{Error, Result};

/// The anchor code (±1) of `target` from `n_t` database items whose label set contains it,
/// drawn with `rng` (all of them if fewer exist).
pub fn target_anchor(
    database: &PackedCodes,
    database_labels: &[LabelSet],
    target: usize,
    n_t: usize,
    rng: &mut impl Rng,
) -> Result<Vec<f32>> {
    let candidates: Vec<usize> = (0..database_labels.len())
        .filter(|&i| database_labels[i].contains(target))
        .collect();
    if candidates.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no database item carries target label {target}: choose a label present in the database"
        )));
    }
    let chosen: Vec<usize> = candidates
        .choose_multiple(rng, n_t.max(1))
        .copied()
        .collect();
    let mut sum = vec![0f32; database.bits()];
    for &i in &chosen {
        for (s, v) in sum.iter_mut().zip(database.signs(i)) {
            *s += v;
        }
    }
    Ok(sum
        .into_iter()
        .map(|s| if s >= 0.0 { 1.0 } else { -1.0 })
        .collect())
}

/// For each query, a target class sharing no label with it, among `available` classes
/// (those present in the database), drawn uniformly with `rng`; `fixed` forces one class.
pub fn choose_target_labels(
    queries: &[LabelSet],
    available: LabelSet,
    fixed: Option<usize>,
    rng: &mut impl Rng,
) -> Result<Vec<usize>> {
    if let Some(t) = fixed
        && !available.contains(t)
    {
        return Err(Error::InvalidArgument(format!(
            "target label {t} is absent from the database (present: {available:?})"
        )));
    }
    queries
        .iter()
        .map(|q| {
            if let Some(t) = fixed {
                return Ok(t);
            }
            let options: Vec<usize> = available.classes().filter(|&c| !q.contains(c)).collect();
            options.choose(rng).copied().ok_or_else(|| {
                Error::InvalidArgument(format!("query labels {q:?} leave no other class to target"))
            })
        })
        .collect()
}

/// A targeted attack's goal for one query: the target label and its anchor code (±1).
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The label the query is pulled towards.
    pub label: usize,
    /// The code it is pulled onto, `bits` values of ±1.
    pub anchor: Vec<f32>,
    /// The thumbnails the C4-aware white-box attacker pulls the image towards, each
    /// [`super::thumbnail_tensor`]'s layout ([`super::adaptive_loss`]'s looks; empty for every
    /// other attack).
    pub looks: Vec<Vec<f32>>,
}

/// The one routine choosing targeted attacks' goals: for each query a target label it lacks
/// (or `fixed`) among the labels present in the database, then that label's anchor, the vote of
/// `n_t` of its database codes ([`target_anchor`]). Labels are drawn for every query first, then
/// the anchors, all from `rng`, so a seed fixes both.
pub fn dhta_targets(
    query_labels: &[LabelSet],
    database: &PackedCodes,
    database_labels: &[LabelSet],
    fixed: Option<usize>,
    n_t: usize,
    rng: &mut impl Rng,
) -> Result<Vec<Target>> {
    let present = database_labels
        .iter()
        .fold(LabelSet::default(), |a, &l| a.union(l));
    let labels = choose_target_labels(query_labels, present, fixed, rng)?;
    labels
        .into_iter()
        .map(|label| {
            let anchor = target_anchor(database, database_labels, label, n_t, rng)?;
            Ok(Target {
                label,
                anchor,
                looks: Vec::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn anchor_equals_a_naive_vote() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let bits = 13;
        let n = 40;
        let values: Vec<f32> = (0..n * bits).map(|_| rng.random_range(-1.0..1.0)).collect();
        let db = PackedCodes::from_signs(bits, &values);
        let labels: Vec<LabelSet> = (0..n).map(|i| LabelSet::single(i % 3)).collect();
        // With n_t covering every item of class 1, the vote is deterministic.
        let all_of_1: Vec<usize> = (0..n).filter(|i| i % 3 == 1).collect();
        let anchor = target_anchor(&db, &labels, 1, 100, &mut rng).unwrap();
        for j in 0..bits {
            let votes: f32 = all_of_1
                .iter()
                .map(|&i| {
                    if values[i * bits + j] >= 0.0 {
                        1.0
                    } else {
                        -1.0
                    }
                })
                .sum();
            assert_eq!(anchor[j], if votes >= 0.0 { 1.0 } else { -1.0 }, "bit {j}");
        }
        // With n_t = 9 the anchor is the vote of some 9 items of the class: it is one of the
        // votes over a 9-subset, so every bit agrees with at least 5 of the class's codes.
        let a9 = target_anchor(&db, &labels, 1, 9, &mut rng).unwrap();
        for j in 0..bits {
            let agree = all_of_1
                .iter()
                .filter(|&&i| (values[i * bits + j] >= 0.0) == (a9[j] > 0.0))
                .count();
            assert!(agree >= 5);
        }
        assert!(target_anchor(&db, &labels, 7, 9, &mut rng).is_err());
    }

    #[test]
    fn targets_share_no_label_with_the_query() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let queries: Vec<LabelSet> = (0..50).map(|i| LabelSet::single(i % 4)).collect();
        let available = LabelSet::from_classes(0..4);
        let t = choose_target_labels(&queries, available, None, &mut rng).unwrap();
        assert!(
            queries
                .iter()
                .zip(&t)
                .all(|(q, &t)| !q.contains(t) && t < 4)
        );
        assert!(choose_target_labels(&queries, available, Some(9), &mut rng).is_err());
    }
}
