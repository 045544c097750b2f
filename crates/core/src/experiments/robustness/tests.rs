//! Tests of Table 3's rows, settings, masking checks and Markdown rendering.

use std::path::PathBuf;

use super::*;
use crate::experiments::BackendInfo;
use crate::experiments::detection::Selection;
use crate::run::RunDir;

#[path = "start_tests.rs"]
mod start_tests;

/// A Table 3 report of `rows` with `pending` rows not evaluated yet.
fn table3(rows: Vec<RowReport>, pending: &[&str]) -> Table3Report {
    Table3Report {
        table: 3,
        base_run: PathBuf::from("run"),
        at_eps: 8.0 / 255.0,
        settings: rows[0].settings.clone(),
        checks: rows.iter().map(MaskingChecks::of).collect(),
        rows,
        backend: BackendInfo {
            kind: "cpu".into(),
            adapter: String::new(),
        },
        paper_cifar10_freeat: paper_rows(),
        pending: pending.iter().map(|p| p.to_string()).collect(),
        leads: Vec::new(),
        start: Vec::new(),
    }
}

#[test]
fn rows_cover_each_term_and_count_updates_per_batch() {
    let config = RobustnessConfig {
        freeat_m: vec![4],
        freeat_budget: 8,
        at_epochs: 8,
        at_terms: vec![AdvTerm::Tanh, AdvTerm::Logit],
        at_targets: vec![TargetSource::Codes, TargetSource::Centres],
        at_optimizer: Some(Optimizer::Sgd { momentum: 0.9 }),
        ..RobustnessConfig::default()
    };
    config.validate().unwrap();
    let rows = config.rows();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "no AT",
            "freeat-m4",
            "pgd-at",
            "cgat",
            "cgat-logit",
            "cgat-centres",
            "cgat-logit-centres",
            "saat",
            "saat-logit"
        ]
    );
    let targets: Vec<_> = rows[3..7]
        .iter()
        .map(|r| r.training.as_ref().unwrap().method.targets())
        .collect();
    assert_eq!(
        targets,
        [
            TargetSource::Codes,
            TargetSource::Codes,
            TargetSource::Centres,
            TargetSource::Centres
        ]
        .map(Some)
    );
    // Equal budgets: FreeAT m = 4 for 2 epochs and 8 epochs of PGD-AT/CgAT/SAAT all make 8.
    for row in &rows[1..] {
        let t = row.training.as_ref().unwrap();
        assert_eq!(t.updates_per_batch(), 8, "{}", row.name);
        assert_eq!(t.optimizer, config.at_optimizer);
    }
    assert!(rows[0].training.is_none());
    // A config saved before the options existed reads as the papers' term and Adam.
    let mut json = serde_json::to_value(RobustnessConfig::default()).unwrap();
    let map = json.as_object_mut().unwrap();
    map.remove("at_terms");
    map.remove("at_targets");
    map.remove("at_optimizer");
    let old: RobustnessConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old, RobustnessConfig::default());
    let empty = RobustnessConfig {
        at_terms: Vec::new(),
        ..RobustnessConfig::default()
    };
    assert!(empty.validate().is_err());
    let no_targets = RobustnessConfig {
        at_targets: Vec::new(),
        ..RobustnessConfig::default()
    };
    let err = no_targets.validate().unwrap_err().to_string();
    assert!(err.contains("--at-targets"), "{err}");
    for bad in [
        RobustnessConfig {
            at_seeds: 0,
            ..RobustnessConfig::default()
        },
        RobustnessConfig {
            robust_eps: vec![f32::NAN],
            ..RobustnessConfig::default()
        },
        RobustnessConfig {
            restarts: 0,
            ..RobustnessConfig::default()
        },
        RobustnessConfig {
            at_weight_decay: Some(-1.0),
            ..RobustnessConfig::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn a_scratch_budget_adds_a_block_of_every_method_from_random_weights() {
    let config = RobustnessConfig {
        freeat_m: vec![4],
        scratch_budget: Some(8),
        ..RobustnessConfig::default()
    };
    config.validate().unwrap();
    let rows = config.rows();
    let stems: Vec<String> = rows.iter().map(Row::stem).collect();
    assert_eq!(
        stems,
        [
            "no-AT",
            "freeat-m4",
            "pgd-at",
            "cgat",
            "saat",
            "freeat-m4-scratch",
            "pgd-at-scratch",
            "cgat-scratch",
            "saat-scratch"
        ]
    );
    for row in &rows[5..] {
        let t = row.training.as_ref().unwrap();
        assert!(t.from_scratch && row.name.ends_with(" (scratch)"));
        assert_eq!(t.updates_per_batch(), 8, "{}", row.name);
    }
    assert!(!rows[1].training.as_ref().unwrap().from_scratch);
    let zero = RobustnessConfig {
        scratch_budget: Some(0),
        ..RobustnessConfig::default()
    };
    assert!(zero.validate().is_err());
}

#[test]
fn seeds_make_adjacent_rows_with_their_own_files() {
    let config = RobustnessConfig {
        freeat_m: vec![4],
        at_seeds: 3,
        pgd_at: false,
        ..RobustnessConfig::default()
    };
    let rows = config.rows();
    let stems: Vec<String> = rows.iter().map(Row::stem).collect();
    assert_eq!(
        stems,
        [
            "no-AT",
            "freeat-m4",
            "freeat-m4-r1",
            "freeat-m4-r2",
            "cgat",
            "cgat-r1",
            "cgat-r2",
            "saat",
            "saat-r1",
            "saat-r2"
        ]
    );
    // Seed 0 serialises as before (no key), so earlier rows' files stay comparable.
    let t = rows[1].training.as_ref().unwrap();
    let json = serde_json::to_value(t).unwrap();
    assert!(json.get("replicate").is_none() && json.get("weight_decay").is_none());
    let back: RowTraining =
        serde_json::from_value(serde_json::to_value(rows[2].training.as_ref().unwrap()).unwrap())
            .unwrap();
    assert_eq!(back.replicate, 1);
}

#[test]
fn masking_checks_flag_each_symptom() {
    // A sound row: mAP falls with steps and radius, transfer is weaker, PGD has converged.
    let sound = report(
        "cgat",
        0,
        &[0.8, 0.75, 0.72],
        &[(0.715, Some(0.78)), (0.6, Some(0.7))],
    );
    let c = MaskingChecks::of(&sound);
    assert!(c.steps_monotone);
    assert_eq!(
        (c.eps_monotone, c.transfer_weaker),
        (Some(true), Some(true))
    );
    assert!((c.longest_pgd_change.unwrap() - (0.72 - 0.75)).abs() < 1e-12);
    // The random-restart PGD-100 at the table's radius against the plain PGD-100.
    assert!((c.restarts_change.unwrap() - (0.715 - 0.72)).abs() < 1e-12);
    // Masking symptoms: longer PGD raises mAP, a larger radius raises it, transfer beats
    // the white-box attack.
    let masked = report(
        "cgat",
        1,
        &[0.8, 0.6, 0.7],
        &[(0.6, Some(0.5)), (0.65, Some(0.7))],
    );
    let m = MaskingChecks::of(&masked);
    assert!(!m.steps_monotone);
    assert_eq!(
        (m.eps_monotone, m.transfer_weaker),
        (Some(false), Some(false))
    );
    // Within the tolerance is not a violation.
    let noisy = report("cgat", 2, &[0.8, 0.7, 0.703], &[(0.7, None), (0.702, None)]);
    let n = MaskingChecks::of(&noisy);
    assert!(n.steps_monotone && n.eps_monotone == Some(true));
    assert_eq!(n.transfer_weaker, None, "no transfer examples, no verdict");

    // Seeds of one method render as one row with mean ± std and a split verdict.
    let base = report("no AT", 0, &[0.83, 0.4, 0.36], &[(0.3, None), (0.1, None)]);
    let rows = vec![base, sound, masked, noisy];
    let table = table3(rows, &[]);
    assert_eq!(grouped(&table.rows).len(), 2);
    let md = table3_markdown(&table);
    assert!(
        md.contains("| cgat | 0.800 ± 0.000 | 0.683 ± 0.076 |"),
        "{md}"
    );
    assert!(md.contains("mean ± sample std over 3 trainings"), "{md}");
    assert!(
        md.contains("| cgat | no (1 of 3) | no (1 of 3) | no (1 of 2) |"),
        "{md}"
    );
    assert!(md.contains("| no AT | yes | yes | – |"), "{md}");
    assert!(
        md.contains("PGD 16/255 | DHTA t-mAP 16/255 | transfer 16/255"),
        "{md}"
    );
    let (m, sd) = mean_std(&[1.0, 2.0, 3.0]);
    assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
}

#[test]
fn rows_are_picked_by_name_or_by_one_seed() {
    let config = RobustnessConfig {
        freeat_m: vec![4],
        pgd_at: false,
        at_seeds: 2,
        ..RobustnessConfig::default()
    };
    let rows = config.rows();
    let picked = |sel: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r.matches(sel))
            .map(Row::stem)
            .collect()
    };
    assert_eq!(picked("cgat"), ["cgat", "cgat-r1"]);
    assert_eq!(picked("cgat-r0"), ["cgat"]);
    assert_eq!(picked("cgat-r1"), ["cgat-r1"]);
    assert_eq!(picked("freeat-m4-r0"), ["freeat-m4"]);
    assert_eq!(picked("no-AT"), ["no-AT"]);
    assert_eq!(picked("no AT"), ["no-AT"]);
    assert!(picked("cgat-r2").is_empty() && picked("cga").is_empty());
}

#[test]
fn a_partial_table_names_its_missing_rows_and_short_seed_counts() {
    let rows = vec![
        report("no AT", 0, &[0.83, 0.4, 0.36], &[]),
        report("cgat", 0, &[0.8, 0.75, 0.72], &[]),
        report("cgat", 1, &[0.8, 0.74, 0.71], &[]),
        report("saat", 0, &[0.8, 0.75, 0.73], &[]),
    ];
    let table = table3(rows, &["saat-r1"]);
    let md = table3_markdown(&table);
    assert!(md.contains("| cgat | 0.800 ± 0.000 |"), "{md}");
    assert!(md.contains("| saat (1 of 2 seeds) | 0.800 |"), "{md}");
    assert!(
        md.contains("| no AT | 0.830 |"),
        "the base row has no seeds: {md}"
    );
    assert!(md.contains("Not evaluated yet"), "{md}");
    assert!(md.contains(": saat-r1."), "{md}");
}

#[test]
fn cached_rows_are_reused_only_for_the_same_weights_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("cgat");
    std::fs::create_dir_all(&model_dir).unwrap();
    // A model record as burnpack writes it: header, metadata, aligned tensor data.
    let record = |weights: &[u8]| {
        let mut b = burn_pack::Header::new(4).into_bytes().to_vec();
        b.extend_from_slice(b"meta");
        b.resize(burn_pack::aligned_data_section_start(4), 0);
        b.extend_from_slice(weights);
        b
    };
    std::fs::write(model_dir.join("model.bpk"), record(b"cgat weights")).unwrap();
    let mut cached = report("cgat", 0, &[0.8, 0.75, 0.72], &[]);
    cached.model = Some(RunDir::new(&model_dir).model_fingerprint().unwrap());
    let path = dir.path().join("cgat.json");
    std::fs::write(&path, serde_json::to_vec(&cached).unwrap()).unwrap();
    let row = Row {
        name: "cgat".into(),
        training: cached.training.clone(),
    };
    let settings = cached.settings.clone();
    assert_eq!(
        cached_row(&path, &row, &model_dir, &settings).as_ref(),
        Some(&cached)
    );
    // Other evaluation settings, another base model, another training or another row name.
    let mut other = settings.clone();
    other.restarts += 1;
    assert!(cached_row(&path, &row, &model_dir, &other).is_none());
    let mut rebased = settings.clone();
    rebased.base_model = Some("other base".into());
    assert!(cached_row(&path, &row, &model_dir, &rebased).is_none());
    let mut retrained = row.clone();
    retrained.training.as_mut().unwrap().epochs += 1;
    assert!(cached_row(&path, &retrained, &model_dir, &settings).is_none());
    let renamed = Row {
        name: "saat".into(),
        ..row.clone()
    };
    assert!(cached_row(&path, &renamed, &model_dir, &settings).is_none());
    // The model on disk changed, or cannot be read: its report is stale.
    std::fs::write(model_dir.join("model.bpk"), record(b"retrained")).unwrap();
    assert!(cached_row(&path, &row, &model_dir, &settings).is_none());
    std::fs::write(model_dir.join("model.bpk"), b"garbage").unwrap();
    assert!(cached_row(&path, &row, &model_dir, &settings).is_none());
    // No model on disk (a report carried over from an earlier session): it stands for the row.
    std::fs::remove_dir_all(&model_dir).unwrap();
    assert!(cached_row(&path, &row, &model_dir, &settings).is_some());
    // But never for the base row, whose model must be there, nor without a recorded model.
    let base = Row {
        name: "no AT".into(),
        training: None,
    };
    let mut no_at = report("no AT", 0, &[0.83, 0.4, 0.36], &[]);
    no_at.training = None;
    std::fs::write(&path, serde_json::to_vec(&no_at).unwrap()).unwrap();
    assert!(cached_row(&path, &base, &model_dir, &settings).is_none());
    cached.model = None;
    std::fs::write(&path, serde_json::to_vec(&cached).unwrap()).unwrap();
    assert!(cached_row(&path, &row, &model_dir, &settings).is_none());
    // A corrupt file is a miss, not an error.
    std::fs::write(&path, b"{ truncated").unwrap();
    assert!(cached_row(&path, &row, &model_dir, &settings).is_none());
}

fn report(name: &str, replicate: usize, maps: &[f64], robust: &[(f64, Option<f64>)]) -> RowReport {
    let config = RobustnessConfig {
        pgd_steps: vec![8, 100],
        robust_eps: vec![8.0 / 255.0, 16.0 / 255.0],
        ..RobustnessConfig::default()
    };
    let detection = DetectionConfig::default();
    RowReport {
        row: name.into(),
        run: PathBuf::from(name),
        model: Some(crate::run::fingerprint(
            format!("{name} {replicate}").into_bytes(),
        )),
        settings: RowSettings::new(&detection, &config, "base-weights".into()),
        training: (name != "no AT").then(|| RowTraining {
            method: AdvTraining::cgat(),
            epochs: 1,
            lr: 0.01,
            optimizer: None,
            weight_decay: None,
            replicate,
            from_scratch: false,
        }),
        train_seconds: Some(10.0),
        clean_map: maps[0],
        pgd: [8, 100]
            .iter()
            .zip(&maps[1..])
            .map(|(&steps, &map)| PgdRow {
                steps,
                map,
                success_rate: 0.0,
                mean_hamming_to_original: 0.0,
            })
            .collect(),
        dhta: DhtaRow {
            steps: 100,
            clean_t_map: 0.1,
            t_map: 0.2,
            success_rate: 0.1,
        },
        umcd: UmcdRow {
            attack: "PGD-100".into(),
            detection_rate: 0.5,
            detection_rate_successful: 0.5,
            auc: 0.9,
            criterion_rates: vec![0.1, 0.2, 0.3],
            held_out_benign_fpr: 0.05,
            selection: Selection {
                k: 10,
                k_rule: String::new(),
                k_candidates: Vec::new(),
                blur: 2,
                blur_rule: String::new(),
                blur_candidates: Vec::new(),
                fpr_weights: vec![1.0 / 3.0; 3],
                calibration_images: 100,
                calibration_training_images: 0,
                lid_reference_images: 100,
            },
        },
        robust: [8.0 / 255.0, 16.0 / 255.0]
            .iter()
            .zip(robust)
            .map(|(&eps, &(pgd_map, transfer_map))| RobustPoint {
                eps,
                pgd_map,
                pgd_success_rate: 0.0,
                dhta_t_map: 0.3,
                dhta_success_rate: 0.2,
                transfer_map,
            })
            .collect(),
        queries: 300,
    }
}

/// A trained row: `method` (CgAT when `None`), `epochs`, from scratch or fine-tuned.
fn trained(
    name: &str,
    replicate: usize,
    (clean, map8): (f64, f64),
    method: Option<AdvTraining>,
    epochs: usize,
    from_scratch: bool,
) -> RowReport {
    let mut r = report(
        name,
        replicate,
        &[clean, 0.7, 0.7],
        &[(map8, Some(0.74)), (0.55, Some(0.7))],
    );
    let t = r.training.as_mut().unwrap();
    if let Some(m) = method {
        t.method = m;
    }
    t.epochs = epochs;
    t.from_scratch = from_scratch;
    r
}

#[test]
fn leads_compare_each_method_with_freeat_at_equal_updates_and_start() {
    let free = Some(AdvTraining::Free {
        eps: 8.0 / 255.0,
        replays: 4,
    });
    let scratch = trained("cgat (scratch)", 0, (0.6, 0.6), None, 4, true);
    let rows = vec![
        report("no AT", 0, &[0.8, 0.3, 0.3], &[(0.3, None), (0.1, None)]),
        // FreeAT: 4 replays in 1 epoch, 4 updates per batch, like 4 epochs of CgAT.
        trained("freeat-m4", 0, (0.76, 0.69), free.clone(), 1, false),
        trained("freeat-m4", 1, (0.76, 0.70), free, 1, false),
        trained("cgat", 0, (0.78, 0.71), None, 4, false),
        trained("cgat", 1, (0.78, 0.72), None, 4, false),
        trained("saat", 0, (0.78, 0.73), Some(AdvTraining::saat()), 4, false),
        // One update per batch: no FreeAT row has that budget.
        trained("cgat-short", 0, (0.7, 0.6), None, 1, false),
        // From scratch: no FreeAT row started there.
        scratch,
    ];
    let leads = Lead::all(&rows);
    let names: Vec<(&str, &str, usize, usize)> = leads
        .iter()
        .map(|l| {
            let (r, f) = (l.row.as_str(), l.reference.as_str());
            (r, f, l.seeds, l.reference_seeds)
        })
        .collect();
    assert_eq!(
        names,
        [("cgat", "freeat-m4", 2, 2), ("saat", "freeat-m4", 1, 2)]
    );
    let cgat = &leads[0];
    assert!((cgat.clean.mean - 0.02).abs() < 1e-12);
    assert_eq!(cgat.robust.len(), 2);
    assert!((cgat.robust[0].pgd.mean - 0.02).abs() < 1e-12);
    // Both sides have sd √(5e-5) over two seeds: se = √(5e-5/2 + 5e-5/2).
    let se = cgat.robust[0].pgd.se.unwrap();
    assert!((se - 5e-5_f64.sqrt()).abs() < 1e-9, "{se}");
    assert!(cgat.robust[1].pgd.mean.abs() < 1e-12);
    // One seed: no standard error.
    assert_eq!(leads[1].robust[0].pgd.se, None);
    assert!((leads[1].robust[0].pgd.mean - 0.035).abs() < 1e-12);

    // Without the masking-proof block there is no robust mAP to compare.
    let mut plain = rows.clone();
    plain.iter_mut().for_each(|r| r.robust.clear());
    assert!(Lead::all(&plain).is_empty());

    let mut table = table3(rows, &[]);
    table.leads = leads;
    let md = table3_markdown(&table);
    assert!(md.contains("## Against FreeAT at equal updates"), "{md}");
    assert!(
        md.contains("| cgat | freeat-m4 | 2 / 2 | +2.0 ± 0.0 | +2.0 ± 0.7 | +0.0 ± 0.0 |"),
        "{md}"
    );
    assert!(
        md.contains("| saat | freeat-m4 | 1 / 2 | +2.0 | +3.5 | +0.0 |"),
        "{md}"
    );
    // The JSON keeps them, and a report written before them still reads.
    let json = serde_json::to_string(&table).unwrap();
    let back: Table3Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.leads.len(), 2);
    assert!(back.leads[0].robust[0].pgd.se.is_some());
    assert!((back.leads[0].robust[0].pgd.mean - 0.02).abs() < 1e-12);
    table.leads.clear();
    let old: Table3Report = serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
    assert!(old.leads.is_empty());
}
