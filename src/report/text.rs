//! Text for the report's documents: escaping into XML and HTML, numbers as metrologists write them,
//! and labels in the languages asked for.

use super::error::ReportError;
use super::input::Bilingual;

/// A language the report's labels are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Chinese (simplified), `zh`.
    Zh,
    /// English, `en`.
    En,
}

/// Reads `--lang`: `zh`, `en`, `zh,en` or `en,zh` (the order labels are shown in); each language
/// once.
pub fn parse_languages(text: &str) -> Result<Vec<Lang>, ReportError> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let lang = match part.trim() {
            "zh" => Lang::Zh,
            "en" => Lang::En,
            _ => return Err(ReportError::Language(text.to_owned())),
        };
        if out.contains(&lang) {
            return Err(ReportError::Language(text.to_owned()));
        }
        out.push(lang);
    }
    Ok(out)
}

/// A label in the languages asked for, in their order: "测量结果 Result".
pub fn label(langs: &[Lang], en: &str, zh: &str) -> String {
    pick(langs, en, zh, " ")
}

/// A bilingual name in the languages asked for; the same text twice shows once.
pub fn name(langs: &[Lang], text: &Bilingual) -> String {
    pick(langs, &text.en, &text.zh, " / ")
}

fn pick(langs: &[Lang], en: &str, zh: &str, sep: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for lang in langs {
        let t = match lang {
            Lang::En => en,
            Lang::Zh => zh,
        };
        if !t.is_empty() && !parts.contains(&t) {
            parts.push(t);
        }
    }
    parts.join(sep)
}

/// Text made safe inside XML or HTML, in content and in quoted attributes alike.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline are not allowed in XML 1.0 at all.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Runs of white space as one space, none at the ends: what DCC's `notEmptyStringType` accepts.
pub fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decimals that show `u` to two significant digits (GUM 7.2.6), never negative.
pub fn decimals_for(u: f64) -> usize {
    if !(u.is_finite() && u > 0.0) {
        return 6;
    }
    let exponent = u.log10().floor() as i32;
    usize::try_from(1 - exponent).unwrap_or(0)
}

/// A value rounded to the decimals that show `u` to two significant digits, and `u` itself.
pub fn with_uncertainty(value: f64, u: f64) -> (String, String) {
    let d = decimals_for(u);
    (format!("{value:.d$}"), format!("{u:.d$}"))
}

/// A number in plain decimal notation with `sig` significant digits (tables, where an exponent
/// would be hard to compare down a column).
pub fn sig(value: f64, sig: usize) -> String {
    if !value.is_finite() {
        return "—".to_owned();
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    let exponent = value.abs().log10().floor() as i32;
    let sig = i32::try_from(sig).unwrap_or(3);
    match usize::try_from(sig - 1 - exponent) {
        Ok(d) if d <= 12 => format!("{value:.d$}"),
        Ok(_) => format!("{:.*e}", usize::try_from(sig - 1).unwrap_or(2), value),
        Err(_) => format!("{value:.0}"),
    }
}

/// Degrees of freedom: whole numbers, "∞" for infinite.
pub fn dof(nu: Option<f64>) -> String {
    match nu {
        Some(v) if v.is_finite() => format!("{:.0}", v.floor()),
        _ => "∞".to_owned(),
    }
}

/// A number for XML schemas that take `xs:double` without `inf` or `NaN` (D-SI's decimals):
/// shortest round-trip digits.
pub fn xml_number(v: f64) -> String {
    let mut buffer = ryu::Buffer::new();
    buffer.format_finite(v).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels_follow_the_languages_asked_for() {
        assert_eq!(
            label(&[Lang::Zh, Lang::En], "Result", "测量结果"),
            "测量结果 Result"
        );
        assert_eq!(label(&[Lang::En], "Result", "测量结果"), "Result");
        assert_eq!(label(&[Lang::Zh], "Result", "测量结果"), "测量结果");
        assert_eq!(
            name(&[Lang::Zh, Lang::En], &Bilingual::both("LAB07")),
            "LAB07"
        );
    }

    #[test]
    fn languages_parse_and_bad_ones_are_named() {
        assert_eq!(parse_languages("zh,en").unwrap(), vec![Lang::Zh, Lang::En]);
        assert_eq!(parse_languages("en").unwrap(), vec![Lang::En]);
        for bad in ["", "fr", "zh,zh", "zh,,en"] {
            let e = parse_languages(bad).unwrap_err().to_string();
            assert!(e.contains("language"), "{bad}: {e}");
        }
    }

    #[test]
    fn text_is_escaped_for_xml_and_html() {
        assert_eq!(
            esc(r#"<a href="x">R&D 'lab'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;R&amp;D &#39;lab&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("a\u{1}b"), "a\u{fffd}b");
        assert_eq!(esc("测量 µV"), "测量 µV");
        assert_eq!(squeeze("  two\n words "), "two words");
    }

    #[test]
    fn values_are_rounded_to_their_uncertainty() {
        assert_eq!(
            with_uncertainty(10.000_003_214, 0.000_000_23),
            ("10.00000321".to_owned(), "0.00000023".to_owned())
        );
        assert_eq!(
            with_uncertainty(1013.256, 0.15),
            ("1013.26".into(), "0.15".into())
        );
        assert_eq!(
            with_uncertainty(12345.0, 230.0),
            ("12345".into(), "230".into())
        );
        assert_eq!(sig(0.000_123_456, 3), "0.000123");
        assert_eq!(sig(-2.5e-15, 2), "-2.5e-15");
        assert_eq!(dof(None), "∞");
        assert_eq!(dof(Some(12.7)), "12");
        assert_eq!(xml_number(1e-7), "1e-7");
    }

    proptest! {
        #[test]
        fn escaped_text_never_holds_markup(s in ".*") {
            let e = esc(&s);
            prop_assert!(!e.contains('<') && !e.contains('>') && !e.contains('"'));
        }

        #[test]
        fn the_language_parser_never_panics(s in "[a-z, ]{0,12}") {
            let _ = parse_languages(&s);
        }
    }
}
