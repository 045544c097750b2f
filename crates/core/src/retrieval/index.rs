//! [`HammingIndex`]: exact search over packed codes. Distances are at most K, so the k nearest
//! are kept in one bucket per distance (ties stay in database order) behind a threshold that only
//! falls; the scan goes block by block, many queries per block, over threads when it pays.

use super::codes::PackedCodes;
use super::scan::{BLOCK, CHUNK, block_distances};

/// A database item found by a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Position in the database.
    pub index: usize,
    /// Hamming distance to the query.
    pub distance: u32,
}

/// Exact Hamming search over a database of codes.
#[derive(Clone, Debug)]
pub struct HammingIndex {
    codes: PackedCodes,
}

/// Code comparisons below which a search stays on the calling thread (threads cost more).
const PARALLEL_WORK: usize = 1 << 21;

/// The `k` nearest items seen so far: one bucket of database positions per distance, and a
/// threshold above which nothing can enter any more (at least `k` items are strictly closer).
struct TopK {
    k: usize,
    threshold: u32,
    kept: usize,
    buckets: Vec<Vec<usize>>,
}

impl TopK {
    fn new(k: usize, bits: usize) -> Self {
        Self {
            k,
            threshold: bits as u32,
            kept: 0,
            buckets: vec![Vec::new(); bits + 1],
        }
    }

    /// Offers the items `base..base + distances.len()`, in database order; `mins` holds the
    /// minimum of each [`CHUNK`] of `distances`, so chunks above the threshold are skipped.
    #[inline]
    fn offer(&mut self, base: usize, distances: &[u32], mins: &[u32]) {
        for (c, &m) in mins.iter().enumerate() {
            if m > self.threshold {
                continue;
            }
            let lo = c * CHUNK;
            let chunk = &distances[lo..(lo + CHUNK).min(distances.len())];
            for (i, &d) in chunk.iter().enumerate() {
                if d <= self.threshold {
                    self.buckets[d as usize].push(base + lo + i);
                    self.kept += 1;
                    self.tighten();
                }
            }
        }
    }

    /// Drops the farthest bucket while the closer ones still hold `k` items.
    #[inline]
    fn tighten(&mut self) {
        while self.threshold > 0 {
            let far = self.buckets[self.threshold as usize].len();
            if self.kept - far < self.k {
                break;
            }
            self.kept -= far;
            self.buckets[self.threshold as usize].clear();
            self.threshold -= 1;
        }
    }

    /// Adds what `later` kept from a database range after this one's.
    fn merge(&mut self, later: TopK) {
        let top = self.threshold.min(later.threshold) as usize;
        for (d, bucket) in later.buckets.into_iter().enumerate().take(top + 1) {
            self.kept += bucket.len();
            self.buckets[d].extend(bucket);
        }
        for d in top + 1..=self.threshold as usize {
            self.kept -= self.buckets[d].len();
            self.buckets[d].clear();
        }
        self.threshold = top as u32;
        self.tighten();
    }

    fn finish(self) -> Vec<Neighbour> {
        let mut out = Vec::with_capacity(self.kept.min(self.k));
        for (d, bucket) in self.buckets.into_iter().enumerate() {
            let room = self.k - out.len();
            out.extend(bucket.into_iter().take(room).map(|index| Neighbour {
                index,
                distance: d as u32,
            }));
            if out.len() == self.k {
                break;
            }
        }
        out
    }
}

/// Threads a search may use: the machine's cores natively, one in the browser.
fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_arch = "wasm32")]
    1
}

impl HammingIndex {
    /// Indexes `codes`.
    pub fn new(codes: PackedCodes) -> Self {
        Self { codes }
    }

    /// The indexed codes.
    pub fn codes(&self) -> &PackedCodes {
        &self.codes
    }

    /// Number of database items.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the database is empty.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    fn check(&self, words: usize) {
        assert_eq!(
            words,
            self.codes.words(),
            "query codes have {words} words, the database {}",
            self.codes.words()
        );
    }

    /// Distance from `query` (packed, same length) to every database item, in database order.
    pub fn distances(&self, query: &[u64]) -> Vec<u32> {
        self.check(query.len());
        let mut out = vec![0; self.len()];
        block_distances(query, self.codes.as_words(), &mut out, &mut []);
        out
    }

    /// The whole database ordered by distance to `query`, ties in database order.
    pub fn rank(&self, query: &[u64]) -> Vec<Neighbour> {
        self.top_k(query, self.len())
    }

    /// The `k` nearest items (all of them if `k >= len`), ties in database order.
    pub fn top_k(&self, query: &[u64], k: usize) -> Vec<Neighbour> {
        let queries = PackedCodes::from_words(self.codes.bits(), query.to_vec());
        self.search(&queries, k)
            .pop()
            .expect("one result per query")
    }

    /// The `k` nearest items of every code in `queries` (same length as the database's), each
    /// list ordered by distance with ties in database order. Blocks of the database are scanned
    /// once for a whole group of queries; many queries are split over threads, and one or a few
    /// queries over a large database split the database instead.
    pub fn search(&self, queries: &PackedCodes, k: usize) -> Vec<Vec<Neighbour>> {
        self.check(queries.words());
        let (nq, n) = (queries.len(), self.len());
        let k = k.min(n);
        if k == 0 {
            return vec![Vec::new(); nq];
        }
        let threads = threads()
            .min(nq.saturating_mul(n).div_ceil(PARALLEL_WORK))
            .max(1);
        if threads == 1 {
            return self
                .scan(queries.as_words(), 0..n, k)
                .into_iter()
                .map(TopK::finish)
                .collect();
        }
        let w = queries.words();
        if nq >= threads {
            // Split the queries.
            let per = nq.div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = queries
                    .as_words()
                    .chunks(per * w)
                    .map(|group| s.spawn(move || self.scan(group, 0..n, k)))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("search thread"))
                    .map(TopK::finish)
                    .collect()
            })
        } else {
            // Split the database, then merge the ranges in order.
            let per = n.div_ceil(threads).next_multiple_of(BLOCK);
            let parts: Vec<Vec<TopK>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..n)
                    .step_by(per)
                    .map(|lo| {
                        let range = lo..(lo + per).min(n);
                        s.spawn(move || self.scan(queries.as_words(), range, k))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("search thread"))
                    .collect()
            });
            let mut parts = parts.into_iter();
            let mut first = parts.next().expect("at least one range");
            for later in parts {
                for (top, more) in first.iter_mut().zip(later) {
                    top.merge(more);
                }
            }
            first.into_iter().map(TopK::finish).collect()
        }
    }

    /// Scans database items `range` for every query in `queries` (packed back to back).
    fn scan(&self, queries: &[u64], range: std::ops::Range<usize>, k: usize) -> Vec<TopK> {
        let (w, bits) = (self.codes.words(), self.codes.bits());
        let mut tops: Vec<TopK> = (0..queries.len() / w).map(|_| TopK::new(k, bits)).collect();
        let mut distances = [0u32; BLOCK];
        let mut minima = [0u32; BLOCK / CHUNK];
        let data = self.codes.as_words();
        let mut lo = range.start;
        while lo < range.end {
            let hi = (lo + BLOCK).min(range.end);
            let block = &data[lo * w..hi * w];
            let out = &mut distances[..hi - lo];
            let mins = &mut minima[..(hi - lo).div_ceil(CHUNK)];
            for (query, top) in queries.chunks_exact(w).zip(&mut tops) {
                block_distances(query, block, out, mins);
                top.offer(lo, out, mins);
            }
            lo = hi;
        }
        tops
    }
}

#[cfg(test)]
mod tests {
    use super::super::codes::hamming;
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn ranking_equals_a_stable_sort() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let bits = 12; // few bits: many ties
        let values: Vec<f32> = (0..300 * bits)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let db = PackedCodes::from_signs(bits, &values);
        let index = HammingIndex::new(db.clone());
        let query = db.code(7).to_vec();
        let mut expected: Vec<(u32, usize)> = (0..db.len())
            .map(|i| (hamming(&query, db.code(i)), i))
            .collect();
        expected.sort_by_key(|&(d, _)| d); // stable
        let ranked = index.rank(&query);
        assert_eq!(ranked.len(), 300);
        for (n, (d, i)) in ranked.iter().zip(&expected) {
            assert_eq!((n.distance, n.index), (*d, *i));
        }
        let top = index.top_k(&query, 25);
        assert_eq!(top, ranked[..25]);
        assert_eq!(index.top_k(&query, 1000).len(), 300);
        assert_eq!(
            top[0],
            Neighbour {
                index: 7,
                distance: 0
            }
        );
    }

    fn naive(db: &PackedCodes, query: &[u64], k: usize) -> Vec<Neighbour> {
        let mut all: Vec<Neighbour> = (0..db.len())
            .map(|index| Neighbour {
                index,
                distance: hamming(query, db.code(index)),
            })
            .collect();
        all.sort_by_key(|n| n.distance); // stable: ties in database order
        all.truncate(k);
        all
    }

    #[test]
    fn batched_search_equals_a_stable_sort_on_every_path() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // 8 bits: heavy ties; 64: one word; 100: two words with a partial last word.
        for bits in [8usize, 64, 100] {
            let words = bits.div_ceil(64);
            // Large enough for the threaded paths (queries x items above PARALLEL_WORK) and for
            // ranges of several blocks with a ragged end.
            let n = 3 * BLOCK + 517;
            let db = PackedCodes::from_words(bits, (0..n * words).map(|_| rng.random()).collect());
            let index = HammingIndex::new(db.clone());
            for nq in [1usize, 3, 700] {
                let queries =
                    PackedCodes::from_words(bits, (0..nq * words).map(|_| rng.random()).collect());
                for k in [1usize, 10, 100, n, n + 5] {
                    let found = index.search(&queries, k);
                    assert_eq!(found.len(), nq);
                    for (q, hits) in found.iter().enumerate() {
                        assert_eq!(
                            hits,
                            &naive(&db, queries.code(q), k),
                            "bits {bits}, {nq} queries, k {k}, query {q}"
                        );
                    }
                }
            }
            assert!(index.search(&db.select(&[0]), 0)[0].is_empty());
        }
    }

    #[test]
    fn merging_ranges_keeps_database_order() {
        // Two halves scanned separately and merged equal one scan of the whole range.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 2 * BLOCK + 100;
        let db = PackedCodes::from_words(6, (0..n).map(|_| rng.random()).collect());
        let index = HammingIndex::new(db.clone());
        let q = db.select(&[17]);
        for k in [1usize, 50, 400, n] {
            let mut first = index.scan(q.as_words(), 0..BLOCK + 3, k).pop().unwrap();
            first.merge(index.scan(q.as_words(), BLOCK + 3..n, k).pop().unwrap());
            assert_eq!(first.finish(), naive(&db, q.code(0), k), "k {k}");
        }
    }
}
