//! Decode-and-resize throughput of hashguard's image loader (the worker threads that feed
//! training and the image cache), beside `benches/peers/loader_throughput.py` (PyTorch's
//! DataLoader with PIL) on the same files and worker count. Images are decoded as the data
//! loaders store them: the RESIZE x RESIZE centre square, from which training crops CROP.
//!
//! `target/release/examples/loader_throughput ROOT [RESIZE CROP [RUNS]]` over every image
//! under ROOT's class folders; prints JSON with images/s of each run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use hashguard_core::data::{ImageGeometry, decode_images, scan_folder};
use hashguard_core::progress::Silent;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(root) = args.first().map(PathBuf::from) else {
        eprintln!("usage: loader_throughput ROOT [RESIZE CROP [RUNS]]");
        return ExitCode::FAILURE;
    };
    let num = |i: usize, default: u32| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (resize, crop, runs) = (num(1, 256), num(2, 224), num(3, 3));
    let result = (|| -> hashguard_core::Result<Vec<f64>> {
        let scan = scan_folder(&root)?;
        let paths: Vec<PathBuf> = scan.images.into_iter().map(|(p, _)| p).collect();
        let g = ImageGeometry::new(crop, Some(resize))?;
        let mut rates = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let (pixels, kept, _) = decode_images(&paths, g.stored(), false, None, &mut Silent)?;
            let seconds = start.elapsed().as_secs_f64();
            assert_eq!(pixels.len(), kept.len() * g.stored().image_len());
            rates.push(kept.len() as f64 / seconds);
        }
        Ok(rates)
    })();
    match result {
        Ok(rates) => {
            let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
            println!(
                "{}",
                serde_json::json!({
                    "loader": "hashguard",
                    "threads": threads,
                    "resize": resize,
                    "crop": crop,
                    "stored_side": resize,
                    "images_per_second": rates,
                })
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
