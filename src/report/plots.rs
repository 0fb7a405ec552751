//! The report's four kinds of plot, drawn from its input as metrologists publish them: the
//! readings as deviations from nominal in a prefixed unit (`U − 10 V / µV`) against the date, with
//! the drift line and its band; Allan deviation log-log with error bars; each environment quantity
//! against the date; the residuals against temperature.

use super::input::{AllanSeries, Bilingual, EnvironmentSeries, ReportInput, Residuals};
use super::svg::{Axis, Plot, Scale};
use super::text::{Lang, label};
use super::units::{prefix_for, takes_prefix};

/// One plot: its file name, its caption and the SVG.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File name in the report's folder, e.g. `readings.svg`.
    pub file: String,
    /// The caption under it in the report.
    pub caption: Bilingual,
    /// The SVG document.
    pub svg: String,
}

const DAY_US: f64 = 86_400e6;

/// The year a time axis starts in, for its label: ticks show `MM-DD`.
fn time_label(langs: &[Lang], lo_us: f64) -> String {
    let year = super::text_utc(lo_us as i64)
        .get(..4)
        .unwrap_or_default()
        .to_owned();
    format!("{} {year}", label(langs, "date (UTC)", "日期 (UTC)"))
}

/// A quantity's axis label and the factor its values are multiplied by: with a nominal value,
/// the deviation from it (`U − 10 V / µV`), else the value itself (`t / °C`).
fn value_axis(symbol: &str, unit: &str, nominal: Option<f64>, largest: f64) -> (String, f64) {
    let (prefix, factor) = if takes_prefix(unit) {
        prefix_for(largest)
    } else {
        ("", 1.0)
    };
    let name = match nominal {
        Some(n) => format!("{symbol} \u{2212} {n} {unit}"),
        None => symbol.to_owned(),
    };
    (format!("{name} / {prefix}{unit}"), factor)
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Every plot the input has data for, in the report's order.
pub fn figures(input: &ReportInput, langs: &[Lang]) -> Vec<Figure> {
    let mut out = Vec::new();
    if !input.readings.is_empty() {
        out.push(readings(input, langs));
    }
    if let Some(a) = &input.allan
        && !a.points.is_empty()
    {
        out.push(allan(a, langs));
    }
    for (i, env) in input.environment.iter().enumerate() {
        if !env.points.is_empty() {
            out.push(environment(env, i, langs));
        }
    }
    if let Some(r) = &input.residuals
        && !r.points.is_empty()
    {
        out.push(residuals(input, r, langs));
    }
    out
}

/// The readings (corrected where they could be, raw where flagged) as deviations from nominal,
/// against the date, with the drift line and its band.
fn readings(input: &ReportInput, langs: &[Lang]) -> Figure {
    let q = &input.quantity;
    let nominal = input.artefact.nominal;
    let value = |r: &super::input::Reading| r.corrected.unwrap_or(r.raw) - nominal;
    let (t_lo, t_hi) = range(input.readings.iter().map(|r| r.utc_us as f64));
    // The line and band at 60 places along the window, so a curved band is drawn smoothly.
    let line: Vec<(f64, f64, f64)> = match &input.drift {
        Some(d) => (0..=60)
            .map(|i| {
                let t = t_lo + (t_hi - t_lo) * f64::from(i) / 60.0;
                let days = (t - d.t0_utc_us as f64) / DAY_US;
                let y = d.intercept + d.slope_per_day * days - nominal;
                let c = d.covariance;
                let var = c[0][0] + 2.0 * c[0][1] * days + c[1][1] * days * days;
                (t, y, d.band_k * var.max(0.0).sqrt())
            })
            .collect(),
        None => Vec::new(),
    };
    let (mut lo, mut hi) = range(input.readings.iter().map(value));
    for (_, y, half) in &line {
        lo = lo.min(y - half);
        hi = hi.max(y + half);
    }
    let (ylabel, f) = value_axis(&q.symbol, &q.unit, Some(nominal), lo.abs().max(hi.abs()));
    let x = Axis::new(Scale::Time, t_lo, t_hi, time_label(langs, t_lo));
    let y = Axis::new(Scale::Linear, lo * f, hi * f, ylabel);
    let caption = Bilingual {
        en: format!(
            "{} against time, with the drift line and its 95 % band",
            q.name.en
        ),
        zh: format!("{}随时间的变化，含漂移直线及其 95 % 区间", q.name.zh),
    };
    let mut p = Plot::new("readings", &caption.en, x, y);
    if !line.is_empty() {
        let upper: Vec<_> = line.iter().map(|(t, y, h)| (*t, (y + h) * f)).collect();
        let lower: Vec<_> = line.iter().map(|(t, y, h)| (*t, (y - h) * f)).collect();
        p.band("band", &lower, &upper);
        let mid: Vec<_> = line.iter().map(|(t, y, _)| (*t, y * f)).collect();
        p.line("fit", &mid);
    }
    for r in &input.readings {
        p.marker(r.utc_us as f64, value(r) * f, r.flagged);
    }
    p.legend(0, "pt", &label(langs, "readings", "读数"));
    if !line.is_empty() {
        p.legend(1, "fit", &label(langs, "drift line", "漂移直线"));
        p.legend(2, "band", &label(langs, "95 % band", "95 % 区间"));
    }
    Figure {
        file: "readings.svg".into(),
        caption,
        svg: p.finish(),
    }
}

/// Allan deviation against τ, log-log, each point with its error bar.
fn allan(a: &AllanSeries, langs: &[Lang]) -> Figure {
    let (t_lo, t_hi) = range(a.points.iter().map(|p| p.tau_s));
    // A bar reaching zero or below cannot be drawn on a log axis: it stops a decade down.
    let low = |p: &super::input::AllanPoint| (p.adev - p.err).max(p.adev / 10.0);
    let (lo, _) = range(a.points.iter().map(low));
    let (_, hi) = range(a.points.iter().map(|p| p.adev + p.err));
    let unit = if a.unit.is_empty() || a.unit == "1" {
        String::new()
    } else {
        format!(" / {}", a.unit)
    };
    let x = Axis::new(Scale::Log, t_lo, t_hi, "τ / s".into());
    let y = Axis::new(Scale::Log, lo, hi, format!("σ(τ){unit}"));
    let caption = Bilingual {
        en: "Allan deviation against averaging time τ".into(),
        zh: "阿伦偏差随平均时间 τ 的变化".into(),
    };
    let mut p = Plot::new("allan", &caption.en, x, y);
    for pt in &a.points {
        p.error_bar(pt.tau_s, low(pt), pt.adev + pt.err);
        p.marker(pt.tau_s, pt.adev, false);
    }
    p.legend(0, "pt", &label(langs, "Allan deviation", "阿伦偏差"));
    Figure {
        file: "allan.svg".into(),
        caption,
        svg: p.finish(),
    }
}

/// One environment quantity against the date: a line, and a marker per reading.
fn environment(env: &EnvironmentSeries, i: usize, langs: &[Lang]) -> Figure {
    let (t_lo, t_hi) = range(env.points.iter().map(|(t, _)| *t as f64));
    let (lo, hi) = range(env.points.iter().map(|(_, v)| *v));
    let (ylabel, f) = value_axis(&env.symbol, &env.unit, None, lo.abs().max(hi.abs()));
    let x = Axis::new(Scale::Time, t_lo, t_hi, time_label(langs, t_lo));
    let y = Axis::new(Scale::Linear, lo * f, hi * f, ylabel);
    let caption = Bilingual {
        en: format!("{} during the measurements", env.name.en),
        zh: format!("测量期间的{}", env.name.zh),
    };
    let mut p = Plot::new("environment", &caption.en, x, y);
    let line: Vec<_> = env.points.iter().map(|(t, v)| (*t as f64, v * f)).collect();
    p.line("env", &line);
    for (t, v) in &env.points {
        p.marker(*t as f64, v * f, false);
    }
    let slug: String = env
        .name
        .en
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_matches('-');
    Figure {
        file: format!("environment-{}-{slug}.svg", i + 1),
        caption,
        svg: p.finish(),
    }
}

/// The drift fit's residuals against temperature, around a zero line.
fn residuals(input: &ReportInput, r: &Residuals, langs: &[Lang]) -> Figure {
    let q = &input.quantity;
    let (x_lo, x_hi) = range(r.points.iter().map(|(x, _)| *x));
    let (lo, hi) = range(r.points.iter().map(|(_, y)| *y));
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let (prefix, f) = if takes_prefix(&q.unit) {
        prefix_for(lo.abs().max(hi.abs()))
    } else {
        ("", 1.0)
    };
    let x = Axis::new(
        Scale::Linear,
        x_lo,
        x_hi,
        format!("{} / {}", r.x_symbol, r.x_unit),
    );
    let y = Axis::new(
        Scale::Linear,
        lo * f,
        hi * f,
        format!(
            "{} {} / {prefix}{}",
            label(langs, "residual", "残差"),
            q.symbol,
            q.unit
        ),
    );
    let caption = Bilingual {
        en: "Residuals of the drift fit against temperature".into(),
        zh: "漂移拟合残差随温度的变化".into(),
    };
    let mut p = Plot::new("residuals", &caption.en, x, y);
    p.rule(0.0);
    for (x, y) in &r.points {
        p.marker(*x, y * f, false);
    }
    Figure {
        file: "residuals.svg".into(),
        caption,
        svg: p.finish(),
    }
}
