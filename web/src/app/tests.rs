//! The app driven as a user would, with egui_kittest: state in, what is drawn out.

use super::*;
use crate::engine::demo_spec;
use burn::prelude::Device;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use hashguard_core::experiments::AttackKind;

fn app() -> DemoApp {
    DemoApp::new(
        Engine::embedded(Device::flex(), "CPU (burn-flex)".into()).map_err(|e| e.to_string()),
        Uploads::default(),
    )
}

#[test]
fn the_first_gallery_image_is_retrieved_at_start() {
    let app = app();
    let (benign, _) = app.demo().retrieved();
    assert_eq!(benign.len(), 10);
    assert_eq!(app.demo().verdicts(), (Some(false), None));
}

#[test]
fn clicking_run_attack_steps_dhta_until_umcd_flags_it_by_c2() {
    let mut harness = Harness::builder()
        .with_size(vec2(1200.0, 900.0))
        .build_eframe(|cc| {
            install_fonts(&cc.egui_ctx);
            app()
        });
    harness.run_steps(2);
    harness
        .state_mut()
        .set_attack(demo_spec(AttackKind::Dhta, 32.0 / 255.0, 100, 3));
    // Draw the DHTA controls (the target class moves the button down) before clicking.
    harness.run_steps(1);
    harness.get_by_label("Run attack").click();
    harness.run_steps(1);
    assert!(
        harness.state().demo().attacking() || harness.state().demo().adversarial.is_some(),
        "the click started the attack"
    );
    for _ in 0..2000 {
        if !harness.state().demo().attacking() {
            break;
        }
        harness.run_steps(1);
    }
    assert!(!harness.state().demo().attacking());
    let (benign, adv) = harness.state().demo().retrieved();
    assert_ne!(benign, adv, "the attack changed what is retrieved");
    // A targeted attack that saturates the code drives C2 (quantisation loss) below anything
    // benign (UMCD's Observation 1): the label-smoothed model lets C2 fire.
    let d = harness.state().demo();
    let adversarial = &d.adversarial.as_ref().expect("finished").analysis;
    let verdict = d.verdict(adversarial).expect("calibrated");
    assert!(verdict.fired[1], "C2 fires: {:?}", adversarial.criteria);
    assert_eq!(
        harness.state().demo().verdicts().1,
        Some(true),
        "UMCD flags the adversarial image"
    );
    harness.get_by_label_contains("UMCD: ADVERSARIAL");
}

#[test]
fn a_bad_upload_is_a_message_not_a_crash() {
    let mut a = app();
    a.demo_mut().upload("notes.txt", b"hello");
    assert!(a.demo().message().unwrap().contains("PNG or JPEG"));
    assert_eq!(a.demo().retrieved().0.len(), 10, "the previous query stays");
}

/// Runs a DHTA attack to its end in a window of `size` points.
fn attacked(size: egui::Vec2) -> Harness<'static, DemoApp> {
    let mut harness = Harness::builder().with_size(size).build_eframe(|cc| {
        install_fonts(&cc.egui_ctx);
        app()
    });
    harness.run_steps(2);
    harness
        .state_mut()
        .set_attack(demo_spec(AttackKind::Dhta, 32.0 / 255.0, 100, 3));
    harness.state_mut().demo_mut().start_attack();
    for _ in 0..2000 {
        if !harness.state().demo().attacking() {
            break;
        }
        harness.run_steps(1);
    }
    harness.run_steps(2);
    harness
}

#[test]
fn each_criterion_is_explained_with_its_threshold_and_distribution() {
    let harness = attacked(vec2(1280.0, 800.0));
    for name in [
        "C1 · Hamming distance to the",
        "C2 · quantisation loss",
        "C3 · bits that flip",
    ] {
        harness.get_by_label_contains(name);
    }
    // Each criterion's line names its threshold and both images' values.
    let lines: Vec<String> = harness
        .query_all_by_label_contains("threshold: flagged when")
        .filter_map(|n| n.accesskit_node().value())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("≥") && lines[1].contains("≤") && lines[2].contains("≥"));
    assert!(
        lines.iter().all(|l| l.contains("adversarial image")),
        "{lines:?}"
    );
    harness.get_by_label_contains("Benign query — UMCD: benign");
    harness.get_by_label_contains("Adversarial image — UMCD: ADVERSARIAL (C2");
}

#[test]
fn every_match_stays_inside_the_window_at_desktop_and_narrow_sizes() {
    for size in [
        vec2(1280.0, 800.0),
        vec2(1920.0, 1080.0),
        vec2(700.0, 900.0),
    ] {
        let harness = attacked(size);
        let distances: Vec<egui::Rect> = harness
            .query_all_by_label_contains("d = ")
            .filter(|n| {
                n.accesskit_node()
                    .value()
                    .is_some_and(|v| v.starts_with("d = "))
            })
            .map(|n| n.rect())
            .collect();
        assert_eq!(
            distances.len(),
            20,
            "ten matches for each image at {size:?}"
        );
        for r in &distances {
            assert!(
                r.max.x <= size.x,
                "a match ends at x = {} in {size:?}",
                r.max.x
            );
        }
        // The plots fit the window's width too (the criteria and the ROC; below the fold they
        // scroll into view).
        let plots = harness.state().summary().plots;
        assert!(plots.len() >= 4, "{plots:?}");
        for p in &plots {
            assert!(
                p.rect[2] <= size.x,
                "{} ends at x = {} in {size:?}",
                p.name,
                p.rect[2]
            );
        }
    }
}

#[test]
fn the_histogram_holds_every_value_and_each_mark() {
    let (lo, width, counts) = super::umcd::histogram(&[1.0, 2.0, 2.0, 3.0, f32::NAN], &[0.5, 4.0]);
    assert_eq!(
        counts.iter().sum::<usize>(),
        4,
        "NaN left out, the rest counted"
    );
    assert!(lo <= 0.5 && lo + width * counts.len() as f64 >= 4.0 - 1e-9);
}

#[test]
fn ordinals_read_as_english() {
    let o = super::umcd::ordinal;
    assert_eq!(
        [1, 2, 3, 4, 11, 12, 13, 21, 22, 100, 101].map(o),
        [
            "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "100th", "101st"
        ]
    );
}

/// The ε sweep: seven radii in one batch, the clean query as ε = 0, a row and a plotted point
/// for each, damage that grows with ε, and each radius inside its own ball.
#[test]
fn an_eps_sweep_plots_damage_and_umcd_s_verdict_per_radius() {
    let mut harness = Harness::builder()
        .with_size(vec2(1280.0, 800.0))
        .build_eframe(|cc| {
            install_fonts(&cc.egui_ctx);
            app()
        });
    harness.run_steps(2);
    harness
        .state_mut()
        .set_attack(demo_spec(AttackKind::Pgd, 8.0 / 255.0, 30, 0));
    harness.run_steps(1);
    harness.get_by_label("Sweep ε 1–32/255").click();
    harness.run_steps(1);
    assert!(harness.state().demo().sweeping() || harness.state().demo().sweep.is_some());
    for _ in 0..2000 {
        if !harness.state().demo().attacking() {
            break;
        }
        harness.run_steps(1);
    }
    harness.run_steps(2);
    let summary = harness.state().summary();
    let eps: Vec<f64> = summary.sweep.iter().map(|r| r.eps_levels).collect();
    let mut expected = vec![0.0];
    expected.extend(SWEEP_LEVELS.iter().map(|&l| f64::from(l)));
    assert_eq!(eps, expected);
    assert_eq!(summary.sweep[0].flipped, 0, "the clean query flips nothing");
    let (first, last) = (&summary.sweep[1], &summary.sweep[SWEEP_LEVELS.len()]);
    assert!(
        last.flipped > first.flipped && last.damage >= first.damage,
        "{:?}",
        summary.sweep
    );
    assert!(
        last.damage >= 0.5,
        "PGD at 32/255 ruins the matches: {:?}",
        summary.sweep
    );
    assert!(summary.plots.iter().any(|p| p.name == "sweep"));
    harness.get_by_label_contains("Attack strength: untargeted PGD, 30 steps");
    harness.get_by_label("32/255");
    // A gallery pick clears the sweep.
    harness.state_mut().demo_mut().select_gallery(1);
    harness.run_steps(2);
    assert!(harness.state().demo().sweep.is_none());
    // CW has no radius to sweep: the button is disabled and the state refuses.
    harness
        .state_mut()
        .set_attack(demo_spec(AttackKind::Cw, 8.0 / 255.0, 30, 0));
    harness.state_mut().demo_mut().start_sweep();
    assert!(
        harness
            .state()
            .demo()
            .message()
            .is_some_and(|m| m.contains("PGD or DHTA"))
    );
}

/// The ROC comes from the bundle's attacked scores: one curve per attack, FPR and TPR rising
/// with the budget, drawn with its caption.
#[test]
fn the_detection_roc_of_the_shipped_calibration_is_drawn() {
    let harness = attacked(vec2(1280.0, 800.0));
    let app = harness.state();
    let engine = app.demo().engine.as_ref().unwrap();
    assert_eq!(engine.roc.len(), 3, "PGD 8/255, PGD 32/255, DHTA 32/255");
    for r in &engine.roc {
        assert!(r.queries >= 100, "{}", r.name);
        for w in r.points.windows(2) {
            assert!(w[1].fpr >= w[0].fpr && w[1].tpr >= w[0].tpr, "{}", r.name);
        }
        let at5 = r.points.iter().find(|p| p.budget == 0.05).unwrap();
        assert!(at5.fpr <= 0.06, "{}: {at5:?}", r.name);
    }
    let summary = app.summary();
    let names: Vec<&str> = summary.plots.iter().map(|p| p.name.as_str()).collect();
    for want in ["C1", "C2", "C3", "ROC"] {
        assert!(names.contains(&want), "{names:?}");
    }
    harness.get_by_label("Detection ROC of the shipped calibration");
    harness.get_by_label_contains("PGD-100, ε = 8/255: the attack succeeded on");
}
