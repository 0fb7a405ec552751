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

/// Each byte's value as a lower-case hex digit, or `INVALID`.
const LOWER: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// A bit no digit's value has.
const INVALID: u8 = 0x10;

/// Decodes exactly 64 lower-case hex digits, the one spelling the bundle format writes; `None` for
/// anything else (upper case included). Branch-free per digit: a verifier decodes one per reading.
pub fn decode32_lower(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut seen = 0u8;
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (high, low) = (LOWER[usize::from(pair[0])], LOWER[usize::from(pair[1])]);
        seen |= high | low;
        *slot = (high << 4) | (low & 0x0f);
    }
    (seen & INVALID == 0).then_some(out)
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

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            prop_assert_eq!(decode32(&encode(&bytes)), Some(bytes));
        }

        #[test]
        fn decode_never_panics(text in ".{0,80}") {
            let _ = decode32(&text);
            let _ = decode32_lower(&text);
        }

        #[test]
        fn lower_case_is_the_one_spelling(text in "[0-9a-fA-F]{64}") {
            let lower = decode32_lower(&text);
            prop_assert_eq!(lower.is_some(), text == text.to_lowercase());
            if let Some(bytes) = lower {
                prop_assert_eq!(encode(&bytes), text);
            }
        }
    }
}
