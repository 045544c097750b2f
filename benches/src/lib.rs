//! Fixtures shared by hashguard's criterion benchmarks and its peer scripts: the backends this
//! build can run, deterministic data that `benches/peers/peers.py` regenerates bit for bit
//! (SplitMix64), and the retrieval step that the detection overhead is measured against.

pub mod parity;

use burn::prelude::*;
use hashguard_core::attacks::Budget;
use hashguard_core::detectors::read;
use hashguard_core::model::{HashNet, HashNetConfig};
use hashguard_core::retrieval::{HammingIndex, Neighbour, PackedCodes};

/// Side and channels of the benchmarked images: Fashion-MNIST's 28x28 grey.
pub const IMAGE: [usize; 3] = [1, 28, 28];
/// Code length of every benchmark (the project's default model).
pub const BITS: usize = 64;
/// Images per train, attack and forward step.
pub const BATCH: usize = 64;

/// A backend to benchmark: its name (used in group names) and device.
#[derive(Clone)]
pub struct Backend {
    /// `flex` or `wgpu`.
    pub name: &'static str,
    /// Where its tensors live.
    pub device: Device,
    /// What it runs on, for the report.
    pub adapter: String,
}

impl Backend {
    /// Waits until every queued operation has run (a no-op on the eager CPU backend), so a
    /// clock read after it measures the work, not its submission.
    pub fn sync(&self) {
        self.device.sync().expect("device synchronisation");
    }
}

/// Backends this build can run.
const COMPILED: &[&str] = if cfg!(feature = "wgpu") {
    &["flex", "wgpu"]
} else {
    &["flex"]
};

/// Every backend compiled into this build, filtered by `HASHGUARD_BENCH_BACKENDS` (a comma list
/// such as `flex` or `flex,wgpu`; unset means all). Exits with a one-line message when the list
/// names a backend this build does not have.
pub fn backends() -> Vec<Backend> {
    let wanted = std::env::var("HASHGUARD_BENCH_BACKENDS").ok();
    if let Some(w) = &wanted
        && let Some(bad) = w.split(',').map(str::trim).find(|b| !COMPILED.contains(b))
    {
        eprintln!(
            "HASHGUARD_BENCH_BACKENDS names `{bad}`, but this build has only {}: fix the list",
            COMPILED.join(", ")
        );
        std::process::exit(2);
    }
    let keep = |name: &str| {
        wanted
            .as_deref()
            .is_none_or(|w| w.split(',').any(|x| x.trim() == name))
    };
    let mut out = Vec::new();
    if keep("flex") {
        let cpu = hashguard_core::device::cpu();
        out.push(Backend {
            name: "flex",
            device: cpu.device,
            adapter: cpu.info.adapter,
        });
    }
    #[cfg(feature = "wgpu")]
    if keep("wgpu") {
        let gpu = hashguard_core::device::wgpu();
        out.push(Backend {
            name: "wgpu",
            device: gpu.device,
            adapter: gpu.info.adapter,
        });
    }
    out
}

/// SplitMix64 (Steele, Lea and Flood): the `i`-th output of the stream seeded with `seed`.
pub fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` random 64-bit codes from `seed`, identical to `peers.py`'s `codes(seed, n)`.
pub fn random_codes(seed: u64, n: usize) -> PackedCodes {
    PackedCodes::from_words(64, (0..n as u64).map(|i| splitmix64(seed, i)).collect())
}

/// `n` random codes of `bits` bits (a multiple of 64) from `seed`: word `j` of code `i` is the
/// stream's output `i * words + j`, so 64-bit codes are exactly [`random_codes`]'s.
pub fn random_codes_of(seed: u64, n: usize, bits: usize) -> PackedCodes {
    assert!(
        bits > 0 && bits.is_multiple_of(64),
        "bits must be a multiple of 64"
    );
    let words = (n * bits / 64) as u64;
    PackedCodes::from_words(bits, (0..words).map(|i| splitmix64(seed, i)).collect())
}

/// Reads every word of `buffer` once, split over `threads` threads, and returns their
/// wrapping sum: the reference for how fast a scan could possibly stream the same bytes
/// (eight independent accumulators per thread, which the compiler vectorises).
pub fn read_bandwidth_sum(buffer: &[u64], threads: usize) -> u64 {
    fn sum(words: &[u64]) -> u64 {
        let mut lanes = [0u64; 8];
        let chunks = words.chunks_exact(8);
        let rest: u64 = chunks.remainder().iter().fold(0, |a, &w| a.wrapping_add(w));
        for chunk in chunks {
            for (lane, &w) in lanes.iter_mut().zip(chunk) {
                *lane = lane.wrapping_add(w);
            }
        }
        lanes.iter().fold(rest, |a, &w| a.wrapping_add(w))
    }
    let threads = threads.clamp(1, buffer.len().max(1));
    if threads == 1 {
        return sum(buffer);
    }
    let per = buffer.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = buffer
            .chunks(per)
            .map(|part| s.spawn(move || sum(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("read thread"))
            .fold(0, u64::wrapping_add)
    })
}

/// `n` images of [`IMAGE`] with pixels in `[0, 1)` from `seed` (the top 24 bits of each
/// SplitMix64 output / 2^24), identical to `peers.py`'s `images(seed, n)`.
pub fn random_pixels(seed: u64, n: usize) -> Vec<f32> {
    let len = n * IMAGE.iter().product::<usize>();
    (0..len as u64)
        .map(|i| (splitmix64(seed, i) >> 40) as f32 / (1u32 << 24) as f32)
        .collect()
}

/// [`random_pixels`] as a `[n, 1, 28, 28]` tensor on `device`.
pub fn random_images(seed: u64, n: usize, device: &Device) -> Tensor<4> {
    let [c, h, w] = IMAGE;
    Tensor::from_data(
        TensorData::new(random_pixels(seed, n), [n, c, h, w]),
        device,
    )
}

/// The project's default hashing network (64 bits, grey input), freshly initialised.
pub fn default_model(device: &Device) -> HashNet {
    device.seed(0);
    HashNetConfig::new(BITS, IMAGE[0]).init(device)
}

/// One forward pass over `pixels` (images of [`IMAGE`] back to back), logits read back.
pub fn encode(model: &HashNet, pixels: &[f32], device: &Device) -> Vec<f32> {
    let [c, h, w] = IMAGE;
    let n = pixels.len() / (c * h * w);
    let x = Tensor::<4>::from_data(TensorData::new(pixels.to_vec(), [n, c, h, w]), device);
    read(model.logits(x)).expect("finite logits")
}

/// Retrieval alone, the baseline of the paper's Fig. 6: encode a batch (one forward pass),
/// pack the signs and search the database for each query's `k` nearest codes.
pub fn retrieve(
    model: &HashNet,
    index: &HammingIndex,
    pixels: &[f32],
    k: usize,
    device: &Device,
) -> Vec<Vec<Neighbour>> {
    let z = encode(model, pixels, device);
    index.search(&PackedCodes::from_signs(model.bits(), &z), k)
}

/// The budget of one timed PGD step (eps 8/255, step 1/255, no random start): the stepper
/// never runs out of steps, so a benchmark calls `step` as often as it likes.
pub fn pgd_step_budget() -> Budget {
    Budget {
        eps: 8.0 / 255.0,
        step: 1.0 / 255.0,
        steps: usize::MAX,
        random_start: false,
        relax: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_its_published_first_outputs() {
        // The reference stream for seed 0 (Vigna's splitmix64.c) starts with these values.
        assert_eq!(splitmix64(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0, 1), 0x6E78_9E6A_A1B9_65F4);
        let px = random_pixels(1, 2);
        assert_eq!(px.len(), 2 * 784);
        assert!(px.iter().all(|&p| (0.0..1.0).contains(&p)));
    }

    #[test]
    fn wide_codes_extend_the_64_bit_stream_and_the_read_sum_counts_every_word() {
        let narrow = random_codes(4, 50);
        assert_eq!(random_codes_of(4, 50, 64).as_words(), narrow.as_words());
        let wide = random_codes_of(4, 25, 128);
        assert_eq!((wide.len(), wide.bits()), (25, 128));
        assert_eq!(wide.as_words(), narrow.as_words());
        // 1 + 2 + … + n over an odd length (a remainder after the 8-word chunks), any split.
        let words: Vec<u64> = (1..=1001).collect();
        for threads in [1, 2, 3, 7] {
            assert_eq!(read_bandwidth_sum(&words, threads), 1001 * 1002 / 2);
        }
        // More threads than words, and nothing to read.
        assert_eq!(read_bandwidth_sum(&[5, 6], 9), 11);
        assert_eq!(read_bandwidth_sum(&[], 2), 0);
    }

    #[test]
    fn the_search_data_are_the_ones_faiss_searched() {
        // Query 0's ten nearest distances over the 1M-code database, as FAISS IndexBinaryFlat
        // returned them in `peers.py` (`query0_top100_distances`).
        let index = HammingIndex::new(random_codes(1, 1_000_000));
        let found = index.search(&random_codes(2, 1), 10);
        let d: Vec<u32> = found[0].iter().map(|n| n.distance).collect();
        assert_eq!(d, [13, 13, 14, 14, 14, 15, 15, 15, 15, 15]);
    }

    #[test]
    fn retrieval_baseline_finds_a_database_image_first() {
        let device = Device::flex();
        let model = default_model(&device).valid();
        let pixels = random_pixels(3, 4);
        let x = random_images(3, 4, &device);
        let z = read(model.logits(x)).unwrap();
        let index = HammingIndex::new(PackedCodes::from_signs(BITS, &z));
        let found = retrieve(&model, &index, &pixels[..784], 1, &device);
        assert_eq!(found[0][0].distance, 0);
    }
}
