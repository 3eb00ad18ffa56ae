//! SVG charts of several runs side by side (plotters).
//!
//! Three pictures tell the comparison at a glance:
//! - p99 latency over time, one line per mode, faults as vertical lines;
//! - errors over time, the same way (a kill shows as a spike, then recovery);
//! - bars of sessions lost, stale reads and lost updates per mode.
//!
//! And one for a study across cluster sizes ([`size_chart`]): a figure
//! against the number of nodes, one line per mode, so a cost that grows
//! with N rises and a flat one stays flat, and where two lines cross is
//! where one way becomes cheaper than the other.

use std::path::Path;

use plotters::prelude::*;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{LoadReport, Point};

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

type ChartResult = Result<(), Box<dyn std::error::Error>>;

/// The series' legend, the same on every chart: top right, on a light box.
fn legend<'a, CT: CoordTranslate>(chart: &mut ChartContext<'a, SVGBackend<'a>, CT>) -> ChartResult {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}
/// A named figure of a run, for the bar chart.
type Figure = (&'static str, fn(&LoadReport) -> u64);

/// How the y axis grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// For latency: one slow mode (seconds) and fast ones (sub-ms) on one
    /// chart stay readable.
    Log,
}

/// A value over time per run: `pick` takes a point to its y value.
/// Intervals without a request are left out (a line dropping to 0 there
/// would be a measurement of nothing).
pub fn timeline_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    runs: &[LoadReport],
    scale: Scale,
    pick: impl Fn(&Point) -> f64,
) -> ChartResult {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = runs
        .iter()
        .flat_map(|r| r.timeline.last().map(|p| p.t_s + 1.0))
        .fold(1.0_f64, f64::max);
    let values = || {
        runs.iter()
            .flat_map(|r| r.timeline.iter().filter(|p| p.requests > 0).map(&pick))
    };
    let y_max = values().fold(0.0_f64, f64::max).max(1e-3);
    match scale {
        Scale::Linear => draw_timeline(
            &root,
            title,
            y_label,
            runs,
            &pick,
            x_max,
            0.0..y_max * 1.15,
            (0.0, y_max * 1.15),
        ),
        Scale::Log => {
            let lo = values()
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min)
                .min(y_max)
                * 0.7;
            let hi = y_max * 2.0;
            draw_timeline(
                &root,
                title,
                y_label,
                runs,
                &|p: &Point| pick(p).max(lo),
                x_max,
                (lo..hi).log_scale(),
                (lo, hi),
            )
        }
    }?;
    root.present()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_timeline<Y>(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    runs: &[LoadReport],
    pick: &dyn Fn(&Point) -> f64,
    x_max: f64,
    y_range: Y,
    (y_lo, y_hi): (f64, f64),
) -> ChartResult
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, y_range)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, run) in runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                run.timeline
                    .iter()
                    .filter(|p| p.requests > 0)
                    .map(|p| (p.t_s, pick(p))),
                color.stroke_width(2),
            ))?
            .label(run.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    // Faults: a vertical line per distinct mark.
    let mut seen = Vec::new();
    for m in runs.iter().flat_map(|r| r.marks.iter()) {
        if seen
            .iter()
            .any(|(t, l): &(f64, String)| (*t - m.at_s).abs() < 0.5 && *l == m.label)
        {
            continue;
        }
        seen.push((m.at_s, m.label.clone()));
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(m.at_s, y_lo), (m.at_s, y_hi)],
            BLACK.mix(0.5).stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            m.label.clone(),
            (m.at_s, y_hi),
            ("sans-serif", 13).into_font().color(&BLACK),
        )))?;
    }
    legend(&mut chart)?;
    Ok(())
}

/// Grouped bars: for each run, sessions lost, stale reads, lost updates.
pub fn losses_chart(path: &Path, runs: &[LoadReport]) -> ChartResult {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let series: [Figure; 3] = [
        ("sessions lost", |r| r.sessions_lost),
        ("stale reads", |r| r.stale_reads),
        ("lost updates", |r| r.lost_updates),
    ];
    let y_max = runs
        .iter()
        .flat_map(|r| series.iter().map(move |(_, f)| f(r)))
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.15;
    let n = runs.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("What each mode lost", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..n, 0.0..y_max)?;
    let labels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(runs.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.26 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("count")
        .draw()?;
    for (k, (name, f)) in series.iter().enumerate() {
        let color = PALETTE[(k + 3) % PALETTE.len()];
        let w = 0.8 / series.len() as f64;
        chart
            .draw_series(runs.iter().enumerate().map(|(i, r)| {
                let x0 = i as f64 + 0.1 + k as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.9, f(r) as f64)], color.filled())
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        // The count over each bar: a 3 next to a 300 is still readable.
        chart.draw_series(runs.iter().enumerate().map(|(i, r)| {
            let x0 = i as f64 + 0.1 + k as f64 * w;
            Text::new(
                f(r).to_string(),
                (x0 + w * 0.45, f(r) as f64 + y_max * 0.01),
                ("sans-serif", 12)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

/// One line of a [`size_chart`]: a label and its (nodes, value) points.
pub type SizeSeries = (String, Vec<(f64, f64)>);

/// A figure against the cluster size: x is the number of nodes, one line
/// (with a dot per measured size) per series.
pub fn size_chart(path: &Path, title: &str, y_label: &str, series: &[SizeSeries]) -> ChartResult {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points().map(|p| p.0).fold(1.0_f64, f64::max);
    let x_min = points().map(|p| p.0).fold(x_max, f64::min);
    let y_max = points().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-3) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((x_min - 0.5).max(0.0)..x_max + 0.5, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("nodes")
        .y_desc(y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadConfig;
    use crate::report::{Mark, ServerCosts};
    use crate::stats::Recorder;
    use std::time::Duration;

    fn report(label: &str, lost: u64) -> LoadReport {
        let mut rec = Recorder::new(Duration::from_secs(1));
        for t in 0..5 {
            rec.answered(
                Duration::from_secs(t),
                Duration::from_millis(1 + t),
                Some("node-1"),
            );
        }
        let mut r = LoadReport::build(
            label,
            &LoadConfig::default(),
            rec,
            &[],
            Duration::from_secs(5),
            vec![Mark {
                at_s: 2.0,
                label: "kill node-1".into(),
            }],
            ServerCosts::default(),
        );
        r.sessions_lost = lost;
        r
    }

    #[test]
    fn charts_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("sl-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let runs = [report("local", 9), report("sticky", 3)];
        let p = dir.join("latency.svg");
        timeline_chart(&p, "p99 latency", "ms", &runs, Scale::Log, |p| p.p99_ms).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("kill node-1") && svg.contains("sticky"));
        let b = dir.join("losses.svg");
        losses_chart(&b, &runs).unwrap();
        let svg = std::fs::read_to_string(&b).unwrap();
        assert!(svg.contains("sessions lost") && svg.contains("<rect"));
        assert!(
            svg.lines().any(|l| l.trim() == "9"),
            "the count over the bar"
        );
        let e = dir.join("errors.svg");
        timeline_chart(&e, "errors", "errors", &runs, Scale::Linear, |p| {
            p.errors as f64
        })
        .unwrap();
        assert!(std::fs::read_to_string(&e).unwrap().contains("local"));
        let s = dir.join("bytes.svg");
        let series = [
            (
                "sticky-replicated".to_string(),
                vec![(2.0, 300.0), (4.0, 900.0)],
            ),
            ("redis".to_string(), vec![(2.0, 0.0), (4.0, 0.0)]),
        ];
        size_chart(&s, "bytes per write", "bytes", &series).unwrap();
        let svg = std::fs::read_to_string(&s).unwrap();
        assert!(
            svg.contains("sticky-replicated") && svg.contains("nodes") && svg.contains("<circle")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
