//! The replay's figure: unallocated GPU % against arrived GPU demand, all levels on the left,
//! the saturated end (where the policies differ) on the right, the paper's headline level
//! marked. Text is drawn with a font embedded in the binary, so no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::report::Report;

static FONT: Once = Once::new();

/// Registers the embedded font as "sans-serif" (plotters' `ab_glyph` backend has no other).
pub fn register() {
    FONT.call_once(|| {
        // The font is a checked-in constant of a published crate: failure is a build defect,
        // and the plot then has no text rather than no plot.
        let _ = register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

const COLORS: [RGBColor; 6] = [
    RGBColor(150, 150, 150),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    register();
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let c = &report.context;
    let title = format!(
        "openb: {} nodes, {} GPUs, {} seeds; unallocated GPU % vs arrived GPU demand",
        c.nodes,
        c.gpus,
        c.seeds.len()
    );
    let root = root
        .titled(&title, ("sans-serif", 24))
        .map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(640);
    panel(report, &left, 0.0..130.0, 0.0..100.0, "all arrival levels")?;
    panel(report, &right, 85.0..130.0, 0.0..20.0, "saturation (zoom)")?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn panel(
    report: &Report,
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    caption: &str,
) -> anyhow::Result<()> {
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(x.clone(), y.clone())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("arrived GPU demand, % of capacity")
        .y_desc("unallocated GPU, %")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    // The paper's headline level.
    chart
        .draw_series(LineSeries::new(
            [(100.0, y.start), (100.0, y.end)],
            BLACK.mix(0.3).stroke_width(1),
        ))
        .map_err(err)?;
    for (i, p) in report.policies.iter().enumerate() {
        let col = color(i);
        let points: Vec<(f64, f64)> = p
            .unallocated_mean
            .iter()
            .enumerate()
            .map(|(level, &u)| (level as f64, u))
            .filter(|(l, u)| u.is_finite() && x.contains(l))
            .collect();
        let label = format!(
            "{}: {:.2} ± {:.2} at 100%{}",
            p.policy,
            p.unallocated_at_100_mean,
            p.unallocated_at_100_sd,
            p.published
                .map_or(String::new(), |v| format!(" (paper {v:.2})"))
        );
        chart
            .draw_series(LineSeries::new(points, col.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], col.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)?;
    Ok(())
}
