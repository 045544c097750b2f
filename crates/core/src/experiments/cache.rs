//! A cache of crafted adversarial examples for the detection experiments: each attack's images,
//! success flags and mAPs are kept in a directory under a key of everything that made them
//! (model weights, queries, attack settings), so re-running detection skips the attacks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::run::{fingerprint, write_atomic};
use crate::{Error, Result};

/// What one cached attack produced (pixels are stored beside it as little-endian `f32`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedAttack {
    /// Everything that made the examples; a cache entry is used only when it matches exactly.
    pub key: Value,
    /// Per query: whether the attack succeeded.
    pub success: Vec<bool>,
    /// mAP (t-mAP for DHTA) of the clean codes.
    pub clean_map: f64,
    /// The same for the adversarial codes.
    pub adv_map: f64,
    /// Mean Hamming distance of the adversarial codes to the clean ones.
    pub mean_hamming_to_original: f64,
}

fn paths(dir: &Path, key: &Value) -> (PathBuf, PathBuf) {
    let method = key["method"].as_str().unwrap_or("attack");
    let stem = format!("{method}-{}", fingerprint(key.to_string().into_bytes()));
    (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.f32")),
    )
}

/// The cached examples made under `key`, if `dir` holds them whole (`pixels` values expected).
/// A missing, stale or damaged entry is `None`: the caller crafts the attack again.
pub fn load(dir: &Path, key: &Value, pixels: usize) -> Option<(CachedAttack, Vec<f32>)> {
    let (meta, data) = paths(dir, key);
    let cached: CachedAttack = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
    let bytes = std::fs::read(data).ok()?;
    if cached.key != *key || bytes.len() != 4 * pixels {
        return None;
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    values
        .iter()
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v))
        .then_some((cached, values))
}

/// Stores `attack` and its `pixels` in `dir` (pixels first, so a crash leaves no entry whose
/// metadata points at missing data).
pub fn store(dir: &Path, attack: &CachedAttack, pixels: &[f32]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (meta, data) = paths(dir, &attack.key);
    let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_atomic(&data, &bytes)?;
    let json = serde_json::to_vec(attack).map_err(|e| Error::format(&meta, e.to_string()))?;
    write_atomic(&meta, &json)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let key = json!({"method": "pgd", "eps": 0.03, "model": "ab"});
        let attack = CachedAttack {
            key: key.clone(),
            success: vec![true, false],
            clean_map: 0.8,
            adv_map: 0.3,
            mean_hamming_to_original: 12.5,
        };
        let pixels = [0.0f32, 0.25, 0.5, 1.0];
        store(dir.path(), &attack, &pixels).unwrap();
        let (got, px) = load(dir.path(), &key, 4).unwrap();
        assert_eq!(px, pixels);
        assert_eq!(got.success, attack.success);
        assert_eq!(got.adv_map, 0.3);
        // Another key, another length, or damaged data: not reused.
        assert!(load(dir.path(), &json!({"method": "pgd", "eps": 0.06}), 4).is_none());
        assert!(load(dir.path(), &key, 8).is_none());
        let (_, data) = paths(dir.path(), &key);
        std::fs::write(&data, [0u8; 15]).unwrap();
        assert!(load(dir.path(), &key, 4).is_none());
        std::fs::write(&data, f32::NAN.to_le_bytes().repeat(4)).unwrap();
        assert!(load(dir.path(), &key, 4).is_none());
    }
}
