//! The browser demo's bundle: a database sample of real images with their codes, a gallery of
//! query images, UMCD's parameters, benign calibration scores and attacked queries' scores (for
//! the page's ROC). `hashguard export-web` writes it, the web app loads it; reading checks every
//! length so a bad file is an error, not garbage.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::data::{ImageSet, LabelSet};
use crate::detectors::{Scores, UmcdConfig, calibrate, umcd_criteria};
use crate::experiments::{AttackKind, AttackSpec};
use crate::retrieval::PackedCodes;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"HGDEMO01";
/// Most bytes a bundle may decompress to (the shipped one: 1.6 MB); past it the stream is not
/// followed further.
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;

/// Everything about the bundle except the pixels and codes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoHeader {
    /// The run the model and codes come from (provenance).
    pub run: String,
    /// Code length.
    pub bits: usize,
    /// UMCD's k and blur.
    pub umcd: UmcdConfig,
    /// Benign UMCD scores of the database images, each leaving itself out of C1: one column
    /// per criterion (C1, C2, C3), for calibrating thresholds at any FPR.
    pub benign: Vec<Vec<f32>>,
    /// `[channels, height, width]` of every image.
    pub shape: [usize; 3],
    /// Class names.
    pub class_names: Vec<String>,
    /// Labels of the database images.
    pub database_labels: Vec<LabelSet>,
    /// Labels of the gallery images.
    pub gallery_labels: Vec<LabelSet>,
    /// UMCD's scores on attacked query images, one entry per attack (bundles written before
    /// these existed read as none).
    #[serde(default)]
    pub attacked: Vec<AttackedScores>,
}

/// UMCD's criteria on query images attacked as the page attacks (see [`demo_spec`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackedScores {
    /// The attack as the page names it, e.g. "PGD-100, ε = 8/255".
    pub name: String,
    /// Share of the queries the attack succeeded on (its own criterion).
    pub success_rate: f64,
    /// One column per criterion (C1, C2, C3), one value per attacked query; C1 against the
    /// shipped database.
    pub values: Vec<Vec<f32>>,
}

/// One point of the page's ROC: the union detector calibrated at some FPR budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnionRocPoint {
    /// The budget asked for.
    pub budget: f64,
    /// Share of the shipped benign images flagged.
    pub fpr: f64,
    /// Share of the attacked queries flagged.
    pub tpr: f64,
}

/// The demo's attack: `kind` at radius `eps` for `steps` iterations, towards `target` when
/// targeted. DHTA ramps α (its schedule); the step follows Madry et al.'s rule of thumb,
/// 2.5·eps/steps, at least one grey level; CW uses the logit margin with c = 1000 (the relaxed
/// tanh form stalls on confident models, docs/results.md). `export-web` attacks its ROC queries
/// with the same spec.
pub fn demo_spec(kind: AttackKind, eps: f32, steps: usize, target: usize) -> AttackSpec {
    let mut spec = AttackSpec::new(kind).with_eps(eps).with_steps(steps);
    let floor = 1.0 / 255.0;
    spec.step = (2.5 * eps / steps.max(1) as f32).clamp(floor, eps.max(floor));
    spec.alpha_schedule = kind == AttackKind::Dhta;
    spec.target.label = Some(target);
    spec
}

impl DemoHeader {
    /// UMCD's ROC against attack `attack` of [`DemoHeader::attacked`]: at each FPR budget of
    /// `budgets` the thresholds are calibrated on the benign scores exactly as the page
    /// calibrates them, and the union of the three criteria is applied to both sets.
    pub fn union_roc(&self, attack: usize, budgets: &[f64]) -> Result<Vec<UnionRocPoint>> {
        let scores = |values: &Vec<Vec<f32>>| Scores {
            criteria: umcd_criteria(),
            values: values.clone(),
        };
        let adversarial = self
            .attacked
            .get(attack)
            .ok_or_else(|| Error::InvalidArgument(format!("no attack #{attack} in the bundle")))?;
        let (benign, adversarial) = (scores(&self.benign), scores(&adversarial.values));
        let flagged = |c: &crate::detectors::Calibration, s: &Scores| {
            let d = c.decide(s);
            d.iter().filter(|d| d.adversarial).count() as f64 / d.len().max(1) as f64
        };
        budgets
            .iter()
            .map(|&budget| {
                let c = calibrate(&benign, budget, None)?;
                Ok(UnionRocPoint {
                    budget,
                    fpr: flagged(&c, &benign),
                    tpr: flagged(&c, &adversarial),
                })
            })
            .collect()
    }
}

/// A decoded bundle.
#[derive(Clone, Debug)]
pub struct DemoBundle {
    /// Parameters and calibration scores.
    pub header: DemoHeader,
    /// The retrieval database.
    pub database: ImageSet,
    /// Query images offered in the gallery.
    pub gallery: ImageSet,
    /// Codes of the database images, in order.
    pub codes: PackedCodes,
}

impl DemoBundle {
    /// Serialises (gzip of a magic tag, the JSON header, the pixels and the codes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_vec(&self.header)
            .map_err(|e| Error::Numeric(format!("serialising the demo header: {e}")))?;
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let codes = self.codes.to_bytes();
        let mut write = |b: &[u8]| {
            enc.write_all(b)
                .map_err(|e| Error::Numeric(format!("compressing the demo bundle: {e}")))
        };
        write(MAGIC)?;
        let (db, gallery) = (&self.database.pixels, &self.gallery.pixels);
        let (db, gallery) = (db.range(0, db.len()), gallery.range(0, gallery.len()));
        for part in [&header[..], &db[..], &gallery[..], &codes[..]] {
            write(&(part.len() as u64).to_le_bytes())?;
            write(part)?;
        }
        enc.finish()
            .map_err(|e| Error::Numeric(format!("compressing the demo bundle: {e}")))
    }

    /// Reads a bundle written by [`DemoBundle::to_bytes`], checking its parts agree.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |m: String| {
            Error::record(
                "demo bundle",
                format!("{m}; regenerate it with `hashguard export-web`"),
            )
        };
        let mut raw = Vec::new();
        GzDecoder::new(bytes)
            .take(MAX_BUNDLE_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(|e| bad(format!("not a gzip stream ({e})")))?;
        if raw.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(bad(format!(
                "decompresses to more than {} MiB",
                MAX_BUNDLE_BYTES >> 20
            )));
        }
        if raw.len() < 8 || &raw[..8] != MAGIC {
            return Err(bad("bad magic".into()));
        }
        let mut parts = Vec::new();
        let mut at = 8;
        for _ in 0..4 {
            let len = raw
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
                .ok_or_else(|| bad("truncated".into()))?;
            let part = (at + 8)
                .checked_add(len)
                .and_then(|end| raw.get(at + 8..end))
                .ok_or_else(|| bad("truncated".into()))?;
            parts.push(part);
            at += 8 + len;
        }
        if at != raw.len() {
            return Err(bad("trailing bytes".into()));
        }
        let header: DemoHeader =
            serde_json::from_slice(parts[0]).map_err(|e| bad(format!("bad header ({e})")))?;
        let set = |pixels: &[u8], labels: &[LabelSet], what: &str| {
            ImageSet::new(
                what,
                "demo bundle",
                header.shape,
                pixels.to_vec(),
                labels.to_vec(),
                header.class_names.clone(),
            )
            .map_err(|e| bad(e.to_string()))
        };
        let database = set(parts[1], &header.database_labels, "database")?;
        let gallery = set(parts[2], &header.gallery_labels, "gallery")?;
        let codes = PackedCodes::from_bytes(parts[3], std::path::Path::new("demo bundle"))?;
        if codes.len() != database.len() || codes.bits() != header.bits {
            return Err(bad(format!(
                "{} codes of {} bits for {} database images of a {}-bit model",
                codes.len(),
                codes.bits(),
                database.len(),
                header.bits
            )));
        }
        if header.benign.len() != 3 || header.benign.iter().any(|c| c.len() != database.len()) {
            return Err(bad("calibration scores do not cover the database".into()));
        }
        let finite = |columns: &[Vec<f32>]| columns.iter().flatten().all(|v| v.is_finite());
        if !finite(&header.benign) {
            return Err(bad("non-finite calibration scores".into()));
        }
        for a in &header.attacked {
            let n = a.values.first().map_or(0, Vec::len);
            if a.values.len() != 3 || n == 0 || a.values.iter().any(|c| c.len() != n) {
                return Err(bad(format!("the scores of attack {:?} are ragged", a.name)));
            }
            if !finite(&a.values) || !(0.0..=1.0).contains(&a.success_rate) {
                return Err(bad(format!(
                    "the scores of attack {:?} are not finite",
                    a.name
                )));
            }
        }
        if header.umcd.k == 0 || header.umcd.k >= database.len() || header.umcd.blur == 0 {
            return Err(bad(format!("UMCD parameters {:?} do not fit", header.umcd)));
        }
        Ok(Self {
            header,
            database,
            gallery,
            codes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> DemoBundle {
        let names: Vec<String> = vec!["a".into(), "b".into()];
        let labels: Vec<LabelSet> = (0..6).map(|i| LabelSet::single(i % 2)).collect();
        let database = ImageSet::new(
            "d",
            "t",
            [1, 2, 2],
            (0..24).collect(),
            labels.clone(),
            names.clone(),
        )
        .unwrap();
        let gallery = ImageSet::new(
            "g",
            "t",
            [1, 2, 2],
            vec![9; 8],
            labels[..2].to_vec(),
            names.clone(),
        )
        .unwrap();
        let signs: Vec<f32> = (0..6 * 8)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        DemoBundle {
            header: DemoHeader {
                run: "runs/x".into(),
                bits: 8,
                umcd: UmcdConfig { k: 2, blur: 2 },
                benign: vec![vec![0.5; 6]; 3],
                shape: [1, 2, 2],
                class_names: names,
                database_labels: labels.clone(),
                gallery_labels: labels[..2].to_vec(),
                attacked: vec![AttackedScores {
                    name: "PGD-100, ε = 8/255".into(),
                    success_rate: 0.75,
                    values: vec![vec![3.0, 0.5, 9.0, 0.0]; 3],
                }],
            },
            database,
            gallery,
            codes: PackedCodes::from_signs(8, &signs),
        }
    }

    #[test]
    fn round_trip_keeps_every_part() {
        let b = bundle();
        let back = DemoBundle::from_bytes(&b.to_bytes().unwrap()).unwrap();
        assert_eq!(back.header, b.header);
        assert_eq!(back.database.fingerprint(), b.database.fingerprint());
        assert_eq!(back.gallery.fingerprint(), b.gallery.fingerprint());
        let all = |s: &ImageSet| s.pixels.range(0, s.pixels.len()).into_owned();
        assert_eq!(all(&back.database), all(&b.database));
        assert_eq!(all(&back.gallery), all(&b.gallery));
        assert_eq!(back.codes, b.codes);
    }

    #[test]
    fn damaged_bundles_are_errors() {
        let bytes = bundle().to_bytes().unwrap();
        assert!(DemoBundle::from_bytes(&bytes[..bytes.len() / 2]).is_err());
        assert!(DemoBundle::from_bytes(b"not gzip").is_err());
        let mut wrong = bundle();
        wrong.header.benign[1].pop();
        assert!(DemoBundle::from_bytes(&wrong.to_bytes().unwrap()).is_err());
        let mut wrong = bundle();
        wrong.header.attacked[0].values[2].pop();
        let e = DemoBundle::from_bytes(&wrong.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("ragged"), "{e}");
        let mut wrong = bundle();
        wrong.header.benign[0][3] = f32::NAN;
        assert!(DemoBundle::from_bytes(&wrong.to_bytes().unwrap()).is_err());
        // Found by the `demo_bundle` fuzz target: a part length near u64::MAX overflowed the
        // end offset (a panic in debug builds).
        let mut raw = MAGIC.to_vec();
        raw.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let e = DemoBundle::from_bytes(&gz.finish().unwrap()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut wrong = bundle();
        wrong.header.bits = 16;
        let e = DemoBundle::from_bytes(&wrong.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("export-web"), "{e}");
    }

    /// A bundle written before attacked scores existed still reads, with none.
    #[test]
    fn headers_without_attacked_scores_read_as_none() {
        let mut json = serde_json::to_value(&bundle().header).unwrap();
        json.as_object_mut().unwrap().remove("attacked");
        let header: DemoHeader = serde_json::from_value(json).unwrap();
        assert!(header.attacked.is_empty());
    }

    /// The ROC's points: a budget of ~0 flags nothing benign, FPR and TPR never fall as the
    /// budget grows, and TPR counts the attacked values above the calibrated thresholds.
    #[test]
    fn the_union_roc_follows_the_calibration() {
        let mut header = bundle().header;
        // C1 and C3 flag high values, C2 low ones; 100 benign values per criterion.
        let ramp = |from: f32| (0..100).map(|i| from + i as f32).collect::<Vec<f32>>();
        header.benign = vec![ramp(0.0), ramp(1000.0), ramp(0.0)];
        // Only C1 can flag the attacked values, and only the two at 99.5.
        header.attacked[0].values = vec![vec![99.5, 50.0, 99.5, 10.0], vec![5e3; 4], vec![0.0; 4]];
        let roc = header.union_roc(0, &[0.001, 0.02, 0.05, 0.2]).unwrap();
        assert_eq!(roc.len(), 4);
        for w in roc.windows(2) {
            assert!(w[1].fpr >= w[0].fpr && w[1].tpr >= w[0].tpr, "{roc:?}");
        }
        assert!(roc[2].fpr <= 0.06, "{roc:?}");
        // Each criterion flags about 5/3 % of benign: C1's threshold lies in (97, 99.5].
        assert_eq!(roc[2].tpr, 0.5, "{roc:?}");
        assert!(header.union_roc(1, &[0.05]).is_err());
    }
}
