//! The lab's report from a realistic fixture: two weeks of hourly readings of a 10 V Zener with
//! drift, temperature and pressure. The files are all there, the SVG plots parse and have their
//! axes and a marker per point, the DCC validates against PTB's schema with xmllint (and a broken
//! one does not), and the page renders in headless Chromium with a screenshot taken.

use std::path::{Path, PathBuf};
use std::process::Command;

use tsagent::report::*;

const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;
/// 2026-03-02T00:00:00Z.
const START_US: i64 = 1_772_409_600_000_000;
const READINGS: usize = 14 * 24;
/// Readings 100 and 101 had no environment reading near enough: flagged, uncorrected.
const FLAGGED: [usize; 2] = [100, 101];
const ALLAN_POINTS: usize = 7;

/// Deterministic noise in [-1, 1): a linear congruential generator, so the fixture is the same
/// on every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn bi(en: &str, zh: &str) -> Bilingual {
    Bilingual {
        en: en.into(),
        zh: zh.into(),
    }
}

/// The fixture: what the lead's mapping from the analysis would give for such a series.
pub fn fixture() -> ReportInput {
    let mut noise = Noise(7);
    let temperature = |i: usize| 23.0 + 0.15 * (2.0 * std::f64::consts::PI * i as f64 / 24.0).sin();
    let pressure = |i: usize| 1013.0 + 6.0 * (2.0 * std::f64::consts::PI * i as f64 / 120.0).sin();
    let mut readings = Vec::new();
    for i in 0..READINGS {
        let days = i as f64 / 24.0;
        let t = temperature(i);
        // 10 V + 3.2 µV, drifting 0.12 µV a day, 30 nV of noise, 0.05 µV/K about 23 °C.
        let corrected = 10.0 + 3.2e-6 + 0.12e-6 * days + 30e-9 * noise.next();
        let raw = corrected + 0.05e-6 * (t - 23.0);
        let flagged = FLAGGED.contains(&i);
        readings.push(Reading {
            seq: 1000 + i as u64,
            run: 1 + (i / 24) as u64,
            utc_us: START_US + i as i64 * HOUR_US,
            raw,
            corrected: (!flagged).then_some(corrected),
            flagged,
        });
    }
    // Ordinary least squares of the used readings against days from their mean date.
    let used: Vec<(f64, f64)> = readings
        .iter()
        .filter(|r| !r.flagged)
        .map(|r| (r.utc_us as f64, r.corrected.unwrap()))
        .collect();
    let n = used.len() as f64;
    let t_mean = used.iter().map(|(t, _)| t).sum::<f64>() / n;
    let xs: Vec<f64> = used
        .iter()
        .map(|(t, _)| (t - t_mean) / DAY_US as f64)
        .collect();
    let y_mean = used.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| x * x).sum();
    let slope = xs
        .iter()
        .zip(&used)
        .map(|(x, (_, y))| x * (y - y_mean))
        .sum::<f64>()
        / sxx;
    let residual: Vec<f64> = xs
        .iter()
        .zip(&used)
        .map(|(x, (_, y))| y - y_mean - slope * x)
        .collect();
    let s2 = residual.iter().map(|r| r * r).sum::<f64>() / (n - 2.0);
    let u_a = (s2 / n).sqrt();
    let u_slope = (s2 / sxx).sqrt();
    let mean_date = t_mean as i64;

    let row =
        |name: Bilingual, eval, distribution, value: f64, unit: &str, divisor: f64, c: f64, dof| {
            let u = value / divisor;
            BudgetRow {
                name,
                eval,
                distribution,
                value,
                unit: unit.into(),
                divisor,
                u,
                sensitivity: c,
                contribution: (c * u).abs(),
                dof,
                share: 0.0,
            }
        };
    let mut budget = vec![
        row(
            bi(
                "repeatability (drift fit at the mean date)",
                "重复性（平均日期的漂移拟合）",
            ),
            EvalType::A,
            Distribution::Normal,
            u_a,
            "V",
            1.0,
            1.0,
            Some(n - 2.0),
        ),
        row(
            bi("DVM calibration", "数字电压表校准"),
            EvalType::B,
            Distribution::Normal,
            0.4e-6,
            "V",
            2.0,
            1.0,
            None,
        ),
        row(
            bi("temperature coefficient", "温度系数"),
            EvalType::B,
            Distribution::Rectangular,
            0.2,
            "°C",
            3f64.sqrt(),
            0.05e-6,
            Some(50.0),
        ),
        row(
            bi("pressure coefficient", "气压系数"),
            EvalType::B,
            Distribution::Rectangular,
            5.0,
            "hPa",
            3f64.sqrt(),
            2e-9,
            None,
        ),
        row(
            bi("DVM resolution", "数字电压表分辨力"),
            EvalType::B,
            Distribution::UShaped,
            5e-9,
            "V",
            2f64.sqrt(),
            1.0,
            None,
        ),
    ];
    let u_c = budget
        .iter()
        .map(|r| r.contribution.powi(2))
        .sum::<f64>()
        .sqrt();
    for r in &mut budget {
        r.share = r.contribution.powi(2) / (u_c * u_c);
    }
    let k = 2.0;

    let allan = AllanSeries {
        unit: "V".into(),
        points: (0..ALLAN_POINTS)
            .map(|j| {
                let m = 1u32 << j;
                let tau = 3600.0 * f64::from(m);
                let adev = 30e-9 / f64::from(m).sqrt() + 0.12e-6 * tau / 86_400.0 / 2f64.sqrt();
                let terms = (READINGS as f64 / f64::from(m)).max(2.0);
                AllanPoint {
                    tau_s: tau,
                    adev,
                    err: adev / terms.sqrt(),
                }
            })
            .collect(),
    };
    let env = |name, symbol: &str, unit: &str, f: &dyn Fn(usize) -> f64| EnvironmentSeries {
        name,
        symbol: symbol.into(),
        unit: unit.into(),
        points: (0..READINGS)
            .map(|i| (START_US + i as i64 * HOUR_US + 60_000_000, f(i)))
            .collect(),
    };
    let residuals = Residuals {
        x_symbol: "t".into(),
        x_unit: "°C".into(),
        points: readings
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.flagged)
            .zip(&residual)
            .map(|((i, _), r)| (temperature(i), *r))
            .collect(),
    };
    let condition = |name, unit: &str, f: &dyn Fn(usize) -> f64| {
        let v: Vec<f64> = (0..READINGS).map(f).collect();
        Condition {
            name,
            unit: unit.into(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    };
    ReportInput {
        admin: Admin {
            lab_id: "LAB07".into(),
            lab_name: bi("Example Metrology Institute", "示例计量研究院"),
            address: "18 Beisanhuan Donglu".into(),
            city: "Beijing".into(),
            country: "CN".into(),
            comparison_id: "TS-COMP-2026-001".into(),
            comparison_title: bi(
                "Comparison of 10 V Zener standards",
                "10 V 齐纳电压标准比对",
            ),
            pilot: bi("Pilot Laboratory", "主导实验室"),
            pilot_city: "Braunschweig".into(),
            pilot_country: "DE".into(),
            responsible: "Li Wei".into(),
            report_id: "TS-COMP-2026-001-LAB07-R1".into(),
            issue_date: "2026-03-17".into(),
            window_begin_utc_us: START_US,
            window_end_utc_us: START_US + (READINGS as i64 - 1) * HOUR_US,
        },
        artefact: Artefact {
            id: "TS-Z10-0001".into(),
            kind: bi("10 V Zener voltage standard", "10 V 齐纳电压标准"),
            manufacturer: "Fluke".into(),
            model: "732C".into(),
            serial: "1234567".into(),
            nominal: 10.0,
            unit: "V".into(),
        },
        quantity: Quantity {
            name: bi("output voltage", "输出电压"),
            symbol: "U".into(),
            unit: "V".into(),
        },
        method: bi(
            "Hourly readings against the lab's reference with an 8.5-digit DVM; each corrected for temperature and pressure with the nearest environment reading; drift fitted by least squares.",
            "以 8½ 位数字电压表每小时对比实验室参考；每个读数用时间最近的环境读数作温度和气压修正；最小二乘拟合漂移。",
        ),
        result: LabResult {
            value: y_mean,
            mean_date_utc_us: mean_date,
            u_c,
            nu_eff: Some(412.0),
            k,
            expanded: k * u_c,
            coverage_probability: 0.95,
            n: used.len(),
            left_out: FLAGGED.len(),
            drift: DriftRate {
                slope_per_day: slope,
                u: u_slope,
                significant: true,
            },
        },
        budget,
        readings,
        drift: Some(DriftLine {
            t0_utc_us: mean_date,
            intercept: y_mean,
            slope_per_day: slope,
            covariance: [[s2 / n, 0.0], [0.0, s2 / sxx]],
            band_k: 1.97,
        }),
        allan: Some(allan),
        environment: vec![
            env(bi("temperature", "温度"), "t", "°C", &temperature),
            env(bi("pressure", "气压"), "p", "hPa", &pressure),
        ],
        residuals: Some(residuals),
        instruments: vec![
            Instrument {
                name: "dvm".into(),
                role: bi("voltmeter", "电压表"),
                manufacturer: "Keysight".into(),
                model: "3458A".into(),
                serial: "MY45012345".into(),
                firmware: Some("9".into()),
                calibration: Some(Calibration {
                    certificate: "NIM-2025-E-0815".into(),
                    laboratory: Some("NIM".into()),
                    date: "2025-11-20".into(),
                    due: Some("2026-11-20".into()),
                    uncertainty: Some(StatedUncertainty {
                        value: 0.4e-6,
                        unit: "V".into(),
                        k: 2.0,
                    }),
                }),
            },
            Instrument {
                name: "env".into(),
                role: bi("temperature and pressure", "温度与气压"),
                manufacturer: "Vaisala".into(),
                model: "PTU300".into(),
                serial: "R1230045".into(),
                firmware: None,
                calibration: None,
            },
        ],
        conditions: vec![
            condition(bi("temperature", "温度"), "°C", &temperature),
            condition(bi("pressure", "气压"), "hPa", &pressure),
        ],
    }
}

/// How to get xmllint; the DCC test fails (never skips) without it.
const XMLLINT_INSTALL: &str = "apt-get install -y libxml2-utils";

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dcc-3.2.0/dcc_3_2_0_local.xsd")
}

/// `xmllint --schema` on `file`: its exit status and what it said.
pub(crate) fn xmllint(file: &Path) -> (bool, String) {
    let out = Command::new("xmllint")
        .args(["--nonet", "--noout", "--schema"])
        .arg(schema())
        .arg(file)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!(
            "the DCC is validated with xmllint, which could not be run ({e}); install it with \
             `{XMLLINT_INSTALL}` (as root; .ci/run does it)"
        ),
    };
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn parse(text: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("not well-formed XML: {e}"))
}

fn has_class(n: &roxmltree::Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

/// A plot's axis labels and its markers, from the parsed SVG.
fn plot_parts(svg: &str) -> (String, String, usize, usize) {
    let doc = parse(svg);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let axis = |which: &str| {
        let g = root
            .descendants()
            .find(|n| n.has_tag_name("g") && has_class(n, "axis") && has_class(n, which))
            .unwrap_or_else(|| panic!("no {which} axis"));
        let ticks = g
            .children()
            .filter(|n| n.has_tag_name("line") && !has_class(n, "minor"))
            .count();
        assert!(ticks >= 2, "the {which} axis has {ticks} ticks");
        g.children()
            .find(|n| has_class(n, "label"))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_owned()
    };
    let (x, y) = (axis("x"), axis("y"));
    let markers = root
        .descendants()
        .filter(|n| n.has_tag_name("circle") && has_class(n, "pt"))
        .filter(|n| n.ancestors().all(|a| !has_class(&a, "legend")))
        .count();
    let said: usize = root.attribute("data-points").unwrap().parse().unwrap();
    (x, y, markers, said)
}

#[test]
fn the_report_has_every_file_and_its_plots_have_axes_and_a_marker_per_point() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture();
    let written = write(dir.path(), &input, &Options::default()).unwrap();
    for f in [&written.html, &written.summary, &written.readings] {
        assert!(f.is_file(), "{}", f.display());
    }
    // Nothing half-written is left beside them.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    let kinds: Vec<String> = written
        .plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "readings.svg",
            "allan.svg",
            "environment-1-temperature.svg",
            "environment-2-pressure.svg",
            "residuals.svg"
        ]
    );
    let svg = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();

    let readings = svg("readings.svg");
    let (x, y, markers, said) = plot_parts(&readings);
    assert_eq!((markers, said), (READINGS, READINGS));
    assert!(x.contains("date (UTC)") && x.contains("2026"), "{x}");
    assert_eq!(y, "U \u{2212} 10 V / µV");
    let doc = parse(&readings);
    let count = |class: &str| doc.descendants().filter(|n| has_class(n, class)).count();
    // The flagged readings are drawn hollow; the line and its band are there.
    assert_eq!(count("flagged"), FLAGGED.len());
    assert!(count("fit") >= 1 && count("band") >= 1);
    // The x ticks are dates.
    assert!(
        readings.contains(">03-02<") || readings.contains(">03-03<"),
        "no date ticks"
    );

    let allan = svg("allan.svg");
    let (x, y, markers, said) = plot_parts(&allan);
    assert_eq!((markers, said), (ALLAN_POINTS, ALLAN_POINTS));
    assert_eq!(x, "τ / s");
    assert_eq!(y, "σ(τ) / V");
    assert_eq!(
        parse(&allan)
            .descendants()
            .filter(|n| has_class(n, "err"))
            .count(),
        ALLAN_POINTS
    );
    // Decades labelled 10ⁿ, with minor ticks.
    assert!(allan.contains(r#"10<tspan"#));
    assert!(parse(&allan).descendants().any(|n| has_class(&n, "minor")));

    for (name, label) in [
        ("environment-1-temperature.svg", "t / °C"),
        ("environment-2-pressure.svg", "p / hPa"),
    ] {
        let (_, y, markers, said) = plot_parts(&svg(name));
        assert_eq!((markers, said), (READINGS, READINGS), "{name}");
        assert_eq!(y, label);
    }
    let (x, y, markers, _) = plot_parts(&svg("residuals.svg"));
    assert_eq!(markers, READINGS - FLAGGED.len());
    assert_eq!(x, "t / °C");
    assert!(y.ends_with("U / nV"), "{y}");

    // summary.json: the result as D-SI quantities.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written.summary).unwrap()).unwrap();
    let r = &summary["result"];
    assert_eq!(r["unit"], "\\volt");
    assert_eq!(r["value"].as_f64().unwrap(), input.result.value);
    assert_eq!(r["expandedUnc"]["coverageFactor"], 2.0);
    assert_eq!(r["expandedUnc"]["coverageProbability"], 0.95);
    assert_eq!(
        r["expandedUnc"]["uncertainty"].as_f64().unwrap(),
        input.result.expanded
    );
    assert_eq!(r["dof"], 412.0);
    assert_eq!(
        r["dateTime"].as_str().unwrap().len(),
        "2026-03-09T00:00:00Z".len()
    );
    assert_eq!(summary["drift"]["unit"], "\\volt\\day\\tothe{-1}");
    assert_eq!(summary["budget"].as_array().unwrap().len(), 5);
    assert_eq!(summary["budget"][3]["unit"], "\\hecto\\pascal");
    assert_eq!(summary["budget"][1]["dof"], serde_json::Value::Null);

    // readings.csv: raw and corrected, flagged ones without a correction.
    let csv = std::fs::read_to_string(&written.readings).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "seq,run,utc,raw,corrected,flagged");
    assert_eq!(lines.len(), READINGS + 1);
    let flagged = lines[1 + FLAGGED[0]];
    assert!(flagged.ends_with(",,1"), "{flagged}");
    assert!(
        lines[1].starts_with("1000,1,2026-03-02T00:00:00.000000Z,"),
        "{}",
        lines[1]
    );

    // report.html: self-contained and bilingual, every plot inline.
    let html = std::fs::read_to_string(&written.html).unwrap();
    assert!(html.contains("测量结果 Result"));
    assert!(html.contains("@media print"));
    assert_eq!(html.matches("<svg").count(), written.plots.len());
    for external in ["<script", "<link", "src=\"http", "href=\"http", "@import"] {
        assert!(!html.contains(external), "the report has {external}");
    }
    // English alone has no Chinese labels.
    let en = tempfile::tempdir().unwrap();
    let options = Options {
        languages: parse_languages("en").unwrap(),
        dcc: None,
    };
    let w = write(en.path(), &input, &options).unwrap();
    let html = std::fs::read_to_string(w.html).unwrap();
    assert!(html.contains(">Result<") && !html.contains("测量结果"));
}

#[test]
fn the_dcc_validates_against_the_schema_and_a_broken_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let dcc = dir.path().join("dcc.xml");
    let options = Options {
        dcc: Some(dcc.clone()),
        ..Options::default()
    };
    let written = write(&dir.path().join("report"), &fixture(), &options).unwrap();
    assert_eq!(written.dcc.as_deref(), Some(dcc.as_path()));
    let (ok, said) = xmllint(&dcc);
    assert!(ok, "the DCC does not validate:\n{said}");
    assert!(said.contains("validates"), "{said}");

    let text = std::fs::read_to_string(&dcc).unwrap();
    let doc = parse(&text);
    let dcc_ns: &'static str = "https://ptb.de/dcc";
    let si_ns: &'static str = "https://ptb.de/si";
    let find = |ns: &'static str, name: &'static str| {
        doc.descendants()
            .filter(move |n| n.has_tag_name((ns, name)))
    };
    let langs: Vec<&str> = find(dcc_ns, "usedLangCodeISO639_1")
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(langs, ["zh", "en"]);
    assert!(
        find(dcc_ns, "content")
            .any(|n| n.attribute("lang") == Some("zh") && n.text() == Some("10 V 齐纳电压标准"))
    );
    let units: Vec<&str> = find(si_ns, "unit").filter_map(|n| n.text()).collect();
    assert!(
        units.contains(&"\\volt") && units.contains(&"\\hecto\\pascal"),
        "{units:?}"
    );
    assert_eq!(find(dcc_ns, "measuringEquipment").count(), 2);
    assert_eq!(find(dcc_ns, "influenceCondition").count(), 2);
    assert_eq!(
        find(si_ns, "coverageFactor").next().and_then(|n| n.text()),
        Some("2")
    );

    // The same check refuses a certificate without its unique identifier (a required element),
    // and one whose value is not a number.
    let broken = dir.path().join("broken.xml");
    let start = text.find("<dcc:uniqueIdentifier>").unwrap();
    let end = text.find("</dcc:uniqueIdentifier>").unwrap() + "</dcc:uniqueIdentifier>".len();
    std::fs::write(&broken, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let (ok, said) = xmllint(&broken);
    assert!(!ok, "a DCC without uniqueIdentifier validated:\n{said}");
    assert!(said.contains("fails to validate"), "{said}");
    let value = find(si_ns, "value")
        .next()
        .unwrap()
        .text()
        .unwrap()
        .to_owned();
    std::fs::write(
        &broken,
        text.replacen(&format!("<si:value>{value}<"), "<si:value>ten<", 1),
    )
    .unwrap();
    let (ok, said) = xmllint(&broken);
    assert!(!ok, "a DCC with a value `ten` validated:\n{said}");
}

/// A change that makes the fixture bad.
type Spoil = Box<dyn Fn(&mut ReportInput)>;

#[test]
fn bad_input_is_refused_naming_the_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let cases: Vec<(Spoil, &str)> = vec![
        (
            Box::new(|i| i.readings[5].raw = f64::NAN),
            "readings[5].raw",
        ),
        (Box::new(|i| i.result.u_c = f64::INFINITY), "result.u_c"),
        (
            Box::new(|i| i.admin.country = "China".into()),
            "admin.country",
        ),
        (
            Box::new(|i| i.admin.issue_date = "17.03.2026".into()),
            "admin.issue_date",
        ),
        (
            Box::new(|i| i.quantity.unit = "furlong".into()),
            "quantity.unit",
        ),
        (
            Box::new(|i| i.admin.report_id = "  ".into()),
            "admin.report_id",
        ),
        (
            Box::new(|i| i.allan.as_mut().unwrap().points[0].adev = 0.0),
            "allan.points[0]",
        ),
        (
            Box::new(|i| i.budget[2].dof = Some(f64::NAN)),
            "budget[2].dof",
        ),
    ];
    for (spoil, field) in cases {
        let mut input = fixture();
        spoil(&mut input);
        let e = write(&out, &input, &Options::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{field}: {e}");
        assert!(!out.exists(), "{field}: a bad input wrote files");
    }
    let e = parse_languages("de").unwrap_err().to_string();
    assert!(e.contains("`de`"), "{e}");
}

#[test]
fn the_report_renders_in_a_headless_browser_and_a_screenshot_is_taken() {
    let (dir, chromium) = crate::page::browser();
    let out = tempfile::tempdir().unwrap();
    let written = write(out.path(), &fixture(), &Options::default()).unwrap();
    let png = out.path().join("report.png");
    let result = crate::page::run_bounded(
        Command::new("node")
            .arg(dir.join("report.mjs"))
            .arg(&written.html)
            .arg(&png)
            .env("CHROMIUM", &chromium)
            .current_dir(&dir),
        crate::common::PATIENCE * 2,
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        result.status
    );
    assert!(stdout.contains("ok: result rows"), "{stdout}\n{stderr}");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A full page of text and five plots: far more than a blank page's few kB.
    assert!(
        bytes.len() > 50_000,
        "the screenshot is {} bytes",
        bytes.len()
    );
    println!("{stdout}");
}
