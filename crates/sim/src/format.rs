//! Readings in the fixed ASCII form that Keysight/Agilent DMMs send: `+1.00000023E+01`.

/// What SCPI instruments send for an overload: a number no real reading can be.
pub const OVERLOAD: f64 = 9.9e37;

/// What SCPI instruments send for "not a number".
pub const NOT_A_NUMBER: f64 = 9.91e37;

/// Formats `value` as a DMM does: sign, one digit, point, 8 digits, `E`, exponent sign and at
/// least two exponent digits (`+1.00000023E+01`, `-4.50000000E-03`, `+0.00000000E+00`).
///
/// A non-finite value is sent as the SCPI markers: NaN as `+9.91000000E+37`, ±∞ as
/// `±9.90000000E+37`.
pub fn format_reading(value: f64) -> String {
    format_sci(value, 8, true)
}

/// `value` in scientific notation with `decimals` mantissa decimals and a two-digit (or longer)
/// signed exponent: `+1.00000023E+01` for 8 decimals. `plus` chooses whether positive values get
/// a `+` (Keysight) or nothing (Keithley DMM6500). Non-finite values become the SCPI markers.
pub(crate) fn format_sci(value: f64, decimals: usize, plus: bool) -> String {
    let value = if value.is_nan() {
        NOT_A_NUMBER
    } else if value.is_infinite() {
        OVERLOAD.copysign(value)
    } else {
        value
    };
    let scientific = format!("{:.*e}", decimals, value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if value < 0.0 {
        "-"
    } else if plus {
        "+"
    } else {
        ""
    };
    let exponent_sign = if exponent < 0 { '-' } else { '+' };
    format!(
        "{sign}{mantissa}E{exponent_sign}{:02}",
        exponent.unsigned_abs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `[+-]d.ddddddddE[+-]dd[d]`, checked by hand because the crate has no regex dependency.
    pub(crate) fn is_reading_format(text: &str) -> bool {
        let b = text.as_bytes();
        let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
        b.len() >= 15
            && matches!(b.first(), Some(b'+' | b'-'))
            && b.get(1).is_some_and(u8::is_ascii_digit)
            && b.get(2) == Some(&b'.')
            && b.get(3..11).is_some_and(digits)
            && b.get(11) == Some(&b'E')
            && matches!(b.get(12), Some(b'+' | b'-'))
            && b.get(13..)
                .is_some_and(|e| digits(e) && (2..=3).contains(&e.len()))
    }

    #[test]
    fn examples() {
        assert_eq!(format_reading(10.000_002_3), "+1.00000023E+01");
        assert_eq!(format_reading(-0.004_5), "-4.50000000E-03");
        assert_eq!(format_reading(0.0), "+0.00000000E+00");
        assert_eq!(format_reading(-0.0), "+0.00000000E+00");
        assert_eq!(format_reading(9.999_999_999_9), "+1.00000000E+01");
        assert_eq!(format_reading(1e-300), "+1.00000000E-300");
        assert_eq!(format_reading(OVERLOAD), "+9.90000000E+37");
        assert_eq!(format_reading(-OVERLOAD), "-9.90000000E+37");
        assert_eq!(format_reading(f64::NAN), "+9.91000000E+37");
        assert_eq!(format_reading(f64::INFINITY), "+9.90000000E+37");
        assert_eq!(format_reading(f64::NEG_INFINITY), "-9.90000000E+37");
    }

    #[test]
    fn format_checker_rejects_near_misses() {
        assert!(is_reading_format("+1.00000023E+01"));
        for bad in [
            "1.00000023E+01",
            "+1.0000002E+01",
            "+1.00000023E1",
            "+1.00000023e+01",
            "+10.0000023E+00",
            "+1.00000023E+0001",
        ] {
            assert!(!is_reading_format(bad), "{bad}");
        }
    }

    /// Half a count of the last digit of `text`: 0.5 × 10^(exponent − 8), parsed from decimal so
    /// that it is exact even where `powi` would underflow.
    fn half_count(text: &str) -> f64 {
        let exponent: i32 = text[12..].parse().unwrap();
        format!("5e{}", exponent - 9).parse().unwrap()
    }

    proptest! {
        #[test]
        fn parses_back_within_half_a_count(
            x in any::<f64>().prop_filter("finite", |x| x.is_finite())
        ) {
            let text = format_reading(x);
            prop_assert!(is_reading_format(&text), "{}", text);
            let back: f64 = text.parse().unwrap();
            let half_count = half_count(&text);
            // Slack for the decimal → binary rounding of `back` and of `half_count` itself, down
            // to the subnormal spacing.
            let slack = half_count * 1e-9 + x.abs() * f64::EPSILON + 5e-324;
            prop_assert!((back - x).abs() <= half_count + slack, "{} → {} → {}", x, text, back);
        }

        #[test]
        fn readings_in_meter_range_round_trip(x in -1.2e3f64..1.2e3) {
            let text = format_reading(x);
            prop_assert!(is_reading_format(&text), "{}", text);
            let back: f64 = text.parse().unwrap();
            let half_count = half_count(&text);
            prop_assert!((back - x).abs() <= half_count * (1.0 + 1e-9) + x.abs() * f64::EPSILON);
        }
    }
}
