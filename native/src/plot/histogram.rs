//! Overlaid histograms of sample sets as densities, with an optional curve (a predicted
//! density) and marked thresholds.

use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Axes, Figure, Series, chart, err, legend, render, swatch};

/// Histogram bins: `count` bins of `width` from `first`.
#[derive(Clone, Copy, Debug)]
pub struct Bins {
    /// Left edge of the first bin.
    pub first: f64,
    /// Width of a bin.
    pub width: f64,
    /// Number of bins.
    pub count: usize,
}

impl Bins {
    /// `count` equal bins spanning every value of `sets`.
    pub fn spanning(sets: &[&[f64]], count: usize) -> Self {
        let values = sets.iter().flat_map(|s| s.iter().copied());
        let (lo, hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
        Self {
            first: lo,
            width: ((hi - lo) / count as f64).max(1e-9),
            count,
        }
    }

    /// One bin per integer `0..=max`, centred on it.
    pub fn integers(max: usize) -> Self {
        Self {
            first: -0.5,
            width: 1.0,
            count: max + 1,
        }
    }

    /// Densities of `data` (each bin's share of the samples per unit of x).
    pub fn density(&self, data: Data<'_>) -> Vec<f64> {
        let mut counts = vec![0u64; self.count];
        match data {
            Data::Values(values) => {
                for &v in values.iter().filter(|v| v.is_finite()) {
                    let i = ((v - self.first) / self.width).floor().max(0.0) as usize;
                    counts[i.min(self.count - 1)] += 1;
                }
            }
            Data::Counts(c) => {
                for (dst, &n) in counts.iter_mut().zip(c) {
                    *dst = n;
                }
            }
        }
        let total = data.len().max(1) as f64 * self.width;
        counts.iter().map(|&c| c as f64 / total).collect()
    }

    fn range(&self) -> Range<f64> {
        self.first..self.first + self.width * self.count as f64
    }
}

/// A histogram's data: raw values, or counts already binned (one per bin).
#[derive(Clone, Copy, Debug)]
pub enum Data<'a> {
    /// The values themselves.
    Values(&'a [f64]),
    /// Counts per bin of the chart's [`Bins`].
    Counts(&'a [u64]),
}

impl Data<'_> {
    fn len(&self) -> u64 {
        match self {
            Data::Values(v) => v.len() as u64,
            Data::Counts(c) => c.iter().sum(),
        }
    }
}

/// A histogram's sample set: legend name, colour and data.
pub struct Sample<'a> {
    /// Legend entry.
    pub name: String,
    /// Bar colour (drawn translucent so sets can overlap).
    pub colour: RGBColor,
    /// The data.
    pub data: Data<'a>,
}

struct HistogramChart<'a> {
    title: &'a str,
    x: &'a str,
    bins: Bins,
    samples: &'a [Sample<'a>],
    curve: Option<&'a Series>,
    thresholds: &'a [(String, f64)],
}

impl Figure for HistogramChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let densities: Vec<Vec<f64>> = self
            .samples
            .iter()
            .map(|s| self.bins.density(s.data))
            .collect();
        let curve_top = self
            .curve
            .map_or(0.0, |c| c.points.iter().map(|p| p.1).fold(0.0, f64::max));
        let top = densities
            .iter()
            .flatten()
            .copied()
            .fold(curve_top, f64::max)
            .max(1e-9);
        let axes = Axes {
            title: self.title.into(),
            x: self.x.into(),
            y: "density (share of samples per unit of x)".into(),
            x_range: self.bins.range(),
            y_range: 0.0..top * 1.1,
        };
        let mut chart = chart(root, &axes)?;
        for (s, d) in self.samples.iter().zip(&densities) {
            let fill = s.colour.mix(0.45).filled();
            let b = self.bins;
            chart
                .draw_series(d.iter().enumerate().map(|(i, &h)| {
                    let x0 = b.first + b.width * i as f64;
                    Rectangle::new([(x0, 0.0), (x0 + b.width, h)], fill)
                }))
                .map_err(err)?
                .label(format!("{} (n = {})", s.name, s.data.len()))
                .legend(swatch(s.colour));
        }
        if let Some(c) = self.curve {
            chart
                .draw_series(LineSeries::new(
                    c.points.iter().copied(),
                    c.colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(c.name.as_str())
                .legend(swatch(c.colour));
        }
        for (name, x) in self.thresholds {
            let style = BLACK.stroke_width(2);
            chart
                .draw_series(LineSeries::new([(*x, 0.0), (*x, top * 1.05)], style))
                .map_err(err)?
                .label(name.as_str())
                .legend(swatch(BLACK));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// Overlaid histograms of `samples` over `bins`, with an optional `curve` (e.g. a predicted
/// density) and vertical `thresholds`, as `stem.png`/`.svg`.
pub fn histogram(
    stem: &Path,
    title: &str,
    x: &str,
    bins: Bins,
    samples: &[Sample<'_>],
    curve: Option<&Series>,
    thresholds: &[(String, f64)],
) -> Result<()> {
    let figure = HistogramChart {
        title,
        x,
        bins,
        samples,
        curve,
        thresholds,
    };
    render(stem, &figure)
}
