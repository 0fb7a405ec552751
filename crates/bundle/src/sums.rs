//! `SHA256SUMS` exactly as GNU `sha256sum` prints it, so `sha256sum -c` checks a bundle unaided.

use thiserror::Error;

use super::manifest::Hash32;

/// The summed files, in the byte order `sort` gives them; the signature covers all of them via
/// this list. A bundle of format v1 lacks `custody.jsonl` (and its line).
pub const SUMMED_FILES: [&str; 4] = [
    "custody.jsonl",
    "events.jsonl",
    "manifest.json",
    "readings.csv",
];

/// The hashes `SHA256SUMS` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sums {
    /// `custody.jsonl`'s; `None` in a bundle of format v1, which has no such file.
    pub custody: Option<[u8; 32]>,
    /// `events.jsonl`'s.
    pub events: [u8; 32],
    /// `manifest.json`'s.
    pub manifest: [u8; 32],
    /// `readings.csv`'s.
    pub readings: [u8; 32],
}

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
    /// Neither the three lines of format v1 nor the four of v2.
    #[error(
        "SHA256SUMS must list exactly custody.jsonl (from format v2 on), events.jsonl, manifest.json and readings.csv"
    )]
    WrongFiles,
}

/// Renders the lines, `custody.jsonl`'s first when the bundle has one.
pub fn render(sums: &Sums) -> String {
    let hashes = [
        sums.custody,
        Some(sums.events),
        Some(sums.manifest),
        Some(sums.readings),
    ];
    SUMMED_FILES
        .iter()
        .zip(hashes)
        .filter_map(|(name, hash)| hash.map(|h| format!("{}  {name}\n", Hash32(h))))
        .collect()
}

/// Parses the lines back: three (format v1) or four (v2, with `custody.jsonl`).
pub fn parse(bytes: &[u8]) -> Result<Sums, SumsError> {
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    let names: &[&'static str] = match lines.len() {
        3 => &SUMMED_FILES[1..],
        4 => &SUMMED_FILES,
        _ => return Err(SumsError::WrongFiles),
    };
    let mut out = Vec::with_capacity(4);
    for (i, (line, name)) in lines.iter().zip(names).enumerate() {
        let bad = SumsError::BadLine {
            line: i + 1,
            expected: name,
        };
        let hash = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.strip_suffix('\n'))
            .and_then(|l| l.strip_suffix(name))
            .and_then(|l| l.strip_suffix("  "))
            .and_then(Hash32::parse)
            .ok_or(bad)?;
        out.push(hash.0);
    }
    Ok(match out[..] {
        [events, manifest, readings] => Sums {
            custody: None,
            events,
            manifest,
            readings,
        },
        [custody, events, manifest, readings] => Sums {
            custody: Some(custody),
            events,
            manifest,
            readings,
        },
        _ => return Err(SumsError::WrongFiles),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_and_strictness() {
        let v1 = |events, manifest, readings| Sums {
            custody: None,
            events,
            manifest,
            readings,
        };
        let text = render(&v1([1; 32], [2; 32], [3; 32]));
        assert_eq!(
            text,
            format!(
                "{}  events.jsonl\n{}  manifest.json\n{}  readings.csv\n",
                "01".repeat(32),
                "02".repeat(32),
                "03".repeat(32)
            )
        );
        assert_eq!(parse(text.as_bytes()), Ok(v1([1; 32], [2; 32], [3; 32])));
        let v2 = Sums {
            custody: Some([4; 32]),
            ..v1([1; 32], [2; 32], [3; 32])
        };
        let text2 = render(&v2);
        assert_eq!(text2, format!("{}  custody.jsonl\n{text}", "04".repeat(32)));
        assert_eq!(parse(text2.as_bytes()), Ok(v2));
        // Four lines must start with custody.jsonl's.
        assert_eq!(
            parse(format!("{text}{}  custody.jsonl\n", "04".repeat(32)).as_bytes()),
            Err(SumsError::BadLine {
                line: 1,
                expected: "custody.jsonl"
            })
        );
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
            parse(format!("{text}\n\n").as_bytes()),
            Err(SumsError::WrongFiles)
        );
        assert_eq!(parse(b""), Err(SumsError::WrongFiles));
    }

    proptest! {
        #[test]
        fn round_trip(
            hashes in proptest::array::uniform3(proptest::array::uniform32(any::<u8>())),
            custody in proptest::option::of(proptest::array::uniform32(any::<u8>())),
        ) {
            let sums = Sums { custody, events: hashes[0], manifest: hashes[1], readings: hashes[2] };
            prop_assert_eq!(parse(render(&sums).as_bytes()), Ok(sums));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
