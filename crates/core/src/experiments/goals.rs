//! Each query's goal for an attack: DHTA's target label and anchor code, or the seeds' code of
//! the query's own labels (CgAT's centre code, SAAT's mainstay code) to push away from. `attack`
//! and the detection bench both take them from here, so they craft the same examples.

use rand::Rng;

use super::{AttackKind, AttackSpec};
use crate::adv_train::{LabelCodeKind, label_codes_for};
use crate::attacks::{Target, dhta_targets};
use crate::data::LabelSet;
use crate::retrieval::PackedCodes;
use crate::{Error, Result};

/// The goals of `spec` for queries labelled `query_labels`, from the `database` codes and
/// labels: DHTA's targets (drawn from `rng`), or for the label-code attacks each query's
/// centre / mainstay code as [`Target::anchor`] with its lowest label as [`Target::label`];
/// `None` for attacks that need no goal.
///
/// The label codes come from the database's codes and labels (what an attacker of the
/// retrieval system sees), where the seeds' code computes them from the training set's; with
/// the default split the two sets are disjoint, and on a trained model both cluster on the
/// same class codes.
pub fn attack_goals(
    spec: &AttackSpec,
    query_labels: &[LabelSet],
    database: &PackedCodes,
    database_labels: &[LabelSet],
    rng: &mut impl Rng,
) -> Result<Option<Vec<Target>>> {
    let kind = match spec.kind {
        k if k.is_targeted() => {
            return dhta_targets(
                query_labels,
                database,
                database_labels,
                spec.target.label,
                spec.target.n_t,
                rng,
            )
            .map(Some);
        }
        AttackKind::Centre => LabelCodeKind::Centre,
        AttackKind::Mainstay => LabelCodeKind::Mainstay,
        _ => return Ok(None),
    };
    let codes = label_codes_for(kind, database, database_labels, query_labels)?;
    let signs = codes.signs_for(query_labels)?;
    query_labels
        .iter()
        .zip(signs.chunks(database.bits()))
        .map(|(l, code)| {
            let label = l.primary().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "a query without labels has no {} code to attack",
                    spec.kind
                ))
            })?;
            Ok(Target {
                label,
                anchor: code.to_vec(),
                looks: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adv_train::centre_codes;
    use rand::SeedableRng;

    #[test]
    fn label_code_attacks_get_their_querys_centre_code_and_others_none() {
        let bits = 8;
        let values: Vec<f32> = (0..30 * bits)
            .map(|i| {
                if (i * 5 + i / bits) % 3 == 0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        let db = PackedCodes::from_signs(bits, &values);
        let labels: Vec<LabelSet> = (0..30).map(|i| LabelSet::single(i % 3)).collect();
        let queries = [LabelSet::single(2), LabelSet::single(0)];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let centres = centre_codes(&db, &labels).unwrap();
        for kind in [AttackKind::Centre, AttackKind::Mainstay] {
            let spec = AttackSpec::new(kind);
            let goals = attack_goals(&spec, &queries, &db, &labels, &mut rng)
                .unwrap()
                .unwrap();
            for (g, q) in goals.iter().zip(&queries) {
                assert_eq!(Some(g.label), q.primary());
                assert_eq!(g.anchor, centres.signs_for(&[*q]).unwrap(), "{kind}");
            }
        }
        let pgd = AttackSpec::new(AttackKind::Pgd);
        assert!(
            attack_goals(&pgd, &queries, &db, &labels, &mut rng)
                .unwrap()
                .is_none()
        );
        let dhta = AttackSpec::new(AttackKind::Dhta);
        let goals = attack_goals(&dhta, &queries, &db, &labels, &mut rng)
            .unwrap()
            .unwrap();
        assert!(
            goals
                .iter()
                .zip(&queries)
                .all(|(g, q)| !q.contains(g.label))
        );
        let nobody = [LabelSet::default()];
        let centre = AttackSpec::new(AttackKind::Centre);
        assert!(attack_goals(&centre, &nobody, &db, &labels, &mut rng).is_err());
    }
}
