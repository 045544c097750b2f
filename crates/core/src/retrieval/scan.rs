//! The Hamming scan's inner kernel: distances from one query to a block of packed codes. On
//! x86-64 it is compiled three more times with the CPU's popcount instructions (AVX-512
//! VPOPCNTDQ, AVX2 + POPCNT, POPCNT) and picked once at run time; elsewhere (wasm) it is portable.

use super::codes::hamming;

/// Codes per block of a scan: 1,024 64-bit codes (8 KiB) and their distances (4 KiB) stay in L1
/// while every query of a group passes over them.
pub(crate) const BLOCK: usize = 1024;

/// Distances per chunk minimum: a top-k scan skips a whole chunk whose minimum is above its
/// threshold (most of them, once the threshold has settled).
pub(crate) const CHUNK: usize = 16;
const _: () = assert!(BLOCK.is_multiple_of(CHUNK), "blocks hold whole chunks");

/// Distances from `query` (`w` words) to each code of `codes` (`out.len()` codes of `w` words),
/// and the minimum of each [`CHUNK`] of them into `mins` (left alone when `mins` is empty).
#[inline(always)]
fn kernel(query: &[u64], codes: &[u64], out: &mut [u32], mins: &mut [u32]) {
    match query.len() {
        // One word per code (K ≤ 64): a straight loop the compiler vectorises.
        1 => fixed::<1>(query, codes, out, mins),
        // The usual longer codes (K ≤ 128, K ≤ 256) with the width known at compile time, so
        // the loop vectorises too (a run-time width left the 128-bit scan 8x slower than the
        // 64-bit one for twice the bytes).
        2 => fixed::<2>(query, codes, out, mins),
        4 => fixed::<4>(query, codes, out, mins),
        w => {
            for (o, c) in out.iter_mut().zip(codes.chunks_exact(w)) {
                *o = hamming(query, c);
            }
            for (m, chunk) in mins.iter_mut().zip(out.chunks(CHUNK)) {
                *m = chunk.iter().copied().min().unwrap_or(u32::MAX);
            }
        }
    }
}

/// Distances from `query` (`W` words) to each code of `codes`, `W` words each, and each
/// [`CHUNK`]'s minimum into `mins` in the same pass (the distances are not re-read from memory).
#[inline(always)]
fn fixed<const W: usize>(query: &[u64], codes: &[u64], out: &mut [u32], mins: &mut [u32]) {
    let q: [u64; W] = query.try_into().expect("a query of W words");
    let distance = |c: &[u64]| {
        let mut d = 0;
        for j in 0..W {
            d += (q[j] ^ c[j]).count_ones();
        }
        d
    };
    if mins.is_empty() {
        for (o, c) in out.iter_mut().zip(codes.chunks_exact(W)) {
            *o = distance(c);
        }
        return;
    }
    let whole = out.len() / CHUNK;
    let mut outs = out.chunks_exact_mut(CHUNK);
    let mut groups = codes.chunks_exact(CHUNK * W);
    for ((o, g), m) in (&mut outs).zip(&mut groups).zip(mins.iter_mut()) {
        let mut least = u32::MAX;
        for (o, c) in o.iter_mut().zip(g.chunks_exact(W)) {
            let d = distance(c);
            *o = d;
            least = least.min(d);
        }
        *m = least;
    }
    let (o, g) = (outs.into_remainder(), groups.remainder());
    if !o.is_empty() {
        let mut least = u32::MAX;
        for (o, c) in o.iter_mut().zip(g.chunks_exact(W)) {
            *o = distance(c);
            least = least.min(*o);
        }
        mins[whole] = least;
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    //! The kernel compiled for three x86-64 feature levels.
    use std::sync::OnceLock;

    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn avx512(query: &[u64], codes: &[u64], out: &mut [u32], mins: &mut [u32]) {
        super::kernel(query, codes, out, mins)
    }

    #[target_feature(enable = "avx2,popcnt")]
    fn avx2(query: &[u64], codes: &[u64], out: &mut [u32], mins: &mut [u32]) {
        super::kernel(query, codes, out, mins)
    }

    #[target_feature(enable = "popcnt")]
    fn popcnt(query: &[u64], codes: &[u64], out: &mut [u32], mins: &mut [u32]) {
        super::kernel(query, codes, out, mins)
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Level {
        Avx512,
        Avx2,
        Popcnt,
        Portable,
    }

    /// The best level this CPU supports, detected once.
    pub(super) fn level() -> Level {
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vpopcntdq") {
                Level::Avx512
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("popcnt") {
                Level::Avx2
            } else if is_x86_feature_detected!("popcnt") {
                Level::Popcnt
            } else {
                Level::Portable
            }
        })
    }

    /// Runs the kernel at `level`, which must not exceed [`level()`].
    pub(super) fn run(
        level: Level,
        query: &[u64],
        codes: &[u64],
        out: &mut [u32],
        mins: &mut [u32],
    ) {
        assert!(
            level_rank(level) <= level_rank(self::level()),
            "{level:?} is beyond this CPU"
        );
        // SAFETY: the CPU has every feature the chosen function was compiled for: `level()`
        // detected them at run time and the assertion above keeps `level` at or below it.
        match level {
            Level::Avx512 => unsafe { avx512(query, codes, out, mins) },
            Level::Avx2 => unsafe { avx2(query, codes, out, mins) },
            Level::Popcnt => unsafe { popcnt(query, codes, out, mins) },
            Level::Portable => super::kernel(query, codes, out, mins),
        }
    }

    fn level_rank(level: Level) -> u8 {
        match level {
            Level::Portable => 0,
            Level::Popcnt => 1,
            Level::Avx2 => 2,
            Level::Avx512 => 3,
        }
    }

    /// Every level this CPU can run, best first.
    #[cfg(test)]
    pub(super) fn available() -> Vec<Level> {
        [Level::Avx512, Level::Avx2, Level::Popcnt, Level::Portable]
            .into_iter()
            .filter(|&l| level_rank(l) <= level_rank(level()))
            .collect()
    }
}

/// Writes the Hamming distance from `query` to each of the `out.len()` codes in `codes` (packed
/// back to back, `query.len()` words each) into `out`, and each [`CHUNK`]'s minimum into `mins`
/// (`out.len().div_ceil(CHUNK)` slots, or none), with the fastest kernel this CPU has.
pub(crate) fn block_distances(query: &[u64], codes: &[u64], out: &mut [u32], mins: &mut [u32]) {
    debug_assert_eq!(codes.len(), out.len() * query.len());
    debug_assert!(mins.is_empty() || mins.len() == out.len().div_ceil(CHUNK));
    #[cfg(target_arch = "x86_64")]
    x86::run(x86::level(), query, codes, out, mins);
    #[cfg(not(target_arch = "x86_64"))]
    kernel(query, codes, out, mins);
}

/// Name of the kernel [`block_distances`] uses on this machine, for benchmark reports.
pub fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    return match x86::level() {
        x86::Level::Avx512 => "avx512-vpopcntdq",
        x86::Level::Avx2 => "avx2-popcnt",
        x86::Level::Popcnt => "popcnt",
        x86::Level::Portable => "portable",
    };
    #[cfg(not(target_arch = "x86_64"))]
    "portable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn every_kernel_equals_the_naive_distance() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for words in [1usize, 2, 3, 4, 5] {
            let n = 1000;
            let codes: Vec<u64> = (0..n * words).map(|_| rng.random()).collect();
            let query: Vec<u64> = (0..words).map(|_| rng.random()).collect();
            let naive: Vec<u32> = codes
                .chunks_exact(words)
                .map(|c| {
                    c.iter()
                        .zip(&query)
                        .map(|(a, b)| (a ^ b).count_ones())
                        .sum()
                })
                .collect();
            let naive_mins: Vec<u32> = naive
                .chunks(CHUNK)
                .map(|c| *c.iter().min().unwrap())
                .collect();
            let mut out = vec![u32::MAX; n];
            let mut mins = vec![0; n.div_ceil(CHUNK)];
            block_distances(&query, &codes, &mut out, &mut mins);
            assert_eq!(out, naive, "dispatched kernel, {words} words");
            assert_eq!(mins, naive_mins, "dispatched kernel, {words} words");
            #[cfg(target_arch = "x86_64")]
            for level in x86::available() {
                out.fill(u32::MAX);
                mins.fill(0);
                x86::run(level, &query, &codes, &mut out, &mut mins);
                assert_eq!(out, naive, "{level:?}, {words} words");
                assert_eq!(mins, naive_mins, "{level:?}, {words} words");
            }
        }
        assert!(!kernel_name().is_empty());
    }
}
