//! `[report]`: the administrative data the report and the Digital Calibration Certificate carry.
//! Everything is optional so a lab can make a report before it has filled them in; what a DCC
//! requires and the lab left out, the report layer fills with a visible default.

use super::raw::RawReport;
use super::{Artefact, ConfigError, Lab, Validator};

/// A language the report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Language {
    /// Simplified Chinese, `zh`.
    Zh,
    /// English, `en`.
    En,
}

impl Language {
    /// The ISO 639-1 code, as configs and the DCC spell it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }
}

/// `[report]`, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInfo {
    /// The comparison's identifier, e.g. `CCEM-K11.2026`.
    pub comparison: Option<String>,
    /// Title in English (default: the travelling standard's id and what is measured).
    pub title: String,
    /// Title in Chinese.
    pub title_zh: String,
    /// The pilot laboratory, in English.
    pub pilot: Option<String>,
    /// The pilot laboratory, in Chinese.
    pub pilot_zh: Option<String>,
    /// The pilot's city.
    pub pilot_city: Option<String>,
    /// The pilot's country, ISO 3166-1 alpha-2, upper case.
    pub pilot_country: Option<String>,
    /// The lab's name in Chinese (default: `[lab] name`).
    pub lab_name_zh: String,
    /// Street address.
    pub address: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<String>,
    /// The person responsible for the result.
    pub responsible: Option<String>,
    /// The measurement method, in English.
    pub method: Option<String>,
    /// The measurement method, in Chinese.
    pub method_zh: Option<String>,
    /// Languages of the report, in the config's order (default zh, en).
    pub languages: Vec<Language>,
}

/// The officially assigned ISO 3166-1 alpha-2 codes (as in tzdata's `iso3166.tab`), sorted.
const ISO_3166_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// A text setting, `None` when absent or blank.
fn text(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl Validator<'_> {
    /// `[report]` with its defaults: titles from the artefact, the Chinese lab name from
    /// `[lab] name`, both languages.
    pub(super) fn report(
        &self,
        raw: RawReport,
        lab: &Lab,
        artefact: &Artefact,
    ) -> Result<ReportInfo, ConfigError> {
        let country = |value: &Option<toml::Spanned<String>>, key: &'static str| match value {
            None => Ok(None),
            Some(c) => {
                let code = c.get_ref().trim().to_ascii_uppercase();
                if ISO_3166_ALPHA2.binary_search(&code.as_str()).is_err() {
                    return self.invalid(
                        c.span(),
                        key,
                        format!(
                            "`{}` is not an ISO 3166-1 alpha-2 country code, e.g. \"CN\" or \"DE\"",
                            c.get_ref()
                        ),
                    );
                }
                Ok(Some(code))
            }
        };
        let pilot_country = country(&raw.pilot_country, "report.pilot_country")?;
        let country = country(&raw.country, "report.country")?;
        let languages = match &raw.languages {
            None => vec![Language::Zh, Language::En],
            Some(list) => {
                let mut out = Vec::with_capacity(list.get_ref().len());
                for l in list.get_ref() {
                    let lang = match l.trim() {
                        "zh" => Language::Zh,
                        "en" => Language::En,
                        other => {
                            return self.invalid(
                                list.span(),
                                "report.languages",
                                format!("`{other}`: the report is written in \"zh\" and \"en\""),
                            );
                        }
                    };
                    if out.contains(&lang) {
                        return self.invalid(
                            list.span(),
                            "report.languages",
                            format!("\"{}\" is listed twice", lang.code()),
                        );
                    }
                    out.push(lang);
                }
                if out.is_empty() {
                    return self.invalid(
                        list.span(),
                        "report.languages",
                        "name at least one of \"zh\" and \"en\"",
                    );
                }
                out
            }
        };
        Ok(ReportInfo {
            comparison: text(raw.comparison),
            title: text(raw.title).unwrap_or_else(|| {
                format!("Measurement of the travelling standard {}", artefact.id)
            }),
            title_zh: text(raw.title_zh)
                .unwrap_or_else(|| format!("传递标准 {} 测量结果", artefact.id)),
            pilot: text(raw.pilot),
            pilot_zh: text(raw.pilot_zh),
            pilot_city: text(raw.pilot_city),
            pilot_country,
            lab_name_zh: text(raw.lab_name_zh).unwrap_or_else(|| lab.name.clone()),
            address: text(raw.address),
            city: text(raw.city),
            country,
            responsible: text(raw.responsible),
            method: text(raw.method),
            method_zh: text(raw.method_zh),
            languages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ISO_3166_ALPHA2;

    #[test]
    fn the_country_codes_are_sorted_for_binary_search() {
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ISO_3166_ALPHA2.len(), 249);
    }
}
