//! Line charts: ROC curves, mAP against ε, training loss, the white-box sweep.

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Axes, Figure, Series, chart, err, legend, render, swatch};

struct LineChart<'a> {
    axes: &'a Axes,
    series: &'a [Series],
    diagonal: bool,
    legend: SeriesLabelPosition,
}

impl Figure for LineChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let mut chart = chart(root, self.axes)?;
        if self.diagonal {
            let (a, b) = (self.axes.x_range.start, self.axes.x_range.end);
            let grey = RGBColor(150, 150, 150);
            chart
                .draw_series(LineSeries::new([(a, a), (b, b)], grey))
                .map_err(err)?
                .label("chance (y = x)")
                .legend(swatch(grey));
        }
        for s in self.series {
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    s.colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(s.name.as_str())
                .legend(swatch(s.colour));
            if s.points.len() <= 40 {
                let style = s.colour.filled();
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, style)))
                    .map_err(err)?;
            }
        }
        legend(&mut chart, self.legend.clone())
    }
}

/// A line chart of `series` (with the y = x diagonal when `diagonal`), as `stem.png`/`.svg`.
pub fn lines(
    stem: &Path,
    axes: &Axes,
    series: &[Series],
    diagonal: bool,
    legend: SeriesLabelPosition,
) -> Result<()> {
    let figure = LineChart {
        axes,
        series,
        diagonal,
        legend,
    };
    render(stem, &figure)
}
