//! SVG plots with plotters: cumulative distributions of latencies (or of event times).

use std::path::Path;

use plotters::prelude::*;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

/// Points of the empirical CDF of `samples`: (value, fraction at or below it), thinned to at
/// most ~2000 points.
pub fn cdf_points(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let step = (n / 2000).max(1);
    let mut pts: Vec<(f64, f64)> = v
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == n - 1)
        .map(|(i, x)| (*x, (i + 1) as f64 / n as f64))
        .collect();
    pts.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    pts
}

/// Writes a CDF plot of each `(label, samples)` series; `log_x` for latencies spanning
/// decades. Returns an error only if drawing fails.
pub fn cdf(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(String, Vec<f64>)],
    log_x: bool,
) -> anyhow::Result<()> {
    let all: Vec<f64> = series
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .filter(|x| x.is_finite())
        .collect();
    if all.is_empty() {
        anyhow::bail!("no samples for {title}");
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let draw = |pts: Vec<Vec<(f64, f64)>>| -> anyhow::Result<()> {
        if log_x {
            let lo = lo.max(0.01);
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d((lo..hi.max(lo * 1.01)).log_scale(), 0f64..1.0)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc("fraction ≤ x")
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for (i, p) in pts.into_iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                let p: Vec<(f64, f64)> = p.into_iter().map(|(x, y)| (x.max(lo), y)).collect();
                chart
                    .draw_series(LineSeries::new(p, c.stroke_width(2)))
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .label(series[i].0.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        } else {
            let lo = lo.min(0.0);
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(lo..hi.max(lo + 1e-9), 0f64..1.0)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc("fraction ≤ x")
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for (i, p) in pts.into_iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(p, c.stroke_width(2)))
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .label(series[i].0.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    };
    draw(series.iter().map(|(_, s)| cdf_points(s)).collect())?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CDF ends at 1 on the maximum and is non-decreasing.
    #[test]
    fn cdf_points_shape() {
        let p = cdf_points(&[3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!(p, vec![(1.0, 1.0 / 3.0), (2.0, 2.0 / 3.0), (3.0, 1.0)]);
        let many: Vec<f64> = (0..10_000).map(f64::from).collect();
        let p = cdf_points(&many);
        assert!(p.len() <= 2001);
        assert_eq!(p.last(), Some(&(9999.0, 1.0)));
        assert!(p.windows(2).all(|w| w[0].1 <= w[1].1));
    }
}
