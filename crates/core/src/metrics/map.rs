//! mAP@k and its companions. For one query ranked against the database (ties by index),
//! AP@k = mean over the relevant items in the top k of (relevant seen so far / rank); a query
//! with no relevant item in its top k has AP 0 (never skipped, which would inflate mAP).

use serde::{Deserialize, Serialize};

use crate::data::LabelSet;
use crate::retrieval::{HammingIndex, PackedCodes};
use crate::{Error, Result};

/// AP over the first `k` entries of `relevant` (the ranked relevance of one query).
pub fn average_precision(relevant: &[bool], k: usize) -> f64 {
    let (mut hits, mut sum) = (0usize, 0f64);
    for (rank, &rel) in relevant.iter().take(k).enumerate() {
        if rel {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    if hits == 0 { 0.0 } else { sum / hits as f64 }
}

/// One point of the precision-recall curve: everything within Hamming `radius`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    /// Hamming radius.
    pub radius: u32,
    /// Mean precision over queries that retrieve at least one item at this radius.
    pub precision: f64,
    /// Mean recall over queries with at least one relevant database item.
    pub recall: f64,
}

/// Retrieval metrics of a query set against a database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// Number of queries.
    pub queries: usize,
    /// Number of database items.
    pub database: usize,
    /// mAP over the whole ranking.
    pub map_all: f64,
    /// `(k, mAP@k)` for each requested k.
    pub map_at: Vec<(usize, f64)>,
    /// `(k, mean precision@k)` for each requested k.
    pub precision_at: Vec<(usize, f64)>,
    /// Precision and recall at each Hamming radius 0..=K.
    pub pr_curve: Vec<PrPoint>,
    /// Queries with no relevant item in the whole database (their AP is 0).
    pub queries_without_relevant: usize,
}

impl RetrievalMetrics {
    /// mAP@k for a `k` that was requested.
    pub fn map_at(&self, k: usize) -> Option<f64> {
        self.map_at.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v)
    }
}

/// Ranks the `index` database for every query code and computes the metrics.
///
/// Relevance: a database item is relevant to a query when their label sets share a class.
pub fn evaluate_retrieval(
    queries: &PackedCodes,
    query_labels: &[LabelSet],
    index: &HammingIndex,
    database_labels: &[LabelSet],
    ks: &[usize],
) -> Result<RetrievalMetrics> {
    if queries.len() != query_labels.len() || index.len() != database_labels.len() {
        return Err(Error::InvalidArgument(format!(
            "{} query codes for {} query labels, {} database codes for {} database labels",
            queries.len(),
            query_labels.len(),
            index.len(),
            database_labels.len()
        )));
    }
    if queries.bits() != index.codes().bits() {
        return Err(Error::InvalidArgument(format!(
            "query codes have {} bits but the database has {}",
            queries.bits(),
            index.codes().bits()
        )));
    }
    if queries.is_empty() || index.is_empty() {
        return Err(Error::InvalidArgument(
            "retrieval needs at least one query and one database item".into(),
        ));
    }
    let bits = queries.bits();
    let n = index.len();
    let mut map_all = 0f64;
    let mut map_at = vec![0f64; ks.len()];
    let mut prec_at = vec![0f64; ks.len()];
    let (mut pr_prec, mut pr_prec_n) = (vec![0f64; bits + 1], vec![0usize; bits + 1]);
    let mut pr_recall = vec![0f64; bits + 1];
    let mut without = 0;
    let mut relevant = Vec::with_capacity(n);
    // Rank a group of queries per (multi-threaded, block-scanned) search; a group's rankings
    // take 16 bytes per query and database item.
    let group = ((64usize << 20) / (16 * n)).max(1);
    let rankings = (0..queries.len()).step_by(group).flat_map(|lo| {
        let ids: Vec<usize> = (lo..(lo + group).min(queries.len())).collect();
        index.search(&queries.select(&ids), n)
    });
    for (ranked, &label) in rankings.zip(query_labels) {
        relevant.clear();
        relevant.extend(
            ranked
                .iter()
                .map(|nb| label.shares(database_labels[nb.index])),
        );
        map_all += average_precision(&relevant, n);
        for (i, &k) in ks.iter().enumerate() {
            map_at[i] += average_precision(&relevant, k);
            let kk = k.min(n);
            prec_at[i] += relevant[..kk].iter().filter(|&&r| r).count() as f64 / kk.max(1) as f64;
        }
        // Precision and recall within each radius, from per-distance counts.
        let (mut at_d, mut rel_d) = (vec![0usize; bits + 1], vec![0usize; bits + 1]);
        for (nb, &rel) in ranked.iter().zip(&relevant) {
            at_d[nb.distance as usize] += 1;
            rel_d[nb.distance as usize] += rel as usize;
        }
        let total_rel: usize = rel_d.iter().sum();
        if total_rel == 0 {
            without += 1;
        }
        let (mut seen, mut hits) = (0usize, 0usize);
        for r in 0..=bits {
            seen += at_d[r];
            hits += rel_d[r];
            if seen > 0 {
                pr_prec[r] += hits as f64 / seen as f64;
                pr_prec_n[r] += 1;
            }
            if total_rel > 0 {
                pr_recall[r] += hits as f64 / total_rel as f64;
            }
        }
    }
    let nq = queries.len() as f64;
    let with_rel = (queries.len() - without).max(1) as f64;
    Ok(RetrievalMetrics {
        queries: queries.len(),
        database: n,
        map_all: map_all / nq,
        map_at: ks.iter().zip(&map_at).map(|(&k, &v)| (k, v / nq)).collect(),
        precision_at: ks
            .iter()
            .zip(&prec_at)
            .map(|(&k, &v)| (k, v / nq))
            .collect(),
        pr_curve: (0..=bits)
            .map(|r| PrPoint {
                radius: r as u32,
                precision: if pr_prec_n[r] > 0 {
                    pr_prec[r] / pr_prec_n[r] as f64
                } else {
                    0.0
                },
                recall: pr_recall[r] / with_rel,
            })
            .collect(),
        queries_without_relevant: without,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ap_on_a_hand_checked_ranking() {
        // Relevant at ranks 1, 3 and 6: AP = (1/1 + 2/3 + 3/6) / 3 = 0.7222…
        let ranking = [true, false, true, false, false, true, false];
        assert!((average_precision(&ranking, 7) - (1.0 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
        // Top 3 only: (1 + 2/3) / 2.
        assert!((average_precision(&ranking, 3) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // Nothing relevant in the top 2 except rank 1.
        assert_eq!(average_precision(&ranking, 1), 1.0);
        assert_eq!(average_precision(&[false, false], 2), 0.0);
    }

    #[test]
    fn map_counts_queries_without_relevant_items_as_zero() {
        // Database: two items of class 0 at codes 0000 / 0011, one of class 1 at 1111.
        let db = PackedCodes::from_signs(
            4,
            &[
                -1., -1., -1., -1., //
                1., 1., -1., -1., //
                1., 1., 1., 1.,
            ],
        );
        let db_labels = [
            LabelSet::single(0),
            LabelSet::single(0),
            LabelSet::single(1),
        ];
        // Query A (class 0) at 0000 ranks: item0 (d0, rel), item1 (d2, rel), item2 (d4) → AP 1.
        // Query B (class 1) at 0000 ranks the class-1 item last → AP 1/3.
        // Query C (class 2) has no relevant item → AP 0.
        let q = PackedCodes::from_signs(4, &[-1.; 12]);
        let q_labels = [
            LabelSet::single(0),
            LabelSet::single(1),
            LabelSet::single(2),
        ];
        let m =
            evaluate_retrieval(&q, &q_labels, &HammingIndex::new(db), &db_labels, &[1, 2]).unwrap();
        assert!((m.map_all - (1.0 + 1.0 / 3.0 + 0.0) / 3.0).abs() < 1e-12);
        assert_eq!(m.queries_without_relevant, 1);
        assert!((m.map_at(1).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // precision@2: A 2/2, B 0/2, C 0/2.
        assert!((m.precision_at[1].1 - 1.0 / 3.0).abs() < 1e-12);
        // Radius 4 retrieves everything: recall 1 for the two queries with relevant items.
        assert!((m.pr_curve[4].recall - 1.0).abs() < 1e-12);
        assert!((m.pr_curve[0].precision - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let db = HammingIndex::new(PackedCodes::from_signs(4, &[1.; 4]));
        let q = PackedCodes::from_signs(8, &[1.; 8]);
        assert!(
            evaluate_retrieval(
                &q,
                &[LabelSet::single(0)],
                &db,
                &[LabelSet::single(0)],
                &[1]
            )
            .is_err()
        );
    }
}
