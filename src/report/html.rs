//! `report.html`: one self-contained page (inline CSS and SVG, no script, no external resource)
//! that reads on screen and prints on A4, its labels in the languages asked for.

use std::fmt::Write as _;

use super::input::{Distribution, EvalType, ReportInput};
use super::plots::Figure;
use super::text::{Lang, dof, esc, label, name, sig, with_uncertainty};
use super::units::{prefix_for, takes_prefix};

const STYLE: &str = "body{font-family:'DejaVu Sans','WenQuanYi Micro Hei','Noto Sans CJK SC',sans-serif;margin:2em auto;max-width:52em;color:#111;line-height:1.4}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #999;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.15em .6em;text-align:left;vertical-align:top}\
thead th{border-bottom:1px solid #333}tbody tr:last-child td{border-bottom:1px solid #333}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}table.kv th{font-weight:normal;color:#444}\
tfoot td{font-weight:bold}.big{font-size:1.25em}figure{margin:1em 0;break-inside:avoid}\
figure svg{max-width:100%;height:auto}figcaption{font-size:.9em;color:#333}\
.sub{color:#444}footer{margin-top:2em;font-size:.85em;color:#555}\
@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid}table{break-inside:avoid}a{color:inherit;text-decoration:none}}\
@page{size:A4;margin:15mm}";

fn distribution(langs: &[Lang], d: Distribution) -> String {
    match d {
        Distribution::Normal => label(langs, "normal", "正态"),
        Distribution::Rectangular => label(langs, "rectangular", "矩形"),
        Distribution::Triangular => label(langs, "triangular", "三角"),
        Distribution::UShaped => label(langs, "U-shaped", "反正弦"),
    }
}

/// The page.
pub fn render(input: &ReportInput, figures: &[Figure], langs: &[Lang]) -> String {
    let a = &input.admin;
    let r = &input.result;
    let q = &input.quantity;
    let l = |en: &str, zh: &str| esc(&label(langs, en, zh));
    let html_lang = match langs.first() {
        Some(Lang::Zh) => "zh",
        _ => "en",
    };
    let mut p = String::new();
    let _ = write!(
        p,
        r#"<!doctype html><html lang="{html_lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{title} — {lab} — {report}</title><style>{STYLE}</style></head><body>"#,
        title = l("Measurement report", "测量报告"),
        lab = esc(&a.lab_id),
        report = esc(&a.report_id),
    );
    let _ = write!(
        p,
        r#"<header><h1>{}</h1><p class="sub">{} — {}</p></header>"#,
        l("Measurement report", "测量报告"),
        esc(&name(langs, &a.comparison_title)),
        esc(&name(langs, &a.lab_name)),
    );

    // Administrative data.
    let _ = write!(
        p,
        r#"<section id="admin"><h2>{}</h2><table class="kv">"#,
        l("Administrative data", "管理信息")
    );
    let kv = |p: &mut String, k: String, v: String| {
        let _ = write!(p, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    kv(&mut p, l("Report", "报告编号"), esc(&a.report_id));
    kv(&mut p, l("Issued", "签发日期"), esc(&a.issue_date));
    kv(
        &mut p,
        l("Comparison", "比对"),
        format!(
            "{} — {}",
            esc(&a.comparison_id),
            esc(&name(langs, &a.comparison_title))
        ),
    );
    kv(
        &mut p,
        l("Pilot", "主导实验室"),
        esc(&format!(
            "{}, {}, {}",
            name(langs, &a.pilot),
            a.pilot_city,
            a.pilot_country
        )),
    );
    kv(
        &mut p,
        l("Laboratory", "实验室"),
        esc(&format!("{} ({})", name(langs, &a.lab_name), a.lab_id)),
    );
    kv(
        &mut p,
        l("Address", "地址"),
        esc(&format!("{}, {}, {}", a.address, a.city, a.country)),
    );
    kv(&mut p, l("Responsible", "负责人"), esc(&a.responsible));
    let art = &input.artefact;
    kv(
        &mut p,
        l("Travelling standard", "传递标准"),
        esc(&format!(
            "{}: {} {} {}, s/n {}, {} {} {}",
            art.id,
            art.manufacturer,
            art.model,
            name(langs, &art.kind),
            art.serial,
            label(langs, "nominal", "标称值"),
            art.nominal,
            art.unit
        )),
    );
    kv(
        &mut p,
        l("Measurement window", "测量时段"),
        esc(&format!(
            "{} — {}",
            super::text_utc_s(a.window_begin_utc_us),
            super::text_utc_s(a.window_end_utc_us)
        )),
    );
    p.push_str("</table></section>");

    // The result: the value in the quantity's unit, to the digits its uncertainty shows;
    // uncertainties and drift in the prefixed unit that reads best (0.40 µV, not 0.00000040 V).
    let (value, _) = with_uncertainty(r.value, r.u_c);
    let (prefix, f) = if takes_prefix(&q.unit) {
        prefix_for(r.expanded)
    } else {
        ("", 1.0)
    };
    let small = esc(&format!("{prefix}{}", q.unit));
    let (_, u_c) = with_uncertainty(0.0, r.u_c * f);
    let (_, expanded) = with_uncertainty(0.0, r.expanded * f);
    let (slope, slope_u) = with_uncertainty(r.drift.slope_per_day * f, r.drift.u * f);
    let prob = format!("{}", (r.coverage_probability * 1000.0).round() / 10.0);
    let _ = write!(
        p,
        r#"<section id="result"><h2>{}</h2><p class="big">{} = <strong>{value} {unit}</strong> ± {expanded} {small} (k = {k:.2}, {prob} %)</p><table class="result kv">"#,
        l("Result", "测量结果"),
        esc(&format!("{} ({})", q.symbol, name(langs, &q.name))),
        unit = esc(&q.unit),
        k = r.k,
    );
    let rows = [
        (
            l("Value at the mean date", "平均日期的值"),
            format!("{value} {}", esc(&q.unit)),
        ),
        (
            l("Mean date", "平均日期"),
            esc(&super::text_utc_s(r.mean_date_utc_us)),
        ),
        (
            l("Combined standard uncertainty", "合成标准不确定度"),
            format!("u<sub>c</sub> = {u_c} {small}"),
        ),
        (
            l("Effective degrees of freedom", "有效自由度"),
            format!("ν<sub>eff</sub> = {}", dof(r.nu_eff)),
        ),
        (l("Coverage factor", "包含因子"), format!("k = {:.2}", r.k)),
        (
            l("Expanded uncertainty", "扩展不确定度"),
            format!("U = {expanded} {small} ({prob} %)"),
        ),
        (
            l("Readings used", "使用的读数"),
            format!("{} ({} {})", r.n, r.left_out, l("left out", "剔除")),
        ),
        (
            l("Drift", "漂移"),
            format!(
                "({slope} ± {slope_u}) {small}/d, {}",
                if r.drift.significant {
                    l(
                        "significant: the result is the drift line's value at the mean date",
                        "显著：结果取漂移直线在平均日期的值",
                    )
                } else {
                    l(
                        "not significant: the result is the mean",
                        "不显著：结果取平均值",
                    )
                }
            ),
        ),
    ];
    for (k, v) in rows {
        kv(&mut p, k, v);
    }
    p.push_str("</table></section>");

    // The budget, in the same prefixed unit.
    let _ = write!(
        p,
        r#"<section id="budget"><h2>{}</h2><table class="budget"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th class="n">{}</th><th class="n">{}</th><th class="n">u</th><th class="n">c</th><th class="n">|c|·u / {small}</th><th class="n">ν</th><th class="n">{}</th></tr></thead><tbody>"#,
        l("Uncertainty budget", "不确定度分量表"),
        l("component", "分量"),
        l("type", "类型"),
        l("distribution", "分布"),
        l("value", "值"),
        l("divisor", "除数"),
        l("share", "占比"),
    );
    for row in &input.budget {
        // A row in the quantity's unit is shown in the prefixed one, its sensitivity then being
        // 1; another's sensitivity is in the prefixed unit per its own.
        let same = row.unit == q.unit;
        let (rf, runit, c) = if same {
            (f, small.clone(), esc(&sig(row.sensitivity, 3)))
        } else {
            (
                1.0,
                esc(&row.unit),
                format!(
                    "{} {small}/{}",
                    esc(&sig(row.sensitivity * f, 3)),
                    esc(&row.unit)
                ),
            )
        };
        let _ = write!(
            p,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="n">{} {runit}</td><td class="n">{}</td><td class="n">{} {runit}</td><td class="n">{c}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{} %</td></tr>"#,
            esc(&name(langs, &row.name)),
            match row.eval {
                EvalType::A => "A",
                EvalType::B => "B",
            },
            esc(&distribution(langs, row.distribution)),
            esc(&sig(row.value * rf, 3)),
            esc(&sig(row.divisor, 4)),
            esc(&sig(row.u * rf, 3)),
            esc(&sig(row.contribution * f, 3)),
            dof(row.dof),
            sig(row.share * 100.0, 3),
        );
    }
    let _ = write!(
        p,
        r#"</tbody><tfoot><tr><td colspan="7">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">100 %</td></tr><tr><td colspan="7">{}</td><td class="n">{}</td><td colspan="2">k = {:.2}</td></tr></tfoot></table></section>"#,
        l("combined standard uncertainty u_c", "合成标准不确定度 u_c"),
        esc(&sig(r.u_c * f, 3)),
        dof(r.nu_eff),
        l("expanded uncertainty U", "扩展不确定度 U"),
        esc(&sig(r.expanded * f, 3)),
        r.k,
    );

    // The plots.
    let _ = write!(p, r#"<section id="plots"><h2>{}</h2>"#, l("Plots", "图"));
    for (i, f) in figures.iter().enumerate() {
        let _ = write!(
            p,
            r#"<figure data-file="{}">{}<figcaption>{} {}: {}</figcaption></figure>"#,
            esc(&f.file),
            f.svg,
            l("Figure", "图"),
            i + 1,
            esc(&name(langs, &f.caption)),
        );
    }
    p.push_str("</section>");

    // Method.
    let _ = write!(
        p,
        r#"<section id="method"><h2>{}</h2>"#,
        l("Method", "测量方法")
    );
    for lang in langs {
        let text = match lang {
            Lang::En => &input.method.en,
            Lang::Zh => &input.method.zh,
        };
        if !text.trim().is_empty() {
            let _ = write!(
                p,
                r#"<p lang="{}">{}</p>"#,
                if *lang == Lang::En { "en" } else { "zh" },
                esc(text)
            );
        }
    }
    p.push_str("</section>");

    // Environment.
    let _ = write!(
        p,
        r#"<section id="conditions"><h2>{}</h2><table><thead><tr><th>{}</th><th class="n">{}</th><th class="n">{}</th><th class="n">{}</th></tr></thead><tbody>"#,
        l("Environment", "环境条件"),
        l("quantity", "量"),
        l("mean", "平均"),
        l("min", "最小"),
        l("max", "最大"),
    );
    for c in &input.conditions {
        let _ = write!(
            p,
            r#"<tr><td>{}</td><td class="n">{} {u}</td><td class="n">{} {u}</td><td class="n">{} {u}</td></tr>"#,
            esc(&name(langs, &c.name)),
            esc(&sig(c.mean, 5)),
            esc(&sig(c.min, 5)),
            esc(&sig(c.max, 5)),
            u = esc(&c.unit),
        );
    }
    p.push_str("</tbody></table></section>");

    // Instruments.
    let _ = write!(
        p,
        r#"<section id="instruments"><h2>{}</h2><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        l("Instruments", "仪器"),
        l("name", "名称"),
        l("role", "用途"),
        l("make and model", "制造商与型号"),
        l("serial, firmware", "序列号、固件"),
        l("calibration", "校准"),
    );
    for ins in &input.instruments {
        let cal = match &ins.calibration {
            Some(c) => {
                let mut t = format!("{} {}", c.certificate, c.date);
                if let Some(lab) = &c.laboratory {
                    t = format!("{lab} {t}");
                }
                if let Some(due) = &c.due {
                    let _ = write!(t, ", {} {due}", label(langs, "due", "到期"));
                }
                if let Some(u) = &c.uncertainty {
                    let (prefix, f) = if takes_prefix(&u.unit) {
                        prefix_for(u.value)
                    } else {
                        ("", 1.0)
                    };
                    let _ = write!(
                        t,
                        ", U = {} {prefix}{} (k = {})",
                        sig(u.value * f, 2),
                        u.unit,
                        sig(u.k, 3)
                    );
                }
                t
            }
            None => "—".into(),
        };
        let _ = write!(
            p,
            "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}{}</td><td>{}</td></tr>",
            esc(&ins.name),
            esc(&name(langs, &ins.role)),
            esc(&ins.manufacturer),
            esc(&ins.model),
            esc(&ins.serial),
            ins.firmware
                .as_deref()
                .map(|f| format!(", {}", esc(f)))
                .unwrap_or_default(),
            esc(&cal),
        );
    }
    p.push_str("</tbody></table></section>");

    let _ = write!(
        p,
        r#"<footer>{}: <a href="readings.csv">readings.csv</a>, <a href="summary.json">summary.json</a>. tsagent {}</footer></body></html>"#,
        l("Data", "数据"),
        env!("CARGO_PKG_VERSION"),
    );
    p
}
