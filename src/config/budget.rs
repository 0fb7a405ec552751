//! `[[correction]]`, `[[uncertainty]]` and the uncertainty of `[instrument.calibration]`: what the
//! lab's result is corrected for and what its uncertainty budget holds, checked here so that a
//! budget that cannot be computed is refused at `config check`, not when the report is due.

use std::collections::BTreeSet;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawCalibration, RawCorrection, RawDistribution, RawUncertainty};
use super::{ConfigError, Instrument, Sequence, Step, Validator};
use crate::drivers::ReplySpec;
use crate::stats::Distribution;

/// A correction applied when none gives `within`: environment sensors are read every few
/// minutes, and an older reading no longer describes the conditions of the measurement.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(600);

/// `[[correction]]`: the measurand corrected to a reference condition of one environment quantity,
/// `corrected = reading − c·(x − reference)` (times the nominal value when `relative`).
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    /// The environment quantity, as its readings name it (`temperature`, `pressure`).
    pub quantity: String,
    /// The instrument whose readings of it are used.
    pub instrument: String,
    /// The coefficient c: measurand unit per quantity unit, or per quantity unit relative to the
    /// nominal value when `relative`.
    pub coefficient: f64,
    /// Standard uncertainty of c, in c's unit.
    pub u: f64,
    /// The reference condition.
    pub reference: f64,
    /// c is relative to the artefact's nominal value (as the BIPM's 1.81e-9/hPa for Zeners).
    pub relative: bool,
    /// Standard uncertainty of the sensor's reading, in the quantity's unit, when the lab gives it.
    pub u_quantity: Option<f64>,
    /// Longest time between a reading and the environment reading used for it.
    pub within: Duration,
    /// The quantity's name in Chinese (a known name's translation by default).
    pub name_zh: String,
}

/// `[[uncertainty]]`: one component of the budget besides the Type A one and the corrections'.
#[derive(Debug, Clone, PartialEq)]
pub struct UncertaintyComponent {
    /// Name in English.
    pub name: String,
    /// Name in Chinese (the English one when the config gives none).
    pub name_zh: String,
    /// Sensitivity coefficient c_i.
    pub sensitivity: f64,
    /// Where the value comes from.
    pub source: ComponentSource,
}

/// Where a budget component's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ComponentSource {
    /// Stated in the config: a value under an assumed distribution.
    Stated {
        /// The distribution (with k when normal).
        distribution: Distribution,
        /// Normal: the expanded uncertainty; otherwise the half-width a.
        value: f64,
        /// Degrees of freedom; infinite when not stated.
        dof: f64,
    },
    /// An instrument's calibration certificate.
    Calibration {
        /// The instrument.
        instrument: String,
        /// The certificate's reference.
        certificate: String,
        /// What the certificate states.
        uncertainty: CalibrationUncertainty,
    },
}

/// The uncertainty a calibration certificate states for an instrument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationUncertainty {
    /// Expanded uncertainty U, in the measurand's unit or, when `relative`, as a fraction of the
    /// reading.
    pub expanded: f64,
    /// Coverage factor k of U.
    pub k: f64,
    /// U is a fraction of the reading.
    pub relative: bool,
    /// Degrees of freedom of U/k; infinite when the certificate states none.
    pub dof: f64,
}

/// The Chinese name of an environment quantity tsagent's drivers read, for a report that needs one
/// when the config gives none.
fn known_name_zh(quantity: &str) -> Option<&'static str> {
    Some(match quantity {
        "temperature" => "温度",
        "pressure" => "气压",
        "humidity" => "湿度",
        _ => return None,
    })
}

impl Validator<'_> {
    /// A number that must be finite (TOML allows `inf` and `nan`).
    fn finite(&self, v: &Spanned<f64>, key: &str) -> Result<f64, ConfigError> {
        let x = *v.get_ref();
        if x.is_finite() {
            Ok(x)
        } else {
            self.invalid(v.span(), key, "must be a finite number")
        }
    }

    /// A standard or expanded uncertainty: finite and ≥ 0 (or > 0 when `positive`).
    fn uncertainty_value(
        &self,
        v: &Spanned<f64>,
        key: &str,
        positive: bool,
    ) -> Result<f64, ConfigError> {
        let x = *v.get_ref();
        if x.is_finite() && (x > 0.0 || (!positive && x == 0.0)) {
            Ok(x)
        } else if positive {
            self.invalid(v.span(), key, "a positive number")
        } else {
            self.invalid(v.span(), key, "zero or a positive number")
        }
    }

    /// Degrees of freedom: positive, `inf` allowed; infinite when absent.
    fn dof(&self, v: Option<&Spanned<f64>>, key: &str) -> Result<f64, ConfigError> {
        match v {
            None => Ok(f64::INFINITY),
            Some(v) if *v.get_ref() > 0.0 => Ok(*v.get_ref()),
            Some(v) => self.invalid(
                v.span(),
                key,
                "positive degrees of freedom (or `inf`), e.g. 50",
            ),
        }
    }

    /// A coverage factor: finite and positive.
    fn coverage(&self, v: &Spanned<f64>, key: &str) -> Result<f64, ConfigError> {
        let k = *v.get_ref();
        if k.is_finite() && k > 0.0 {
            Ok(k)
        } else {
            self.invalid(v.span(), key, "a positive coverage factor, e.g. 2")
        }
    }

    /// The uncertainty part of `[instrument.calibration]`, when stated.
    pub(super) fn calibration_uncertainty(
        &self,
        raw: &RawCalibration,
    ) -> Result<Option<CalibrationUncertainty>, ConfigError> {
        const KEY: &str = "instrument.calibration";
        let Some(u) = &raw.uncertainty else {
            if let Some(k) = &raw.k {
                return self.invalid(k.span(), &format!("{KEY}.k"), "needs `uncertainty`");
            }
            if let Some(d) = &raw.dof {
                return self.invalid(d.span(), &format!("{KEY}.dof"), "needs `uncertainty`");
            }
            if raw.relative.is_some() {
                return self.invalid(
                    raw.certificate.span(),
                    &format!("{KEY}.relative"),
                    "needs `uncertainty`",
                );
            }
            return Ok(None);
        };
        let expanded = self.uncertainty_value(u, &format!("{KEY}.uncertainty"), true)?;
        let Some(k) = &raw.k else {
            return self.invalid(
                u.span(),
                &format!("{KEY}.k"),
                "give the coverage factor the certificate states with `uncertainty`, e.g. k = 2",
            );
        };
        Ok(Some(CalibrationUncertainty {
            expanded,
            k: self.coverage(k, &format!("{KEY}.k"))?,
            relative: raw.relative.unwrap_or(false),
            dof: self.dof(raw.dof.as_ref(), &format!("{KEY}.dof"))?,
        }))
    }

    /// `[[correction]]`s, each on an environment quantity some instrument reads.
    pub(super) fn corrections(
        &self,
        raw: &[RawCorrection],
        instruments: &[Instrument],
        sequences: &[Sequence],
        nominal: f64,
    ) -> Result<Vec<Correction>, ConfigError> {
        let mut out: Vec<Correction> = Vec::with_capacity(raw.len());
        for r in raw {
            let quantity = r.quantity.get_ref().trim().to_owned();
            if quantity.is_empty() {
                return self.invalid(
                    r.quantity.span(),
                    "correction.quantity",
                    "must not be empty",
                );
            }
            let readers = readers_of(&quantity, instruments, sequences);
            let instrument = match &r.instrument {
                Some(i) => {
                    let name = self.instrument_ref(i, instruments, "correction.instrument")?;
                    if !readers.contains(&name) {
                        return self.invalid(
                            i.span(),
                            "correction.instrument",
                            format!("no sequence reads `{quantity}` from `{name}`"),
                        );
                    }
                    name
                }
                None => match readers.len() {
                    1 => readers.into_iter().next().unwrap_or_default(),
                    0 => {
                        return self.invalid(
                            r.quantity.span(),
                            "correction.quantity",
                            format!("no sequence reads a quantity `{quantity}`"),
                        );
                    }
                    _ => {
                        let names: Vec<String> = readers.into_iter().collect();
                        return self.invalid(
                            r.quantity.span(),
                            "correction.instrument",
                            format!(
                                "`{quantity}` is read by {}: name the one to use",
                                names.join(", ")
                            ),
                        );
                    }
                },
            };
            if out
                .iter()
                .any(|c| c.quantity == quantity && c.instrument == instrument)
            {
                return self.invalid(
                    r.quantity.span(),
                    "correction.quantity",
                    format!("`{quantity}` of `{instrument}` is corrected for twice"),
                );
            }
            let relative = r.relative.unwrap_or(false);
            if relative && nominal == 0.0 {
                return self.invalid(
                    r.coefficient.span(),
                    "correction.relative",
                    "needs a nonzero `artefact.nominal`: the coefficient is relative to it",
                );
            }
            let within = match &r.within {
                Some(w) => {
                    let d = self.duration(w, "correction.within")?;
                    if d.is_zero() {
                        return self.invalid(
                            w.span(),
                            "correction.within",
                            "longer than 0s, e.g. \"10m\"",
                        );
                    }
                    d
                }
                None => DEFAULT_WITHIN,
            };
            let name_zh = match r.name_zh.as_deref().map(str::trim) {
                Some(n) if !n.is_empty() => n.to_owned(),
                _ => known_name_zh(&quantity).map_or_else(|| quantity.clone(), str::to_owned),
            };
            out.push(Correction {
                coefficient: self.finite(&r.coefficient, "correction.coefficient")?,
                u: self.uncertainty_value(&r.u, "correction.u", false)?,
                reference: self.finite(&r.reference, "correction.reference")?,
                relative,
                u_quantity: match &r.u_quantity {
                    Some(u) => Some(self.uncertainty_value(u, "correction.u_quantity", false)?),
                    None => None,
                },
                within,
                name_zh,
                quantity,
                instrument,
            });
        }
        Ok(out)
    }

    /// `[[uncertainty]]` components, a calibration one resolved against its instrument.
    pub(super) fn uncertainty_components(
        &self,
        raw: &[RawUncertainty],
        instruments: &[Instrument],
    ) -> Result<Vec<UncertaintyComponent>, ConfigError> {
        let mut out: Vec<UncertaintyComponent> = Vec::with_capacity(raw.len());
        for r in raw {
            let name = r.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return self.invalid(r.name.span(), "uncertainty.name", "must not be empty");
            }
            if out.iter().any(|c| c.name == name) {
                return self.invalid(
                    r.name.span(),
                    "uncertainty.name",
                    format!("`{name}` is listed twice"),
                );
            }
            let sensitivity = match &r.sensitivity {
                Some(s) => self.finite(s, "uncertainty.sensitivity")?,
                None => 1.0,
            };
            let source = match &r.calibration {
                Some(c) => self.calibration_component(r, c, instruments)?,
                None => self.stated_component(r)?,
            };
            let name_zh = match r.name_zh.as_deref().map(str::trim) {
                Some(n) if !n.is_empty() => n.to_owned(),
                _ => name.clone(),
            };
            out.push(UncertaintyComponent {
                name,
                name_zh,
                sensitivity,
                source,
            });
        }
        Ok(out)
    }

    /// `calibration = "<instrument>"`: the certificate's U, k and ν, nothing stated beside them.
    fn calibration_component(
        &self,
        r: &RawUncertainty,
        c: &Spanned<String>,
        instruments: &[Instrument],
    ) -> Result<ComponentSource, ConfigError> {
        let stated: [(&str, Option<std::ops::Range<usize>>); 4] = [
            ("distribution", r.distribution.as_ref().map(Spanned::span)),
            ("value", r.value.as_ref().map(Spanned::span)),
            ("k", r.k.as_ref().map(Spanned::span)),
            ("dof", r.dof.as_ref().map(Spanned::span)),
        ];
        if let Some((key, Some(span))) = stated.into_iter().find(|(_, s)| s.is_some()) {
            return self.invalid(
                span,
                &format!("uncertainty.{key}"),
                "a `calibration` component takes its value from the instrument's certificate: remove it",
            );
        }
        let instrument = self.instrument_ref(c, instruments, "uncertainty.calibration")?;
        let calibration = instruments
            .iter()
            .find(|i| i.name == instrument)
            .and_then(|i| i.calibration.as_ref());
        let Some(calibration) = calibration else {
            return self.invalid(
                c.span(),
                "uncertainty.calibration",
                format!(
                    "instrument `{instrument}` has no `calibration`: give it one with `uncertainty` and `k`"
                ),
            );
        };
        let Some(uncertainty) = calibration.uncertainty else {
            return self.invalid(
                c.span(),
                "uncertainty.calibration",
                format!(
                    "the calibration of `{instrument}` states no `uncertainty` and `k`: add them from its certificate"
                ),
            );
        };
        Ok(ComponentSource::Calibration {
            certificate: calibration.certificate.clone(),
            instrument,
            uncertainty,
        })
    }

    /// A Type B component stated with its distribution.
    fn stated_component(&self, r: &RawUncertainty) -> Result<ComponentSource, ConfigError> {
        let Some(distribution) = &r.distribution else {
            return self.invalid(
                r.name.span(),
                "uncertainty.distribution",
                "give `distribution` (normal, rectangular, triangular or u-shaped) and `value`, or `calibration = \"<instrument>\"`",
            );
        };
        let Some(value) = &r.value else {
            return self.invalid(
                distribution.span(),
                "uncertainty.value",
                "is required: the expanded uncertainty of a normal distribution, else the half-width",
            );
        };
        let value = self.uncertainty_value(value, "uncertainty.value", true)?;
        let distribution = match (distribution.get_ref(), &r.k) {
            (RawDistribution::Normal, Some(k)) => Distribution::Normal {
                k: self.coverage(k, "uncertainty.k")?,
            },
            (RawDistribution::Normal, None) => {
                return self.invalid(
                    distribution.span(),
                    "uncertainty.k",
                    "a normal `value` is an expanded uncertainty: give its coverage factor, e.g. k = 2",
                );
            }
            (_, Some(k)) => {
                return self.invalid(
                    k.span(),
                    "uncertainty.k",
                    "only a normal distribution has a coverage factor; `value` is the half-width",
                );
            }
            (RawDistribution::Rectangular, None) => Distribution::Rectangular,
            (RawDistribution::Triangular, None) => Distribution::Triangular,
            (RawDistribution::UShaped, None) => Distribution::UShaped,
        };
        Ok(ComponentSource::Stated {
            distribution,
            value,
            dof: self.dof(r.dof.as_ref(), "uncertainty.dof")?,
        })
    }
}

/// The instruments whose read steps yield `quantity`: named by the step, or by a capture of the
/// operation's reply pattern (a PTU300's `temperature`).
fn readers_of(
    quantity: &str,
    instruments: &[Instrument],
    sequences: &[Sequence],
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for step in sequences.iter().flat_map(|s| &s.steps) {
        let Step::Read(r) = step else { continue };
        let named = r.quantity.as_deref().map(str::trim) == Some(quantity);
        let captured = instruments
            .iter()
            .find(|i| i.name == r.instrument)
            .and_then(|i| i.profile.operation(&r.op))
            .and_then(|o| o.reply.as_ref())
            .is_some_and(|reply| match reply {
                ReplySpec::Regex { pattern, .. } => {
                    pattern.capture_names().flatten().any(|n| n == quantity)
                }
                _ => false,
            });
        if named || captured {
            out.insert(r.instrument.clone());
        }
    }
    out
}
