//! What the build ships and downloads: gzip and brotli copies of every file, the size table per
//! file and per stage of the page's download, and the budget check.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The sizes the page's progress bar counts against (written by the build).
pub(crate) const MANIFEST: &str = "assets.json";
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
/// A set of files the page downloads together.
pub(crate) struct Stage {
    /// What the stage is, as the size table names it.
    pub name: &'static str,
    /// The files it fetches.
    pub files: &'static [&'static str],
    /// Whether the build's budget applies: what every browser fetches before the demo can be
    /// used.
    pub budgeted: bool,
}

/// What the page downloads: every browser first gets the CPU module with the model and the
/// demo data (the budgeted stage); a browser with a WebGPU adapter then fetches the WebGPU
/// module in the background; `?backend=webgpu` fetches that module first instead.
pub(crate) const STAGES: [Stage; 3] = [
    Stage {
        name: "before use (CPU module)",
        files: &[
            "index.html",
            MANIFEST,
            "cpu/hashguard_web.js",
            "cpu/hashguard_web_bg.wasm",
            "model.json",
            "model.bpk",
            "demo.bin",
        ],
        budgeted: true,
    },
    Stage {
        name: "then WebGPU, in background",
        files: &["hashguard_web.js", "hashguard_web_bg.wasm"],
        budgeted: false,
    },
    Stage {
        name: "?backend=webgpu before use",
        files: &[
            "index.html",
            MANIFEST,
            "hashguard_web.js",
            "hashguard_web_bg.wasm",
            "model.json",
            "model.bpk",
            "demo.bin",
        ],
        budgeted: false,
    },
];

/// A size column of [`Sizes`].
#[derive(Clone, Copy)]
pub(crate) enum Column {
    Raw,
    Gzip,
    Brotli,
}

/// Sizes of the shipped files: as served raw, gzipped and brotli-compressed.
pub(crate) struct Sizes {
    files: Vec<(&'static str, [u64; 3])>,
}

impl Sizes {
    /// Bytes of `column` summed over the files of `stage`.
    pub(crate) fn total(&self, stage: &Stage, column: Column) -> u64 {
        self.files
            .iter()
            .filter(|(name, _)| stage.files.contains(name))
            .map(|(_, sizes)| sizes[column as usize])
            .sum()
    }

    pub(crate) fn table(&self) -> String {
        let mut out = format!(
            "{:<28} {:>10} {:>10} {:>10}\n",
            "file", "bytes", "gzip", "brotli"
        );
        for (name, [raw, gz, br]) in &self.files {
            out += &format!("{name:<28} {raw:>10} {gz:>10} {br:>10}\n");
        }
        for stage in &STAGES {
            let [raw, gz, br] =
                [Column::Raw, Column::Gzip, Column::Brotli].map(|c| self.total(stage, c));
            out += &format!("{:<28} {raw:>10} {gz:>10} {br:>10}\n", stage.name);
        }
        out.trim_end().to_string()
    }

    pub(crate) fn json(&self, budget: Option<u64>) -> String {
        let sizes =
            |[raw, gz, br]: [u64; 3]| serde_json::json!({ "bytes": raw, "gzip": gz, "brotli": br });
        let files: serde_json::Map<String, serde_json::Value> = self
            .files
            .iter()
            .map(|(name, s)| (name.to_string(), sizes(*s)))
            .collect();
        let stages: serde_json::Map<String, serde_json::Value> = STAGES
            .iter()
            .map(|stage| {
                let totals =
                    [Column::Raw, Column::Gzip, Column::Brotli].map(|c| self.total(stage, c));
                let mut entry = sizes(totals);
                entry["budgeted"] = stage.budgeted.into();
                (stage.name.to_string(), entry)
            })
            .collect();
        let json = serde_json::json!({
            "files": files,
            "stages": stages,
            "budget_gzip": budget,
        });
        serde_json::to_string_pretty(&json).expect("sizes serialise")
    }
}

/// Writes `NAME.gz` and `NAME.br` beside every shipped file (a static host serves them to
/// browsers that accept them; `web-serve` does) and `assets.json`, the raw sizes the page's
/// progress bar counts against.
pub(crate) fn compress_all(out: &Path) -> Result<Sizes> {
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
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
