//! Detection metrics over scores where higher means "more adversarial": ROC curve, AUC
//! (Mann-Whitney, ties counted half), the threshold that flags a given share of benign samples,
//! and the true-positive rate at a false-positive rate.

use serde::Serialize;

/// One point of a ROC curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RocPoint {
    /// Share of benign samples flagged.
    pub fpr: f64,
    /// Share of adversarial samples flagged.
    pub tpr: f64,
    /// Samples with a score ≥ this are flagged.
    pub threshold: f32,
}

/// ROC curve from (0, 0) to (1, 1), one point per distinct score.
pub fn roc_curve(benign: &[f32], adversarial: &[f32]) -> Vec<RocPoint> {
    let mut all: Vec<(f32, bool)> = benign
        .iter()
        .map(|&s| (s, false))
        .chain(adversarial.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (nb, na) = (benign.len().max(1) as f64, adversarial.len().max(1) as f64);
    let mut out = vec![RocPoint {
        fpr: 0.0,
        tpr: 0.0,
        threshold: f32::INFINITY,
    }];
    let (mut fp, mut tp) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let s = all[i].0;
        while i < all.len() && all[i].0.total_cmp(&s).is_eq() {
            if all[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.push(RocPoint {
            fpr: fp as f64 / nb,
            tpr: tp as f64 / na,
            threshold: s,
        });
    }
    out
}

/// Area under the ROC curve: the chance that a random adversarial sample scores above a random
/// benign one, ties counting one half. `NaN` if either set is empty.
pub fn auc(benign: &[f32], adversarial: &[f32]) -> f64 {
    if benign.is_empty() || adversarial.is_empty() {
        return f64::NAN;
    }
    let mut b = benign.to_vec();
    b.sort_by(f32::total_cmp);
    let mut total = 0.0;
    for &s in adversarial {
        let below = b.partition_point(|&x| x < s);
        let not_above = b.partition_point(|&x| x <= s);
        total += below as f64 + 0.5 * (not_above - below) as f64;
    }
    total / (b.len() as f64 * adversarial.len() as f64)
}

/// The threshold `t` (flag when score ≥ `t`) flagging at most `fpr` of `benign`, as many as
/// possible within that. `+inf` when not even one sample may be flagged.
pub fn threshold_at_fpr(benign: &[f32], fpr: f64) -> f32 {
    let mut b = benign.to_vec();
    b.sort_by(|x, y| y.total_cmp(x));
    let allowed = (fpr * b.len() as f64 + 1e-9).floor() as usize;
    if allowed == 0 || b.is_empty() {
        return f32::INFINITY;
    }
    let allowed = allowed.min(b.len());
    // Flagging ≥ b[allowed-1] must not also flag its ties beyond the allowance.
    let mut j = allowed;
    while j > 0 && j < b.len() && b[j].total_cmp(&b[j - 1]).is_eq() {
        j -= 1;
    }
    if j == 0 {
        // All of the top allowance ties with the next value: flag strictly above it.
        return next_up(b[0]);
    }
    b[j - 1]
}

/// The smallest `f32` above `x`.
fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let bits = x.to_bits();
    f32::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

/// Share of `adversarial` flagged by the threshold calibrated on `benign` at `fpr`.
pub fn tpr_at_fpr(benign: &[f32], adversarial: &[f32], fpr: f64) -> f64 {
    let t = threshold_at_fpr(benign, fpr);
    adversarial.iter().filter(|&&s| s >= t).count() as f64 / adversarial.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_hand_checked_sets() {
        assert_eq!(auc(&[0.0, 1.0], &[2.0, 3.0]), 1.0);
        assert_eq!(auc(&[2.0, 3.0], &[0.0, 1.0]), 0.0);
        // Pairs: (1 vs 0) win, (1 vs 2) loss, (2 vs 0) win, (2 vs 2) tie → 2.5 / 4.
        assert_eq!(auc(&[0.0, 2.0], &[1.0, 2.0]), 0.625);
    }

    #[test]
    fn auc_equals_trapezoid_area_under_roc() {
        let benign = [0.1, 0.4, 0.35, 0.8, 0.4, 0.2];
        let adv = [0.9, 0.4, 0.65, 0.7, 0.3];
        let roc = roc_curve(&benign, &adv);
        let area: f64 = roc
            .windows(2)
            .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0)
            .sum();
        assert!((area - auc(&benign, &adv)).abs() < 1e-12);
        assert_eq!(roc.last().map(|p| (p.fpr, p.tpr)), Some((1.0, 1.0)));
    }

    #[test]
    fn threshold_flags_the_allowed_share() {
        let benign: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let t = threshold_at_fpr(&benign, 0.05);
        assert_eq!(t, 95.0);
        assert_eq!(benign.iter().filter(|&&s| s >= t).count(), 5);
        assert_eq!(threshold_at_fpr(&benign, 0.001), f32::INFINITY);
    }

    #[test]
    fn ties_never_push_the_rate_over() {
        let mut benign = vec![0.0f32; 90];
        benign.extend([5.0; 10]);
        let t = threshold_at_fpr(&benign, 0.05);
        assert_eq!(benign.iter().filter(|&&s| s >= t).count(), 0);
        let t = threshold_at_fpr(&benign, 0.10);
        assert_eq!(benign.iter().filter(|&&s| s >= t).count(), 10);
        assert_eq!(tpr_at_fpr(&benign, &[5.0, 6.0, 0.0, 1.0], 0.10), 0.5);
    }
}
