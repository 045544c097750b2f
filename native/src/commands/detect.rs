//! `hashguard detect` and `hashguard reproduce`: calibrate UMCD and the baselines on benign
//! database images, attack the run's queries (PGD, DHTA, CW), and measure miss rates at a fixed
//! FPR, AUC and TPR at FPR 0.1 / 0.2 — the UMCD paper's Tables 1 and 2, as Markdown, JSON, PNG.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::prelude::*;
use clap::Args;
use hashguard_core::attacks::{Budget, CwConfig, CwMargin, choose_target_labels, target_anchor};
use hashguard_core::data::{ImageSet, LabelSet};
use hashguard_core::detectors::{
    Calibration, Detector, FeatureSqueeze, ImageBatch, Lid, Scores, Umcd, UmcdConfig, calibrate,
    choose_k, codes_with_transform,
};
use hashguard_core::filters::{Filter, ImageShape};
use hashguard_core::metrics::{auc, tpr_at_fpr};
use hashguard_core::model::{HashNet, sign_codes};
use hashguard_core::retrieval::{HammingIndex, PackedCodes, hamming};
use hashguard_core::run::{RunDir, write_atomic};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;

use super::attack::{AttackPlan, Method, parse_cw_margin, parse_fraction};
use super::encode::database_codes;
use super::load_run_data;
use crate::backend::Selected;
use crate::progress::{bar, log};

mod examples;
mod figures;
mod robustness;
mod tables;

use tables::{print_table1, table1_markdown, table2_markdown};
mod whitebox;

/// Flags shared by `detect` and `reproduce`.
#[derive(Args, Debug, Clone)]
pub struct DetectionArgs {
    /// Run directory written by `hashguard train`.
    #[arg(long)]
    run: PathBuf,
    /// Read the images from this directory instead of the one the run was trained on.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Test on this many queries (a seeded random subset); default all of the split's queries.
    #[arg(long)]
    queries: Option<usize>,
    /// Benign calibration images, drawn from the database (disjoint from the queries).
    #[arg(long, default_value_t = 2000)]
    calibration: usize,
    /// Target false-positive rate of every detector.
    #[arg(long, default_value_t = 0.05)]
    fpr: f64,
    /// UMCD's C1: retrieved codes averaged. Default: chosen on the calibration set (README).
    #[arg(long)]
    k: Option<usize>,
    /// UMCD's C3 (and MeanBlur): side of the mean-blur window. Default: chosen on the
    /// calibration set (README).
    #[arg(long)]
    blur: Option<usize>,
    /// Largest drop of benign precision@100 a blur may cost when choosing --blur.
    #[arg(long, default_value_t = 0.02)]
    blur_tolerance: f64,
    /// UMCD: shares of the FPR budget for C1,C2,C3 (e.g. `1,2,1`); default equal.
    #[arg(long, value_delimiter = ',')]
    fpr_weights: Option<Vec<f64>>,
    /// LID: neighbours per estimate.
    #[arg(long, default_value_t = 20)]
    lid_k: usize,
    /// LID: benign reference mini-batch size (database images, disjoint from calibration).
    #[arg(long, default_value_t = 100)]
    lid_reference: usize,
    /// L∞ budget of PGD and DHTA (pixel units; 8/255 as in the paper).
    #[arg(long, default_value = "8/255", value_parser = parse_fraction)]
    eps: f32,
    /// Step of PGD and DHTA.
    #[arg(long, default_value = "1/255", value_parser = parse_fraction)]
    step: f32,
    /// Iterations of PGD and DHTA.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// CW: Adam steps.
    #[arg(long, default_value_t = 500)]
    cw_steps: usize,
    /// CW: weight c of the hashing term (as `hashguard attack`: with the logit margin, c below
    /// ~100 rarely flips K/2 bits of a confident model in 500 steps).
    #[arg(long, default_value_t = 1000.0)]
    cw_c: f32,
    /// CW: hashing term — `logits` (CW's logit margin over the K/2 + 1 cheapest bits) or
    /// `relaxed` (f·h/K on tanh codes, which saturate on confident models).
    #[arg(long, default_value = "logits", value_parser = parse_cw_margin)]
    cw_margin: CwMargin,
    /// CW: Adam learning rate (the paper: 0.01).
    #[arg(long, default_value_t = 0.01)]
    cw_lr: f32,
    /// DHTA: database codes voting for each anchor.
    #[arg(long, default_value_t = 9)]
    n_t: usize,
    /// Images per batch (attacks and scoring).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed of the calibration draw, query subset, targets and random starts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep the crafted adversarial examples in this directory and reuse them when the model,
    /// queries and attack settings match (`reproduce`: default OUT/examples).
    #[arg(long)]
    examples: Option<PathBuf>,
}

/// Flags of `hashguard detect`.
#[derive(Args, Debug)]
pub struct DetectArgs {
    #[command(flatten)]
    common: DetectionArgs,
    /// Attacks to detect (comma-separated): pgd, hag, dhta, cw.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "pgd,dhta,cw")]
    attack: Vec<Method>,
    /// JSON report path (default RUN/detect.json).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Also write ROC curves and criterion histograms (PNG) into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Flags of `hashguard reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    #[command(flatten)]
    common: DetectionArgs,
    /// Output directory: table1.md, table2.md, report.json, ROC and histogram PNGs.
    #[arg(long)]
    out: PathBuf,
    /// L∞ budget of the ablation (Table 2; the paper: 32/255).
    #[arg(long, default_value = "32/255", value_parser = parse_fraction)]
    ablation_eps: f32,
    /// Which table: 1 or 2 (detection, computed together; the default), 3 (adversarial
    /// training: trains FreeAT, CgAT and SAAT from --run, then attacks every model) or 4 (the
    /// white-box attacker, with the Fig. 5 sweep).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    table: Option<u8>,
    /// Same as --table 3.
    #[arg(long, conflicts_with = "whitebox")]
    robustness: bool,
    /// Same as --table 4.
    #[arg(long)]
    whitebox: bool,
    #[command(flatten)]
    adversarial_training: robustness::RobustnessArgs,
    #[command(flatten)]
    white_box: whitebox::WhiteboxArgs,
}

/// Per detector and attack: the paper's Table 1 metrics.
#[derive(Clone, Debug, Serialize)]
struct Outcome {
    detector: String,
    attack: String,
    /// 1 − TPR at the calibrated thresholds, over every adversarial example.
    miss_rate: f64,
    /// The same over the successful adversarial examples only.
    miss_rate_successful: f64,
    auc: f64,
    tpr_at_fpr_0_1: f64,
    tpr_at_fpr_0_2: f64,
    /// Share of adversarial examples each criterion flags (UMCD: C1, C2, C3).
    criterion_rates: Vec<f64>,
}

/// Benign data, detectors and their calibrations, ready to score attacks.
struct Bench<'a> {
    model: &'a HashNet,
    set: &'a ImageSet,
    shape: ImageShape,
    index: &'a HammingIndex,
    db_labels: Vec<LabelSet>,
    queries: Vec<usize>,
    q_pixels: Vec<f32>,
    detectors: Vec<Box<dyn Detector + 'a>>,
    calibrations: Vec<Calibration>,
    benign_cal: Vec<Scores>,
    benign_test: Vec<Scores>,
    umcd: UmcdConfig,
    selection: serde_json::Value,
    device: Device,
    dataset: String,
    model_id: String,
    examples: Option<PathBuf>,
}

/// One attack's adversarial examples on the test queries.
struct Crafted {
    label: String,
    method: Method,
    eps: f32,
    pixels: Vec<f32>,
    success: Vec<bool>,
    clean_map: f64,
    adv_map: f64,
    mean_hamming_to_original: f64,
    /// Every detector's scores of `pixels`, set by [`Bench::evaluate`] (reused by the plots).
    scores: Vec<Scores>,
}

/// Runs `hashguard detect`.
pub fn run_detect(args: DetectArgs, selected: Selected) -> Result<()> {
    let c = &args.common;
    let ctx = Loaded::load(c, &selected)?;
    let bench = Bench::prepare(&ctx, c, &selected, None)?;
    let mut results = Vec::new();
    let mut crafted = Vec::new();
    for &m in &args.attack {
        let mut cr = bench.craft(m, c.eps, c, &selected)?;
        results.extend(bench.evaluate(&mut cr)?);
        crafted.push(cr);
    }
    print_table1(&results, &args.attack_labels());
    let report = bench.report(c, &results, &crafted, &selected);
    let path = args
        .report
        .clone()
        .unwrap_or_else(|| ctx.run.file("detect.json"));
    write_atomic(&path, &serde_json::to_vec_pretty(&report)?).context("writing the report")?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(
            &dir.join("scores.json"),
            &serde_json::to_vec(&bench.scores_json(&crafted))?,
        )?;
        bench.plots(&crafted, dir)?;
    }
    println!("report -> {}", path.display());
    Ok(())
}

impl DetectArgs {
    fn attack_labels(&self) -> Vec<String> {
        self.attack
            .iter()
            .map(|m| attack_label(*m).into())
            .collect()
    }
}

/// Runs `hashguard reproduce`.
pub fn run_reproduce(args: ReproduceArgs, selected: Selected) -> Result<()> {
    let c = &args.common;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    match (args.table, args.robustness, args.whitebox) {
        (Some(3) | None, true, false) | (Some(3), false, false) => {
            return robustness::run(c, &args.adversarial_training, &args.out, &selected);
        }
        (Some(4) | None, false, true) | (Some(4), false, false) => {
            return whitebox::run(c, &args.white_box, &args.out, &selected);
        }
        (None | Some(1 | 2), false, false) => {}
        _ => bail!("--table, --robustness and --whitebox name different tables: pass one"),
    }
    let mut c = c.clone();
    c.examples.get_or_insert_with(|| args.out.join("examples"));
    let c = &c;
    let ctx = Loaded::load(c, &selected)?;
    let bench = Bench::prepare(&ctx, c, &selected, None)?;
    let methods = [Method::Pgd, Method::Dhta, Method::Cw];
    let mut results = Vec::new();
    let mut crafted = Vec::new();
    for m in methods {
        let mut cr = bench.craft(m, c.eps, c, &selected)?;
        results.extend(bench.evaluate(&mut cr)?);
        crafted.push(cr);
    }
    let labels: Vec<String> = methods.iter().map(|m| attack_label(*m).into()).collect();
    print_table1(&results, &labels);

    // Table 2: UMCD's criteria alone and together against eps-32 attacks (Table 1's PGD and
    // DHTA examples when it ran at the same budget: crafting them again would repeat them).
    let mut fresh = Vec::new();
    if args.ablation_eps != c.eps {
        for m in [Method::Pgd, Method::Dhta] {
            fresh.push(bench.craft(m, args.ablation_eps, c, &selected)?);
        }
    }
    let ablation_attacks: &[Crafted] = if fresh.is_empty() {
        &crafted[..2]
    } else {
        &fresh
    };
    let table2 = bench.ablation(ablation_attacks)?;

    let mut report = bench.report(c, &results, &crafted, &selected);
    report["table2"] = json!({
        "eps": args.ablation_eps,
        "rows": table2,
        "attacks": ablation_attacks.iter().map(|a| json!({
            "attack": a.label, "clean_map": a.clean_map, "adv_map": a.adv_map,
            "success_rate": a.success.iter().filter(|&&s| s).count() as f64 / a.success.len().max(1) as f64,
        })).collect::<Vec<_>>(),
    });
    write_atomic(
        &args.out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write_atomic(
        &args.out.join("scores.json"),
        &serde_json::to_vec(&bench.scores_json(&crafted))?,
    )?;
    let t1 = table1_markdown(&results, &labels, &report);
    write_atomic(&args.out.join("table1.md"), t1.as_bytes())?;
    let t2 = table2_markdown(&table2, args.ablation_eps);
    write_atomic(&args.out.join("table2.md"), t2.as_bytes())?;
    println!("\n{t2}");
    bench.plots(&crafted, &args.out)?;
    println!("tables, report.json and figures -> {}", args.out.display());
    Ok(())
}

fn attack_label(m: Method) -> &'static str {
    match m {
        Method::Pgd => "Untgt",
        Method::Hag => "Untgt-HAG",
        Method::Dhta => "Tgt",
        Method::Cw => "Untgt CW",
    }
}

/// The loaded run: model, data, database.
struct Loaded {
    run: RunDir,
    model: HashNet,
    set: ImageSet,
    split: hashguard_core::data::Split,
    index: HammingIndex,
    dataset: String,
    /// Fingerprint of the model weights (keys the example cache).
    model_id: String,
}

impl Loaded {
    fn load(c: &DetectionArgs, selected: &Selected) -> Result<Self> {
        if !(c.fpr > 0.0 && c.fpr < 0.5) {
            bail!("--fpr {} must lie in (0, 0.5)", c.fpr);
        }
        if c.batch_size == 0 || c.steps == 0 || c.cw_steps == 0 {
            bail!("--batch-size, --steps and --cw-steps must be at least 1");
        }
        if !(c.cw_c > 0.0 && c.cw_c.is_finite() && c.cw_lr > 0.0 && c.cw_lr.is_finite()) {
            bail!(
                "--cw-c {} and --cw-lr {} must be positive numbers",
                c.cw_c,
                c.cw_lr
            );
        }
        let run = RunDir::open(&c.run)?;
        let config = run.read_config()?;
        let model = run.load_model(&config, &selected.device)?.valid();
        let weights = std::fs::read(run.file("model.bpk")).context("reading model.bpk")?;
        let model_id = examples::fingerprint(weights);
        let (set, split) = load_run_data(&config, c.data.as_deref())?;
        let database = database_codes(
            &run,
            &model,
            &set,
            &split.database,
            c.data.is_some(),
            selected,
        )?;
        Ok(Self {
            run,
            model,
            set,
            split,
            index: HammingIndex::new(database),
            dataset: config.data.dataset.clone(),
            model_id,
        })
    }
}

/// Scores `pixels` (with optional database positions) batch by batch.
fn score_all(
    det: &dyn Detector,
    model: &HashNet,
    images: ImageBatch<'_>,
    batch_size: usize,
    device: &Device,
    pb: &ProgressBar,
) -> Result<Scores> {
    let mut out = Scores::empty(det.criteria());
    let (n, per) = (images.len(), images.shape.len());
    for start in (0..n).step_by(batch_size) {
        let end = (start + batch_size).min(n);
        let batch = ImageBatch {
            pixels: &images.pixels[start * per..end * per],
            shape: images.shape,
            database_positions: images.database_positions.map(|p| &p[start..end]),
        };
        out.extend(det.score(model, batch, device)?)?;
        pb.inc((end - start) as u64);
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

impl<'a> Bench<'a> {
    /// Chooses UMCD's k and blur and calibrates the detectors on benign data: every detector
    /// of Table 1 with `baselines` `None`, else the named baselines, and UMCD last.
    fn prepare(
        ctx: &'a Loaded,
        c: &DetectionArgs,
        selected: &Selected,
        baselines: Option<&[&str]>,
    ) -> Result<Self> {
        let wanted = |name: &str| baselines.is_none_or(|b| b.contains(&name));
        let device = &selected.device;
        let (model, set, split, index) = (&ctx.model, &ctx.set, &ctx.split, &ctx.index);
        let shape = set.shape();
        let bits = model.bits();
        let db_labels: Vec<LabelSet> = split.database.iter().map(|&i| set.labels[i]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(c.seed);

        let mut queries = split.query.clone();
        if let Some(n) = c.queries {
            if n == 0 || n > queries.len() {
                bail!("--queries {n} must be between 1 and {}", queries.len());
            }
            queries.shuffle(&mut rng);
            queries.truncate(n);
            queries.sort_unstable();
        }
        let need = c.calibration + c.lid_reference;
        if c.calibration < 100 || need > split.database.len() {
            bail!(
                "--calibration {} + --lid-reference {} must leave at least 100 calibration images \
                 within the {} database images",
                c.calibration,
                c.lid_reference,
                split.database.len()
            );
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
        eprintln!(
            "calibrating on {} benign database images ({} of them training images), testing on {} queries",
            cal_ids.len(),
            cal_trained,
            queries.len()
        );

        // UMCD's free parameters, chosen on benign calibration data only.
        let pb = bar(4, "choose");
        let (blur, blur_table) = match c.blur {
            Some(b) => (b, Vec::new()),
            None => choose_blur(
                model,
                index,
                &db_labels,
                &cal_pixels,
                &cal_pos,
                shape,
                c.blur_tolerance,
                c.batch_size,
                device,
                &pb,
            )?,
        };
        let (k, k_table) = match c.k {
            Some(k) => (k, Vec::new()),
            None => {
                let cands: Vec<usize> = [1usize, 5, 10, 50, 100, 500, 1000]
                    .into_iter()
                    .filter(|&k| k < index.len())
                    .collect();
                let codes = encode(model, &cal_pixels, shape, c.batch_size, device)?;
                let packed = PackedCodes::from_signs(bits, &codes);
                let kmax = *cands.last().context("database too small")?;
                let mut per_k = vec![Vec::new(); cands.len()];
                // One batched search for every calibration image (the image itself left out).
                for (found, &pos) in index.search(&packed, kmax + 1).into_iter().zip(&cal_pos) {
                    let hits: Vec<u32> = found
                        .into_iter()
                        .filter(|n| n.index != pos)
                        .map(|n| n.distance)
                        .collect();
                    for (j, &kk) in cands.iter().enumerate() {
                        per_k[j].push(hits[..kk].iter().sum::<u32>() as f32 / kk as f32);
                    }
                }
                let cands: Vec<(usize, Vec<f32>)> = cands.into_iter().zip(per_k).collect();
                choose_k(&cands, bits, set.num_classes(), index.len(), c.fpr)
            }
        };
        pb.finish_and_clear();
        let umcd = UmcdConfig { k, blur };
        eprintln!("UMCD: k = {k}, blur {blur}x{blur}");

        let lid_ids: Vec<usize> = lid_pos.iter().map(|&p| split.database[p]).collect();
        let mut detectors: Vec<Box<dyn Detector + 'a>> = Vec::new();
        if wanted("LID") {
            let lid_pixels = set.pixels_f32(&lid_ids);
            let lid = Lid::fit(
                model,
                ImageBatch {
                    pixels: &lid_pixels,
                    shape,
                    database_positions: None,
                },
                ImageBatch {
                    pixels: &cal_pixels,
                    shape,
                    database_positions: None,
                },
                c.lid_k,
                c.batch_size,
                device,
            )?;
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
        detectors.push(Box::new(Umcd {
            config: umcd,
            index,
        }));
        let pb = bar(
            (detectors.len() * (cal_ids.len() + queries.len())) as u64,
            "benign",
        );
        let mut benign_cal = Vec::new();
        let mut benign_test = Vec::new();
        let mut calibrations = Vec::new();
        for det in &detectors {
            pb.set_message(det.name());
            let cal = score_all(
                det.as_ref(),
                model,
                ImageBatch {
                    pixels: &cal_pixels,
                    shape,
                    database_positions: Some(&cal_positions),
                },
                c.batch_size,
                device,
                &pb,
            )?;
            let weights = (det.name() == "UMCD")
                .then_some(c.fpr_weights.as_deref())
                .flatten();
            calibrations.push(calibrate(&cal, c.fpr, weights)?);
            benign_cal.push(cal);
            benign_test.push(score_all(
                det.as_ref(),
                model,
                loose(&q_pixels, shape),
                c.batch_size,
                device,
                &pb,
            )?);
        }
        pb.finish_and_clear();
        for ((det, cal), test) in detectors.iter().zip(&calibrations).zip(&benign_test) {
            eprintln!(
                "{:>11}: held-out benign FPR {:.2}% (target {:.0}%, calibration {:.2}%)",
                det.name(),
                100.0 * cal.flag_rate(test),
                100.0 * c.fpr,
                100.0 * cal.calibration_fpr
            );
        }
        let selection = json!({
            "k": k, "k_rule": "largest Theorem-1 margin: predicted adversarial top-k mean minus the benign (1 - fpr) quantile of C1",
            "k_candidates": k_table,
            "blur": blur, "blur_rule": format!("largest window whose blurred calibration images lose at most {} of precision@100", c.blur_tolerance),
            "blur_candidates": blur_table,
            "fpr_weights": c.fpr_weights.clone().unwrap_or_else(|| vec![1.0, 1.0, 1.0]),
            "calibration_images": cal_ids.len(),
            "calibration_training_images": cal_trained,
            "lid_reference_images": lid_ids.len(),
        });
        Ok(Self {
            model,
            set,
            shape,
            index,
            db_labels,
            queries,
            q_pixels,
            detectors,
            calibrations,
            benign_cal,
            benign_test,
            umcd,
            selection,
            device: device.clone(),
            dataset: ctx.dataset.clone(),
            model_id: ctx.model_id.clone(),
            examples: c.examples.clone(),
        })
    }

    /// Runs attack `method` at `eps` on the test queries.
    fn craft(
        &self,
        method: Method,
        eps: f32,
        c: &DetectionArgs,
        selected: &Selected,
    ) -> Result<Crafted> {
        let device = &selected.device;
        let bits = self.model.bits();
        let steps = if method == Method::Cw {
            c.cw_steps
        } else {
            c.steps
        };
        let plan = AttackPlan {
            method,
            budget: Budget {
                eps,
                step: c.step.min(eps),
                steps,
                random_start: false,
                relax: 1.0,
            },
            alpha_schedule: false,
            hag_beta: 1.0,
            cw: CwConfig {
                c: c.cw_c,
                kappa: 0.1,
                margin: c.cw_margin,
                lr: c.cw_lr,
                steps,
                relax: 1.0,
                search_steps: 0,
            },
            seed: c.seed,
        };
        plan.budget.validate()?;
        let q_labels: Vec<LabelSet> = self.queries.iter().map(|&i| self.set.labels[i]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(c.seed ^ 0xD47A);
        let (targets, anchors) = if method == Method::Dhta {
            let present = self
                .db_labels
                .iter()
                .fold(LabelSet::default(), |a, &l| a.union(l));
            let targets = choose_target_labels(&q_labels, present, None, &mut rng)?;
            let anchors = targets
                .iter()
                .map(|&t| target_anchor(self.index.codes(), &self.db_labels, t, c.n_t, &mut rng))
                .collect::<hashguard_core::Result<Vec<Vec<f32>>>>()?;
            (Some(targets), Some(anchors))
        } else {
            (None, None)
        };
        // CW has no L∞ budget: its label names its own settings instead.
        let label = if method == Method::Cw {
            format!("{} c {} lr {}", attack_label(method), c.cw_c, c.cw_lr)
        } else {
            format!("{} eps {:.0}/255", attack_label(method), eps * 255.0)
        };
        let n = self.queries.len();
        let key = self.example_key(&plan, c);
        if let Some(dir) = &self.examples
            && let Some((hit, pixels)) = examples::load(dir, &key, self.q_pixels.len())
        {
            eprintln!(
                "{label}: reusing the examples cached in {} (success {:.1}%)",
                dir.display(),
                100.0 * hit.success.iter().filter(|&&s| s).count() as f64 / n.max(1) as f64
            );
            return Ok(Crafted {
                label,
                method,
                eps,
                pixels,
                success: hit.success,
                clean_map: hit.clean_map,
                adv_map: hit.adv_map,
                mean_hamming_to_original: hit.mean_hamming_to_original,
                scores: Vec::new(),
            });
        }
        let pb = bar((n.div_ceil(c.batch_size) * steps) as u64, "attack");
        pb.set_message(label.clone());
        let mut pixels = Vec::with_capacity(self.q_pixels.len());
        let mut success = Vec::with_capacity(n);
        let mut clean_codes = PackedCodes::new(bits);
        let mut adv_codes = PackedCodes::new(bits);
        let mut flips = 0u64;
        for (b, start) in (0..n).step_by(c.batch_size).enumerate() {
            let end = (start + c.batch_size).min(n);
            let x = self.query_batch(start, end, device);
            let f_clean = self.model.forward(x.clone());
            let h_clean = sign_codes(f_clean.clone());
            let batch_anchors = anchors.as_ref().map(|a| a[start..end].concat());
            let (adv, cw_ok) =
                plan.craft_batch(self.model, x, h_clean, batch_anchors, b as u64, |_| {
                    pb.inc(1)
                })?;
            let fc = read_vec(f_clean)?;
            let fa = read_vec(self.model.forward(adv.clone()))?;
            let (bc, ba) = (
                PackedCodes::from_signs(bits, &fc),
                PackedCodes::from_signs(bits, &fa),
            );
            for i in 0..end - start {
                let d = hamming(bc.code(i), ba.code(i));
                flips += d as u64;
                success.push(match (&cw_ok, &anchors) {
                    (Some(ok), _) => ok[i],
                    (None, Some(a)) => {
                        let anchor = PackedCodes::from_signs(bits, &a[start + i]);
                        hamming(ba.code(i), anchor.code(0)) < d
                    }
                    _ => d as usize > bits / 2,
                });
            }
            clean_codes.extend(&bc);
            adv_codes.extend(&ba);
            pixels.extend(read_vec(adv)?);
        }
        pb.finish_and_clear();
        let eval = |codes: &PackedCodes, labels: &[LabelSet]| {
            hashguard_core::metrics::evaluate_retrieval(
                codes,
                labels,
                self.index,
                &self.db_labels,
                &[],
            )
            .map(|m| m.map_all)
        };
        let (clean_map, adv_map) = match &targets {
            // Targeted: t-mAP, with the target labels as ground truth.
            Some(ts) => {
                let t_labels: Vec<LabelSet> = ts.iter().map(|&t| LabelSet::single(t)).collect();
                (eval(&clean_codes, &t_labels)?, eval(&adv_codes, &t_labels)?)
            }
            None => (eval(&clean_codes, &q_labels)?, eval(&adv_codes, &q_labels)?),
        };
        let rate = success.iter().filter(|&&s| s).count() as f64 / n as f64;
        log(
            &pb,
            format!(
                "{label}: {} {clean_map:.4} -> {adv_map:.4}, success {:.1}%",
                if anchors.is_some() { "t-mAP" } else { "mAP" },
                100.0 * rate
            ),
        );
        let mean_hamming_to_original = flips as f64 / n as f64;
        if let Some(dir) = &self.examples {
            let cached = examples::CachedAttack {
                key,
                success: success.clone(),
                clean_map,
                adv_map,
                mean_hamming_to_original,
            };
            examples::store(dir, &cached, &pixels)?;
        }
        Ok(Crafted {
            label,
            method,
            eps,
            pixels,
            success,
            clean_map,
            adv_map,
            mean_hamming_to_original,
            scores: Vec::new(),
        })
    }

    /// Everything that determines an attack's examples: the model weights, the query images,
    /// and the settings the method uses (CW has no L∞ budget, so one CW run serves every eps).
    fn example_key(&self, plan: &AttackPlan, c: &DetectionArgs) -> serde_json::Value {
        let pixels = self.q_pixels.iter().flat_map(|v| v.to_le_bytes());
        let settings = match plan.method {
            Method::Cw => json!({
                "c": plan.cw.c, "kappa": plan.cw.kappa, "margin": plan.cw.margin,
                "lr": plan.cw.lr, "steps": plan.cw.steps,
            }),
            Method::Dhta => json!({
                "eps": plan.budget.eps, "step": plan.budget.step, "steps": plan.budget.steps,
                "n_t": c.n_t,
            }),
            Method::Pgd | Method::Hag => json!({
                "eps": plan.budget.eps, "step": plan.budget.step, "steps": plan.budget.steps,
                "hag_beta": plan.hag_beta,
            }),
        };
        json!({
            "version": 1,
            "method": format!("{:?}", plan.method).to_lowercase(),
            "model": self.model_id,
            "queries": examples::fingerprint(pixels),
            "seed": c.seed,
            "batch_size": c.batch_size,
            "settings": settings,
        })
    }

    /// The test queries `start..end` as a batch tensor.
    fn query_batch(&self, start: usize, end: usize, device: &Device) -> Tensor<4> {
        let (s, per) = (self.shape, self.shape.len());
        Tensor::<4>::from_data(
            TensorData::new(
                self.q_pixels[start * per..end * per].to_vec(),
                [end - start, s.channels, s.height, s.width],
            ),
            device,
        )
    }

    /// Scores `crafted` with every detector (kept in `crafted.scores`) and measures Table 1's
    /// metrics.
    fn evaluate(&self, crafted: &mut Crafted) -> Result<Vec<Outcome>> {
        let device = &self.model_device();
        let pb = bar(
            (self.detectors.len() * crafted.success.len()) as u64,
            "score",
        );
        let mut out = Vec::new();
        for ((det, cal), benign) in self
            .detectors
            .iter()
            .zip(&self.calibrations)
            .zip(&self.benign_test)
        {
            pb.set_message(det.name());
            let adv = score_all(
                det.as_ref(),
                self.model,
                loose(&crafted.pixels, self.shape),
                64,
                device,
                &pb,
            )?;
            out.push(outcome(
                det.name(),
                &crafted.label,
                cal,
                benign,
                &adv,
                &crafted.success,
            ));
            crafted.scores.push(adv);
        }
        pb.finish_and_clear();
        Ok(out)
    }

    /// Every sample's scores, for analysis outside hashguard: per detector its criteria and
    /// the benign calibration, held-out benign and each attack's values (with success flags).
    fn scores_json(&self, crafted: &[Crafted]) -> serde_json::Value {
        let detectors: Vec<serde_json::Value> = self
            .detectors
            .iter()
            .enumerate()
            .map(|(d, det)| {
                json!({
                    "name": det.name(),
                    "criteria": det.criteria(),
                    "benign_calibration": self.benign_cal[d].values,
                    "benign_test": self.benign_test[d].values,
                    "attacks": crafted.iter().map(|a| json!({
                        "attack": a.label,
                        "values": a.scores.get(d).map(|s| &s.values),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "attacks": crafted.iter().map(|a| json!({"attack": a.label, "success": a.success}))
                .collect::<Vec<_>>(),
            "detectors": detectors,
        })
    }

    fn model_device(&self) -> Device {
        self.device.clone()
    }

    /// Table 2: detection rates of UMCD's criteria alone and together, each combination
    /// calibrated afresh at the target FPR.
    fn ablation(&self, attacks: &[Crafted]) -> Result<Vec<serde_json::Value>> {
        let u = self.detectors.len() - 1;
        let umcd = &self.detectors[u];
        let device = self.model_device();
        let pb = bar(
            attacks.iter().map(|a| a.success.len() as u64).sum(),
            "ablation",
        );
        let mut adv_scores = Vec::new();
        for a in attacks {
            adv_scores.push(score_all(
                umcd.as_ref(),
                self.model,
                loose(&a.pixels, self.shape),
                64,
                &device,
                &pb,
            )?);
        }
        pb.finish_and_clear();
        let fpr = self.calibrations[u].target_fpr;
        let mut rows = Vec::new();
        for (name, cols) in [
            ("C3 alone", vec![2]),
            ("C1 + C3", vec![0, 2]),
            ("C2 + C3", vec![1, 2]),
            ("C1 + C2 + C3", vec![0, 1, 2]),
        ] {
            let cal = calibrate(&self.benign_cal[u].columns(&cols), fpr, None)?;
            let rates: Vec<f64> = attacks
                .iter()
                .zip(&adv_scores)
                .map(|(_, s)| cal.flag_rate(&s.columns(&cols)))
                .collect();
            let benign = cal.flag_rate(&self.benign_test[u].columns(&cols));
            rows.push(json!({
                "criteria": name,
                "detection_rates": attacks.iter().map(|a| &a.label).zip(&rates)
                    .map(|(l, r)| json!({"attack": l, "rate": r})).collect::<Vec<_>>(),
                "held_out_benign_fpr": benign,
            }));
        }
        Ok(rows)
    }

    fn report(
        &self,
        c: &DetectionArgs,
        results: &[Outcome],
        crafted: &[Crafted],
        selected: &Selected,
    ) -> serde_json::Value {
        let detectors: Vec<serde_json::Value> = self
            .detectors
            .iter()
            .zip(&self.calibrations)
            .zip(&self.benign_test)
            .map(|((d, cal), test)| {
                json!({
                    "name": d.name(),
                    "criteria": d.criteria(),
                    "calibration": cal,
                    "held_out_benign_fpr": cal.flag_rate(test),
                })
            })
            .collect();
        json!({
            "run": c.run,
            "dataset": self.dataset,
            "bits": self.model.bits(),
            "queries": self.queries.len(),
            "target_fpr": c.fpr,
            "umcd": self.umcd,
            "selection": self.selection,
            "detectors": detectors,
            "attacks": crafted.iter().map(|a| json!({
                "attack": a.label,
                "method": format!("{:?}", a.method).to_lowercase(),
                "eps": a.eps,
                "steps": if a.method == Method::Cw { c.cw_steps } else { c.steps },
                "clean_map": a.clean_map,
                "adv_map": a.adv_map,
                "metric": if a.method == Method::Dhta { "t-mAP" } else { "mAP" },
                "success_rate": a.success.iter().filter(|&&s| s).count() as f64 / a.success.len().max(1) as f64,
                "mean_hamming_to_original": a.mean_hamming_to_original,
                "cw": (a.method == Method::Cw).then(|| json!({
                    "c": c.cw_c, "margin": c.cw_margin, "lr": c.cw_lr, "kappa": 0.1,
                })),
            })).collect::<Vec<_>>(),
            "table1": results,
            "backend": selected.info,
        })
    }
}

/// Table 1's metrics for one detector against one attack.
fn outcome(
    detector: String,
    attack: &str,
    cal: &Calibration,
    benign: &Scores,
    adv: &Scores,
    success: &[bool],
) -> Outcome {
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
    Outcome {
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
    }
}

/// Relaxed codes of `pixels`.
fn encode(
    model: &HashNet,
    pixels: &[f32],
    shape: ImageShape,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for chunk in pixels.chunks(batch_size * shape.len()) {
        let n = chunk.len() / shape.len();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                chunk.to_vec(),
                [n, shape.channels, shape.height, shape.width],
            ),
            device,
        );
        out.extend(read_vec(model.forward(x))?);
    }
    Ok(out)
}

fn read_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    Ok(hashguard_core::host::read_floats(t, "model outputs")?)
}

/// Mean precision@100 of the calibration images' codes (their own database entry left out).
fn precision_at_100(
    index: &HammingIndex,
    db_labels: &[LabelSet],
    codes: &[f32],
    cal_pos: &[usize],
) -> f64 {
    let bits = index.codes().bits();
    let packed = PackedCodes::from_signs(bits, codes);
    let mut total = 0.0;
    for (hits, &pos) in index.search(&packed, 101).into_iter().zip(cal_pos) {
        let own = db_labels[pos];
        let rel = hits
            .iter()
            .filter(|n| n.index != pos)
            .take(100)
            .filter(|n| db_labels[n.index].shares(own))
            .count();
        total += rel as f64 / 100.0;
    }
    total / cal_pos.len().max(1) as f64
}

/// The largest mean-blur window (2..=5) whose blurred calibration images keep precision@100
/// within `tolerance` of the unblurred images' (Xu et al.'s rule for squeezers: cost little
/// benign accuracy). Falls back to 2 when none does.
#[allow(clippy::too_many_arguments)]
fn choose_blur(
    model: &HashNet,
    index: &HammingIndex,
    db_labels: &[LabelSet],
    cal_pixels: &[f32],
    cal_pos: &[usize],
    shape: ImageShape,
    tolerance: f64,
    batch_size: usize,
    device: &Device,
    pb: &ProgressBar,
) -> Result<(usize, Vec<serde_json::Value>)> {
    let mut clean = None;
    let mut table = Vec::new();
    let mut best = 2;
    for size in [2usize, 3, 4, 5] {
        let mut f = Vec::new();
        let mut ft = Vec::new();
        for chunk in cal_pixels.chunks(batch_size * shape.len()) {
            let (a, b) = codes_with_transform(
                model,
                ImageBatch {
                    pixels: chunk,
                    shape,
                    database_positions: None,
                },
                Filter::MeanBlur { size },
                device,
            )?;
            f.extend(a);
            ft.extend(b);
        }
        let base = *clean.get_or_insert_with(|| precision_at_100(index, db_labels, &f, cal_pos));
        let blurred = precision_at_100(index, db_labels, &ft, cal_pos);
        let ok = base - blurred <= tolerance;
        if ok {
            best = size;
        }
        table.push(json!({"size": size, "precision_at_100": blurred, "clean_precision_at_100": base, "within_tolerance": ok}));
        pb.inc(1);
    }
    Ok((best, table))
}
