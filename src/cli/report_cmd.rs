//! `tsagent report`: the lab's result for a window of its log, as the files it sends the pilot
//! and keeps — `report.html`, `summary.json`, `readings.csv`, the plots and, with `--dcc`, a
//! Digital Calibration Certificate.
//!
//! This file only gathers: it selects the readings (`store::select`), hands them to the analysis
//! (`analysis::lab_result`, `stats`), and maps the result and the config into the report's plain
//! input (`report::ReportInput`). The numbers are computed there, the pages drawn there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use super::Error;
use super::db::parse_time;
use crate::analysis::{self, EnvSeries, LabInput, LabResult, TimedValue};
use crate::clock::{Clock, SystemClock};
use crate::config::{ComponentSource, Config, Language};
use crate::daemon::owner::{LabLock, Role};
use crate::report::{self as rep, Bilingual, ReportInput};
use crate::stats;
use crate::store::{InstrumentRow, ReadingFilter, SelectedReading, Store};

/// `tsagent report`.
#[derive(Debug, Args)]
#[deny(missing_docs)]
pub struct ReportArgs {
    /// The lab's config file: its database, artefact, corrections, budget and `[report]`.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The official window: readings of official runs (the default when no other window is
    /// given).
    #[arg(long, conflicts_with_all = ["since", "until", "run"])]
    pub official: bool,
    /// Readings taken at or after this instant: RFC 3339 with any offset, or a date (00:00 UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Readings taken at or before this instant, written as for --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<i64>,
    /// The readings of one run.
    #[arg(long, value_name = "ID")]
    pub run: Option<u64>,
    /// The instrument whose readings of the standard are reported, when several read it.
    #[arg(long, value_name = "NAME")]
    pub instrument: Option<String>,
    /// The folder the report is written to (made if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Languages: zh, en or zh,en [default: the config's `[report] languages`, else zh,en].
    #[arg(long, value_name = "LANGS")]
    pub lang: Option<String>,
    /// Also write a Digital Calibration Certificate (PTB DCC 3.2.0) of the result here.
    #[arg(long, value_name = "FILE.xml")]
    pub dcc: Option<PathBuf>,
    /// Also stage the files written (report.html, summary.json, readings.csv, the plots; not
    /// the DCC, a certificate the lab issues on its own) to ride, signed, in `report/` of the
    /// next bundle sealed. Takes the lab's lock, so it is refused while the daemon runs.
    #[arg(long)]
    pub seal: bool,
}

/// The files written and the result, for the caller to print (the demo prints them too).
#[derive(Debug)]
pub struct Made {
    /// What was written.
    pub written: rep::Written,
    /// The result line, e.g. `U = 10.0000234 V ± 0.40 µV (k = 2.00, 95 %) at 2026-12-03T…`.
    pub line: String,
}

/// Runs `tsagent report`.
pub fn run(args: ReportArgs) -> Result<(), Error> {
    let config = Config::load(&args.config)?;
    required_settings(&config)?;
    // Staging writes the log: hold the lab for it, as any other writer beside the daemon would.
    let _lock = if args.seal {
        Some(LabLock::acquire(&config, Role::Report)?)
    } else {
        None
    };
    let mut store = Store::open_existing(&config.storage.db)?;
    let window = Window {
        official: args.official
            || (args.since.is_none() && args.until.is_none() && args.run.is_none()),
        since: args.since,
        until: args.until,
        run: args.run,
    };
    let languages = match &args.lang {
        Some(text) => rep::parse_languages(text)?,
        None => languages(&config),
    };
    let made = make(
        &config,
        &store,
        &window,
        args.instrument.as_deref(),
        &args.out,
        rep::Options {
            languages,
            dcc: args.dcc.clone(),
        },
        &SystemClock::new(),
    )?;
    print_made(&made);
    if args.seal {
        let names = stage(&mut store, &made.written, SystemClock::new().now().utc_us)?;
        say!(
            "staged for the next bundle: {} (they ride, signed, in its report/ once readings are sealed: `tsagent bundle seal` or the daemon's next seal)",
            names.join(", ")
        );
    }
    Ok(())
}

/// Stages the report's files (not the DCC) for the next bundle, all or none: each is checked
/// against what a bundle may carry before any is staged.
fn stage(store: &mut Store, written: &rep::Written, utc_us: i64) -> Result<Vec<String>, Error> {
    let paths = [&written.html, &written.summary, &written.readings]
        .into_iter()
        .chain(&written.plots);
    let mut files = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        tsagent_bundle::check_attachment(&name, u64::try_from(bytes.len()).unwrap_or(u64::MAX))
            .map_err(Error::Stage)?;
        files.push((name, bytes));
    }
    if files.len() > tsagent_bundle::tar::MAX_ATTACHMENTS {
        return Err(Error::Stage(
            tsagent_bundle::SealError::TooManyAttachments {
                cap: tsagent_bundle::tar::MAX_ATTACHMENTS,
            },
        ));
    }
    store.stage_attachments(&files, utc_us)?;
    Ok(files.into_iter().map(|(name, _)| name).collect())
}

/// Fails naming the first `[report]` setting a report cannot do without: where the lab and the
/// pilot are, and who answers for the result (a certificate states them; a placeholder would be
/// sent to the pilot as if it were true).
pub fn required_settings(config: &Config) -> Result<(), Error> {
    let r = &config.report;
    let missing = [
        (
            "[artefact] manufacturer",
            "who made the travelling standard",
            &config.artefact.manufacturer,
        ),
        (
            "[report] responsible",
            "the person responsible for the result",
            &r.responsible,
        ),
        ("[report] city", "where the lab measured", &r.city),
        (
            "[report] country",
            "the lab's country, ISO 3166-1 alpha-2",
            &r.country,
        ),
        (
            "[report] pilot",
            "the pilot laboratory, to whom the report goes",
            &r.pilot,
        ),
        ("[report] pilot_city", "the pilot's city", &r.pilot_city),
        (
            "[report] pilot_country",
            "the pilot's country, ISO 3166-1 alpha-2",
            &r.pilot_country,
        ),
    ]
    .into_iter()
    .find(|(_, _, value)| value.is_none());
    match missing {
        Some((key, what, _)) => Err(Error::ReportSetting {
            key,
            what,
            origin: config.origin.clone(),
        }),
        None => Ok(()),
    }
}

/// Prints what [`make`] wrote.
pub fn print_made(made: &Made) {
    say!("{}", made.line);
    say!("report: {}", made.written.html.display());
    say!("summary: {}", made.written.summary.display());
    say!("readings: {}", made.written.readings.display());
    for plot in &made.written.plots {
        say!("plot: {}", plot.display());
    }
    if let Some(dcc) = &made.written.dcc {
        say!("DCC: {}", dcc.display());
    }
}

/// Which readings a report is of.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Only readings of official runs.
    pub official: bool,
    /// At or after, UTC µs.
    pub since: Option<i64>,
    /// At or before, UTC µs.
    pub until: Option<i64>,
    /// Of this run.
    pub run: Option<u64>,
}

impl Window {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.official {
            parts.push("official runs".to_owned());
        }
        if let Some(run) = self.run {
            parts.push(format!("run {run}"));
        }
        if let Some(t) = self.since {
            parts.push(format!("since {}", crate::clock::rfc3339(t)));
        }
        if let Some(t) = self.until {
            parts.push(format!("until {}", crate::clock::rfc3339(t)));
        }
        parts.join(", ")
    }
}

/// The config's report languages, in its order.
pub fn languages(config: &Config) -> Vec<rep::Lang> {
    config
        .report
        .languages
        .iter()
        .map(|l| match l {
            Language::Zh => rep::Lang::Zh,
            Language::En => rep::Lang::En,
        })
        .collect()
}

/// Selects the window's readings, computes the lab's result and writes the report under `out`.
pub fn make(
    config: &Config,
    store: &Store,
    window: &Window,
    instrument: Option<&str>,
    out: &std::path::Path,
    options: rep::Options,
    clock: &dyn Clock,
) -> Result<Made, Error> {
    let unit = config.artefact.unit.as_str();
    // The standard's readings: those in the artefact's unit, from one instrument.
    let selected = store.select_readings(&ReadingFilter {
        since_utc_us: window.since,
        until_utc_us: window.until,
        run_id: window.run,
        instrument,
        official: window.official,
        ..ReadingFilter::default()
    })?;
    let mut by_instrument: BTreeMap<&str, Vec<&SelectedReading>> = BTreeMap::new();
    for r in selected.iter().filter(|r| r.unit == unit) {
        by_instrument
            .entry(r.instrument.as_str())
            .or_default()
            .push(r);
    }
    let (measurer, rows) = match by_instrument.len() {
        0 => {
            return Err(Error::NothingToReport {
                unit: unit.to_owned(),
                window: window.describe(),
            });
        }
        1 => by_instrument.into_iter().next().unwrap_or_default(),
        _ => {
            return Err(Error::SeveralMeasurers {
                instruments: by_instrument.keys().copied().collect::<Vec<_>>().join(", "),
            });
        }
    };
    let measurer = measurer.to_owned();
    let invalid = rows.iter().filter(|r| r.value.is_none()).count();
    let readings: Vec<(&SelectedReading, f64)> = rows
        .iter()
        .filter_map(|r| r.value.map(|v| (*r, v)))
        .collect();
    let timed: Vec<TimedValue> = readings
        .iter()
        .map(|(r, v)| TimedValue {
            utc_us: r.utc_us,
            value: *v,
        })
        .collect();
    let begin = timed.iter().map(|t| t.utc_us).min().unwrap_or(0);
    let end = timed.iter().map(|t| t.utc_us).max().unwrap_or(0);

    // The environment: every other instrument's readings over the window, widened by the longest
    // `within` so the first and last readings find theirs.
    let reach = config
        .corrections
        .iter()
        .map(|c| c.within)
        .max()
        .unwrap_or(crate::config::DEFAULT_WITHIN);
    let reach_us = i64::try_from(reach.as_micros()).unwrap_or(i64::MAX);
    let around = store.select_readings(&ReadingFilter {
        since_utc_us: Some(begin.saturating_sub(reach_us)),
        until_utc_us: Some(end.saturating_add(reach_us)),
        ..ReadingFilter::default()
    })?;
    let mut env: BTreeMap<(String, String), EnvSeries> = BTreeMap::new();
    for r in around.iter().filter(|r| r.instrument != measurer) {
        let Some(value) = r.value else { continue };
        env.entry((r.instrument.clone(), r.quantity.clone()))
            .or_insert_with(|| EnvSeries {
                quantity: r.quantity.clone(),
                instrument: r.instrument.clone(),
                unit: r.unit.clone(),
                readings: Vec::new(),
            })
            .readings
            .push(TimedValue {
                utc_us: r.utc_us,
                value,
            });
    }
    let env: Vec<EnvSeries> = env.into_values().collect();

    let result = analysis::lab_result(&LabInput {
        readings: &timed,
        env: &env,
        corrections: &config.corrections,
        components: &config.uncertainty,
        nominal: config.artefact.nominal,
        unit: &config.artefact.unit,
    })?;
    let identities = store.instruments()?;
    let input = report_input(
        config,
        &result,
        &readings,
        invalid,
        &env,
        &measurer,
        &identities,
        clock,
    );
    let written = rep::write(out, &input, &options)?;
    let (value, u) = (result.value, result.expanded());
    let line = format!(
        "result: {} = {} {unit} ± {} (k = {:.2}, 95 %) at {}, n = {}{}",
        input.quantity.symbol,
        rep::with_uncertainty(value, u).0,
        super::display::si(u, unit),
        result.budget.k,
        crate::clock::rfc3339(result.mean_date_utc_us),
        result.n,
        match result.flagged + invalid {
            0 => String::new(),
            left => format!(" ({left} left out)"),
        }
    );
    Ok(Made { written, line })
}

/// The quantity a travelling standard of `kind` is reported in.
fn quantity(kind: &str, unit: &str) -> rep::Quantity {
    let (en, zh, symbol) = match kind.to_ascii_lowercase().as_str() {
        "zener" | "voltage" => ("output voltage", "输出电压", "U"),
        "resistor" | "resistance" => ("resistance", "电阻", "R"),
        "thermometer" | "prt" | "spr" | "sprt" => ("temperature", "温度", "t"),
        "capacitor" => ("capacitance", "电容", "C"),
        _ => ("value", "量值", "y"),
    };
    rep::Quantity {
        name: Bilingual {
            en: en.to_owned(),
            zh: zh.to_owned(),
        },
        symbol: symbol.to_owned(),
        unit: unit.to_owned(),
    }
}

/// What an environment quantity is called and written as.
fn env_names(quantity: &str) -> (Bilingual, String) {
    let (zh, symbol) = match quantity {
        "temperature" => ("温度", "t"),
        "pressure" => ("气压", "p"),
        "humidity" => ("相对湿度", "h"),
        _ => (quantity, quantity),
    };
    (
        Bilingual {
            en: quantity.to_owned(),
            zh: zh.to_owned(),
        },
        symbol.to_owned(),
    )
}

/// Maps the result, the readings and the config into the report's input.
#[allow(clippy::too_many_arguments)]
fn report_input(
    config: &Config,
    result: &LabResult,
    readings: &[(&SelectedReading, f64)],
    invalid: usize,
    env: &[EnvSeries],
    measurer: &str,
    identities: &[InstrumentRow],
    clock: &dyn Clock,
) -> ReportInput {
    let info = &config.report;
    let artefact = &config.artefact;
    let unit = artefact.unit.as_str();
    let begin = readings.iter().map(|(r, _)| r.utc_us).min().unwrap_or(0);
    let end = readings.iter().map(|(r, _)| r.utc_us).max().unwrap_or(0);
    let today = crate::clock::rfc3339(clock.now().utc_us);
    let issue_date = today.get(..10).unwrap_or("").to_owned();
    let admin = rep::Admin {
        lab_id: config.lab.id.clone(),
        lab_name: Bilingual {
            en: config.lab.name.clone(),
            zh: info.lab_name_zh.clone(),
        },
        address: info.address.clone().unwrap_or_default(),
        city: info.city.clone().unwrap_or_default(),
        country: info.country.clone().unwrap_or_default(),
        comparison_id: info.comparison.clone().unwrap_or_default(),
        comparison_title: Bilingual {
            en: info.title.clone(),
            zh: info.title_zh.clone(),
        },
        pilot: Bilingual {
            en: info.pilot.clone().unwrap_or_default(),
            zh: info
                .pilot_zh
                .clone()
                .or_else(|| info.pilot.clone())
                .unwrap_or_default(),
        },
        pilot_city: info.pilot_city.clone().unwrap_or_default(),
        pilot_country: info.pilot_country.clone().unwrap_or_default(),
        responsible: info.responsible.clone().unwrap_or_default(),
        report_id: format!(
            "{}-{}-{}",
            config.lab.id,
            artefact.id,
            crate::clock::rfc3339(end)
                .get(..10)
                .unwrap_or("")
                .replace('-', "")
        ),
        issue_date,
        window_begin_utc_us: begin,
        window_end_utc_us: end,
    };
    let method_en = info.method.clone().unwrap_or_else(|| {
        format!(
            "Readings of the travelling standard by {measurer}, logged by tsagent; each corrected to the reference conditions with the environment reading nearest in time. {}",
            result.basis.text_en()
        )
    });
    let method_zh = info.method_zh.clone().unwrap_or_else(|| {
        format!(
            "由 {measurer} 测量传递标准，tsagent 记录全部读数；每个读数按时间最近的环境读数修正到参考条件。{}",
            result.basis.text_zh()
        )
    });
    let method = Bilingual {
        en: format!("{method_en} {}", analysis::COVERAGE_RULE_EN),
        zh: format!("{method_zh}{}", analysis::COVERAGE_RULE_ZH),
    };

    let dof = |d: f64| d.is_finite().then_some(d);
    let budget = result
        .budget
        .rows
        .iter()
        .map(|r| rep::BudgetRow {
            name: Bilingual {
                en: r.name.clone(),
                zh: r.name_zh.clone(),
            },
            eval: match r.kind {
                analysis::ComponentKind::A => rep::EvalType::A,
                analysis::ComponentKind::B => rep::EvalType::B,
            },
            distribution: match r.distribution {
                None | Some(stats::Distribution::Normal { .. }) => rep::Distribution::Normal,
                Some(stats::Distribution::Rectangular) => rep::Distribution::Rectangular,
                Some(stats::Distribution::Triangular) => rep::Distribution::Triangular,
                Some(stats::Distribution::UShaped) => rep::Distribution::UShaped,
            },
            value: r.value,
            unit: r.unit.clone().unwrap_or_else(|| unit.to_owned()),
            divisor: r.divisor,
            u: r.standard_uncertainty,
            sensitivity: r.sensitivity,
            contribution: r.contribution,
            dof: dof(r.dof),
            share: r.share,
        })
        .collect();

    let report_readings = readings
        .iter()
        .zip(&result.readings)
        .map(|((r, _), c)| rep::Reading {
            seq: r.seq,
            run: r.run,
            utc_us: r.utc_us,
            raw: c.raw,
            corrected: c.corrected,
            flagged: c.flagged(),
        })
        .collect();

    let drift = result.drift.as_ref().map(|d| rep::DriftLine {
        t0_utc_us: d.origin_utc_us,
        intercept: d.fit.intercept,
        slope_per_day: d.fit.slope,
        covariance: [
            [d.fit.u_intercept.powi(2), d.fit.cov_intercept_slope],
            [d.fit.cov_intercept_slope, d.fit.u_slope.powi(2)],
        ],
        band_k: d.t_critical,
    });

    let allan = allan(result, unit);
    let environment = env
        .iter()
        .map(|s| {
            let (name, symbol) = env_names(&s.quantity);
            let mut points: Vec<(i64, f64)> =
                s.readings.iter().map(|t| (t.utc_us, t.value)).collect();
            points.sort_by_key(|p| p.0);
            rep::EnvironmentSeries {
                name,
                symbol,
                unit: s.unit.clone(),
                points,
            }
        })
        .collect();
    let conditions = env
        .iter()
        .filter_map(|s| {
            let values: Vec<f64> = s.readings.iter().map(|t| t.value).collect();
            let mean = stats::mean(&values).ok()?;
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some(rep::Condition {
                name: env_names(&s.quantity).0,
                unit: s.unit.clone(),
                mean,
                min,
                max,
            })
        })
        .collect();
    let temperature_unit = env
        .iter()
        .find(|s| s.quantity == "temperature")
        .map(|s| s.unit.clone());
    let residuals = temperature_unit.and_then(|x_unit| {
        let points: Vec<(f64, f64)> = result
            .residuals
            .iter()
            .filter_map(|r| r.temperature.map(|t| (t, r.residual)))
            .collect();
        (!points.is_empty()).then(|| rep::Residuals {
            x_symbol: "t".to_owned(),
            x_unit,
            points,
        })
    });

    // The instruments that took part, each under its latest recorded identity.
    let mut names: Vec<&str> = vec![measurer];
    names.extend(env.iter().map(|s| s.instrument.as_str()));
    names.dedup();
    let instruments = names
        .iter()
        .map(|name| {
            let identity = identities.iter().rev().find(|i| i.name == *name);
            let configured = config.instruments.iter().find(|i| i.name == *name);
            let calibration = configured.and_then(|i| i.calibration.as_ref()).map(|c| {
                let uncertainty = config.uncertainty.iter().find_map(|u| match &u.source {
                    ComponentSource::Calibration {
                        instrument,
                        uncertainty,
                        ..
                    } if instrument == *name => Some(rep::StatedUncertainty {
                        value: if uncertainty.relative {
                            uncertainty.expanded * artefact.nominal
                        } else {
                            uncertainty.expanded
                        },
                        unit: unit.to_owned(),
                        k: uncertainty.k,
                    }),
                    _ => None,
                });
                rep::Calibration {
                    certificate: c.certificate.clone(),
                    laboratory: None,
                    date: c.calibrated.to_string(),
                    due: Some(c.due.to_string()),
                    uncertainty,
                }
            });
            let role = if *name == measurer {
                Bilingual {
                    en: "measures the standard".into(),
                    zh: "测量传递标准".into(),
                }
            } else {
                Bilingual {
                    en: "environment".into(),
                    zh: "环境条件".into(),
                }
            };
            rep::Instrument {
                name: (*name).to_owned(),
                role,
                manufacturer: identity.map(|i| i.manufacturer.clone()).unwrap_or_default(),
                model: identity.map(|i| i.model.clone()).unwrap_or_default(),
                serial: identity.map(|i| i.serial.clone()).unwrap_or_default(),
                firmware: identity.map(|i| i.firmware.clone()),
                calibration,
            }
        })
        .collect();

    ReportInput {
        admin,
        artefact: rep::Artefact {
            id: artefact.id.clone(),
            kind: Bilingual::both(&artefact.kind),
            manufacturer: artefact.manufacturer.clone().unwrap_or_default(),
            model: artefact.model.clone().unwrap_or_default(),
            serial: artefact.serial.clone(),
            nominal: artefact.nominal,
            unit: unit.to_owned(),
        },
        quantity: quantity(&artefact.kind, unit),
        method,
        result: rep::LabResult {
            value: result.value,
            mean_date_utc_us: result.mean_date_utc_us,
            u_c: result.combined(),
            nu_eff: dof(result.budget.dof_eff),
            k: result.budget.k,
            expanded: result.expanded(),
            coverage_probability: 0.95,
            n: result.n,
            left_out: result.flagged + invalid,
            drift: match &result.drift {
                Some(d) => rep::DriftRate {
                    slope_per_day: d.slope_per_day,
                    u: d.u_slope_per_day,
                    significant: d.significant,
                },
                None => rep::DriftRate {
                    slope_per_day: 0.0,
                    u: 0.0,
                    significant: false,
                },
            },
        },
        budget,
        readings: report_readings,
        drift,
        allan,
        environment,
        residuals,
        instruments,
        conditions,
    }
}

/// Overlapping Allan deviations of the corrected readings at octaves of τ0, the median spacing
/// of the readings; the error bar is σ/√N of the N terms each estimate averages, the usual
/// first-order confidence for white noise (Riley, NIST SP 1065 §5.3). `None` below what an
/// Allan deviation needs (three readings at two spacings).
fn allan(result: &LabResult, unit: &str) -> Option<rep::AllanSeries> {
    let used: Vec<(i64, f64)> = result
        .readings
        .iter()
        .filter_map(|r| r.corrected.map(|c| (r.utc_us, c)))
        .collect();
    let mut gaps: Vec<i64> = used.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let tau0 = *gaps.get(gaps.len() / 2)? as f64 / 1e6;
    if !tau0.is_finite() || tau0 <= 0.0 {
        return None;
    }
    let y: Vec<f64> = used.iter().map(|u| u.1).collect();
    let table = stats::allan_table(&y, tau0).ok()?;
    let n = y.len();
    let points: Vec<rep::AllanPoint> = table
        .iter()
        .filter(|r| r.oadev.is_finite() && r.oadev > 0.0)
        .map(|r| {
            let terms = (n + 1).saturating_sub(2 * r.m).max(1) as f64;
            rep::AllanPoint {
                tau_s: r.tau,
                adev: r.oadev,
                err: r.oadev / terms.sqrt(),
            }
        })
        .collect();
    (!points.is_empty()).then(|| rep::AllanSeries {
        unit: unit.to_owned(),
        points,
    })
}
