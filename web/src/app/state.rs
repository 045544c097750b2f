//! What the demo holds and computes, free of drawing: the engine, the query and its analysis,
//! the attack or ε sweep in progress (device work as tasks polled each frame), their results
//! and UMCD's verdicts at the chosen false-positive rate.

use std::rc::Rc;

use hashguard_core::detectors::Calibration;
use hashguard_core::experiments::{AttackKind, AttackSpec};
use web_time::Duration;

use super::sweep::Sweep;
use crate::engine::{Analysis, Attack, Engine, SliceTiming, Verdict, demo_spec};
use crate::task::Task;
use crate::upload::decode_grey;

/// Longest slice of attack work per frame.
const FRAME_BUDGET: Duration = Duration::from_millis(30);

/// The query being studied.
pub struct Query {
    /// Its name in the UI.
    pub name: String,
    /// Its class, when known (gallery images).
    pub label: Option<usize>,
    /// Its pixels in `[0, 1]`.
    pub pixels: Vec<f32>,
    /// Retrieval and UMCD's criteria for it.
    pub analysis: Analysis,
}

/// A query whose analysis is still being computed.
pub struct PendingQuery {
    /// Its name in the UI.
    pub name: String,
    /// Its class, when known.
    pub label: Option<usize>,
    /// Its pixels in `[0, 1]`.
    pub pixels: Vec<f32>,
    /// The analysis under way.
    pub analysis: Task<hashguard_core::Result<Analysis>>,
}

/// The finished attack's image and what retrieval and UMCD make of it.
pub struct Adversarial {
    /// The attack that made it.
    pub method: AttackKind,
    /// The adversarial image.
    pub pixels: Vec<f32>,
    /// Retrieval and UMCD's criteria for it.
    pub analysis: Analysis,
}

/// Where a running attack is: between slices, in a slice, or reading its result.
pub enum Stage {
    /// Between slices.
    Ready(Box<Attack>),
    /// In a slice.
    Stepping(Task<(Box<Attack>, hashguard_core::Result<()>)>),
    /// Reading the result: the adversarial image(s) and their analyses.
    Finishing(Task<hashguard_core::Result<(Vec<f32>, Vec<Analysis>)>>),
}

/// A running attack (or ε sweep) and the progress shown for it.
pub struct Running {
    /// The attack.
    pub spec: AttackSpec,
    /// The sweep's radii in grey levels, when this is an ε sweep.
    pub sweep: Option<Vec<f32>>,
    /// Where its time went so far.
    pub timing: SliceTiming,
    /// Steps done.
    pub steps_done: usize,
    /// Hamming distance of the current code to the original.
    pub hamming: u32,
    /// Hamming distance to the target anchor (targeted attacks).
    pub to_anchor: Option<u32>,
    /// Where it is.
    pub stage: Stage,
}

/// The demo's state.
pub struct DemoState {
    /// The loaded engine, or why it failed.
    pub engine: Result<Rc<Engine>, String>,
    /// UMCD's thresholds at the current false-positive rate.
    pub calibration: Option<Calibration>,
    /// The query being studied.
    pub query: Option<Query>,
    /// A query whose analysis is still being computed.
    pub pending_query: Option<PendingQuery>,
    /// The attack to run next.
    pub spec: AttackSpec,
    /// Its L∞ budget in grey levels (the slider's unit).
    pub eps_levels: f32,
    /// UMCD's false-positive rate, in percent.
    pub fpr_percent: f64,
    /// The attack in progress.
    pub attack: Option<Running>,
    /// The finished attack's result.
    pub adversarial: Option<Adversarial>,
    /// The finished ε sweep's result.
    pub sweep: Option<Sweep>,
    /// The last error or notice.
    pub message: Option<String>,
    /// Where the last finished attack's time went, slice by slice.
    pub last_timing: Option<SliceTiming>,
    /// Bumped whenever the query or the adversarial image changes (views cache by it).
    pub revision: u64,
}

impl DemoState {
    /// The demo around a loaded engine (or the reason it failed to load, shown in the window).
    pub fn new(engine: Result<Engine, String>) -> Self {
        let (engine, calibration) = match engine {
            Ok(e) => match e.calibration(0.05) {
                Ok(c) => (Ok(Rc::new(e)), Some(c)),
                Err(err) => (Err(err.to_string()), None),
            },
            Err(err) => (Err(err), None),
        };
        let mut app = Self {
            engine,
            calibration,
            query: None,
            pending_query: None,
            spec: demo_spec(AttackKind::Pgd, 8.0 / 255.0, 100, 0),
            eps_levels: 8.0,
            fpr_percent: 5.0,
            attack: None,
            adversarial: None,
            sweep: None,
            message: None,
            last_timing: None,
            revision: 0,
        };
        // Start with the first gallery image so retrieval shows at once.
        if app.engine.is_ok() {
            app.select_gallery(0);
        }
        app
    }

    /// The backend line shown at the top.
    pub fn backend(&self) -> String {
        match &self.engine {
            Ok(e) => e.backend.clone(),
            Err(_) => "not loaded".into(),
        }
    }

    /// Queries with gallery image `i`.
    pub fn select_gallery(&mut self, i: usize) {
        let Ok(engine) = &self.engine else { return };
        let g = &engine.bundle.gallery;
        if i >= g.len() {
            return;
        }
        let pixels = g.pixels_f32(&[i]);
        let label = g.labels[i].primary();
        let name = format!(
            "gallery #{} ({})",
            i + 1,
            label.map_or("?", |c| g.class_names[c].as_str())
        );
        self.set_query(name, label, pixels);
    }

    /// Queries with an uploaded file's bytes.
    pub fn upload(&mut self, name: &str, bytes: &[u8]) {
        let Ok(engine) = &self.engine else { return };
        let s = engine.shape();
        match decode_grey(bytes, s.width, s.height) {
            Ok(pixels) => self.set_query(format!("upload: {name}"), None, pixels),
            Err(e) => self.message = Some(format!("{name}: {e}")),
        }
    }

    fn set_query(&mut self, name: String, label: Option<usize>, pixels: Vec<f32>) {
        let Ok(engine) = &self.engine else { return };
        let (engine, input) = (engine.clone(), pixels.clone());
        self.pending_query = Some(PendingQuery {
            name,
            label,
            pixels,
            analysis: Task::spawn(async move { engine.analyse(&input).await }),
        });
        self.poll();
    }

    /// Collects finished tasks and starts the next slice of a running attack (one per call,
    /// so a frame does at most one slice of work).
    pub fn poll(&mut self) {
        if let Some(p) = &self.pending_query
            && let Some(result) = p.analysis.take()
        {
            let p = self.pending_query.take().expect("checked above");
            self.query_ready(p.name, p.label, p.pixels, result);
        }
        let (Ok(engine), Some(mut run)) = (&self.engine, self.attack.take()) else {
            return;
        };
        run.stage = match run.stage {
            Stage::Stepping(task) => match task.take() {
                None => Stage::Stepping(task),
                Some((_, Err(e))) => {
                    self.message = Some(format!("attack failed: {e}"));
                    return;
                }
                Some((attack, Ok(()))) => {
                    run.steps_done = attack.steps_done();
                    run.hamming = attack.hamming;
                    run.to_anchor = attack.to_anchor;
                    run.timing = attack.timing;
                    Stage::Ready(attack)
                }
            },
            Stage::Finishing(task) => match task.take() {
                None => Stage::Finishing(task),
                Some(Ok((pixels, mut analyses))) => {
                    self.last_timing = Some(run.timing);
                    match run.sweep {
                        Some(levels) => self.sweep_ready(run.spec, &levels, analyses),
                        None => {
                            self.adversarial = Some(Adversarial {
                                method: run.spec.kind,
                                pixels,
                                analysis: analyses.remove(0),
                            });
                            self.revision += 1;
                        }
                    }
                    return;
                }
                Some(Err(e)) => {
                    self.message = Some(format!("attack failed: {e}"));
                    return;
                }
            },
            ready => ready,
        };
        if let Stage::Ready(attack) = run.stage {
            let engine = engine.clone();
            run.stage = if attack.finished() {
                let n = attack.batch();
                Stage::Finishing(Task::spawn(async move {
                    let pixels = attack.result().await?;
                    let per = pixels.len() / n;
                    let mut analyses = Vec::with_capacity(n);
                    for image in pixels.chunks(per) {
                        analyses.push(engine.analyse(image).await?);
                    }
                    Ok((pixels, analyses))
                }))
            } else {
                let mut attack = attack;
                Stage::Stepping(Task::spawn(async move {
                    let done = attack.advance(&engine, FRAME_BUDGET).await;
                    (attack, done)
                }))
            };
        }
        self.attack = Some(run);
    }

    /// Whether device work is under way (an analysis or an attack).
    pub fn busy(&self) -> bool {
        self.pending_query.is_some() || self.attack.is_some()
    }

    fn query_ready(
        &mut self,
        name: String,
        label: Option<usize>,
        pixels: Vec<f32>,
        result: hashguard_core::Result<Analysis>,
    ) {
        let Ok(engine) = &self.engine else { return };
        match result {
            Ok(analysis) => {
                let classes = engine.bundle.database.num_classes();
                let target = self.spec.target.label.unwrap_or(0);
                if Some(target) == label {
                    self.spec.target.label = Some((target + 1) % classes);
                }
                self.query = Some(Query {
                    name,
                    label,
                    pixels,
                    analysis,
                });
                self.attack = None;
                self.adversarial = None;
                self.sweep = None;
                self.revision += 1;
                self.message = None;
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    /// Chooses the attack to run next.
    pub fn set_attack(&mut self, spec: AttackSpec) {
        self.eps_levels = spec.eps * 255.0;
        self.spec = spec;
    }

    /// Starts the chosen attack on the current query.
    pub fn start_attack(&mut self) {
        let (Ok(engine), Some(q)) = (&self.engine, &self.query) else {
            return;
        };
        self.spec = demo_spec(
            self.spec.kind,
            self.eps_levels / 255.0,
            self.spec.steps,
            self.spec.target.label.unwrap_or(0),
        );
        match engine.start_attack(&q.pixels, &q.analysis, self.spec) {
            Ok(a) => {
                self.attack = Some(Running {
                    spec: self.spec,
                    sweep: None,
                    timing: SliceTiming::default(),
                    steps_done: 0,
                    hamming: 0,
                    to_anchor: None,
                    stage: Stage::Ready(Box::new(a)),
                });
                self.adversarial = None;
                self.message = None;
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    /// Whether an ε sweep (rather than a single attack) is running.
    pub fn sweeping(&self) -> bool {
        self.attack.as_ref().is_some_and(|r| r.sweep.is_some())
    }

    /// Whether an attack is running.
    pub fn attacking(&self) -> bool {
        self.attack.is_some()
    }

    /// UMCD's verdicts on the benign query and the adversarial image, when there are both.
    pub fn verdicts(&self) -> (Option<bool>, Option<bool>) {
        (
            self.query
                .as_ref()
                .and_then(|q| self.verdict(&q.analysis))
                .map(|v| v.adversarial),
            self.adversarial
                .as_ref()
                .and_then(|a| self.verdict(&a.analysis))
                .map(|v| v.adversarial),
        )
    }

    /// UMCD's verdict on `analysis` at the current false-positive rate.
    pub fn verdict(&self, analysis: &Analysis) -> Option<Verdict> {
        self.calibration.as_ref().map(|c| analysis.verdict(c))
    }

    /// The query's and the adversarial image's ten retrieved database images.
    pub fn retrieved(&self) -> (Vec<usize>, Vec<usize>) {
        let ids = |a: &Analysis| a.neighbours.iter().map(|n| n.index).collect();
        (
            self.query
                .as_ref()
                .map_or_else(Vec::new, |q| ids(&q.analysis)),
            self.adversarial
                .as_ref()
                .map_or_else(Vec::new, |a| ids(&a.analysis)),
        )
    }

    /// The last error or notice shown to the user.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Recalibrates UMCD's thresholds at `fpr_percent`.
    pub fn set_fpr(&mut self) {
        let Ok(engine) = &self.engine else { return };
        match engine.calibration(self.fpr_percent / 100.0) {
            Ok(c) => self.calibration = Some(c),
            Err(e) => self.message = Some(e.to_string()),
        }
    }
}

impl Running {
    /// Share of the steps done.
    pub fn progress(&self) -> f32 {
        self.steps_done as f32 / self.spec.steps.max(1) as f32
    }
}
