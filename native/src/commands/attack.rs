//! `hashguard attack`: runs an attack (untargeted PGD or HAG, targeted DHTA, untargeted CW) on
//! the run's queries, measures the damage (mAP or t-mAP, success rate, perturbation norms),
//! checks Theorem 1 of the UMCD paper on untargeted codes, and writes a JSON report and PNGs.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::prelude::*;
use clap::{Args, ValueEnum};
use hashguard_core::attacks::{
    Budget, CwConfig, CwMargin, Objective, choose_target_labels, cw_untargeted, pgd, sample_stats,
    target_anchor,
};
use hashguard_core::data::{Augment, LabelSet, to_tensor};
use hashguard_core::metrics::evaluate_retrieval;
use hashguard_core::model::{HashNet, sign_codes};
use hashguard_core::retrieval::{HammingIndex, PackedCodes, hamming};
use hashguard_core::run::{RunDir, write_atomic};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::encode::database_codes;
use super::load_run_data;
use crate::backend::Selected;
use crate::plot::{BinAxis, Grid, density, histogram};
use crate::progress::{bar, log};

/// Attack methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Untargeted PGD minimising f(x')·h(x) (the UMCD paper's form).
    Pgd,
    /// Untargeted PGD on HAG's masked, bit-balanced loss.
    Hag,
    /// Targeted DHTA towards a component-voting anchor of a label the query does not have.
    Dhta,
    /// Untargeted Carlini-Wagner (L2, tanh space, Adam).
    Cw,
}

/// Flags of `hashguard attack`.
#[derive(Args, Debug)]
pub struct AttackArgs {
    /// Run directory written by `hashguard train`.
    #[arg(long)]
    run: PathBuf,
    /// Attack method.
    #[arg(long, value_enum)]
    method: Method,
    /// L∞ budget in pixel units: a number in (0, 1] or a fraction such as 8/255 (PGD, HAG, DHTA).
    #[arg(long, default_value = "8/255", value_parser = parse_fraction)]
    eps: f32,
    /// Step size of PGD, HAG and DHTA, same units as --eps.
    #[arg(long, default_value = "1/255", value_parser = parse_fraction)]
    step: f32,
    /// Iterations (default 100; 500 Adam steps for CW).
    #[arg(long)]
    steps: Option<usize>,
    /// Start PGD from a uniform random point of the L∞ ball.
    #[arg(long)]
    random_start: bool,
    /// Attack only this many queries (a seeded random subset); default all.
    #[arg(long)]
    queries: Option<usize>,
    /// DHTA: attack towards this class (it must be in the database; queries of that class are
    /// left out); default a random class each query does not have.
    #[arg(long)]
    target: Option<usize>,
    /// DHTA: database codes voting for the anchor.
    #[arg(long, default_value_t = 9)]
    n_t: usize,
    /// PGD family: relax f = tanh(α z) with α ramped from 0.1 to 1 over the steps (DHTA's
    /// schedule; also keeps gradients alive where tanh saturates).
    #[arg(long)]
    alpha_schedule: bool,
    /// Relaxation α in (0, 1]: objectives see tanh(α z) instead of f = tanh(z). Values below 1
    /// keep gradients alive where a confident model's tanh saturates; 1 is the papers' form.
    #[arg(long, default_value_t = 1.0)]
    relax: f32,
    /// HAG: weight of the bit-balance term.
    #[arg(long, default_value_t = 1.0)]
    hag_beta: f32,
    /// CW: weight c of the hashing term (with the logit margin, c below ~100 rarely flips
    /// K/2 bits of a confident model in 500 steps; docs/results.md).
    #[arg(long, default_value_t = 1000.0)]
    cw_c: f32,
    /// CW: margin κ (on f·h/K for `--cw-margin relaxed`, on the chosen bits' logit margins for
    /// `logits`).
    #[arg(long, default_value_t = 0.1)]
    cw_kappa: f32,
    /// CW: hashing term — `logits` (CW's logit margin over the K/2 + 1 cheapest bits) or
    /// `relaxed` (f·h/K on tanh codes, which saturate on confident models).
    #[arg(long, default_value = "logits", value_parser = parse_cw_margin)]
    cw_margin: CwMargin,
    /// CW: rounds of per-image binary search over c after the first (0 keeps c fixed).
    #[arg(long, default_value_t = 0)]
    cw_search: usize,
    /// CW: Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    cw_lr: f32,
    /// Images per attack batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed of the query subset, targets, anchors and random starts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// JSON report path. Default: OUT/report.json, or RUN/attack-METHOD.json without --out.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Directory for the PNG figures (examples grid, Hamming histograms).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Read the images from this directory instead of the one the run was trained on.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// One attack with all its settings, applied batch by batch.
#[derive(Clone, Debug)]
pub struct AttackPlan {
    /// Which attack.
    pub method: Method,
    /// L∞ budget, step and iterations (PGD family).
    pub budget: Budget,
    /// DHTA's tanh(α z) schedule.
    pub alpha_schedule: bool,
    /// HAG's bit-balance weight.
    pub hag_beta: f32,
    /// CW's settings.
    pub cw: CwConfig,
    /// Seed of random starts (batch `b` uses `seed + b`).
    pub seed: u64,
}

impl AttackPlan {
    /// Attacks one batch `x` with clean codes `h_clean`; DHTA needs the batch's anchors
    /// (`bits` values per image). Returns the adversarial images and, for CW, per-image
    /// success. `on_step` is called once per iteration.
    pub fn craft_batch(
        &self,
        model: &HashNet,
        x: Tensor<4>,
        h_clean: Tensor<2>,
        anchors: Option<Vec<f32>>,
        batch: u64,
        on_step: impl FnMut(usize),
    ) -> Result<(Tensor<4>, Option<Vec<bool>>)> {
        let device = x.device();
        let objective = match self.method {
            Method::Pgd => Objective::Untargeted { original: h_clean },
            Method::Hag => Objective::Hag {
                original: h_clean,
                beta: self.hag_beta,
            },
            Method::Dhta => {
                let flat = anchors.context("DHTA needs target anchors")?;
                let n = x.dims()[0];
                let bits = flat.len() / n.max(1);
                let anchors = Tensor::<2>::from_data(TensorData::new(flat, [n, bits]), &device);
                Objective::Targeted { anchors }
            }
            Method::Cw => {
                let (adv, ok) = cw_untargeted(model, x, h_clean, &self.cw, on_step)?;
                return Ok((adv, Some(ok)));
            }
        };
        let adv = pgd(
            model,
            x,
            &objective,
            &self.budget,
            self.alpha_schedule,
            self.seed + batch,
            on_step,
        )?;
        Ok((adv, None))
    }
}

/// `--cw-margin`: `logits` or `relaxed`.
pub fn parse_cw_margin(s: &str) -> Result<CwMargin, String> {
    match s {
        "logits" => Ok(CwMargin::Logits),
        "relaxed" => Ok(CwMargin::Relaxed),
        other => Err(format!("{other} is not a CW margin: use logits or relaxed")),
    }
}

/// Parses `0.03` or `8/255`.
pub fn parse_fraction(s: &str) -> Result<f32, String> {
    let value = match s.split_once('/') {
        Some((a, b)) => {
            let (a, b): (f32, f32) = (
                a.trim()
                    .parse()
                    .map_err(|_| format!("`{s}` is not a number or fraction"))?,
                b.trim()
                    .parse()
                    .map_err(|_| format!("`{s}` is not a number or fraction"))?,
            );
            a / b
        }
        None => s
            .parse()
            .map_err(|_| format!("`{s}` is not a number or fraction"))?,
    };
    if !(value > 0.0 && value <= 1.0) {
        return Err(format!(
            "{s} = {value} is outside (0, 1]: budgets are in pixel units, e.g. 8/255"
        ));
    }
    Ok(value)
}

/// Runs `hashguard attack`.
pub fn run(args: AttackArgs, selected: Selected) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    let config = run.read_config()?;
    let model = run.load_model(&config, &selected.device)?.valid();
    let (set, split) = load_run_data(&config, args.data.as_deref())?;
    let bits = config.train.model.bits;
    let steps = args
        .steps
        .unwrap_or(if args.method == Method::Cw { 500 } else { 100 });
    let budget = Budget {
        eps: args.eps,
        step: args.step,
        steps,
        random_start: args.random_start,
        relax: args.relax,
    };
    budget.validate()?;
    let plan = AttackPlan {
        method: args.method,
        budget,
        alpha_schedule: args.alpha_schedule,
        hag_beta: args.hag_beta,
        cw: CwConfig {
            c: args.cw_c,
            kappa: args.cw_kappa,
            margin: args.cw_margin,
            lr: args.cw_lr,
            steps,
            relax: args.relax,
            search_steps: args.cw_search,
        },
        seed: args.seed,
    };
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }

    let database = database_codes(
        &run,
        &model,
        &set,
        &split.database,
        args.data.is_some(),
        &selected,
    )?;
    let db_labels: Vec<LabelSet> = split.database.iter().map(|&i| set.labels[i]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    // A fixed target can only be attacked towards from queries without that label.
    let mut queries: Vec<usize> = match (args.method, args.target) {
        (Method::Dhta, Some(t)) => split
            .query
            .iter()
            .copied()
            .filter(|&i| !set.labels[i].contains(t))
            .collect(),
        _ => split.query.clone(),
    };
    if queries.is_empty() {
        bail!("no query lacks the target label: choose another --target");
    }
    if let Some(n) = args.queries {
        if n == 0 || n > queries.len() {
            bail!("--queries {n} must be between 1 and {}", queries.len());
        }
        queries.shuffle(&mut rng);
        queries.truncate(n);
        queries.sort_unstable();
    }
    let q_labels: Vec<LabelSet> = queries.iter().map(|&i| set.labels[i]).collect();
    let present = db_labels
        .iter()
        .fold(LabelSet::default(), |a, &l| a.union(l));
    let targets = (args.method == Method::Dhta)
        .then(|| choose_target_labels(&q_labels, present, args.target, &mut rng))
        .transpose()?;
    let anchors: Option<Vec<Vec<f32>>> = targets
        .as_ref()
        .map(|ts| {
            ts.iter()
                .map(|&t| target_anchor(&database, &db_labels, t, args.n_t, &mut rng))
                .collect::<hashguard_core::Result<_>>()
        })
        .transpose()?;

    eprintln!(
        "attacking {} queries of {} with {:?} (eps {:.4}, step {:.4}, {} steps) on {} [{}]",
        queries.len(),
        args.run.display(),
        args.method,
        args.eps,
        args.step,
        steps,
        selected.info.kind,
        selected.info.adapter
    );
    let start = std::time::Instant::now();
    let rounds = if args.method == Method::Cw {
        1 + args.cw_search
    } else {
        1
    };
    let pb = bar(
        (queries.len().div_ceil(args.batch_size) * steps * rounds) as u64,
        "attack",
    );
    let device = &selected.device;
    let mut clean_codes = PackedCodes::new(bits);
    let mut adv_codes = PackedCodes::new(bits);
    let mut stats = Vec::new();
    let mut successes = Vec::new();
    let mut examples: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    let mut noop = ChaCha8Rng::seed_from_u64(0);
    for (b, chunk) in queries.chunks(args.batch_size).enumerate() {
        let x = to_tensor(&set, chunk, Augment::NONE, &mut noop, device);
        let f_clean = model.forward(x.clone());
        let h_clean = sign_codes(f_clean.clone());
        let batch_anchors = anchors.as_ref().map(|a| {
            let offset = b * args.batch_size;
            a[offset..offset + chunk.len()].concat()
        });
        let (adv, cw_ok) = plan.craft_batch(
            &model,
            x.clone(),
            h_clean.clone(),
            batch_anchors,
            b as u64,
            |_| pb.inc(1),
        )?;
        let f_adv = model.forward(adv.clone());
        let fc: Vec<f32> = f_clean
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let fa: Vec<f32> = f_adv
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let batch_clean = PackedCodes::from_signs(bits, &fc);
        let batch_adv = PackedCodes::from_signs(bits, &fa);
        let s = sample_stats(x.clone(), adv.clone(), f_clean, f_adv)?;
        for i in 0..chunk.len() {
            let ok = match (args.method, &cw_ok, &anchors) {
                (Method::Cw, Some(ok), _) => ok[i],
                (Method::Dhta, _, Some(a)) => {
                    let anchor = PackedCodes::from_signs(bits, &a[b * args.batch_size + i]);
                    hamming(batch_adv.code(i), anchor.code(0))
                        < hamming(batch_adv.code(i), batch_clean.code(i))
                }
                _ => s[i].hamming_to_original as usize > bits / 2,
            };
            successes.push(ok);
        }
        if examples.len() < 6 {
            let xs: Vec<f32> = x
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let advs: Vec<f32> = adv
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let n = set.image_len();
            for i in 0..chunk.len().min(6 - examples.len()) {
                examples.push((
                    xs[i * n..(i + 1) * n].to_vec(),
                    advs[i * n..(i + 1) * n].to_vec(),
                ));
            }
        }
        clean_codes.extend(&batch_clean);
        adv_codes.extend(&batch_adv);
        stats.extend(s);
    }
    pb.finish_and_clear();
    let attack_seconds = start.elapsed().as_secs_f64();

    let index = HammingIndex::new(database);
    let ks = [1000];
    let clean = evaluate_retrieval(&clean_codes, &q_labels, &index, &db_labels, &ks)?;
    let adv = evaluate_retrieval(&adv_codes, &q_labels, &index, &db_labels, &ks)?;
    let t_map = match &targets {
        Some(ts) => {
            let t_labels: Vec<LabelSet> = ts.iter().map(|&t| LabelSet::single(t)).collect();
            Some((
                evaluate_retrieval(&clean_codes, &t_labels, &index, &db_labels, &ks)?.map_all,
                evaluate_retrieval(&adv_codes, &t_labels, &index, &db_labels, &ks)?.map_all,
            ))
        }
        None => None,
    };
    let n = stats.len() as f64;
    let mean = |f: &dyn Fn(&hashguard_core::attacks::SampleStats) -> f64| {
        stats.iter().map(f).sum::<f64>() / n
    };
    let success_rate = successes.iter().filter(|&&s| s).count() as f64 / n;

    // Theorem 1 (UMCD): distances from untargeted adversarial codes to other classes' codes
    // ~ N(K(1 − p), K p (1 − p)), p = C / (2 (C − 1)).
    let theorem1 = (args.method != Method::Dhta).then(|| {
        let classes = set.num_classes() as f64;
        let p = classes / (2.0 * (classes - 1.0));
        let mut counts = vec![0u64; bits + 1];
        for q in 0..adv_codes.len() {
            for (d, l) in (0..index.len()).zip(&db_labels) {
                if !l.shares(q_labels[q]) {
                    counts[hamming(adv_codes.code(q), index.codes().code(d)) as usize] += 1;
                }
            }
        }
        let total = counts.iter().sum::<u64>().max(1) as f64;
        let m = counts
            .iter()
            .enumerate()
            .map(|(d, &c)| d as f64 * c as f64)
            .sum::<f64>()
            / total;
        let var = counts
            .iter()
            .enumerate()
            .map(|(d, &c)| (d as f64 - m).powi(2) * c as f64)
            .sum::<f64>()
            / total;
        (p, counts, m, var)
    });

    let mut report = json!({
        "method": format!("{:?}", args.method).to_lowercase(),
        "run": args.run,
        "dataset": config.data.dataset,
        "bits": bits,
        "queries": queries.len(),
        "eps": args.eps,
        "step": args.step,
        "steps": steps,
        "random_start": args.random_start,
        "relax": args.relax,
        "clean_map": clean.map_all,
        "clean_map_at_1000": clean.map_at(1000),
        "success_rate": success_rate,
        "mean_linf": mean(&|s| s.linf as f64),
        "mean_l2": mean(&|s| s.l2 as f64),
        "mean_hamming_to_original": mean(&|s| s.hamming_to_original as f64),
        "backend": selected.info,
        "attack_seconds": attack_seconds,
        "seed": args.seed,
    });
    let obj = report.as_object_mut().expect("object");
    match args.method {
        Method::Dhta => {
            let (clean_t, adv_t) = t_map.expect("targets");
            obj.insert("t_map".into(), json!(adv_t));
            obj.insert("clean_t_map".into(), json!(clean_t));
            obj.insert("n_t".into(), json!(args.n_t));
            obj.insert("alpha_schedule".into(), json!(args.alpha_schedule));
            obj.insert(
                "success".into(),
                json!("Hamming(h(x'), anchor) < Hamming(h(x'), h(x))"),
            );
        }
        _ => {
            obj.insert("adv_map".into(), json!(adv.map_all));
            obj.insert("adv_map_at_1000".into(), json!(adv.map_at(1000)));
            obj.insert("success".into(), json!("Hamming(h(x'), h(x)) > K/2"));
        }
    }
    if args.method == Method::Cw {
        obj.insert(
            "cw".into(),
            json!({"c": args.cw_c, "kappa": args.cw_kappa, "lr": args.cw_lr, "search_steps": args.cw_search}),
        );
    }
    if args.method == Method::Hag {
        obj.insert("hag_beta".into(), json!(args.hag_beta));
    }
    if let Some((p, counts, m, var)) = &theorem1 {
        let k = bits as f64;
        obj.insert(
            "theorem1".into(),
            json!({"p": p, "predicted_mean": k * (1.0 - p), "predicted_var": k * p * (1.0 - p), "observed_mean": m, "observed_var": var, "histogram": counts}),
        );
        log(
            &pb,
            format!(
                "Theorem 1: distance to other classes' codes mean {m:.2} (predicted {:.2}), variance {var:.2} (predicted {:.2})",
                k * (1.0 - p),
                k * p * (1.0 - p)
            ),
        );
    }

    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        draw_examples(
            dir,
            &examples,
            &set,
            &index,
            &split.database,
            &db_labels,
            &q_labels,
            &clean_codes,
            &adv_codes,
            args.eps,
        )?;
        let hist: Vec<u64> = stats.iter().fold(vec![0u64; bits + 1], |mut c, s| {
            c[s.hamming_to_original as usize] += 1;
            c
        });
        histogram(
            &[(density(&hist), [200, 40, 40])],
            None,
            BinAxis::INTEGERS,
            &dir.join("hamming_to_original.png"),
        )?;
        if let Some((p, counts, _, _)) = &theorem1 {
            let (k, p) = (bits as f64, *p);
            let (mu, var) = (k * (1.0 - p), k * p * (1.0 - p));
            let gauss: Vec<f64> = (0..=bits)
                .map(|d| {
                    (-(d as f64 - mu).powi(2) / (2.0 * var)).exp()
                        / (2.0 * std::f64::consts::PI * var).sqrt()
                })
                .collect();
            histogram(
                &[(density(counts), [60, 90, 200])],
                Some((&gauss, [0, 0, 0])),
                BinAxis::INTEGERS,
                &dir.join("theorem1.png"),
            )?;
        }
    }
    let path = args.report.clone().unwrap_or_else(|| match &args.out {
        Some(d) => d.join("report.json"),
        None => run.file(&format!(
            "attack-{}.json",
            format!("{:?}", args.method).to_lowercase()
        )),
    });
    write_atomic(&path, &serde_json::to_vec_pretty(&report)?).context("writing the report")?;
    let headline = match t_map {
        Some((c, a)) => format!("t-mAP {c:.4} -> {a:.4}"),
        None => format!("mAP {:.4} -> {:.4}", clean.map_all, adv.map_all),
    };
    println!(
        "{:?} on {} queries: {headline}, success {:.1}%, mean L∞ {:.4}, mean L2 {:.3}, {:.0}s -> {}",
        args.method,
        queries.len(),
        100.0 * success_rate,
        mean(&|s| s.linf as f64),
        mean(&|s| s.l2 as f64),
        attack_seconds,
        path.display()
    );
    Ok(())
}

/// Rows: original, adversarial, amplified perturbation, top-5 before, top-5 after (framed
/// green when relevant to the query's true label, red otherwise).
#[allow(clippy::too_many_arguments)]
fn draw_examples(
    dir: &std::path::Path,
    examples: &[(Vec<f32>, Vec<f32>)],
    set: &hashguard_core::data::ImageSet,
    index: &HammingIndex,
    database: &[usize],
    db_labels: &[LabelSet],
    q_labels: &[LabelSet],
    clean: &PackedCodes,
    adv: &PackedCodes,
    eps: f32,
) -> Result<()> {
    let (h, w) = (set.height, set.width);
    let mut grid = Grid::new(examples.len() as u32, 13, h as u32, w as u32, 2);
    for (r, (x, a)) in examples.iter().enumerate() {
        let r32 = r as u32;
        grid.put(r32, 0, x, set.shape(), None);
        grid.put(r32, 1, a, set.shape(), None);
        let amplified: Vec<f32> = x
            .iter()
            .zip(a)
            .map(|(p, q)| 0.5 + (q - p) / (2.0 * eps))
            .collect();
        grid.put(r32, 2, &amplified, set.shape(), None);
        for (col0, codes) in [(3u32, clean), (8u32, adv)] {
            for (j, nb) in index.top_k(codes.code(r), 5).iter().enumerate() {
                let rel = db_labels[nb.index].shares(q_labels[r]);
                let frame = if rel { [40, 170, 40] } else { [210, 40, 40] };
                grid.put_image(r32, col0 + j as u32, set, database[nb.index], Some(frame));
            }
        }
    }
    grid.save(&dir.join("examples.png"))
}

#[cfg(test)]
mod tests {
    use super::parse_fraction;

    #[test]
    fn budgets_parse_as_numbers_or_fractions() {
        assert!((parse_fraction("8/255").unwrap() - 8.0 / 255.0).abs() < 1e-9);
        assert_eq!(parse_fraction("0.5").unwrap(), 0.5);
        assert_eq!(parse_fraction("1").unwrap(), 1.0);
        for bad in ["0", "-1/255", "2", "8/0", "x/255", "nan", ""] {
            assert!(parse_fraction(bad).is_err(), "{bad} accepted");
        }
    }
}
