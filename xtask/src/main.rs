//! `cargo run -p xtask -- web-build | web-serve`: builds the browser demo (wasm32 build of
//! hashguard-web, wasm-bindgen run as a library so no CLI of a matching version needs
//! installing, optional `wasm-opt`, gzip and brotli copies, a size report and budget) and serves
//! a directory over HTTP on localhost, precompressed copies first.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo run -p xtask -- web-build [--profile web-release|web-dev] [--out DIR] \
                     [--max-gzip-mb MB] | web-serve [--dir DIR] [--port 8080]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("web-build") => {
            let profile = flag("--profile").unwrap_or_else(|| "web-release".into());
            let out = flag("--out").map_or_else(|| root.join("web/dist"), PathBuf::from);
            let budget = flag("--max-gzip-mb")
                .map(|v| match v.parse::<f64>() {
                    Ok(mb) if mb.is_finite() && mb > 0.0 => Ok(mb),
                    _ => bail!("--max-gzip-mb must be a positive number of megabytes, not {v:?}"),
                })
                .transpose()?;
            web_build(&root, &profile, &out, budget)
        }
        Some("web-serve") => {
            let dir = flag("--dir").map_or_else(|| root.join("web/dist"), PathBuf::from);
            let port: u16 = flag("--port")
                .unwrap_or_else(|| "8080".into())
                .parse()
                .context("--port must be a number")?;
            serve(&dir, port)
        }
        _ => bail!("{USAGE}"),
    }
}

/// The workspace being worked on, asked of cargo at run time: the path compiled into the
/// binary can be stale when a shared target dir serves several clones.
fn workspace_root() -> PathBuf {
    let located = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|manifest| Path::new(manifest.trim()).parent().map(Path::to_path_buf));
    located.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in the workspace")
            .to_path_buf()
    })
}

fn target_dir(root: &Path) -> Result<PathBuf> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    Ok(PathBuf::from(
        meta["target_directory"]
            .as_str()
            .context("no target_directory in cargo metadata")?,
    ))
}

/// The app's two builds: the subdirectory of the output each goes to and its cargo features.
/// The page loads the first where the browser offers a WebGPU adapter, the second elsewhere.
const MODULES: [(&str, &[&str]); 2] = [("", &["--features", "webgpu"]), ("cpu", &[])];

/// Builds the demo into `out`: both modules (see [`MODULES`]) through wasm-bindgen (and
/// wasm-opt on the shipped profile), the page, the assets, their compressed copies and the size
/// report; fails when what the page downloads on either path exceeds `budget_mb` gzipped.
fn web_build(root: &Path, profile: &str, out: &Path, budget_mb: Option<f64>) -> Result<()> {
    let mut notes = Vec::new();
    for (dir, features) in MODULES {
        let note = build_module(root, profile, &out.join(dir), features)?;
        notes.push(format!(
            "{}: {note}",
            if dir.is_empty() { "webgpu" } else { dir }
        ));
    }
    finish_web_build(root, out, budget_mb, &notes)
}

/// Builds one module of the app with `features` into `out` (wasm-bindgen's output, optimised on
/// the shipped profile); returns what wasm-opt did.
fn build_module(root: &Path, profile: &str, out: &Path, features: &[&str]) -> Result<String> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "-p",
            "hashguard-web",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            profile,
        ])
        .args(features)
        .current_dir(root)
        .status()
        .context("running cargo build for wasm32")?;
    if !status.success() {
        bail!(
            "the wasm build failed (is the target installed? `rustup target add wasm32-unknown-unknown`)"
        );
    }
    let wasm = target_dir(root)?
        .join("wasm32-unknown-unknown")
        .join(profile)
        .join("hashguard_web.wasm");
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        .generate(out)
        .context("running wasm-bindgen")?;
    let bg = out.join("hashguard_web_bg.wasm");
    let before = std::fs::metadata(&bg)?.len();
    // wasm-opt runs on the shipped profile only (the quick `web-dev` build is for tests, and
    // -Oz on its 50 MB module takes minutes). The features are the ones rustc's wasm32 target
    // emits (plus SIMD, which Burn's CPU kernels use); binaryen rejects a module using anything
    // not listed.
    let optimised_tmp = out.join("hashguard_web_bg.opt.tmp");
    let opt = if profile == "web-release" {
        match wasm_opt(root) {
            Ok(program) => Command::new(&program)
                .args([
                    "-Oz",
                    "--enable-bulk-memory",
                    "--enable-nontrapping-float-to-int",
                    "--enable-sign-ext",
                    "--enable-reference-types",
                    "--enable-multivalue",
                    "--enable-mutable-globals",
                    "--enable-simd",
                    "-o",
                ])
                .arg(&optimised_tmp)
                .arg(&bg)
                .status()
                .map_err(|e| format!("{} did not run ({e})", program.display())),
            Err(why) => Err(why),
        }
    } else {
        Err(format!("not run ({profile})"))
    };
    // The optimised module replaces the original only when wasm-opt succeeded.
    if opt.as_ref().is_ok_and(|s| s.success()) {
        std::fs::rename(&optimised_tmp, &bg).context("replacing the module by wasm-opt's")?;
    } else {
        let _ = std::fs::remove_file(&optimised_tmp);
    }
    Ok(match &opt {
        Ok(s) if s.success() => format!("wasm-opt -Oz from {:.1} MB", before as f64 / 1e6),
        Ok(s) => format!("wasm-opt failed ({s}): module left unoptimised"),
        Err(why) => format!("wasm-opt {why}"),
    })
}

/// Copies the page and the assets beside the modules, compresses everything and checks the
/// budget.
fn finish_web_build(
    root: &Path,
    out: &Path,
    budget_mb: Option<f64>,
    notes: &[String],
) -> Result<()> {
    std::fs::copy(root.join("web/index.html"), out.join("index.html"))
        .context("copying web/index.html")?;
    // The model and demo data are separate files the page fetches (with a progress bar) beside
    // the module, not bytes inside it.
    for name in ASSETS {
        std::fs::copy(root.join("web/assets").join(name), out.join(name))
            .with_context(|| format!("copying web/assets/{name}"))?;
    }
    let sizes = compress_all(out)?;
    println!("{}", sizes.table());
    println!("{}", notes.join("; "));
    let budget = budget_mb.map(|mb| (mb * 1e6) as u64);
    std::fs::write(out.join("sizes.json"), sizes.json(budget))?;
    for (path, _) in PATHS {
        let (gzip, brotli) = (
            sizes.total(path, Column::Gzip),
            sizes.total(path, Column::Brotli),
        );
        if let Some(b) = budget
            && gzip > b
        {
            bail!(
                "the demo's {path} path downloads {:.2} MB gzipped before it can be used, over \
                 the {:.2} MB budget: see {}",
                gzip as f64 / 1e6,
                b as f64 / 1e6,
                out.join("sizes.json").display()
            );
        }
        println!(
            "the {path} path downloads {:.2} MB gzipped ({:.2} MB brotli) before the demo can be \
             used{}",
            gzip as f64 / 1e6,
            brotli as f64 / 1e6,
            budget.map_or(String::new(), |b| format!(
                " (budget {:.2} MB gzipped)",
                b as f64 / 1e6
            ))
        );
    }
    Ok(())
}

/// The oldest binaryen whose `wasm-opt` output works: Debian 12's 108 yields a module that fails
/// `WebAssembly.Table.set` at start (checked in Chromium).
const MIN_BINARYEN: u32 = 116;

/// The `wasm-opt` to run: `$WASM_OPT`, else the one `npm ci` installs in `web/e2e` (binaryen
/// from npm), else one on `PATH`; refused when older than [`MIN_BINARYEN`].
fn wasm_opt(root: &Path) -> std::result::Result<PathBuf, String> {
    let npm = root.join("web/e2e/node_modules/.bin/wasm-opt");
    let program = std::env::var_os("WASM_OPT")
        .map(PathBuf::from)
        .or_else(|| npm.is_file().then_some(npm))
        .unwrap_or_else(|| PathBuf::from("wasm-opt"));
    let out = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|_| "not found (optional: `npm ci` in web/e2e installs binaryen's)".to_string())?;
    // "wasm-opt version 132 (version_132)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse::<u32>().ok());
    match version {
        Some(v) if v >= MIN_BINARYEN => Ok(program),
        _ => Err(format!(
            "not run: {} is {:?}, older than binaryen {MIN_BINARYEN} or unreadable (`npm ci` in \
             web/e2e installs a newer one)",
            program.display(),
            text.trim()
        )),
    }
}

/// The files the page fetches beside its module (copied from `web/assets`).
const ASSETS: [&str; 3] = ["model.json", "model.bpk", "demo.bin"];
/// The sizes the page's progress bar counts against (written by the build).
const MANIFEST: &str = "assets.json";
/// Every file the build ships.
const SHIPPED: [&str; 9] = [
    "index.html",
    MANIFEST,
    "hashguard_web.js",
    "hashguard_web_bg.wasm",
    "cpu/hashguard_web.js",
    "cpu/hashguard_web_bg.wasm",
    "model.json",
    "model.bpk",
    "demo.bin",
];
/// What the page downloads before the demo can be used, on each path it can take.
const PATHS: [(&str, [&str; 7]); 2] = [
    (
        "WebGPU",
        [
            "index.html",
            MANIFEST,
            "hashguard_web.js",
            "hashguard_web_bg.wasm",
            "model.json",
            "model.bpk",
            "demo.bin",
        ],
    ),
    (
        "CPU",
        [
            "index.html",
            MANIFEST,
            "cpu/hashguard_web.js",
            "cpu/hashguard_web_bg.wasm",
            "model.json",
            "model.bpk",
            "demo.bin",
        ],
    ),
];

/// A size column of [`Sizes`].
#[derive(Clone, Copy)]
enum Column {
    Raw,
    Gzip,
    Brotli,
}

/// Sizes of the shipped files: as served raw, gzipped and brotli-compressed.
struct Sizes {
    files: Vec<(&'static str, [u64; 3])>,
}

impl Sizes {
    /// Bytes of `column` summed over what the page downloads on `path`.
    fn total(&self, path: &str, column: Column) -> u64 {
        let names = PATHS
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(&[][..], |(_, names)| &names[..]);
        self.files
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(_, sizes)| sizes[column as usize])
            .sum()
    }

    fn table(&self) -> String {
        let mut out = format!(
            "{:<28} {:>10} {:>10} {:>10}\n",
            "file", "bytes", "gzip", "brotli"
        );
        for (name, [raw, gz, br]) in &self.files {
            out += &format!("{name:<28} {raw:>10} {gz:>10} {br:>10}\n");
        }
        for (path, _) in PATHS {
            let [raw, gz, br] =
                [Column::Raw, Column::Gzip, Column::Brotli].map(|c| self.total(path, c));
            out += &format!(
                "{:<28} {raw:>10} {gz:>10} {br:>10}\n",
                format!("{path} path")
            );
        }
        out.trim_end().to_string()
    }

    fn json(&self, budget: Option<u64>) -> String {
        let sizes =
            |[raw, gz, br]: [u64; 3]| serde_json::json!({ "bytes": raw, "gzip": gz, "brotli": br });
        let files: serde_json::Map<String, serde_json::Value> = self
            .files
            .iter()
            .map(|(name, s)| (name.to_string(), sizes(*s)))
            .collect();
        let paths: serde_json::Map<String, serde_json::Value> = PATHS
            .iter()
            .map(|(path, _)| {
                let totals =
                    [Column::Raw, Column::Gzip, Column::Brotli].map(|c| self.total(path, c));
                (path.to_string(), sizes(totals))
            })
            .collect();
        let json = serde_json::json!({
            "files": files,
            "paths": paths,
            "budget_gzip": budget,
        });
        serde_json::to_string_pretty(&json).expect("sizes serialise")
    }
}

/// Writes `NAME.gz` and `NAME.br` beside every shipped file (a static host serves them to
/// browsers that accept them; `web-serve` does) and `assets.json`, the raw sizes the page's
/// progress bar counts against.
fn compress_all(out: &Path) -> Result<Sizes> {
    let mut manifest = serde_json::Map::new();
    for name in SHIPPED.iter().filter(|&&n| n != MANIFEST) {
        let path = out.join(name);
        let len = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        manifest.insert(name.to_string(), len.into());
    }
    let manifest = serde_json::json!({ "files": manifest });
    write_atomic(&out.join(MANIFEST), manifest.to_string().as_bytes())?;
    let mut files = Vec::new();
    for name in SHIPPED {
        let path = out.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes)?;
        let gz = gz.finish()?;
        let mut br = Vec::new();
        let params = brotli::enc::BrotliEncoderParams {
            quality: 11,
            lgwin: 24,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut &bytes[..], &mut br, &params)?;
        write_atomic(&out.join(format!("{name}.gz")), &gz)?;
        write_atomic(&out.join(format!("{name}.br")), &br)?;
        files.push((name, [bytes.len() as u64, gz.len() as u64, br.len() as u64]));
    }
    Ok(Sizes { files })
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn serve(dir: &Path, port: u16) -> Result<()> {
    if !dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: run `cargo run -p xtask -- web-build` first",
            dir.display()
        );
    }
    let listener = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    println!("serving {} on http://127.0.0.1:{port}/", dir.display());
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        // The request's headers: only Accept-Encoding matters here.
        let mut accepts = String::new();
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
            if let Some((key, value)) = header.split_once(':')
                && key.eq_ignore_ascii_case("accept-encoding")
            {
                accepts = value.trim().to_ascii_lowercase();
            }
            header.clear();
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split('?').next().unwrap_or("/");
        let name = if path == "/" {
            "index.html"
        } else {
            path.trim_start_matches('/')
        };
        let file = dir.join(name);
        let safe = !name.contains("..") && file.is_file();
        // The precompressed copy the browser accepts, as a static host would serve it.
        let encoded = ["br", "gzip"].into_iter().find_map(|encoding| {
            let ext = if encoding == "br" { "br" } else { "gz" };
            let copy = dir.join(format!("{name}.{ext}"));
            (safe && accepts.contains(encoding) && copy.is_file()).then_some((encoding, copy))
        });
        let (status, body) = match (&encoded, safe) {
            (Some((_, copy)), _) => ("200 OK", std::fs::read(copy).unwrap_or_default()),
            (None, true) => ("200 OK", std::fs::read(&file).unwrap_or_default()),
            (None, false) => ("404 Not Found", b"not found".to_vec()),
        };
        let mime = match file.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript",
            Some("json") => "application/json",
            Some("wasm") => "application/wasm",
            Some("png") => "image/png",
            _ => "application/octet-stream",
        };
        let encoding = encoded.map_or(String::new(), |(e, _)| format!("Content-Encoding: {e}\r\n"));
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\n{encoding}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(&body);
    }
    Ok(())
}
