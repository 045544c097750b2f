//! torchvision weight files (`--pretrained`): PyTorch files (zip or legacy pickle) and
//! safetensors, imported into a narrow ResNet-18. Any bytes give an import summary or an
//! error. Input that starts as a zip archive or a pickle is named `.pth`, anything else
//! `.safetensors` (the extension picks the reader).

#![no_main]

use std::cell::RefCell;

use burn::prelude::*;
use hashguard_core::model::{Backbone, BackboneKind, import_torchvision};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static BACKBONE: RefCell<Backbone> =
        RefCell::new(BackboneKind::Resnet18.init_narrow(0.0, 16, &Device::flex()));
    static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
}

fuzz_target!(|data: &[u8]| {
    let pytorch = data.starts_with(b"PK") || data.first() == Some(&0x80);
    let name = if pytorch { "w.pth" } else { "w.safetensors" };
    let path = DIR.with(|d| d.path().join(name));
    std::fs::write(&path, data).expect("writing the input");
    BACKBONE.with_borrow_mut(|backbone| {
        let _ = import_torchvision(backbone, BackboneKind::Resnet18, &path);
    });
});
