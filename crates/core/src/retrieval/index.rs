//! [`HammingIndex`]: exact search over packed codes. Distances are at most K, so a full ranking
//! is a counting sort by distance, O(n + K) and stable: equal distances keep database order.

use super::codes::{PackedCodes, hamming};

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

    /// Distance from `query` (packed, same length) to every database item, in database order.
    pub fn distances(&self, query: &[u64]) -> Vec<u32> {
        assert_eq!(
            query.len(),
            self.codes.words(),
            "query code length mismatch"
        );
        (0..self.codes.len())
            .map(|i| hamming(query, self.codes.code(i)))
            .collect()
    }

    /// The whole database ordered by distance to `query`, ties in database order.
    pub fn rank(&self, query: &[u64]) -> Vec<Neighbour> {
        self.top_k(query, self.len())
    }

    /// The `k` nearest items (all of them if `k >= len`), ties in database order.
    pub fn top_k(&self, query: &[u64], k: usize) -> Vec<Neighbour> {
        let distances = self.distances(query);
        let bits = self.codes.bits();
        let mut counts = vec![0usize; bits + 2];
        for &d in &distances {
            counts[d as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        // Only distances that can reach the top k need placing.
        let k = k.min(distances.len());
        let cutoff = (0..=bits).find(|&d| counts[d + 1] >= k).unwrap_or(bits) as u32;
        let mut out = vec![
            Neighbour {
                index: 0,
                distance: 0
            };
            counts[cutoff as usize + 1]
        ];
        for (index, &distance) in distances.iter().enumerate() {
            if distance <= cutoff {
                let slot = &mut counts[distance as usize];
                out[*slot] = Neighbour { index, distance };
                *slot += 1;
            }
        }
        out.truncate(k);
        out
    }
}

#[cfg(test)]
mod tests {
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
}
