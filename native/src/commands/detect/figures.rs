//! The figures of `detect` and `reproduce`: one ROC plot per attack (every detector) and
//! histograms of UMCD's C1, C2 (log10) and C3 for benign queries against each attack.

use std::path::Path;

use anyhow::Result;
use hashguard_core::detectors::Scores;
use hashguard_core::metrics::{RocPoint, roc_curve};

use super::{Bench, Crafted};
use crate::plot::{BinAxis, histogram, line_plot};

impl Bench<'_> {
    /// ROC curves per attack and C1/C2/C3 histograms (benign vs each attack).
    pub(super) fn plots(&self, crafted: &[Crafted], dir: &Path) -> Result<()> {
        const COLOURS: [[u8; 3]; 6] = [
            [120, 120, 120],
            [230, 140, 30],
            [150, 80, 190],
            [60, 160, 60],
            [40, 110, 220],
            [210, 30, 30],
        ];
        let u = self.detectors.len() - 1;
        for a in crafted {
            let curves: Vec<_> = self
                .calibrations
                .iter()
                .zip(&self.benign_test)
                .zip(&a.scores)
                .zip(COLOURS)
                .map(|(((cal, benign), adv), colour)| {
                    let roc: Vec<RocPoint> =
                        roc_curve(&cal.combined_score(benign), &cal.combined_score(adv));
                    (roc.iter().map(|p| (p.fpr, p.tpr)).collect(), colour)
                })
                .collect();
            let name = format!(
                "roc_{}.png",
                format!("{:?}_{:.0}", a.method, a.eps * 255.0).to_lowercase()
            );
            line_plot(&curves, true, &dir.join(name))?;
        }
        let umcd_adv: Vec<&Scores> = crafted.iter().map(|a| &a.scores[u]).collect();
        let series_colours = [[90, 90, 90], [210, 40, 40], [40, 110, 220], [60, 160, 60]];
        for (c, name) in ["c1", "c2", "c3"].iter().enumerate() {
            // C2 spans orders of magnitude on confident models: bin its log10.
            let view = |v: &[f32]| -> Vec<f32> {
                if c == 1 {
                    v.iter().map(|x| x.max(1e-30).log10()).collect()
                } else {
                    v.to_vec()
                }
            };
            let owned: Vec<Vec<f32>> = std::iter::once(view(&self.benign_test[u].values[c]))
                .chain(umcd_adv.iter().map(|s| view(&s.values[c])))
                .collect();
            let sets: Vec<&[f32]> = owned.iter().map(Vec::as_slice).collect();
            let lo = sets
                .iter()
                .flat_map(|s| s.iter())
                .copied()
                .fold(f32::MAX, f32::min);
            let hi = sets
                .iter()
                .flat_map(|s| s.iter())
                .copied()
                .fold(f32::MIN, f32::max);
            let bins = 40;
            let width = ((hi - lo) / bins as f32).max(1e-6);
            let series: Vec<(Vec<f64>, [u8; 3])> = sets
                .iter()
                .zip(series_colours)
                .map(|(s, col)| {
                    let mut h = vec![0u64; bins];
                    for &v in s.iter() {
                        h[(((v - lo) / width) as usize).min(bins - 1)] += 1;
                    }
                    (crate::plot::density(&h), col)
                })
                .collect();
            let axis = BinAxis {
                first: lo as f64,
                step: width as f64,
            };
            histogram(&series, None, axis, &dir.join(format!("hist_{name}.png")))?;
        }
        Ok(())
    }
}
