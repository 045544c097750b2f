//! `table3.md`: Table 3 rendered with mean ± std over seeds, the masking-proof block, its
//! checks, each method's lead over FreeAT and how that lead changes from scratch, then the
//! paper's CIFAR-10 rows.

use super::MASKING_TOLERANCE;
use super::report::*;

/// Rows of the same method (its seeds), in table order.
pub fn grouped(rows: &[RowReport]) -> Vec<Vec<&RowReport>> {
    let mut groups: Vec<Vec<&RowReport>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|g| g[0].row == row.row) {
            Some(g) => g.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
}

/// Mean and sample standard deviation (0 for one value) of the finite `values`.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// `0.717` for one seed, `0.717 ± 0.004` for several; `scale` 100 renders percentages.
fn cell(values: &[f64], scale: f64, decimals: usize) -> String {
    let (m, sd) = mean_std(values);
    if m.is_nan() {
        "–".into()
    } else if values.len() > 1 {
        format!("{:.decimals$} ± {:.decimals$}", m * scale, sd * scale)
    } else {
        format!("{:.decimals$}", m * scale)
    }
}

/// `yes`, `no`, or `no (1 of 3)` over a row's seeds; `–` when not measured.
fn verdict(values: &[Option<bool>]) -> String {
    let v: Vec<bool> = values.iter().flatten().copied().collect();
    let failed = v.iter().filter(|&&b| !b).count();
    match (v.len(), failed) {
        (0, _) => "–".into(),
        (_, 0) => "yes".into(),
        (n, f) if n == f => "no".into(),
        (n, f) => format!("no ({f} of {n})"),
    }
}

/// `table3.md`: the rows (mean ± std over seeds), the masking-proof block and its checks, then
/// the paper's CIFAR-10 rows.
pub fn table3_markdown(r: &Table3Report) -> String {
    let st = &r.settings;
    let queries = r.rows.first().map_or(0, |x| x.queries);
    let groups = grouped(&r.rows);
    let seeds = groups.iter().map(|g| g.len()).max().unwrap_or(1);
    // A method with fewer seeds than the others says how many it has.
    let name = |g: &[&RowReport]| {
        if g.len() < seeds && g[0].training.is_some() {
            format!("{} ({} of {seeds} seeds)", g[0].row, g.len())
        } else {
            g[0].row.clone()
        }
    };
    let col = |g: &[&RowReport], f: &dyn Fn(&RowReport) -> f64| {
        let v: Vec<f64> = g.iter().map(|x| f(x)).collect();
        cell(&v, 1.0, 3)
    };
    let mut s = format!(
        "# Table 3 analogue: adversarial training vs attacks and UMCD\n\n\
         Adversarial training at eps {:.0}/255. mAP over the whole database on {queries} queries; \
         attacks at eps {:.0}/255, step {:.0}/255 (no random start); DHTA-{} t-mAP towards a class the query lacks; UMCD detection rate \
         (%) of PGD-{} examples at a {:.0}% FPR calibrated on each model's own benign images, \
         with the share each criterion flags (C1/C2/C3).{}\n\n| Training | Benign |",
        r.at_eps * 255.0,
        st.eps * 255.0,
        st.step.min(st.eps) * 255.0,
        st.dhta_steps,
        st.pgd_steps.last().copied().unwrap_or(0),
        st.fpr * 100.0,
        if seeds > 1 {
            format!(
                " Adversarial rows: mean ± sample std over {seeds} trainings (seeds base … base + \
                 {}); the same queries and attacks evaluate every seed.",
                seeds - 1
            )
        } else {
            String::new()
        }
    );
    for steps in &st.pgd_steps {
        s.push_str(&format!(" PGD-{steps} |"));
    }
    s.push_str(
        " DHTA t-mAP | UMCD detection % | C1 / C2 / C3 % | updates / batch | train s |\n|---|---:|",
    );
    s.push_str(&"---:|".repeat(st.pgd_steps.len() + 5));
    s.push('\n');
    for g in &groups {
        let first = g[0];
        s.push_str(&format!("| {} | {} |", name(g), col(g, &|x| x.clean_map)));
        for i in 0..first.pgd.len() {
            s.push_str(&format!(
                " {} |",
                col(g, &|x| x.pgd.get(i).map_or(f64::NAN, |p| p.map))
            ));
        }
        let crit: Vec<String> = (0..first.umcd.criterion_rates.len())
            .map(|i| {
                let v: Vec<f64> = g
                    .iter()
                    .map(|x| x.umcd.criterion_rates.get(i).copied().unwrap_or(f64::NAN))
                    .collect();
                format!("{:.1}", 100.0 * mean_std(&v).0)
            })
            .collect();
        let secs: Vec<f64> = g.iter().filter_map(|x| x.train_seconds).collect();
        s.push_str(&format!(
            " {} | {} | {} | {} | {} |\n",
            col(g, &|x| x.dhta.t_map),
            cell(
                &g.iter().map(|x| x.umcd.detection_rate).collect::<Vec<_>>(),
                100.0,
                1
            ),
            crit.join(" / "),
            first
                .training
                .as_ref()
                .map_or("–".into(), |t| t.updates_per_batch().to_string()),
            if secs.is_empty() {
                "–".into()
            } else {
                format!("{:.0}", mean_std(&secs).0)
            }
        ));
    }
    s.push_str(
        "\nTraining seconds of adversarial rows are the fine-tuning alone (they start from the \
         no-AT run); rows marked (scratch) start from random weights on the no-AT run's split. Figure table3.png (and .svg): one group of bars per row, in table order — \
         benign, then each PGD column.\n",
    );
    if !r.pending.is_empty() {
        s.push_str(&format!(
            "\nNot evaluated yet (`--rows` left them out and no earlier report holds them): {}.\n",
            r.pending.join(", ")
        ));
    }
    if !st.robust_eps.is_empty() {
        s.push_str(&robust_markdown(r, &groups));
    }
    if !r.leads.is_empty() {
        s.push_str(&leads_markdown(&r.leads));
    }
    if !r.start.is_empty() {
        s.push_str(&super::start::start_markdown(&r.start));
    }
    s.push_str(
        "\nThe paper's CIFAR-10 rows (ResNet-50, FreeAT from scratch), for comparison:\n\n\
         | Training | Benign | PGD-8 | PGD-40 | PGD-100 |\n|---|---:|---:|---:|---:|\n",
    );
    let f = |x: f64| format!("{x:.3}");
    for p in &r.paper_cifar10_freeat {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            p.row,
            f(p.clean),
            f(p.pgd8),
            f(p.pgd40),
            f(p.pgd100)
        ));
    }
    s
}

/// The masking-proof block and the gradient-masking checks of `table3.md`.
fn robust_markdown(r: &Table3Report, groups: &[Vec<&RowReport>]) -> String {
    let st = &r.settings;
    let radius = |e: f32| format!("{:.0}/255", e * 255.0);
    let mut s = format!(
        "\n## Masking-proof evaluation\n\n\
         PGD-{} from a uniform random start in the ball, {} run(s) per image keeping each image's \
         best (lowest-mAP) run; DHTA-{} t-mAP; transfer: this model's mAP on the same PGD's \
         examples crafted on the no-AT model (a transfer attack weaker than the white-box one is \
         expected; the reverse points to gradient masking).\n\n| Training | Benign |",
        st.robust_steps, st.restarts, st.dhta_steps
    );
    for &e in &st.robust_eps {
        s.push_str(&format!(
            " PGD {0} | DHTA t-mAP {0} | transfer {0} |",
            radius(e)
        ));
    }
    s.push_str("\n|---|---:|");
    s.push_str(&"---:|---:|---:|".repeat(st.robust_eps.len()));
    s.push('\n');
    for g in groups {
        let v = |f: &dyn Fn(&RowReport) -> f64| {
            cell(&g.iter().map(|x| f(x)).collect::<Vec<_>>(), 1.0, 3)
        };
        s.push_str(&format!("| {} | {} |", g[0].row, v(&|x| x.clean_map)));
        for i in 0..st.robust_eps.len() {
            let point = |x: &RowReport| x.robust.get(i).cloned();
            s.push_str(&format!(
                " {} | {} | {} |",
                v(&|x| point(x).map_or(f64::NAN, |p| p.pgd_map)),
                v(&|x| point(x).map_or(f64::NAN, |p| p.dhta_t_map)),
                v(&|x| point(x).and_then(|p| p.transfer_map).unwrap_or(f64::NAN)),
            ));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\nGradient-masking checks (a stronger attack may not raise mAP by more than {:.1} \
         points): mAP falls with PGD's steps (clean, then each length) and with the radius; the \
         transfer attack is weaker than the white-box one; the change from the next-longest to \
         the longest PGD and from the plain PGD-{} to its random-restart form at {} (under one \
         point: converged).\n\n\
         | Training | falls with steps | falls with eps | transfer weaker | longest PGD Δ | restarts Δ |\n\
         |---|---|---|---|---:|---:|\n",
        100.0 * MASKING_TOLERANCE,
        st.robust_steps,
        radius(st.eps)
    ));
    for g in groups {
        let checks: Vec<MaskingChecks> = g
            .iter()
            .map(|x| {
                r.checks
                    .iter()
                    .find(|c| c.row == x.row && c.replicate == x.replicate())
                    .cloned()
                    .unwrap_or_else(|| MaskingChecks::of(x))
            })
            .collect();
        let delta = |f: &dyn Fn(&MaskingChecks) -> Option<f64>| {
            let v: Vec<f64> = checks.iter().filter_map(f).collect();
            if v.is_empty() {
                "–".into()
            } else {
                cell(&v, 100.0, 2)
            }
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            g[0].row,
            verdict(
                &checks
                    .iter()
                    .map(|c| Some(c.steps_monotone))
                    .collect::<Vec<_>>()
            ),
            verdict(&checks.iter().map(|c| c.eps_monotone).collect::<Vec<_>>()),
            verdict(&checks.iter().map(|c| c.transfer_weaker).collect::<Vec<_>>()),
            delta(&|c| c.longest_pgd_change),
            delta(&|c| c.restarts_change),
        ));
    }
    s.push_str("\nΔ in mAP points (negative: the stronger attack found lower mAP).\n");
    s
}

/// `+1.8 ± 0.9` (points; the standard error when there is one).
fn points(d: &Difference) -> String {
    match d.se {
        _ if d.mean.is_nan() => "–".into(),
        Some(se) => format!("{:+.1} ± {:.1}", 100.0 * d.mean, 100.0 * se),
        None => format!("{:+.1}", 100.0 * d.mean),
    }
}

/// The distinct radii of `eps`, in first-seen order.
fn radii(eps: impl Iterator<Item = f32>) -> Vec<f32> {
    eps.fold(Vec::new(), |mut v, e| {
        if !v.iter().any(|&x| same_radius(x, e)) {
            v.push(e);
        }
        v
    })
}

/// The leads over FreeAT at equal updates, one row per method.
fn leads_markdown(leads: &[Lead]) -> String {
    let lines: Vec<_> = leads
        .iter()
        .map(|l| {
            let cells = format!(
                "{} | {} | {} / {}",
                l.row, l.reference, l.seeds, l.reference_seeds
            );
            (cells, &l.clean, l.robust.as_slice())
        })
        .collect();
    difference_table(
        "\n## Against FreeAT at equal updates\n\n\
         Each method's mean minus FreeAT's, in mAP points, FreeAT trained with the same parameter \
         updates per batch from the same start (seeds: the method's / FreeAT's); ± Welch's \
         standard error of the difference (sample standard deviations over seeds) where both \
         have two or more seeds — with two or three seeds a rough guide, not a test.\n\n\
         | Training | against | seeds |",
        &lines,
    )
}

/// A table of differences in mAP points after `head` (its heading, text and first three column
/// names, `| a | b | c |`): per line its first three cells, the clean difference, then one
/// column per radius any line has.
pub(super) fn difference_table(
    head: &str,
    lines: &[(String, &Difference, &[RadiusLead])],
) -> String {
    let radii = radii(lines.iter().flat_map(|(_, _, r)| r.iter().map(|p| p.eps)));
    let mut s = format!("{head} clean |");
    for &e in &radii {
        s.push_str(&format!(" PGD {:.0}/255 |", e * 255.0));
    }
    s.push_str("\n|---|---|---:|---:|");
    s.push_str(&"---:|".repeat(radii.len()));
    s.push('\n');
    for (cells, clean, robust) in lines {
        s.push_str(&format!("| {cells} | {} |", points(clean)));
        for &e in &radii {
            let cell = robust
                .iter()
                .find(|p| same_radius(p.eps, e))
                .map_or("–".into(), |p| points(&p.pgd));
            s.push_str(&format!(" {cell} |"));
        }
        s.push('\n');
    }
    s
}
