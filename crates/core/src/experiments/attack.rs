//! The attack experiment behind `hashguard attack`: an [`AttackSpec`] run on a trained run's
//! queries (or a seeded subset), measured as mAP or t-mAP before and after, success rate,
//! perturbation norms and — for untargeted codes — the UMCD paper's Theorem 1.

use std::path::PathBuf;

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::BackendInfo;
use super::campaign::{Campaign, Images, run_campaign};
use super::goals::attack_goals;
use super::spec::{AttackKind, AttackSpec, CwSettings};
use crate::attacks::{AdaptiveWeights, StepRule, Target};
use crate::data::LabelSet;
use crate::metrics::evaluate_retrieval;
use crate::retrieval::{HammingIndex, hamming};
use crate::run::OpenedRun;
use crate::{Error, Result};

/// What `hashguard attack` runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackConfig {
    /// The attack.
    pub spec: AttackSpec,
    /// Attack only this many queries (a seeded random subset); `None`: all.
    pub queries: Option<usize>,
    /// Images per attack batch.
    pub batch_size: usize,
    /// Seed of the query subset, the targets and anchors, and the random starts.
    pub seed: u64,
}

/// Theorem 1 of the UMCD paper checked on untargeted adversarial codes: their Hamming distances
/// to database codes of other classes against the predicted `N(K(1 − p), K p (1 − p))`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Theorem1 {
    /// `p = C / (2 (C − 1))` for C classes.
    pub p: f64,
    /// `K (1 − p)`.
    pub predicted_mean: f64,
    /// `K p (1 − p)`.
    pub predicted_var: f64,
    /// Mean of the observed distances.
    pub observed_mean: f64,
    /// Variance of the observed distances.
    pub observed_var: f64,
    /// Count of each distance 0..=K.
    pub histogram: Vec<u64>,
}

/// The JSON report of `hashguard attack` (fields documented in the README, "Attacks").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackReport {
    /// `pgd`, `hag`, `dhta` or `cw`.
    pub method: AttackKind,
    /// The run attacked.
    pub run: PathBuf,
    /// Its data set.
    pub dataset: String,
    /// Code length K.
    pub bits: usize,
    /// Queries attacked.
    pub queries: usize,
    /// L∞ budget (pixel units; unused by CW).
    pub eps: f32,
    /// PGD step.
    pub step: f32,
    /// Iterations (CW: Adam steps per round).
    pub steps: usize,
    /// PGD started from a random point of the ball.
    pub random_start: bool,
    /// Independent PGD runs per image, the best kept.
    pub restarts: usize,
    /// Relaxation α.
    pub relax: f32,
    /// mAP over the whole database of the clean queries.
    pub clean_map: f64,
    /// mAP@1000 of the clean queries.
    pub clean_map_at_1000: Option<f64>,
    /// Untargeted: mAP of the adversarial queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adv_map: Option<f64>,
    /// Untargeted: mAP@1000 of the adversarial queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adv_map_at_1000: Option<f64>,
    /// Targeted: mAP of the adversarial queries with the target labels as ground truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_map: Option<f64>,
    /// Targeted: the same for the clean queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_t_map: Option<f64>,
    /// Targeted: database codes voting for each anchor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_t: Option<usize>,
    /// Targeted: α ramped over the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha_schedule: Option<bool>,
    /// HAG's bit-balance weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hag_beta: Option<f32>,
    /// CW's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cw: Option<CwSettings>,
    /// The white-box attacker's weights and blur.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveWeights>,
    /// The white-box attacker's step rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<StepRule>,
    /// Share of successful attacks.
    pub success_rate: f64,
    /// The success rule, in words.
    pub success: String,
    /// Mean L∞ norm of the perturbations.
    pub mean_linf: f64,
    /// Mean L2 norm of the perturbations.
    pub mean_l2: f64,
    /// Mean Hamming distance of adversarial to clean codes.
    pub mean_hamming_to_original: f64,
    /// Theorem 1 on the adversarial codes (untargeted attacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theorem1: Option<Theorem1>,
    /// What computed it.
    pub backend: BackendInfo,
    /// Wall time of the attack itself.
    pub attack_seconds: f64,
    /// The seed.
    pub seed: u64,
    /// The configuration the attack ran with, whole, so the attack can be re-run from its
    /// report alone (`hashguard export --attack`); absent in reports written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<AttackConfig>,
    /// Fingerprint of the model attacked (`model.bpk`); absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Everything an attack run leaves for figures: the report, the queries attacked (indices into
/// the run's data set), their labels and targets, and the campaign's images and codes.
pub struct AttackOutcome {
    /// The report.
    pub report: AttackReport,
    /// Data-set indices of the attacked queries.
    pub queries: Vec<usize>,
    /// Their labels.
    pub query_labels: Vec<LabelSet>,
    /// Targeted attacks' goals.
    pub targets: Option<Vec<Target>>,
    /// Adversarial images, codes, success and norms.
    pub campaign: Campaign,
}

/// Draws `n` of `pool` with `rng` (sorted), or returns all of `pool` when `n` is `None`.
pub fn subset(pool: &[usize], n: Option<usize>, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
    let mut out = pool.to_vec();
    if let Some(n) = n {
        if n == 0 || n > out.len() {
            return Err(Error::InvalidArgument(format!(
                "--queries {n} must be between 1 and {}",
                out.len()
            )));
        }
        out.shuffle(rng);
        out.truncate(n);
        out.sort_unstable();
    }
    Ok(out)
}

/// Runs `config` on `run`'s queries against its database `index` (codes of
/// `run.split.database`). `on_step` ticks [`AttackSpec::total_steps`] times per batch.
pub fn run_attack(
    run: &OpenedRun,
    index: &HammingIndex,
    config: &AttackConfig,
    backend: BackendInfo,
    device: &Device,
    on_step: impl FnMut(),
) -> Result<AttackOutcome> {
    let spec = &config.spec;
    spec.validate()?;
    let set = &run.set;
    let bits = run.bits();
    let db_labels = run.labels(&run.split.database);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // A fixed target can only be attacked towards from queries without that label.
    let pool: Vec<usize> = match (spec.kind.is_targeted(), spec.target.label) {
        (true, Some(t)) => run
            .split
            .query
            .iter()
            .copied()
            .filter(|&i| !set.labels[i].contains(t))
            .collect(),
        _ => run.split.query.clone(),
    };
    if pool.is_empty() {
        return Err(Error::InvalidArgument(
            "no query lacks the target label: choose another --target".into(),
        ));
    }
    let queries = subset(&pool, config.queries, &mut rng)?;
    let q_labels = run.labels(&queries);
    let targets = attack_goals(spec, &q_labels, index.codes(), &db_labels, &mut rng)?;

    let start = web_time::Instant::now();
    let pixels = set.pixels_f32(&queries);
    let campaign = run_campaign(
        &run.model,
        Images {
            pixels: &pixels,
            shape: set.shape(),
        },
        spec,
        targets.as_deref(),
        config.batch_size,
        config.seed,
        device,
        on_step,
    )?;
    let attack_seconds = start.elapsed().as_secs_f64();

    let ks = [1000];
    let clean = evaluate_retrieval(&campaign.clean_codes, &q_labels, index, &db_labels, &ks)?;
    let adv = evaluate_retrieval(&campaign.adv_codes, &q_labels, index, &db_labels, &ks)?;
    let t_map = match &targets {
        Some(ts) if spec.kind.is_targeted() => {
            let t_labels: Vec<LabelSet> = ts.iter().map(|t| LabelSet::single(t.label)).collect();
            let map = |codes| -> Result<f64> {
                Ok(evaluate_retrieval(codes, &t_labels, index, &db_labels, &ks)?.map_all)
            };
            Some((map(&campaign.clean_codes)?, map(&campaign.adv_codes)?))
        }
        _ => None,
    };
    let n = campaign.stats.len().max(1) as f64;
    let mean = |f: &dyn Fn(&crate::attacks::SampleStats) -> f64| {
        campaign.stats.iter().map(f).sum::<f64>() / n
    };
    let untargeted = !spec.kind.is_targeted();
    let report = AttackReport {
        method: spec.kind,
        run: run.dir.root().to_path_buf(),
        dataset: run.config.data.dataset.clone(),
        bits,
        queries: queries.len(),
        eps: spec.eps,
        step: spec.step,
        steps: spec.steps,
        random_start: spec.random_start,
        restarts: spec.restarts,
        relax: spec.relax,
        clean_map: clean.map_all,
        clean_map_at_1000: clean.map_at(1000),
        adv_map: untargeted.then_some(adv.map_all),
        adv_map_at_1000: if untargeted { adv.map_at(1000) } else { None },
        t_map: t_map.map(|t| t.1),
        clean_t_map: t_map.map(|t| t.0),
        n_t: (!untargeted).then_some(spec.target.n_t),
        alpha_schedule: (!untargeted).then_some(spec.alpha_schedule),
        hag_beta: (spec.kind == AttackKind::Hag).then_some(spec.hag_beta),
        cw: (spec.kind == AttackKind::Cw).then_some(spec.cw),
        adaptive: (spec.kind == AttackKind::Adaptive).then_some(spec.adaptive),
        rule: (spec.kind == AttackKind::Adaptive).then_some(spec.rule),
        success_rate: campaign.success_rate(),
        success: if untargeted {
            "Hamming(h(x'), h(x)) > K/2".into()
        } else {
            "Hamming(h(x'), anchor) < Hamming(h(x'), h(x))".into()
        },
        mean_linf: mean(&|s| s.linf as f64),
        mean_l2: mean(&|s| s.l2 as f64),
        mean_hamming_to_original: mean(&|s| s.hamming_to_original as f64),
        theorem1: untargeted
            .then(|| theorem1(&campaign, &q_labels, index, &db_labels, set.num_classes())),
        backend,
        attack_seconds,
        seed: config.seed,
        config: Some(config.clone()),
        model: Some(run.model_fingerprint()?),
    };
    Ok(AttackOutcome {
        report,
        queries,
        query_labels: q_labels,
        targets,
        campaign,
    })
}

/// Theorem 1 (UMCD): distances from untargeted adversarial codes to other classes' database
/// codes follow N(K(1 − p), K p (1 − p)), p = C / (2 (C − 1)).
fn theorem1(
    campaign: &Campaign,
    q_labels: &[LabelSet],
    index: &HammingIndex,
    db_labels: &[LabelSet],
    classes: usize,
) -> Theorem1 {
    let bits = campaign.adv_codes.bits();
    let c = classes as f64;
    let p = c / (2.0 * (c - 1.0));
    let mut counts = vec![0u64; bits + 1];
    for (q, ql) in q_labels.iter().enumerate() {
        for (d, l) in db_labels.iter().enumerate() {
            if !l.shares(*ql) {
                counts[hamming(campaign.adv_codes.code(q), index.codes().code(d)) as usize] += 1;
            }
        }
    }
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let moment = |f: &dyn Fn(f64) -> f64| {
        counts
            .iter()
            .enumerate()
            .map(|(d, &n)| f(d as f64) * n as f64)
            .sum::<f64>()
            / total
    };
    let m = moment(&|d| d);
    let var = moment(&|d| (d - m).powi(2));
    let k = bits as f64;
    Theorem1 {
        p,
        predicted_mean: k * (1.0 - p),
        predicted_var: k * p * (1.0 - p),
        observed_mean: m,
        observed_var: var,
        histogram: counts,
    }
}
