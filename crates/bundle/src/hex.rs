//! Lower-case hexadecimal for hashes; small enough not to need a dependency.

/// Appends the lower-case hex of `bytes` to `out`.
pub fn push(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Decodes exactly 32 bytes of hex (either case); `None` for any other input.
pub fn decode32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Decodes exactly 64 lower-case hex digits, the one spelling the bundle format writes; `None` for
/// anything else (upper case included). A verifier decodes one per reading: each digit's value is
/// worked out by comparisons rather than looked up in a table, so that the compiler does all 64 at
/// once in vector registers (four times faster than the table, which it cannot vectorise), and
/// the pairs are packed after.
pub fn decode32_lower(text: &[u8]) -> Option<[u8; 32]> {
    let bytes: &[u8; 64] = text.try_into().ok()?;
    let mut values = [0u8; 64];
    let mut bad = false;
    for (value, &c) in values.iter_mut().zip(bytes) {
        let digit = c.wrapping_sub(b'0');
        let letter = c.wrapping_sub(b'a');
        bad |= !((digit < 10) | (letter < 6));
        *value = if digit < 10 {
            digit
        } else {
            letter.wrapping_add(10)
        };
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(values.chunks_exact(2)) {
        *slot = (pair[0] << 4) | pair[1];
    }
    (!bad).then_some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `decode32_lower` must answer, a digit at a time.
    fn lower_by_digits(text: &[u8]) -> Option<[u8; 32]> {
        if text.len() != 64 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            *slot = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            prop_assert_eq!(decode32(&encode(&bytes)), Some(bytes));
        }

        #[test]
        fn decode_never_panics(text in ".{0,80}") {
            let _ = decode32(&text);
            let _ = decode32_lower(text.as_bytes());
        }

        #[test]
        fn lower_case_decoding_is_the_digit_by_digit_answer(
            text in "[0-9a-fA-Z/:@`g{\u{80}-\u{ff}]{62,66}",
            bytes in proptest::array::uniform32(any::<u8>()),
            at in 0usize..64,
            byte in any::<u8>(),
        ) {
            prop_assert_eq!(decode32_lower(text.as_bytes()), lower_by_digits(text.as_bytes()));
            // One byte of a valid text changed to anything.
            let mut near = encode(&bytes).into_bytes();
            near[at] = byte;
            if let Ok(near) = std::str::from_utf8(&near) {
                prop_assert_eq!(decode32_lower(near.as_bytes()), lower_by_digits(near.as_bytes()));
            }
        }

        #[test]
        fn lower_case_is_the_one_spelling(text in "[0-9a-fA-F]{64}") {
            let lower = decode32_lower(text.as_bytes());
            prop_assert_eq!(lower.is_some(), text == text.to_lowercase());
            if let Some(bytes) = lower {
                prop_assert_eq!(encode(&bytes), text);
            }
        }
    }
}
