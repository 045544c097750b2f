//! `hashguard reproduce --table 3`: the UMCD appendix's Table 3, extended — clean mAP, mAP under
//! PGD-8/40/100, DHTA t-mAP and UMCD's detection rate, for no adversarial training, FreeAT
//! m ∈ {2, 4, 8, 16}, CgAT and SAAT, each fine-tuned from the same trained run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use hashguard_core::adv_train::AdvTraining;
use hashguard_core::run::write_atomic;
use serde_json::{Value, json};

use super::{Bench, DetectionArgs, Loaded, Method};
use crate::backend::Selected;
use crate::commands::attack::parse_fraction;
use crate::commands::train::ensure_fine_tuned;
use crate::plot::bar_groups;

/// Flags of `reproduce --table 3`.
#[derive(Args, Debug, Clone)]
pub struct RobustnessArgs {
    /// Table 3: FreeAT replays m to train and compare (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16")]
    freeat_m: Vec<usize>,
    /// Table 3: cost of each FreeAT row in passes over the training set; FreeAT m runs
    /// ⌈budget / m⌉ epochs of m replays (Shafahi et al. keep the cost of standard training).
    #[arg(long, default_value_t = 16)]
    freeat_budget: usize,
    /// Table 3: epochs of CgAT and SAAT (each costs about 5 passes: 7 PGD steps on the
    /// inference copy plus the training pass).
    #[arg(long, default_value_t = 3)]
    at_epochs: usize,
    /// Table 3: base learning rate of the adversarial fine-tuning (Adam, cosine decay).
    #[arg(long, default_value_t = 3e-4)]
    at_lr: f64,
    /// Table 3: L∞ radius of the adversarial training (pixel units; the paper: 8/255). CgAT's
    /// and SAAT's inner step scales with it (eps/4), FreeAT's step is eps.
    #[arg(long, default_value = "8/255", value_parser = parse_fraction)]
    at_eps: f32,
    /// Table 3: PGD iterations to evaluate (comma-separated; the last also feeds UMCD).
    #[arg(long, value_delimiter = ',', default_value = "8,40,100")]
    pgd_steps: Vec<usize>,
}

/// One row of the table: a name and, for adversarially trained rows, how it is trained.
struct Row {
    name: String,
    training: Option<(AdvTraining, usize)>,
}

impl RobustnessArgs {
    fn validate(&self) -> Result<()> {
        if self.freeat_m.iter().any(|&m| m == 0 || m > 64) {
            bail!("--freeat-m values must lie in 1..=64");
        }
        if self.freeat_budget == 0 || self.at_epochs == 0 {
            bail!("--freeat-budget and --at-epochs must be at least 1");
        }
        if !(self.at_lr > 0.0 && self.at_lr.is_finite()) {
            bail!("--at-lr {} must be a positive number", self.at_lr);
        }
        if self.pgd_steps.is_empty() || self.pgd_steps.contains(&0) {
            bail!("--pgd-steps needs at least one positive iteration count");
        }
        Ok(())
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = vec![Row {
            name: "no AT".into(),
            training: None,
        }];
        for &m in &self.freeat_m {
            let a = AdvTraining::free(m).with_eps(self.at_eps);
            rows.push(Row {
                name: a.label(),
                training: Some((a, self.freeat_budget.div_ceil(m))),
            });
        }
        for a in [AdvTraining::cgat(), AdvTraining::saat()] {
            let a = a.with_eps(self.at_eps);
            rows.push(Row {
                name: a.label(),
                training: Some((a, self.at_epochs)),
            });
        }
        rows
    }
}

/// Runs `hashguard reproduce --table 3` into `out`: trains the missing models under
/// `out/models/`, evaluates every row (cached in `out/rows/`), writes `table3.md`,
/// `table3.json` and `table3.png`.
pub fn run(c: &DetectionArgs, r: &RobustnessArgs, out: &Path, selected: &Selected) -> Result<()> {
    r.validate()?;
    let mut pgd_steps = r.pgd_steps.clone();
    pgd_steps.sort_unstable();
    pgd_steps.dedup();
    let rows = r.rows();
    for dir in ["models", "rows"] {
        std::fs::create_dir_all(out.join(dir))
            .with_context(|| format!("creating {}", out.join(dir).display()))?;
    }
    // Train first (the long part, resumable), then evaluate.
    let mut runs: Vec<PathBuf> = Vec::new();
    for row in &rows {
        match &row.training {
            None => runs.push(c.run.clone()),
            Some((method, epochs)) => {
                let dir = out.join("models").join(method.label());
                eprintln!("== {}: {epochs} epochs from {}", row.name, c.run.display());
                ensure_fine_tuned(&c.run, &dir, method.clone(), *epochs, r.at_lr, selected)?;
                runs.push(dir);
            }
        }
    }
    let settings = json!({
        "eps": c.eps, "step": c.step, "pgd_steps": pgd_steps, "dhta_steps": c.steps,
        "queries": c.queries, "calibration": c.calibration, "fpr": c.fpr, "seed": c.seed,
        "k": c.k, "blur": c.blur, "n_t": c.n_t,
    });
    let mut results = Vec::new();
    for (row, run) in rows.iter().zip(&runs) {
        let cache = out
            .join("rows")
            .join(format!("{}.json", row.name.replace(' ', "-")));
        if let Some(hit) = cached(&cache, run, &settings) {
            eprintln!(
                "== {}: evaluation reused from {}",
                row.name,
                cache.display()
            );
            results.push(hit);
            continue;
        }
        eprintln!("== {}: evaluating {}", row.name, run.display());
        let mut value = evaluate(c, run, &pgd_steps, selected)?;
        value["row"] = json!(row.name);
        value["run"] = json!(run);
        value["settings"] = settings.clone();
        if let Some((method, epochs)) = &row.training {
            value["training"] = json!({"method": method, "epochs": epochs, "lr": r.at_lr});
        }
        value["train_seconds"] = train_seconds(run);
        write_atomic(&cache, &serde_json::to_vec_pretty(&value)?)?;
        results.push(value);
    }

    let report = json!({
        "table": 3,
        "base_run": c.run,
        "at_eps": r.at_eps,
        "settings": settings,
        "rows": results,
        "backend": selected.info,
        "paper_cifar10_freeat": paper_rows(),
    });
    write_atomic(
        &out.join("table3.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    let md = markdown(&results, &pgd_steps, c, r.at_eps);
    write_atomic(&out.join("table3.md"), md.as_bytes())?;
    let groups: Vec<Vec<f64>> = results
        .iter()
        .map(|v| {
            std::iter::once(v["clean_map"].as_f64().unwrap_or(0.0))
                .chain(
                    v["pgd"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| p["map"].as_f64().unwrap_or(0.0)),
                )
                .collect()
        })
        .collect();
    bar_groups(&groups, &out.join("table3.png"))?;
    println!("{md}");
    println!("table3.md, table3.json and table3.png -> {}", out.display());
    Ok(())
}

/// A row evaluated before with the same model and settings.
fn cached(path: &Path, run: &Path, settings: &Value) -> Option<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let model_time = std::fs::metadata(run.join("model.bpk"))
        .and_then(|m| m.modified())
        .ok()?;
    let row_time = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    (v["settings"] == *settings && v["run"] == json!(run) && row_time >= model_time).then_some(v)
}

/// Seconds of training recorded in the run's `train.json` (the fine-tuning alone for rows
/// started from another run).
fn train_seconds(run: &Path) -> Value {
    std::fs::read(run.join("train.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map_or(Value::Null, |v| v["train_seconds"].clone())
}

/// Clean and attacked mAP, DHTA t-mAP and UMCD's detection of the strongest PGD, on `run`.
fn evaluate(
    c: &DetectionArgs,
    run: &Path,
    pgd_steps: &[usize],
    selected: &Selected,
) -> Result<Value> {
    let mut c = c.clone();
    c.run = run.to_path_buf();
    let ctx = Loaded::load(&c, selected)?;
    let bench = Bench::prepare(&ctx, &c, selected, Some(&[]))?;
    let mut pgd = Vec::new();
    let mut strongest = None;
    let mut clean_map = 0.0;
    for &steps in pgd_steps {
        let attack = DetectionArgs { steps, ..c.clone() };
        let crafted = bench.craft(Method::Pgd, c.eps, &attack, selected)?;
        clean_map = crafted.clean_map;
        pgd.push(json!({
            "steps": steps,
            "map": crafted.adv_map,
            "success_rate": rate(&crafted.success),
            "mean_hamming_to_original": crafted.mean_hamming_to_original,
        }));
        strongest = Some(crafted);
    }
    let mut strongest = strongest.context("no PGD iteration count")?;
    let outcome = bench
        .evaluate(&mut strongest)?
        .pop()
        .context("UMCD outcome")?;
    let dhta = bench.craft(Method::Dhta, c.eps, &c, selected)?;
    let held_out_fpr = bench.calibrations[0].flag_rate(&bench.benign_test[0]);
    Ok(json!({
        "clean_map": clean_map,
        "pgd": pgd,
        "dhta": {"steps": c.steps, "clean_t_map": dhta.clean_map, "t_map": dhta.adv_map,
                 "success_rate": rate(&dhta.success)},
        "umcd": {
            "attack": format!("PGD-{}", pgd_steps.last().copied().unwrap_or(0)),
            "detection_rate": 1.0 - outcome.miss_rate,
            "detection_rate_successful": 1.0 - outcome.miss_rate_successful,
            "auc": outcome.auc,
            "criterion_rates": outcome.criterion_rates,
            "held_out_benign_fpr": held_out_fpr,
            "selection": bench.selection,
        },
        "queries": bench.queries.len(),
    }))
}

fn rate(success: &[bool]) -> f64 {
    success.iter().filter(|&&s| s).count() as f64 / success.len().max(1) as f64
}

/// The UMCD paper's Table 3 (CIFAR-10, ResNet-50, FreeAT from scratch), quoted for comparison.
fn paper_rows() -> Value {
    json!([
        {"row": "no AT", "clean": 0.854, "pgd8": 0.028, "pgd40": 0.030, "pgd100": 0.033},
        {"row": "freeat-m2", "clean": 0.889, "pgd8": 0.070, "pgd40": 0.035, "pgd100": 0.035},
        {"row": "freeat-m4", "clean": 0.838, "pgd8": 0.222, "pgd40": 0.070, "pgd100": 0.055},
        {"row": "freeat-m8", "clean": 0.769, "pgd8": 0.328, "pgd40": 0.146, "pgd100": 0.130},
        {"row": "freeat-m16", "clean": 0.683, "pgd8": 0.278, "pgd40": 0.122, "pgd100": 0.114},
    ])
}

fn markdown(results: &[Value], pgd_steps: &[usize], c: &DetectionArgs, at_eps: f32) -> String {
    let f = |v: &Value| v.as_f64().map_or("–".into(), |x| format!("{x:.3}"));
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("–".into(), |x| format!("{:.1}", 100.0 * x))
    };
    let queries = results
        .first()
        .map_or(Value::Null, |r| r["queries"].clone());
    let mut s = format!(
        "# Table 3 analogue: adversarial training vs attacks and UMCD\n\n\
         Adversarial training at eps {:.0}/255. mAP over the whole database on {queries} queries; \
         attacks at eps {:.0}/255, step {:.0}/255 (no random start); DHTA-{} t-mAP towards a class the query lacks; UMCD detection rate \
         (%) of PGD-{} examples at a {:.0}% FPR calibrated on each model's own benign images, \
         with the share each criterion flags (C1/C2/C3).\n\n| Training | Benign |",
        at_eps * 255.0,
        c.eps * 255.0,
        c.step.min(c.eps) * 255.0,
        c.steps,
        pgd_steps.last().copied().unwrap_or(0),
        c.fpr * 100.0
    );
    for st in pgd_steps {
        s.push_str(&format!(" PGD-{st} |"));
    }
    s.push_str(" DHTA t-mAP | UMCD detection % | C1 / C2 / C3 % | train s |\n|---|---:|");
    s.push_str(&"---:|".repeat(pgd_steps.len() + 4));
    s.push('\n');
    for r in results {
        s.push_str(&format!(
            "| {} | {} |",
            r["row"].as_str().unwrap_or("?"),
            f(&r["clean_map"])
        ));
        for p in r["pgd"].as_array().into_iter().flatten() {
            s.push_str(&format!(" {} |", f(&p["map"])));
        }
        let crit: Vec<String> = r["umcd"]["criterion_rates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(pct)
            .collect();
        s.push_str(&format!(
            " {} | {} | {} | {} |\n",
            f(&r["dhta"]["t_map"]),
            pct(&r["umcd"]["detection_rate"]),
            crit.join(" / "),
            r["train_seconds"]
                .as_f64()
                .map_or("–".into(), |x| format!("{x:.0}"))
        ));
    }
    s.push_str(
        "\nTraining seconds of adversarial rows are the fine-tuning alone (they start from the \
         no-AT run). Figure table3.png: one group of bars per row, in table order — benign, then \
         each PGD column, darker for more steps.\n\n\
         The paper's CIFAR-10 rows (ResNet-50, FreeAT from scratch), for comparison:\n\n\
         | Training | Benign | PGD-8 | PGD-40 | PGD-100 |\n|---|---:|---:|---:|---:|\n",
    );
    for p in paper_rows().as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            p["row"].as_str().unwrap_or("?"),
            f(&p["clean"]),
            f(&p["pgd8"]),
            f(&p["pgd40"]),
            f(&p["pgd100"])
        ));
    }
    s
}
