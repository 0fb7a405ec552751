//! Units: the D-SI spelling of a unit symbol (`hPa` → `\hecto\pascal`) and the SI prefix a plot's
//! axis is scaled by.

use super::error::ReportError;

/// Unit symbols and their D-SI names. The multi-letter symbols come before any prefix is tried,
/// so `min` is a minute, `Pa` a pascal and `m` a metre.
const UNITS: &[(&str, &str)] = &[
    ("V", "\\volt"),
    ("A", "\\ampere"),
    ("Ω", "\\ohm"),
    ("ohm", "\\ohm"),
    ("K", "\\kelvin"),
    ("°C", "\\degreecelsius"),
    ("degC", "\\degreecelsius"),
    ("Pa", "\\pascal"),
    ("Hz", "\\hertz"),
    ("s", "\\second"),
    ("min", "\\minute"),
    ("h", "\\hour"),
    ("d", "\\day"),
    ("%", "\\percent"),
    ("%RH", "\\percent"),
    ("ppm", "\\ppm"),
    ("1", "\\one"),
    ("m", "\\metre"),
    ("kg", "\\kilogram"),
    ("g", "\\gram"),
    ("W", "\\watt"),
    ("S", "\\siemens"),
    ("F", "\\farad"),
    ("H", "\\henry"),
];

/// SI prefixes: symbol, D-SI name, power of ten.
const PREFIXES: &[(&str, &str, i32)] = &[
    ("T", "\\tera", 12),
    ("G", "\\giga", 9),
    ("M", "\\mega", 6),
    ("k", "\\kilo", 3),
    ("h", "\\hecto", 2),
    ("da", "\\deca", 1),
    ("d", "\\deci", -1),
    ("c", "\\centi", -2),
    ("m", "\\milli", -3),
    ("µ", "\\micro", -6),
    ("μ", "\\micro", -6),
    ("u", "\\micro", -6),
    ("n", "\\nano", -9),
    ("p", "\\pico", -12),
    ("f", "\\femto", -15),
];

/// Prefixes without a unit's own (the ones that name no unit), the plots may scale by.
const SCALE: &[(i32, &str)] = &[
    (-15, "f"),
    (-12, "p"),
    (-9, "n"),
    (-6, "µ"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
];

fn simple(symbol: &str) -> Option<String> {
    if let Some((_, name)) = UNITS.iter().find(|(s, _)| *s == symbol) {
        return Some((*name).to_owned());
    }
    PREFIXES.iter().find_map(|(p, pname, _)| {
        let rest = symbol.strip_prefix(p)?;
        // Only units proper take a prefix: not `%`, `1`, `ppm` or `kg`.
        let (_, name) = UNITS
            .iter()
            .find(|(s, _)| *s == rest && !matches!(*s, "%" | "%RH" | "1" | "ppm" | "kg"))?;
        Some(format!("{pname}{name}"))
    })
}

/// The D-SI unit string for a symbol: `V` → `\volt`, `hPa` → `\hecto\pascal`, `V/d` →
/// `\volt\day\tothe{-1}`, `%` → `\percent`, an empty unit → `\one`.
pub fn dsi(symbol: &str) -> Result<String, ReportError> {
    let unknown = || ReportError::Unit(symbol.to_owned());
    let trimmed = symbol.trim();
    if trimmed.is_empty() {
        return Ok("\\one".to_owned());
    }
    let mut parts = trimmed.split('/');
    let numerator = parts.next().unwrap_or_default().trim();
    let mut out = simple(numerator).ok_or_else(unknown)?;
    for denominator in parts {
        let d = simple(denominator.trim()).ok_or_else(unknown)?;
        if d == "\\one" {
            return Err(unknown());
        }
        out.push_str(&d);
        out.push_str("\\tothe{-1}");
    }
    Ok(out)
}

/// Whether a plot may put an SI prefix before `symbol`: a unit proper, without one of its own.
pub fn takes_prefix(symbol: &str) -> bool {
    UNITS.iter().any(|(s, _)| {
        *s == symbol
            && !matches!(
                *s,
                "%" | "%RH" | "1" | "ppm" | "kg" | "°C" | "degC" | "min" | "h" | "d"
            )
    })
}

/// The SI prefix for values up to `largest` in magnitude, so they read between 1 and 1000: its
/// symbol and the factor values are multiplied by. No prefix for zero or a non-finite value.
pub fn prefix_for(largest: f64) -> (&'static str, f64) {
    let m = largest.abs();
    if !(m.is_finite() && m > 0.0) {
        return ("", 1.0);
    }
    let thousands = (m.log10() / 3.0).floor() as i32 * 3;
    let power = thousands.clamp(-15, 9);
    let symbol = SCALE
        .iter()
        .find(|(p, _)| *p == power)
        .map_or("", |(_, s)| s);
    (symbol, 10f64.powi(-power))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn d_si_unit_strings() {
        for (symbol, want) in [
            ("V", "\\volt"),
            ("Ω", "\\ohm"),
            ("K", "\\kelvin"),
            ("hPa", "\\hecto\\pascal"),
            ("%", "\\percent"),
            ("°C", "\\degreecelsius"),
            ("µV", "\\micro\\volt"),
            ("mΩ", "\\milli\\ohm"),
            ("min", "\\minute"),
            ("V/d", "\\volt\\day\\tothe{-1}"),
            ("V/hPa", "\\volt\\hecto\\pascal\\tothe{-1}"),
            ("", "\\one"),
        ] {
            assert_eq!(dsi(symbol).unwrap(), want, "{symbol}");
        }
        for bad in ["furlong", "k%", "V/", "mkg", "V/1"] {
            let e = dsi(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn prefixes_bring_values_between_1_and_1000() {
        assert_eq!(prefix_for(3.2e-6), ("µ", 1e6));
        assert_eq!(prefix_for(0.9e-6), ("n", 1e9));
        assert_eq!(prefix_for(10.0), ("", 1.0));
        assert_eq!(prefix_for(1013.0), ("k", 1e-3));
        assert_eq!(prefix_for(0.0), ("", 1.0));
        assert_eq!(prefix_for(1e-30), ("f", 1e15));
        assert!(takes_prefix("V") && takes_prefix("Ω"));
        assert!(!takes_prefix("°C") && !takes_prefix("hPa") && !takes_prefix("%"));
    }

    proptest! {
        #[test]
        fn the_unit_parser_never_panics_and_answers_a_d_si_string(s in "[a-zA-Zµ°%/1 ]{0,8}") {
            if let Ok(d) = dsi(&s) {
                prop_assert!(d.starts_with('\\'));
            }
        }
    }
}
