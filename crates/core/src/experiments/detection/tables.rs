//! Table 1 and Table 2 as Markdown, laid out like the UMCD paper's tables (rows: detectors or
//! criteria, columns: attacks), rendered from the typed [`DetectionReport`].

use super::{DetectionReport, Table1Row as Outcome, Table2, Table2Row};

/// Table 1's column headings: each attack's kind (`Untgt`, `Tgt`, `Untgt CW`).
fn columns(report: &DetectionReport) -> Vec<String> {
    report
        .attacks
        .iter()
        .map(|a| a.method.column().to_string())
        .collect()
}

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

/// For each attack whose failures are the clean images themselves (CW), how many failed and
/// the miss rate no detector can go below: a benign image is flagged only as often as the
/// target FPR allows, so at least `(1 − success) · (1 − FPR)` of the examples pass any detector
/// (about: a detector's rate on those images is its benign FPR on a sample). Empty otherwise.
fn failure_floor_notes(report: &DetectionReport) -> String {
    let fpr = report.target_fpr;
    report
        .attacks
        .iter()
        .filter(|a| a.method.returns_clean_on_failure() && a.success_rate < 1.0)
        .map(|a| {
            let failed = 1.0 - a.success_rate;
            format!(
                "- {}: {:.1}% of its examples failed and are the clean images unchanged; no \
                 detector flags a benign image more often than its FPR, so at {:.0}% FPR every \
                 miss rate over all examples is at least about {:.1}% (compare detectors on \
                 the successful attacks only).\n",
                a.attack,
                100.0 * failed,
                100.0 * fpr,
                100.0 * failed * (1.0 - fpr)
            )
        })
        .collect()
}

/// Table 1's miss rates (%) alone, for a terminal.
pub fn table1_miss_rates(report: &DetectionReport) -> String {
    format!(
        "Miss rate (%) at the calibrated FPR:\n\n{}\n{}{}",
        metric_table(&report.table1, &columns(report), 2, miss_percent),
        failure_floor_notes(report),
        paper_protocol_markdown(report)
    )
}

/// Table 1 as Markdown, laid out like the paper's (rows: detectors, columns: attacks), then
/// AUC and TPR at FPR 0.1 / 0.2.
pub fn table1_markdown(report: &DetectionReport) -> String {
    let (results, attacks) = (&report.table1, &columns(report));
    let mut s = format!(
        "# Table 1: detection miss rate (%) at {:.0}% FPR\n\n",
        100.0 * report.target_fpr
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
    for a in &report.attacks {
        s += &format!(
            "| {} | {} {:.4} | {:.4} | {:.1}% |\n",
            a.attack,
            a.metric,
            a.clean_map,
            a.adv_map,
            100.0 * a.success_rate
        );
    }
    let floors = failure_floor_notes(report);
    if !floors.is_empty() {
        s += &format!("\n{floors}");
    }
    if !report.paper_protocol.is_empty() {
        s += &format!("\n{}", paper_protocol_markdown(report));
    }
    s += "\nHeld-out benign FPR per detector (queries, not used for calibration):\n\n";
    for d in &report.detectors {
        s += &format!("- {}: {:.2}%\n", d.name, 100.0 * d.held_out_benign_fpr);
    }
    s += "\nFigures (PNG and SVG): roc_<attack>_<eps> (one ROC per detector, held-out benign \
          queries against the attack's examples); hist_c1/c2/c3 (UMCD's criteria for the benign \
          queries and each attack, UMCD's calibrated threshold marked; C2 binned as log10); \
          map_vs_eps (mAP and t-mAP against the L∞ budget).\n";
    s
}

/// Table 2 as Markdown.
pub fn table2_markdown(table: &Table2) -> String {
    format!(
        "# Table 2: ablation, detection rates (eps {:.0}/255)\n\n{}",
        table.eps * 255.0,
        rates_table(&table.rows)
    )
}

/// The paper's protocol as Markdown: every criterion and baseline alone at the target FPR, and
/// UMCD's union with the FPR it really has (empty when the report has none).
pub fn paper_protocol_markdown(report: &DetectionReport) -> String {
    if report.paper_protocol.is_empty() {
        return String::new();
    }
    format!(
        "## The paper's protocol: each criterion and baseline alone at {:.0}% FPR\n\n\
         Detection rates; the last row flags when any of C1, C2, C3 fires at its own {:.0}% \
         threshold, and its held-out FPR is what that union really costs.\n\n{}",
        100.0 * report.target_fpr,
        100.0 * report.target_fpr,
        rates_table(&report.paper_protocol)
    )
}

/// Rows of detection rates per attack, with each row's held-out benign FPR.
fn rates_table(rows: &[Table2Row]) -> String {
    let attacks: Vec<&str> = rows.first().map_or_else(Vec::new, |r| {
        r.detection_rates
            .iter()
            .map(|x| x.attack.as_str())
            .collect()
    });
    let mut s = format!(
        "| Criteria | {} | held-out benign FPR |\n|---|{}---:|\n",
        attacks.join(" | "),
        "---:|".repeat(attacks.len())
    );
    for r in rows {
        let cells: Vec<String> = r
            .detection_rates
            .iter()
            .map(|x| format!("{:.4}", x.rate))
            .collect();
        s += &format!(
            "| {} | {} | {:.4} |\n",
            r.criteria,
            cells.join(" | "),
            r.held_out_benign_fpr
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::CwMargin;
    use crate::detectors::UmcdConfig;
    use crate::experiments::detection::{
        AttackSummary, CwSummary, Selection, Table2Attack, Table2Row, TableRate,
    };
    use crate::experiments::{AttackKind, BackendInfo};

    fn row(detector: &str, attack: &str, miss: f64) -> Outcome {
        Outcome {
            detector: detector.into(),
            attack: attack.into(),
            miss_rate: miss,
            miss_rate_successful: miss / 2.0,
            auc: 0.9,
            tpr_at_fpr_0_1: 0.7,
            tpr_at_fpr_0_2: 0.8,
            criterion_rates: vec![0.1, 0.2, 0.3],
            held_out_benign_fpr: None,
        }
    }

    fn report() -> DetectionReport {
        let attack = |label: &str, method, eps: f32| AttackSummary {
            attack: label.into(),
            method,
            eps,
            steps: 100,
            clean_map: 0.8,
            adv_map: 0.3,
            metric: "mAP".into(),
            success_rate: 0.5,
            mean_hamming_to_original: 20.0,
            cw: (method == AttackKind::Cw).then_some(CwSummary {
                c: 1000.0,
                margin: CwMargin::Logits,
                lr: 0.01,
                kappa: 0.1,
            }),
        };
        DetectionReport {
            run: "runs/x".into(),
            dataset: "fashion-mnist".into(),
            bits: 64,
            queries: 100,
            target_fpr: 0.05,
            umcd: UmcdConfig { k: 10, blur: 2 },
            selection: Selection {
                k: 10,
                k_rule: "rule".into(),
                k_candidates: Vec::new(),
                blur: 2,
                blur_rule: "rule".into(),
                blur_candidates: Vec::new(),
                fpr_weights: vec![1.0; 3],
                calibration_images: 500,
                calibration_training_images: 0,
                lid_reference_images: 100,
            },
            detectors: Vec::new(),
            attacks: vec![
                attack("Untgt eps 8/255", AttackKind::Pgd, 8.0 / 255.0),
                attack("Untgt CW c 1000 lr 0.01", AttackKind::Cw, 8.0 / 255.0),
            ],
            table1: vec![
                row("LID", "Untgt eps 8/255", 0.25),
                row("LID", "Untgt CW c 1000 lr 0.01", 0.5),
                row("UMCD", "Untgt eps 8/255", 0.125),
                row("UMCD", "Untgt CW c 1000 lr 0.01", 0.0625),
            ],
            paper_protocol: vec![Table2Row {
                criteria: "UMCD C1 or C2 or C3 (each alone)".into(),
                detection_rates: vec![TableRate {
                    attack: "Untgt eps 8/255".into(),
                    rate: 0.9375,
                }],
                held_out_benign_fpr: 0.13,
            }],
            backend: BackendInfo {
                kind: "cpu".into(),
                adapter: "test".into(),
            },
            table2: Some(Table2 {
                eps: 32.0 / 255.0,
                rows: vec![Table2Row {
                    criteria: "C1 + C3".into(),
                    detection_rates: vec![TableRate {
                        attack: "Untgt eps 32/255".into(),
                        rate: 0.875,
                    }],
                    held_out_benign_fpr: 0.04,
                }],
                attacks: vec![Table2Attack {
                    attack: "Untgt eps 32/255".into(),
                    method: AttackKind::Pgd,
                    eps: 32.0 / 255.0,
                    clean_map: 0.8,
                    adv_map: 0.1,
                    success_rate: 0.9,
                }],
            }),
        }
    }

    #[test]
    fn tables_are_rendered_from_the_typed_report() {
        let r = report();
        let t1 = table1_markdown(&r);
        assert!(t1.contains("| Detector | Untgt | Untgt CW |"), "{t1}");
        // Rows per detector, cells per attack column (CW's row is not taken for "Untgt").
        assert!(t1.contains("| LID | 25.00 | 50.00 |"), "{t1}");
        assert!(t1.contains("| UMCD | 12.50 | 6.25 |"), "{t1}");
        assert!(t1.contains("at 5% FPR"));
        let miss = table1_miss_rates(&r);
        assert!(miss.contains("| UMCD | 12.50 | 6.25 |"), "{miss}");
        for md in [&t1, &miss] {
            assert!(
                md.contains("| UMCD C1 or C2 or C3 (each alone) | 0.9375 | 0.1300 |"),
                "{md}"
            );
        }
        // Half the CW examples failed (and are clean images): the floor at 5 % FPR is 47.5 %.
        let floor = "- Untgt CW c 1000 lr 0.01: 50.0% of its examples failed and are the clean \
                     images unchanged; no detector flags a benign image more often than its FPR, \
                     so at 5% FPR every miss rate over all examples is at least about 47.5%";
        for md in [&t1, &miss] {
            assert!(md.contains(floor), "{md}");
            // PGD's failed examples are perturbed images: no floor for them.
            assert!(!md.contains("- Untgt eps 8/255:"), "{md}");
        }
        let mut all = r.clone();
        all.attacks[1].success_rate = 1.0;
        assert!(failure_floor_notes(&all).is_empty());
        let mut none = r.clone();
        none.paper_protocol.clear();
        assert!(!table1_markdown(&none).contains("paper's protocol"));
        let t2 = table2_markdown(r.table2.as_ref().unwrap());
        assert!(
            t2.contains("eps 32/255") && t2.contains("| C1 + C3 | 0.8750 | 0.0400 |"),
            "{t2}"
        );
    }

    #[test]
    fn the_report_reads_back_as_written() {
        let r = report();
        let json = serde_json::to_string(&r).unwrap();
        let back: DetectionReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(json.contains("\"table2\""));
        // NaN (no successful attack) is written as null and read back as NaN.
        let mut nan = r.clone();
        nan.table1[0].miss_rate_successful = f64::NAN;
        let back: DetectionReport =
            serde_json::from_str(&serde_json::to_string(&nan).unwrap()).unwrap();
        assert!(back.table1[0].miss_rate_successful.is_nan());
        let mut plain = r;
        plain.table2 = None;
        assert!(!serde_json::to_string(&plain).unwrap().contains("table2"));
    }
}
