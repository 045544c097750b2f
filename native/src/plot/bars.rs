//! Grouped bar charts: one group per row of a table, one bar per column, with optional
//! whiskers (a mean over seeds ± its standard deviation).

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::element::ErrorBar;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Axes, Figure, err, legend, render, swatch};

/// Size of the group labels, in pixels.
const LABEL_PX: u32 = 15;
/// The chart's margin and the y axis's label area, in pixels.
const MARGIN: u32 = 16;
const Y_LABEL_AREA: u32 = 70;
/// Height of one row of staggered group labels, and the most rows a chart uses.
const ROW_PX: u32 = LABEL_PX + 4;
const MAX_LABEL_ROWS: usize = 6;

struct BarChart<'a> {
    axes: &'a Axes,
    groups: &'a [String],
    series: &'a [(String, RGBColor)],
    values: &'a [Vec<f64>],
    errors: Option<&'a [Vec<f64>]>,
}

impl Figure for BarChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.groups.len() as f64;
        // Labels wider than their group's share of the axis are staggered over as many rows
        // as they need (group g in row g mod rows; the width estimated at 0.55 em a
        // character), and kept inside the image at its edges.
        let image_width = root.dim_in_pixel().0;
        let share = f64::from(image_width.saturating_sub(2 * MARGIN + Y_LABEL_AREA)) / n.max(1.0);
        let text_px = |g: &str| g.chars().count() as f64 * f64::from(LABEL_PX) * 0.55;
        let widest = self.groups.iter().map(|g| text_px(g)).fold(0.0, f64::max);
        let rows = ((widest / (share * 0.95)).ceil() as usize).clamp(1, MAX_LABEL_ROWS);
        let staggered = rows > 1;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.axes.title, ("sans-serif", 22))
            .margin(MARGIN)
            .x_label_area_size(50 + ROW_PX * (rows as u32 - 1))
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(-0.5..n - 0.5, self.axes.y_range.clone())
            .map_err(err)?;
        let groups = self.groups;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_labels(groups.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && !staggered {
                    groups.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(&self.axes.x)
            .y_desc(&self.axes.y)
            .label_style(("sans-serif", LABEL_PX))
            .axis_desc_style(("sans-serif", 17))
            .draw()
            .map_err(err)?;
        if staggered {
            let y0 = self.axes.y_range.start;
            let style = TextStyle::from(("sans-serif", LABEL_PX).into_font())
                .pos(Pos::new(HPos::Center, VPos::Top));
            for (g, name) in groups.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(g as f64, y0));
                let half = (text_px(name) / 2.0).ceil() as i32;
                let right = image_width as i32 - half - 2;
                let x = if right > half {
                    x.clamp(half + 2, right)
                } else {
                    x
                };
                let row = (g % rows) as i32;
                root.draw(&Text::new(
                    name.as_str(),
                    (x, y + 6 + row * ROW_PX as i32),
                    style.clone(),
                ))
                .map_err(err)?;
            }
        }
        let k = self.series.len().max(1) as f64;
        let width = 0.8 / k;
        // Left edge of series j's bar in group g; each bar fills 90 % of its slot.
        let left = |g: usize, j: usize| g as f64 - 0.4 + width * j as f64;
        for (j, (name, colour)) in self.series.iter().enumerate() {
            let fill = colour.filled();
            let bars = self.values.iter().enumerate().filter_map(|(g, row)| {
                let v = *row.get(j)?;
                let x0 = left(g, j);
                Some(Rectangle::new([(x0, 0.0), (x0 + width * 0.9, v)], fill))
            });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(name.as_str())
                .legend(swatch(*colour));
        }
        if let Some(errors) = self.errors {
            for (j, _) in self.series.iter().enumerate() {
                let whiskers =
                    self.values
                        .iter()
                        .zip(errors)
                        .enumerate()
                        .filter_map(|(g, (row, spread))| {
                            let (v, e) = (*row.get(j)?, *spread.get(j)?);
                            (e.is_finite() && e > 0.0).then(|| {
                                let x = left(g, j) + width * 0.45;
                                ErrorBar::new_vertical(x, v - e, v, v + e, BLACK.stroke_width(2), 6)
                            })
                        });
                chart.draw_series(whiskers).map_err(err)?;
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// Grouped bars: one group per `groups` entry, one bar per `series` in it (`values[group]
/// [series]`), as `stem.png`/`.svg`; `axes.x_range` is ignored. `errors`, shaped like
/// `values`, draws a ± whisker on each bar whose entry is finite and above 0 (a one-seed
/// mean's 0 draws none).
pub fn grouped_bars(
    stem: &Path,
    axes: &Axes,
    groups: &[String],
    series: &[(String, RGBColor)],
    values: &[Vec<f64>],
    errors: Option<&[Vec<f64>]>,
) -> Result<()> {
    render(
        stem,
        &BarChart {
            axes,
            groups,
            series,
            values,
            errors,
        },
    )
}
