//! Tests of the grouped bar chart's label layout: wrapping, staggering and the widened
//! chart, read back from the SVG.

use super::super::{PALETTE, SIZE, suffixed};
use super::*;

#[test]
fn crowded_labels_stay_inside_a_widened_chart_without_overlapping() {
    let dir = tempfile::tempdir().unwrap();
    let axes = Axes {
        title: "A title".into(),
        x: "training".into(),
        y: "mAP".into(),
        x_range: 0.0..1.0,
        y_range: 0.0..1.0,
    };
    let legend = [("benign".to_string(), PALETTE[2])];
    // Twelve long labels do not fit side by side in the usual width: the chart widens, the
    // labels wrap (or, with a single over-long word, also stagger); every word is still
    // drawn, inside the image, and no two label lines on the same baseline overlap (widths
    // estimated as the chart does).
    let spaced: Vec<String> = (0..12)
        .map(|i| format!("method-{i} scratch-{i} seeds-{i}"))
        .collect();
    let unbroken: Vec<String> = (0..12)
        .map(|i| format!("a-single-long-method-name-{i}"))
        .collect();
    for (name, crowded) in [("wrapped", spaced), ("staggered", unbroken)] {
        let many = dir.path().join(name);
        grouped_bars(&many, &axes, &crowded, &legend, &vec![vec![0.5]; 12], None).unwrap();
        let svg = std::fs::read_to_string(suffixed(&many, "svg")).unwrap();
        let width = image::open(suffixed(&many, "png")).unwrap().width();
        assert!(width > SIZE.0, "{name}: {width} px wide");
        let words: Vec<&str> = crowded.iter().flat_map(|g| g.split(' ')).collect();
        // (baseline, left, right, text) of every drawn label line.
        let spans: Vec<(i64, f64, f64, &str)> = svg
            .split("<text")
            .skip(1)
            .filter_map(|chunk| {
                let (tag, rest) = chunk.split_once('>')?;
                let text = rest.split("</text>").next()?.trim();
                if text.is_empty() || !text.split(' ').all(|w| words.contains(&w)) {
                    return None;
                }
                let attr = |key: &str| -> f64 {
                    let at = tag.find(&format!(" {key}=\"")).unwrap() + key.len() + 3;
                    tag[at..].split('"').next().unwrap().parse().unwrap()
                };
                let half = text.chars().count() as f64 * 15.0 / 1.24 * 0.6 / 2.0;
                Some((attr("y") as i64, attr("x") - half, attr("x") + half, text))
            })
            .collect();
        for w in &words {
            let drawn = spans.iter().any(|s| s.3.split(' ').any(|x| x == *w));
            assert!(drawn, "{name}: {w} is not drawn");
        }
        // At the widened share each spaced label wraps onto three lines with no need to
        // stagger; the unbroken ones, about 2.5 shares wide, need at least three rows.
        let mut baselines: Vec<i64> = spans.iter().map(|s| s.0).collect();
        baselines.sort_unstable();
        baselines.dedup();
        let rows = baselines.len();
        let expected = if name == "wrapped" {
            rows == 3
        } else {
            rows >= 3
        };
        assert!(expected, "{name}: baselines {baselines:?}");
        for (i, a) in spans.iter().enumerate() {
            assert!(
                a.1 >= 0.0 && a.2 <= f64::from(width),
                "{name}: {a:?} clipped"
            );
            for b in &spans[i + 1..] {
                let apart = a.0 != b.0 || a.2 <= b.1 || b.2 <= a.1;
                assert!(apart, "{name}: {a:?} overlaps {b:?}");
            }
        }
    }
}

#[test]
fn labels_wrap_at_spaces_outside_parentheses() {
    let label = "pgd-at (scratch) (3 seeds)";
    assert_eq!(wrap(label, text_px(label)), vec![label.to_string()]);
    let narrow = wrap(label, text_px("(scratch)"));
    assert_eq!(narrow, ["pgd-at", "(scratch)", "(3 seeds)"]);
    let two = wrap(label, text_px("pgd-at (scratch)"));
    assert_eq!(two, ["pgd-at (scratch)", "(3 seeds)"]);
    // A word wider than the line keeps a line of its own.
    assert_eq!(wrap("freeat-m4 x", 1.0), ["freeat-m4", "x"]);
}

#[test]
fn label_rows_stagger_only_when_neighbours_would_touch() {
    let centres = [100.0, 180.0, 260.0, 340.0];
    assert_eq!(label_rows(&centres, &[70.0; 4], 500.0), 1);
    assert_eq!(label_rows(&centres, &[100.0; 4], 500.0), 2);
    // Pushed inside the image, the last label would cover its neighbour in the same row.
    assert_eq!(label_rows(&centres, &[150.0; 4], 400.0), 3);
}
