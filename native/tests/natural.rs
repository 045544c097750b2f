//! End-to-end tests of natural-image data through the `hashguard` binary: list files (single-
//! and multi-label) and image folders go through `data check`, train, eval, attack and detect;
//! bad lists and images get one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .env_remove("HASHGUARD_DATA")
        .args(["--backend", "cpu"])
        .args(args)
        .output()
        .expect("hashguard runs")
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.contains(needle), "expected `{needle}` in: {stderr}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Image `i` of class `c`: a class colour with a darker square whose place varies, saved as
/// PNG or (every third image) JPEG, at a size and aspect that vary.
fn write_image(path: &Path, c: usize, i: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let colours = [
        [200u8, 40, 40],
        [40, 200, 40],
        [40, 40, 200],
        [200, 200, 40],
    ];
    let (w, h) = (20 + (i % 5) as u32 * 3, 18 + (i % 3) as u32 * 4);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let base = colours[c % 4];
        let inside = (x as usize + i) % 7 < 3 && (y as usize + 2 * i) % 5 < 2;
        image::Rgb(base.map(|v| if inside { v / 3 } else { v }))
    });
    img.save(path).unwrap();
}

/// Four classes of 45 images; 3 queries per class, 12 training images per class, the
/// database is every non-query image. With `multi`, every fifth image also has the next
/// class's label.
fn write_lists(root: &Path, multi: bool) -> PathBuf {
    let lists = root.join("lists");
    std::fs::create_dir_all(&lists).unwrap();
    let (mut test, mut train, mut database) = (String::new(), String::new(), String::new());
    for c in 0..4 {
        for i in 0..45 {
            let ext = if i % 3 == 0 { "jpg" } else { "png" };
            let rel = format!("images/c{c}/{i}.{ext}");
            write_image(&root.join(&rel), c, i);
            let mut labels = [0; 4];
            labels[c] = 1;
            if multi && i % 5 == 0 {
                labels[(c + 1) % 4] = 1;
            }
            let line = format!("{rel} {}\n", labels.map(|l| l.to_string()).join(" "));
            if i < 3 {
                test += &line;
            } else {
                database += &line;
                if i < 15 {
                    train += &line;
                }
            }
        }
    }
    std::fs::write(lists.join("test.txt"), test).unwrap();
    std::fs::write(lists.join("train.txt"), train).unwrap();
    std::fs::write(lists.join("database.txt"), database).unwrap();
    lists
}

fn train_list(root: &Path, lists: &Path, out: &Path) {
    ok(&run(&[
        "train",
        "--dataset",
        "list",
        "--data",
        s(root),
        "--lists",
        s(lists),
        "--image-size",
        "16",
        "--bits",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--out",
        s(out),
    ]));
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn list_files_go_through_check_train_eval_attack_and_detect() {
    for multi in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let lists = write_lists(root, multi);
        let check = root.join("check.json");
        let text = ok(&run(&[
            "data",
            "check",
            "--dataset",
            "list",
            "--data",
            s(root),
            "--lists",
            s(&lists),
            "--report",
            s(&check),
        ]));
        assert!(text.contains("ok:"), "{text}");
        let c = json(&check);
        assert_eq!(c["roles"][0]["entries"], 12);
        assert_eq!(c["roles"][2]["entries"], 168);
        assert_eq!(c["query_in_database"], 0);

        let run_dir = root.join("run");
        train_list(root, &lists, &run_dir);
        let config = json(&run_dir.join("config.json"));
        assert_eq!(config["data"]["kind"]["list"], "generic");
        assert_eq!(config["data"]["geometry"]["crop"], 16);
        let report = root.join("eval.json");
        ok(&run(&[
            "eval",
            "--run",
            s(&run_dir),
            "--report",
            s(&report),
        ]));
        let r = json(&report);
        assert_eq!(r["split"]["query"], 12);
        assert_eq!(r["split"]["train"], 48);
        assert_eq!(r["split"]["database"], 168);
        assert!(r["split"]["seed"].is_null());
        assert_eq!(r["convention"], "mAP@all");
        assert_eq!(r["map_convention"], r["map_all"]);
        // Colour classes are easy: two epochs already rank far above chance (1/4).
        let map = r["map_all"].as_f64().unwrap();
        assert!(map > 0.4, "mAP@all {map} (multi-label: {multi})");

        let attack = root.join("attack");
        ok(&run(&[
            "attack",
            "--run",
            s(&run_dir),
            "--method",
            "pgd",
            "--steps",
            "3",
            "--queries",
            "8",
            "--out",
            s(&attack),
        ]));
        let a = json(&attack.join("report.json"));
        assert!((0.0..=1.0).contains(&a["adv_map"].as_f64().unwrap()));
        assert!(a["mean_linf"].as_f64().unwrap() <= 8.0 / 255.0 + 1e-6);

        let detect = root.join("detect.json");
        ok(&run(&[
            "detect",
            "--run",
            s(&run_dir),
            "--attack",
            "pgd",
            "--queries",
            "8",
            "--calibration",
            "100",
            "--lid-reference",
            "20",
            "--steps",
            "2",
            "--batch-size",
            "16",
            "--report",
            s(&detect),
        ]));
        assert!(!json(&detect)["table1"].as_array().unwrap().is_empty());
    }
}

#[test]
fn an_image_folder_trains_with_bad_images_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stamps");
    for c in 0..3 {
        for i in 0..12 {
            write_image(&root.join(format!("class{c}/sub/{i}.png")), c, i);
        }
    }
    std::fs::write(root.join("class0/description.txt"), "a stamp").unwrap();
    std::fs::write(
        root.join("class1/broken.png"),
        b"\x89PNG\r\n\x1a\ntruncated",
    )
    .unwrap();
    let out = run(&["data", "check", "--dataset", "folder", "--data", s(&root)]);
    failed_with(&out, "1 problems");
    assert!(String::from_utf8_lossy(&out.stdout).contains("broken.png"));

    let run_dir = dir.path().join("run");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--dataset",
            "folder",
            "--data",
            s(&root),
            "--image-size",
            "16",
            "--bits",
            "16",
            "--epochs",
            "1",
            "--query-per-class",
            "2",
            "--train-size",
            "6",
            "--out",
            s(&run_dir),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    failed_with(&train(&[]), "--skip-bad-images");
    assert!(!run_dir.join("config.json").exists());
    ok(&train(&["--skip-bad-images"]));
    let summary = json(&run_dir.join("train.json"));
    assert_eq!(summary["skipped_images"], 1);
    let report = dir.path().join("eval.json");
    ok(&run(&[
        "eval",
        "--run",
        s(&run_dir),
        "--report",
        s(&report),
    ]));
    let r = json(&report);
    assert_eq!(r["split"]["query"], 6);
    assert_eq!(r["split"]["query_per_class"], 2);
    // An image added since training would move the redrawn split: the run refuses it.
    write_image(&root.join("class2/new.png"), 2, 99);
    failed_with(
        &run(&["eval", "--run", s(&run_dir)]),
        "changed since the run was trained",
    );
}

/// The read limits are flags: an image wider than `--max-image-side` is a problem that names
/// the flag, a gzipped IDX file inflating past `--max-inflate-mib` is refused before any work,
/// and a zero limit is a flag error.
#[test]
fn read_limits_are_flags() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    for c in 0..2 {
        for i in 0..3 {
            write_image(&root.join(format!("class{c}/{i}.png")), c, i);
        }
    }
    let check = |extra: &[&str]| {
        let mut args = vec!["data", "check", "--dataset", "folder", "--data", s(&root)];
        args.extend_from_slice(extra);
        run(&args)
    };
    ok(&check(&[]));
    let out = check(&["--max-image-side", "8"]);
    failed_with(&out, "6 problems");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("too large") && listed.contains("--max-image-side"),
        "{listed}"
    );
    let out = check(&["--max-image-side", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-image-side"));

    // Fashion-MNIST's test images inflate to 7.8 MB: past a 1 MiB cap.
    let fashion = dir.path().join("fashion");
    std::fs::create_dir_all(&fashion).unwrap();
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/core/assets/fashion-mnist");
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(assets.join(f), fashion.join(f)).unwrap();
    }
    let out = run(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        s(&fashion),
        "--out",
        s(&dir.path().join("run")),
        "--epochs",
        "1",
        "--max-inflate-mib",
        "1",
    ]);
    failed_with(&out, "--max-inflate-mib");
}

#[test]
fn bad_lists_and_flags_get_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let lists = write_lists(root, false);
    let out = root.join("run");
    let train = |dataset: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--dataset",
            dataset,
            "--data",
            s(root),
            "--lists",
            s(&lists),
            "--epochs",
            "1",
            "--out",
            s(&out),
        ];
        args.extend_from_slice(if extra.is_empty() {
            &["--image-size", "16"]
        } else {
            extra
        });
        run(&args)
    };
    // A preset whose label length the files do not have.
    failed_with(&train("nus-wide-21", &[]), "nus-wide-21 has 21 classes");
    // A line with a label vector of the wrong length, named by file and line.
    let db = lists.join("database.txt");
    let mut text = std::fs::read_to_string(&db).unwrap();
    text += "images/c0/0.png 1 0 0\n";
    std::fs::write(&db, &text).unwrap();
    failed_with(&train("list", &[]), "database.txt: line 169");
    std::fs::remove_file(&db).unwrap();
    failed_with(&train("list", &[]), "database.txt does not exist");
    // Flags that do not fit the data set.
    failed_with(
        &run(&["train", "--image-size", "16", "--out", s(&out)]),
        "--image-size is for natural images",
    );
    failed_with(
        &train("list", &["--image-size", "4"]),
        "--image-size 4 is out of range",
    );
    failed_with(
        &run(&["train", "--dataset", "coco", "--out", s(&out)]),
        "--dataset coco reads your own images",
    );
    let out_flag = run(&["train", "--dataset", "imagenet1k", "--out", s(&out)]);
    let stderr = String::from_utf8_lossy(&out_flag.stderr);
    assert!(
        !out_flag.status.success() && stderr.contains("unknown data set"),
        "{stderr}"
    );
    assert!(!out.join("config.json").exists());
}

#[test]
fn a_resnet18_backbone_trains_on_list_files_and_refuses_grey_images() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let lists = write_lists(root, false);
    let run_dir = root.join("run");
    ok(&run(&[
        "train",
        "--dataset",
        "list",
        "--data",
        s(root),
        "--lists",
        s(&lists),
        "--backbone",
        "resnet18",
        "--image-size",
        "32",
        "--bits",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        s(&run_dir),
    ]));
    let config = json(&run_dir.join("config.json"));
    assert_eq!(config["train"]["model"]["backbone"], "resnet18");
    let report = root.join("eval.json");
    ok(&run(&[
        "eval",
        "--run",
        s(&run_dir),
        "--report",
        s(&report),
    ]));
    assert!((0.0..=1.0).contains(&json(&report)["map_all"].as_f64().unwrap()));
    failed_with(
        &run(&[
            "train",
            "--backbone",
            "resnet18",
            "--out",
            s(&root.join("grey")),
        ]),
        "needs colour images",
    );
}

#[test]
fn a_cached_run_streams_its_images_from_disk_and_later_commands_skip_decoding() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("data");
    let lists = write_lists(&root, false);
    let cache = work.path().join("cache");
    let run_dir = work.path().join("run");
    let train = |out: &Path| {
        run(&[
            "train",
            "--dataset",
            "list",
            "--data",
            s(&root),
            "--lists",
            s(&lists),
            "--image-size",
            "16",
            "--bits",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--cache",
            s(&cache),
            "--out",
            s(out),
        ])
    };
    ok(&train(&run_dir));
    assert_eq!(
        json(&run_dir.join("config.json"))["data"]["cache"],
        s(&cache)
    );
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(files.len(), 2, "one pixel file and its index");

    // Same images, same geometry: a second run reads the cache and agrees bit for bit.
    let again = work.path().join("again");
    ok(&train(&again));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    let fingerprint = |dir: &Path| json(&dir.join("split.json"))["data_fingerprint"].clone();
    assert!(fingerprint(&run_dir).is_string());
    assert_eq!(fingerprint(&run_dir), fingerprint(&again));

    // eval on the run reads the same cache file: nothing is rewritten or added.
    let modified = || {
        let mut times: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().modified().unwrap())
            .collect();
        times.sort();
        times
    };
    let before = modified();
    let report = work.path().join("eval.json");
    ok(&run(&[
        "eval",
        "--run",
        s(&run_dir),
        "--report",
        s(&report),
    ]));
    assert_eq!(modified(), before);
    let map = json(&report)["map_all"].as_f64().unwrap();
    assert!(map > 0.3, "{map}");
}

/// The 20 real CIFAR-10 images of the foolbox fixtures as list files: 4 queries, the other 16
/// the training and database images; with `multi`, every fifth image also carries the next
/// class.
fn write_foolbox_lists(dir: &Path, multi: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/core/tests/fixtures/foolbox");
    let (mut test, mut rest) = (String::new(), String::new());
    for i in 0..20 {
        let name = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(&format!("cifar10_{i:02}_")))
            .unwrap();
        let class: usize = name
            .trim_end_matches(".png")
            .rsplit('_')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut v = [0u8; 10];
        v[class] = 1;
        if multi && i % 5 == 0 {
            v[(class + 1) % 10] = 1;
        }
        let labels: Vec<String> = v.iter().map(|b| b.to_string()).collect();
        let line = format!("{name} {}\n", labels.join(" "));
        if i % 5 == 4 {
            test.push_str(&line)
        } else {
            rest.push_str(&line)
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("test.txt"), test).unwrap();
    std::fs::write(dir.join("train.txt"), &rest).unwrap();
    std::fs::write(dir.join("database.txt"), &rest).unwrap();
    root
}

#[test]
fn the_foolbox_cifar10_images_go_through_train_eval_and_attack_as_lists() {
    for multi in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let lists = work.path().join("lists");
        let root = write_foolbox_lists(&lists, multi);
        let run_dir = work.path().join("run");
        ok(&run(&[
            "train",
            "--dataset",
            "cifar10-list",
            "--data",
            s(&root),
            "--lists",
            s(&lists),
            "--image-size",
            "32",
            "--resize",
            "32",
            "--bits",
            "16",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--out",
            s(&run_dir),
        ]));
        let report = work.path().join("eval.json");
        ok(&run(&[
            "eval",
            "--run",
            s(&run_dir),
            "--report",
            s(&report),
        ]));
        let r = json(&report);
        assert_eq!(
            (
                r["split"]["query"].as_u64(),
                r["split"]["database"].as_u64()
            ),
            (Some(4), Some(16))
        );
        assert!(r["map_all"].as_f64().unwrap() > 0.0);
        let attack = work.path().join("attack");
        ok(&run(&[
            "attack",
            "--run",
            s(&run_dir),
            "--method",
            "pgd",
            "--steps",
            "2",
            "--queries",
            "4",
            "--out",
            s(&attack),
        ]));
        // Detection calibrates its thresholds at a 5 % false-positive rate on at least 100
        // benign database images: 16 cannot, and it says so before any work.
        let detect = work.path().join("detect.json");
        failed_with(
            &run(&[
                "detect",
                "--run",
                s(&run_dir),
                "--attack",
                "pgd",
                "--queries",
                "4",
                "--report",
                s(&detect),
            ]),
            "at least 100 calibration images",
        );
        assert!(!detect.exists(), "multi: {multi}");
    }
}
