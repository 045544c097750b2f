//! `hashguard reproduce --table 3`: flags → [`RobustnessConfig`]; trains the selected
//! adversarial rows (and seeds) from the base run (resumable, reused when done), then the
//! library evaluates each (cached in `OUT/rows/`, reusable without the model), the no-AT row
//! first so its examples feed the transfer attack; writes table3.md, table3.json and the charts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use hashguard_core::adv_train::Optimizer;
use hashguard_core::experiments::robustness::{
    Lead, MaskingChecks, RobustnessConfig, Row, RowSettings, StartEffect, Table3Report, cached_row,
    evaluate_row, paper_rows, table3_markdown, transfer_examples,
};
use hashguard_core::run::{RunDir, write_atomic};

use super::{DetectionArgs, table3_figures};
use crate::backend::Selected;
use crate::commands::train::{TargetsArg, TermArg, ensure_trained, parse_optimizer};
use crate::commands::{open_with_database, pixel_budget};
use crate::progress::Bars;

/// Flags of `reproduce --table 3`.
#[derive(Args, Debug, Clone)]
pub struct RobustnessArgs {
    /// Table 3: FreeAT replays m to train and compare (comma-separated).
    #[arg(value_parser = crate::commands::positive::<usize>, long, value_delimiter = ',', default_value = "2,4,8,16")]
    freeat_m: Vec<usize>,
    /// Table 3: cost of each FreeAT row in passes over the training set; FreeAT m runs
    /// ⌈budget / m⌉ epochs of m replays (Shafahi et al. keep the cost of standard training).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 16)]
    freeat_budget: usize,
    /// Table 3: epochs of PGD-AT, CgAT and SAAT (each costs about 5 passes: 7 PGD steps on the
    /// inference copy plus the training pass).
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 3)]
    at_epochs: usize,
    /// Table 3: whether to train PGD-AT's reference row (Madry et al.: PGD away from the hash
    /// centres, trained on those images alone; --at-epochs epochs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pgd_at: bool,
    /// Table 3: also train every adversarial row from scratch (random weights on the base
    /// run's split) with this budget: FreeAT m ⌈B / m⌉ epochs, the others B epochs, each with
    /// the --at-* optimiser, learning rate and weight decay.
    #[arg(value_parser = crate::commands::positive::<usize>, long, value_name = "B")]
    scratch_budget: Option<usize>,
    /// Table 3: base learning rate of the adversarial fine-tuning (Adam, cosine decay).
    #[arg(value_parser = crate::commands::positive::<f64>, long, default_value_t = 3e-4)]
    at_lr: f64,
    /// Table 3: L∞ radius of the adversarial training (pixel units; the paper: 8/255). CgAT's
    /// and SAAT's inner step scales with it (eps/4), FreeAT's step is eps.
    #[arg(long, default_value = "8/255", value_parser = pixel_budget)]
    at_eps: f32,
    /// Table 3: PGD iterations to evaluate (comma-separated; the last also feeds UMCD).
    #[arg(value_parser = crate::commands::positive::<usize>, long, value_delimiter = ',', default_value = "8,40,100")]
    pgd_steps: Vec<usize>,
    /// Table 3: CgAT's and SAAT's alignment terms, a row pair each: `tanh` (the papers'),
    /// `logit` (BCE on the adversarial logits), or `tanh,logit` for the ablation.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tanh")]
    at_term: Vec<TermArg>,
    /// Table 3: where CgAT's target codes come from, a row each: `codes` (the paper's centre
    /// codes of the training codes), `centres` (the items' CSQ hash centres; CSQ base runs), or
    /// `codes,centres` for the ablation (`cgat-centres` rows).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "codes")]
    at_targets: Vec<TargetsArg>,
    /// Table 3: optimiser of the adversarial rows: `adam` or `sgd[:M]` (the reference code's
    /// SGD, momentum 0.9; pair with e.g. --at-lr 0.01).
    #[arg(long, default_value = "adam", value_parser = parse_optimizer)]
    at_optimizer: Optimizer,
    /// Table 3: weight decay of the adversarial rows (default: the base run's; the CgAT/SAAT
    /// reference code's SGD uses 5e-4).
    #[arg(value_parser = crate::commands::non_negative::<f64>, long)]
    at_weight_decay: Option<f64>,
    /// Table 3: train every adversarial row this many times (seeds base, base + 1, …); the
    /// table reports mean ± std.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 1)]
    at_seeds: usize,
    /// Table 3: radii of the masking-proof block — PGD from random starts with --robust-restarts,
    /// DHTA, and PGD crafted on the no-AT model (transfer) at each (comma-separated; `none`
    /// skips the block).
    #[arg(long, value_delimiter = ',', default_value = "8/255,16/255", value_parser = robust_radius)]
    robust_eps: Vec<Option<f32>>,
    /// Table 3: iterations of the masking-proof PGD.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 100)]
    robust_steps: usize,
    /// Table 3: runs per image of the masking-proof PGD, each from its own random start.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 5)]
    robust_restarts: usize,
    /// Table 3: train and evaluate only these rows (comma-separated names such as `cgat`, all
    /// its seeds, or one seed's stem such as `cgat-r0`, `cgat-r1`; default: every row). The no-AT row
    /// is always evaluated; other rows enter the table from earlier reports in OUT/rows (of the
    /// same base weights and settings; their models need not be kept) or are listed as pending.
    /// A long protocol can so be run a few rows at a time.
    #[arg(long, value_delimiter = ',', value_name = "ROWS")]
    rows: Vec<String>,
}

/// Which of `rows` `names` selects (every row when empty; the no-AT row always): a name picks
/// all of its seeds, a file stem (`cgat-r1`, or `cgat-r0` for the first) one seed.
fn wanted_rows(rows: &[Row], names: &[String]) -> Result<Vec<bool>> {
    for name in names {
        if !rows.iter().any(|r| r.matches(name)) {
            let known: Vec<String> = rows.iter().map(Row::stem).collect();
            bail!(
                "--rows {name}: this table has no such row; its rows are {}",
                known.join(", ")
            );
        }
    }
    Ok(rows
        .iter()
        .map(|r| names.is_empty() || r.training.is_none() || names.iter().any(|n| r.matches(n)))
        .collect())
}

fn robust_radius(s: &str) -> Result<Option<f32>, String> {
    if s == "none" {
        return Ok(None);
    }
    pixel_budget(s).map(Some)
}

impl RobustnessArgs {
    /// The flags as the library's configuration.
    fn config(&self) -> RobustnessConfig {
        RobustnessConfig {
            freeat_m: self.freeat_m.clone(),
            freeat_budget: self.freeat_budget,
            at_epochs: self.at_epochs,
            pgd_at: self.pgd_at,
            scratch_budget: self.scratch_budget,
            at_lr: self.at_lr,
            at_eps: self.at_eps,
            pgd_steps: self.pgd_steps.clone(),
            at_terms: self.at_term.iter().map(|&t| t.into()).collect(),
            at_targets: self.at_targets.iter().map(|&t| t.into()).collect(),
            at_optimizer: (self.at_optimizer != Optimizer::Adam).then_some(self.at_optimizer),
            at_weight_decay: self.at_weight_decay,
            at_seeds: self.at_seeds,
            robust_eps: self.robust_eps.iter().flatten().copied().collect(),
            robust_steps: self.robust_steps,
            restarts: self.robust_restarts,
        }
    }
}

/// Runs `hashguard reproduce --table 3` into `out`: trains the missing models of the rows
/// `--rows` selects under `out/models/`, evaluates them (cached in `out/rows/`), adds the rows
/// reported earlier, writes `table3.md`, `table3.json` and the figures (`table3*.png`/`.svg`).
pub fn run(c: &DetectionArgs, r: &RobustnessArgs, out: &Path, selected: &Selected) -> Result<()> {
    let config = r.config();
    config.validate()?;
    let mut detection = c.config();
    // Every row's attacks are cached: a re-run (another seed, the no-AT row's transfer
    // examples) crafts nothing twice.
    detection
        .examples
        .get_or_insert_with(|| out.join("examples"));
    detection.validate()?;
    // A missing or unreadable base run fails here, before anything is written under --out.
    let base = RunDir::open(&c.run)?;
    base.read_config()?;
    let rows = config.rows();
    let wanted = wanted_rows(&rows, &r.rows)?;
    for dir in ["models", "rows"] {
        std::fs::create_dir_all(out.join(dir))
            .with_context(|| format!("creating {}", out.join(dir).display()))?;
    }
    let settings = RowSettings::new(&detection, &config, base.model_fingerprint()?);
    let runs: Vec<PathBuf> = rows
        .iter()
        .map(|row| match row.training {
            None => c.run.clone(),
            Some(_) => out.join("models").join(row.stem()),
        })
        .collect();
    let caches: Vec<PathBuf> = rows
        .iter()
        .map(|row| out.join("rows").join(format!("{}.json", row.stem())))
        .collect();
    let mut hits: Vec<Option<_>> = rows
        .iter()
        .zip(&runs)
        .zip(&caches)
        .map(|((row, run), cache)| cached_row(cache, row, run, &settings))
        .collect();
    // Train first (the long part, resumable), then evaluate; rows already reported are not
    // retrained, rows --rows leaves out wait for another invocation.
    for ((row, dir), (hit, &want)) in rows.iter().zip(&runs).zip(hits.iter().zip(&wanted)) {
        match &row.training {
            Some(t) if hit.is_none() && want => {
                eprintln!(
                    "== {} (seed + {}): {} epochs {} {}",
                    row.name,
                    t.replicate,
                    t.epochs,
                    if t.from_scratch {
                        "from random weights on the split of"
                    } else {
                        "from"
                    },
                    c.run.display()
                );
                ensure_trained(&c.run, dir, t, selected)?;
            }
            _ => {}
        }
    }
    let evaluate: Vec<bool> = hits
        .iter()
        .zip(&wanted)
        .map(|(h, &w)| h.is_none() && w)
        .collect();
    // The no-AT row (first) crafts the others' transfer attack; when its report is cached and
    // another row needs them, they are crafted alone (or read from the example cache).
    let need_transfer = !settings.robust_eps.is_empty() && evaluate[1..].iter().any(|&e| e);
    let mut transfer = Vec::new();
    if need_transfer && hits[0].is_some() {
        eprintln!("== no AT: the transfer examples");
        let (opened, index) = open_with_database(&runs[0], c.data.as_deref(), selected)?;
        transfer = transfer_examples(
            &opened,
            &index,
            &detection,
            &settings,
            &selected.device,
            &mut Bars::default(),
        )?;
    }
    let (mut results, mut pending) = (Vec::new(), Vec::new());
    for (i, (row, run)) in rows.iter().zip(&runs).enumerate() {
        let cache = &caches[i];
        if !evaluate[i] && hits[i].is_none() {
            eprintln!("== {}: not evaluated (left out by --rows)", row.stem());
            pending.push(row.stem());
            continue;
        }
        if let Some(hit) = hits[i].take() {
            eprintln!(
                "== {}: evaluation reused from {}",
                row.name,
                cache.display()
            );
            results.push(hit);
            continue;
        }
        eprintln!("== {}: evaluating {}", row.name, run.display());
        let (opened, index) = open_with_database(run, c.data.as_deref(), selected)?;
        let evaluation = evaluate_row(
            row,
            &opened,
            &index,
            &detection,
            &settings,
            &transfer,
            &selected.device,
            &mut Bars::default(),
        )?;
        if row.training.is_none() {
            transfer = evaluation.examples;
        }
        write_atomic(cache, &serde_json::to_vec_pretty(&evaluation.report)?)?;
        results.push(evaluation.report);
    }
    let checks = results.iter().map(MaskingChecks::of).collect();
    let leads = Lead::all(&results);
    let start = StartEffect::all(&results, &leads);
    let report = Table3Report {
        table: 3,
        base_run: c.run.clone(),
        at_eps: r.at_eps,
        settings,
        rows: results,
        backend: selected.info.clone(),
        paper_cifar10_freeat: paper_rows(),
        checks,
        pending,
        leads,
        start,
    };
    write_atomic(
        &out.join("table3.json"),
        &crate::config::report_json(&report)?,
    )?;
    let md = table3_markdown(&report);
    write_atomic(&out.join("table3.md"), md.as_bytes())?;
    table3_figures::all(&report, out)?;
    println!("{md}");
    println!(
        "table3.md, table3.json and table3*.png -> {}",
        out.display()
    );
    Ok(())
}
