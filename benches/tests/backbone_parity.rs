//! The committed parity fixture: narrow torchvision-layout models exported by
//! `benches/peers/backbone_parity.py --narrow` (PyTorch files and safetensors), imported into
//! hashguard's backbones, must give PyTorch's features within 1e-4; wrong or damaged weights
//! files must give a clear error.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use hashguard_benches::parity::check_export;
use hashguard_core::model::{BackboneKind, import_torchvision};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers/fixtures")
        .join(name)
}

#[test]
fn every_backbone_matches_pytorch_from_a_pth_file() {
    let rows = check_export(&fixture("backbones"), &Device::flex()).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.backbone.as_str()).collect();
    assert_eq!(names, ["alexnet", "vgg11", "vgg16", "resnet18", "resnet50"]);
    for r in &rows {
        assert!(r.max_abs_diff <= 1e-4, "{r:?}");
        // Features are not trivially zero, so a zero difference means something.
        assert!(r.max_abs_feature > 1e-2, "{r:?}");
        // Only the class layer (weight, bias) and batch-norm counters are left out.
        assert!(r.skipped >= 2, "{r:?}");
    }
}

#[test]
fn safetensors_files_import_too() {
    let rows = check_export(&fixture("backbones-safetensors"), &Device::flex()).unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.max_abs_diff <= 1e-4, "{r:?}");
    }
}

#[test]
fn weights_of_another_network_or_a_damaged_file_are_refused() {
    let device = Device::flex();
    let dir = fixture("backbones");
    let mut resnet50 = BackboneKind::Resnet50.init_narrow(0.0, 16, &device);
    let e = import_torchvision(
        &mut resnet50,
        BackboneKind::Resnet50,
        &dir.join("resnet18.pth"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("resnet18.pth") && e.contains("resnet50"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");

    let mut vgg = BackboneKind::Vgg11.init_narrow(0.0, 32, &device);
    let e = import_torchvision(&mut vgg, BackboneKind::Vgg11, &dir.join("vgg16.pth"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("vgg11"), "{e}");

    let work = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(dir.join("alexnet.pth")).unwrap();
    let cut = work.path().join("alexnet.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut alexnet = BackboneKind::Alexnet.init_narrow(0.0, 16, &device);
    let e = import_torchvision(&mut alexnet, BackboneKind::Alexnet, &cut)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not readable"), "{e}");
    let missing = import_torchvision(
        &mut alexnet,
        BackboneKind::Alexnet,
        &work.path().join("no.pth"),
    );
    assert!(missing.unwrap_err().to_string().contains("no.pth"));
}
