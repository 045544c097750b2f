//! The CLI's figures, drawn with plotters as PNG and SVG side by side: line charts (ROC, mAP
//! against ε, training loss, Fig. 5), histograms with marked thresholds, grouped bars — each with
//! a title, labelled axes and a legend — plus image grids. Every file is written atomically.

mod bars;
mod grid;
mod histogram;
mod lines;

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use hashguard_core::run::write_atomic;
use image::RgbImage;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

pub use bars::grouped_bars;
pub use grid::Grid;
pub use histogram::{Bins, Data, Sample, histogram};
pub use lines::lines;

/// Pixel size of a chart (bar charts widen to keep their groups apart).
const SIZE: (u32, u32) = (900, 600);
/// The embedded font (DejaVu Sans; licence in native/assets).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The palette of series, in order (Okabe–Ito: distinct under common colour blindness).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(110, 110, 110),
    RGBColor(0, 0, 0),
];

/// A named series in a colour.
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// Line or bar colour.
    pub colour: RGBColor,
    /// Points (x, y), in x order.
    pub points: Vec<(f64, f64)>,
}

/// What a chart shows: title, axis labels (with units) and ranges.
pub struct Axes {
    /// The caption.
    pub title: String,
    /// The x axis label.
    pub x: String,
    /// The y axis label.
    pub y: String,
    /// The x range.
    pub x_range: Range<f64>,
    /// The y range.
    pub y_range: Range<f64>,
}

/// A chart that can draw itself on any plotters backend.
pub(crate) trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;

    /// The image's size in pixels.
    fn size(&self) -> (u32, u32) {
        SIZE
    }
}

/// A plotters error as an anyhow one.
pub(crate) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e:?}")
}

/// Draws `figure` into a PNG and an SVG and writes `stem.png` and `stem.svg`.
pub(crate) fn render(stem: &Path, figure: &impl Figure) -> Result<()> {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // A valid TrueType file compiled in; the figure tests draw text with it.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let size = figure.size();
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        figure.draw(&root)?;
        root.present().map_err(err)?;
    }
    let image = RgbImage::from_raw(size.0, size.1, pixels).ok_or_else(|| anyhow!("PNG buffer"))?;
    grid::save_png(&image, &suffixed(stem, "png"))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        figure.draw(&root)?;
        root.present().map_err(err)?;
    }
    write_atomic(&suffixed(stem, "svg"), svg.as_bytes())?;
    Ok(())
}

/// `stem` with `.ext` appended (not replacing a dot in the stem, as in `fig5_lambda2_0.3`).
fn suffixed(stem: &Path, ext: &str) -> std::path::PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    name.into()
}

/// A cartesian chart with title, labelled mesh and the usual margins.
pub(crate) fn chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    axes: &Axes,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(&axes.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(axes.x_range.clone(), axes.y_range.clone())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(&axes.x)
        .y_desc(&axes.y)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// Draws the legend of `chart` at `position`.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// A legend swatch: a short line in `colour`.
pub(crate) fn swatch(colour: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_hold_every_value_and_densities_integrate_to_one() {
        let values = [0.0, 0.5, 1.0, 1.0, 2.0];
        let bins = Bins::spanning(&[&values], 4);
        let d = bins.density(Data::Values(&values));
        assert!((d.iter().sum::<f64>() * bins.width - 1.0).abs() < 1e-12);
        let ints = Bins::integers(3);
        let v = [0.0, 3.0, 3.0, 1.0];
        assert_eq!(ints.density(Data::Values(&v)), vec![0.25, 0.25, 0.0, 0.5]);
        assert_eq!(
            ints.density(Data::Counts(&[1, 1, 0, 2])),
            vec![0.25, 0.25, 0.0, 0.5]
        );
    }

    #[test]
    fn every_chart_writes_a_png_and_an_svg_with_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let axes = Axes {
            title: "A title".into(),
            x: "false-positive rate".into(),
            y: "true-positive rate".into(),
            x_range: 0.0..1.0,
            y_range: 0.0..1.0,
        };
        let series = [Series {
            name: "UMCD".into(),
            colour: PALETTE[0],
            points: vec![(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)],
        }];
        let stem = dir.path().join("roc");
        lines(&stem, &axes, &series, true, SeriesLabelPosition::LowerRight).unwrap();
        let values = [1.0, 2.0, 2.5];
        let samples = [Sample {
            name: "benign".into(),
            colour: PALETTE[1],
            data: Data::Values(&values),
        }];
        let hist = dir.path().join("hist");
        let thresholds = [("threshold".to_string(), 2.2)];
        let bins = Bins::spanning(&[&values], 10);
        histogram(&hist, "C1", "bits", bins, &samples, None, &thresholds).unwrap();
        let bars = dir.path().join("bars");
        let groups = ["no AT".to_string(), "FreeAT".to_string()];
        let legend = [("benign".to_string(), PALETTE[2])];
        let (values, errors) = ([vec![0.8], vec![0.6]], [vec![0.0], vec![0.1]]);
        grouped_bars(&bars, &axes, &groups, &legend, &values, None).unwrap();
        let whiskers = dir.path().join("whiskers");
        grouped_bars(&whiskers, &axes, &groups, &legend, &values, Some(&errors)).unwrap();
        let count = |stem: &Path| {
            let svg = std::fs::read_to_string(suffixed(stem, "svg")).unwrap();
            svg.matches("<line").count() + svg.matches("<polyline").count()
        };
        assert!(
            count(&whiskers) > count(&bars),
            "the second group's ± 0.1 draws a whisker"
        );
        let dotted = dir.path().join("fig5_lambda2_0.3");
        lines(
            &dotted,
            &axes,
            &series,
            false,
            SeriesLabelPosition::UpperRight,
        )
        .unwrap();
        assert!(dir.path().join("fig5_lambda2_0.3.svg").is_file());
        for stem in [stem, hist, bars, dotted] {
            let png = image::open(suffixed(&stem, "png")).unwrap().to_rgb8();
            assert_eq!(png.dimensions(), SIZE);
            let dark = png.pixels().filter(|p| p.0.iter().all(|&c| c < 60)).count();
            assert!(dark > 500, "{}: axes and text are drawn", stem.display());
            let svg = std::fs::read_to_string(suffixed(&stem, "svg")).unwrap();
            assert!(svg.contains("<svg") && svg.contains("<text"), "{svg:.200}");
        }
        let svg = std::fs::read_to_string(dir.path().join("roc.svg")).unwrap();
        assert!(svg.contains("A title") && svg.contains("UMCD") && svg.contains("false-positive"));
    }
}
