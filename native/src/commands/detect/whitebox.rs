//! `hashguard reproduce --whitebox`: the attacker who knows UMCD (paper §4.3, eq. 13, appendix
//! Table 4) — a λ1 sweep for each λ2 (Fig. 5 analogue), TPR at FPR 0.1 and 0.2 of UMCD vs
//! MeanBlur, and the same attacker with APGD steps and restarts.

use std::path::Path;

use anyhow::{Result, bail};
use burn::prelude::*;
use clap::Args;
use hashguard_core::attacks::{
    AdaptiveWeights, Budget, StepRule, adaptive_attack, choose_target_labels, target_anchor,
};
use hashguard_core::data::LabelSet;
use hashguard_core::metrics::{auc, evaluate_retrieval};
use hashguard_core::retrieval::{PackedCodes, hamming};
use hashguard_core::run::write_atomic;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Bench, Crafted, DetectionArgs, Loaded, Method, Outcome, read_vec};
use crate::backend::Selected;
use crate::commands::attack::parse_fraction;
use crate::plot::{Curve, line_plot};
use crate::progress::{bar, log};

/// Flags of `reproduce --whitebox`.
#[derive(Args, Debug, Clone)]
pub struct WhiteboxArgs {
    /// White-box: L∞ budget (the paper: 32/255); step and iterations are --step and --steps.
    #[arg(long, default_value = "32/255", value_parser = parse_fraction)]
    whitebox_eps: f32,
    /// White-box: λ1 values swept (weight of L2 = −‖h(x') − f(x')‖₁; the paper: 0 … 0.03).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.0025,0.005,0.0075,0.01,0.02,0.03"
    )]
    lambda1: Vec<f32>,
    /// White-box: λ2 values (weight of L3, the blurred copy's code distance; the paper: 0.3, 3).
    #[arg(long, value_delimiter = ',', default_value = "0.3,3")]
    lambda2: Vec<f32>,
    /// White-box: λ1 of Table 4 (the paper: 0.0075); added to the sweep if absent.
    #[arg(long, default_value_t = 0.0075)]
    table4_lambda1: f32,
    /// White-box: iterations of the stronger APGD attacker at Table 4's λ1 (0 skips it).
    #[arg(long, default_value_t = 200)]
    apgd_steps: usize,
    /// White-box: random restarts of the APGD attacker (each image keeps its lowest loss).
    #[arg(long, default_value_t = 2)]
    restarts: usize,
}

impl WhiteboxArgs {
    fn validate(&self) -> Result<()> {
        let bad = |v: &f32| !(v.is_finite() && *v >= 0.0);
        if self.lambda1.is_empty() || self.lambda2.is_empty() {
            bail!("--lambda1 and --lambda2 need at least one value each");
        }
        if self.lambda1.iter().chain(&self.lambda2).any(bad) || bad(&self.table4_lambda1) {
            bail!("--lambda1, --lambda2 and --table4-lambda1 must be non-negative numbers");
        }
        if self.apgd_steps > 0 && self.restarts == 0 {
            bail!("--restarts must be at least 1");
        }
        Ok(())
    }

    /// The λ1 sweep, sorted, with Table 4's value in it.
    fn sweep(&self) -> Vec<f32> {
        let mut l1 = self.lambda1.clone();
        l1.push(self.table4_lambda1);
        l1.sort_by(f32::total_cmp);
        l1.dedup();
        l1
    }
}

/// Each query's target: a label it lacks and the code of one benign database image of it
/// (the "benign neighbour" the attacker pulls the query onto, paper eq. 10).
struct Targets {
    labels: Vec<usize>,
    codes: Vec<Vec<f32>>,
}

/// Runs the white-box study into `out`: `whitebox.md`, `whitebox.json` and one Fig. 5 PNG per λ2.
pub fn run(c: &DetectionArgs, w: &WhiteboxArgs, out: &Path, selected: &Selected) -> Result<()> {
    w.validate()?;
    let ctx = Loaded::load(c, selected)?;
    let bench = Bench::prepare(&ctx, c, selected, Some(&["MeanBlur"]))?;
    let targets = bench.benign_targets(c.seed)?;
    let sweep = w.sweep();
    let fixed = Budget {
        eps: w.whitebox_eps,
        step: c.step.min(w.whitebox_eps),
        steps: c.steps,
        random_start: false,
        relax: 1.0,
    };
    fixed.validate()?;
    let mut points = Vec::new();
    for &lambda2 in &w.lambda2 {
        for &lambda1 in &sweep {
            let weights = AdaptiveWeights {
                lambda1,
                lambda2,
                blur: bench.umcd.blur,
            };
            points.push(bench.adaptive_point(
                &targets,
                weights,
                &fixed,
                StepRule::Fixed,
                c,
                selected,
            )?);
        }
    }
    let mut stronger = Vec::new();
    if w.apgd_steps > 0 {
        let budget = Budget {
            steps: w.apgd_steps,
            ..fixed
        };
        for &lambda2 in &w.lambda2 {
            let weights = AdaptiveWeights {
                lambda1: w.table4_lambda1,
                lambda2,
                blur: bench.umcd.blur,
            };
            let rule = StepRule::Apgd {
                restarts: w.restarts,
            };
            stronger.push(bench.adaptive_point(&targets, weights, &budget, rule, c, selected)?);
        }
    }
    let report = json!({
        "run": c.run,
        "queries": bench.queries.len(),
        "eps": w.whitebox_eps,
        "pgd": {"step": fixed.step, "steps": fixed.steps},
        "apgd": {"steps": w.apgd_steps, "restarts": w.restarts},
        "fpr": c.fpr,
        "table4_lambda1": decimal(w.table4_lambda1),
        "umcd": bench.selection,
        "points": points,
        "apgd_points": stronger,
        "backend": selected.info,
    });
    write_atomic(
        &out.join("whitebox.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    for &lambda2 in &w.lambda2 {
        let mine: Vec<&Value> = points
            .iter()
            .filter(|p| p["lambda2"].as_f64() == Some(decimal(lambda2)))
            .collect();
        fig5(&mine, &out.join(format!("fig5_lambda2_{lambda2}.png")))?;
    }
    let md = markdown(&points, &stronger, w, c, bench.queries.len());
    write_atomic(&out.join("whitebox.md"), md.as_bytes())?;
    println!("{md}");
    println!(
        "whitebox.md, whitebox.json and Fig. 5 PNGs -> {}",
        out.display()
    );
    Ok(())
}

impl Bench<'_> {
    /// A target label per query (one it lacks) and one benign database code of that label.
    fn benign_targets(&self, seed: u64) -> Result<Targets> {
        let q_labels: Vec<LabelSet> = self.queries.iter().map(|&i| self.set.labels[i]).collect();
        let present = self
            .db_labels
            .iter()
            .fold(LabelSet::default(), |a, &l| a.union(l));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xB0C5);
        let labels = choose_target_labels(&q_labels, present, None, &mut rng)?;
        // A vote over one code is that code: a single benign image's h_t.
        let codes = labels
            .iter()
            .map(|&t| target_anchor(self.index.codes(), &self.db_labels, t, 1, &mut rng))
            .collect::<hashguard_core::Result<Vec<_>>>()?;
        Ok(Targets { labels, codes })
    }

    /// One white-box attack over the test queries, scored by MeanBlur and UMCD.
    fn adaptive_point(
        &self,
        targets: &Targets,
        weights: AdaptiveWeights,
        budget: &Budget,
        rule: StepRule,
        c: &DetectionArgs,
        selected: &Selected,
    ) -> Result<Value> {
        let device = &selected.device;
        let bits = self.model.bits();
        let n = self.queries.len();
        let per = self.shape.len();
        let runs = match rule {
            StepRule::Fixed => 1,
            StepRule::Apgd { restarts } => restarts,
        };
        let label = format!(
            "white-box λ1 {} λ2 {}{}",
            weights.lambda1,
            weights.lambda2,
            match rule {
                StepRule::Fixed => String::new(),
                StepRule::Apgd { restarts } => format!(" APGD-{}x{restarts}", budget.steps),
            }
        );
        let pb = bar(
            (n.div_ceil(c.batch_size) * budget.steps * runs) as u64,
            "white-box",
        );
        pb.set_message(label.clone());
        let (mut pixels, mut success) = (Vec::with_capacity(n * per), Vec::with_capacity(n));
        let mut adv_codes = PackedCodes::new(bits);
        let mut clean_codes = PackedCodes::new(bits);
        let (mut flips, mut terms) = (0u64, [0f64; 3]);
        for (b, start) in (0..n).step_by(c.batch_size).enumerate() {
            let end = (start + c.batch_size).min(n);
            let x = self.query_batch(start, end, device);
            let t = Tensor::<2>::from_data(
                TensorData::new(targets.codes[start..end].concat(), [end - start, bits]),
                device,
            );
            let fc = read_vec(self.model.forward(x.clone()))?;
            let (adv, batch_terms) = adaptive_attack(
                self.model,
                x,
                t,
                &weights,
                budget,
                rule,
                c.seed + b as u64,
                |_| pb.inc(1),
            )?;
            let fa = read_vec(self.model.forward(adv.clone()))?;
            let (bc, ba) = (
                PackedCodes::from_signs(bits, &fc),
                PackedCodes::from_signs(bits, &fa),
            );
            for i in 0..end - start {
                let target = PackedCodes::from_signs(bits, &targets.codes[start + i]);
                let d = hamming(bc.code(i), ba.code(i));
                flips += d as u64;
                success.push(hamming(ba.code(i), target.code(0)) < d);
                terms[0] += batch_terms.l1[i] as f64;
                terms[1] += batch_terms.l2[i] as f64;
                terms[2] += batch_terms.l3[i] as f64;
            }
            clean_codes.extend(&bc);
            adv_codes.extend(&ba);
            pixels.extend(read_vec(adv)?);
        }
        pb.finish_and_clear();
        let t_labels: Vec<LabelSet> = targets
            .labels
            .iter()
            .map(|&t| LabelSet::single(t))
            .collect();
        let t_map = |codes: &PackedCodes| {
            evaluate_retrieval(codes, &t_labels, self.index, &self.db_labels, &[])
                .map(|m| m.map_all)
        };
        let (clean_t_map, adv_t_map) = (t_map(&clean_codes)?, t_map(&adv_codes)?);
        let mut crafted = Crafted {
            label: label.clone(),
            method: Method::Dhta,
            eps: budget.eps,
            pixels,
            success,
            clean_map: clean_t_map,
            adv_map: adv_t_map,
            mean_hamming_to_original: flips as f64 / n as f64,
            scores: Vec::new(),
        };
        let outcomes = self.evaluate(&mut crafted)?;
        let umcd_index = self.detectors.len() - 1;
        let (benign, adv) = (&self.benign_test[umcd_index], &crafted.scores[umcd_index]);
        let criterion_auc: Vec<f64> = (0..benign.criteria.len())
            .map(|k| auc(&benign.oriented(k), &adv.oriented(k)))
            .collect();
        let umcd_flags = self.calibrations[umcd_index].decide(adv);
        let evaded = crafted
            .success
            .iter()
            .zip(&umcd_flags)
            .filter(|(s, d)| **s && !d.adversarial)
            .count() as f64
            / n as f64;
        let success_rate = crafted.success.iter().filter(|&&s| s).count() as f64 / n as f64;
        let find = |name: &str| outcomes.iter().find(|o| o.detector == name);
        let detector = |o: Option<&Outcome>| {
            o.map_or(Value::Null, |o| {
                json!({
                    "detection_rate": 1.0 - o.miss_rate,
                    "detection_rate_successful": 1.0 - o.miss_rate_successful,
                    "auc": o.auc,
                    "tpr_at_fpr_0_1": o.tpr_at_fpr_0_1,
                    "tpr_at_fpr_0_2": o.tpr_at_fpr_0_2,
                    "criterion_rates": o.criterion_rates,
                })
            })
        };
        log(
            &pb,
            format!(
                "{label}: success {:.1}%, UMCD detects {:.1}%, successful and unflagged {:.1}%, t-mAP {adv_t_map:.3}",
                100.0 * success_rate,
                100.0 * (1.0 - find("UMCD").map_or(f64::NAN, |o| o.miss_rate)),
                100.0 * evaded
            ),
        );
        let n = n as f64;
        Ok(json!({
            "lambda1": decimal(weights.lambda1),
            "lambda2": decimal(weights.lambda2),
            "rule": rule,
            "steps": budget.steps,
            "success_rate": success_rate,
            "successful_and_unflagged_by_umcd": evaded,
            "clean_t_map": clean_t_map,
            "t_map": adv_t_map,
            "mean_hamming_to_original": crafted.mean_hamming_to_original,
            "mean_terms": {"l1": terms[0] / n, "l2": terms[1] / n, "l3": terms[2] / n},
            "umcd": detector(find("UMCD")),
            "umcd_criterion_auc": criterion_auc,
            "meanblur": detector(find("MeanBlur")),
        }))
    }
}

/// An `f32` flag value as the decimal a person typed (0.3, not 0.30000001192092896).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Fig. 5 analogue for one λ2: x = λ1 over the swept range, y in [0, 1]: success rate (blue),
/// UMCD detection rate (orange), AUC of C1 (red), C2 (green), C3 (purple).
fn fig5(points: &[&Value], path: &Path) -> Result<()> {
    let top = points
        .iter()
        .filter_map(|p| p["lambda1"].as_f64())
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let series = |colour: [u8; 3], get: &dyn Fn(&Value) -> Option<f64>| -> Curve {
        let pts = points
            .iter()
            .filter_map(|p| Some((p["lambda1"].as_f64()? / top, get(p)?)))
            .collect();
        (pts, colour)
    };
    let curves = vec![
        series([40, 90, 200], &|p| p["success_rate"].as_f64()),
        series([240, 140, 20], &|p| p["umcd"]["detection_rate"].as_f64()),
        series([200, 30, 30], &|p| p["umcd_criterion_auc"][0].as_f64()),
        series([30, 160, 60], &|p| p["umcd_criterion_auc"][1].as_f64()),
        series([130, 60, 170], &|p| p["umcd_criterion_auc"][2].as_f64()),
    ];
    line_plot(&curves, false, path)
}

fn markdown(
    points: &[Value],
    stronger: &[Value],
    w: &WhiteboxArgs,
    c: &DetectionArgs,
    queries: usize,
) -> String {
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("–".into(), |x| format!("{:.1}", 100.0 * x))
    };
    let f3 = |v: &Value| v.as_f64().map_or("–".into(), |x| format!("{x:.3}"));
    let mut s = format!(
        "# White-box attacker vs UMCD (eq. 13)\n\n{queries} queries, eps {:.0}/255, PGD step {:.0}/255, \
         {} steps, targets: the code of one benign database image of a class the query lacks; BPDA \
         through the mean blur. Detection at a {:.0}% FPR calibrated on benign images.\n\n\
         ## Fig. 5 analogue\n\n| λ2 | λ1 | success % | UMCD detects % | successful & unflagged % | \
         AUC C1 | AUC C2 | AUC C3 | MeanBlur detects % |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        w.whitebox_eps * 255.0,
        c.step.min(w.whitebox_eps) * 255.0,
        c.steps,
        100.0 * c.fpr
    );
    for p in points {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p["lambda2"],
            p["lambda1"],
            pct(&p["success_rate"]),
            pct(&p["umcd"]["detection_rate"]),
            pct(&p["successful_and_unflagged_by_umcd"]),
            f3(&p["umcd_criterion_auc"][0]),
            f3(&p["umcd_criterion_auc"][1]),
            f3(&p["umcd_criterion_auc"][2]),
            pct(&p["meanblur"]["detection_rate"]),
        ));
    }
    s.push_str(&format!(
        "\nFigures fig5_lambda2_*.png: x = λ1 from 0 to the largest swept value; success rate \
         (blue), UMCD detection rate (orange), AUC of C1 (red), C2 (green), C3 (purple).\n\n\
         ## Table 4 analogue (λ1 = {})\n\n| Attacker | λ2 | Detector | TPR @ FPR 0.1 | TPR @ FPR 0.2 | success % |\n\
         |---|---:|---|---:|---:|---:|\n",
        w.table4_lambda1
    ));
    let rows = points
        .iter()
        .filter(|p| p["lambda1"].as_f64() == Some(decimal(w.table4_lambda1)))
        .map(|p| (format!("PGD-{}", c.steps), p))
        .chain(
            stronger
                .iter()
                .map(|p| (format!("APGD-{}x{}", w.apgd_steps, w.restarts), p)),
        );
    for (attacker, p) in rows {
        for (name, key) in [("UMCD", "umcd"), ("MeanBlur", "meanblur")] {
            s.push_str(&format!(
                "| {attacker} | {} | {name} | {} | {} | {} |\n",
                p["lambda2"],
                f3(&p[key]["tpr_at_fpr_0_1"]),
                f3(&p[key]["tpr_at_fpr_0_2"]),
                pct(&p["success_rate"]),
            ));
        }
    }
    s.push_str(
        "\nThe paper (CIFAR-10, ResNet-50): UMCD 0.956 / 0.979, MeanBlur 0.034 / 0.048 at FPR \
         0.1 / 0.2.\n",
    );
    s
}
