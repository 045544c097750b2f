//! The fuzz targets' generated seed corpora (`fuzz/seeds/<target>/`): real Fashion-MNIST images
//! in every format a reader takes, and records of the tiny model the targets read. Each seed
//! must be accepted by its reader, so fuzzing starts deep in every format; with
//! `HASHGUARD_WRITE_SEEDS=1` the test writes them afresh first (after a format change). And
//! every input a fuzzer crashed a reader with (`fuzz/regressions/<target>/`) is read again
//! without a panic, refused when its name says so.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use burn::prelude::*;
use hashguard_core::adv_train::Trainer;
use hashguard_core::data::{
    DataSource, ImageSet, LabelSet, decode_bytes, load_fashion_mnist, parse_cifar10_batch,
    parse_idx, parse_list,
};
use hashguard_core::demo::{DemoBundle, DemoHeader};
use hashguard_core::detectors::UmcdConfig;
use hashguard_core::experiments::robustness::RowReport;
use hashguard_core::model::{half_precision_record, int8_record};
use hashguard_core::retrieval::PackedCodes;
use hashguard_core::run::{Checkpoint, RunConfig, RunDir};

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

/// The first `n` embedded Fashion-MNIST test images (28x28 grey) with their labels.
fn fashion(n: usize) -> (ImageSet, Vec<Vec<u8>>) {
    let set = load_fashion_mnist(&DataSource::Embedded).unwrap();
    let images = (0..n).map(|i| set.image(i).into_owned()).collect();
    (set, images)
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn encoded(image: &[u8], format: image::ImageFormat, rgb: bool) -> Vec<u8> {
    let grey = image::GrayImage::from_raw(28, 28, image.to_vec()).unwrap();
    let img = if rgb {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageLuma8(grey).to_rgb8())
    } else {
        image::DynamicImage::ImageLuma8(grey)
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Every generated seed: (target, file name, bytes).
fn generated() -> Vec<(&'static str, String, Vec<u8>)> {
    let (set, images) = fashion(16);
    let labels: Vec<u8> = (0..16)
        .map(|i| set.labels[i].primary().unwrap() as u8)
        .collect();
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push((target, name.to_string(), bytes));
    };

    // IDX: three real images and their labels, as the data set's files hold them.
    add(
        "idx",
        "images-3.idx",
        idx(&[3, 28, 28], &images[..3].concat()),
    );
    add("idx", "labels-16.idx", idx(&[16], &labels));

    // CIFAR-10 binary: two records of real images (grey in all three channels, 28x28 inside
    // a 32x32 frame).
    let mut cifar = Vec::new();
    for (image, &label) in images.iter().zip(&labels).take(2) {
        cifar.push(label);
        for _ in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let inside = (2..30).contains(&y) && (2..30).contains(&x);
                    cifar.push(if inside {
                        image[(y - 2) * 28 + x - 2]
                    } else {
                        0
                    });
                }
            }
        }
    }
    add("cifar", "two-records.bin", cifar);

    // List files: single-label (CIFAR-10 style) and multi-label (NUS-WIDE style) lines.
    add(
        "list_file",
        "cifar10.txt",
        b"train/airplane/0001.png 1 0 0 0 0 0 0 0 0 0\ntrain/cat/0002.png 0 0 0 1 0 0 0 0 0 0\n"
            .to_vec(),
    );
    add(
        "list_file",
        "nus-wide.txt",
        b"images/0001.jpg 0 1 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1\r\n\
          /abs/0002.jpg 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\r\n"
            .to_vec(),
    );

    // Images: a real Fashion-MNIST image in every decoder's format (the `upload` target's
    // seeds too).
    use image::ImageFormat as F;
    for (format, name, rgb) in [
        (F::Png, "grey.png", false),
        (F::Png, "rgb.png", true),
        (F::Jpeg, "rgb.jpg", true),
        (F::Gif, "rgb.gif", true),
        (F::Bmp, "rgb.bmp", true),
        (F::WebP, "rgb.webp", true),
    ] {
        add("image", name, encoded(&images[3], format, rgb));
    }

    // Codes and FAISS files of 16-bit codes.
    let signs: Vec<f32> = (0..5 * common::BITS)
        .map(|i| if (i * 7) % 5 < 2 { 1.0 } else { -1.0 })
        .collect();
    let codes = PackedCodes::from_signs(common::BITS, &signs);
    add("codes", "five.codes", codes.to_bytes());
    add("codes", "five.faiss", codes.to_faiss_binary_flat().unwrap());

    // The tiny model's records and a checkpoint after one epoch on the real images.
    let device = Device::flex();
    let mut trainer = Trainer::new(common::tiny_train(), common::tiny_centres(), &device).unwrap();
    let four_classes = ImageSet::new(
        "fashion",
        "embedded",
        [1, 28, 28],
        images.concat(),
        (0..16)
            .map(|i| LabelSet::single(i % common::CLASSES))
            .collect(),
        (0..common::CLASSES).map(|c| format!("class {c}")).collect(),
    )
    .unwrap();
    let train: Vec<usize> = (0..16).collect();
    trainer.train_epoch(&four_classes, &train, |_| {}).unwrap();
    let (model, optim) = trainer.checkpoint().unwrap();
    add("model_record", "tiny.bpk", model.clone());
    add(
        "model_record",
        "tiny-half.bpk",
        half_precision_record(model.clone(), "tiny").unwrap().0,
    );
    add(
        "model_record",
        "tiny-int8.bpk",
        int8_record(model.clone(), "tiny").unwrap().0,
    );
    let run = tempfile::tempdir().unwrap();
    let dir = RunDir::new(run.path());
    let checkpoint = |loss_state: Vec<u8>| {
        dir.write_checkpoint(&Checkpoint {
            history: trainer.history.clone(),
            model: model.clone(),
            optim: optim.clone(),
            loss_state,
        })
        .unwrap();
        std::fs::read(dir.file("checkpoint.bin")).unwrap()
    };
    add("checkpoint", "csq.bin", checkpoint(Vec::new()));
    // CgAT/SAAT's codes B in the tagged loss state (an empty DPSH bank, then the codes).
    let b = PackedCodes::from_signs(common::BITS, &signs[..common::BITS * 4]).to_bytes();
    let mut tagged = b"HGLOSS02".to_vec();
    tagged.extend_from_slice(&0u64.to_le_bytes());
    tagged.extend_from_slice(&(b.len() as u64).to_le_bytes());
    tagged.extend_from_slice(&b);
    add("checkpoint", "cgat.bin", checkpoint(tagged));

    // The demo bundle, uncompressed (the target compresses what is not gzip).
    let bundle = DemoBundle {
        header: DemoHeader {
            run: "runs/tiny".into(),
            bits: common::BITS,
            umcd: UmcdConfig { k: 2, blur: 3 },
            benign: vec![vec![0.0, 1.0, 2.0, 0.5, 0.25]; 3],
            shape: [1, 28, 28],
            class_names: four_classes.class_names.clone(),
            database_labels: four_classes.labels[..5].to_vec(),
            gallery_labels: four_classes.labels[5..7].to_vec(),
            attacked: Vec::new(),
        },
        database: subset(&four_classes, 0..5),
        gallery: subset(&four_classes, 5..7),
        codes,
    };
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&bundle.to_bytes().unwrap()[..])
        .read_to_end(&mut raw)
        .unwrap();
    add("demo_bundle", "tiny.raw", raw);
    seeds
}

fn subset(set: &ImageSet, range: std::ops::Range<usize>) -> ImageSet {
    ImageSet::new(
        "part",
        "embedded",
        [1, 28, 28],
        range
            .clone()
            .flat_map(|i| set.image(i).into_owned())
            .collect(),
        set.labels[range].to_vec(),
        set.class_names.clone(),
    )
    .unwrap()
}

/// Every file under `root/<target>/`, with its target's name.
fn files_by_target(root: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for dir in std::fs::read_dir(root).unwrap() {
        let dir = dir.unwrap().path();
        let target = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            files.push((target.clone(), file.unwrap().path()));
        }
    }
    files
}

/// Whether `target`'s reader accepts `bytes` (as the fuzz target feeds them).
fn accepted(target: &str, bytes: &[u8]) -> Result<(), String> {
    let device = Device::flex();
    let p = Path::new("seed");
    let r = match target {
        "idx" => parse_idx(bytes, p).map(drop),
        "cifar" => parse_cifar10_batch(bytes, p).map(drop),
        "list_file" => parse_list(std::str::from_utf8(bytes).unwrap(), p).map(drop),
        "image" | "upload" => decode_bytes(bytes, "seed").map(drop),
        "codes" => PackedCodes::from_bytes(bytes, p)
            .or_else(|_| PackedCodes::from_faiss_binary_flat(bytes, p))
            .map(drop),
        "model_record" => common::tiny_model()
            .load(bytes.to_vec(), &device, "seed")
            .map(drop),
        "checkpoint" => Checkpoint::from_bytes(bytes, p).and_then(|c| {
            Trainer::new(common::tiny_train(), common::tiny_centres(), &device)?.restore(
                c.model,
                c.optim,
                c.history,
                c.loss_state,
            )
        }),
        "demo_bundle" => DemoBundle::from_bytes(&common::gzipped(bytes)).map(drop),
        "run_config" => RunConfig::from_json(bytes, p).map(drop),
        // The CLI's `--config` files: TOML flags, a report's JSON with its invocation, or a
        // Table 3 row (read by the CLI itself; here only checked to be what they claim).
        "reports" => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            if text.trim_start().starts_with('{') {
                let json: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| e.to_string())?;
                let row = serde_json::from_value::<RowReport>(json.clone()).is_ok();
                return (row || json.get("invocation").is_some())
                    .then_some(())
                    .ok_or_else(|| "neither a Table 3 row nor a report with an invocation".into());
            }
            Ok(())
        }
        other => panic!("no reader for seeds of {other}"),
    };
    r.map_err(|e| e.to_string())
}

#[test]
fn every_fuzz_seed_is_accepted_by_its_reader() {
    let root = seeds_dir();
    if std::env::var_os("HASHGUARD_WRITE_SEEDS").is_some() {
        for (target, name, bytes) in generated() {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let seeds = files_by_target(&root);
    for (target, seed) in &seeds {
        if let Err(e) = accepted(target, &std::fs::read(seed).unwrap()) {
            panic!("{} is refused: {e}", seed.display());
        }
    }
    let checked = seeds.len();
    assert!(
        checked >= 20,
        "only {checked} seeds under {}",
        root.display()
    );
}

/// The inputs that crashed a reader under fuzzing (`fuzz/regressions/<target>/<name>`): each is
/// read without a panic, and refused when its name starts with `refused-`.
#[test]
fn every_fuzz_finding_is_read_without_a_panic() {
    let root = seeds_dir().join("../regressions");
    let findings = files_by_target(&root);
    for (target, input) in &findings {
        let result = accepted(target, &std::fs::read(input).unwrap());
        let file = input.file_name().unwrap().to_string_lossy();
        if file.starts_with("refused-") {
            assert!(result.is_err(), "{} was accepted", input.display());
        }
    }
    let checked = findings.len();
    assert!(
        checked >= 6,
        "only {checked} findings under {}",
        root.display()
    );
}
