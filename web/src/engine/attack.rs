//! An attack running in the page: PGD, DHTA or CW stepped in time slices (so progress shows
//! and the page stays responsive), with the live Hamming distances and where the time went.

use burn::prelude::*;
use hashguard_core::Result;
use hashguard_core::attacks::{BestKeeper, CwStepper, PgdStepper};
use hashguard_core::detectors::read_async;
use hashguard_core::experiments::AttackSpec;
use hashguard_core::retrieval::{PackedCodes, hamming};
use web_time::{Duration, Instant};

use super::Engine;

/// The attack's state, boxed (tensors' handles are large, the two variants differ).
pub(super) enum Stepper {
    Pgd(Box<PgdStepper>),
    Cw(Box<(CwStepper, BestKeeper, Tensor<4>)>),
}

/// An attack in progress on one image (or, for an ε sweep, on a batch of its copies).
pub struct Attack {
    pub(super) stepper: Stepper,
    pub(super) spec: AttackSpec,
    /// Copies attacked (1, or the sweep's radii).
    pub(super) batch: usize,
    pub(super) original: PackedCodes,
    pub(super) anchor: Option<PackedCodes>,
    /// Hamming distance of the current iterate's code to the original code (a sweep's
    /// largest radius: its last copy).
    pub hamming: u32,
    /// Hamming distance to DHTA's anchor, when targeted (likewise).
    pub to_anchor: Option<u32>,
    pub(super) steps_done: usize,
    /// Most steps one slice records: on an asynchronous device (WebGPU) recording is quick and
    /// the time goes by in the awaited read, so the slice's size adapts to its measured time.
    pub(super) slice_cap: usize,
    /// Milliseconds spent recording steps and awaiting the code, summed over the slices.
    pub timing: SliceTiming,
}

/// Where an attack's time went, summed over its slices.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SliceTiming {
    /// Slices run.
    pub slices: usize,
    /// Milliseconds recording (on the CPU backend: computing) steps.
    pub steps_ms: f64,
    /// Milliseconds computing and awaiting the live code.
    pub read_ms: f64,
}

/// Largest number of steps in one slice.
const MAX_SLICE: usize = 64;

impl Attack {
    /// Records steps until `budget` has elapsed (at least one) or the attack is done, then
    /// awaits the current code and refreshes the live Hamming distances. On WebGPU the steps
    /// run on the device while the page stays responsive; only the reads are awaited, and the
    /// number of steps per slice doubles while recording them leaves part of `budget` unused
    /// and halves when a whole slice (read included) takes over four budgets, so progress
    /// shows often.
    pub async fn advance(&mut self, engine: &Engine, budget: Duration) -> Result<()> {
        let start = Instant::now();
        let mut taken = 0;
        while !self.finished() && taken < self.slice_cap {
            match &mut self.stepper {
                Stepper::Pgd(s) => s.step(&engine.model)?,
                Stepper::Cw(cw) => {
                    let (s, keeper, last) = &mut **cw;
                    let probe = s.step(&engine.model)?;
                    let flips = read_async(probe.flips).await?;
                    let l2 = read_async(probe.l2).await?;
                    *last = probe.x.clone();
                    keeper.offer(probe.x, &flips, &l2);
                }
            }
            self.steps_done += 1;
            taken += 1;
            if start.elapsed() >= budget {
                break;
            }
        }
        let stepped = start.elapsed();
        let code = engine.code_of(self.current()).await?;
        let elapsed = start.elapsed();
        self.timing.slices += 1;
        self.timing.steps_ms += stepped.as_secs_f64() * 1e3;
        self.timing.read_ms += (elapsed - stepped).as_secs_f64() * 1e3;
        if stepped < budget && taken == self.slice_cap {
            // Recording left budget over (an asynchronous device, or quick steps): allow more.
            self.slice_cap = (self.slice_cap * 2).min(MAX_SLICE);
        } else if elapsed > 4 * budget {
            self.slice_cap = (self.slice_cap / 2).max(1);
        }
        let last = code.code(self.batch - 1);
        self.hamming = hamming(last, self.original.code(0));
        self.to_anchor = self.anchor.as_ref().map(|a| hamming(last, a.code(0)));
        Ok(())
    }

    /// Steps done.
    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    /// Whether all steps ran.
    pub fn finished(&self) -> bool {
        self.steps_done >= self.spec.steps
    }

    fn current(&self) -> Tensor<4> {
        match &self.stepper {
            Stepper::Pgd(s) => s.current(),
            Stepper::Cw(cw) => cw.2.clone(),
        }
    }

    /// Copies attacked: 1, or a sweep's number of radii.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The adversarial image(s), one after the other: PGD's last iterate, or CW's smallest
    /// successful perturbation (the clean image when none succeeded).
    pub async fn result(self) -> Result<Vec<f32>> {
        let x = match self.stepper {
            Stepper::Pgd(s) => s.current(),
            Stepper::Cw(cw) => cw.1.into_best().0,
        };
        read_async(x).await
    }
}
