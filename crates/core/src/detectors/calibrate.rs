//! Thresholds from benign scores at a target false-positive rate. With several criteria the FPR
//! budget is shared by weights: criterion `i` may flag a share `w_i·γ` of benign samples, and
//! `γ` is the largest value whose union ("reject if any criterion fires", UMCD §3.4) stays
//! within the target on the calibration set. The point-mass rule first gives a criterion whose
//! benign scores mostly sit on one value (C1 = 0) a threshold just beyond that value; Fisher's
//! rule instead thresholds one statistic that combines every criterion's benign p-value.

use serde::{Deserialize, Serialize};

use super::{Criterion, Direction, Scores};
use crate::metrics::threshold_at_fpr;
use crate::{Error, Result};

/// A detector's decision rule, fitted on benign scores.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// The criteria, in column order.
    pub criteria: Vec<Criterion>,
    /// FPR budget share of each criterion (sums to 1 over the criteria that share the budget;
    /// 0 for those with a point-mass threshold).
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
    /// How the budget was shared.
    pub rule: BudgetRule,
    /// Per criterion: whether its threshold sits just beyond a benign point mass (the
    /// point-mass rule) rather than at its share of the budget.
    pub point_mass: Vec<bool>,
    /// Under [`BudgetRule::Fisher`]: the threshold on the combined statistic `S` (flag at or
    /// above it); `None` under the other rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fisher_threshold: Option<f32>,
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

/// How a detector's false-positive budget is shared between its criteria.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetRule {
    /// Shares by the weights (equal by default), the union within the target (UMCD §3.4 as
    /// the paper states it).
    #[default]
    Shares,
    /// A criterion with a benign point mass — more than half of the calibration samples on
    /// its least suspicious value, as C1 = 0 when a query's top k sit at Hamming distance 0 —
    /// fires on anything beyond that value when the samples beyond it fit in the budget; the
    /// rest of the budget is shared by the other criteria's weights. Uses benign data only.
    PointMass,
    /// Fisher's combination (weighted as Good's, by the criteria's weights): every criterion's
    /// benign p-value `p_i` — the share of calibration samples at least as extreme, counting
    /// the sample itself — enters one statistic `S = Σ_i w_i·(−2 ln p_i)` (weights normalised
    /// to mean 1), and a sample is flagged when `S` reaches the value that flags the target
    /// share of the calibration set. A sample somewhat unusual on two criteria is caught where
    /// neither alone would fire, and a point mass (C1 = 0) adds nothing. Uses benign data
    /// only; each criterion's threshold is where it alone reaches `S`'s.
    Fisher,
}

/// Fits thresholds on benign `scores` so that at most `target_fpr` of them are flagged.
///
/// `weights` shares the budget between criteria (default: equal shares); they are normalised.
pub fn calibrate(scores: &Scores, target_fpr: f64, weights: Option<&[f64]>) -> Result<Calibration> {
    calibrate_with(scores, target_fpr, weights, BudgetRule::Shares)
}

/// [`calibrate`] with a choice of [`BudgetRule`].
pub fn calibrate_with(
    scores: &Scores,
    target_fpr: f64,
    weights: Option<&[f64]>,
    rule: BudgetRule,
) -> Result<Calibration> {
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
    let allowed = (target_fpr * n as f64 + 1e-9).floor() as usize;
    let mut cal = Calibration {
        criteria: scores.criteria.clone(),
        weights,
        target_fpr,
        gamma: 0.0,
        thresholds: Vec::new(),
        calibration_fpr: 0.0,
        samples: n,
        rule,
        point_mass: vec![false; m],
        fisher_threshold: None,
        sorted,
    };
    if rule == BudgetRule::Fisher {
        cal.fit_fisher(scores);
        return Ok(cal);
    }
    // The point-mass rule: criteria whose benign mass sits on their lowest oriented value get
    // the first value above it as threshold, while their union stays within the budget.
    let mut fixed: Vec<Option<f32>> = vec![None; m];
    let mut flagged_by_fixed = vec![false; n];
    if rule == BudgetRule::PointMass {
        for (c, (fixed, sorted)) in fixed.iter_mut().zip(&cal.sorted).enumerate() {
            let Some(t) = point_mass_edge(sorted, allowed) else {
                continue;
            };
            let oriented = scores.oriented(c);
            let union = flagged_by_fixed
                .iter()
                .zip(&oriented)
                .filter(|&(&f, &v)| f || v >= t)
                .count();
            if union <= allowed {
                *fixed = Some(t);
                for (f, &v) in flagged_by_fixed.iter_mut().zip(&oriented) {
                    *f |= v >= t;
                }
            }
        }
    }
    cal.point_mass = fixed.iter().map(Option::is_some).collect();
    // The other criteria share what is left: their weights renormalised over them.
    let shared: f64 = fixed
        .iter()
        .zip(&cal.weights)
        .filter(|(f, _)| f.is_none())
        .map(|(_, w)| w)
        .sum();
    for (w, f) in cal.weights.iter_mut().zip(&fixed) {
        *w = if f.is_some() { 0.0 } else { *w / shared };
    }
    // Each calibration row not already flagged is flagged exactly when its q = min_i p_i / w_i
    // ≤ γ. γ sits a relative 1e-9 above the last q allowed, so q values within that of it
    // (equal ratios that divide differently in floating point, e.g. (63/n)/0.6 and (21/n)/0.2)
    // are ties too.
    const SLACK: f64 = 1.0 + 1e-9;
    let mut q: Vec<f64> = cal
        .q_values(scores)
        .into_iter()
        .zip(&flagged_by_fixed)
        .filter(|&(_, &f)| !f)
        .map(|(q, _)| q)
        .collect();
    q.sort_by(f64::total_cmp);
    let left = q.len();
    let allowed = (allowed - (n - left)).min(left);
    let mut j = allowed;
    while j > 0 && j < left && q[j] <= q[j - 1] * SLACK {
        j -= 1;
    }
    cal.gamma = if j == 0 { 0.0 } else { q[j - 1] * SLACK };
    cal.thresholds = (0..m)
        .map(|c| {
            let t = fixed[c]
                .unwrap_or_else(|| threshold_at_fpr(&cal.sorted[c], cal.weights[c] * cal.gamma));
            own_units(cal.criteria[c].direction, t)
        })
        .collect();
    let flagged = cal.decide(scores).iter().filter(|d| d.adversarial).count();
    cal.calibration_fpr = flagged as f64 / n as f64;
    Ok(cal)
}

/// An oriented value (higher = more adversarial) in its criterion's own units, and back.
fn own_units(direction: Direction, v: f32) -> f32 {
    match direction {
        Direction::High => v,
        Direction::Low => -v,
    }
}

/// How many of the ascending `sorted` values are at least `v`.
fn at_least(sorted: &[f32], v: f32) -> usize {
    sorted.len() - sorted.partition_point(|&b| b < v)
}

/// The point-mass rule's threshold for one criterion: with more than half of the ascending
/// `sorted` (oriented) benign values on the lowest one, and at most `allowed` beyond it, the
/// first value beyond it; `None` when there is no such mass or it leaves too many samples.
pub(crate) fn point_mass_edge(sorted: &[f32], allowed: usize) -> Option<f32> {
    let (n, first) = (sorted.len(), *sorted.first()?);
    let mass = sorted.partition_point(|&v| v <= first);
    (mass * 2 > n && mass < n && n - mass <= allowed).then(|| sorted[mass])
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
            .map(|&s| at_least(sorted, s) as f64 / n)
            .collect()
    }

    /// `min_i p_i / w_i` over the criteria that share the budget (weight > 0); criteria with
    /// a point-mass threshold count as 0 beyond it and ∞ on it.
    fn q_values(&self, scores: &Scores) -> Vec<f64> {
        let mut q = vec![f64::INFINITY; scores.len()];
        for c in 0..self.criteria.len() {
            if self.point_mass.get(c).copied().unwrap_or(false) {
                let t = self.thresholds.get(c).copied();
                let oriented = scores.oriented(c);
                let t = t.map(|t| own_units(self.criteria[c].direction, t));
                if let Some(t) = t {
                    for (qi, v) in q.iter_mut().zip(oriented) {
                        if v >= t {
                            *qi = 0.0;
                        }
                    }
                }
                continue;
            }
            for (qi, p) in q.iter_mut().zip(self.p_values(scores, c)) {
                *qi = qi.min(p / self.weights[c]);
            }
        }
        q
    }

    /// [`BudgetRule::Fisher`]'s fit: the threshold on `S` that flags at most the target share
    /// of the calibration samples (each scored leave-one-out, as a fresh sample would be), and
    /// each criterion's threshold where it alone reaches it.
    fn fit_fisher(&mut self, scores: &Scores) {
        let (m, n) = (self.criteria.len(), self.samples);
        let own = self.fisher_statistics(scores, true);
        let tau = threshold_at_fpr(&own, self.target_fpr);
        self.fisher_threshold = Some(tau);
        self.thresholds = (0..m)
            .map(|c| {
                // Alone, criterion c reaches tau when w·(−2 ln p) ≥ tau, p = (1 + beyond)/(n + 1):
                // at most `beyond` calibration samples at least as extreme.
                let w = self.weights[c] * m as f64;
                let p = (-f64::from(tau) / (2.0 * w)).exp();
                let beyond = (p * (n + 1) as f64 - 1.0 + 1e-9).floor();
                let t = if beyond < 0.0 {
                    f32::INFINITY
                } else {
                    threshold_at_fpr(&self.sorted[c], beyond / n as f64)
                };
                own_units(self.criteria[c].direction, t)
            })
            .collect();
        self.calibration_fpr = own.iter().filter(|&&s| s >= tau).count() as f64 / n as f64;
    }

    /// Fisher's statistic `Σ_i w_i·(−2 ln p_i)` of every sample (weights normalised to mean 1),
    /// with `p_i = (1 + calibration samples at least as extreme) / (n + 1)`; `own` when the
    /// samples are the calibration set itself, each then counted once (leave-one-out:
    /// `p_i = at least as extreme / n`, itself included).
    fn fisher_statistics(&self, scores: &Scores, own: bool) -> Vec<f32> {
        let m = self.criteria.len() as f64;
        let mut stat = vec![0.0f64; scores.len()];
        for c in 0..self.criteria.len() {
            let sorted = &self.sorted[c];
            let n = sorted.len() as f64;
            let w = self.weights[c] * m;
            for (s, v) in stat.iter_mut().zip(scores.oriented(c)) {
                let beyond = at_least(sorted, v) as f64;
                let p = if own {
                    beyond.max(1.0) / n
                } else {
                    (1.0 + beyond) / (n + 1.0)
                };
                *s += -2.0 * w * p.ln();
            }
        }
        stat.into_iter().map(|s| s as f32).collect()
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
        let fisher = self
            .fisher_threshold
            .map(|tau| (tau, self.fisher_statistics(scores, false)));
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
                let combined = fisher.as_ref().is_some_and(|(tau, s)| s[i] >= *tau);
                Decision {
                    adversarial: combined || fired.iter().any(|&f| f),
                    fired,
                }
            })
            .collect()
    }

    /// One number per sample, higher = more adversarial, whose thresholds sweep this rule's
    /// family (for ROC curves and AUC): the oriented score itself for one criterion, else
    /// `-min_i p_i / w_i` with `p_i` the benign p-value of criterion `i` (Fisher's `S` under
    /// [`BudgetRule::Fisher`]).
    ///
    /// # Panics
    /// If `scores` has other criteria than the calibration.
    pub fn combined_score(&self, scores: &Scores) -> Vec<f32> {
        self.check(scores);
        if self.criteria.len() == 1 {
            return scores.oriented(0);
        }
        if self.fisher_threshold.is_some() {
            return self.fisher_statistics(scores, false);
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

    /// Benign C1 is 0 for 97 % of the samples (top k at Hamming distance 0), 1..=3 bits for the
    /// rest; C2 and C3 are continuous.
    fn with_point_mass(n: usize, seed: u64) -> Scores {
        let mut s = synthetic(n, seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 77);
        s.values[0] = (0..n)
            .map(|_| {
                if rng.random_bool(0.97) {
                    0.0
                } else {
                    rng.random_range(1..=3) as f32
                }
            })
            .collect();
        s
    }

    #[test]
    fn the_point_mass_rule_fires_c1_just_above_zero_and_shares_the_rest() {
        let cal_set = with_point_mass(20_000, 1);
        let shares = calibrate(&cal_set, 0.05, None).unwrap();
        let mass = calibrate_with(&cal_set, 0.05, None, BudgetRule::PointMass).unwrap();
        assert_eq!(mass.point_mass, vec![true, false, false]);
        // C1 fires from the first value above the mass; the equal split needs more bits.
        assert_eq!(mass.thresholds[0], 1.0);
        assert!(shares.thresholds[0] > 1.0, "{:?}", shares.thresholds);
        assert_eq!(mass.weights, vec![0.0, 0.5, 0.5]);
        // Within the target on the calibration set and on fresh benign samples.
        assert!(mass.calibration_fpr <= 0.05 && mass.calibration_fpr > 0.045);
        let fresh = with_point_mass(20_000, 2);
        assert!((mass.flag_rate(&fresh) - 0.05).abs() < 0.01);
        // Attacked samples that only move C1 off zero by one bit: the point-mass rule flags
        // every one, the equal split none.
        let mut attacked = synthetic(2_000, 3);
        attacked.values[0] = vec![1.0; 2_000];
        assert_eq!(mass.flag_rate(&attacked), 1.0);
        assert!(shares.flag_rate(&attacked) < 0.1);
        // Its ROC score ranks every C1 > 0 sample first.
        let score = mass.combined_score(&attacked);
        assert!(score.iter().all(|&q| q == 0.0));
    }

    #[test]
    fn without_a_point_mass_the_rule_is_the_equal_split() {
        let cal_set = synthetic(20_000, 5);
        let a = calibrate(&cal_set, 0.05, None).unwrap();
        let b = calibrate_with(&cal_set, 0.05, None, BudgetRule::PointMass).unwrap();
        assert_eq!(b.point_mass, vec![false; 3]);
        assert_eq!((a.thresholds, a.gamma), (b.thresholds, b.gamma));
        // A point mass whose tail alone exceeds the budget is not taken either.
        let mut heavy = with_point_mass(20_000, 6);
        heavy.values[0] = (0..20_000)
            .map(|i| if i % 10 == 0 { 2.0 } else { 0.0 })
            .collect();
        let c = calibrate_with(&heavy, 0.05, None, BudgetRule::PointMass).unwrap();
        assert_eq!(c.point_mass, vec![false; 3]);
        assert!(c.calibration_fpr <= 0.05);
    }

    #[test]
    fn fishers_rule_hits_the_target_and_catches_two_moderate_criteria() {
        let cal_set = with_point_mass(20_000, 7);
        let fisher = calibrate_with(&cal_set, 0.05, None, BudgetRule::Fisher).unwrap();
        let tau = fisher.fisher_threshold.unwrap();
        assert!(fisher.calibration_fpr <= 0.05 && fisher.calibration_fpr > 0.045);
        let fresh = with_point_mass(20_000, 8);
        let fpr = fisher.flag_rate(&fresh);
        assert!((fpr - 0.05).abs() < 0.006, "held-out FPR {fpr}");
        // The point mass adds nothing: a sample on it has p = 1.
        let on_mass = fisher.fisher_statistics(&fresh, false);
        let i = fresh.values[0].iter().position(|&v| v == 0.0).unwrap();
        let p = |c: usize| {
            let (v, s) = (fresh.oriented(c)[i], &fisher.sorted[c]);
            (1.0 + at_least(s, v) as f64) / (s.len() as f64 + 1.0)
        };
        assert_eq!(p(0), 1.0);
        let c23 = (-2.0 * (p(1).ln() + p(2).ln())) as f32;
        assert!((on_mass[i] - c23).abs() < 1e-3, "{} vs {c23}", on_mass[i]);
        // Samples at the 3 % benign tail of both C2 and C3, C1 on its mass: below each
        // criterion's share of the equal split, above Fisher's threshold.
        let tail = |c: usize| {
            let s = &fisher.sorted[c];
            own_units(fisher.criteria[c].direction, s[s.len() - s.len() * 3 / 100])
        };
        let moderate = Scores {
            criteria: criteria(),
            values: vec![vec![0.0; 100], vec![tail(1); 100], vec![tail(2); 100]],
        };
        let shares = calibrate(&cal_set, 0.05, None).unwrap();
        assert_eq!(shares.flag_rate(&moderate), 0.0);
        assert_eq!(fisher.flag_rate(&moderate), 1.0);
        // Each criterion's threshold is where it alone reaches tau: just there it fires and the
        // combined statistic agrees; every criterion that fires flags its sample.
        let alone = fisher.fisher_statistics(
            &Scores {
                criteria: criteria(),
                values: vec![
                    vec![0.0],
                    vec![fisher.thresholds[1]],
                    vec![fisher.sorted[2][0]],
                ],
            },
            false,
        );
        assert!(alone[0] >= tau, "{} < {tau}", alone[0]);
        for d in fisher.decide(&fresh) {
            assert!(d.adversarial || !d.fired.iter().any(|&f| f));
        }
        let rec = crate::experiments::detection::CalibrationRecord::from(&fisher);
        assert_eq!(rec.fisher_threshold, Some(tau));
        // The ROC score is the statistic itself.
        assert_eq!(fisher.combined_score(&fresh), on_mass);
    }

    #[test]
    fn bad_calibration_inputs_are_errors() {
        let s = synthetic(10, 5);
        assert!(calibrate(&s, 0.0, None).is_err());
        assert!(calibrate(&s, 0.05, Some(&[1.0])).is_err());
        assert!(calibrate(&Scores::empty(criteria()), 0.05, None).is_err());
    }
}
