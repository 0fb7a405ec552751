//! The plotting piece: a frame with two axes (linear, log or time), ticks that read well, and a
//! body the caller draws into in data coordinates. Well-formed SVG of our own: the four plots need
//! axes, markers, lines, a band and error bars, which is a few hundred lines, where a plotting
//! crate would bring a font stack and its own idea of how a metrology plot looks.

use std::fmt::Write as _;

use super::text::esc;

/// Plot size, SVG user units (CSS px at 100 %).
pub const WIDTH: f64 = 720.0;
/// Plot height.
pub const HEIGHT: f64 = 340.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 50.0;

/// How an axis maps values to positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Linear, with 1-2-5 ticks.
    Linear,
    /// Base-10 logarithmic, a labelled tick per decade and minor ticks at 2…9.
    Log,
    /// Time, values being UTC µs, with ticks at whole hours or days, labelled as dates.
    Time,
}

/// One axis's ticks and the range they span.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// Lowest value shown.
    pub lo: f64,
    /// Highest value shown.
    pub hi: f64,
    /// Labelled ticks: value and text.
    pub major: Vec<(f64, String)>,
    /// Unlabelled ticks.
    pub minor: Vec<f64>,
}

/// The 1-2-5 step nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    let f = raw / power;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * power
}

/// Linear ticks at a 1-2-5 step, about `target` of them, the range widened to whole steps.
pub fn linear_ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let (lo, hi) = widen(lo, hi);
    let step = nice_step((hi - lo) / target.max(1) as f64);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let decimals = usize::try_from(-(step.log10().floor() as i32)).unwrap_or(0);
    let mut major = Vec::new();
    let mut i = first;
    // Bounded, whatever the floating point does: a handful of steps is all a plot can show.
    while i <= last + 0.5 && major.len() < 4 * target.max(1) + 4 {
        let v = i * step;
        // −0 reads as "-0"; and the minus is the typographic one.
        let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
        major.push((v, format!("{v:.decimals$}").replace('-', "\u{2212}")));
        i += 1.0;
    }
    Ticks {
        lo: first * step,
        hi: last * step,
        major,
        minor: Vec::new(),
    }
}

/// A range that has width: a single value, or values a few ulps apart, get one around them, so
/// the ticks are steps the arithmetic can still tell apart.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    let least = lo.abs().max(hi.abs()) * 1e-9;
    if hi - lo > least {
        (lo, hi)
    } else {
        let mid = lo / 2.0 + hi / 2.0;
        let pad = if mid == 0.0 { 1.0 } else { mid.abs() * 1e-3 };
        (mid - pad, mid + pad)
    }
}

/// Decade ticks for positive `lo..hi`, labelled `10ⁿ` (the exponent in the label's second part),
/// with minor ticks at 2…9 times each decade.
pub fn log_ticks(lo: f64, hi: f64) -> Ticks {
    let lo = if lo > 0.0 && lo.is_finite() {
        lo
    } else {
        1e-300
    };
    let hi = if hi > lo { hi } else { lo * 10.0 };
    let first = lo.log10().floor() as i32;
    let last = (hi.log10().ceil() as i32).max(first + 1);
    let mut major = Vec::new();
    let mut minor = Vec::new();
    for e in first..=last {
        major.push((10f64.powi(e), e.to_string()));
        if e < last {
            minor.extend((2..10).map(|m| f64::from(m) * 10f64.powi(e)));
        }
    }
    Ticks {
        lo: 10f64.powi(first),
        hi: 10f64.powi(last),
        major,
        minor,
    }
}

const HOUR_US: f64 = 3_600e6;
const DAY_US: f64 = 86_400e6;

/// Time ticks at whole seconds, minutes, hours or days (UTC), at most about eight, labelled
/// `MM-DD`, `HH:MM` between midnights, `HH:MM:SS` when they are seconds apart, or with the
/// decimals of the second closer still, down to milliseconds (the demo's simulated lab reads 200
/// times in a fraction of a second).
pub fn time_ticks(lo: f64, hi: f64) -> Ticks {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - HOUR_US, hi + HOUR_US)
    };
    // In µs, whole numbers, so that the ticks land exactly on them.
    let steps = [1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5]
        .into_iter()
        .chain([1.0, 2.0, 5.0, 10.0, 15.0, 30.0].map(|s| s * 1e6))
        .chain([1.0, 2.0, 5.0, 10.0, 15.0, 30.0].map(|m| m * 60e6))
        .chain([1.0, 2.0, 3.0, 6.0, 12.0].map(|h| h * HOUR_US))
        .chain([1.0, 2.0, 7.0, 14.0, 28.0, 91.0, 182.0, 364.0].map(|d| d * DAY_US));
    let span = hi - lo;
    let mut step = 364.0 * DAY_US;
    for s in steps {
        if span / s <= 8.0 {
            step = s;
            break;
        }
    }
    let mut major = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi {
        let text = super::text_utc(t as i64);
        let label = if step >= DAY_US || (t % DAY_US == 0.0 && step >= 60e6) {
            text.get(5..10).unwrap_or_default().to_owned()
        } else if step < 1e6 {
            // As many decimals of the second as the step has: 0.1 s, 0.01 s or 1 ms.
            let decimals = if step >= 1e5 {
                1
            } else if step >= 1e4 {
                2
            } else {
                3
            };
            text.get(11..20 + decimals).unwrap_or_default().to_owned()
        } else if step < 60e6 {
            text.get(11..19).unwrap_or_default().to_owned()
        } else {
            text.get(11..16).unwrap_or_default().to_owned()
        };
        major.push((t, label));
        t += step;
    }
    Ticks {
        lo,
        hi,
        major,
        minor: Vec::new(),
    }
}

/// An axis: its scale, ticks and label (`U − 10 V / µV`).
#[derive(Debug, Clone)]
pub struct Axis {
    /// How values map to positions.
    pub scale: Scale,
    /// The ticks and range.
    pub ticks: Ticks,
    /// The label, quantity / unit.
    pub label: String,
}

impl Axis {
    /// An axis over the data's range `lo..hi` (already scaled for its prefix).
    pub fn new(scale: Scale, lo: f64, hi: f64, label: String) -> Self {
        let ticks = match scale {
            Scale::Linear => linear_ticks(lo, hi, 6),
            Scale::Log => log_ticks(lo, hi),
            Scale::Time => {
                let pad = (hi - lo).max(1e3) * 0.02;
                time_ticks(lo - pad, hi + pad)
            }
        };
        Self {
            scale,
            ticks,
            label,
        }
    }

    /// Where `v` falls, 0 at `lo` and 1 at `hi`.
    fn fraction(&self, v: f64) -> f64 {
        let (lo, hi) = (self.ticks.lo, self.ticks.hi);
        match self.scale {
            Scale::Log => {
                let v = v.max(f64::MIN_POSITIVE);
                (v.log10() - lo.log10()) / (hi.log10() - lo.log10())
            }
            _ => (v - lo) / (hi - lo),
        }
    }
}

/// A plot being drawn: the frame, and the marks in `body`.
#[derive(Debug)]
pub struct Plot {
    kind: String,
    title: String,
    x: Axis,
    y: Axis,
    body: String,
    legend: String,
    points: usize,
}

impl Plot {
    /// An empty plot with its axes; `kind` names it for tests and the page (`data-kind`).
    pub fn new(kind: &str, title: &str, x: Axis, y: Axis) -> Self {
        Self {
            kind: kind.to_owned(),
            title: title.to_owned(),
            x,
            y,
            body: String::new(),
            legend: String::new(),
            points: 0,
        }
    }

    /// Position of data `(x, y)` in the SVG.
    pub fn at(&self, x: f64, y: f64) -> (f64, f64) {
        (
            LEFT + self.x.fraction(x) * (WIDTH - LEFT - RIGHT),
            HEIGHT - BOTTOM - self.y.fraction(y) * (HEIGHT - TOP - BOTTOM),
        )
    }

    /// A data point's marker; `open` draws it hollow (a flagged reading).
    pub fn marker(&mut self, x: f64, y: f64, open: bool) {
        let (px, py) = self.at(x, y);
        let class = if open { "pt flagged" } else { "pt" };
        let _ = write!(
            self.body,
            r#"<circle class="{class}" cx="{px:.1}" cy="{py:.1}" r="2.2"/>"#
        );
        self.points += 1;
    }

    /// A vertical error bar with caps from `y_lo` to `y_hi` at `x`.
    pub fn error_bar(&mut self, x: f64, y_lo: f64, y_hi: f64) {
        let (px, p_lo) = self.at(x, y_lo);
        let (_, p_hi) = self.at(x, y_hi);
        let _ = write!(
            self.body,
            r#"<path class="err" d="M{px:.1} {p_lo:.1}V{p_hi:.1}M{:.1} {p_lo:.1}h6M{:.1} {p_hi:.1}h6"/>"#,
            px - 3.0,
            px - 3.0
        );
    }

    /// A line through `points`, data coordinates, with a CSS class.
    pub fn line(&mut self, class: &str, points: &[(f64, f64)]) {
        let d = self.path(points);
        let _ = write!(self.body, r#"<path class="{class}" d="{d}"/>"#);
    }

    /// A band between `lower` and `upper` (same x, in order), filled.
    pub fn band(&mut self, class: &str, lower: &[(f64, f64)], upper: &[(f64, f64)]) {
        let mut all: Vec<(f64, f64)> = upper.to_vec();
        all.extend(lower.iter().rev());
        let d = self.path(&all);
        let _ = write!(self.body, r#"<path class="{class}" d="{d}Z"/>"#);
    }

    /// A horizontal reference line at `y` across the plot (zero residual).
    pub fn rule(&mut self, y: f64) {
        let (_, py) = self.at(self.x.ticks.lo, y);
        let _ = write!(
            self.body,
            r#"<path class="rule" d="M{LEFT} {py:.1}H{:.1}"/>"#,
            WIDTH - RIGHT
        );
    }

    /// A legend entry, the `n`th in a row above the plot, where it can hide no data; outside the
    /// data group, so its marker is not counted as a point.
    pub fn legend(&mut self, n: usize, class: &str, text: &str) {
        let y = 16.0;
        let x = LEFT + 190.0 * n as f64;
        let mark = if class == "pt" {
            format!(
                r#"<circle class="pt" cx="{:.1}" cy="{:.1}" r="2.2"/>"#,
                x + 9.0,
                y - 4.0
            )
        } else if class == "band" {
            format!(
                r#"<rect class="band" x="{x:.1}" y="{:.1}" width="18" height="10"/>"#,
                y - 9.0
            )
        } else {
            format!(r#"<path class="{class}" d="M{x:.1} {:.1}h18"/>"#, y - 4.0)
        };
        let _ = write!(
            self.legend,
            r#"<g class="legend">{mark}<text x="{:.1}" y="{y:.1}">{}</text></g>"#,
            x + 24.0,
            esc(text)
        );
    }

    fn path(&self, points: &[(f64, f64)]) -> String {
        let mut d = String::new();
        for (i, (x, y)) in points.iter().enumerate() {
            let (px, py) = self.at(*x, *y);
            let _ = write!(d, "{}{px:.1} {py:.1}", if i == 0 { "M" } else { "L" });
        }
        d
    }

    /// The whole SVG element, standalone (it carries its namespace and style) and fit to inline
    /// in HTML.
    pub fn finish(self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-kind="{kind}" data-points="{points}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="DejaVu Sans, WenQuanYi Micro Hei, Noto Sans CJK SC, sans-serif" font-size="12" role="img"><title>{title}</title><style>.pt{{fill:#1f4e79}}.pt.flagged{{fill:none;stroke:#b00;stroke-width:1}}.fit{{fill:none;stroke:#b35900;stroke-width:1.5}}.band{{fill:#f0a050;fill-opacity:.25;stroke:none}}.err{{stroke:#1f4e79;stroke-width:1}}.env{{fill:none;stroke:#1f4e79;stroke-width:1.2}}.rule{{stroke:#888;stroke-dasharray:4 3}}.axis path,.axis line{{stroke:#000;stroke-width:1}}.axis text{{fill:#000}}</style>"#,
            kind = esc(&self.kind),
            points = self.points,
            title = esc(&self.title),
        );
        s.push_str(&self.axes());
        let _ = write!(
            s,
            r#"<g class="data">{}</g>{}</svg>"#,
            self.body, self.legend
        );
        s
    }

    fn axes(&self) -> String {
        let (x0, x1) = (LEFT, WIDTH - RIGHT);
        let (y0, y1) = (HEIGHT - BOTTOM, TOP);
        let mut s = String::new();
        // X axis: the line, ticks outward, labels under them, the axis label centred below.
        let _ = write!(s, r#"<g class="axis x"><path d="M{x0} {y0}H{x1}"/>"#);
        for (v, text) in &self.x.ticks.major {
            let (px, _) = self.at(*v, self.y.ticks.lo);
            let _ = write!(
                s,
                r#"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{}"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
                y0 + 5.0,
                y0 + 18.0,
                tick_text(self.x.scale, text)
            );
        }
        for v in &self.x.ticks.minor {
            let (px, _) = self.at(*v, self.y.ticks.lo);
            let _ = write!(
                s,
                r#"<line class="minor" x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{}"/>"#,
                y0 + 3.0
            );
        }
        let _ = write!(
            s,
            r#"<text class="label" x="{:.1}" y="{}" text-anchor="middle">{}</text></g>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 8.0,
            esc(&self.x.label)
        );
        // Y axis: the same, on the left, its label turned.
        let _ = write!(s, r#"<g class="axis y"><path d="M{x0} {y0}V{y1}"/>"#);
        for (v, text) in &self.y.ticks.major {
            let (_, py) = self.at(self.x.ticks.lo, *v);
            let _ = write!(
                s,
                r#"<line x1="{x0}" y1="{py:.1}" x2="{}" y2="{py:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 5.0,
                x0 - 8.0,
                py + 4.0,
                tick_text(self.y.scale, text)
            );
        }
        for v in &self.y.ticks.minor {
            let (_, py) = self.at(self.x.ticks.lo, *v);
            let _ = write!(
                s,
                r#"<line class="minor" x1="{x0}" y1="{py:.1}" x2="{}" y2="{py:.1}"/>"#,
                x0 - 3.0
            );
        }
        let _ = write!(
            s,
            r#"<text class="label" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text></g>"#,
            (y0 + y1) / 2.0,
            esc(&self.y.label)
        );
        s
    }
}

/// A tick's label: on a log axis, `10` with the exponent raised.
fn tick_text(scale: Scale, text: &str) -> String {
    match scale {
        Scale::Log => format!(
            r#"10<tspan dy="-6" font-size="9">{}</tspan>"#,
            esc(&text.replace('-', "\u{2212}"))
        ),
        _ => esc(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Ticks) -> Vec<f64> {
        t.major.iter().map(|(v, _)| *v).collect()
    }

    #[test]
    fn linear_ticks_step_by_one_two_or_five() {
        let t = linear_ticks(0.13, 0.87, 6);
        assert_eq!(
            t.major.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        let t = linear_ticks(-3.2, 7.9, 6);
        assert_eq!(values(&t), [-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(t.major[0].1, "\u{2212}4");
        let t = linear_ticks(1012.3, 1024.9, 5);
        assert_eq!(values(&t), [1010.0, 1015.0, 1020.0, 1025.0]);
        // The range covers the data, the ends on ticks.
        assert!(t.lo <= 1012.3 && t.hi >= 1024.9);
        // One value alone still gets an axis.
        let t = linear_ticks(5.0, 5.0, 5);
        assert!(t.lo < 5.0 && t.hi > 5.0 && t.major.len() >= 2);
    }

    proptest::proptest! {
        #[test]
        fn linear_ticks_cover_the_data_in_a_few_steps(a in -1e12f64..1e12, span in 0f64..1e6, scale in -12i32..12) {
            let lo = a * 10f64.powi(scale);
            let hi = lo + span * 10f64.powi(scale);
            let t = linear_ticks(lo, hi, 6);
            proptest::prop_assert!(t.major.len() >= 2 && t.major.len() <= 28, "{} ticks", t.major.len());
            proptest::prop_assert!(t.lo <= lo && t.hi >= hi || t.major.len() == 28);
        }
    }

    #[test]
    fn log_ticks_are_decades_with_minor_ticks() {
        let t = log_ticks(3e-9, 4e-7);
        assert_eq!(values(&t).len(), 4);
        assert_eq!(t.major[0].1, "-9");
        assert_eq!(t.major[3].1, "-6");
        assert_eq!(t.minor.len(), 3 * 8);
        assert!((t.lo - 1e-9).abs() < 1e-24 && (t.hi - 1e-6).abs() < 1e-21);
    }

    #[test]
    fn time_ticks_are_whole_days_labelled_as_dates() {
        // 2026-03-02T00:00Z to 2026-03-16T00:00Z: two weeks, a tick every second day.
        let lo = 1_772_409_600e6;
        let t = time_ticks(lo, lo + 14.0 * DAY_US);
        assert_eq!(t.major[0].1, "03-02");
        assert_eq!(t.major[1].1, "03-04");
        assert!(t.major.len() <= 8);
        // Six hours: hourly ticks as times.
        let t = time_ticks(lo + HOUR_US, lo + 7.0 * HOUR_US);
        assert_eq!(t.major[0].1, "01:00");
        // Twenty seconds (a run of the demo's): ticks five seconds apart, with the seconds.
        let t = time_ticks(lo + 12e6, lo + 32e6);
        assert_eq!(t.major[0].1, "00:00:15");
        assert_eq!(t.major[1].1, "00:00:20");
        assert!(t.major.len() <= 8);
        // 130 ms (the demo's 200 readings): ticks 20 ms apart, with hundredths of a second.
        let t = time_ticks(lo + 531_690.0, lo + 663_004.0);
        let labels: Vec<&str> = t.major.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(
            labels,
            [
                "00:00:00.54",
                "00:00:00.56",
                "00:00:00.58",
                "00:00:00.60",
                "00:00:00.62",
                "00:00:00.64",
                "00:00:00.66"
            ]
        );
        // 5 ms: ticks a millisecond apart.
        let t = time_ticks(lo + 1_000_100.0, lo + 1_005_000.0);
        assert_eq!(t.major[0].1, "00:00:01.001");
        assert_eq!(t.major.len(), 5);
    }

    #[test]
    fn a_plot_is_well_formed_and_counts_its_markers() {
        let x = Axis::new(Scale::Linear, 0.0, 10.0, "x / s".into());
        let y = Axis::new(Scale::Log, 1e-3, 1.0, "σ / V".into());
        let mut p = Plot::new("t", "a <test>", x, y);
        p.marker(1.0, 0.01, false);
        p.marker(2.0, 0.1, true);
        p.error_bar(2.0, 0.05, 0.2);
        let svg = p.finish();
        assert!(svg.contains(r#"data-points="2""#));
        assert!(svg.contains("a &lt;test&gt;"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.ends_with("</svg>"));
    }
}
