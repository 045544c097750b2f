//! Thresholds from benign scores at a target false-positive rate. With several criteria the FPR
//! budget is shared by weights: criterion `i` may flag a share `w_i·γ` of benign samples, and
//! `γ` is the largest value whose union ("reject if any criterion fires", UMCD §3.4) stays
//! within the target on the calibration set.

use serde::Serialize;

use super::{Criterion, Direction, Scores};
use crate::metrics::threshold_at_fpr;
use crate::{Error, Result};

/// A detector's decision rule, fitted on benign scores.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// The criteria, in column order.
    pub criteria: Vec<Criterion>,
    /// FPR budget share of each criterion (sums to 1).
    pub weights: Vec<f64>,
    /// The FPR asked for.
    pub target_fpr: f64,
    /// Per-criterion flagging rate scale: criterion `i` flags `weights[i]·gamma` of benign.
    pub gamma: f64,
    /// Per criterion, in its own units: flag when the value is ≥ (direction high) or ≤
    /// (direction low) this.
    pub thresholds: Vec<f32>,
    /// Share of the calibration samples the rule flags (≤ the target).
    pub calibration_fpr: f64,
    /// Number of benign calibration samples.
    pub samples: usize,
    #[serde(skip)]
    sorted: Vec<Vec<f32>>,
}

/// Outcome for one sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the sample is rejected as adversarial.
    pub adversarial: bool,
    /// Which criteria fired, in column order.
    pub fired: Vec<bool>,
}

/// Fits thresholds on benign `scores` so that at most `target_fpr` of them are flagged.
///
/// `weights` shares the budget between criteria (default: equal shares); they are normalised.
pub fn calibrate(scores: &Scores, target_fpr: f64, weights: Option<&[f64]>) -> Result<Calibration> {
    let m = scores.criteria.len();
    let n = scores.len();
    if m == 0 || n == 0 {
        return Err(Error::InvalidArgument(
            "calibration needs at least one criterion and one benign sample".into(),
        ));
    }
    if !(target_fpr > 0.0 && target_fpr < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "target FPR {target_fpr} must lie in (0, 1)"
        )));
    }
    let weights: Vec<f64> = match weights {
        Some(w) if w.len() != m || w.iter().any(|x| x.is_nan() || *x <= 0.0) => {
            return Err(Error::InvalidArgument(format!(
                "{} FPR weights for {m} criteria: give one positive weight per criterion",
                w.len()
            )));
        }
        Some(w) => w.to_vec(),
        None => vec![1.0; m],
    };
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    if scores.values.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::Numeric(
            "benign calibration scores contain NaN".into(),
        ));
    }
    let sorted: Vec<Vec<f32>> = (0..m)
        .map(|c| {
            let mut v = scores.oriented(c);
            v.sort_by(f32::total_cmp);
            v
        })
        .collect();
    let mut cal = Calibration {
        criteria: scores.criteria.clone(),
        weights,
        target_fpr,
        gamma: 0.0,
        thresholds: Vec::new(),
        calibration_fpr: 0.0,
        samples: n,
        sorted,
    };
    // Each calibration row is flagged exactly when its q = min_i p_i / w_i ≤ γ. γ sits a
    // relative 1e-9 above the last q allowed, so q values within that of it (equal ratios that
    // divide differently in floating point, e.g. (63/n)/0.6 and (21/n)/0.2) are ties too.
    const SLACK: f64 = 1.0 + 1e-9;
    let mut q = cal.q_values(scores);
    q.sort_by(f64::total_cmp);
    let allowed = (target_fpr * n as f64 + 1e-9).floor() as usize;
    let mut j = allowed.min(n);
    while j > 0 && j < n && q[j] <= q[j - 1] * SLACK {
        j -= 1;
    }
    cal.gamma = if j == 0 { 0.0 } else { q[j - 1] * SLACK };
    cal.thresholds = (0..m)
        .map(|c| {
            let t = threshold_at_fpr(&cal.sorted[c], cal.weights[c] * cal.gamma);
            match cal.criteria[c].direction {
                Direction::High => t,
                Direction::Low => -t,
            }
        })
        .collect();
    let flagged = cal.decide(scores).iter().filter(|d| d.adversarial).count();
    cal.calibration_fpr = flagged as f64 / n as f64;
    Ok(cal)
}

impl Calibration {
    /// Empirical benign p-value of each sample on each criterion: the share of calibration
    /// samples at least as extreme.
    fn p_values(&self, scores: &Scores, c: usize) -> Vec<f64> {
        let sorted = &self.sorted[c];
        let n = sorted.len() as f64;
        scores
            .oriented(c)
            .iter()
            .map(|&s| (sorted.len() - sorted.partition_point(|&b| b < s)) as f64 / n)
            .collect()
    }

    fn q_values(&self, scores: &Scores) -> Vec<f64> {
        let mut q = vec![f64::INFINITY; scores.len()];
        for c in 0..self.criteria.len() {
            for (qi, p) in q.iter_mut().zip(self.p_values(scores, c)) {
                *qi = qi.min(p / self.weights[c]);
            }
        }
        q
    }

    fn check(&self, scores: &Scores) {
        assert_eq!(
            scores.criteria, self.criteria,
            "scores and calibration have different criteria"
        );
    }

    /// Benign or adversarial, and which criteria fired, for every sample.
    ///
    /// # Panics
    /// If `scores` has other criteria than the calibration.
    pub fn decide(&self, scores: &Scores) -> Vec<Decision> {
        self.check(scores);
        (0..scores.len())
            .map(|i| {
                let fired: Vec<bool> = (0..self.criteria.len())
                    .map(|c| {
                        let v = scores.values[c][i];
                        let t = self.thresholds[c];
                        match self.criteria[c].direction {
                            Direction::High => v >= t,
                            Direction::Low => v <= t,
                        }
                    })
                    .collect();
                Decision {
                    adversarial: fired.iter().any(|&f| f),
                    fired,
                }
            })
            .collect()
    }

    /// One number per sample, higher = more adversarial, whose thresholds sweep this rule's
    /// family (for ROC curves and AUC): the oriented score itself for one criterion, else
    /// `-min_i p_i / w_i` with `p_i` the benign p-value of criterion `i`.
    ///
    /// # Panics
    /// If `scores` has other criteria than the calibration.
    pub fn combined_score(&self, scores: &Scores) -> Vec<f32> {
        self.check(scores);
        if self.criteria.len() == 1 {
            return scores.oriented(0);
        }
        self.q_values(scores).iter().map(|&q| -q as f32).collect()
    }

    /// Share of `scores` flagged.
    ///
    /// # Panics
    /// If `scores` has other criteria than the calibration.
    pub fn flag_rate(&self, scores: &Scores) -> f64 {
        let d = self.decide(scores);
        d.iter().filter(|d| d.adversarial).count() as f64 / d.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn criteria() -> Vec<Criterion> {
        vec![
            Criterion::new("C1", Direction::High),
            Criterion::new("C2", Direction::Low),
            Criterion::new("C3", Direction::High),
        ]
    }

    /// Correlated benign scores: C3 shares half its variance with C1.
    fn synthetic(n: usize, seed: u64) -> Scores {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // Box-Muller standard normals.
        let mut g = || {
            let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-12), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        };
        let mut values: Vec<Vec<f32>> = (0..3).map(|_| Vec::with_capacity(n)).collect();
        for _ in 0..n {
            let (a, b, c) = (g(), g(), g());
            values[0].push(10.0 + 2.0 * a);
            values[1].push(5.0 + b.exp());
            values[2].push(0.7 * a + 0.7 * c);
        }
        Scores {
            criteria: criteria(),
            values,
        }
    }

    #[test]
    fn hits_target_fpr_on_fresh_benign_samples() {
        let cal_set = synthetic(100_000, 1);
        let held_out = synthetic(100_000, 2);
        for (target, weights) in [
            (0.05, None),
            (0.01, None),
            (0.10, Some(vec![1.0, 2.0, 1.0])),
        ] {
            let cal = calibrate(&cal_set, target, weights.as_deref()).unwrap();
            assert!(cal.calibration_fpr <= target);
            assert!((cal.calibration_fpr - target).abs() < 0.002);
            let fpr = cal.flag_rate(&held_out);
            assert!(
                (fpr - target).abs() < 0.01,
                "target {target}: held-out {fpr}"
            );
        }
    }

    #[test]
    fn never_exceeds_the_target_when_ratios_tie_in_floating_point() {
        // Criterion c ranks its own block of samples highest (the rest score 0). With weights
        // 3:1:1 the 63rd of block 0 and the 21st of blocks 1 and 2 have q = (63/n)/0.6 and
        // (21/n)/0.2: equal, but not in f64, and the boundary of 104 allowed falls between them.
        let n = 2000;
        let blocks = [(0usize, 100usize), (100, 140), (140, 180)];
        let values = blocks
            .iter()
            .map(|&(start, end)| {
                (0..n)
                    .map(|i| {
                        if (start..end).contains(&i) {
                            (1000 - (i - start)) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let scores = Scores {
            criteria: vec![Criterion::new("C1", Direction::High); 3],
            values,
        };
        let cal = calibrate(&scores, 0.052, Some(&[3.0, 1.0, 1.0])).unwrap();
        assert!(cal.calibration_fpr <= 0.052, "{}", cal.calibration_fpr);
        assert_eq!(cal.flag_rate(&scores), cal.calibration_fpr);
        // The three tied rows are left out together: the 62 + 20 + 20 rows below them stay.
        assert_eq!((cal.calibration_fpr * n as f64).round() as usize, 102);
    }

    #[test]
    fn weights_share_the_budget() {
        let cal = calibrate(&synthetic(50_000, 3), 0.05, Some(&[1.0, 3.0, 1.0])).unwrap();
        let s = synthetic(50_000, 4);
        let d = cal.decide(&s);
        let rate = |c: usize| d.iter().filter(|x| x.fired[c]).count() as f64 / d.len() as f64;
        // C2 gets three fifths of the budget, C1 and C3 a fifth each.
        assert!(rate(1) > 2.0 * rate(0) && rate(1) > 2.0 * rate(2));
    }

    #[test]
    fn single_criterion_threshold_is_the_quantile() {
        let scores = Scores {
            criteria: vec![Criterion::new("C2", Direction::Low)],
            values: vec![(0..100).map(|i| i as f32).collect()],
        };
        let cal = calibrate(&scores, 0.05, None).unwrap();
        assert_eq!(cal.thresholds, vec![4.0]);
        assert_eq!(cal.calibration_fpr, 0.05);
        assert_eq!(cal.combined_score(&scores)[0], 0.0);
    }

    #[test]
    fn bad_calibration_inputs_are_errors() {
        let s = synthetic(10, 5);
        assert!(calibrate(&s, 0.0, None).is_err());
        assert!(calibrate(&s, 0.05, Some(&[1.0])).is_err());
        assert!(calibrate(&Scores::empty(criteria()), 0.05, None).is_err());
    }
}
