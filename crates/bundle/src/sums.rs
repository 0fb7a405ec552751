//! `SHA256SUMS` exactly as GNU `sha256sum` prints it, so `sha256sum -c` checks a bundle unaided.

use thiserror::Error;

use super::manifest::Hash32;

/// The summed files, in the byte order `sort` gives them; the signature covers all three via this list.
pub const SUMMED_FILES: [&str; 3] = ["events.jsonl", "manifest.json", "readings.csv"];

/// Why `SHA256SUMS` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SumsError {
    /// A line is not `<64 lower-case hex>  <name>\n` for the expected name.
    #[error("SHA256SUMS line {line} is not `<sha256>  {expected}`")]
    BadLine {
        /// Line number from 1.
        line: usize,
        /// The file name that line must carry.
        expected: &'static str,
    },
    /// More or fewer than three lines.
    #[error("SHA256SUMS must list exactly events.jsonl, manifest.json and readings.csv")]
    WrongFiles,
}

/// Renders the three lines; `hashes` follow [`SUMMED_FILES`].
pub fn render(hashes: &[[u8; 32]; 3]) -> String {
    SUMMED_FILES
        .iter()
        .zip(hashes)
        .map(|(name, hash)| format!("{}  {name}\n", Hash32(*hash)))
        .collect()
}

/// Parses the three lines back; the result follows [`SUMMED_FILES`].
pub fn parse(bytes: &[u8]) -> Result<[[u8; 32]; 3], SumsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SumsError::BadLine {
        line: 1,
        expected: SUMMED_FILES[0],
    })?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.len() != SUMMED_FILES.len() {
        return Err(SumsError::WrongFiles);
    }
    let mut out = [[0u8; 32]; 3];
    for (i, ((line, name), slot)) in lines.iter().zip(SUMMED_FILES).zip(&mut out).enumerate() {
        let bad = SumsError::BadLine {
            line: i + 1,
            expected: name,
        };
        let hash = line
            .strip_suffix('\n')
            .and_then(|l| l.strip_suffix(name))
            .and_then(|l| l.strip_suffix("  "))
            .and_then(Hash32::parse)
            .ok_or(bad)?;
        *slot = hash.0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_and_strictness() {
        let text = render(&[[1; 32], [2; 32], [3; 32]]);
        assert_eq!(
            text,
            format!(
                "{}  events.jsonl\n{}  manifest.json\n{}  readings.csv\n",
                "01".repeat(32),
                "02".repeat(32),
                "03".repeat(32)
            )
        );
        assert_eq!(parse(text.as_bytes()), Ok([[1; 32], [2; 32], [3; 32]]));
        let swapped = text
            .replace("events.jsonl", "x")
            .replace("manifest.json", "events.jsonl")
            .replace('x', "manifest.json");
        assert_eq!(
            parse(swapped.as_bytes()),
            Err(SumsError::BadLine {
                line: 1,
                expected: "events.jsonl"
            })
        );
        assert_eq!(
            parse(text.trim_end().as_bytes()),
            Err(SumsError::BadLine {
                line: 3,
                expected: "readings.csv"
            })
        );
        assert_eq!(
            parse(text.replace("  ", " *").as_bytes()),
            Err(SumsError::BadLine {
                line: 1,
                expected: "events.jsonl"
            })
        );
        assert_eq!(
            parse(text.to_uppercase().as_bytes()),
            Err(SumsError::BadLine {
                line: 1,
                expected: "events.jsonl"
            })
        );
        assert_eq!(
            parse(format!("{text}\n").as_bytes()),
            Err(SumsError::WrongFiles)
        );
        assert_eq!(parse(b""), Err(SumsError::WrongFiles));
    }

    proptest! {
        #[test]
        fn round_trip(hashes in proptest::array::uniform3(proptest::array::uniform32(any::<u8>()))) {
            prop_assert_eq!(parse(render(&hashes).as_bytes()), Ok(hashes));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
