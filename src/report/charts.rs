//! The report's charts as inline SVG, drawn with `plotters` (SVG backend only;
//! text is left to the browser's fonts).
//!
//! A funnel plot ("Making Data Count"): each practice's prevalence against
//! its population size, the network's prevalence p0 as a line, and control
//! limits p0 ± z·√(p0(1−p0)/n) at z = 1.96 (95%) and z = 3.09 (99.8%).
//! Every chart is an `<svg role="img">` with a `<title>` and `<desc>` and is
//! paired by the page with a table of the same figures: colour is never the
//! only carrier, as markers differ by position too.

use plotters::prelude::*;

/// z of the 95% control limits.
pub const Z95: f64 = 1.96;
/// z of the 99.8% control limits.
pub const Z998: f64 = 3.09;

/// A practice drawn on a funnel plot.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelPoint {
    pub practice: String,
    /// People in the population (as published: disclosure-controlled).
    pub n: f64,
    /// Prevalence, percent.
    pub pct: f64,
    /// The published funnel position (computed from exact counts).
    pub position: String,
}

/// The control limits around `p0` (a proportion) for a population of `n`,
/// as percentages clamped to 0–100.
pub fn limits(p0: f64, n: f64, z: f64) -> (f64, f64) {
    let half = z * (p0 * (1.0 - p0) / n).sqrt();
    (
        (100.0 * (p0 - half)).clamp(0.0, 100.0),
        (100.0 * (p0 + half)).clamp(0.0, 100.0),
    )
}

/// How a position is drawn: outside 99.8% (cross), outside 95% (triangle),
/// within (circle).
fn marker_of(position: &str) -> (RGBColor, u8) {
    match position {
        "above_99_8" | "below_99_8" => (RGBColor(0xb0, 0x00, 0x20), 2),
        "above_95" | "below_95" => (RGBColor(0xc0, 0x60, 0x00), 1),
        _ => (RGBColor(0x1f, 0x4e, 0x9a), 0),
    }
}

/// The SVG of a funnel plot; `id` prefixes the ids of its title and
/// description. `p0_pct` is the network's prevalence in percent.
pub fn funnel_svg(
    id: &str,
    title: &str,
    p0_pct: f64,
    points: &[FunnelPoint],
) -> Result<String, String> {
    let p0 = p0_pct / 100.0;
    let max_n = points.iter().map(|p| p.n).fold(10.0_f64, f64::max) * 1.15;
    let min_n = (points.iter().map(|p| p.n).fold(max_n, f64::min) * 0.3).max(1.0);
    let max_pct = points.iter().map(|p| p.pct).fold(p0_pct, f64::max);
    let y_hi = (limits(p0, min_n, Z998).1.max(max_pct) * 1.1 + 0.5).min(100.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 440)).into_drawing_area();
        let e = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_n, 0.0..y_hi)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("people in the population (n)")
            .y_desc("prevalence (%)")
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE)
            .draw()
            .map_err(|x| e(&x))?;
        let steps = 200;
        let curve = |z: f64, upper: bool| -> Vec<(f64, f64)> {
            (0..=steps)
                .map(|i| min_n + (max_n - min_n) * i as f64 / steps as f64)
                .map(|n| {
                    let (lo, hi) = limits(p0, n, z);
                    (n, if upper { hi } else { lo }.min(y_hi))
                })
                .collect()
        };
        let grey = RGBColor(0x55, 0x55, 0x55);
        chart
            .draw_series(LineSeries::new(
                [(0.0, p0_pct), (max_n, p0_pct)],
                BLACK.stroke_width(2),
            ))
            .map_err(|x| e(&x))?
            .label(format!("network p0 = {p0_pct:.1}%"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        for (z, label, style) in [
            (Z95, "95% limits (z = 1.96)", grey.stroke_width(1)),
            (Z998, "99.8% limits (z = 3.09)", grey.stroke_width(3)),
        ] {
            for upper in [true, false] {
                let series = chart
                    .draw_series(DashedLineSeries::new(curve(z, upper), 6, 4, style))
                    .map_err(|x| e(&x))?;
                if upper {
                    series
                        .label(label)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                }
            }
        }
        for p in points {
            let (colour, shape) = marker_of(&p.position);
            let at = (p.n, p.pct.min(y_hi));
            let label = Text::new(p.practice.clone(), (7, -14), ("sans-serif", 12));
            let drawn = match shape {
                2 => chart.draw_series(std::iter::once(
                    EmptyElement::at(at) + Cross::new((0, 0), 6, colour.stroke_width(3)) + label,
                )),
                1 => chart.draw_series(std::iter::once(
                    EmptyElement::at(at) + TriangleMarker::new((0, 0), 7, colour.filled()) + label,
                )),
                _ => chart.draw_series(std::iter::once(
                    EmptyElement::at(at) + Circle::new((0, 0), 5, colour.filled()) + label,
                )),
            };
            drawn.map_err(|x| e(&x))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
    }
    Ok(accessible(&svg, id, title, &describe(p0_pct, points)))
}

/// A sentence for the chart's `<desc>`: what is plotted and where each
/// practice lies.
fn describe(p0_pct: f64, points: &[FunnelPoint]) -> String {
    let each: Vec<String> = points
        .iter()
        .map(|p| {
            format!(
                "{} n={} at {:.1}% ({})",
                p.practice,
                p.n,
                p.pct,
                p.position.replace('_', " ")
            )
        })
        .collect();
    format!(
        "Funnel plot of practice prevalence against population size; network prevalence {p0_pct:.1}% with 95% and 99.8% control limits. {}",
        if each.is_empty() {
            "No practice is plotted.".to_string()
        } else {
            each.join("; ") + "."
        }
    )
}

/// Gives plotters' `<svg>` a role, a title and a description.
fn accessible(svg: &str, id: &str, title: &str, desc: &str) -> String {
    use super::html::escape;
    let id = escape(id);
    let open_end = svg.find('>').map_or(0, |i| i + 1);
    let (open, rest) = svg.split_at(open_end);
    let open = open.replacen(
        "<svg ",
        &format!(
            "<svg role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" class=\"chart\" id=\"{id}\" "
        ),
        1,
    );
    format!(
        "{open}\n<title id=\"{id}-title\">{}</title>\n<desc id=\"{id}-desc\">{}</desc>{rest}",
        escape(title),
        escape(desc)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Limits worked by hand: p0 = 0.1, n = 100 → sd = 0.03.
    #[test]
    fn control_limits_are_p0_plus_minus_z_sd() {
        let cases = [
            (0.1, 100.0, Z95, 10.0 - 5.88, 10.0 + 5.88),
            (0.1, 100.0, Z998, 10.0 - 9.27, 10.0 + 9.27),
            // Clamped at 0%: sd = 0.0995 at n = 1.
            (0.01, 1.0, Z95, 0.0, 100.0 * (0.01 + 1.96 * 0.0995)),
        ];
        for (p0, n, z, lo, hi) in cases {
            let (l, h) = limits(p0, n, z);
            assert!((l - lo).abs() < 0.01, "{p0} {n} {z}: low {l}, want {lo}");
            assert!((h - hi).abs() < 0.01, "{p0} {n} {z}: high {h}, want {hi}");
        }
    }

    #[test]
    fn the_svg_has_a_role_a_title_and_a_description_and_escapes_them() {
        let points = [
            FunnelPoint {
                practice: "A81001".into(),
                n: 120.0,
                pct: 8.0,
                position: "within".into(),
            },
            FunnelPoint {
                practice: "<B&>".into(),
                n: 300.0,
                pct: 25.0,
                position: "above_99_8".into(),
            },
        ];
        let svg = funnel_svg("f1", "DM_REG <funnel>", 10.0, &points).unwrap();
        assert!(svg.starts_with("<svg role=\"img\" aria-labelledby=\"f1-title f1-desc\""));
        assert!(svg.contains("<title id=\"f1-title\">DM_REG &lt;funnel&gt;</title>"));
        assert!(svg.contains("A81001 n=120 at 8.0% (within)"));
        assert!(svg.contains("&lt;B&amp;&gt;"), "practice label escaped");
        assert!(!svg.contains("<B&>"));
        assert!(svg.contains("network p0 = 10.0%"));
    }

    #[test]
    fn a_funnel_without_points_still_draws() {
        let svg = funnel_svg("f2", "empty", 0.0, &[]).unwrap();
        assert!(svg.contains("No practice is plotted."));
    }
}
