//! `hashguard attack`: flags → [`AttackConfig`], then the library's attack experiment on the
//! run's queries; writes its typed report as JSON and, with `--out`, the figures (examples
//! grid, Hamming histogram, Theorem 1).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hashguard_core::attacks::{AdaptiveWeights, CwMargin, StepRule};
use hashguard_core::experiments::{
    AttackConfig, AttackKind, AttackSpec, CwSettings, TargetSelection, run_attack,
};
use hashguard_core::run::write_atomic;

use super::{kind, margin, open_with_database, pixel_budget};
use crate::backend::Selected;
use crate::progress::{bar, log};

mod figures;

/// Flags of `hashguard attack`.
#[derive(Args, Debug)]
pub struct AttackArgs {
    /// Run directory written by `hashguard train`.
    #[arg(long)]
    run: PathBuf,
    /// Attack method: pgd, hag, dhta, cw, adaptive (the white-box attacker who knows UMCD),
    /// centre (CgAT's: away from the centre code of the query's labels) or mainstay (SAAT's:
    /// away from its DMFL mainstay code).
    #[arg(long, value_parser = kind)]
    method: AttackKind,
    /// L∞ budget in pixel units: a number in (0, 1] or a fraction such as 8/255 (PGD, HAG, DHTA).
    #[arg(long, default_value = "8/255", value_parser = pixel_budget)]
    eps: f32,
    /// Step size of PGD, HAG and DHTA, same units as --eps.
    #[arg(long, default_value = "1/255", value_parser = pixel_budget)]
    step: f32,
    /// Iterations (default 100; 500 Adam steps for CW).
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    steps: Option<usize>,
    /// Start PGD from a uniform random point of the L∞ ball.
    #[arg(long)]
    random_start: bool,
    /// PGD family: independent runs per image (needs --random-start); each image keeps the run
    /// that did best on the attack's success measure.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 1)]
    restarts: usize,
    /// Attack only this many queries (a seeded random subset); default all.
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    queries: Option<usize>,
    /// DHTA: attack towards this class (it must be in the database; queries of that class are
    /// left out); default a random class each query does not have.
    #[arg(long)]
    target: Option<usize>,
    /// Targeted attacks: database codes voting for the anchor (default 9 for DHTA, 1 — one
    /// benign image's code — for the white-box attacker).
    #[arg(value_parser = crate::commands::positive::<usize>, long)]
    n_t: Option<usize>,
    /// PGD family: relax f = tanh(α z) with α ramped from 0.1 to 1 over the steps (DHTA's
    /// schedule; also keeps gradients alive where tanh saturates).
    #[arg(long)]
    alpha_schedule: bool,
    /// Relaxation α in (0, 1]: objectives see tanh(α z) instead of f = tanh(z). Values below 1
    /// keep gradients alive where a confident model's tanh saturates; 1 is the papers' form.
    #[arg(value_parser = crate::commands::positive::<f32>, long, default_value_t = 1.0)]
    relax: f32,
    /// HAG: weight of the bit-balance term.
    #[arg(value_parser = crate::commands::non_negative::<f32>, long, default_value_t = 1.0)]
    hag_beta: f32,
    /// CW: weight c of the hashing term (with the logit margin, c below ~100 rarely flips
    /// K/2 bits of a confident model in 500 steps; docs/results.md).
    #[arg(value_parser = crate::commands::positive::<f32>, long, default_value_t = 1000.0)]
    cw_c: f32,
    /// CW: margin κ (on f·h/K for `--cw-margin relaxed`, on the chosen bits' logit margins for
    /// `logits`).
    #[arg(value_parser = crate::commands::non_negative::<f32>, long, default_value_t = 0.1)]
    cw_kappa: f32,
    /// CW: hashing term — `logits` (CW's logit margin over the K/2 + 1 cheapest bits) or
    /// `relaxed` (f·h/K on tanh codes, which saturate on confident models).
    #[arg(long, default_value = "logits", value_parser = margin)]
    cw_margin: CwMargin,
    /// CW: rounds of per-image binary search over c after the first (0 keeps c fixed).
    #[arg(long, default_value_t = 0)]
    cw_search: usize,
    /// CW: Adam learning rate.
    #[arg(value_parser = crate::commands::positive::<f32>, long, default_value_t = 0.01)]
    cw_lr: f32,
    /// White-box attacker: weight λ1 of its quantisation term (UMCD eq. 13).
    #[arg(value_parser = crate::commands::non_negative::<f32>, long, default_value_t = 0.0075)]
    lambda1: f32,
    /// White-box attacker: weight λ2 of its blurred-copy term.
    #[arg(value_parser = crate::commands::non_negative::<f32>, long, default_value_t = 3.0)]
    lambda2: f32,
    /// White-box attacker: side of the mean blur it anticipates (UMCD's C3 window).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 2)]
    adaptive_blur: usize,
    /// White-box attacker: APGD with this many random restarts instead of the paper's fixed
    /// steps (0).
    #[arg(long, default_value_t = 0)]
    apgd_restarts: usize,
    /// Images per attack batch.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 64)]
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

impl AttackArgs {
    /// The flags as the library's configuration.
    fn config(&self) -> AttackConfig {
        let base = AttackSpec::new(self.method);
        AttackConfig {
            spec: AttackSpec {
                kind: self.method,
                eps: self.eps,
                step: self.step,
                steps: self.steps.unwrap_or(self.method.default_steps()),
                random_start: self.random_start,
                restarts: self.restarts,
                relax: self.relax,
                alpha_schedule: self.alpha_schedule,
                hag_beta: self.hag_beta,
                cw: CwSettings {
                    c: self.cw_c,
                    kappa: self.cw_kappa,
                    margin: self.cw_margin,
                    lr: self.cw_lr,
                    search_steps: self.cw_search,
                },
                target: TargetSelection {
                    label: self.target,
                    n_t: self.n_t.unwrap_or(base.target.n_t),
                },
                adaptive: AdaptiveWeights {
                    lambda1: self.lambda1,
                    lambda2: self.lambda2,
                    blur: self.adaptive_blur,
                    // The C4 term needs a look per target: `reproduce --whitebox --lambda4`.
                    lambda4: 0.0,
                },
                rule: match self.apgd_restarts {
                    0 => StepRule::Fixed,
                    restarts => StepRule::Apgd { restarts },
                },
            },
            queries: self.queries,
            batch_size: self.batch_size,
            seed: self.seed,
        }
    }
}

/// Runs `hashguard attack`.
pub fn run(args: AttackArgs, selected: Selected) -> Result<()> {
    let config = args.config();
    config.spec.validate()?;
    if config.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let (run, index) = open_with_database(&args.run, args.data.as_deref(), &selected)?;
    let spec = &config.spec;
    eprintln!(
        "attacking {} of {} with {} (eps {:.4}, step {:.4}, {} steps) on {} [{}]",
        args.queries
            .map_or_else(|| "the queries".to_string(), |n| format!("{n} queries")),
        args.run.display(),
        spec.kind,
        spec.eps,
        spec.step,
        spec.steps,
        selected.info.kind,
        selected.info.adapter
    );
    let batches = args
        .queries
        .unwrap_or(run.split.query.len())
        .div_ceil(config.batch_size);
    let pb = bar((batches * spec.total_steps()) as u64, "attack");
    let outcome = run_attack(
        &run,
        &index,
        &config,
        selected.info.clone(),
        &selected.device,
        || pb.inc(1),
    )?;
    let report = &outcome.report;
    if let Some(t) = &report.theorem1 {
        log(
            &pb,
            format!(
                "Theorem 1: distance to other classes' codes mean {:.2} (predicted {:.2}), variance {:.2} (predicted {:.2})",
                t.observed_mean, t.predicted_mean, t.observed_var, t.predicted_var
            ),
        );
    }
    pb.finish_and_clear();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        figures::draw(dir, &run, &index, &outcome, spec.eps)?;
    }
    let path = args.report.clone().unwrap_or_else(|| match &args.out {
        Some(d) => d.join("report.json"),
        None => run.dir.file(&format!("attack-{}.json", spec.kind)),
    });
    write_atomic(&path, &crate::config::report_json(report)?).context("writing the report")?;
    let headline = match (report.clean_t_map, report.t_map) {
        (Some(c), Some(a)) => format!("t-mAP {c:.4} -> {a:.4}"),
        _ => format!(
            "mAP {:.4} -> {:.4}",
            report.clean_map,
            report.adv_map.unwrap_or(f64::NAN)
        ),
    };
    println!(
        "{} on {} queries: {headline}, success {:.1}%, mean L∞ {:.4}, mean L2 {:.3}, {:.0}s -> {}",
        spec.kind,
        report.queries,
        100.0 * report.success_rate,
        report.mean_linf,
        report.mean_l2,
        report.attack_seconds,
        path.display()
    );
    Ok(())
}
