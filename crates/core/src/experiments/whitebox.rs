//! The white-box study of the UMCD paper (§4.3, eq. 13, appendix Table 4 and Fig. 5): the
//! attacker who knows UMCD, swept over λ1 for each λ2 (and λ4, hashguard's term against C4),
//! scored by UMCD (one- and two-sided C3, with C4) and MeanBlur; and the same attacker with APGD
//! steps and restarts. Typed config in, typed report out, Markdown rendering.

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::detection::{
    Crafted, DetectionBench, DetectionConfig, Selection, TWO_SIDED, Table1Row, WITH_C4,
};
use super::{AttackKind, AttackSpec, BackendInfo, Progress};
use crate::attacks::{AdaptiveWeights, StepRule, dhta_targets};
use crate::data::LabelSet;
use crate::detectors::{Consistency, Decision, Thumbnails, thumbnail};
use crate::metrics::{auc, evaluate_retrieval};
use crate::retrieval::{HammingIndex, PackedCodes};
use crate::run::OpenedRun;
use crate::{Error, Result};

/// Settings of the white-box study (the `reproduce --whitebox` flags); steps, step size, FPR
/// and batching come from the [`DetectionConfig`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WhiteboxConfig {
    /// L∞ budget (the paper: 32/255).
    pub eps: f32,
    /// λ1 values swept (weight of L2; the paper: 0 … 0.03).
    pub lambda1: Vec<f32>,
    /// λ2 values (weight of L3; the paper: 0.3, 3).
    pub lambda2: Vec<f32>,
    /// λ1 of Table 4 (the paper: 0.0075); added to the sweep if absent.
    pub table4_lambda1: f32,
    /// Iterations of the APGD attacker at Table 4's λ1 (0 skips it).
    pub apgd_steps: usize,
    /// Its random restarts.
    pub restarts: usize,
    /// λ4 values (weight of L4, the thumbnail's distance to what the target retrieves, against
    /// C4; 0 is the paper's attacker).
    #[serde(default = "paper_lambda4")]
    pub lambda4: Vec<f32>,
    /// Targets that look like the query: of the target class, the database image whose
    /// thumbnail is closest to the query's (instead of a random one), the C4-aware choice.
    #[serde(default)]
    pub lookalike: bool,
    /// How many thumbnails L4 pulls towards: the closest to the query's among the images the
    /// target code retrieves (C4 averages over its `nearest` closest, 5 by default; 1 is the
    /// attacker of the first C4-aware runs).
    #[serde(default = "one_look")]
    pub looks: usize,
}

fn one_look() -> usize {
    1
}

fn paper_lambda4() -> Vec<f32> {
    vec![0.0]
}

impl Default for WhiteboxConfig {
    fn default() -> Self {
        Self {
            eps: 32.0 / 255.0,
            lambda1: vec![0.0, 0.0025, 0.005, 0.0075, 0.01, 0.02, 0.03],
            lambda2: vec![0.3, 3.0],
            table4_lambda1: 0.0075,
            apgd_steps: 200,
            restarts: 2,
            lambda4: paper_lambda4(),
            lookalike: false,
            looks: one_look(),
        }
    }
}

impl WhiteboxConfig {
    /// Checks the settings, naming the flag to fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |v: &f32| !(v.is_finite() && *v >= 0.0);
        if self.lambda1.is_empty() || self.lambda2.is_empty() {
            return Err(Error::InvalidArgument(
                "--lambda1 and --lambda2 need at least one value each".into(),
            ));
        }
        if self.lambda4.is_empty() {
            return Err(Error::InvalidArgument(
                "--lambda4 needs at least one value (0: the paper's attacker)".into(),
            ));
        }
        if self
            .lambda1
            .iter()
            .chain(&self.lambda2)
            .chain(&self.lambda4)
            .any(bad)
            || bad(&self.table4_lambda1)
        {
            return Err(Error::InvalidArgument(
                "--lambda1, --lambda2, --lambda4 and --table4-lambda1 must be non-negative numbers"
                    .into(),
            ));
        }
        if self.looks == 0 {
            return Err(Error::InvalidArgument("--looks must be at least 1".into()));
        }
        if self.apgd_steps > 0 && self.restarts == 0 {
            return Err(Error::InvalidArgument(
                "--restarts must be at least 1".into(),
            ));
        }
        if !(self.eps > 0.0 && self.eps <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "--whitebox-eps {} must be in (0, 1]",
                self.eps
            )));
        }
        Ok(())
    }

    /// The λ1 sweep, sorted, with Table 4's value in it.
    pub fn sweep(&self) -> Vec<f32> {
        let mut l1 = self.lambda1.clone();
        l1.push(self.table4_lambda1);
        l1.sort_by(f32::total_cmp);
        l1.dedup();
        l1
    }
}

/// A detector's figures against one white-box attack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorRates {
    /// Share of the adversarial queries flagged.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub detection_rate: f64,
    /// The same over the successful ones.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub detection_rate_successful: f64,
    /// ROC AUC against the held-out benign queries.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub auc: f64,
    /// TPR at FPR 0.1.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub tpr_at_fpr_0_1: f64,
    /// TPR at FPR 0.2.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub tpr_at_fpr_0_2: f64,
    /// Share flagged by each criterion.
    pub criterion_rates: Vec<f64>,
}

impl From<&Table1Row> for DetectorRates {
    fn from(o: &Table1Row) -> Self {
        Self {
            detection_rate: 1.0 - o.miss_rate,
            detection_rate_successful: 1.0 - o.miss_rate_successful,
            auc: o.auc,
            tpr_at_fpr_0_1: o.tpr_at_fpr_0_1,
            tpr_at_fpr_0_2: o.tpr_at_fpr_0_2,
            criterion_rates: o.criterion_rates.clone(),
        }
    }
}

/// Mean of eq. 13's terms over the queries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanTerms {
    /// L1, the distance to the target code.
    pub l1: f64,
    /// L2, minus the quantisation loss.
    pub l2: f64,
    /// L3, the distance to the blurred copy's code.
    pub l3: f64,
    /// L4, the thumbnail's RMS distance to the target's look (0 when λ4 = 0).
    #[serde(default)]
    pub l4: f64,
}

/// One white-box attack (a λ1, λ2 and step rule) and how the detectors fare against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WhiteboxPoint {
    /// λ1.
    pub lambda1: f64,
    /// λ2.
    pub lambda2: f64,
    /// λ4 (0: the paper's attacker).
    #[serde(default)]
    pub lambda4: f64,
    /// Fixed PGD or APGD.
    pub rule: StepRule,
    /// Iterations.
    pub steps: usize,
    /// Share of queries whose code got closer to the target than to the original.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub success_rate: f64,
    /// Share of queries both successful and not flagged by UMCD.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub successful_and_unflagged_by_umcd: f64,
    /// t-mAP of the clean queries.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub clean_t_map: f64,
    /// t-mAP of the adversarial queries.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub t_map: f64,
    /// Mean Hamming distance of adversarial to clean codes.
    #[serde(deserialize_with = "crate::experiments::nan_if_null")]
    pub mean_hamming_to_original: f64,
    /// Mean eq. 13 terms.
    pub mean_terms: MeanTerms,
    /// UMCD's figures.
    pub umcd: Option<DetectorRates>,
    /// AUC of each of UMCD's criteria alone.
    pub umcd_criterion_auc: Vec<f64>,
    /// MeanBlur's figures.
    pub meanblur: Option<DetectorRates>,
    /// UMCD with a two-sided C3 (C3 also flagged when unusually low), same budget rule.
    #[serde(default)]
    pub umcd_two_sided: Option<DetectorRates>,
    /// Share of queries both successful and not flagged by UMCD with the two-sided C3.
    #[serde(default)]
    pub successful_and_unflagged_by_two_sided: Option<f64>,
    /// UMCD with C4 (retrieval consistency) as a fourth criterion, same budget rule.
    #[serde(default)]
    pub umcd_with_c4: Option<DetectorRates>,
    /// Share of queries both successful and not flagged by UMCD + C4.
    #[serde(default)]
    pub successful_and_unflagged_by_with_c4: Option<f64>,
    /// AUC of C4 alone.
    #[serde(default)]
    pub c4_auc: Option<f64>,
}

/// Step count and size of a step rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSettings {
    /// Step size (fixed PGD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f32>,
    /// Iterations.
    pub steps: usize,
    /// Random restarts (APGD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<usize>,
}

/// `whitebox.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WhiteboxReport {
    /// The run attacked.
    pub run: PathBuf,
    /// Test queries.
    pub queries: usize,
    /// L∞ budget.
    pub eps: f32,
    /// The fixed-step attacker.
    pub pgd: StepSettings,
    /// The APGD attacker.
    pub apgd: StepSettings,
    /// Target FPR of the detectors.
    pub fpr: f64,
    /// Table 4's λ1.
    pub table4_lambda1: f64,
    /// Whether the targets were look-alikes ([`WhiteboxConfig::lookalike`]).
    #[serde(default)]
    pub lookalike: bool,
    /// Thumbnails per target L4 pulls towards ([`WhiteboxConfig::looks`]; reports from
    /// before the setting used 1).
    #[serde(default = "one_look")]
    pub looks: usize,
    /// How UMCD's k and blur were chosen.
    pub umcd: Selection,
    /// The sweep (Fig. 5), every λ2 × λ1.
    pub points: Vec<WhiteboxPoint>,
    /// The APGD attacker at Table 4's λ1, per λ2.
    pub apgd_points: Vec<WhiteboxPoint>,
    /// What computed it.
    pub backend: BackendInfo,
}

/// An `f32` setting as the decimal a person typed (0.3, not 0.30000001192092896).
pub fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Runs the white-box study on `run`'s queries: UMCD (also with C4) and MeanBlur calibrated as
/// in `detection`, every λ2 × λ1 with fixed steps, then APGD at Table 4's λ1.
pub fn run_whitebox(
    run: &OpenedRun,
    index: &HammingIndex,
    detection: &DetectionConfig,
    config: &WhiteboxConfig,
    backend: BackendInfo,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<WhiteboxReport> {
    config.validate()?;
    if config.looks > detection.c4.neighbours {
        return Err(Error::InvalidArgument(format!(
            "--looks {}: C4 compares with {} neighbours (--c4-neighbours), so at most that many \
             looks",
            config.looks, detection.c4.neighbours
        )));
    }
    let bench = DetectionBench::prepare(
        run,
        index,
        detection,
        Some(&["MeanBlur", Consistency::NAME]),
        device,
        progress,
    )?;
    // Each query's target: a label it lacks and one benign database image's code of it (the
    // "benign neighbour" of eq. 10; a vote over one code is that code).
    let mut rng = ChaCha8Rng::seed_from_u64(detection.seed ^ 0xB0C5);
    let mut targets = dhta_targets(
        &bench.query_labels(),
        index.codes(),
        &bench.db_labels,
        None,
        1,
        &mut rng,
    )?;
    if config.lookalike || config.lambda4.iter().any(|&l| l != 0.0) {
        give_looks(run, &bench, &mut targets, config.lookalike, config.looks)?;
    }
    let base = AttackSpec {
        step: detection.step,
        ..AttackSpec::new(AttackKind::Adaptive)
    }
    .with_eps(config.eps)
    .with_steps(detection.steps);
    let spec = |lambda1, lambda2, lambda4, rule, steps| AttackSpec {
        adaptive: AdaptiveWeights {
            lambda1,
            lambda2,
            blur: bench.umcd.blur,
            lambda4,
        },
        rule,
        ..base.with_steps(steps)
    };
    let mut points = Vec::new();
    for &lambda2 in &config.lambda2 {
        for &lambda4 in &config.lambda4 {
            for &lambda1 in &config.sweep() {
                let s = spec(lambda1, lambda2, lambda4, StepRule::Fixed, detection.steps);
                points.push(point(&bench, &targets, &s, progress)?);
            }
        }
    }
    let mut apgd_points = Vec::new();
    if config.apgd_steps > 0 {
        let rule = StepRule::Apgd {
            restarts: config.restarts,
        };
        for &lambda2 in &config.lambda2 {
            for &lambda4 in &config.lambda4 {
                let s = spec(
                    config.table4_lambda1,
                    lambda2,
                    lambda4,
                    rule,
                    config.apgd_steps,
                );
                apgd_points.push(point(&bench, &targets, &s, progress)?);
            }
        }
    }
    Ok(WhiteboxReport {
        run: run.dir.root().to_path_buf(),
        queries: bench.queries.len(),
        eps: config.eps,
        pgd: StepSettings {
            step: Some(base.step),
            steps: base.steps,
            restarts: None,
        },
        apgd: StepSettings {
            step: None,
            steps: config.apgd_steps,
            restarts: Some(config.restarts),
        },
        fpr: detection.fpr,
        table4_lambda1: decimal(config.table4_lambda1),
        lookalike: config.lookalike,
        looks: config.looks,
        umcd: bench.selection.clone(),
        points,
        apgd_points,
        backend,
    })
}

/// Gives every target `looks` looks for the C4-aware attacker: the thumbnails, among the
/// database images C4 would compare the query with once its code sits on the target (the
/// target code's `c4.neighbours` nearest), closest to the query's own. With `lookalike` the
/// target itself is first re-chosen: of its class, the database image whose thumbnail is
/// closest to the query's, its code the new anchor.
fn give_looks(
    run: &OpenedRun,
    bench: &DetectionBench<'_>,
    targets: &mut [crate::attacks::Target],
    lookalike: bool,
    looks: usize,
) -> Result<()> {
    let shape = bench.shape();
    let c4 = bench.config.c4;
    let thumbs = match &bench.c4_thumbnails {
        Some(t) => t.clone(),
        None => Arc::new(Thumbnails::of_images(
            &run.split.database,
            shape,
            c4.grid,
            |ids| run.set.pixels_f32(ids),
        )),
    };
    let distance =
        |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f32>();
    let codes = bench.index.codes();
    for (i, t) in targets.iter_mut().enumerate() {
        let q = thumbnail(
            &bench.q_pixels[i * shape.len()..(i + 1) * shape.len()],
            shape,
            c4.grid,
        );
        let closest = |items: &mut dyn Iterator<Item = usize>| {
            items.min_by(|&a, &b| {
                distance(thumbs.get(a), &q).total_cmp(&distance(thumbs.get(b), &q))
            })
        };
        if lookalike {
            let j =
                closest(&mut (0..thumbs.count()).filter(|&j| bench.db_labels[j].contains(t.label)))
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("no database image of class {}", t.label))
                    })?;
            t.anchor = codes.signs(j);
        }
        let anchor = PackedCodes::from_signs(codes.bits(), &t.anchor);
        let mut near: Vec<(f32, usize)> = bench
            .index
            .top_k(anchor.code(0), c4.neighbours)
            .iter()
            .map(|n| (distance(thumbs.get(n.index), &q), n.index))
            .collect();
        if near.len() < looks {
            return Err(Error::InvalidArgument(format!(
                "the database has {} images, fewer than --looks {looks}",
                near.len()
            )));
        }
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        t.looks = near[..looks]
            .iter()
            .map(|&(_, j)| thumbs.get(j).to_vec())
            .collect();
    }
    Ok(())
}

/// One white-box attack over the test queries, scored by MeanBlur and UMCD.
fn point(
    bench: &DetectionBench<'_>,
    targets: &[crate::attacks::Target],
    spec: &AttackSpec,
    progress: &mut dyn Progress,
) -> Result<WhiteboxPoint> {
    let campaign = bench.attack(spec, Some(targets), progress)?;
    let n = bench.queries.len().max(1) as f64;
    let t_labels: Vec<LabelSet> = targets.iter().map(|t| LabelSet::single(t.label)).collect();
    let t_map = |codes: &PackedCodes| {
        evaluate_retrieval(codes, &t_labels, bench.index, &bench.db_labels, &[]).map(|m| m.map_all)
    };
    let (clean_t_map, adv_t_map) = (t_map(&campaign.clean_codes)?, t_map(&campaign.adv_codes)?);
    let mean_terms = |i: usize| campaign.terms.iter().map(|t| t[i] as f64).sum::<f64>() / n;
    let mean_terms = MeanTerms {
        l1: mean_terms(0),
        l2: mean_terms(1),
        l3: mean_terms(2),
        l4: mean_terms(3),
    };
    let mut crafted = Crafted {
        label: spec.label(),
        spec: *spec,
        mean_hamming_to_original: campaign.mean_hamming_to_original(),
        pixels: campaign.adversarial,
        success: campaign.success,
        clean_map: clean_t_map,
        adv_map: adv_t_map,
        scores: Vec::new(),
    };
    let outcomes = bench.evaluate(&mut crafted, progress)?;
    let u = bench.detectors.len() - 1;
    let (benign, adv) = (&bench.benign_test[u], &crafted.scores[u]);
    let umcd_criterion_auc: Vec<f64> = (0..benign.criteria.len())
        .map(|k| auc(&benign.oriented(k), &adv.oriented(k)))
        .collect();
    let evaded = |flags: Vec<Decision>| {
        crafted
            .success
            .iter()
            .zip(&flags)
            .filter(|(s, d)| **s && !d.adversarial)
            .count() as f64
            / n
    };
    let evaded_two_sided = bench
        .two_sided()
        .map(|v| Ok::<_, Error>(evaded(v.calibration.decide(&v.scores(adv, None)?))))
        .transpose()?;
    let with_c4 = bench.umcd_variants.iter().find(|v| v.name == WITH_C4);
    let evaded_with_c4 = with_c4
        .map(|v| {
            let scores = bench.variant_scores(v, &crafted.scores)?;
            Ok::<_, Error>(evaded(v.calibration.decide(&scores)))
        })
        .transpose()?;
    let c4_auc = bench
        .detectors
        .iter()
        .position(|d| d.name() == Consistency::NAME)
        .map(|i| {
            auc(
                &bench.benign_test[i].oriented(0),
                &crafted.scores[i].oriented(0),
            )
        });
    let evaded = evaded(bench.calibrations[u].decide(adv));
    let find = |name: &str| outcomes.iter().find(|o| o.detector == name);
    let success_rate = crafted.success_rate();
    progress.log(&format!(
        "{}: success {:.1}%, UMCD detects {:.1}% (two-sided C3 {:.1}%, with C4 {:.1}%), successful and unflagged {:.1}% (with C4 {:.1}%), t-mAP {adv_t_map:.3}",
        crafted.label,
        100.0 * success_rate,
        100.0 * (1.0 - find("UMCD").map_or(f64::NAN, |o| o.miss_rate)),
        100.0 * (1.0 - find(TWO_SIDED).map_or(f64::NAN, |o| o.miss_rate)),
        100.0 * (1.0 - find(WITH_C4).map_or(f64::NAN, |o| o.miss_rate)),
        100.0 * evaded,
        100.0 * evaded_with_c4.unwrap_or(f64::NAN)
    ));
    Ok(WhiteboxPoint {
        lambda1: decimal(spec.adaptive.lambda1),
        lambda2: decimal(spec.adaptive.lambda2),
        lambda4: decimal(spec.adaptive.lambda4),
        rule: spec.rule,
        steps: spec.steps,
        success_rate,
        successful_and_unflagged_by_umcd: evaded,
        clean_t_map,
        t_map: adv_t_map,
        mean_hamming_to_original: crafted.mean_hamming_to_original,
        mean_terms,
        umcd: find("UMCD").map(DetectorRates::from),
        umcd_criterion_auc,
        meanblur: find("MeanBlur").map(DetectorRates::from),
        umcd_two_sided: find(TWO_SIDED).map(DetectorRates::from),
        successful_and_unflagged_by_two_sided: evaded_two_sided,
        umcd_with_c4: find(WITH_C4).map(DetectorRates::from),
        successful_and_unflagged_by_with_c4: evaded_with_c4,
        c4_auc,
    })
}

/// `whitebox.md`: the Fig. 5 data and Table 4, laid out like the paper's.
pub fn whitebox_markdown(r: &WhiteboxReport) -> String {
    let pct = |v: Option<f64>| v.map_or("–".into(), |x| format!("{:.1}", 100.0 * x));
    let f3 = |v: Option<f64>| v.map_or("–".into(), |x| format!("{x:.3}"));
    let step = r.pgd.step.unwrap_or(0.0);
    let mut s = format!(
        "# White-box attacker vs UMCD (eq. 13)\n\n{} queries, eps {:.0}/255, PGD step {:.0}/255, \
         {} steps, targets: the code of one benign database image of a class the query lacks; BPDA \
         through the mean blur{}. Detection at a {:.0}% FPR calibrated on benign images. λ4 \
         weighs L4, the thumbnail's mean distance to the {} thumbnail(s) closest to it among what \
         the target retrieves (against C4; 0 is the paper's attacker).\n\n\
         ## Fig. 5 analogue\n\n| λ2 | λ4 | λ1 | success % | UMCD detects % | successful & unflagged % | \
         AUC C1 | AUC C2 | AUC C3 | two-sided C3: detects % | successful & unflagged % | \
         UMCD + C4: detects % | successful & unflagged % | AUC C4 | MeanBlur detects % |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        r.queries,
        r.eps * 255.0,
        step * 255.0,
        r.pgd.steps,
        if r.lookalike {
            "; look-alike targets (of the target class, the database image whose thumbnail is \
             closest to the query's)"
        } else {
            ""
        },
        100.0 * r.fpr,
        r.looks
    );
    let auc = |p: &WhiteboxPoint, i: usize| f3(p.umcd_criterion_auc.get(i).copied());
    for p in &r.points {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.lambda2,
            p.lambda4,
            p.lambda1,
            pct(Some(p.success_rate)),
            pct(p.umcd.as_ref().map(|d| d.detection_rate)),
            pct(Some(p.successful_and_unflagged_by_umcd)),
            auc(p, 0),
            auc(p, 1),
            auc(p, 2),
            pct(p.umcd_two_sided.as_ref().map(|d| d.detection_rate)),
            pct(p.successful_and_unflagged_by_two_sided),
            pct(p.umcd_with_c4.as_ref().map(|d| d.detection_rate)),
            pct(p.successful_and_unflagged_by_with_c4),
            f3(p.c4_auc),
            pct(p.meanblur.as_ref().map(|d| d.detection_rate)),
        ));
    }
    s.push_str(&format!(
        "\nFigures fig5_lambda2_*.png (and .svg): x = λ1 from 0 to the largest swept value; \
         success rate, UMCD detection rate and the AUC of C1, C2 and C3, with a legend.\n\n\
         ## Table 4 analogue (λ1 = {})\n\n| Attacker | λ2 | λ4 | Detector | TPR @ FPR 0.1 | TPR @ FPR 0.2 | success % |\n\
         |---|---:|---:|---|---:|---:|---:|\n",
        r.table4_lambda1
    ));
    let apgd = format!("APGD-{}x{}", r.apgd.steps, r.apgd.restarts.unwrap_or(0));
    let rows = r
        .points
        .iter()
        .filter(|p| p.lambda1 == r.table4_lambda1)
        .map(|p| (format!("PGD-{}", r.pgd.steps), p))
        .chain(r.apgd_points.iter().map(|p| (apgd.clone(), p)));
    for (attacker, p) in rows {
        for (name, rates) in [
            ("UMCD", &p.umcd),
            (TWO_SIDED, &p.umcd_two_sided),
            (WITH_C4, &p.umcd_with_c4),
            ("MeanBlur", &p.meanblur),
        ] {
            s.push_str(&format!(
                "| {attacker} | {} | {} | {name} | {} | {} | {} |\n",
                p.lambda2,
                p.lambda4,
                f3(rates.as_ref().map(|d| d.tpr_at_fpr_0_1)),
                f3(rates.as_ref().map(|d| d.tpr_at_fpr_0_2)),
                pct(Some(p.success_rate)),
            ));
        }
    }
    s.push_str(
        "\nThe paper (CIFAR-10, ResNet-50): UMCD 0.956 / 0.979, MeanBlur 0.034 / 0.048 at FPR \
         0.1 / 0.2.\n",
    );
    s
}
