//! The app driven as a user would, with egui_kittest: state in, what is drawn out.

use super::*;
use crate::engine::demo_spec;
use burn::prelude::Device;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
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
fn clicking_run_attack_steps_pgd_until_umcd_flags_it() {
    let mut harness = Harness::builder()
        .with_size(vec2(1200.0, 900.0))
        .build_eframe(|_| app());
    harness.run_steps(2);
    harness
        .state_mut()
        .set_attack(demo_spec(AttackKind::Pgd, 32.0 / 255.0, 100, 0));
    harness.get_by_label("Run attack").click();
    harness.run_steps(2);
    assert!(
        harness.state().demo().attacking(),
        "the attack runs across frames"
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
