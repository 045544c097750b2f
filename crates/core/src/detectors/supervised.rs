//! Supervised detection as Ma et al. evaluate LID: a logistic regression on per-layer LID
//! features, fitted on labelled benign and adversarial examples and scored by k-fold
//! cross-validation. Unlike every other detector here it sees adversarial examples.

use serde::Serialize;

use crate::metrics::threshold_at_fpr;
use crate::{Error, Result};

/// A fitted logistic regression on standardised features.
#[derive(Clone, Debug, Serialize)]
pub struct Logistic {
    /// Weight of each standardised feature.
    pub weights: Vec<f64>,
    /// Intercept.
    pub bias: f64,
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl Logistic {
    /// Fits `P(adversarial | x) = σ(w·z + b)` on rows `x` (z: x standardised with the rows'
    /// mean and spread) by Newton's method (IRLS) with an L2 penalty `l2` on `w`, the
    /// intercept unpenalised — scikit-learn's `LogisticRegression` with `C = 1 / l2`.
    pub fn fit(x: &[Vec<f32>], y: &[bool], l2: f64) -> Result<Self> {
        let d = x.first().map_or(0, Vec::len);
        if x.len() != y.len() || d == 0 || x.iter().any(|r| r.len() != d) {
            return Err(Error::InvalidArgument(format!(
                "logistic regression needs one label per row and rows of one width ({} rows, {} labels)",
                x.len(),
                y.len()
            )));
        }
        if !(y.iter().any(|&v| v) && y.iter().any(|&v| !v)) {
            return Err(Error::InvalidArgument(
                "logistic regression needs benign and adversarial rows".into(),
            ));
        }
        if x.iter().flatten().any(|v| !v.is_finite()) || l2.is_nan() || l2 <= 0.0 {
            return Err(Error::Numeric(
                "logistic regression: features must be finite and the penalty positive".into(),
            ));
        }
        let n = x.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| x.iter().map(|r| r[j] as f64).sum::<f64>() / n)
            .collect();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let v = x
                    .iter()
                    .map(|r| (r[j] as f64 - mean[j]).powi(2))
                    .sum::<f64>()
                    / n;
                v.sqrt().max(1e-12)
            })
            .collect();
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                let mut row: Vec<f64> =
                    (0..d).map(|j| (r[j] as f64 - mean[j]) / scale[j]).collect();
                row.push(1.0);
                row
            })
            .collect();
        // θ = (w, b); Newton steps on the penalised log-likelihood.
        let mut theta = vec![0.0; d + 1];
        for _ in 0..100 {
            let mut grad = vec![0.0; d + 1];
            let mut hess = vec![vec![0.0; d + 1]; d + 1];
            for (row, &label) in z.iter().zip(y) {
                let p = sigmoid(dot(row, &theta));
                let r = f64::from(u8::from(label)) - p;
                let w = (p * (1.0 - p)).max(1e-12);
                for a in 0..=d {
                    grad[a] += r * row[a];
                    for b in 0..=d {
                        hess[a][b] += w * row[a] * row[b];
                    }
                }
            }
            for a in 0..d {
                grad[a] -= l2 * theta[a];
                hess[a][a] += l2;
            }
            let step = solve(hess, grad)?;
            let size = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
            for (t, s) in theta.iter_mut().zip(&step) {
                *t += s;
            }
            if size < 1e-10 {
                break;
            }
        }
        Ok(Self {
            bias: theta[d],
            weights: theta[..d].to_vec(),
            mean,
            scale,
        })
    }

    /// The decision value `w·z + b` (the log-odds of adversarial) of one row.
    pub fn score(&self, x: &[f32]) -> f64 {
        x.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((&v, m), s), w)| w * (v as f64 - m) / s)
            .sum::<f64>()
            + self.bias
    }
}

fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `a·x = b` by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        if a[pivot][col].abs() < 1e-300 {
            return Err(Error::Numeric(
                "logistic regression: singular Hessian".into(),
            ));
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (top, below) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for (r, row) in below.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[col + 1 + r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Ok(x)
}

/// Out-of-fold results of [`cross_validate`], one entry per query.
#[derive(Clone, Debug)]
pub struct CrossValidated {
    /// Decision values of the clean queries, each from the model that did not train on it.
    pub benign: Vec<f32>,
    /// The same for their adversarial examples.
    pub adversarial: Vec<f32>,
    /// Whether each clean query was flagged at its fold's threshold.
    pub benign_flagged: Vec<bool>,
    /// Whether each adversarial example was.
    pub adversarial_flagged: Vec<bool>,
}

/// Ma et al.'s protocol on paired features: query `i`'s clean features `benign[i]` and its
/// adversarial example's `adversarial[i]` fall in fold `i % folds`; each fold is scored by a
/// regression fitted on the other folds' pairs, and flagged above the threshold that flags
/// `fpr` of the benign `calibration` rows under that regression (as every detector here is
/// calibrated: on benign database images, not on the queries).
pub fn cross_validate(
    benign: &[Vec<f32>],
    adversarial: &[Vec<f32>],
    calibration: &[Vec<f32>],
    folds: usize,
    fpr: f64,
) -> Result<CrossValidated> {
    let n = benign.len();
    if adversarial.len() != n || folds < 2 || n < 2 * folds || calibration.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "supervised LID needs pairs of clean and adversarial features, at least two per fold \
             ({n} clean, {} adversarial, {folds} folds)",
            adversarial.len()
        )));
    }
    let mut out = CrossValidated {
        benign: vec![0.0; n],
        adversarial: vec![0.0; n],
        benign_flagged: vec![false; n],
        adversarial_flagged: vec![false; n],
    };
    for f in 0..folds {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in (0..n).filter(|i| i % folds != f) {
            x.push(benign[i].clone());
            y.push(false);
            x.push(adversarial[i].clone());
            y.push(true);
        }
        let model = Logistic::fit(&x, &y, 1.0)?;
        let cal: Vec<f32> = calibration.iter().map(|r| model.score(r) as f32).collect();
        let t = threshold_at_fpr(&cal, fpr);
        for i in (0..n).filter(|i| i % folds == f) {
            let (b, a) = (
                model.score(&benign[i]) as f32,
                model.score(&adversarial[i]) as f32,
            );
            out.benign[i] = b;
            out.adversarial[i] = a;
            out.benign_flagged[i] = b >= t;
            out.adversarial_flagged[i] = a >= t;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A standard normal draw (Box-Muller).
    fn gauss(rng: &mut impl Rng) -> f32 {
        let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    /// Two Gaussian classes in 3-d whose means differ along the first feature only.
    fn classes(n: usize, shift: f32, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |s: f32| -> Vec<f32> {
            vec![
                gauss(&mut rng) + s,
                gauss(&mut rng) * 3.0,
                rng.random_range(-1.0..1.0),
            ]
        };
        let b = (0..n).map(|_| draw(0.0)).collect();
        let a = (0..n).map(|_| draw(shift)).collect();
        (b, a)
    }

    #[test]
    fn fit_recovers_the_log_odds_of_two_gaussians() {
        // Unit-variance classes at 0 and 2 on feature 0: log-odds = 2·x0 − 2, the rest 0.
        let (b, a) = classes(20_000, 2.0, 1);
        let y: Vec<bool> = b
            .iter()
            .map(|_| false)
            .chain(a.iter().map(|_| true))
            .collect();
        let x: Vec<Vec<f32>> = b.into_iter().chain(a).collect();
        let m = Logistic::fit(&x, &y, 1e-3).unwrap();
        for (probe, want) in [
            ([0.0, 0.0, 0.0], -2.0),
            ([1.0, 5.0, 0.5], 0.0),
            ([2.0, -4.0, -0.5], 2.0),
        ] {
            let got = m.score(&probe);
            assert!((got - want).abs() < 0.1, "{probe:?}: {got} vs {want}");
        }
    }

    #[test]
    fn cross_validation_separates_when_the_classes_do_and_holds_the_fpr() {
        let (b, a) = classes(1000, 4.0, 2);
        let (cal, _) = classes(2000, 0.0, 3);
        let cv = cross_validate(&b, &a, &cal, 5, 0.05).unwrap();
        let rate = |f: &[bool]| f.iter().filter(|&&v| v).count() as f64 / f.len() as f64;
        assert!(
            rate(&cv.adversarial_flagged) > 0.9,
            "{}",
            rate(&cv.adversarial_flagged)
        );
        assert!((rate(&cv.benign_flagged) - 0.05).abs() < 0.025);
        // With no difference between the classes there is nothing to find.
        let (b, a) = classes(1000, 0.0, 4);
        let cv = cross_validate(&b, &a, &cal, 5, 0.05).unwrap();
        assert!(rate(&cv.adversarial_flagged) < 0.1);
        assert!(cross_validate(&b, &a[..10], &cal, 5, 0.05).is_err());
        assert!(Logistic::fit(&b, &vec![false; b.len()], 1.0).is_err());
    }
}
