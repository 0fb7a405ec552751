//! The result as a PTB Digital Calibration Certificate 3.2.0 (D-SI 2.1.0 quantities), valid against
//! the official schema (`xmllint --schema tests/data/dcc-3.2.0/dcc_3_2_0_local.xsd`, a test).
//! Every name is given in Chinese and English (`dcc:content lang=…`), both languages declared used
//! and mandatory. The elements follow the schema's sequences, so their order here is not free.

use std::fmt::Write as _;

use super::error::ReportError;
use super::input::{Bilingual, ReportInput};
use super::text::{esc, squeeze, xml_number};
use super::units::dsi;

/// `<dcc:content lang="zh">…</dcc:content><dcc:content lang="en">…</dcc:content>`, an empty
/// Chinese text falling back to the English one so each language has content.
fn contents(text: &Bilingual) -> String {
    let en = squeeze(&text.en);
    let zh = squeeze(&text.zh);
    let zh = if zh.is_empty() { en.clone() } else { zh };
    format!(
        r#"<dcc:content lang="zh">{}</dcc:content><dcc:content lang="en">{}</dcc:content>"#,
        esc(&zh),
        esc(&en)
    )
}

fn text_el(tag: &str, text: &Bilingual) -> String {
    format!("<dcc:{tag}>{}</dcc:{tag}>", contents(text))
}

/// A `notEmptyStringType` element, or nothing when the text is empty.
fn string_el(tag: &str, text: &str) -> String {
    let t = squeeze(text);
    if t.is_empty() {
        String::new()
    } else {
        format!("<dcc:{tag}>{}</dcc:{tag}>", esc(&t))
    }
}

fn identification(issuer: &str, value: &str, what: Bilingual) -> String {
    let v = squeeze(value);
    if v.is_empty() {
        return String::new();
    }
    format!(
        "<dcc:identification><dcc:issuer>{issuer}</dcc:issuer><dcc:value>{}</dcc:value>{}</dcc:identification>",
        esc(&v),
        text_el("name", &what)
    )
}

/// An `identifications` list, or nothing when it would be empty (the schema wants one or more).
fn identifications(ids: &str) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!("<dcc:identifications>{ids}</dcc:identifications>")
    }
}

fn bi(en: &str, zh: &str) -> Bilingual {
    Bilingual {
        en: en.into(),
        zh: zh.into(),
    }
}

/// The coverage factor as D-SI's `kValueType` takes it: plain decimals, at least 1.
fn k_text(k: f64) -> String {
    let t = format!("{k:.3}");
    let t = t.trim_end_matches('0');
    t.strip_suffix('.').unwrap_or(t).to_owned()
}

/// A probability as D-SI's `probabilityValueType` takes it: `0.95`, `1`.
fn probability_text(p: f64) -> String {
    if p >= 1.0 {
        return "1".into();
    }
    let t = format!("{p:.4}");
    t.trim_end_matches('0').to_owned()
}

/// The certificate.
pub fn render(input: &ReportInput) -> Result<String, ReportError> {
    let a = &input.admin;
    let r = &input.result;
    let art = &input.artefact;
    let q = &input.quantity;
    let unit = dsi(&q.unit)?;
    let date = |us: i64| super::text_utc(us).get(..10).unwrap_or_default().to_owned();
    let mut x = String::new();
    x.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>
<dcc:digitalCalibrationCertificate xmlns:dcc="https://ptb.de/dcc" xmlns:si="https://ptb.de/si" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="https://ptb.de/dcc https://ptb.de/dcc/v3.2.0/dcc.xsd" schemaVersion="3.2.0">
<dcc:administrativeData>
"#);
    let _ = writeln!(
        x,
        "<dcc:dccSoftware><dcc:software>{}<dcc:release>{}</dcc:release></dcc:software></dcc:dccSoftware>",
        text_el("name", &Bilingual::both("tsagent")),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        x,
        "<dcc:coreData><dcc:countryCodeISO3166_1>{}</dcc:countryCodeISO3166_1><dcc:usedLangCodeISO639_1>zh</dcc:usedLangCodeISO639_1><dcc:usedLangCodeISO639_1>en</dcc:usedLangCodeISO639_1><dcc:mandatoryLangCodeISO639_1>zh</dcc:mandatoryLangCodeISO639_1><dcc:mandatoryLangCodeISO639_1>en</dcc:mandatoryLangCodeISO639_1><dcc:uniqueIdentifier>{}</dcc:uniqueIdentifier>{}<dcc:beginPerformanceDate>{}</dcc:beginPerformanceDate><dcc:endPerformanceDate>{}</dcc:endPerformanceDate><dcc:performanceLocation>laboratory</dcc:performanceLocation><dcc:issueDate>{}</dcc:issueDate></dcc:coreData>",
        esc(&a.country),
        esc(&squeeze(&a.report_id)),
        identifications(&identification(
            "customer",
            &a.comparison_id,
            bi("comparison", "比对")
        )),
        date(a.window_begin_utc_us),
        date(a.window_end_utc_us),
        esc(&a.issue_date),
    );
    // The travelling standard, its identities and its nominal value.
    let _ = writeln!(
        x,
        r#"<dcc:items><dcc:item>{}<dcc:manufacturer>{}</dcc:manufacturer>{}<dcc:identifications>{}{}</dcc:identifications><dcc:itemQuantities><dcc:itemQuantity>{}<si:real><si:value>{}</si:value><si:unit>{}</si:unit></si:real></dcc:itemQuantity></dcc:itemQuantities></dcc:item></dcc:items>"#,
        text_el("name", &art.kind),
        text_el("name", &Bilingual::both(&art.manufacturer)),
        string_el("model", &art.model),
        identification("customer", &art.id, bi("travelling standard", "传递标准")),
        identification("manufacturer", &art.serial, bi("serial number", "序列号")),
        text_el("name", &bi("nominal value", "标称值")),
        xml_number(art.nominal),
        esc(&dsi(&art.unit)?),
    );
    let location = |city: &str, country: &str, street: &str| {
        format!(
            "<dcc:location>{}<dcc:countryCode>{}</dcc:countryCode>{}</dcc:location>",
            string_el("city", city),
            esc(country),
            string_el("street", street)
        )
    };
    let _ = writeln!(
        x,
        "<dcc:calibrationLaboratory>{}<dcc:contact>{}{}</dcc:contact></dcc:calibrationLaboratory>",
        string_el("calibrationLaboratoryCode", &a.lab_id),
        text_el("name", &a.lab_name),
        location(&a.city, &a.country, &a.address),
    );
    let _ = writeln!(
        x,
        "<dcc:respPersons><dcc:respPerson><dcc:person>{}</dcc:person><dcc:mainSigner>true</dcc:mainSigner></dcc:respPerson></dcc:respPersons>",
        text_el("name", &Bilingual::both(&a.responsible)),
    );
    let _ = writeln!(
        x,
        "<dcc:customer>{}{}</dcc:customer>\n</dcc:administrativeData>",
        text_el("name", &a.pilot),
        location(&a.pilot_city, &a.pilot_country, ""),
    );

    // The measurement result.
    x.push_str("<dcc:measurementResults><dcc:measurementResult>");
    x.push_str(&text_el(
        "name",
        &Bilingual {
            en: format!("{} of {}", q.name.en, art.kind.en),
            zh: format!("{}{}", art.kind.zh, q.name.zh),
        },
    ));
    let _ = write!(
        x,
        "\n<dcc:usedMethods><dcc:usedMethod>{}<dcc:description>{}</dcc:description><dcc:reference>GUM (JCGM 100:2008)</dcc:reference></dcc:usedMethod></dcc:usedMethods>\n",
        text_el(
            "name",
            &bi(
                "stability monitoring with drift fit and uncertainty budget",
                "稳定性监测、漂移拟合与不确定度评定"
            )
        ),
        contents(&input.method),
    );
    if !input.instruments.is_empty() {
        x.push_str("<dcc:measuringEquipments>");
        for ins in &input.instruments {
            x.push_str(&equipment(ins)?);
        }
        x.push_str("</dcc:measuringEquipments>\n");
    }
    if !input.conditions.is_empty() {
        x.push_str("<dcc:influenceConditions>");
        for c in &input.conditions {
            let _ = write!(
                x,
                "<dcc:influenceCondition>{}<dcc:description>{}</dcc:description><dcc:data><dcc:quantity>{}<si:real><si:value>{}</si:value><si:unit>{}</si:unit></si:real></dcc:quantity></dcc:data></dcc:influenceCondition>",
                text_el("name", &c.name),
                contents(&Bilingual {
                    en: format!(
                        "mean over the window; from {} to {}",
                        xml_number(c.min),
                        xml_number(c.max)
                    ),
                    zh: format!(
                        "测量时段内的平均值；范围 {} 至 {}",
                        xml_number(c.min),
                        xml_number(c.max)
                    ),
                }),
                text_el("name", &bi("mean", "平均值")),
                xml_number(c.mean),
                esc(&dsi(&c.unit)?),
            );
        }
        x.push_str("</dcc:influenceConditions>\n");
    }
    let dof_text = match r.nu_eff {
        Some(v) => format!("{:.0}", v.floor()),
        None => "∞".into(),
    };
    let _ = write!(
        x,
        "<dcc:results><dcc:result>{}<dcc:description>{}</dcc:description><dcc:data><dcc:quantity>{}<si:real><si:value>{}</si:value><si:unit>{}</si:unit><si:dateTime>{}</si:dateTime><si:expandedUnc><si:uncertainty>{}</si:uncertainty><si:coverageFactor>{}</si:coverageFactor><si:coverageProbability>{}</si:coverageProbability><si:distribution>{}</si:distribution></si:expandedUnc></si:real></dcc:quantity></dcc:data></dcc:result>",
        text_el("name", &bi("value at the mean date", "平均日期的值")),
        contents(&Bilingual {
            en: format!(
                "{} readings ({} left out); combined standard uncertainty {}; effective degrees of freedom {dof_text}",
                r.n,
                r.left_out,
                xml_number(r.u_c)
            ),
            zh: format!(
                "{} 个读数（剔除 {} 个）；合成标准不确定度 {}；有效自由度 {dof_text}",
                r.n,
                r.left_out,
                xml_number(r.u_c)
            ),
        }),
        text_el("name", &q.name),
        xml_number(r.value),
        esc(&unit),
        super::text_utc_s(r.mean_date_utc_us),
        xml_number(r.expanded.abs()),
        k_text(r.k),
        probability_text(r.coverage_probability),
        if r.nu_eff.is_some() { "t" } else { "normal" },
    );
    // The drift, with its standard uncertainty (k = 1).
    let _ = write!(
        x,
        "<dcc:result>{}<dcc:description>{}</dcc:description><dcc:data><dcc:quantity>{}<si:real><si:value>{}</si:value><si:unit>{}\\day\\tothe{{-1}}</si:unit><si:expandedUnc><si:uncertainty>{}</si:uncertainty><si:coverageFactor>1</si:coverageFactor><si:coverageProbability>0.683</si:coverageProbability><si:distribution>normal</si:distribution></si:expandedUnc></si:real></dcc:quantity></dcc:data></dcc:result></dcc:results>",
        text_el("name", &bi("drift rate", "漂移率")),
        contents(&if r.drift.significant {
            bi("significant", "显著")
        } else {
            bi("not significant", "不显著")
        }),
        text_el("name", &bi("slope per day", "每日斜率")),
        xml_number(r.drift.slope_per_day),
        esc(&unit),
        xml_number(r.drift.u.abs()),
    );
    x.push_str("\n</dcc:measurementResult></dcc:measurementResults>\n</dcc:digitalCalibrationCertificate>\n");
    Ok(x)
}

/// One instrument: name, role, make, model, serial and certificate number as identifications,
/// its calibration in the description and its stated uncertainty as a quantity.
fn equipment(ins: &super::input::Instrument) -> Result<String, ReportError> {
    let mut e = String::from("<dcc:measuringEquipment>");
    e.push_str(&text_el(
        "name",
        &Bilingual {
            en: format!("{} ({})", ins.name, ins.role.en),
            zh: format!(
                "{}（{}）",
                ins.name,
                if ins.role.zh.is_empty() {
                    &ins.role.en
                } else {
                    &ins.role.zh
                }
            ),
        },
    ));
    let mut en = Vec::new();
    let mut zh = Vec::new();
    if let Some(f) = &ins.firmware {
        en.push(format!("firmware {f}"));
        zh.push(format!("固件 {f}"));
    }
    if let Some(c) = &ins.calibration {
        let by = c.laboratory.as_deref().unwrap_or("");
        en.push(format!(
            "calibrated {} {by} (certificate {})",
            c.date, c.certificate
        ));
        zh.push(format!(
            "校准日期 {} {by}（证书 {}）",
            c.date, c.certificate
        ));
        if let Some(due) = &c.due {
            en.push(format!("due {due}"));
            zh.push(format!("到期 {due}"));
        }
    }
    if !en.is_empty() {
        let _ = write!(
            e,
            "<dcc:description>{}</dcc:description>",
            contents(&Bilingual {
                en: en.join("; "),
                zh: zh.join("；"),
            })
        );
    }
    if !ins.manufacturer.trim().is_empty() {
        let _ = write!(
            e,
            "<dcc:manufacturer>{}</dcc:manufacturer>",
            text_el("name", &Bilingual::both(&ins.manufacturer))
        );
    }
    e.push_str(&string_el("model", &ins.model));
    let mut ids = identification("manufacturer", &ins.serial, bi("serial number", "序列号"));
    if let Some(c) = &ins.calibration {
        ids.push_str(&identification(
            "calibrationLaboratory",
            &c.certificate,
            bi("calibration certificate", "校准证书"),
        ));
    }
    e.push_str(&identifications(&ids));
    if let Some(u) = ins
        .calibration
        .as_ref()
        .and_then(|c| c.uncertainty.as_ref())
    {
        let _ = write!(
            e,
            "<dcc:measuringEquipmentQuantities><dcc:measuringEquipmentQuantity>{}<si:real><si:value>{}</si:value><si:unit>{}</si:unit></si:real></dcc:measuringEquipmentQuantity></dcc:measuringEquipmentQuantities>",
            text_el(
                "name",
                &Bilingual {
                    en: format!("expanded calibration uncertainty (k = {})", k_text(u.k)),
                    zh: format!("校准扩展不确定度（k = {}）", k_text(u.k)),
                }
            ),
            xml_number(u.value.abs()),
            esc(&dsi(&u.unit)?),
        );
    }
    e.push_str("</dcc:measuringEquipment>");
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_take_the_schemas_forms() {
        assert_eq!(k_text(2.0), "2");
        assert_eq!(k_text(2.1604), "2.16");
        assert_eq!(probability_text(0.95), "0.95");
        assert_eq!(probability_text(1.0), "1");
    }

    #[test]
    fn names_are_in_both_languages_and_escaped() {
        let c = contents(&bi("R&D  lab", ""));
        assert_eq!(
            c,
            r#"<dcc:content lang="zh">R&amp;D lab</dcc:content><dcc:content lang="en">R&amp;D lab</dcc:content>"#
        );
    }
}
