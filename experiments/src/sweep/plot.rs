//! Figures of a sweep (plotters): metric against NFE (or steps) on log-log axes, one line per
//! solver, the Monte Carlo floor as a band; and the fitted slopes of those lines above the floor.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::output::Row;

/// Fonts tried for text in the figures (plotters draws text itself, with ab_glyph).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

pub type Lines = BTreeMap<String, Vec<(f64, f64)>>;

/// A solver line's label.
pub fn label(solver: &str, space: &str) -> String {
    format!("{solver} ({space})")
}

/// Least-squares slope of log(y) against log(x) over the four largest-x points with y above
/// `min_y` (at least 3 such points): the asymptotic regime of a convergence curve.
pub fn tail_slope(pts: &[(f64, f64)], min_y: f64) -> Option<f64> {
    let kept: Vec<(f64, f64)> = pts.iter().filter(|(_, v)| *v > min_y).map(|(x, y)| (x.ln(), y.ln())).collect();
    let used = &kept[kept.len().saturating_sub(4)..];
    if used.len() < 3 {
        return None;
    }
    let k = used.len() as f64;
    let (mx, my) = (used.iter().map(|p| p.0).sum::<f64>() / k, used.iter().map(|p| p.1).sum::<f64>() / k);
    let sxy: f64 = used.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = used.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    Some(sxy / sxx)
}
/// Per solver label: values by NFE (one per seed); and the floor's values.
type Raw = (BTreeMap<String, BTreeMap<usize, Vec<f64>>>, Vec<f64>);

/// The horizontal axis of a figure.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Model evaluations.
    Nfe,
    /// Steps of the grid.
    Steps,
}

/// Per (target, process): solver lines (x, mean over seeds) of `metric`, and the floor's mean and sd.
pub fn collect(rows: &[Row], metric: &str, x: XAxis) -> BTreeMap<(String, String), (Lines, f64, f64)> {
    let mut acc: BTreeMap<(String, String), Raw> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.metric == metric) {
        let e = acc.entry((r.target.clone(), r.process.clone())).or_default();
        if r.solver == "exact-floor" {
            e.1.push(r.value);
        } else {
            let at = if x == XAxis::Nfe { r.nfe } else { r.steps };
            e.0.entry(label(&r.solver, &r.space)).or_default().entry(at).or_default().push(r.value);
        }
    }
    acc.into_iter()
        .map(|(k, (lines, floor))| {
            let lines = lines
                .into_iter()
                .map(|(s, pts)| {
                    (s, pts.into_iter().map(|(nfe, v)| (nfe as f64, v.iter().sum::<f64>() / v.len() as f64)).collect())
                })
                .collect();
            let n = floor.len().max(1) as f64;
            let m = floor.iter().sum::<f64>() / n;
            let sd = (floor.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
            (k, (lines, m, sd))
        })
        .collect()
}

/// Least-squares slope of log(value) against log(NFE) per solver line over its four largest-NFE
/// points above 1e-9 and, when the metric has a floor, more than 3x above it (at least 3 points):
/// `target/process/solver (space)` -> slope (minus the order).
pub fn fitted_slopes(rows: &[Row], metric: &str) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for ((target, process), (lines, floor, _)) in collect(rows, metric, XAxis::Nfe) {
        for (solver, pts) in lines {
            if let Some(slope) = tail_slope(&pts, (3.0 * floor).max(1e-9)) {
                out.insert(
                    format!("{target}/{process}/{solver}"),
                    serde_json::json!((slope * 1000.0).round() / 1000.0),
                );
            }
        }
    }
    serde_json::Value::Object(out)
}

fn register_font() -> bool {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    lines: &Lines,
    floor: Option<(f64, f64)>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let xs: Vec<f64> = lines.values().flatten().map(|p| p.0).collect();
    let ys: Vec<f64> = lines.values().flatten().map(|p| p.1).chain(floor.map(|f| f.0)).filter(|v| *v > 0.0).collect();
    let (x0, x1) = (xs.iter().cloned().fold(f64::INFINITY, f64::min), xs.iter().cloned().fold(0.0, f64::max));
    let (y0, y1) = (ys.iter().cloned().fold(f64::INFINITY, f64::min), ys.iter().cloned().fold(0.0, f64::max));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 / 1.2..x1 * 1.2).log_scale(), (y0 / 1.5..y1 * 1.5).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(|e| err(&e))?;
    if let Some((m, sd)) = floor {
        let band = (m - 2.0 * sd).max(y0 / 1.5)..m + 2.0 * sd;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0 / 1.2, band.start), (x1 * 1.2, band.end)],
                BLACK.mix(0.12).filled(),
            )))
            .map_err(|e| err(&e))?
            .label("Monte Carlo floor (mean +- 2 sd)")
            .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 18, y + 4)], BLACK.mix(0.12).filled()));
    }
    for (i, (name, pts)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().cloned(), color.stroke_width(2)).point_size(3))
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(if floor.is_some() { SeriesLabelPosition::UpperRight } else { SeriesLabelPosition::LowerLeft })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

/// Draws one figure as PNG and SVG at `stem` + `.png` / `.svg` (temporary names, then rename: no half-written
/// figure is left behind) and returns the two paths.
pub fn draw_both(
    stem: &Path,
    title: &str,
    axes: (&str, &str),
    lines: &Lines,
    floor: Option<(f64, f64)>,
) -> Result<Vec<String>, String> {
    let with = |suffix: &str| {
        let mut s = stem.as_os_str().to_owned();
        s.push(suffix);
        std::path::PathBuf::from(s)
    };
    let (png, svg) = (with(".png"), with(".svg"));
    let (png_tmp, svg_tmp) = (with(".tmp.png"), with(".tmp.svg"));
    draw(BitMapBackend::new(&png_tmp, (900, 600)).into_drawing_area(), title, axes, lines, floor)?;
    draw(SVGBackend::new(&svg_tmp, (900, 600)).into_drawing_area(), title, axes, lines, floor)?;
    let mut paths = vec![];
    for (tmp, path) in [(&png_tmp, &png), (&svg_tmp, &svg)] {
        std::fs::rename(tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path.display().to_string());
    }
    Ok(paths)
}

/// Registers the font and creates `dir`; `false` (with a warning) when no font is available.
pub fn prepare(dir: &Path) -> Result<bool, String> {
    if !register_font() {
        eprintln!("warning: no DejaVu Sans font found ({}); figures skipped", FONTS.join(", "));
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(true)
}

/// Writes `{name}_{target}_{process}_{metric}.png` and `.svg` into `dir` for every (target, process);
/// returns the paths. Without a usable font no figure is drawn (the CSV still has everything).
pub fn draw_all(rows: &[Row], name: &str, dir: &Path) -> Result<Vec<String>, String> {
    if !prepare(dir)? {
        return Ok(vec![]);
    }
    let mut paths = vec![];
    let figures = [
        ("sliced_w2", "sliced W2 to exact samples", true),
        ("path_error", "mean distance to the exact PF-ODE solution", false),
        ("score_mse_eps", "network's mean squared eps error along the path", false),
    ];
    for (metric, y_desc, has_floor) in figures {
        for ((target, process), (lines, floor, sd)) in collect(rows, metric, XAxis::Nfe) {
            if lines.is_empty() {
                continue;
            }
            let title = format!("{name}: {target}, {process}");
            let stem = dir.join(format!("{name}_{target}_{process}_{metric}"));
            paths.extend(draw_both(&stem, &title, ("NFE", y_desc), &lines, has_floor.then_some((floor, sd)))?);
        }
    }
    Ok(paths)
}

/// The convergence figures: discretisation error against the number of steps (the step size is
/// proportional to its inverse), `{name}_{target}_{process}_{metric}.png` / `.svg`.
pub fn draw_convergence(rows: &[Row], name: &str, dir: &Path) -> Result<Vec<String>, String> {
    if !prepare(dir)? {
        return Ok(vec![]);
    }
    let mut paths = vec![];
    let figures = [
        ("w2_exact", "exact W2 of the output law (ODE: to the exact flow law)"),
        ("path_error", "mean distance to the exact PF-ODE solution"),
    ];
    for (metric, y_desc) in figures {
        for ((target, process), (lines, ..)) in collect(rows, metric, XAxis::Steps) {
            if lines.is_empty() {
                continue;
            }
            let title = format!("{name}: {target}, {process} (error against steps)");
            let stem = dir.join(format!("{name}_{target}_{process}_{metric}"));
            paths.extend(draw_both(&stem, &title, ("steps", y_desc), &lines, None)?);
        }
    }
    Ok(paths)
}
