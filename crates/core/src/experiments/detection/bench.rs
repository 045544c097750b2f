//! The detection bench: benign calibration data drawn from the database, UMCD's k and blur
//! chosen on it, every detector calibrated at the target FPR and scored on held-out benign
//! queries; then attacks crafted (or taken from the example cache) and scored against it.

use std::collections::HashSet;
use std::sync::Arc;

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::protocols::{SUPERVISED_FOLDS, SupervisedLid};
use super::{
    AttackSummary, Crafted, DetectionConfig, DetectorSummary, ScoreDump, ScoresDump, Selection,
    Table1Row, Table2Row, TableRate,
};
use crate::attacks::Target;
use crate::data::LabelSet;
use crate::detectors::{
    BudgetRule, Calibration, Consistency, Detector, FeatureSqueeze, ImageBatch, Lid, Scores,
    Thumbnails, Umcd, UmcdConfig, calibrate, calibrate_with, select_blur, select_k,
    two_sided_weights, with_low_c3,
};
use crate::experiments::cache::{self, CachedAttack};
use crate::experiments::{
    AttackKind, AttackSpec, Campaign, Images, Progress, attack_goals, run_campaign, subset,
};
use crate::filters::{Filter, ImageShape};
use crate::metrics::{auc, evaluate_retrieval, tpr_at_fpr};
use crate::model::HashNet;
use crate::retrieval::{HammingIndex, PackedCodes};
use crate::run::{OpenedRun, fingerprint};
use crate::{Error, Result};

/// Images per batch when scoring adversarial examples.
const SCORE_BATCH: usize = 64;

/// Benign data, detectors and their calibrations, ready to score attacks.
pub struct DetectionBench<'a> {
    /// The run under test.
    pub run: &'a OpenedRun,
    /// Its database codes.
    pub index: &'a HammingIndex,
    /// The settings.
    pub config: DetectionConfig,
    /// Labels of the database items.
    pub db_labels: Vec<LabelSet>,
    /// Data-set indices of the test queries.
    pub queries: Vec<usize>,
    /// Their pixels, row-major.
    pub q_pixels: Vec<f32>,
    /// The detectors, UMCD last.
    pub detectors: Vec<Box<dyn Detector + 'a>>,
    /// Each detector's calibration.
    pub calibrations: Vec<Calibration>,
    /// Each detector's scores of the benign calibration images.
    pub benign_cal: Vec<Scores>,
    /// Each detector's scores of the clean test queries (held-out benign).
    pub benign_test: Vec<Scores>,
    /// UMCD recalibrated on the same benign scores (same k and blur) under the budget rule
    /// not chosen, and with a two-sided C3 under the chosen one: rows beside UMCD's.
    pub umcd_variants: Vec<UmcdVariant>,
    /// Supervised LID's per-layer features of the benign images (when LID is among the
    /// detectors).
    pub supervised_lid: Option<SupervisedLid>,
    /// The database thumbnails C4 compares with (when C4 is among the detectors).
    pub c4_thumbnails: Option<Arc<Thumbnails>>,
    /// UMCD's k and blur.
    pub umcd: UmcdConfig,
    /// How they were chosen.
    pub selection: Selection,
    device: Device,
    model_id: String,
}

impl<'a> DetectionBench<'a> {
    /// Chooses UMCD's k and blur and calibrates the detectors on benign data: every detector
    /// of Table 1 with `baselines` `None`, else the named baselines, and UMCD last.
    pub fn prepare(
        run: &'a OpenedRun,
        index: &'a HammingIndex,
        config: &DetectionConfig,
        baselines: Option<&[&str]>,
        device: &Device,
        progress: &mut dyn Progress,
    ) -> Result<Self> {
        config.validate()?;
        let c = config;
        let wanted = |name: &str| baselines.is_none_or(|b| b.contains(&name));
        let (model, set, split) = (&run.model, &run.set, &run.split);
        let shape = set.shape();
        let db_labels = run.labels(&split.database);
        let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
        let queries = subset(&split.query, c.queries, &mut rng)?;
        let need = c.calibration + c.lid_reference;
        if c.calibration < 100 || need > split.database.len() {
            return Err(Error::InvalidArgument(format!(
                "--calibration {} + --lid-reference {} must leave at least 100 calibration images \
                 within the {} database images",
                c.calibration,
                c.lid_reference,
                split.database.len()
            )));
        }
        if let Some(k) = c.k
            && (k == 0 || k >= index.len())
        {
            return Err(Error::InvalidArgument(format!(
                "--k: k = {k} must lie between 1 and the database size minus one ({})",
                index.len() - 1
            )));
        }
        let mut positions: Vec<usize> = (0..split.database.len()).collect();
        positions.shuffle(&mut rng);
        let lid_pos = positions[..c.lid_reference].to_vec();
        let cal_pos = positions[c.lid_reference..need].to_vec();
        let trained: HashSet<usize> = split.train.iter().copied().collect();
        let cal_trained = cal_pos
            .iter()
            .filter(|&&p| trained.contains(&split.database[p]))
            .count();
        let cal_ids: Vec<usize> = cal_pos.iter().map(|&p| split.database[p]).collect();
        let cal_pixels = set.pixels_f32(&cal_ids);
        let cal_positions: Vec<Option<usize>> = cal_pos.iter().map(|&p| Some(p)).collect();
        let q_pixels = set.pixels_f32(&queries);
        progress.log(&format!(
            "calibrating on {} benign database images ({} of them training images), testing on {} queries",
            cal_ids.len(),
            cal_trained,
            queries.len()
        ));

        // UMCD's free parameters, chosen on benign calibration data only.
        progress.phase("choose", 4);
        let (blur, blur_table) = match c.blur {
            Some(b) => (b, Vec::new()),
            None => select_blur(
                model,
                index,
                &db_labels,
                &cal_pixels,
                &cal_pos,
                shape,
                c.blur_tolerance,
                c.batch_size,
                device,
                || progress.inc(1),
            )?,
        };
        let (k, k_table) = match c.k {
            Some(k) => (k, Vec::new()),
            None => {
                let images = Images {
                    pixels: &cal_pixels,
                    shape,
                };
                let packed = images.codes(model, c.batch_size, device)?;
                select_k(
                    index,
                    &packed,
                    &cal_positions,
                    set.num_classes(),
                    c.c1_budget(),
                )?
            }
        };
        progress.finish();
        let umcd = UmcdConfig { k, blur };
        progress.log(&format!("UMCD: k = {k}, blur {blur}x{blur}"));

        let lid_ids: Vec<usize> = lid_pos.iter().map(|&p| split.database[p]).collect();
        let mut detectors: Vec<Box<dyn Detector + 'a>> = Vec::new();
        let mut supervised_lid = None;
        if wanted("LID") {
            let lid_pixels = set.pixels_f32(&lid_ids);
            let (lid, calibration) = Lid::fit_scored(
                model,
                loose(&lid_pixels, shape),
                loose(&cal_pixels, shape),
                c.lid_k,
                c.batch_size,
                device,
            )?;
            let benign = lid.layer_scores(model, loose(&q_pixels, shape), c.batch_size, device)?;
            supervised_lid = Some(SupervisedLid {
                calibration,
                benign,
                lid: lid.clone(),
            });
            detectors.push(Box::new(lid));
        }
        for (name, filter) in [
            ("FS-Median", Filter::Median { size: 2 }),
            (
                "FS-NLM",
                Filter::NonLocalMeans {
                    search: 13,
                    patch: 3,
                    h: 2.0,
                },
            ),
            ("FS-Adaptive", Filter::Adaptive),
            ("MeanBlur", Filter::MeanBlur { size: blur }),
        ] {
            if wanted(name) {
                detectors.push(Box::new(FeatureSqueeze::new(name, filter)?));
            }
        }
        let mut c4_thumbnails = None;
        if wanted(Consistency::NAME) {
            let config = c.c4;
            let thumbnails = Arc::new(Thumbnails::of_images(
                &split.database,
                shape,
                config.grid,
                |ids| set.pixels_f32(ids),
            ));
            c4_thumbnails = Some(thumbnails.clone());
            detectors.push(Box::new(Consistency {
                config,
                index,
                thumbnails,
            }));
        }
        detectors.push(Box::new(Umcd {
            config: umcd,
            index,
        }));
        progress.phase(
            "benign",
            (detectors.len() * (cal_ids.len() + queries.len())) as u64,
        );
        let mut benign_cal = Vec::new();
        let mut benign_test = Vec::new();
        let mut calibrations = Vec::new();
        for det in &detectors {
            progress.message(&det.name());
            let calibration = ImageBatch {
                pixels: &cal_pixels,
                shape,
                database_positions: Some(&cal_positions),
            };
            let test = loose(&q_pixels, shape);
            let (cal, test) = match supervised_lid.as_ref().filter(|_| det.name() == "LID") {
                // LID's benign scores are the means of the layer scores already computed.
                Some(sup) => {
                    progress.inc((cal_ids.len() + queries.len()) as u64);
                    let lid = &sup.lid;
                    let cal = lid.scores_from_layers(&sup.calibration);
                    (cal, lid.scores_from_layers(&sup.benign))
                }
                None => {
                    let d = det.as_ref();
                    let cal = score_all(d, model, calibration, c.batch_size, device, progress)?;
                    let test = score_all(d, model, test, c.batch_size, device, progress)?;
                    (cal, test)
                }
            };
            let umcd = det.name() == "UMCD";
            let weights = umcd.then_some(c.fpr_weights.as_deref()).flatten();
            let rule = if umcd { c.budget } else { BudgetRule::Shares };
            calibrations.push(calibrate_with(&cal, c.fpr, weights, rule)?);
            benign_cal.push(cal);
            benign_test.push(test);
        }
        progress.finish();
        let u = detectors.len() - 1;
        let c4 = detectors.iter().position(|d| d.name() == Consistency::NAME);
        let c4_cal = c4.map(|i| &benign_cal[i]);
        let mut umcd_variants = other_rules(c.budget)
            .map(|rule| {
                let (name, cols) = (rule_name(rule), VariantColumns::Umcd);
                UmcdVariant::fit(name, cols, &benign_cal[u], None, c, rule)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut extra = vec![(TWO_SIDED, VariantColumns::TwoSidedC3)];
        if c4.is_some() {
            extra.push((WITH_C4, VariantColumns::WithC4));
        }
        for (name, cols) in extra {
            let v = UmcdVariant::fit(name.into(), cols, &benign_cal[u], c4_cal, c, c.budget)?;
            umcd_variants.push(v);
        }
        let mut held_out = Vec::new();
        for ((det, cal), test) in detectors.iter().zip(&calibrations).zip(&benign_test) {
            held_out.push((det.name(), cal, cal.flag_rate(test)));
        }
        let c4_test = c4.map(|i| &benign_test[i]);
        for v in &umcd_variants {
            let fpr = v
                .calibration
                .flag_rate(&v.scores(&benign_test[u], c4_test)?);
            held_out.push((v.name.clone(), &v.calibration, fpr));
        }
        for (name, cal, fpr) in held_out {
            progress.log(&format!(
                "{name:>20}: held-out benign FPR {:.2}% (target {:.0}%, calibration {:.2}%)",
                100.0 * fpr,
                100.0 * c.fpr,
                100.0 * cal.calibration_fpr
            ));
        }
        let selection = Selection {
            k,
            k_rule: "largest Theorem-1 margin: predicted adversarial top-k mean minus the benign C1 \
                     value where the budget rule puts C1's threshold (its share of the FPR, or just \
                     above a point mass)"
                .into(),
            k_candidates: k_table,
            blur,
            blur_rule: format!(
                "largest window whose blurred calibration images lose at most {} of precision@100",
                c.blur_tolerance
            ),
            blur_candidates: blur_table,
            fpr_weights: c.fpr_weights.clone().unwrap_or_else(|| vec![1.0, 1.0, 1.0]),
            calibration_images: cal_ids.len(),
            calibration_training_images: cal_trained,
            lid_reference_images: lid_ids.len(),
        };
        let model_id = match &c.examples {
            Some(_) => run.model_fingerprint()?,
            None => String::new(),
        };
        Ok(Self {
            run,
            index,
            config: c.clone(),
            db_labels,
            queries,
            q_pixels,
            detectors,
            calibrations,
            benign_cal,
            benign_test,
            umcd_variants,
            supervised_lid,
            c4_thumbnails,
            umcd,
            selection,
            device: device.clone(),
            model_id,
        })
    }

    /// Layout of the images.
    pub fn shape(&self) -> ImageShape {
        self.run.set.shape()
    }

    /// The model under test.
    pub fn model(&self) -> &'a HashNet {
        &self.run.model
    }

    /// Labels of the test queries.
    pub fn query_labels(&self) -> Vec<LabelSet> {
        self.run.labels(&self.queries)
    }

    /// Runs `spec` on the test queries, or takes its examples from the cache when it holds
    /// them. DHTA's targets are drawn from `seed ^ 0xD47A`.
    pub fn craft(&self, spec: &AttackSpec, progress: &mut dyn Progress) -> Result<Crafted> {
        let c = &self.config;
        spec.validate()?;
        let q_labels = self.query_labels();
        let mut rng = ChaCha8Rng::seed_from_u64(c.seed ^ 0xD47A);
        let targets = attack_goals(
            spec,
            &q_labels,
            self.index.codes(),
            &self.db_labels,
            &mut rng,
        )?;
        let label = spec.label();
        let n = self.queries.len();
        let key = self.example_key(spec);
        if let Some(dir) = &c.examples
            && let Some((hit, pixels)) = cache::load(dir, &key, self.q_pixels.len())
        {
            progress.log(&format!(
                "{label}: reusing the examples cached in {} (success {:.1}%)",
                dir.display(),
                100.0 * hit.success.iter().filter(|&&s| s).count() as f64 / n.max(1) as f64
            ));
            return Ok(Crafted {
                label,
                spec: *spec,
                pixels,
                success: hit.success,
                clean_map: hit.clean_map,
                adv_map: hit.adv_map,
                mean_hamming_to_original: hit.mean_hamming_to_original,
                scores: Vec::new(),
            });
        }
        let campaign = self.attack(spec, targets.as_deref(), progress)?;
        let targeted = spec.kind.is_targeted();
        let truth: Vec<LabelSet> = match &targets {
            // Targeted: t-mAP, with the target labels as ground truth.
            Some(ts) if targeted => ts.iter().map(|t| LabelSet::single(t.label)).collect(),
            _ => q_labels,
        };
        let map = |codes: &PackedCodes| {
            evaluate_retrieval(codes, &truth, self.index, &self.db_labels, &[]).map(|m| m.map_all)
        };
        let (clean_map, adv_map) = (map(&campaign.clean_codes)?, map(&campaign.adv_codes)?);
        progress.log(&format!(
            "{label}: {} {clean_map:.4} -> {adv_map:.4}, success {:.1}%",
            if targeted { "t-mAP" } else { "mAP" },
            100.0 * campaign.success_rate()
        ));
        let mean_hamming_to_original = campaign.mean_hamming_to_original();
        if let Some(dir) = &c.examples {
            let cached = CachedAttack {
                key,
                success: campaign.success.clone(),
                clean_map,
                adv_map,
                mean_hamming_to_original,
            };
            cache::store(dir, &cached, &campaign.adversarial)?;
        }
        Ok(Crafted {
            label,
            spec: *spec,
            pixels: campaign.adversarial,
            success: campaign.success,
            clean_map,
            adv_map,
            mean_hamming_to_original,
            scores: Vec::new(),
        })
    }

    /// Runs `spec` on the test queries (`targets`, one per query, for targeted attacks).
    pub fn attack(
        &self,
        spec: &AttackSpec,
        targets: Option<&[Target]>,
        progress: &mut dyn Progress,
    ) -> Result<Campaign> {
        let c = &self.config;
        progress.phase(
            "attack",
            (self.queries.len().div_ceil(c.batch_size) * spec.total_steps()) as u64,
        );
        progress.message(&spec.label());
        let images = Images {
            pixels: &self.q_pixels,
            shape: self.shape(),
        };
        let campaign = run_campaign(
            self.model(),
            images,
            spec,
            targets,
            c.batch_size,
            c.seed,
            &self.device,
            || progress.inc(1),
        )?;
        progress.finish();
        Ok(campaign)
    }

    /// Everything that determines an attack's examples: the model weights, the query images,
    /// and the settings the method uses (CW has no L∞ budget, so one CW run serves every eps).
    fn example_key(&self, spec: &AttackSpec) -> serde_json::Value {
        let pixels = self.q_pixels.iter().flat_map(|v| v.to_le_bytes());
        let settings = attack_settings(spec);
        json!({
            "version": 1,
            "method": spec.kind.name(),
            "model": self.model_id,
            "queries": fingerprint(pixels),
            "seed": self.config.seed,
            "batch_size": self.config.batch_size,
            "settings": settings,
        })
    }

    /// Scores `crafted` with every detector (kept in `crafted.scores`) and measures Table 1's
    /// metrics.
    pub fn evaluate(
        &self,
        crafted: &mut Crafted,
        progress: &mut dyn Progress,
    ) -> Result<Vec<Table1Row>> {
        progress.phase(
            "score",
            (self.detectors.len() * crafted.success.len()) as u64,
        );
        let mut out = Vec::new();
        // Supervised LID's features of the examples: LID's own scores are their means.
        let mut lid_layers = None;
        for ((det, cal), benign) in self
            .detectors
            .iter()
            .zip(&self.calibrations)
            .zip(&self.benign_test)
        {
            progress.message(&det.name());
            let images = loose(&crafted.pixels, self.shape());
            let adv = match self.supervised_lid.as_ref().filter(|_| det.name() == "LID") {
                Some(sup) => {
                    let layers =
                        sup.lid
                            .layer_scores(self.model(), images, SCORE_BATCH, &self.device)?;
                    progress.inc(images.len() as u64);
                    let scores = sup.lid.scores_from_layers(&layers);
                    lid_layers = Some(layers);
                    scores
                }
                None => score_all(
                    det.as_ref(),
                    self.model(),
                    images,
                    SCORE_BATCH,
                    &self.device,
                    progress,
                )?,
            };
            out.push(table1_row(
                det.name(),
                &crafted.label,
                cal,
                benign,
                &adv,
                &crafted.success,
            ));
            crafted.scores.push(adv);
        }
        progress.finish();
        let (u, c4) = (self.detectors.len() - 1, self.c4_position());
        for v in &self.umcd_variants {
            out.push(table1_row(
                v.name.clone(),
                &crafted.label,
                &v.calibration,
                &v.scores(&self.benign_test[u], c4.map(|i| &self.benign_test[i]))?,
                &v.scores(&crafted.scores[u], c4.map(|i| &crafted.scores[i]))?,
                &crafted.success,
            ));
        }
        // Cross-validation needs two queries per fold.
        // LID is among the detectors exactly when supervised LID is set up.
        if let Some(sup) = &self.supervised_lid
            && let Some(layers) = &lid_layers
            && sup.benign.len() >= 2 * SUPERVISED_FOLDS
        {
            out.push(self.supervised_row(sup, crafted, layers)?);
        }
        Ok(out)
    }

    /// Table 2: detection rates of UMCD's criteria alone and together, each combination
    /// calibrated afresh at the target FPR.
    pub fn ablation(
        &self,
        attacks: &[Crafted],
        progress: &mut dyn Progress,
    ) -> Result<Vec<Table2Row>> {
        let u = self.detectors.len() - 1;
        let umcd = &self.detectors[u];
        progress.phase(
            "ablation",
            attacks.iter().map(|a| a.success.len() as u64).sum(),
        );
        let mut adv_scores = Vec::new();
        for a in attacks {
            adv_scores.push(score_all(
                umcd.as_ref(),
                self.model(),
                loose(&a.pixels, self.shape()),
                SCORE_BATCH,
                &self.device,
                progress,
            )?);
        }
        progress.finish();
        let fpr = self.calibrations[u].target_fpr;
        let mut rows = Vec::new();
        for (name, cols) in [
            ("C3 alone", vec![2]),
            ("C1 + C3", vec![0, 2]),
            ("C2 + C3", vec![1, 2]),
            ("C1 + C2 + C3", vec![0, 1, 2]),
        ] {
            let cal = calibrate(&self.benign_cal[u].columns(&cols), fpr, None)?;
            let detection_rates = attacks
                .iter()
                .zip(&adv_scores)
                .map(|(a, s)| TableRate {
                    attack: a.label.clone(),
                    rate: cal.flag_rate(&s.columns(&cols)),
                })
                .collect();
            rows.push(Table2Row {
                criteria: name.into(),
                detection_rates,
                held_out_benign_fpr: cal.flag_rate(&self.benign_test[u].columns(&cols)),
            });
        }
        // All three with C3 flagged on both tails, C3's share split between them.
        let two = |s: &Scores| with_low_c3(s);
        let cal = calibrate(
            &two(&self.benign_cal[u])?,
            fpr,
            Some(&two_sided_weights(None)),
        )?;
        let mut detection_rates = Vec::new();
        for (a, s) in attacks.iter().zip(&adv_scores) {
            detection_rates.push(TableRate {
                attack: a.label.clone(),
                rate: cal.flag_rate(&two(s)?),
            });
        }
        rows.push(Table2Row {
            criteria: "C1 + C2 + C3 both tails".into(),
            detection_rates,
            held_out_benign_fpr: cal.flag_rate(&two(&self.benign_test[u])?),
        });
        Ok(rows)
    }

    /// Each detector's criteria, calibration and held-out benign FPR, then UMCD's variants
    /// (the other budget rule, the two-sided C3).
    pub fn detector_summaries(&self) -> Result<Vec<DetectorSummary>> {
        let (u, c4) = (self.detectors.len() - 1, self.c4_position());
        let mut out: Vec<DetectorSummary> = self
            .detectors
            .iter()
            .zip(&self.calibrations)
            .zip(&self.benign_test)
            .map(|((d, cal), test)| DetectorSummary {
                name: d.name(),
                criteria: d.criteria(),
                calibration: cal.into(),
                held_out_benign_fpr: cal.flag_rate(test),
            })
            .collect();
        for v in &self.umcd_variants {
            out.push(DetectorSummary {
                name: v.name.clone(),
                criteria: v.calibration.criteria.clone(),
                calibration: (&v.calibration).into(),
                held_out_benign_fpr: v
                    .calibration
                    .flag_rate(&v.scores(&self.benign_test[u], c4.map(|i| &self.benign_test[i]))?),
            });
        }
        Ok(out)
    }

    /// UMCD's row with a two-sided C3 (under the chosen budget rule), by name.
    pub fn two_sided(&self) -> Option<&UmcdVariant> {
        self.umcd_variants
            .iter()
            .find(|v| v.columns == VariantColumns::TwoSidedC3)
    }

    /// Variant `v`'s columns from one set of per-detector scores (in detector order: the
    /// benign calibration, the held-out benign queries, or an attack's `Crafted::scores`).
    pub fn variant_scores(&self, v: &UmcdVariant, per_detector: &[Scores]) -> Result<Scores> {
        let u = self.detectors.len() - 1;
        let umcd = per_detector
            .get(u)
            .ok_or_else(|| Error::InvalidArgument("UMCD's scores are missing".into()))?;
        v.scores(umcd, self.c4_position().and_then(|i| per_detector.get(i)))
    }

    /// Where the C4 detector sits among the detectors (when it was set up).
    fn c4_position(&self) -> Option<usize> {
        self.detectors
            .iter()
            .position(|d| d.name() == Consistency::NAME)
    }

    /// Each crafted attack's summary for the report.
    pub fn attack_summaries(&self, crafted: &[Crafted]) -> Vec<AttackSummary> {
        crafted.iter().map(AttackSummary::of).collect()
    }

    /// Every sample's scores, for analysis outside hashguard: per detector its criteria and
    /// the benign calibration, held-out benign and each attack's values (with success flags).
    pub fn scores(&self, crafted: &[Crafted]) -> ScoresDump {
        ScoresDump {
            attacks: crafted
                .iter()
                .map(|a| super::AttackSuccess {
                    attack: a.label.clone(),
                    success: a.success.clone(),
                })
                .collect(),
            detectors: self
                .detectors
                .iter()
                .enumerate()
                .map(|(d, det)| ScoreDump {
                    name: det.name(),
                    criteria: det.criteria(),
                    benign_calibration: self.benign_cal[d].values.clone(),
                    benign_test: self.benign_test[d].values.clone(),
                    attacks: crafted
                        .iter()
                        .map(|a| super::AttackScores {
                            attack: a.label.clone(),
                            values: a.scores.get(d).map(|s| s.values.clone()),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The test queries `start..end` as a batch tensor.
    pub fn query_batch(&self, start: usize, end: usize) -> Tensor<4> {
        Images {
            pixels: &self.q_pixels,
            shape: self.shape(),
        }
        .batch(start, end, &self.device)
    }

    /// The device everything runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// The report's name for UMCD with a two-sided C3.
pub const TWO_SIDED: &str = "UMCD (two-sided C3)";

/// The report's name for UMCD with C4 (retrieval consistency) as a fourth criterion.
pub const WITH_C4: &str = "UMCD + C4";

/// Which columns a [`UmcdVariant`] calibrates and scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariantColumns {
    /// UMCD's C1, C2, C3 (another budget rule).
    Umcd,
    /// C1, C2, C3 and C3 flagged when small ([`with_low_c3`]'s four columns, C3's share of the
    /// budget split evenly between its tails).
    TwoSidedC3,
    /// C1, C2, C3 and C4, the [`Consistency`] detector's column (a quarter of the budget
    /// under `shares` with equal weights; C4's weight is 1 beside --fpr-weights).
    WithC4,
}

/// UMCD recalibrated on benign scores already computed (same k and blur, no new forward pass),
/// another way or with other columns, reported beside UMCD under its own name.
#[derive(Clone, Debug)]
pub struct UmcdVariant {
    /// The row's name.
    pub name: String,
    /// The columns it reads.
    pub columns: VariantColumns,
    /// The thresholds, over this variant's columns.
    pub calibration: Calibration,
}

impl UmcdVariant {
    /// Calibrates the variant on UMCD's benign calibration scores `benign` (and C4's,
    /// `c4`, which [`VariantColumns::WithC4`] needs).
    fn fit(
        name: String,
        columns: VariantColumns,
        benign: &Scores,
        c4: Option<&Scores>,
        c: &DetectionConfig,
        rule: BudgetRule,
    ) -> Result<Self> {
        let w = c.fpr_weights.as_deref();
        let weights = match columns {
            VariantColumns::Umcd => c.fpr_weights.clone(),
            VariantColumns::TwoSidedC3 => Some(two_sided_weights(w)),
            VariantColumns::WithC4 => {
                Some(w.map_or_else(|| vec![1.0; 4], |w| [w, &[1.0]].concat()))
            }
        };
        let scores = columns.of(benign, c4)?;
        Ok(Self {
            name,
            columns,
            calibration: calibrate_with(&scores, c.fpr, weights.as_deref(), rule)?,
        })
    }

    /// UMCD's scores (C1, C2, C3), with C4's scores `c4` beside them, as this variant's
    /// columns.
    pub fn scores(&self, umcd: &Scores, c4: Option<&Scores>) -> Result<Scores> {
        self.columns.of(umcd, c4)
    }
}

impl VariantColumns {
    /// UMCD's scores (C1, C2, C3), with C4's scores `c4` beside them, as these columns.
    pub fn of(self, umcd: &Scores, c4: Option<&Scores>) -> Result<Scores> {
        match self {
            VariantColumns::Umcd => Ok(umcd.clone()),
            VariantColumns::TwoSidedC3 => with_low_c3(umcd),
            VariantColumns::WithC4 => {
                let c4 =
                    c4.ok_or_else(|| Error::InvalidArgument("UMCD + C4 needs C4's scores".into()))?;
                if c4.len() != umcd.len() || c4.criteria.len() != 1 {
                    return Err(Error::InvalidArgument(format!(
                        "C4's scores ({} samples, {} columns) do not line up with UMCD's ({})",
                        c4.len(),
                        c4.criteria.len(),
                        umcd.len()
                    )));
                }
                let mut out = umcd.clone();
                out.criteria.push(c4.criteria[0].clone());
                out.values.push(c4.values[0].clone());
                Ok(out)
            }
        }
    }
}

/// The settings of `spec` that its method's examples depend on (CW has no L∞ budget, so one CW
/// run serves every eps).
fn attack_settings(spec: &AttackSpec) -> serde_json::Value {
    let settings = match spec.kind {
        AttackKind::Cw => json!({
            "c": spec.cw.c, "kappa": spec.cw.kappa, "margin": spec.cw.margin,
            "lr": spec.cw.lr, "steps": spec.steps,
        }),
        AttackKind::Dhta => json!({
            "eps": spec.eps, "step": spec.step, "steps": spec.steps,
            "n_t": spec.target.n_t,
        }),
        AttackKind::Adaptive => json!({
            "eps": spec.eps, "step": spec.step, "steps": spec.steps,
            "n_t": spec.target.n_t, "adaptive": spec.adaptive, "rule": spec.rule,
        }),
        AttackKind::Pgd | AttackKind::Hag | AttackKind::Centre | AttackKind::Mainstay => {
            json!({
                "eps": spec.eps, "step": spec.step, "steps": spec.steps,
                "hag_beta": spec.hag_beta,
            })
        }
    };
    // The start, restarts and relaxation are keyed only when they differ from the papers'
    // (a key without them is one made from the clean image, once, with α = 1), so entries
    // cached before these settings existed stay valid.
    let mut settings = settings;
    let papers = AttackSpec::new(spec.kind);
    if (
        spec.random_start,
        spec.restarts,
        spec.relax,
        spec.alpha_schedule,
    ) != (
        papers.random_start,
        papers.restarts,
        papers.relax,
        papers.alpha_schedule,
    ) {
        settings["start"] = json!({
            "random": spec.random_start, "restarts": spec.restarts,
            "relax": spec.relax, "alpha_schedule": spec.alpha_schedule,
        });
    }
    settings
}

/// The budget rules UMCD is reported under beside `rule`, the chosen one.
fn other_rules(rule: BudgetRule) -> impl Iterator<Item = BudgetRule> {
    [
        BudgetRule::Shares,
        BudgetRule::PointMass,
        BudgetRule::Fisher,
    ]
    .into_iter()
    .filter(move |&r| r != rule)
}

/// The report's name for UMCD under `rule` when it is not the chosen one.
fn rule_name(rule: BudgetRule) -> String {
    match rule {
        BudgetRule::Shares => "UMCD (shares)".into(),
        BudgetRule::PointMass => "UMCD (point mass)".into(),
        BudgetRule::Fisher => "UMCD (Fisher)".into(),
    }
}

/// Scores `images` (with optional database positions) batch by batch.
fn score_all(
    det: &dyn Detector,
    model: &HashNet,
    images: ImageBatch<'_>,
    batch_size: usize,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Scores> {
    let mut out = Scores::empty(det.criteria());
    let (n, per) = (images.len(), images.shape.len());
    for start in (0..n).step_by(batch_size.max(1)) {
        let end = (start + batch_size).min(n);
        let batch = ImageBatch {
            pixels: &images.pixels[start * per..end * per],
            shape: images.shape,
            database_positions: images.database_positions.map(|p| &p[start..end]),
        };
        out.extend(det.score(model, batch, device)?)?;
        progress.inc((end - start) as u64);
    }
    Ok(out)
}

/// Images outside the database.
fn loose(pixels: &[f32], shape: ImageShape) -> ImageBatch<'_> {
    ImageBatch {
        pixels,
        shape,
        database_positions: None,
    }
}

/// Table 1's metrics for one detector against one attack.
pub(super) fn table1_row(
    detector: String,
    attack: &str,
    cal: &Calibration,
    benign: &Scores,
    adv: &Scores,
    success: &[bool],
) -> Table1Row {
    let decisions = cal.decide(adv);
    let n = decisions.len().max(1) as f64;
    let flagged = decisions.iter().filter(|d| d.adversarial).count() as f64;
    let succ: Vec<_> = decisions
        .iter()
        .zip(success)
        .filter(|(_, s)| **s)
        .map(|(d, _)| d.adversarial)
        .collect();
    let miss_successful = if succ.is_empty() {
        f64::NAN
    } else {
        1.0 - succ.iter().filter(|&&f| f).count() as f64 / succ.len() as f64
    };
    let (b, a) = (cal.combined_score(benign), cal.combined_score(adv));
    Table1Row {
        detector,
        attack: attack.into(),
        miss_rate: 1.0 - flagged / n,
        miss_rate_successful: miss_successful,
        auc: auc(&b, &a),
        tpr_at_fpr_0_1: tpr_at_fpr(&b, &a, 0.1),
        tpr_at_fpr_0_2: tpr_at_fpr(&b, &a, 0.2),
        criterion_rates: (0..cal.criteria.len())
            .map(|c| decisions.iter().filter(|d| d.fired[c]).count() as f64 / n)
            .collect(),
        held_out_benign_fpr: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_keys_tell_random_starts_apart_and_keep_old_keys() {
        let plain = AttackSpec::new(AttackKind::Pgd);
        // The papers' start keys as it did before starts were keyed (cached runs stay valid).
        assert!(attack_settings(&plain).get("start").is_none());
        let mut random = plain;
        random.random_start = true;
        let mut restarts = random;
        restarts.restarts = 5;
        let mut relaxed = plain;
        relaxed.relax = 0.5;
        let keys: Vec<serde_json::Value> = [plain, random, restarts, relaxed]
            .iter()
            .map(attack_settings)
            .collect();
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j], "specs {i} and {j} share a cache key");
            }
        }
        // DHTA's own default (its α schedule, if any) is its papers' form: no start key.
        assert!(
            attack_settings(&AttackSpec::new(AttackKind::Dhta))
                .get("start")
                .is_none()
        );
    }
}
