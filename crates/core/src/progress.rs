//! How long-running work (experiments, data loading) reports progress without knowing who
//! watches: a phase with a length, ticks, a message, and log lines. The CLI draws bars; tests
//! and the browser pass [`Silent`].

/// A sink for an experiment's progress.
pub trait Progress {
    /// Starts a phase named `what` of `total` ticks (ending any phase before it).
    fn phase(&mut self, what: &str, total: u64);
    /// What the current phase is working on.
    fn message(&mut self, message: &str);
    /// `n` more ticks of the current phase done.
    fn inc(&mut self, n: u64);
    /// A line worth keeping (a result, a choice made).
    fn log(&mut self, line: &str);
    /// Ends the current phase.
    fn finish(&mut self);
}

/// Progress nobody watches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn phase(&mut self, _what: &str, _total: u64) {}
    fn message(&mut self, _message: &str) {}
    fn inc(&mut self, _n: u64) {}
    fn log(&mut self, _line: &str) {}
    fn finish(&mut self) {}
}
