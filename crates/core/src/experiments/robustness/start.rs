//! The "start" factor of Table 3's ablation: how each method's lead over FreeAT changes when
//! every row trains from random weights instead of being fine-tuned from the base run — the
//! difference of its two equal-budget leads, with their standard errors combined.

use serde::{Deserialize, Serialize};

use super::markdown::difference_table;
use super::report::{Difference, Lead, RadiusLead, RowReport, same_radius};

/// One method's lead over FreeAT from scratch minus its lead fine-tuned (negative: the method
/// loses ground to FreeAT when both start from random weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartEffect {
    /// The fine-tuned method's row.
    pub row: String,
    /// The same method's from-scratch row.
    pub scratch_row: String,
    /// Seeds: the fine-tuned method, its FreeAT reference, the scratch method, its reference.
    pub seeds: [usize; 4],
    /// Change of the clean-mAP lead.
    pub clean: Difference,
    /// Change of the robust-mAP lead, at each radius both leads were measured at.
    pub robust: Vec<RadiusLead>,
}

impl StartEffect {
    /// Every method in `rows` with a lead over FreeAT in both blocks (`leads`, from
    /// [`Lead::all`]): its fine-tuned row paired with the from-scratch row of the same method
    /// (same training method and hyper-parameters; epochs and optimiser may differ).
    pub fn all(rows: &[RowReport], leads: &[Lead]) -> Vec<Self> {
        let training = |name: &str| {
            rows.iter()
                .find(|r| r.row == name)
                .and_then(|r| r.training.as_ref())
        };
        leads
            .iter()
            .filter_map(|fine| {
                let t = training(&fine.row).filter(|t| !t.from_scratch)?;
                let scratch = leads.iter().find(|l| {
                    training(&l.row).is_some_and(|s| s.from_scratch && s.method == t.method)
                })?;
                let robust: Vec<RadiusLead> = fine
                    .robust
                    .iter()
                    .filter_map(|p| {
                        let q = scratch.robust.iter().find(|q| same_radius(q.eps, p.eps))?;
                        Some(RadiusLead {
                            eps: p.eps,
                            pgd: q.pgd.minus(&p.pgd),
                        })
                    })
                    .collect();
                Some(Self {
                    row: fine.row.clone(),
                    scratch_row: scratch.row.clone(),
                    seeds: [
                        fine.seeds,
                        fine.reference_seeds,
                        scratch.seeds,
                        scratch.reference_seeds,
                    ],
                    clean: scratch.clean.minus(&fine.clean),
                    robust,
                })
            })
            .collect()
    }
}

/// The start factor's section of `table3.md`, one row per method.
pub(super) fn start_markdown(effects: &[StartEffect]) -> String {
    let lines: Vec<_> = effects
        .iter()
        .map(|e| {
            let [a, b, c, d] = e.seeds;
            let cells = format!("{} | {} | {a} / {b}, {c} / {d}", e.row, e.scratch_row);
            (cells, &e.clean, e.robust.as_slice())
        })
        .collect();
    difference_table(
        "\n## Start: from scratch against fine-tuned\n\n\
         Each method's lead over FreeAT from scratch minus its lead fine-tuned (the two rows of \
         the section above), in mAP points: negative when the method loses ground to FreeAT \
         once both start from random weights. ± the two leads' standard errors in quadrature \
         (independent trainings). The blocks may also differ in updates per batch (the table's \
         column), so this is the start and that budget together.\n\n\
         | Training | from scratch | seeds |",
        &lines,
    )
}
