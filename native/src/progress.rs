//! Progress bars on stderr (hidden when stderr is not a terminal, so logs stay clean), and the
//! library's progress sink drawn with them.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` units with a message slot.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>9} [{{bar:30}}] {{pos}}/{{len}} {{msg}} (ETA {{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb
}

/// Prints a line above the bar, or plainly on stderr when the bar is hidden (not a terminal).
pub fn log(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.println(line);
    }
}

/// The library's [`Progress`](hashguard_core::experiments::Progress) as one indicatif bar per
/// phase, log lines above it (or plainly on stderr when it is hidden).
#[derive(Default)]
pub struct Bars {
    current: Option<ProgressBar>,
}

impl hashguard_core::experiments::Progress for Bars {
    fn phase(&mut self, what: &str, total: u64) {
        self.finish();
        self.current = Some(bar(total, what));
    }

    fn message(&mut self, message: &str) {
        if let Some(pb) = &self.current {
            pb.set_message(message.to_string());
        }
    }

    fn inc(&mut self, n: u64) {
        if let Some(pb) = &self.current {
            pb.inc(n);
        }
    }

    fn log(&mut self, line: &str) {
        match &self.current {
            Some(pb) => log(pb, line.to_string()),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if let Some(pb) = self.current.take() {
            pb.finish_and_clear();
        }
    }
}
