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
/// Height of one line of group labels, and the most staggered rows a chart uses.
const ROW_PX: u32 = LABEL_PX + 4;
const MAX_LABEL_ROWS: usize = 6;
/// The narrowest share of the x axis a group gets: the chart widens beyond the usual size
/// rather than squeeze more groups in (a short label such as "(3 seeds)" fits on one line).
const GROUP_PX: u32 = 80;
/// The widest a bar chart grows, in pixels.
const MAX_WIDTH: u32 = 2400;

/// Estimated width of `text` in the label font, in pixels: plotters draws a font of `LABEL_PX`
/// at `LABEL_PX / 1.24` pixels, and a sans-serif character is about 0.6 em wide on average.
fn text_px(text: &str) -> f64 {
    text.chars().count() as f64 * f64::from(LABEL_PX) / 1.24 * 0.6
}

/// Splits `label` into lines of at most `width` pixels each (greedy), breaking at spaces
/// outside parentheses (so "(3 seeds)" stays whole); a word wider than `width` gets a line
/// of its own.
fn wrap(label: &str, width: f64) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut depth = 0usize;
    for part in label.split_whitespace() {
        match words.last_mut() {
            Some(word) if depth > 0 => {
                word.push(' ');
                word.push_str(part);
            }
            _ => words.push(part.to_string()),
        }
        depth = (depth + part.matches('(').count()).saturating_sub(part.matches(')').count());
    }
    let mut lines: Vec<String> = Vec::new();
    for word in words {
        match lines.last_mut() {
            Some(line) if text_px(line) + text_px(" ") + text_px(&word) <= width => {
                line.push(' ');
                line.push_str(&word);
            }
            _ => lines.push(word),
        }
    }
    lines
}

/// The centre of a label `width` pixels wide placed at `x`, moved inside an image `image`
/// pixels wide (with 2 pixels to spare) when it would cross an edge.
fn inside(x: f64, width: f64, image: f64) -> f64 {
    let half = width / 2.0 + 2.0;
    if image > 2.0 * half {
        x.clamp(half, image - half)
    } else {
        x
    }
}

/// The fewest rows (at most [`MAX_LABEL_ROWS`]) over which labels of the given widths,
/// centred at `centres` and kept inside the image, can be staggered (group g in row
/// g mod rows) without two labels of a row coming closer than 4 pixels.
fn label_rows(centres: &[f64], widths: &[f64], image: f64) -> usize {
    let span = |g: usize| {
        let x = inside(centres[g], widths[g], image);
        (x - widths[g] / 2.0, x + widths[g] / 2.0)
    };
    (1..MAX_LABEL_ROWS)
        .find(|&rows| (rows..centres.len()).all(|g| span(g - rows).1 + 4.0 <= span(g).0))
        .unwrap_or(MAX_LABEL_ROWS)
}

struct BarChart<'a> {
    axes: &'a Axes,
    groups: &'a [String],
    series: &'a [(String, RGBColor)],
    values: &'a [Vec<f64>],
    errors: Option<&'a [Vec<f64>]>,
}

impl Figure for BarChart<'_> {
    fn size(&self) -> (u32, u32) {
        let groups = u32::try_from(self.groups.len()).unwrap_or(u32::MAX);
        let wide = (2 * MARGIN + Y_LABEL_AREA).saturating_add(GROUP_PX.saturating_mul(groups));
        (super::SIZE.0.max(wide).min(MAX_WIDTH), super::SIZE.1)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.groups.len() as f64;
        // Labels wider than their group's share of the axis wrap at spaces onto several lines
        // under their group; if a single word is still too wide, the groups are also
        // staggered over as few rows as keep every label clear of its neighbours (group g in
        // row g mod rows). Widths are estimated (see [`text_px`]); labels are kept inside
        // the image at its edges.
        let image_width = root.dim_in_pixel().0;
        let share = f64::from(image_width.saturating_sub(2 * MARGIN + Y_LABEL_AREA)) / n.max(1.0);
        let fits = share * 0.95;
        let wrapped: Vec<Vec<String>> = self.groups.iter().map(|g| wrap(g, fits)).collect();
        let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let widths: Vec<f64> = wrapped
            .iter()
            .map(|l| l.iter().map(|t| text_px(t)).fold(0.0, f64::max))
            .collect();
        let left = f64::from(MARGIN + Y_LABEL_AREA);
        let centres: Vec<f64> = (0..widths.len())
            .map(|g| left + (g as f64 + 0.5) * share)
            .collect();
        let rows = label_rows(&centres, &widths, f64::from(image_width));
        let custom = rows > 1 || lines > 1;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.axes.title, ("sans-serif", 22))
            .margin(MARGIN)
            .x_label_area_size(if custom {
                54 + ROW_PX * ((rows * lines) as u32 - 1)
            } else {
                50
            })
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
                if (x - i).abs() < 1e-6 && i >= 0.0 && !custom {
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
        if custom {
            let y0 = self.axes.y_range.start;
            let style = TextStyle::from(("sans-serif", LABEL_PX).into_font())
                .pos(Pos::new(HPos::Center, VPos::Top));
            for (g, label) in wrapped.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(g as f64, y0));
                let first = (g % rows) * lines;
                for (j, line) in label.iter().enumerate() {
                    let width = f64::from(image_width);
                    let x = inside(f64::from(x), text_px(line), width).round() as i32;
                    let y = y + 10 + ((first + j) as u32 * ROW_PX) as i32;
                    root.draw(&Text::new(line.as_str(), (x, y), style.clone()))
                        .map_err(err)?;
                }
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

#[cfg(test)]
#[path = "bars_tests.rs"]
mod tests;
