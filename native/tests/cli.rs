//! End-to-end tests of the `hashguard` binary: a tiny train/eval round trip, resume after
//! SIGKILL, and a clear one-line error (never a panic) for each kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn hashguard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hashguard"));
    cmd.env_remove("HASHGUARD_DATA").arg("--backend").arg("cpu");
    cmd
}

fn run(args: &[&str]) -> Output {
    hashguard().args(args).output().expect("hashguard runs")
}

/// Asserts failure with a single-line, panic-free message containing `needle`.
/// A failed run whose stderr mentions `needle` anywhere (clap's usage errors end with a hint
/// line, so the needle need not be on the last line).
fn assert_rejected(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(needle),
        "expected a failure mentioning `{needle}`: {stderr}"
    );
}

fn assert_clean_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "panic instead of an error: {stderr}"
    );
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains(needle),
        "expected `{needle}` in the error line, got: {stderr}"
    );
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// A Fashion-MNIST-shaped test set: 110 images per class, each class a distinct stripe.
fn write_tiny_fashion(dir: &Path) {
    write_striped_fashion(dir, 110);
}

/// `per_class` striped images per class in Fashion-MNIST's test-set files.
fn write_striped_fashion(dir: &Path, per_class: usize) {
    let n = 10 * per_class;
    let mut images = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 10;
        for y in 0..28 {
            for x in 0..28 {
                let stripe = (x + y * (c % 3)) / 3 % 10 == c;
                images.push(if stripe {
                    220
                } else {
                    ((i * 7 + x * 3 + y) % 40) as u8
                });
            }
        }
        labels.push(c as u8);
    }
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx(&[n as u32, 28, 28], &images),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        idx(&[n as u32], &labels),
    )
    .unwrap();
}

fn tiny_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_fashion(dir.path());
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Trains a tiny 16-bit run on `data` for `epochs` epochs into `work/run`.
fn tiny_run(work: &Path, data: &Path, epochs: usize) -> PathBuf {
    let run_dir = work.join("run");
    let epochs = epochs.to_string();
    let out = run(&[
        "train",
        "--out",
        s(&run_dir),
        "--data",
        s(data),
        "--bits",
        "16",
        "--epochs",
        &epochs,
        "--train-size",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_dir
}

#[test]
fn train_then_eval_writes_a_complete_report() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(work.path(), data.path(), 2);
    for f in ["config.json", "model.bpk", "checkpoint.bin", "train.json"] {
        assert!(run_dir.join(f).is_file(), "{f} missing");
    }
    let out = run(&["encode", "--run", s(&run_dir)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = work.path().join("r.json");
    let out = run(&["eval", "--run", s(&run_dir), "--report", s(&report)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["dataset"], "fashion-mnist");
    assert_eq!(r["bits"], 16);
    assert_eq!(r["split"]["query"], 1000);
    assert_eq!(r["split"]["train"], 50);
    assert_eq!(r["split"]["database"], 50);
    assert_eq!(r["backend"]["kind"], "cpu");
    let map = r["map_all"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&map));
    assert!(r["map_at_1000"].as_f64().is_some());
    assert_eq!(r["pr_curve"].as_array().unwrap().len(), 17);
    // A cut-off past the run's 50 database images is refused before any encoding; the defaults
    // (1000, 100) above are not.
    let out = run(&["eval", "--run", s(&run_dir), "--k", "10,51"]);
    assert_clean_error(&out, "--k 51 exceeds the run's 50 database images");
}

#[test]
fn dpsh_and_hashnet_runs_save_their_method_and_refuse_csqs_flags() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let train = |dir: &str, extra: &[&str]| {
        let run_dir = work.path().join(dir);
        let mut args = vec![
            "train",
            "--out",
            s(&run_dir),
            "--data",
            s(data.path()),
            "--bits",
            "16",
            "--epochs",
            "1",
            "--train-size",
            "5",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        (run(&refs), run_dir)
    };
    let (out, run_dir) = train("dpsh", &["--loss", "dpsh", "--alpha", "0.2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["train"]["method"],
        serde_json::json!({"method": "dpsh", "alpha": 0.2})
    );
    let report = work.path().join("dpsh.json");
    let out = run(&["eval", "--run", s(&run_dir), "--report", s(&report)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (out, run_dir) = train("hashnet", &["--loss", "hashnet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["train"]["method"]["step_continuation"], 20);

    assert_rejected(&train("a", &["--loss", "dsh"]).0, "csq, dpsh or hashnet");
    assert_clean_error(
        &train("b", &["--loss", "hashnet", "--lambda", "1"]).0,
        "--lambda is CSQ's",
    );
    assert_clean_error(&train("c", &["--alpha", "0.1"]).0, "--alpha is DPSH's");
    assert_rejected(
        &train("d", &["--loss", "dpsh", "--alpha", "NaN"]).0,
        "'--alpha <ALPHA>': NaN is not a finite number",
    );
}

#[test]
fn pretrained_weights_that_do_not_fit_are_refused_before_the_data_loads() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("run");
    // The narrow ResNet-18 of the parity fixture: torchvision's keys, a sixteenth of the widths.
    let narrow = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../benches/peers/fixtures/backbones/resnet18.pth");
    let base = ["train", "--out", s(&out_dir), "--data", s(data.path())];
    let out = run(&[&base[..], &["--pretrained", s(&narrow)]].concat());
    assert_clean_error(&out, "add --backbone");
    let out = run(&[
        &base[..],
        &["--backbone", "resnet18", "--pretrained", s(&narrow)],
    ]
    .concat());
    assert_clean_error(&out, "resnet18.pth");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("conv1.weight"), "{stderr}");
    let out = run(&[
        &base[..],
        &["--backbone", "resnet50", "--pretrained", "nowhere.pth"],
    ]
    .concat());
    assert_clean_error(&out, "nowhere.pth");
    assert!(!out_dir.exists(), "a refused run leaves nothing behind");
}

/// `train` of a 16-bit model on five images per class of `data` into `out`: the small runs the
/// interruption tests make.
fn tiny_train_args<'a>(out: &'a Path, data: &'a Path) -> [&'a str; 9] {
    [
        "train",
        "--out",
        s(out),
        "--data",
        s(data),
        "--bits",
        "16",
        "--train-size",
        "5",
    ]
}

#[test]
fn a_killed_training_resumes_from_its_last_checkpoint() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let run_dir = work.path().join("run");
    let epochs = 60;
    let mut child = hashguard()
        .args(tiny_train_args(&run_dir, data.path()))
        .args(["--epochs", &epochs.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until at least two epochs are checkpointed, then kill -9 mid-run.
    let ckpt = run_dir.join("checkpoint.bin");
    let start = Instant::now();
    let read_epochs = || -> Option<usize> {
        let bytes = std::fs::read(&ckpt).ok()?;
        let len = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?) as usize;
        let history: Vec<serde_json::Value> =
            serde_json::from_slice(bytes.get(16..16 + len)?).ok()?;
        Some(history.len())
    };
    while read_epochs().unwrap_or(0) < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "training finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint after 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // One writer per run: a second process resuming the run while it trains is refused, naming
    // the writer; once the writer is killed the lock is gone with it (the resume below works).
    let second = run(&["train", "--out", s(&run_dir), "--resume"]);
    assert_clean_error(
        &second,
        &format!(
            "being written by another hashguard process (process {})",
            child.id()
        ),
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_at_kill = read_epochs().unwrap();
    assert!(done_at_kill < epochs);

    // Every file under its real name is whole: config parses, the model and checkpoint load.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["train"]["epochs"], epochs);
    let out = run(&[
        "eval",
        "--run",
        s(&run_dir),
        "--report",
        s(&work.path().join("mid.json")),
    ]);
    assert!(
        out.status.success(),
        "model.bpk after SIGKILL: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(&["train", "--out", s(&run_dir), "--resume"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let resumed_after: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&format!("resuming {} after epoch ", run_dir.display())))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no resume line in: {stderr}"));
    assert!(
        resumed_after >= done_at_kill,
        "lost more than one epoch: {resumed_after} < {done_at_kill}"
    );
    assert_eq!(read_epochs(), Some(epochs));
    let leftovers: Vec<PathBuf> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Resuming a CPU run never starts wgpu. Burn reads an optimiser's state back onto its default
/// device, which is wgpu in this build unless the CLI sets it; here wgpu's default adapter is
/// one that cannot exist, so a resume that touched wgpu would panic.
#[test]
fn a_cpu_resume_never_starts_wgpu() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(work.path(), data.path(), 1);
    let out = hashguard()
        .args(["train", "--out", s(&run_dir), "--resume"])
        .env("CUBECL_WGPU_DEFAULT_DEVICE", "DiscreteGpu(7)")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
}

#[test]
fn missing_data_dir() {
    let work = tempfile::tempdir().unwrap();
    let out = run(&[
        "train",
        "--out",
        s(&work.path().join("r")),
        "--data",
        "/no/such/dir",
    ]);
    assert_clean_error(&out, "does not exist");
}

#[test]
fn truncated_garbage_and_wrong_magic_idx() {
    let work = tempfile::tempdir().unwrap();
    let data = tiny_data();
    let images = data.path().join("t10k-images-idx3-ubyte");
    let good = std::fs::read(&images).unwrap();

    std::fs::write(&images, &good[..good.len() / 2]).unwrap();
    assert_clean_error(
        &run(&[
            "train",
            "--out",
            s(&work.path().join("a")),
            "--data",
            s(data.path()),
        ]),
        "truncated",
    );

    std::fs::write(&images, b"this is not an IDX file at all").unwrap();
    assert_clean_error(
        &run(&[
            "train",
            "--out",
            s(&work.path().join("b")),
            "--data",
            s(data.path()),
        ]),
        "magic",
    );

    let mut wrong = good.clone();
    wrong[2] = 0x0d; // float IDX, not unsigned bytes
    std::fs::write(&images, wrong).unwrap();
    assert_clean_error(
        &run(&[
            "train",
            "--out",
            s(&work.path().join("c")),
            "--data",
            s(data.path()),
        ]),
        "magic",
    );
    // Nothing was left behind by the failed runs.
    assert!(!work.path().join("a").join("config.json").exists());
}

#[test]
fn cifar_file_of_wrong_length() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for b in 1..=5 {
        std::fs::write(
            data.path().join(format!("data_batch_{b}.bin")),
            vec![0u8; 3073 * 2],
        )
        .unwrap();
    }
    std::fs::write(
        data.path().join("test_batch.bin"),
        vec![0u8; 3073 * 2 + 100],
    )
    .unwrap();
    let out = run(&[
        "train",
        "--out",
        s(&work.path().join("r")),
        "--dataset",
        "cifar10",
        "--data",
        s(data.path()),
    ]);
    assert_clean_error(&out, "whole number of CIFAR-10 records");
}

#[test]
fn unknown_backend_and_bad_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .args(["--backend", "tpu", "eval", "--run", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tpu'"));
    let out = run(&["train", "--out", "x", "--bits", "many"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value"));
    let work = tempfile::tempdir().unwrap();
    let out = run(&["train", "--out", s(&work.path().join("r")), "--bits", "4"]);
    assert_clean_error(&out, "--bits 4 is out of range");
    let out = run(&[
        "train",
        "--out",
        s(&work.path().join("r")),
        "--label-smoothing",
        "1.5",
    ]);
    assert_clean_error(&out, "label smoothing 1.5 must lie in [0, 1)");
    // hashguard() passes --backend cpu: one device, so --device 2 is refused before any work.
    let out = hashguard()
        .args(["--device", "2", "train", "--out", s(&work.path().join("r"))])
        .output()
        .unwrap();
    assert_clean_error(&out, "--device 2: the cpu backend has 1 device(s)");
    let out = hashguard().arg("devices").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0: burn-flex"));
    // Several devices: each once, a second device that exists, and training only.
    let r_dir = work.path().join("r");
    let r = s(&r_dir);
    let out = hashguard()
        .args(["--device", "0,0", "train", "--out", r])
        .output()
        .unwrap();
    assert_clean_error(&out, "--device names device 0 twice");
    let out = hashguard()
        .args(["--device", "0,1", "train", "--out", r])
        .output()
        .unwrap();
    assert_clean_error(&out, "--device 1: the cpu backend has 1 device(s)");
    let out = hashguard()
        .args(["--device", "0,1", "eval", "--run", r])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn eval_on_a_missing_run() {
    assert_clean_error(
        &run(&["eval", "--run", "/no/such/run"]),
        "not a hashguard run",
    );
}

#[test]
fn corrupt_checkpoint_and_model_records() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(work.path(), data.path(), 1);

    // A second train into the same directory refuses to clobber it.
    let out = run(&["train", "--out", s(&run_dir), "--data", s(data.path())]);
    assert_clean_error(&out, "already holds a run");
    // --resume keeps the saved configuration.
    assert_clean_error(
        &run(&["train", "--out", s(&run_dir), "--resume", "--bits", "32"]),
        "drop --bits",
    );

    let ckpt = run_dir.join("checkpoint.bin");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 3]).unwrap();
    assert_clean_error(
        &run(&["train", "--out", s(&run_dir), "--resume"]),
        "corrupt checkpoint",
    );

    let model = run_dir.join("model.bpk");
    std::fs::write(&model, b"definitely not a burnpack record").unwrap();
    assert_clean_error(&run(&["eval", "--run", s(&run_dir)]), "model.bpk");

    std::fs::write(run_dir.join("config.json"), b"{ not json").unwrap();
    assert_clean_error(
        &run(&["eval", "--run", s(&run_dir)]),
        "unreadable run configuration",
    );
}

#[test]
fn attacks_write_reports_and_figures() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(work.path(), data.path(), 2);
    for method in ["pgd", "hag", "dhta", "cw", "centre", "mainstay"] {
        let out_dir = work.path().join(method);
        let out = run(&[
            "attack",
            "--run",
            s(&run_dir),
            "--method",
            method,
            "--steps",
            "3",
            "--queries",
            "20",
            "--out",
            s(&out_dir),
        ]);
        assert!(
            out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
        assert_eq!(r["method"], method);
        assert_eq!(r["queries"], 20);
        assert!((r["eps"].as_f64().unwrap() - 8.0 / 255.0).abs() < 1e-6);
        for key in ["clean_map", "success_rate", "mean_linf", "mean_l2"] {
            assert!(r[key].as_f64().is_some(), "{method}: {key} missing");
        }
        if method == "dhta" {
            assert!(r["t_map"].as_f64().is_some());
        } else {
            assert!(r["adv_map"].as_f64().is_some());
            assert!(r["theorem1"]["predicted_mean"].as_f64().is_some());
            assert!(out_dir.join("theorem1.png").is_file());
        }
        if method != "cw" {
            assert!(r["mean_linf"].as_f64().unwrap() <= 8.0 / 255.0 + 1e-6);
        }
        assert!(out_dir.join("examples.png").is_file());
    }
}

#[test]
fn attack_bad_input() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(work.path(), data.path(), 2);
    let attack = |extra: &[&str]| {
        let mut a = vec![
            "attack",
            "--run",
            s(&run_dir),
            "--queries",
            "5",
            "--steps",
            "1",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    assert_rejected(
        &attack(&["--method", "pgd", "--eps", "0"]),
        "outside (0, 1]",
    );
    assert_rejected(
        &attack(&["--method", "pgd", "--eps", "2"]),
        "outside (0, 1]",
    );
    assert_rejected(&attack(&["--method", "fgsm"]), "invalid value 'fgsm'");
    assert_clean_error(
        &attack(&["--method", "dhta", "--target", "42"]),
        "absent from the database",
    );
    let out = run(&[
        "attack",
        "--run",
        s(&run_dir),
        "--method",
        "pgd",
        "--queries",
        "0",
    ]);
    assert_rejected(&out, "'--queries <QUERIES>': 0 must be above 0");
    assert_clean_error(
        &run(&["attack", "--run", "/no/such/run", "--method", "pgd"]),
        "not a hashguard run",
    );
}

/// A run on 250 striped images per class: 1,000 queries, 50 training and 1,450 database images.
fn detection_run(work: &Path) -> PathBuf {
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_striped_fashion(&data, 250);
    tiny_run(work, &data, 2)
}

/// Flags that keep detection tests small.
const SMALL_DETECT: [&str; 12] = [
    "--queries",
    "24",
    "--calibration",
    "200",
    "--lid-reference",
    "30",
    "--steps",
    "2",
    "--cw-steps",
    "2",
    "--batch-size",
    "32",
];

#[test]
fn detect_and_reproduce_write_tables_reports_and_figures() {
    let work = tempfile::tempdir().unwrap();
    let run_dir = detection_run(work.path());
    let report = work.path().join("detect.json");
    let mut args = vec![
        "detect",
        "--run",
        s(&run_dir),
        "--attack",
        "pgd,dhta",
        "--report",
        s(&report),
    ];
    args.extend(SMALL_DETECT);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    // The paper's protocol: five baselines and C4, C1, C2, C3 alone and their union, per
    // attack.
    let paper = r["paper_protocol"].as_array().unwrap();
    assert_eq!(paper.len(), 6 + 3 + 1);
    for row in paper {
        assert_eq!(row["detection_rates"].as_array().unwrap().len(), 2, "{row}");
    }
    let union = paper[9]["held_out_benign_fpr"].as_f64().unwrap();
    let c1 = paper[6]["held_out_benign_fpr"].as_f64().unwrap();
    assert!(union >= c1, "the union flags at least what C1 alone does");
    // Seven detectors, UMCD again under the other two budget rules, with a two-sided C3 and
    // with C4, and supervised LID.
    let rows = r["table1"].as_array().unwrap();
    assert_eq!(rows.len(), 12 * 2);
    for o in rows.iter().filter(|o| o["detector"] == "LID (supervised)") {
        let fpr = o["held_out_benign_fpr"].as_f64().unwrap();
        assert!((0.0..=0.5).contains(&fpr), "{o}");
        assert!(
            (0.0..=1.0).contains(&o["miss_rate"].as_f64().unwrap()),
            "{o}"
        );
    }
    assert_eq!(r["queries"], 24);
    for d in r["detectors"].as_array().unwrap() {
        let cal = d["calibration"]["calibration_fpr"].as_f64().unwrap();
        assert!(cal <= 0.05 + 1e-9, "{}: calibration FPR {cal}", d["name"]);
    }
    let names: Vec<&str> = r["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "LID",
            "FS-Median",
            "FS-NLM",
            "FS-Adaptive",
            "MeanBlur",
            "C4 consistency",
            "UMCD",
            "UMCD (point mass)",
            "UMCD (Fisher)",
            "UMCD (two-sided C3)",
            "UMCD + C4"
        ]
    );
    let detector = |r: &serde_json::Value, name: &str| {
        r["detectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in the report"))
            .clone()
    };
    // Fisher's rule: one threshold on the combined statistic, within the target too.
    let fisher = &detector(&r, "UMCD (Fisher)")["calibration"];
    assert_eq!(fisher["rule"], "Fisher");
    assert!(
        fisher["fisher_threshold"].as_f64().unwrap() > 0.0,
        "{fisher}"
    );
    assert!(
        detector(&r, "UMCD (point mass)")["calibration"]
            .get("fisher_threshold")
            .is_none()
    );
    let criteria = |d: &serde_json::Value| -> Vec<(String, String)> {
        d["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].to_string(), c["direction"].to_string()))
            .collect()
    };
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(n, d)| (format!("{n:?}"), format!("{d:?}")))
            .collect()
    };
    // The two-sided C3 is C3 flagged low as well, with C3's share of the budget split.
    assert_eq!(
        criteria(&detector(&r, "UMCD (two-sided C3)")),
        pairs(&[
            ("C1", "high"),
            ("C2", "low"),
            ("C3", "high"),
            ("C3 low", "low")
        ])
    );
    // UMCD + C4 reads C4 beside the three, under the chosen rule, within the target FPR.
    let with_c4 = detector(&r, "UMCD + C4");
    assert_eq!(
        criteria(&with_c4),
        pairs(&[
            ("C1", "high"),
            ("C2", "low"),
            ("C3", "high"),
            ("C4", "high")
        ])
    );
    assert_eq!(with_c4["calibration"]["rule"], "Shares");
    assert!(with_c4["calibration"]["calibration_fpr"].as_f64().unwrap() <= 0.05 + 1e-9);
    // UMCD's k and blur were chosen on the calibration set, with the candidates kept.
    assert!(r["selection"]["k_candidates"].as_array().unwrap().len() >= 3);
    assert!(r["umcd"]["k"].as_u64().unwrap() >= 1);
    let umcd = |r: &serde_json::Value| detector(r, "UMCD")["calibration"].clone();
    assert_eq!(umcd(&r)["rule"], "Shares");

    // The point-mass budget rule: recorded, and still within the target FPR.
    let report = work.path().join("detect-point-mass.json");
    let mut args = vec![
        "detect",
        "--run",
        s(&run_dir),
        "--attack",
        "pgd",
        "--budget",
        "point-mass",
        "--report",
        s(&report),
    ];
    args.extend(SMALL_DETECT);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(umcd(&r)["rule"], "PointMass");
    assert!(umcd(&r)["calibration_fpr"].as_f64().unwrap() <= 0.05 + 1e-9);
    assert_eq!(umcd(&r)["point_mass"].as_array().unwrap().len(), 3);
    // The paper's equal split is reported beside it, on the same scores.
    assert_eq!(
        detector(&r, "UMCD (shares)")["calibration"]["rule"],
        "Shares"
    );
    assert_eq!(
        detector(&r, "UMCD + C4")["calibration"]["rule"],
        "PointMass"
    );
    let rows = r["table1"].as_array().unwrap();
    assert!(rows.iter().any(|o| o["detector"] == "UMCD (shares)"));

    let out_dir = work.path().join("repro");
    let mut args = vec![
        "reproduce",
        "--run",
        s(&run_dir),
        "--out",
        s(&out_dir),
        "--k",
        "5",
        "--blur",
        "3",
    ];
    args.extend(SMALL_DETECT);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t1 = std::fs::read_to_string(out_dir.join("table1.md")).unwrap();
    for row in [
        "| UMCD |",
        "| UMCD (point mass) |",
        "| LID |",
        "| FS-NLM |",
        "Untgt CW",
    ] {
        assert!(t1.contains(row), "table1.md lacks {row}");
    }
    let t2 = std::fs::read_to_string(out_dir.join("table2.md")).unwrap();
    for row in [
        "C3 alone",
        "C1 + C3",
        "C2 + C3",
        "C1 + C2 + C3",
        "C1 + C2 + C3 both tails",
    ] {
        assert!(t2.contains(row), "table2.md lacks {row}");
    }
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["umcd"]["k"], 5);
    assert_eq!(r["table2"]["rows"].as_array().unwrap().len(), 5);
    // CW ran with the attack command's defaults (logit margin, c 1000, the paper's lr).
    let cw = r["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["method"] == "cw")
        .expect("a CW attack in the report");
    assert_eq!(cw["cw"]["margin"], "logits");
    assert_eq!(cw["cw"]["c"], 1000.0);
    for f in [
        "roc_pgd_8.png",
        "roc_dhta_8.png",
        "roc_cw_8.png",
        "hist_c1.png",
        "hist_c2.png",
        "hist_c3.png",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    // Every sample's scores: 7 detectors, 200 calibration and 24 test images, 3 attacks.
    let scores: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("scores.json")).unwrap()).unwrap();
    assert_eq!(scores["detectors"].as_array().unwrap().len(), 7);
    assert_eq!(scores["detectors"][5]["name"], "C4 consistency");
    let umcd = &scores["detectors"][6];
    assert_eq!(umcd["name"], "UMCD");
    assert_eq!(umcd["benign_calibration"].as_array().unwrap().len(), 3);
    assert_eq!(umcd["benign_calibration"][0].as_array().unwrap().len(), 200);
    assert_eq!(
        umcd["attacks"][2]["values"][1].as_array().unwrap().len(),
        24
    );
    assert_eq!(
        scores["attacks"][0]["success"].as_array().unwrap().len(),
        24
    );

    // A second run reuses every cached attack (CW at another eps too: it has no L∞ budget)
    // and reports the same detection figures; another attack setting crafts afresh.
    args.extend(["--ablation-eps", "8/255"]);
    let again = run(&args);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("reusing the examples cached").count(),
        3,
        "{stderr}"
    );
    let r2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    let miss = |r: &serde_json::Value| -> Vec<f64> {
        let rows = r["table1"].as_array().unwrap();
        rows.iter()
            .map(|o| o["miss_rate"].as_f64().unwrap())
            .collect()
    };
    for (a, b) in miss(&r).iter().zip(miss(&r2)) {
        assert!((a - b).abs() < 0.05, "{:?} vs {:?}", miss(&r), miss(&r2));
    }
    // Three PGD/DHTA steps instead of two: only CW (whose steps are --cw-steps) is reused.
    let steps = args.iter().position(|&a| a == "--steps").unwrap();
    args[steps + 1] = "3";
    let other = run(&args);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(other.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("reusing the examples cached").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn detect_bad_input() {
    let work = tempfile::tempdir().unwrap();
    let run_dir = detection_run(work.path());
    let detect = |extra: &[&str]| {
        let mut a = vec!["detect", "--run", s(&run_dir)];
        a.extend(SMALL_DETECT);
        a.extend_from_slice(extra);
        run(&a)
    };
    assert_rejected(&detect(&["--fpr", "0"]), "'--fpr <FPR>': 0 must be above 0");
    let mut args = vec!["detect", "--run", s(&run_dir), "--calibration", "1400"];
    args.extend_from_slice(&["--lid-reference", "100"]);
    assert_clean_error(&run(&args), "--calibration 1400 + --lid-reference 100");
    assert_clean_error(
        &detect(&["--fpr-weights", "1,2"]),
        "FPR weights for 3 criteria",
    );
    assert_clean_error(&detect(&["--k", "100000"]), "k = 100000");
    assert_rejected(&detect(&["--attack", "fgsm"]), "invalid value 'fgsm'");
    assert_rejected(
        &detect(&["--cw-lr", "0"]),
        "'--cw-lr <CW_LR>': 0 must be above 0",
    );
    assert_rejected(
        &detect(&["--cw-c", "NaN"]),
        "'--cw-c <CW_C>': NaN is not a finite number",
    );
    assert_rejected(
        &detect(&["--cw-margin", "hinge"]),
        "hinge is not a CW margin",
    );
    assert_clean_error(
        &run(&["detect", "--run", "/no/such/run"]),
        "not a hashguard run",
    );
}

#[test]
fn adv_train_writes_a_run_that_evaluates_and_resumes_only_as_itself() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let run_dir = work.path().join("cgat");
    let out = run(&[
        "adv-train",
        "--method",
        "cgat",
        "--out",
        s(&run_dir),
        "--data",
        s(data.path()),
        "--bits",
        "16",
        "--epochs",
        "1",
        "--train-size",
        "5",
        "--adv-term",
        "logit",
        "--optimizer",
        "sgd",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["adversarial"]["method"], "cgat");
    assert_eq!(config["train"]["adversarial"]["term"], "logit");
    assert_eq!(config["train"]["optimizer"]["kind"], "sgd");
    assert_eq!(config["train"]["optimizer"]["momentum"], 0.9);
    assert!(run_dir.join("model.bpk").is_file());
    let report = work.path().join("r.json");
    let out = run(&["eval", "--run", s(&run_dir), "--report", s(&report)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A CgAT run cannot be resumed as standard training, nor as SAAT, nor with the other term.
    assert_clean_error(
        &run(&["train", "--resume", "--out", s(&run_dir)]),
        "resume it with the same command",
    );
    assert_clean_error(
        &run(&[
            "adv-train",
            "--method",
            "cgat",
            "--resume",
            "--out",
            s(&run_dir),
        ]),
        "resume it with the same command",
    );
    assert_clean_error(
        &run(&[
            "adv-train",
            "--method",
            "freeat",
            "--adv-term",
            "logit",
            "--out",
            s(&work.path().join("f")),
        ]),
        "--adv-term is CgAT's and SAAT's",
    );
    assert_rejected(
        &run(&[
            "train",
            "--optimizer",
            "sgd:1.5",
            "--out",
            s(&work.path().join("f")),
        ]),
        "must lie in [0, 1)",
    );
    assert_clean_error(
        &run(&[
            "adv-train",
            "--method",
            "saat",
            "--resume",
            "--out",
            s(&run_dir),
        ]),
        "resume it with the same command",
    );
    assert_rejected(
        &run(&[
            "adv-train",
            "--method",
            "fgsm",
            "--out",
            s(&work.path().join("f")),
        ]),
        "invalid value 'fgsm'",
    );
    assert_rejected(
        &run(&[
            "adv-train",
            "--method",
            "freeat",
            "--m",
            "0",
            "--out",
            s(&work.path().join("f")),
        ]),
        "'--m <REPLAYS>': 0 must be above 0",
    );
    assert_rejected(
        &run(&[
            "adv-train",
            "--method",
            "cgat",
            "--eps",
            "0",
            "--out",
            s(&work.path().join("g")),
        ]),
        "outside (0, 1]",
    );
}

#[test]
fn table_3_fine_tunes_every_method_from_one_run_and_reuses_its_work() {
    let work = tempfile::tempdir().unwrap();
    let base = detection_run(work.path());
    let out_dir = work.path().join("t3");
    let mut args = vec![
        "reproduce",
        "--table",
        "3",
        "--run",
        s(&base),
        "--out",
        s(&out_dir),
        // m = 1 for one epoch: one update per batch, as one epoch of the others, so every
        // method has a lead over FreeAT at equal updates.
        "--freeat-m",
        "1",
        "--freeat-budget",
        "1",
        "--at-epochs",
        "1",
        "--pgd-steps",
        "2,1",
        "--robust-eps",
        "16/255,8/255",
        "--robust-steps",
        "2",
        "--robust-restarts",
        "2",
    ];
    args.extend(SMALL_DETECT);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every adversarial row is a run of its own, started from the base run's weights.
    for (name, method, epochs) in [
        ("freeat-m1", "free", 1),
        ("pgd-at", "pgd", 1),
        ("cgat", "cgat", 1),
        ("saat", "saat", 1),
    ] {
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out_dir.join("models").join(name).join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["train"]["adversarial"]["method"], method, "{name}");
        assert_eq!(config["train"]["epochs"], epochs, "{name}");
        assert_eq!(config["train"]["init"], s(&base), "{name}");
        let eps = config["train"]["adversarial"]["eps"].as_f64().unwrap();
        assert!((eps - 8.0 / 255.0).abs() < 1e-6, "{name}: eps {eps}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("table3.json")).unwrap()).unwrap();
    assert!((report["at_eps"].as_f64().unwrap() - 8.0 / 255.0).abs() < 1e-6);
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["row"].as_str().unwrap()).collect();
    assert_eq!(names, ["no AT", "freeat-m1", "pgd-at", "cgat", "saat"]);
    for r in rows {
        let steps: Vec<u64> = r["pgd"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["steps"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [1, 2], "PGD columns sorted by strength");
        for v in [
            &r["clean_map"],
            &r["dhta"]["t_map"],
            &r["umcd"]["detection_rate"],
        ] {
            let v = v.as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{r}");
        }
        assert_eq!(r["umcd"]["criterion_rates"].as_array().unwrap().len(), 3);
        // The masking-proof block: both radii, sorted; transfer from the no-AT model on every
        // other row.
        let robust = r["robust"].as_array().unwrap();
        let radii: Vec<f64> = robust.iter().map(|p| p["eps"].as_f64().unwrap()).collect();
        assert!(radii.len() == 2 && radii[0] < radii[1], "{radii:?}");
        for p in robust {
            for key in ["pgd_map", "dhta_t_map"] {
                let v = p[key].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&v), "{key}: {p}");
            }
            assert_eq!(p["transfer_map"].is_null(), r["row"] == "no AT", "{p}");
        }
    }
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), rows.len());
    assert!(checks.iter().all(|c| c["steps_monotone"].is_boolean()));
    assert!(checks[0]["transfer_weaker"].is_null() && checks[1]["transfer_weaker"].is_boolean());
    let md = std::fs::read_to_string(out_dir.join("table3.md")).unwrap();
    assert!(md.contains("| freeat-m1 |") && md.contains("PGD-2"), "{md}");
    assert!(md.contains("updates / batch"), "{md}");
    assert!(md.contains("## Masking-proof evaluation"), "{md}");
    assert!(
        md.contains("transfer 16/255") && md.contains("falls with eps"),
        "{md}"
    );
    let leads: Vec<&str> = report["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["row"].as_str().unwrap())
        .collect();
    assert_eq!(leads, ["pgd-at", "cgat", "saat"]);
    assert!(md.contains("## Against FreeAT at equal updates"), "{md}");
    assert!(report["start"].is_null(), "no from-scratch block yet");
    for png in ["table3.png", "table3-robust.png", "table3-leads.png"] {
        let png = std::fs::read(out_dir.join(png)).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }

    // A second invocation trains and attacks nothing again: the rows' reports are of the
    // models on disk, so not even their training is looked at.
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("epochs from"), "{err}");
    assert_eq!(err.matches("evaluation reused").count(), 5, "{err}");
    let rows_json = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out_dir.join("rows").join(name)).unwrap()).unwrap()
    };
    assert_eq!(rows_json("no-AT.json")["model"].as_str().unwrap().len(), 16);
    assert_eq!(
        rows_json("cgat.json")["settings"]["base_model"],
        rows_json("no-AT.json")["model"],
        "rows name the base weights they were built on"
    );
    // A model no longer on disk (its report carried over from another session): the report
    // stands for it, nothing is retrained.
    std::fs::rename(out_dir.join("models/saat"), work.path().join("saat-moved")).unwrap();
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("evaluation reused").count(), 5, "{err}");
    assert!(!out_dir.join("models/saat").exists(), "{err}");
    // But a model on disk that is not the one reported is evaluated again.
    std::fs::rename(work.path().join("saat-moved"), out_dir.join("models/saat")).unwrap();
    let weights = out_dir.join("models/saat/model.bpk");
    let saved = std::fs::read(&weights).unwrap();
    std::fs::copy(out_dir.join("models/cgat/model.bpk"), &weights).unwrap();
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("== saat: evaluating"), "{err}");
    assert_eq!(err.matches("evaluation reused").count(), 4, "{err}");
    std::fs::write(&weights, saved).unwrap();
    let out = run(&args);
    assert!(out.status.success());
    // --rows names rows of this table, by name or file stem.
    let mut other = args.clone();
    other.extend(["--rows", "cgat,nosuch"]);
    assert_clean_error(
        &run(&other),
        "--rows nosuch: this table has no such row; its rows are no-AT, freeat-m1, pgd-at",
    );
    // Other training settings would silently mix runs: refused.
    let mut other = args.clone();
    other.extend(["--at-lr", "0.01"]);
    assert_clean_error(&run(&other), "holds a different run");
    // So would another training budget (it reaches every adversarial row's config).
    let mut other = args.clone();
    other.extend(["--at-eps", "16/255"]);
    assert_clean_error(&run(&other), "holds a different run");
    let mut other = args.clone();
    other.extend(["--at-eps", "0"]);
    assert_rejected(&run(&other), "is outside (0, 1]");
    // And another optimiser.
    let mut other = args.clone();
    other.extend(["--at-optimizer", "sgd"]);
    assert_clean_error(&run(&other), "holds a different run");
    let mut other = args.clone();
    other.extend(["--at-term", "tanh,cubic"]);
    assert_rejected(&run(&other), "possible values: tanh, logit");
    let mut other = args.clone();
    other.extend(["--at-targets", "codes,book"]);
    assert_rejected(&run(&other), "possible values: codes, centres");
    // The target-code ablation: a CgAT row on the hash centres beside the paper's, the other
    // rows carried over from their reports.
    let mut other = args.clone();
    other.extend(["--at-targets", "codes,centres", "--rows", "cgat-centres"]);
    let out = run(&other);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("== cgat-centres: evaluating"), "{err}");
    let config = std::fs::read_to_string(out_dir.join("models/cgat-centres/config.json")).unwrap();
    assert!(config.contains(r#""targets": "centres""#), "{config}");
    let md = std::fs::read_to_string(out_dir.join("table3.md")).unwrap();
    assert!(
        md.contains("| cgat-centres |") && md.contains("| cgat |"),
        "{md}"
    );
    // And another weight decay.
    let mut other = args.clone();
    other.extend(["--at-weight-decay", "5e-4"]);
    assert_clean_error(&run(&other), "holds a different run");
    for (flag, value, message) in [
        ("--robust-eps", "0", "is outside (0, 1]"),
        ("--robust-restarts", "0", "0 must be above 0"),
        (
            "--at-seeds",
            "0",
            "'--at-seeds <AT_SEEDS>': 0 must be above 0",
        ),
    ] {
        let mut other = args.clone();
        match other.iter().position(|a| *a == flag) {
            Some(i) => other[i + 1] = value,
            None => other.extend([flag, value]),
        }
        let out = run(&other);
        assert!(!out.status.success(), "{flag} {value} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{flag} {value}: {err}");
    }
    // A second seed of one method only (--rows, a file stem): the others wait as pending.
    let mut seeds = args.clone();
    seeds.extend(["--at-seeds", "2", "--rows", "cgat-r1"]);
    let out = run(&seeds);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("== cgat (seed + 1)"), "{err}");
    assert_eq!(err.matches("(seed + 1)").count(), 1, "{err}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("table3.json")).unwrap()).unwrap();
    assert_eq!(report["rows"].as_array().unwrap().len(), 6);
    assert_eq!(
        report["pending"],
        serde_json::json!(["freeat-m1-r1", "pgd-at-r1", "saat-r1"])
    );
    let md = std::fs::read_to_string(out_dir.join("table3.md")).unwrap();
    assert!(md.contains("| saat (1 of 2 seeds) |"), "{md}");
    assert!(md.contains("Not evaluated yet"), "{md}");
    // Then the rest of the second seed: trains only the new models, reuses the first seed's and
    // cgat-r1's reports, and reports mean ± std.
    let mut seeds = args.clone();
    seeds.extend(["--at-seeds", "2"]);
    let out = run(&seeds);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("(seed + 1)").count(), 3, "{err}");
    assert!(!err.contains("(seed + 0)"), "{err}");
    // The no-AT row's report is reused; its transfer examples come from the example cache.
    assert!(err.contains("== no AT: the transfer examples"), "{err}");
    assert!(err.contains("reusing the examples cached"), "{err}");
    assert!(!err.contains("== no AT: evaluating"), "{err}");
    let base_seed = serde_json::from_slice::<serde_json::Value>(
        &std::fs::read(base.join("config.json")).unwrap(),
    )
    .unwrap()["train"]["seed"]
        .as_u64()
        .unwrap();
    for name in ["freeat-m1-r1", "pgd-at-r1", "cgat-r1", "saat-r1"] {
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out_dir.join("models").join(name).join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["train"]["seed"], base_seed + 1, "{name}");
    }
    let md = std::fs::read_to_string(out_dir.join("table3.md")).unwrap();
    assert!(md.contains("mean ± sample std over 2 trainings"), "{md}");
    // The rows, the masking-proof block, its checks and the leads over FreeAT.
    assert_eq!(
        md.matches("| cgat |").count(),
        4,
        "one line per table: {md}"
    );
    // The from-scratch block: every method again from random weights on the base run's split.
    let mut scratch = args.clone();
    scratch.extend(["--scratch-budget", "1"]);
    let out = run(&scratch);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let base_split = std::fs::read(base.join("split.json")).unwrap();
    for name in [
        "freeat-m1-scratch",
        "pgd-at-scratch",
        "cgat-scratch",
        "saat-scratch",
    ] {
        let dir = out_dir.join("models").join(name);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert!(config["train"]["init"].is_null(), "{name}");
        assert_eq!(config["train"]["split_from"], s(&base), "{name}");
        assert_eq!(config["train"]["epochs"], 1, "{name}");
        assert!(
            std::fs::read(dir.join("split.json")).unwrap() == base_split,
            "{name}"
        );
    }
    let md = std::fs::read_to_string(out_dir.join("table3.md")).unwrap();
    assert!(md.contains("| cgat (scratch) |"), "{md}");
    // Each method's lead from scratch against fine-tuned.
    assert!(
        md.contains("## Start: from scratch against fine-tuned"),
        "{md}"
    );
    assert!(
        md.contains("| cgat | cgat (scratch) | 1 / 1, 1 / 1 |"),
        "{md}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("table3.json")).unwrap()).unwrap();
    assert_eq!(report["start"].as_array().unwrap().len(), 3, "{report}");
    // A missing base run is refused before anything is trained or written under --out.
    let empty_out = work.path().join("t3-missing");
    assert_clean_error(
        &run(&[
            "reproduce",
            "--table",
            "3",
            "--run",
            s(&work.path().join("no-such-run")),
            "--out",
            s(&empty_out),
        ]),
        "is not a hashguard run",
    );
    assert!(!empty_out.join("models").exists());
    // --init takes the base run's data and network.
    assert_clean_error(
        &run(&[
            "adv-train",
            "--method",
            "freeat",
            "--init",
            s(&base),
            "--bits",
            "32",
            "--out",
            s(&work.path().join("x")),
        ]),
        "drop --bits",
    );
}

#[test]
fn whitebox_sweeps_lambdas_and_writes_table_4_and_fig_5() {
    let work = tempfile::tempdir().unwrap();
    let base = detection_run(work.path());
    let out_dir = work.path().join("wb");
    let mut args = vec![
        "reproduce",
        "--whitebox",
        "--run",
        s(&base),
        "--out",
        s(&out_dir),
        "--lambda1",
        "0,0.01",
        "--lambda2",
        "0.3",
        "--apgd-steps",
        "3",
        "--restarts",
        "2",
    ];
    args.extend(SMALL_DETECT);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("whitebox.json")).unwrap()).unwrap();
    let lambdas: Vec<f64> = report["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lambda1"].as_f64().unwrap())
        .collect();
    assert_eq!(
        lambdas.len(),
        3,
        "Table 4's λ1 joins the sweep: {lambdas:?}"
    );
    assert!((lambdas[1] - 0.0075).abs() < 1e-6);
    for p in report["points"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["apgd_points"].as_array().unwrap())
    {
        for v in [
            &p["success_rate"],
            &p["umcd"]["tpr_at_fpr_0_1"],
            &p["meanblur"]["tpr_at_fpr_0_2"],
            &p["umcd_criterion_auc"][2],
            &p["umcd_with_c4"]["tpr_at_fpr_0_1"],
            &p["successful_and_unflagged_by_with_c4"],
            &p["c4_auc"],
        ] {
            let v = v.as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{p}");
        }
        // UMCD + C4 has four criteria, C4 the last.
        assert_eq!(
            p["umcd_with_c4"]["criterion_rates"]
                .as_array()
                .unwrap()
                .len(),
            4,
            "{p}"
        );
    }
    assert_eq!(report["apgd_points"].as_array().unwrap().len(), 1);
    let md = std::fs::read_to_string(out_dir.join("whitebox.md")).unwrap();
    assert!(
        md.contains("Table 4 analogue") && md.contains("APGD-3x2"),
        "{md}"
    );
    assert!(
        md.contains("| UMCD + C4: detects % |") && md.contains("| UMCD + C4 |"),
        "{md}"
    );
    let png = std::fs::read(out_dir.join("fig5_lambda2_0.3.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert_clean_error(
        &run(&[
            "reproduce",
            "--table",
            "3",
            "--whitebox",
            "--run",
            s(&base),
            "--out",
            s(&out_dir),
        ]),
        "name different tables",
    );
    assert_rejected(
        &run(&[
            "reproduce",
            "--whitebox",
            "--lambda1",
            "nan",
            "--run",
            s(&base),
            "--out",
            s(&out_dir),
        ]),
        "'--lambda1 <LAMBDA1>': nan is not a finite number",
    );
    // The C4-aware attacker: look-alike targets and the L4 term, one point per λ4.
    let c4_dir = work.path().join("wb-c4");
    let mut c4_args = vec![
        "reproduce",
        "--whitebox",
        "--run",
        s(&base),
        "--out",
        s(&c4_dir),
        "--lambda1",
        "0",
        "--table4-lambda1",
        "0",
        "--lambda2",
        "0.3",
        "--lambda4",
        "0,50",
        "--lookalike-targets",
        "--looks",
        "3",
        "--apgd-steps",
        "0",
    ];
    c4_args.extend(SMALL_DETECT);
    let out = run(&c4_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c4_dir.join("whitebox.json")).unwrap()).unwrap();
    assert_eq!(report["lookalike"], true);
    assert_eq!(report["looks"], 3);
    let points = report["points"].as_array().unwrap();
    let l4: Vec<(f64, f64)> = points
        .iter()
        .map(|p| {
            (
                p["lambda4"].as_f64().unwrap(),
                p["mean_terms"]["l4"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(l4.len(), 2, "{l4:?}");
    assert_eq!((l4[0].0, l4[1].0), (0.0, 50.0));
    // Without the term L4 is not computed (0); with it, the attacker reports it.
    assert_eq!(l4[0].1, 0.0);
    assert!(l4[1].1 > 0.0 && l4[1].1 < 1.0, "{l4:?}");
    let md = std::fs::read_to_string(c4_dir.join("whitebox.md")).unwrap();
    assert!(
        md.contains("look-alike targets") && md.contains("| λ2 | λ4 | λ1 |"),
        "{md}"
    );
    let mut bad = c4_args.clone();
    bad.push("--lambda4=-1");
    assert_rejected(&run(&bad), "--lambda4");
    // More looks than C4 has neighbours is refused, naming both flags.
    let mut bad = c4_args.clone();
    let at = bad.iter().position(|a| *a == "--looks").unwrap();
    bad[at + 1] = "101";
    assert_clean_error(&run(&bad), "--looks 101: C4 compares with 100 neighbours");
}

#[test]
fn export_web_ships_smaller_weights_that_encode_like_the_run_s() {
    let work = tempfile::tempdir().unwrap();
    let run_dir = detection_run(work.path());
    let trained = std::fs::metadata(run_dir.join("model.bpk")).unwrap().len();
    let mut sizes = Vec::new();
    for precision in ["f16", "f32", "int8"] {
        let out_dir = work.path().join(format!("web-{precision}"));
        let out = run(&[
            "export-web",
            "--run",
            s(&run_dir),
            "--out",
            s(&out_dir),
            "--database",
            "200",
            "--precision",
            precision,
            "--roc-queries",
            "20",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        for f in ["model.bpk", "model.json", "demo.bin"] {
            assert!(out_dir.join(f).is_file(), "{f} missing");
        }
        // The bundle carries UMCD's scores on 20 queries per ROC attack, and the export says
        // what UMCD flags of each.
        let bundle = hashguard_core::demo::DemoBundle::from_bytes(
            &std::fs::read(out_dir.join("demo.bin")).unwrap(),
        )
        .unwrap();
        let names: Vec<&str> = (bundle.header.attacked.iter())
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "PGD-100, ε = 8/255",
                "PGD-100, ε = 32/255",
                "DHTA-100, ε = 32/255"
            ]
        );
        for a in &bundle.header.attacked {
            assert!(a.values.iter().all(|c| c.len() == 20), "{}", a.name);
            assert!(stderr.contains(&format!("{}: ", a.name)), "{stderr}");
        }
        assert!(bundle.header.union_roc(2, &[0.05]).is_ok());
        // The f16 and int8 exports re-encode the shipped database and report the bits that
        // changed.
        assert_eq!(
            stderr.contains("code bits flipped"),
            precision != "f32",
            "{stderr}"
        );
        sizes.push(std::fs::metadata(out_dir.join("model.bpk")).unwrap().len());
    }
    assert_eq!(sizes[1], trained, "f32 ships the run's record as is");
    assert!(sizes[0] < trained * 6 / 10, "{sizes:?} vs {trained}");
    assert!(sizes[2] < trained * 3 / 10, "{sizes:?} vs {trained}");
    assert_rejected(
        &run(&["export-web", "--run", s(&run_dir), "--precision", "f8"]),
        "f8",
    );
    for bad in ["0", "100000"] {
        let out = run(&[
            "export-web",
            "--run",
            s(&run_dir),
            "--out",
            s(&work.path().join("never")),
            "--database",
            "200",
            "--roc-queries",
            bad,
        ]);
        assert_rejected(&out, "--roc-queries");
        assert!(!work.path().join("never").exists(), "nothing written");
    }
}

#[test]
fn export_writes_numpy_arrays_a_faiss_index_and_an_attack_s_images() {
    use hashguard_core::retrieval::{PackedCodes, hamming};
    use ndarray::{Array1, Array2, Array4};
    use ndarray_npy::read_npy;

    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(work.path(), data.path(), 2);
    assert!(run(&["encode", "--run", s(&run_dir)]).status.success());
    let report = work.path().join("pgd.json");
    let out = run(&[
        "attack",
        "--run",
        s(&run_dir),
        "--method",
        "pgd",
        "--steps",
        "3",
        "--queries",
        "12",
        "--report",
        s(&report),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = work.path().join("export");
    let export = |extra: &[&str]| {
        let mut args = vec![
            "export",
            "--run",
            s(&run_dir),
            "--format",
            "faiss",
            "--out",
            s(&exported),
            "--neighbours",
            "10",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = export(&["--attack", s(&report)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The database arrays are the run's own codes, bit for bit, in FAISS's byte layout.
    let codes_file = run_dir.join("database.codes");
    let database =
        PackedCodes::from_bytes(&std::fs::read(&codes_file).unwrap(), &codes_file).unwrap();
    let rows: Array2<u8> = read_npy(exported.join("database_codes.npy")).unwrap();
    assert_eq!(rows.dim(), (database.len(), 2));
    assert_eq!(rows.as_slice().unwrap(), database.to_byte_rows().unwrap());
    let faiss = std::fs::read(exported.join("database.faiss")).unwrap();
    assert_eq!(
        PackedCodes::from_faiss_binary_flat(&faiss, Path::new("database.faiss")).unwrap(),
        database
    );
    let labels: Array2<u8> = read_npy(exported.join("database_labels.npy")).unwrap();
    assert_eq!(labels.dim(), (database.len(), 10));
    assert!(
        labels.rows().into_iter().all(|r| r.sum() == 1),
        "one class each"
    );
    let ids: Array1<i64> = read_npy(exported.join("database_ids.npy")).unwrap();
    assert_eq!(ids.len(), database.len());

    // The ground-truth neighbours are the exact nearest rows, ties in row order.
    let queries: Array2<u8> = read_npy(exported.join("query_codes.npy")).unwrap();
    let queries = PackedCodes::from_byte_rows(16, queries.as_slice().unwrap()).unwrap();
    let nearest: Array2<i64> = read_npy(exported.join("query_neighbours.npy")).unwrap();
    let distances: Array2<i32> = read_npy(exported.join("query_distances.npy")).unwrap();
    assert_eq!(nearest.dim(), (queries.len(), 10));
    for q in 0..queries.len() {
        let mut all: Vec<(u32, usize)> = (0..database.len())
            .map(|i| (hamming(queries.code(q), database.code(i)), i))
            .collect();
        all.sort();
        for j in 0..10 {
            assert_eq!(nearest[(q, j)] as usize, all[j].1, "query {q}, rank {j}");
            assert_eq!(distances[(q, j)] as u32, all[j].0, "query {q}, rank {j}");
        }
    }

    // The attack was re-run from its report: 12 images in [0, 1], success as reported.
    let images: Array4<f32> = read_npy(exported.join("adversarial_images.npy")).unwrap();
    assert_eq!(images.dim(), (12, 1, 28, 28));
    assert!(images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let success: Array1<bool> = read_npy(exported.join("adversarial_success.npy")).unwrap();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rate = success.iter().filter(|&&s| s).count() as f64 / 12.0;
    assert!((rate - r["success_rate"].as_f64().unwrap()).abs() < 1e-9);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exported.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["arrays"].as_array().unwrap().len(), 12);
    assert_eq!(manifest["faiss_index"], "database.faiss");

    // An existing export is kept without --force, replaced whole with it; nothing is left over.
    assert_clean_error(&export(&[]), "pass --force");
    assert!(exported.join("adversarial_images.npy").is_file());
    let out = export(&["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!exported.join("adversarial_images.npy").exists());
    let names: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("partial") && !n.ends_with(".old")),
        "{names:?}"
    );

    // Reports that cannot be re-run are refused before any work.
    let garbage = work.path().join("garbage.json");
    std::fs::write(&garbage, b"{\"method\": 3").unwrap();
    assert_clean_error(
        &export(&["--force", "--attack", s(&garbage)]),
        "not an attack report",
    );
    let mut old: serde_json::Value = r.clone();
    old.as_object_mut().unwrap().remove("config");
    let old_report = work.path().join("old.json");
    std::fs::write(&old_report, serde_json::to_vec(&old).unwrap()).unwrap();
    assert_clean_error(
        &export(&["--force", "--attack", s(&old_report)]),
        "re-run `hashguard attack`",
    );
    assert!(
        exported.join("database.faiss").is_file(),
        "kept after refusals"
    );
    assert_rejected(
        &run(&["export", "--run", s(&run_dir), "--format", "parquet"]),
        "parquet",
    );
    // More ground-truth neighbours than the database holds: refused before any encoding.
    let out = run(&[
        "export",
        "--run",
        s(&run_dir),
        "--format",
        "npy",
        "--out",
        s(&work.path().join("too-many")),
        "--neighbours",
        "51",
    ]);
    assert_clean_error(&out, "--neighbours 51 exceeds the run's 50 database images");
    assert!(!work.path().join("too-many").exists());
}

#[test]
fn config_files_set_flags_the_command_line_overrides_and_reports_re_run_themselves() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A run trained from a config file keeps its resolved flags; they train it again.
    let config = w.join("train.toml");
    std::fs::write(
        &config,
        format!(
            "# tiny run\nbits = 16\nepochs = 1\ntrain_size = \"5\"\ndata = {:?}\nlr = 1e-3\n",
            s(data.path())
        ),
    )
    .unwrap();
    let run_dir = w.join("run");
    let out = run(&[
        "train",
        "--config",
        s(&config),
        "--out",
        s(&run_dir),
        "--epochs",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = std::fs::read_to_string(run_dir.join("invocation.toml")).unwrap();
    assert!(
        saved.contains("epochs = 2"),
        "the command line wins: {saved}"
    );
    assert!(
        saved.contains("bits = 16") && saved.contains("lr = 0.001"),
        "{saved}"
    );
    let train: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("train.json")).unwrap()).unwrap();
    assert_eq!(train["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(train["invocation"]["command"], "train");
    assert_eq!(train["invocation"]["flags"]["epochs"], 2);
    let again = w.join("again");
    let out = run(&[
        "train",
        "--config",
        s(&run_dir.join("invocation.toml")),
        "--out",
        s(&again),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Re-trained from its invocation: the same losses, epoch by epoch, and the same codes (the
    // records themselves differ in their random parameter ids).
    let losses = |dir: &Path| -> Vec<serde_json::Value> {
        let t: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("train.json")).unwrap()).unwrap();
        t["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["loss"].clone())
            .collect()
    };
    assert_eq!(losses(&run_dir), losses(&again));
    for dir in [&run_dir, &again] {
        assert!(run(&["encode", "--run", s(dir)]).status.success());
    }
    assert_eq!(
        std::fs::read(run_dir.join("database.codes")).unwrap(),
        std::fs::read(again.join("database.codes")).unwrap(),
        "re-trained from its invocation: the same codes"
    );

    // An attack report re-runs from itself and reproduces its figures.
    let first = w.join("first.json");
    let attack = std::fs::write(
        w.join("attack.toml"),
        "method = \"pgd\"\neps = \"8/255\"\nsteps = 5\nqueries = 12\nrandom-start = true\n",
    );
    attack.unwrap();
    let out = run(&[
        "attack",
        "--config",
        s(&w.join("attack.toml")),
        "--run",
        s(&run_dir),
        "--steps",
        "3",
        "--report",
        s(&first),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&first).unwrap()).unwrap();
    assert_eq!(a["steps"], 3, "the command line wins");
    assert_eq!(a["random_start"], true, "the config's switch");
    let second = w.join("second.json");
    let out = run(&["attack", "--config", s(&first), "--report", s(&second)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&second).unwrap()).unwrap();
    for key in [
        "queries",
        "steps",
        "eps",
        "clean_map",
        "adv_map",
        "success_rate",
        "mean_linf",
    ] {
        assert_eq!(a[key], b[key], "{key} re-run from the report");
    }

    // Bad config files: one line naming the file and the key, before any work.
    let bad = |name: &str, text: &str, needle: &str| {
        let path = w.join(name);
        std::fs::write(&path, text).unwrap();
        let started = Instant::now();
        let out = run(&["attack", "--run", s(&run_dir), "--config", s(&path)]);
        assert_clean_error(&out, needle);
        assert!(String::from_utf8_lossy(&out.stderr).contains(name));
        assert!(started.elapsed() < Duration::from_secs(20));
    };
    bad(
        "unknown.toml",
        "method = \"pgd\"\nepsilon = 0.1\n",
        "unknown key `epsilon`",
    );
    bad(
        "type.toml",
        "method = \"pgd\"\nsteps = \"many\"\n",
        "key `steps`",
    );
    bad("range.toml", "method = \"pgd\"\neps = 2.5\n", "key `eps`");
    bad(
        "list.toml",
        "method = \"pgd\"\nsteps = [1, 2]\n",
        "key `steps` takes one value",
    );
    bad(
        "switch.toml",
        "method = \"pgd\"\nrandom-start = 1\n",
        "key `random-start` is a switch",
    );
    bad("broken.toml", "method = = 1\n", "not a TOML config");
    bad(
        "other.json",
        &std::fs::read_to_string(run_dir.join("train.json")).unwrap(),
        "written by `hashguard train`",
    );
    assert_clean_error(
        &run(&["encode", "--run", s(&run_dir), "--config", s(&config)]),
        "takes no --config",
    );
}

/// Epochs recorded in a run's checkpoint (magic, JSON length, JSON history, …), or `None` when
/// there is no whole checkpoint under the name.
fn checkpoint_epochs(run_dir: &Path) -> Option<usize> {
    let bytes = std::fs::read(run_dir.join("checkpoint.bin")).ok()?;
    let len = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?) as usize;
    let history: Vec<serde_json::Value> = serde_json::from_slice(bytes.get(16..16 + len)?).ok()?;
    Some(history.len())
}

/// Per-epoch losses of a finished run (`train.json`), as the f32 they were computed in.
fn epoch_losses(run_dir: &Path) -> Vec<[f32; 3]> {
    let train: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("train.json")).unwrap()).unwrap();
    train["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| ["loss", "bce", "quantisation"].map(|k| e[k].as_f64().unwrap() as f32))
        .collect()
}

/// Starts `fresh` (or `resume` once the run has its config) and SIGKILLs it at up to ten
/// moments drawn from a fixed-seed generator, 0.3–1.8 s into each attempt (a checkpoint is
/// written every epoch, so a kill can land inside a write). After each kill every file under its
/// final name is whole and the checkpoint never goes back; the next attempt resumes exactly
/// from it (the epoch in flight is all that is lost). Returns how many kills landed.
fn kill_at_ten_moments(fresh: &[&str], resume: &[&str], run_dir: &Path) -> usize {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut kills = 0;
    let mut done = 0;
    for _ in 0..10 {
        let started = run_dir.join("config.json").is_file();
        let mut child = hashguard()
            .args(if started { resume } else { fresh })
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + next() % 1500));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        kills += 1;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if started && let Some(line) = stderr.lines().find(|l| l.starts_with("resuming ")) {
            let from: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(
                from, done,
                "resumed from another epoch than checkpointed: {stderr}"
            );
        }
        if run_dir.join("config.json").is_file() {
            let config = std::fs::read(run_dir.join("config.json")).unwrap();
            serde_json::from_slice::<serde_json::Value>(&config).expect("config.json whole");
        }
        if run_dir.join("checkpoint.bin").exists() {
            let now = checkpoint_epochs(run_dir).expect("checkpoint.bin whole after SIGKILL");
            assert!(now >= done, "the checkpoint went back from {done} to {now}");
            done = now;
        }
    }
    kills
}

/// Crash safety: training and adversarial training killed at ten moments each end with the
/// same per-epoch losses and database codes as uninterrupted runs (training is deterministic
/// per seed and epoch), with no temporary file left behind.
#[test]
fn runs_killed_at_ten_moments_end_as_uninterrupted_ones() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let common = [
        "--data",
        s(data.path()),
        "--bits",
        "16",
        "--train-size",
        "5",
    ];
    for (command, extra, epochs) in [
        ("train", &[][..], "30"),
        ("adv-train", &["--method", "cgat"][..], "12"),
    ] {
        let reference = work.path().join(format!("{command}-reference"));
        let killed = work.path().join(format!("{command}-killed"));
        let args = |out: &Path| -> Vec<String> {
            let mut a = vec![command.to_string()];
            a.extend(extra.iter().map(|s| s.to_string()));
            a.extend([
                "--out".into(),
                s(out).into(),
                "--epochs".into(),
                epochs.into(),
            ]);
            a.extend(common.iter().map(|s| s.to_string()));
            a
        };
        let (fresh_ref, fresh_killed) = (args(&reference), args(&killed));
        let fresh_ref: Vec<&str> = fresh_ref.iter().map(String::as_str).collect();
        let fresh_killed: Vec<&str> = fresh_killed.iter().map(String::as_str).collect();
        let out = run(&fresh_ref);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut resume = vec![command];
        resume.extend_from_slice(extra);
        resume.extend(["--out", s(&killed), "--resume"]);
        let kills = kill_at_ten_moments(&fresh_killed, &resume, &killed);
        assert!(
            kills >= 3,
            "{command}: the run ended before most kills ({kills})"
        );
        let finish = if killed.join("config.json").is_file() {
            run(&resume)
        } else {
            run(&fresh_killed)
        };
        assert!(
            finish.status.success(),
            "{}",
            String::from_utf8_lossy(&finish.stderr)
        );
        assert_eq!(
            epoch_losses(&killed),
            epoch_losses(&reference),
            "{command}: killed {kills} times, the losses differ from the uninterrupted run's"
        );
        for dir in [&reference, &killed] {
            let out = run(&["encode", "--run", s(dir)]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(
            std::fs::read(killed.join("database.codes")).unwrap(),
            std::fs::read(reference.join("database.codes")).unwrap(),
            "{command}: the codes differ from the uninterrupted run's"
        );
        let leftovers: Vec<PathBuf> = std::fs::read_dir(&killed)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{command}: temporary files left: {leftovers:?}"
        );
        eprintln!("{command}: killed {kills} times, same losses and codes");
    }
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` at `dir`, or `None` where this process may not mount.
    fn mount(dir: &Path, bytes: u64) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes}"),
                "tmpfs",
                s(dir),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        ok.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Disk full: a run on a tmpfs with room for one checkpoint but not for writing the next beside
/// it fails at epoch 2 with an error naming checkpoint.bin and the full disk; the epoch-1
/// checkpoint stays whole under its name, no temporary file is left, and the run, moved to
/// a disk with room, resumes to the same losses as a run that never ran out of space. Skipped
/// (with a note) where the test may not mount a tmpfs.
#[test]
fn a_full_disk_keeps_the_last_checkpoint_and_says_so() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        let mut a: Vec<String> = ["train", "--out", s(out), "--data", s(data.path())]
            .map(String::from)
            .to_vec();
        a.extend(["--bits", "16", "--train-size", "5", "--epochs", "3"].map(String::from));
        a
    };
    let reference = work.path().join("reference");
    let out = hashguard().args(args(&reference)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = |f: &str| std::fs::metadata(reference.join(f)).unwrap().len();
    let (model, checkpoint) = (size("model.bpk"), size("checkpoint.bin"));
    assert!(
        model < checkpoint / 2,
        "the sizing below needs model < checkpoint / 2"
    );
    let small = size("config.json") + size("split.json") + size("invocation.toml");
    // Room for config, split, model and one checkpoint, plus half a checkpoint: epoch 1 fits,
    // epoch 2's model fits beside the old one, its checkpoint does not.
    let room = small + model + checkpoint + checkpoint / 2 + 64 * 1024;
    let Some(disk) = Tmpfs::mount(&work.path().join("small-disk"), room) else {
        eprintln!("skipped: this process may not mount a tmpfs");
        return;
    };
    let full = disk.0.join("run");
    let out = hashguard().args(args(&full)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the run fitted in {room} bytes: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("checkpoint.bin") && last.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(
        checkpoint_epochs(&full),
        Some(1),
        "the epoch-1 checkpoint is whole"
    );
    let names: Vec<String> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
    // Moved to a disk with room, it resumes and ends as the reference did.
    let moved = work.path().join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    for name in &names {
        std::fs::copy(full.join(name), moved.join(name)).unwrap();
    }
    drop(disk);
    let out = run(&["train", "--out", s(&moved), "--resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(epoch_losses(&moved), epoch_losses(&reference));
}

/// Read-only: on a file system remounted read-only under a finished run, `encode` (which writes
/// `database.codes`) and `train --resume` (which takes the run's lock) fail with one line naming
/// the file and the read-only file system, and every file of the run is left byte for byte.
/// Skipped (with a note) where the test may not mount a tmpfs.
#[test]
fn a_read_only_disk_is_an_error_that_changes_nothing() {
    let data = tiny_data();
    let work = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&work.path().join("disk"), 64 << 20) else {
        eprintln!("skipped: this process may not mount a tmpfs");
        return;
    };
    let run_dir = disk.0.join("run");
    let mut args = tiny_train_args(&run_dir, data.path()).to_vec();
    args.extend(["--epochs", "1"]);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot = || {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&run_dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot();
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro", s(&disk.0)])
        .status()
        .is_ok_and(|st| st.success());
    assert!(remounted, "remounting the tmpfs read-only");
    for args in [
        vec!["encode", "--run", s(&run_dir)],
        vec!["train", "--out", s(&run_dir), "--resume"],
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} succeeded on a read-only disk"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        let last = stderr.trim_end().lines().last().unwrap_or_default();
        assert!(last.contains("Read-only file system"), "{args:?}: {stderr}");
    }
    assert!(snapshot() == before, "a file of the run changed");
}

/// `auto` probes wgpu's adapters. Without `XDG_RUNTIME_DIR` (containers, `su` shells), Mesa's
/// device-select layer asked libwayland for a display, which printed "error: XDG_RUNTIME_DIR is
/// invalid or not set" at every probe; the binary now supplies the variable. (Where no Vulkan
/// driver is installed nothing probes, and the test passes either way.)
#[test]
fn the_auto_backend_probe_is_quiet_without_a_runtime_dir() {
    let out = Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .env_remove("XDG_RUNTIME_DIR")
        .args(["--backend", "auto", "devices"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}
