//! The page's ε sweep ("attack strength"): the chosen attack run at seven radii in one batch on
//! the current query, what each radius did to the code and the ten matches, and how the damage
//! is measured. `view` draws it.

use hashguard_core::experiments::AttackSpec;

use super::state::{DemoState, Running, Stage};
use crate::engine::{Analysis, SliceTiming, demo_spec};

mod view;

/// The radii of the page's ε sweep, in grey levels.
pub const SWEEP_LEVELS: [f32; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 24.0, 32.0];

/// One radius of a finished ε sweep.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    /// The radius, in grey levels.
    pub eps_levels: f32,
    /// Bits of the code the attack flipped.
    pub flipped: usize,
    /// Retrieval and UMCD's criteria for the adversarial copy.
    pub analysis: Analysis,
}

/// A finished ε sweep of the current query.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The attack and its steps, step-to-radius ratio and target.
    pub spec: AttackSpec,
    /// One point per radius of [`SWEEP_LEVELS`].
    pub points: Vec<SweepPoint>,
}

impl DemoState {
    /// Starts the ε sweep of the chosen attack (PGD or DHTA, its steps and target) on the
    /// current query: every radius of [`SWEEP_LEVELS`] in one batch.
    pub fn start_sweep(&mut self) {
        let (Ok(engine), Some(q)) = (&self.engine, &self.query) else {
            return;
        };
        let top = SWEEP_LEVELS[SWEEP_LEVELS.len() - 1];
        // The step-to-radius ratio of the demo's rule at the largest radius, for every radius.
        let spec = demo_spec(
            self.spec.kind,
            top / 255.0,
            self.spec.steps,
            self.spec.target.label.unwrap_or(0),
        );
        let radii: Vec<f32> = SWEEP_LEVELS.iter().map(|l| l / 255.0).collect();
        match engine.start_sweep(&q.pixels, &q.analysis, spec, &radii) {
            Ok(a) => {
                self.attack = Some(Running {
                    spec,
                    sweep: Some(SWEEP_LEVELS.to_vec()),
                    timing: SliceTiming::default(),
                    steps_done: 0,
                    hamming: 0,
                    to_anchor: None,
                    stage: Stage::Ready(Box::new(a)),
                });
                self.sweep = None;
                self.message = None;
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    pub(super) fn sweep_ready(
        &mut self,
        spec: AttackSpec,
        levels: &[f32],
        analyses: Vec<Analysis>,
    ) {
        let Some(q) = &self.query else { return };
        let points = levels
            .iter()
            .zip(analyses)
            .map(|(&eps_levels, analysis)| SweepPoint {
                eps_levels,
                flipped: (analysis.signs.iter())
                    .zip(&q.analysis.signs)
                    .filter(|(a, b)| (**a > 0.0) != (**b > 0.0))
                    .count(),
                analysis,
            })
            .collect();
        self.sweep = Some(Sweep { spec, points });
    }

    /// The damage an analysis shows, as a share of the ten matches: for a targeted attack the
    /// matches in the target class; otherwise, for a query of known class, the matches of
    /// another class, and for an upload, the query's own matches that are gone.
    pub fn damage(&self, spec: &AttackSpec, analysis: &Analysis) -> Option<f64> {
        let (Ok(engine), Some(q)) = (&self.engine, &self.query) else {
            return None;
        };
        let labels = &engine.bundle.database.labels;
        let matches = &analysis.neighbours;
        let share = |n: usize| n as f64 / matches.len().max(1) as f64;
        Some(match (spec.kind.is_targeted(), q.label) {
            (true, _) => {
                let t = spec.target.label?;
                share(
                    matches
                        .iter()
                        .filter(|m| labels[m.index].contains(t))
                        .count(),
                )
            }
            (false, Some(c)) => share(
                matches
                    .iter()
                    .filter(|m| !labels[m.index].contains(c))
                    .count(),
            ),
            (false, None) => {
                let before: Vec<usize> = q.analysis.neighbours.iter().map(|m| m.index).collect();
                share(
                    matches
                        .iter()
                        .filter(|m| !before.contains(&m.index))
                        .count(),
                )
            }
        })
    }
}
