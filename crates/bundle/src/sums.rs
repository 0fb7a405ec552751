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

/// The folder of the bundle that attachments live in, and the prefix of their `SHA256SUMS` lines:
/// apart from the bundle's own files, so the report's `readings.csv` cannot collide with the
/// bundle's.
pub const ATTACHMENT_DIR: &str = "report";

/// The hashes `SHA256SUMS` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sums {
    /// `custody.jsonl`'s; `None` in a bundle of format v1, which has no such file.
    pub custody: Option<[u8; 32]>,
    /// `events.jsonl`'s.
    pub events: [u8; 32],
    /// `manifest.json`'s.
    pub manifest: [u8; 32],
    /// `readings.csv`'s.
    pub readings: [u8; 32],
    /// Each attachment's name (without `report/`) and hash, names strictly increasing in byte
    /// order; empty below format v4.
    pub attachments: Vec<(String, [u8; 32])>,
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
    /// A line after the bundle's own files is not `<sha256>  report/<name>` with a valid name.
    #[error("SHA256SUMS line {line} is not `<sha256>  report/<name>` with a valid attachment name")]
    BadAttachmentLine {
        /// Line number from 1.
        line: usize,
    },
    /// Attachment lines out of byte order or repeated, which `sort` would not give.
    #[error("SHA256SUMS line {line}: attachments are not in sorted order without repeats")]
    AttachmentOrder {
        /// Line number from 1.
        line: usize,
    },
    /// More attachment lines than a bundle may carry.
    #[error("SHA256SUMS lists more than {cap} attachments")]
    TooManyAttachments {
        /// The cap.
        cap: usize,
    },
}

/// Renders the lines, `custody.jsonl`'s first when the bundle has one, the attachments' last
/// (`report/…` sorts after `readings.csv`), in the order given, which the caller keeps sorted.
pub fn render(sums: &Sums) -> String {
    let hashes = [
        sums.custody,
        Some(sums.events),
        Some(sums.manifest),
        Some(sums.readings),
    ];
    let own = SUMMED_FILES
        .iter()
        .zip(hashes)
        .filter_map(|(name, hash)| hash.map(|h| format!("{}  {name}\n", Hash32(h))));
    let attached = sums
        .attachments
        .iter()
        .map(|(name, h)| format!("{}  {ATTACHMENT_DIR}/{name}\n", Hash32(*h)));
    own.chain(attached).collect()
}

/// Parses the lines back: three (format v1) or four (v2 on, with `custody.jsonl`), then, from
/// format v4, one line per attachment, sorted (the verifier checks the format allows them).
pub fn parse(bytes: &[u8]) -> Result<Sums, SumsError> {
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    // The bundle's own files come first, and attachments (`report/…`) sort after them all.
    let own_count = lines
        .iter()
        .position(|l| l.windows(9).any(|w| w == b"  report/"))
        .unwrap_or(lines.len());
    let names: &[&'static str] = match own_count {
        3 => &SUMMED_FILES[1..],
        4 => &SUMMED_FILES,
        _ => return Err(SumsError::WrongFiles),
    };
    let (own, attached) = lines.split_at(names.len());
    if attached.len() > MAX_ATTACHMENTS {
        return Err(SumsError::TooManyAttachments {
            cap: MAX_ATTACHMENTS,
        });
    }
    let mut attachments: Vec<(String, [u8; 32])> = Vec::with_capacity(attached.len());
    for (k, line) in attached.iter().enumerate() {
        let number = names.len() + k + 1;
        let (hash, name) = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.strip_suffix('\n'))
            .and_then(|l| l.split_once("  "))
            .and_then(|(hash, path)| {
                let name = path.strip_prefix(ATTACHMENT_DIR)?.strip_prefix('/')?;
                Some((Hash32::parse(hash)?, name))
            })
            .filter(|(_, name)| is_attachment_name(name))
            .ok_or(SumsError::BadAttachmentLine { line: number })?;
        if attachments
            .last()
            .is_some_and(|(prev, _)| prev.as_str() >= name)
        {
            return Err(SumsError::AttachmentOrder { line: number });
        }
        attachments.push((name.to_owned(), hash.0));
    }
    let mut out = Vec::with_capacity(4);
    for (i, (line, name)) in own.iter().zip(names).enumerate() {
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
            attachments,
        },
        [custody, events, manifest, readings] => Sums {
            custody: Some(custody),
            events,
            manifest,
            readings,
            attachments,
        },
        _ => return Err(SumsError::WrongFiles),
    })
}

/// Most attachments one bundle may carry.
pub const MAX_ATTACHMENTS: usize = 64;

/// Longest attachment name: `<folder>/report/<name>` then always splits into ustar's prefix
/// (the folder) and name (`report/<name>`, at most 100 bytes) fields.
pub const MAX_ATTACHMENT_NAME: usize = 64;

/// True for an attachment's name: 1 to [`MAX_ATTACHMENT_NAME`] bytes of `[A-Za-z0-9._-]`, not
/// starting with `.` or `-` (so never `.`, `..`, a hidden file or an option to a stock tool).
pub fn is_attachment_name(name: &str) -> bool {
    (1..=MAX_ATTACHMENT_NAME).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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
            attachments: Vec::new(),
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

    #[test]
    fn attachments_follow_in_sorted_order() {
        let sums = Sums {
            custody: Some([4; 32]),
            events: [1; 32],
            manifest: [2; 32],
            readings: [3; 32],
            attachments: vec![
                ("readings.csv".into(), [5; 32]),
                ("report.html".into(), [6; 32]),
            ],
        };
        let text = render(&sums);
        assert!(text.ends_with(&format!(
            "{}  report/readings.csv\n{}  report/report.html\n",
            "05".repeat(32),
            "06".repeat(32)
        )));
        // The byte order `sort` gives, so a lab's own `sort` would list them the same way.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable_by(|a, b| a.as_bytes()[66..].cmp(&b.as_bytes()[66..]));
        assert_eq!(lines, text.lines().collect::<Vec<_>>());
        assert_eq!(parse(text.as_bytes()), Ok(sums.clone()));
        let swapped = Sums {
            attachments: sums.attachments.iter().rev().cloned().collect(),
            ..sums.clone()
        };
        assert_eq!(
            parse(render(&swapped).as_bytes()),
            Err(SumsError::AttachmentOrder { line: 6 })
        );
        let twice = Sums {
            attachments: vec![("a".into(), [5; 32]), ("a".into(), [5; 32])],
            ..sums.clone()
        };
        assert_eq!(
            parse(render(&twice).as_bytes()),
            Err(SumsError::AttachmentOrder { line: 6 })
        );
        for bad in [
            "..",
            ".hidden",
            "a/b",
            "",
            "a b",
            &"x".repeat(MAX_ATTACHMENT_NAME + 1),
        ] {
            let text = format!("{}{}  report/{bad}\n", render(&sums), "07".repeat(32));
            assert_eq!(
                parse(text.as_bytes()),
                Err(SumsError::BadAttachmentLine { line: 7 }),
                "{bad}"
            );
        }
        let many = Sums {
            attachments: (0..=MAX_ATTACHMENTS)
                .map(|i| (format!("f{i:03}"), [0; 32]))
                .collect(),
            ..sums
        };
        assert_eq!(
            parse(render(&many).as_bytes()),
            Err(SumsError::TooManyAttachments {
                cap: MAX_ATTACHMENTS
            })
        );
    }

    proptest! {
        #[test]
        fn round_trip_with_attachments(
            names in proptest::collection::btree_set("[A-Za-z0-9_][A-Za-z0-9._-]{0,63}", 0..8),
            hash in proptest::array::uniform32(any::<u8>()),
        ) {
            let sums = Sums {
                custody: Some(hash),
                events: hash,
                manifest: hash,
                readings: hash,
                attachments: names.into_iter().map(|n| (n, hash)).collect(),
            };
            prop_assert_eq!(parse(render(&sums).as_bytes()), Ok(sums));
        }

        #[test]
        fn round_trip(
            hashes in proptest::array::uniform3(proptest::array::uniform32(any::<u8>())),
            custody in proptest::option::of(proptest::array::uniform32(any::<u8>())),
        ) {
            let sums = Sums { custody, events: hashes[0], manifest: hashes[1], readings: hashes[2], attachments: Vec::new() };
            prop_assert_eq!(parse(render(&sums).as_bytes()), Ok(sums));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
