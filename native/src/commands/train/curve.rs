//! The training history of a run as people read it: one line per epoch for the terminal, and
//! the loss figure `loss.png` / `loss.svg`, one line per loss term over the epochs.

use std::path::Path;

use anyhow::Result;
use hashguard_core::adv_train::EpochStats;
use plotters::prelude::SeriesLabelPosition;

use crate::plot::{Axes, PALETTE, Series, lines};

/// An epoch's terminal line: its loss terms and time, and for CgAT/SAAT on CSQ how far the
/// target codes agree with the hash centres at the epoch's start and end.
pub(super) fn epoch_line(stats: &EpochStats, epochs: usize) -> String {
    let agreement = stats.target_agreement.map_or(String::new(), |[a, b]| {
        format!(
            "; target codes on hash centres {:.1}% → {:.1}%",
            100.0 * a,
            100.0 * b
        )
    });
    format!(
        "epoch {:>3}/{epochs}: loss {:.4} (similarity {:.4}, quantisation {:.4}) in {:.1}s{agreement}",
        stats.epoch + 1,
        stats.loss,
        stats.bce,
        stats.quantisation,
        stats.seconds
    )
}

/// The per-epoch training loss and its terms, as `loss.png` and `loss.svg`.
pub(super) fn loss_curve(history: &[EpochStats], stem: &Path) -> Result<()> {
    let series = |name: &str, colour, get: fn(&EpochStats) -> f64| Series {
        name: name.into(),
        colour,
        points: history
            .iter()
            .map(|h| ((h.epoch + 1) as f64, get(h)))
            .collect(),
    };
    let curves = [
        series("total loss", PALETTE[0], |h| h.loss),
        series("similarity term", PALETTE[1], |h| h.bce),
        series("quantisation term", PALETTE[2], |h| h.quantisation),
    ];
    // CgAT's and SAAT's total loss goes below 0 (their alignment term is negative): the axis
    // reaches down to it, and keeps 0 in view otherwise.
    let values = || {
        curves
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
    };
    let top = values().fold(1e-9, f64::max);
    let bottom = values().fold(0.0, f64::min);
    let margin = 0.1 * (top - bottom);
    let axes = Axes {
        title: format!("Training loss over {} epochs", history.len()),
        x: "epoch".into(),
        y: "mean loss per batch".into(),
        x_range: 0.5..history.len().max(1) as f64 + 0.5,
        y_range: if bottom < 0.0 { bottom - margin } else { 0.0 }..top + margin,
    };
    lines(stem, &axes, &curves, false, SeriesLabelPosition::UpperRight)
}
