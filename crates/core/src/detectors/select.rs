//! How `hashguard detect` picks UMCD's k without seeing an attack: Theorem 1 predicts where an
//! untargeted adversarial code's top-k neighbours lie, benign calibration data say where benign
//! queries' lie, and k maximises the gap at the target FPR.

use serde::Serialize;

/// Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Theorem 1's prediction of C1 for an untargeted adversarial query: its distances to the
/// `database` codes follow N(K(1−p), Kp(1−p)), p = C / (2(C−1)), so the mean of the k smallest
/// is the mean of that normal's lower k/database tail, `μ − σ φ(z) / q` with `q = k/database`
/// and `z = Φ⁻¹(q)`. Treats the distances as independent, which makes it a pessimistic (low)
/// estimate for small k.
pub fn predicted_adversarial_topk_mean(
    bits: usize,
    classes: usize,
    database: usize,
    k: usize,
) -> f64 {
    let c = classes.max(2) as f64;
    let p = c / (2.0 * (c - 1.0));
    let (mu, sigma) = (
        bits as f64 * (1.0 - p),
        (bits as f64 * p * (1.0 - p)).sqrt(),
    );
    let q = (k as f64 / database.max(1) as f64).min(1.0);
    if q >= 1.0 {
        return mu;
    }
    let z = normal_quantile(q);
    let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    mu - sigma * pdf / q
}

/// One candidate k and why it was (not) chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct KChoice {
    /// Candidate k.
    pub k: usize,
    /// Benign C1 at the target FPR's quantile (the value a C1 threshold would sit near).
    pub benign_quantile: f64,
    /// Theorem 1's predicted adversarial C1.
    pub predicted_adversarial: f64,
    /// `predicted_adversarial − benign_quantile`: the larger, the better.
    pub margin: f64,
}

/// Picks k from `candidates` (each with benign calibration C1 values computed at that k): the
/// k with the largest margin between Theorem 1's adversarial C1 and the benign `1 − fpr`
/// quantile; ties go to the smaller k.
pub fn choose_k(
    candidates: &[(usize, Vec<f32>)],
    bits: usize,
    classes: usize,
    database: usize,
    fpr: f64,
) -> (usize, Vec<KChoice>) {
    let table: Vec<KChoice> = candidates
        .iter()
        .map(|(k, benign)| {
            let mut b = benign.clone();
            b.sort_by(f32::total_cmp);
            let idx = (((1.0 - fpr) * b.len() as f64).ceil() as usize).clamp(1, b.len().max(1)) - 1;
            let benign_quantile = b.get(idx).copied().unwrap_or(0.0) as f64;
            let predicted_adversarial =
                predicted_adversarial_topk_mean(bits, classes, database, *k);
            KChoice {
                k: *k,
                benign_quantile,
                predicted_adversarial,
                margin: predicted_adversarial - benign_quantile,
            }
        })
        .collect();
    let best = table
        .iter()
        .fold(None::<KChoice>, |best, c| match best {
            Some(b) if b.margin >= c.margin => Some(b),
            _ => Some(*c),
        })
        .map_or(1, |c| c.k);
    (best, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_known_values() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959963985).abs() < 1e-6);
        assert!((normal_quantile(0.001) + 3.090232306).abs() < 1e-6);
    }

    #[test]
    fn predicted_topk_mean_falls_below_the_theorem_mean() {
        // 64 bits, many classes: μ = 32, σ = 4.
        let all = predicted_adversarial_topk_mean(64, 1000, 10_000, 10_000);
        assert!((all - 32.0 * (1.0 - 1000.0 / 1998.0) / 0.5).abs() < 0.1);
        // Half the database: mean of the lower half of N(μ, σ²) = μ − σ √(2/π).
        let c = 1_000_000;
        let p = c as f64 / (2.0 * (c as f64 - 1.0));
        let (mu, s) = (64.0 * (1.0 - p), (64.0 * p * (1.0 - p)).sqrt());
        let half = predicted_adversarial_topk_mean(64, c, 1000, 500);
        assert!((half - (mu - s * (2.0 / std::f64::consts::PI).sqrt())).abs() < 1e-6);
        let small = predicted_adversarial_topk_mean(64, 10, 64_000, 10);
        assert!(small < half && small > 0.0);
    }

    #[test]
    fn choose_k_takes_the_widest_margin() {
        // Benign C1 grows with k faster than the prediction does beyond k = 10.
        let cands = vec![
            (1, vec![0.0; 100]),
            (10, vec![1.0; 100]),
            (100, vec![12.0; 100]),
        ];
        let (k, table) = choose_k(&cands, 64, 10, 10_000, 0.05);
        assert_eq!(table.len(), 3);
        let best = table.iter().map(|c| c.margin).fold(f64::MIN, f64::max);
        assert_eq!(table.iter().find(|c| c.k == k).unwrap().margin, best);
    }
}
