//! Table 1 and Table 2 of `reproduce` as Markdown (laid out like the UMCD paper's tables) and
//! Table 1's miss rates printed to the terminal.

use super::Outcome;

/// Detector names in first-seen order.
fn detector_names(results: &[Outcome]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.detector.as_str()) {
            names.push(&r.detector);
        }
    }
    names
}

/// A Markdown table: one row per detector, one column per attack, cells `f(outcome)`.
fn metric_table(
    results: &[Outcome],
    attacks: &[String],
    decimals: usize,
    f: fn(&Outcome) -> f64,
) -> String {
    let mut s = format!(
        "| Detector | {} |\n|---|{}\n",
        attacks.join(" | "),
        "---:|".repeat(attacks.len())
    );
    for n in detector_names(results) {
        let cells: Vec<String> = attacks
            .iter()
            .map(|a| {
                results
                    .iter()
                    .find(|r| r.detector == n && r.attack.starts_with(a.as_str()))
                    .map_or("-".into(), |r| format!("{:.*}", decimals, f(r)))
            })
            .collect();
        s += &format!("| {n} | {} |\n", cells.join(" | "));
    }
    s
}

fn miss_percent(r: &Outcome) -> f64 {
    100.0 * r.miss_rate
}

pub(super) fn print_table1(results: &[Outcome], attacks: &[String]) {
    println!("\nMiss rate (%) at the calibrated FPR:\n");
    println!("{}", metric_table(results, attacks, 2, miss_percent));
}

/// Table 1 as Markdown, laid out like the paper's (rows: detectors, columns: attacks), then
/// AUC and TPR at FPR 0.1 / 0.2.
pub(super) fn table1_markdown(
    results: &[Outcome],
    attacks: &[String],
    report: &serde_json::Value,
) -> String {
    let mut s = format!(
        "# Table 1: detection miss rate (%) at {:.0}% FPR\n\n",
        100.0 * report["target_fpr"].as_f64().unwrap_or(0.05)
    );
    s += &metric_table(results, attacks, 2, miss_percent);
    for (title, f) in [
        ("AUC", (|r: &Outcome| r.auc) as fn(&Outcome) -> f64),
        ("TPR at FPR 0.1", |r: &Outcome| r.tpr_at_fpr_0_1),
        ("TPR at FPR 0.2", |r: &Outcome| r.tpr_at_fpr_0_2),
        ("Miss rate (%), successful attacks only", |r: &Outcome| {
            100.0 * r.miss_rate_successful
        }),
    ] {
        s += &format!("\n## {title}\n\n{}", metric_table(results, attacks, 4, f));
    }
    s += "\n## Attacks\n\n| Attack | clean | adversarial | success |\n|---|---:|---:|---:|\n";
    if let Some(list) = report["attacks"].as_array() {
        for a in list {
            s += &format!(
                "| {} | {} {:.4} | {:.4} | {:.1}% |\n",
                a["attack"].as_str().unwrap_or("?"),
                a["metric"].as_str().unwrap_or("mAP"),
                a["clean_map"].as_f64().unwrap_or(f64::NAN),
                a["adv_map"].as_f64().unwrap_or(f64::NAN),
                100.0 * a["success_rate"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    s += "\nHeld-out benign FPR per detector (queries, not used for calibration):\n\n";
    if let Some(list) = report["detectors"].as_array() {
        for d in list {
            s += &format!(
                "- {}: {:.2}%\n",
                d["name"].as_str().unwrap_or("?"),
                100.0 * d["held_out_benign_fpr"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    s += "\nFigures: roc_<attack>_<eps>.png (grey LID, orange FS-Median, purple FS-NLM, green \
          FS-Adaptive, blue MeanBlur, red UMCD); hist_c1/c2/c3.png (grey benign queries, red \
          untargeted PGD, blue targeted DHTA, green CW; C2 binned as log10, 40 bins from the \
          smallest to the largest value).\n";
    s
}

pub(super) fn table2_markdown(rows: &[serde_json::Value], eps: f32) -> String {
    let mut s = format!(
        "# Table 2: ablation, detection rates (eps {:.0}/255)\n\n",
        eps * 255.0
    );
    let attacks: Vec<String> = rows
        .first()
        .and_then(|r| r["detection_rates"].as_array())
        .map(|a| {
            a.iter()
                .map(|x| x["attack"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    s += &format!(
        "| Criteria | {} | held-out benign FPR |\n|---|{}---:|\n",
        attacks.join(" | "),
        "---:|".repeat(attacks.len())
    );
    for r in rows {
        let cells: Vec<String> = r["detection_rates"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| format!("{:.4}", x["rate"].as_f64().unwrap_or(f64::NAN)))
                    .collect()
            })
            .unwrap_or_default();
        s += &format!(
            "| {} | {} | {:.4} |\n",
            r["criteria"].as_str().unwrap_or("?"),
            cells.join(" | "),
            r["held_out_benign_fpr"].as_f64().unwrap_or(f64::NAN)
        );
    }
    s
}
