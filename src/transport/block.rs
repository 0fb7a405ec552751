//! IEEE 488.2 arbitrary block headers (IEEE 488.2-1992 §8.7.9 definite length, §8.7.10
//! indefinite length): a pure parser and an encoder, kept apart from the I/O so they can be
//! tested on arbitrary bytes.
//!
//! A definite block is `#`, one digit `n` (1–9), `n` digits giving the payload length `L`, then
//! exactly `L` bytes; an indefinite block is `#0` followed by bytes up to the end of the message.

/// Most digits a definite block's length can have (one ASCII digit names the count).
const MAX_DIGITS: usize = 9;

/// What a complete block header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Header {
    /// `#<n><len>`: exactly `len` payload bytes follow the `header_len` header bytes.
    Definite {
        /// Bytes taken by the header itself, `2 + n`.
        header_len: usize,
        /// Payload length claimed by the header, already checked against the cap.
        len: usize,
    },
    /// `#0`: the payload runs to the end of the message (the read terminator, or EOI on GPIB).
    Indefinite,
}

impl Header {
    /// Bytes taken by the header, to be consumed before the payload.
    pub fn header_len(&self) -> usize {
        match self {
            Self::Definite { header_len, .. } => *header_len,
            Self::Indefinite => 2,
        }
    }
}

/// A block header that cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The reply does not start with `#`.
    #[error("expected `#` to start a block, found `{}`", escape(*found))]
    NotABlock {
        /// The byte found instead.
        found: u8,
    },
    /// The byte after `#` is not a decimal digit.
    #[error("block digit count `{}` is not a decimal digit", escape(*found))]
    BadDigitCount {
        /// The byte found instead.
        found: u8,
    },
    /// One of the length digits is not a decimal digit.
    #[error("block length digit `{}` is not a decimal digit", escape(*found))]
    BadLengthDigit {
        /// The byte found instead.
        found: u8,
    },
    /// The header claims more payload than the caller accepts.
    #[error("block claims {claimed} bytes, more than the cap of {cap}")]
    TooLong {
        /// The length in the header.
        claimed: usize,
        /// The caller's cap.
        cap: usize,
    },
}

/// A byte as it should appear in a message: printable ASCII as is, anything else escaped.
fn escape(byte: u8) -> String {
    std::ascii::escape_default(byte).map(char::from).collect()
}

/// Parses the block header at the start of `input`.
///
/// Returns `Ok(None)` while `input` is a valid but incomplete header, so the caller can read more
/// and try again. The claimed length is compared with `cap` as soon as it is known, and nothing
/// is allocated here, so a header claiming gigabytes costs nothing.
pub fn parse_header(input: &[u8], cap: usize) -> Result<Option<Header>, BlockError> {
    let Some((&first, rest)) = input.split_first() else {
        return Ok(None);
    };
    if first != b'#' {
        return Err(BlockError::NotABlock { found: first });
    }
    let Some((&count, rest)) = rest.split_first() else {
        return Ok(None);
    };
    if !count.is_ascii_digit() {
        return Err(BlockError::BadDigitCount { found: count });
    }
    let digits = usize::from(count - b'0');
    if digits == 0 {
        return Ok(Some(Header::Indefinite));
    }
    let mut len: usize = 0;
    for (seen, &digit) in rest.iter().take(digits).enumerate() {
        if !digit.is_ascii_digit() {
            return Err(BlockError::BadLengthDigit { found: digit });
        }
        // Nine digits always fit a usize of 32 bits or more; saturating keeps that a non-issue.
        len = len
            .saturating_mul(10)
            .saturating_add(usize::from(digit - b'0'));
        if seen + 1 == digits {
            if len > cap {
                return Err(BlockError::TooLong { claimed: len, cap });
            }
            return Ok(Some(Header::Definite {
                header_len: 2 + digits,
                len,
            }));
        }
    }
    Ok(None)
}

/// Encodes `payload` as a definite block with the shortest header; `None` when the payload is
/// longer than nine digits can say.
pub fn encode_definite(payload: &[u8]) -> Option<Vec<u8>> {
    let len = payload.len().to_string();
    if len.len() > MAX_DIGITS {
        return None;
    }
    let mut block = Vec::with_capacity(2 + len.len() + payload.len());
    block.push(b'#');
    block.extend_from_slice(len.len().to_string().as_bytes());
    block.extend_from_slice(len.as_bytes());
    block.extend_from_slice(payload);
    Some(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Parsed = Result<Option<Header>, BlockError>;

    fn definite(header_len: usize, len: usize) -> Parsed {
        Ok(Some(Header::Definite { header_len, len }))
    }

    #[test]
    fn headers() {
        let cases: [(&[u8], Parsed); 16] = [
            (b"", Ok(None)),
            (b"#", Ok(None)),
            (b"#2", Ok(None)),
            (b"#21", Ok(None)),
            (b"#216", definite(4, 16)),
            (b"#216\x00\x01", definite(4, 16)),
            (b"#10", definite(3, 0)),
            (b"#3010", definite(5, 10)),
            (b"#0", Ok(Some(Header::Indefinite))),
            (b"#0abc\n", Ok(Some(Header::Indefinite))),
            (b"#9000001000", definite(11, 1000)),
            (b" #216", Err(BlockError::NotABlock { found: b' ' })),
            (b"+1.0E+00", Err(BlockError::NotABlock { found: b'+' })),
            (b"#A16", Err(BlockError::BadDigitCount { found: b'A' })),
            (b"#21x", Err(BlockError::BadLengthDigit { found: b'x' })),
            (b"#2-1", Err(BlockError::BadLengthDigit { found: b'-' })),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_header(input, 1000),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn cap_is_exact_and_checked_before_the_payload() {
        assert_eq!(parse_header(b"#41000", 1000), definite(6, 1000));
        assert_eq!(
            parse_header(b"#41001", 1000),
            Err(BlockError::TooLong {
                claimed: 1001,
                cap: 1000
            })
        );
        assert_eq!(
            parse_header(b"#9999999999", 0),
            Err(BlockError::TooLong {
                claimed: 999_999_999,
                cap: 0
            })
        );
    }

    #[test]
    fn encoder() {
        assert_eq!(encode_definite(b"").unwrap(), b"#10");
        assert_eq!(encode_definite(b"abc").unwrap(), b"#13abc");
        assert_eq!(encode_definite(&[7; 16]).unwrap()[..4], *b"#216");
        assert_eq!(encode_definite(&[0; 1000]).unwrap()[..6], *b"#41000");
    }

    #[test]
    fn messages() {
        assert_eq!(
            BlockError::NotABlock { found: b'\n' }.to_string(),
            "expected `#` to start a block, found `\\n`"
        );
        assert_eq!(
            BlockError::TooLong {
                claimed: 5000,
                cap: 10
            }
            .to_string(),
            "block claims 5000 bytes, more than the cap of 10"
        );
    }

    proptest! {
        #[test]
        fn never_panics(input in prop::collection::vec(any::<u8>(), 0..32), cap in any::<usize>()) {
            let _ = parse_header(&input, cap);
        }

        #[test]
        fn never_panics_on_header_like_input(
            digits in prop::collection::vec(prop_oneof![Just(b'#'), b'0'..=b'9', any::<u8>()], 0..14),
            cap in any::<usize>(),
        ) {
            let mut input = vec![b'#'];
            input.extend_from_slice(&digits);
            if let Ok(Some(header)) = parse_header(&input, cap) {
                prop_assert!(header.header_len() <= input.len());
                if let Header::Definite { len, .. } = header {
                    prop_assert!(len <= cap);
                }
            }
        }

        #[test]
        fn round_trip(payload in prop::collection::vec(any::<u8>(), 0..2000)) {
            let block = encode_definite(&payload).unwrap();
            let header = parse_header(&block, payload.len()).unwrap().unwrap();
            let Header::Definite { header_len, len } = header else {
                panic!("{header:?}");
            };
            prop_assert_eq!(len, payload.len());
            prop_assert_eq!(&block[header_len..], payload.as_slice());
            // Every proper prefix of the header asks for more bytes rather than failing.
            for end in 0..header_len {
                prop_assert_eq!(parse_header(&block[..end], payload.len()), Ok(None));
            }
        }

        #[test]
        fn claims_above_the_cap_are_refused(claimed in 1u64..=999_999_999, cap_below in 1u64..=999_999_999) {
            let cap = usize::try_from(claimed.saturating_sub(cap_below)).unwrap();
            let digits = claimed.to_string();
            let header = format!("#{}{digits}", digits.len());
            // The result type owns no heap memory, so refusing cannot have allocated the claim.
            prop_assert_eq!(
                parse_header(header.as_bytes(), cap),
                Err(BlockError::TooLong { claimed: usize::try_from(claimed).unwrap(), cap })
            );
        }
    }
}
