//! `cargo run -p xtask -- web-build | web-serve`: builds the browser demo (wasm32 build of
//! hashguard-web, wasm-bindgen run as a library so no CLI of a matching version needs
//! installing, optional `wasm-opt`) and serves a directory over HTTP on localhost.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo run -p xtask -- web-build [--profile web-release|web-dev] [--out DIR] \
                     | web-serve [--dir DIR] [--port 8080]";

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
            web_build(&root, &profile, &out)
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

fn web_build(root: &Path, profile: &str, out: &Path) -> Result<()> {
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
    // wasm-opt is optional and runs on the shipped profile only (Debian 12's binaryen 108 yields
    // a module that fails `WebAssembly.Table.set` at start: check the page after using one):
    // the quick `web-dev` build is for tests, and -Oz on its 50 MB module takes minutes. The
    // features are the ones rustc's wasm32 target emits (plus SIMD, which Burn's CPU kernels
    // use); binaryen rejects a module using anything not listed.
    let opt = (profile == "web-release").then(|| {
        Command::new("wasm-opt")
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
            .arg(&bg)
            .arg(&bg)
            .status()
    });
    let optimised = match &opt {
        None => format!(", wasm-opt not run ({profile})"),
        Some(Ok(s)) if s.success() => {
            format!(", wasm-opt -Oz from {:.1} MB", before as f64 / 1e6)
        }
        Some(Ok(s)) => format!(", wasm-opt failed ({s}): module left unoptimised"),
        Some(Err(_)) => ", wasm-opt not found (optional)".into(),
    };
    std::fs::copy(root.join("web/index.html"), out.join("index.html"))
        .context("copying web/index.html")?;
    let bytes = std::fs::read(&bg)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    let gzipped = gz.finish()?.len();
    println!(
        "{}: {:.1} MB ({:.1} MB gzipped){}",
        bg.display(),
        bytes.len() as f64 / 1e6,
        gzipped as f64 / 1e6,
        optimised
    );
    Ok(())
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
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
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
        let (status, body) = if safe {
            ("200 OK", std::fs::read(&file).unwrap_or_default())
        } else {
            ("404 Not Found", b"not found".to_vec())
        };
        let mime = match file.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript",
            Some("wasm") => "application/wasm",
            Some("png") => "image/png",
            _ => "application/octet-stream",
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(&body);
    }
    Ok(())
}
