//! SVG charts for `report.html`, drawn with plotters' SVG backend into strings.
//!
//! plotters is built without its `ttf` feature (no font-kit, no fontconfig): text goes into the
//! SVG as `<text>` elements and the browser draws it, so the charts need no system library.
//! These functions only draw what they are given; choosing the data is `html`'s job.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::full_palette::{BLUE_700, GREEN_700, GREY_200, ORANGE_700, PURPLE_500};
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 360;

/// Series colours, cycled.
const PALETTE: [RGBColor; 8] = [
    BLUE_700,
    ORANGE_700,
    GREEN_700,
    RED,
    PURPLE_500,
    RGBColor(0x00, 0x83, 0x8f),
    RGBColor(0x6d, 0x4c, 0x41),
    RGBColor(0x54, 0x6e, 0x7a),
];

/// Warm-up shading.
const SHADE: RGBColor = RGBColor(0xff, 0xe0, 0xb2);

/// The legend sits in its own strip right of the plot, so it never hides a line.
const LEGEND_WIDTH: u32 = 210;

/// What a legend entry shows next to its name.
enum Swatch {
    Line(RGBColor),
    Area(RGBColor),
}

fn legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(String, Swatch)],
) -> anyhow::Result<()> {
    for (i, (name, swatch)) in entries.iter().enumerate() {
        let y = 56 + 20 * i as i32;
        match swatch {
            Swatch::Line(c) => area.draw(&PathElement::new([(4, y), (24, y)], c.stroke_width(3))),
            Swatch::Area(c) => area.draw(&Rectangle::new([(4, y - 6), (24, y + 6)], c.filled())),
        }
        .map_err(err)?;
        let style =
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(name.clone(), (30, y), style))
            .map_err(err)?;
    }
    Ok(())
}

pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One named line.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart over x (time or rate).
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub series: Vec<Series>,
    /// x ranges drawn shaded and labelled (warm-up intervals, excluded from the summary).
    pub shaded: Vec<(f64, f64)>,
    pub shaded_label: &'a str,
    /// Draw a marker at every point (few points: ramp steps, phases).
    pub markers: bool,
    /// Start the x axis at zero (time axes); rate axes fit the data.
    pub x_from_zero: bool,
    /// Faults on a time axis: injection and heal (the heal absent while it lasted to the end),
    /// drawn as a tinted span between a solid and a dashed line.
    pub faults: Vec<FaultMark>,
}

/// One fault on a time chart, in the x axis's unit.
#[derive(Debug, Clone)]
pub struct FaultMark {
    pub at: f64,
    pub heal: Option<f64>,
}

/// Fault spans and lines.
const FAULT_TINT: RGBColor = RGBColor(0xff, 0xcd, 0xd2);
const FAULT_LINE: RGBColor = RGBColor(0xc6, 0x28, 0x28);

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("cannot draw chart: {e}")
}

/// Bounds that always span something (a flat series or a single point still gets an axis),
/// with a little headroom above.
fn bounds(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        let span = (hi.abs() * 0.2).max(1.0);
        lo -= span;
        hi += span;
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    (lo, hi + (hi - lo) * 0.05)
}

/// Tick labels without noise: whole numbers for large ranges, a few decimals for small ones.
fn tick(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn root(buf: &mut String, height: u32) -> DrawingArea<SVGBackend<'_>, Shift> {
    let root = SVGBackend::with_string(buf, (WIDTH, height)).into_drawing_area();
    let _ = root.fill(&WHITE);
    root
}

/// Draws a line chart; y starts at zero.
pub fn line_chart(c: &LineChart) -> anyhow::Result<String> {
    let mut buf = String::new();
    {
        let root = root(&mut buf, HEIGHT);
        let (plot, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let all = || c.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = bounds(all().map(|p| p.0), c.x_from_zero);
        // x needs no headroom: the last point sits on the right edge.
        let x1 = x1 - (x1 - x0) * 0.05 / 1.05;
        let (y0, y1) = bounds(all().map(|p| p.1), true);
        let mut chart = ChartBuilder::on(&plot)
            .caption(c.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(c.x_desc)
            .y_desc(c.y_desc)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(GREY_200)
            .draw()
            .map_err(err)?;
        let mut entries = Vec::new();
        if !c.shaded.is_empty() {
            entries.push((c.shaded_label.to_string(), Swatch::Area(SHADE)));
        }
        for &(a, b) in &c.shaded {
            let rect = Rectangle::new([(a, y0), (b, y1)], SHADE.filled());
            chart.draw_series(std::iter::once(rect)).map_err(err)?;
        }
        if !c.faults.is_empty() {
            entries.push((
                "fault (injected → healed)".to_string(),
                Swatch::Area(FAULT_TINT),
            ));
        }
        for f in &c.faults {
            let end = f.heal.unwrap_or(x1).min(x1);
            if end > f.at {
                let span = Rectangle::new([(f.at, y0), (end, y1)], FAULT_TINT.mix(0.5).filled());
                chart.draw_series(std::iter::once(span)).map_err(err)?;
            }
            let line = PathElement::new([(f.at, y0), (f.at, y1)], FAULT_LINE.stroke_width(2));
            chart.draw_series(std::iter::once(line)).map_err(err)?;
            if let Some(h) = f.heal.filter(|h| *h <= x1) {
                // Dashes by hand: plotters' dashed element needs a feature kbench leaves off.
                let step = (y1 - y0) / 40.0;
                let dashes = (0..40).step_by(2).map(|i| {
                    let a = y0 + step * i as f64;
                    PathElement::new([(h, a), (h, a + step)], FAULT_LINE.stroke_width(2))
                });
                chart.draw_series(dashes).map_err(err)?;
            }
        }
        for (i, s) in c.series.iter().enumerate() {
            let col = colour(i);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    col.stroke_width(2),
                ))
                .map_err(err)?;
            entries.push((s.name.clone(), Swatch::Line(col)));
            if c.markers || s.points.len() == 1 {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, col.filled())))
                    .map_err(err)?;
            }
        }
        legend(&side, &entries)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// The percentile label of x = 1/(1-q): 1 → "0%", 10 → "90%", 1000 → "99.9%".
pub fn percentile_label(x: f64) -> String {
    let pct = 100.0 * (1.0 - 1.0 / x);
    if pct < 1.0 {
        return "0%".into();
    }
    // Enough decimals to tell 99.9 from 99.99: one per power of ten past 100.
    let decimals = (x.log10() - 2.0).ceil().max(0.0) as usize;
    format!("{pct:.decimals$}%")
}

/// The HDR percentile spectrum: latency (ms, y) against x = 1/(1-q) on a log axis.
pub fn spectrum_chart(title: &str, series: &[Series]) -> anyhow::Result<String> {
    let mut buf = String::new();
    {
        let root = root(&mut buf, HEIGHT);
        let (plot, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let all = || series.iter().flat_map(|s| s.points.iter());
        let x1 = all().map(|p| p.0).fold(10.0, f64::max) * 1.2;
        let (y0, y1) = bounds(all().map(|p| p.1), true);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((1.0..x1).log_scale(), y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("percentile (log scale of 1/(1-q))")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(GREY_200)
            .draw()
            .map_err(err)?;
        let mut entries = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let col = colour(i);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    col.stroke_width(2),
                ))
                .map_err(err)?;
            entries.push((s.name.clone(), Swatch::Line(col)));
        }
        legend(&side, &entries)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// Horizontal bars, one per labelled cell (matrix cells or phases side by side).
pub fn bar_chart(title: &str, x_desc: &str, bars: &[(String, f64)]) -> anyhow::Result<String> {
    let mut buf = String::new();
    {
        let n = bars.len().max(1);
        // Bars keep a readable thickness: the chart grows with the number of cells.
        let root = root(&mut buf, (110 + 36 * n as u32).min(1200));
        let (_, x1) = bounds(bars.iter().map(|b| b.1), true);
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4);
        // The browser draws the text: estimate ~7 px per character of a 13 px sans-serif font.
        let label_width = (longest as u32 * 7 + 16).clamp(60, WIDTH / 2);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0.0..x1, (0..n).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .x_label_formatter(&|v| tick(*v))
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .light_line_style(GREY_200)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (b.1, SegmentValue::Exact(i + 1)),
                    ],
                    colour(0).filled(),
                );
                r.set_margin(6, 6, 0, 0);
                r
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_show_enough_nines() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(10000.0), "99.99%");
    }

    #[test]
    fn a_single_point_still_draws() {
        let svg = line_chart(&LineChart {
            title: "t",
            x_desc: "x",
            y_desc: "y",
            series: vec![Series {
                name: "s".into(),
                points: vec![(5.0, 5.0)],
            }],
            shaded: vec![],
            shaded_label: "",
            markers: true,
            x_from_zero: false,
            faults: vec![FaultMark {
                at: 4.0,
                heal: Some(6.0),
            }],
        })
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<circle"), "{svg}");
    }
}
