//! The detection protocols beside UMCD's own Table 1: supervised LID (Ma et al.'s regression,
//! fitted per attack on its adversarial examples) and the paper's reading of Table 2 (each
//! criterion alone at the full FPR, their union's real FPR stated).

use super::{Crafted, DetectionBench, Table1Row, Table2Row, TableRate};
use crate::detectors::{Calibration, Lid, Scores, calibrate, cross_validate};
use crate::metrics::{auc, tpr_at_fpr};
use crate::{Error, Result};

/// Folds of supervised LID's cross-validation.
pub(super) const SUPERVISED_FOLDS: usize = 5;

/// Supervised LID's name in the tables.
pub const SUPERVISED_LID: &str = "LID (supervised)";

/// What supervised LID needs besides each attack's examples.
pub struct SupervisedLid {
    /// The fitted LID (its reference batch and per-layer normalisation).
    pub lid: Lid,
    /// Per-layer LIDs of the benign calibration images.
    pub calibration: Vec<Vec<f32>>,
    /// Per-layer LIDs of the clean test queries, in query order.
    pub benign: Vec<Vec<f32>>,
}

impl DetectionBench<'_> {
    /// Supervised LID (Ma et al.) against one attack: a logistic regression on the per-layer
    /// LIDs of clean queries and their adversarial examples (`adv`), 5-fold cross-validated over the
    /// queries, each fold's threshold at the target FPR on the benign calibration images.
    pub(super) fn supervised_row(
        &self,
        sup: &SupervisedLid,
        crafted: &Crafted,
        adv: &[Vec<f32>],
    ) -> Result<Table1Row> {
        let cv = cross_validate(
            &sup.benign,
            adv,
            &sup.calibration,
            SUPERVISED_FOLDS,
            self.config.fpr,
        )?;
        // Share of flagged samples; NaN when there are none.
        let rate = |f: &[bool]| f.iter().filter(|&&v| v).count() as f64 / f.len() as f64;
        let successful: Vec<bool> = cv
            .adversarial_flagged
            .iter()
            .zip(&crafted.success)
            .filter_map(|(&f, &s)| s.then_some(f))
            .collect();
        Ok(Table1Row {
            detector: SUPERVISED_LID.into(),
            attack: crafted.label.clone(),
            miss_rate: 1.0 - rate(&cv.adversarial_flagged),
            miss_rate_successful: 1.0 - rate(&successful),
            auc: auc(&cv.benign, &cv.adversarial),
            tpr_at_fpr_0_1: tpr_at_fpr(&cv.benign, &cv.adversarial, 0.1),
            tpr_at_fpr_0_2: tpr_at_fpr(&cv.benign, &cv.adversarial, 0.2),
            criterion_rates: Vec::new(),
            held_out_benign_fpr: Some(rate(&cv.benign_flagged)),
        })
    }

    /// The paper's protocol (UMCD's Table 2 reads this way): each baseline at its own
    /// calibration, each of UMCD's criteria calibrated alone at the full target FPR, and the
    /// union of those three with the FPR it really has on the held-out benign queries.
    /// `attacks` must have been through [`DetectionBench::evaluate`].
    pub fn paper_protocol(&self, attacks: &[Crafted]) -> Result<Vec<Table2Row>> {
        let u = self.detectors.len() - 1;
        if attacks.iter().any(|a| a.scores.len() <= u) {
            return Err(Error::InvalidArgument(
                "the paper's protocol needs every attack scored by every detector".into(),
            ));
        }
        let fpr = self.config.fpr;
        let row = |name: String, rates: Vec<f64>, held_out: f64| Table2Row {
            criteria: name,
            detection_rates: attacks
                .iter()
                .zip(rates)
                .map(|(a, rate)| TableRate {
                    attack: a.label.clone(),
                    rate,
                })
                .collect(),
            held_out_benign_fpr: held_out,
        };
        let mut rows: Vec<Table2Row> = (0..u)
            .map(|d| {
                let cal = &self.calibrations[d];
                let rates = attacks
                    .iter()
                    .map(|a| cal.flag_rate(&a.scores[d]))
                    .collect();
                row(
                    self.detectors[d].name(),
                    rates,
                    cal.flag_rate(&self.benign_test[d]),
                )
            })
            .collect();
        let criteria = &self.benign_cal[u].criteria;
        let alone: Vec<Calibration> = (0..criteria.len())
            .map(|c| calibrate(&self.benign_cal[u].columns(&[c]), fpr, None))
            .collect::<Result<_>>()?;
        // Per sample: whether any criterion flags it at its own threshold.
        let union = |scores: &Scores| -> f64 {
            let n = scores.len().max(1) as f64;
            let mut any = vec![false; scores.len()];
            for (c, cal) in alone.iter().enumerate() {
                for (f, d) in any.iter_mut().zip(cal.decide(&scores.columns(&[c]))) {
                    *f |= d.adversarial;
                }
            }
            any.iter().filter(|&&f| f).count() as f64 / n
        };
        for (c, cal) in alone.iter().enumerate() {
            let rates = attacks
                .iter()
                .map(|a| cal.flag_rate(&a.scores[u].columns(&[c])))
                .collect();
            let held_out = cal.flag_rate(&self.benign_test[u].columns(&[c]));
            rows.push(row(
                format!("UMCD {} alone", criteria[c].name),
                rates,
                held_out,
            ));
        }
        let rates = attacks.iter().map(|a| union(&a.scores[u])).collect();
        let names: Vec<&str> = criteria.iter().map(|c| c.name.as_str()).collect();
        rows.push(row(
            format!("UMCD {} (each alone)", names.join(" or ")),
            rates,
            union(&self.benign_test[u]),
        ));
        Ok(rows)
    }
}
