//! The bundle's tar: a tiny, deterministic ustar writer and a strict streaming reader.
//!
//! The reader accepts exactly the shape the writer produces (one folder, the bundle files: five in
//! format v1, six from v2 on, which adds `custody.jsonl`; from v4 a `report/` subfolder of
//! attachments between `custody.jsonl` and `SHA256SUMS`, sorted by name) and
//! refuses everything archive tools have been bitten by: links, pax and GNU extension headers,
//! absolute paths, `..`, duplicates, sizes that run past the input. It reads the archive once, front
//! to back, never extracts, and never allocates in proportion to a header's claims: each member's
//! data passes through the caller's visitor (which hashes it, say) under a cap by name, checked
//! before its first byte is read. Both the writer and the reader stream, so neither holds a bundle
//! in memory; [`write_tar`] and [`read_tar`] are the in-memory forms of the same code.

use std::io::{self, Read, Seek, SeekFrom, Write};

use thiserror::Error;

const BLOCK: usize = 512;

/// The names of the bundle files, in the order the writer stores them.
pub const FILE_NAMES: [&str; 6] = [
    "manifest.json",
    "readings.csv",
    "events.jsonl",
    "custody.jsonl",
    "SHA256SUMS",
    "SHA256SUMS.sig",
];

/// The index in [`FILE_NAMES`] of `custody.jsonl`, the one file a bundle may lack: bundles of
/// format v1 (sealed before custody was recorded) have none, and must keep verifying.
pub const CUSTODY: usize = 3;

/// Longest bundle folder name: `<folder>/` must fit ustar's 100-byte name field.
pub const MAX_FOLDER_LEN: usize = 99;

/// The largest each bundle file may be, by name (in [`FILE_NAMES`] order), checked against a
/// member's header before its data is read. The sealer keeps to the same caps, so a lab never
/// signs a bundle a verifier refuses: `readings.csv` and `events.jsonl` up to 512 MiB (a day of
/// readings at 10 Hz is about 200 MiB of CSV); the manifest, the sums and the signature are small
/// by construction.
/// `custody.jsonl` is a handful of lines per circulation; 16 MiB is far beyond any. `SHA256SUMS`
/// has room for [`MAX_ATTACHMENTS`] lines of the longest attachment name (138 bytes each).
pub const MEMBER_CAPS: [u64; 6] = [1 << 20, 512 << 20, 512 << 20, 16 << 20, 16 << 10, 64 << 10];

/// The largest one attachment may be: a report page, its summary, readings and plots are a few
/// MiB at most; 16 MiB keeps a bundle of [`MAX_ATTACHMENTS`] of them under the archive cap with
/// room for the readings.
pub const MAX_ATTACHMENT_BYTES: u64 = 16 << 20;

pub use crate::sums::{ATTACHMENT_DIR, MAX_ATTACHMENT_NAME, MAX_ATTACHMENTS, is_attachment_name};

/// A member of the archive as the streaming reader hands it to its visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'n> {
    /// A bundle file, by its index in [`FILE_NAMES`].
    File(usize),
    /// An attachment in `report/`, by its name.
    Attachment(&'n str),
}

/// Zero bytes accepted after the two end-of-archive blocks (tar pads an archive to its record
/// size, 10 KiB by default; 1 MiB allows any blocking factor up to 2048).
pub const MAX_TAIL_BYTES: u64 = 1 << 20;

/// Size caps the reader checks before it touches an entry's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarLimits {
    /// Largest accepted file, in bytes.
    pub max_file_bytes: u64,
    /// Largest accepted archive, in bytes.
    pub max_total_bytes: u64,
}

impl TarLimits {
    /// The caps `verify` applies: a day of readings at 10 Hz is about 200 MiB of CSV.
    pub const DEFAULT: Self = Self {
        max_file_bytes: 512 << 20,
        max_total_bytes: 1 << 30,
    };
}

/// The files of a bundle, as byte slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleFiles<'a> {
    /// `manifest.json`.
    pub manifest: &'a [u8],
    /// `readings.csv`.
    pub readings: &'a [u8],
    /// `events.jsonl`.
    pub events: &'a [u8],
    /// `custody.jsonl`; `None` in a bundle of format v1.
    pub custody: Option<&'a [u8]>,
    /// `SHA256SUMS`.
    pub sums: &'a [u8],
    /// `SHA256SUMS.sig`.
    pub sig: &'a [u8],
}

impl<'a> BundleFiles<'a> {
    fn in_order(&self) -> [Option<&'a [u8]>; 6] {
        [
            Some(self.manifest),
            Some(self.readings),
            Some(self.events),
            self.custody,
            Some(self.sums),
            Some(self.sig),
        ]
    }
}

/// A bundle tar as read: the folder name and its files, borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarBundle<'a> {
    /// The single top-level folder.
    pub folder: String,
    /// The files inside it.
    pub files: BundleFiles<'a>,
    /// The attachments in `report/`, by name in sorted order; empty below format v4.
    pub attachments: Vec<(String, &'a [u8])>,
}

/// Why the writer could not produce a tar.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TarWriteError {
    /// The folder name is empty, too long or uses characters outside `[A-Za-z0-9._-]`.
    #[error("invalid bundle folder name `{0}`")]
    BadFolder(String),
    /// An attachment's name is not `[A-Za-z0-9._-]` (1 to 64 bytes, not starting with `.` or
    /// `-`), or the names are not strictly increasing.
    #[error("invalid or out-of-order attachment name `{0}`")]
    BadAttachment(String),
    /// More attachments than a bundle may carry.
    #[error("{count} attachments, over the cap of {MAX_ATTACHMENTS}")]
    TooManyAttachments {
        /// How many were given.
        count: usize,
    },
    /// A number does not fit its octal header field.
    #[error("{field} {value} does not fit a ustar header")]
    FieldOverflow {
        /// Which field.
        field: &'static str,
        /// The value.
        value: u64,
    },
}

/// Why the reader rejected an archive. `offset` is the byte offset of the header concerned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TarError {
    /// The archive is larger than the total cap.
    #[error("archive of {size} bytes exceeds the {cap}-byte cap")]
    ArchiveTooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// A stream ran past the total cap (its size is not known in advance).
    #[error("archive exceeds the {cap}-byte cap")]
    StreamTooLarge {
        /// The cap.
        cap: u64,
    },
    /// More zero padding after the end of the archive than any tar writes.
    #[error(
        "more than {MAX_TAIL_BYTES} bytes of padding after the end of the archive at offset {offset}"
    )]
    LongTail {
        /// Where the end-of-archive blocks start.
        offset: usize,
    },
    /// The headers are not byte for byte what [`write_tar`] makes for the same files.
    #[error(
        "archive headers differ from the canonical form tsagent writes (modes, owners, times or order changed)"
    )]
    NotCanonical,
    /// The archive ends early.
    #[error("archive truncated at offset {offset}")]
    Truncated {
        /// Where the missing part starts.
        offset: usize,
    },
    /// A header's checksum field is malformed or does not match the header.
    #[error("bad header checksum at offset {offset}")]
    BadChecksum {
        /// Header offset.
        offset: usize,
    },
    /// A header lacks the POSIX ustar magic `ustar\0` version `00`.
    #[error("not a ustar header at offset {offset}")]
    NotUstar {
        /// Header offset.
        offset: usize,
    },
    /// A numeric field is not strict octal.
    #[error("malformed {field} field at offset {offset}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// Header offset.
        offset: usize,
    },
    /// A symbolic or hard link entry.
    #[error("link entry `{path}` is not allowed")]
    Link {
        /// The entry's path.
        path: String,
    },
    /// A pax (`x`, `g`) or GNU long-name (`L`, `K`) extension header.
    #[error("extension header (type `{typeflag}`) at offset {offset} is not allowed")]
    ExtensionHeader {
        /// The type flag, as a character.
        typeflag: char,
        /// Header offset.
        offset: usize,
    },
    /// A device, FIFO or any other entry type than a file or the folder.
    #[error("entry `{path}` has unsupported type `{typeflag}`")]
    UnsupportedType {
        /// The entry's path.
        path: String,
        /// The type flag, as a character.
        typeflag: char,
    },
    /// An absolute path.
    #[error("absolute path `{path}`")]
    AbsolutePath {
        /// The path.
        path: String,
    },
    /// A path with a `..` component.
    #[error("path `{path}` escapes the bundle folder")]
    ParentComponent {
        /// The path.
        path: String,
    },
    /// Anything but `<folder>/` and `<folder>/<bundle file>`.
    #[error("unexpected entry `{path}`")]
    UnexpectedPath {
        /// The path (lossy UTF-8).
        path: String,
    },
    /// An entry in another folder than the first entry's.
    #[error("entry `{path}` is outside the bundle folder `{folder}`")]
    MixedFolders {
        /// The path.
        path: String,
        /// The folder seen first.
        folder: String,
    },
    /// The same path twice.
    #[error("duplicate entry `{path}`")]
    Duplicate {
        /// The path.
        path: String,
    },
    /// A file larger than the per-file cap.
    #[error("entry `{path}` of {size} bytes exceeds the {cap}-byte cap")]
    FileTooLarge {
        /// The path.
        path: String,
        /// The size its header claims.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// A directory header with a non-zero size, or a link name.
    #[error("malformed header for `{path}`")]
    MalformedEntry {
        /// The path.
        path: String,
    },
    /// Non-zero bytes in the padding after an entry's data.
    #[error("non-zero padding after `{path}`")]
    NonZeroPadding {
        /// The path.
        path: String,
    },
    /// Non-zero bytes in or after the end-of-archive blocks.
    #[error("data after the end of the archive at offset {offset}")]
    TrailingData {
        /// Where it starts.
        offset: usize,
    },
    /// The folder entry is missing.
    #[error("the bundle folder entry is missing")]
    MissingFolder,
    /// A bundle file is missing.
    #[error("`{name}` is missing")]
    MissingFile {
        /// Its name.
        name: &'static str,
    },
    /// More attachments than a bundle may carry, refused at the first one too many.
    #[error("more than {cap} attachments, at `{path}`")]
    TooManyAttachments {
        /// The first path past the cap.
        path: String,
        /// The cap.
        cap: usize,
    },
}

/// True for a usable folder or id: non-empty `[A-Za-z0-9._-]` and not `.` or `..`.
pub(crate) fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Writes `folder/` (0755) and the files (0644) as a ustar archive, in memory.
///
/// The bytes depend only on the arguments: uid/gid 0, empty owner names, `mtime` everywhere.
pub fn write_tar(
    folder: &str,
    files: &BundleFiles<'_>,
    mtime: u64,
) -> Result<Vec<u8>, TarWriteError> {
    write_tar_with(folder, files, &[], mtime)
}

/// [`write_tar`] with attachments in `report/` (names valid and strictly increasing, which the
/// plan checks).
pub fn write_tar_with(
    folder: &str,
    files: &BundleFiles<'_>,
    attachments: &[(&str, &[u8])],
    mtime: u64,
) -> Result<Vec<u8>, TarWriteError> {
    let data = files.in_order();
    let sizes: Vec<(&str, u64)> = attachments.iter().map(|(n, d)| (*n, len64(d))).collect();
    let plan = TarPlan::with_attachments(folder, data.map(|d| d.map(len64)), &sizes, mtime)?;
    let mut out = Vec::with_capacity(usize::try_from(plan.len()).unwrap_or(0));
    let [mut a, mut b, mut c, mut d, mut e, mut f] = data.map(Option::unwrap_or_default);
    let mut readers: Vec<&[u8]> = attachments.iter().map(|(_, d)| *d).collect();
    let mut attached: Vec<&mut dyn Read> = readers.iter_mut().map(|r| r as &mut dyn Read).collect();
    // Writing to a Vec from slices of the declared sizes cannot fail.
    let _ = plan.write_with(
        &mut out,
        [&mut a, &mut b, &mut c, &mut d, &mut e, &mut f],
        &mut attached,
    );
    Ok(out)
}

fn len64(data: &[u8]) -> u64 {
    u64::try_from(data.len()).unwrap_or(u64::MAX)
}

/// The padded length of `size` bytes of data.
fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// A bundle archive laid out before any byte is written: its headers (which need every file's
/// size) and its length, so the archive can be streamed into a database row reserved at that
/// length and into a file at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarPlan {
    folder: [u8; BLOCK],
    headers: [Option<[u8; BLOCK]>; 6],
    sizes: [u64; 6],
    /// `report/`'s header, then each attachment's header and size; empty without attachments.
    report_dir: Option<[u8; BLOCK]>,
    attachments: Vec<([u8; BLOCK], u64)>,
}

impl TarPlan {
    /// Plans `folder/` and the files of `sizes` (in [`FILE_NAMES`] order; `None` for a file the
    /// bundle lacks, which only `custody.jsonl` of a format v1 bundle may be).
    pub fn new(folder: &str, sizes: [Option<u64>; 6], mtime: u64) -> Result<Self, TarWriteError> {
        Self::with_attachments(folder, sizes, &[], mtime)
    }

    /// [`TarPlan::new`] with attachments (name and size) in `report/`, which come between
    /// `custody.jsonl` and `SHA256SUMS`; names must be valid, strictly increasing, and at most
    /// [`MAX_ATTACHMENTS`] of them.
    pub fn with_attachments(
        folder: &str,
        sizes: [Option<u64>; 6],
        attachments: &[(&str, u64)],
        mtime: u64,
    ) -> Result<Self, TarWriteError> {
        if attachments.len() > MAX_ATTACHMENTS {
            return Err(TarWriteError::TooManyAttachments {
                count: attachments.len(),
            });
        }
        let mut previous: Option<&str> = None;
        let mut planned = Vec::with_capacity(attachments.len());
        for &(name, size) in attachments {
            if !is_attachment_name(name) || previous.is_some_and(|p| p >= name) {
                return Err(TarWriteError::BadAttachment(name.to_owned()));
            }
            previous = Some(name);
            let path = format!("{ATTACHMENT_DIR}/{name}");
            planned.push((header(folder, &path, b'0', 0o644, size, mtime)?, size));
        }
        let report_dir = if attachments.is_empty() {
            None
        } else {
            Some(header(
                folder,
                &format!("{ATTACHMENT_DIR}/"),
                b'5',
                0o755,
                0,
                mtime,
            )?)
        };
        if !is_safe_name(folder) || folder.len() > MAX_FOLDER_LEN {
            return Err(TarWriteError::BadFolder(folder.to_owned()));
        }
        let mut headers = [None; 6];
        for ((slot, name), size) in headers.iter_mut().zip(FILE_NAMES).zip(sizes) {
            if let Some(size) = size {
                *slot = Some(header(folder, name, b'0', 0o644, size, mtime)?);
            }
        }
        Ok(Self {
            folder: header(folder, "", b'5', 0o755, 0, mtime)?,
            headers,
            sizes: sizes.map(Option::unwrap_or_default),
            report_dir,
            attachments: planned,
        })
    }

    /// The archive's length in bytes.
    pub fn len(&self) -> u64 {
        let data: u64 = self
            .headers
            .iter()
            .zip(self.sizes)
            .filter(|(h, _)| h.is_some())
            .map(|(_, s)| BLOCK as u64 + padded(s))
            .sum();
        let attached: u64 = self
            .report_dir
            .iter()
            .map(|_| BLOCK as u64)
            .chain(
                self.attachments
                    .iter()
                    .map(|(_, s)| BLOCK as u64 + padded(*s)),
            )
            .sum();
        BLOCK as u64 + data + attached + 2 * BLOCK as u64
    }

    /// Always false: an archive has at least its folder header and end blocks.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the archive, copying each file from its reader, which must give exactly the
    /// planned number of bytes (fewer is an `UnexpectedEof` error, more are not read); the reader
    /// of a file the plan lacks is not read.
    pub fn write<W: Write + ?Sized>(
        &self,
        out: &mut W,
        files: [&mut dyn Read; 6],
    ) -> io::Result<()> {
        self.write_with(out, files, &mut [])
    }

    /// [`TarPlan::write`], also copying each planned attachment from its reader in `attachments`
    /// (in the plan's order; one reader per attachment).
    pub fn write_with<W: Write + ?Sized>(
        &self,
        out: &mut W,
        files: [&mut dyn Read; 6],
        attachments: &mut [&mut dyn Read],
    ) -> io::Result<()> {
        if attachments.len() != self.attachments.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} attachment readers for {} planned attachments",
                    attachments.len(),
                    self.attachments.len()
                ),
            ));
        }
        out.write_all(&self.folder)?;
        for (i, ((file, header), (size, name))) in files
            .into_iter()
            .zip(&self.headers)
            .zip(self.sizes.iter().zip(FILE_NAMES))
            .enumerate()
        {
            if i == CUSTODY + 1 {
                // Attachments sit between custody.jsonl and SHA256SUMS.
                if let Some(dir) = &self.report_dir {
                    out.write_all(dir)?;
                }
                for ((header, size), reader) in self.attachments.iter().zip(attachments.iter_mut())
                {
                    copy_member(out, header, *reader, *size, ATTACHMENT_DIR)?;
                }
            }
            let Some(header) = header else { continue };
            copy_member(out, header, file, *size, name)?;
        }
        out.write_all(&ZEROS)?;
        out.write_all(&ZEROS)
    }
}

const ZEROS: [u8; BLOCK] = [0; BLOCK];

/// One member: its header, exactly `size` bytes from `file`, and the padding.
fn copy_member<W: Write + ?Sized>(
    out: &mut W,
    header: &[u8; BLOCK],
    file: &mut dyn Read,
    size: u64,
    name: &str,
) -> io::Result<()> {
    out.write_all(header)?;
    let copied = io::copy(&mut file.take(size), out)?;
    if copied != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{name} gave {copied} of its {size} bytes"),
        ));
    }
    let pad = usize::try_from(padded(size) - size).unwrap_or(0);
    out.write_all(&ZEROS[..pad])
}

/// One header for `folder/name` (or `folder/` when `name` is empty).
fn header(
    folder: &str,
    name: &str,
    typeflag: u8,
    mode: u64,
    size: u64,
    mtime: u64,
) -> Result<[u8; BLOCK], TarWriteError> {
    let mut h = [0u8; BLOCK];
    let path = format!("{folder}/{name}");
    // The folder is at most 99 bytes, so `folder/` always fits the name field and a longer file path
    // splits at its one slash into prefix (the folder) and name (the file).
    let (prefix, name_field) = if path.len() <= 100 {
        ("", path.as_str())
    } else {
        (folder, name)
    };
    h[..name_field.len()].copy_from_slice(name_field.as_bytes());
    put_octal(&mut h[100..108], mode, "mode")?;
    put_octal(&mut h[108..116], 0, "uid")?;
    put_octal(&mut h[116..124], 0, "gid")?;
    put_octal(&mut h[124..136], size, "size")?;
    put_octal(&mut h[136..148], mtime, "mtime")?;
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    put_octal(&mut h[329..337], 0, "devmajor")?;
    put_octal(&mut h[337..345], 0, "devminor")?;
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    let sum = checksum(&h);
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Ok(h)
}

/// Zero-padded octal digits filling all but the last byte of `field`, then NUL.
fn put_octal(field: &mut [u8], value: u64, name: &'static str) -> Result<(), TarWriteError> {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() != digits {
        return Err(TarWriteError::FieldOverflow { field: name, value });
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    Ok(())
}

/// The ustar checksum: the unsigned byte sum with the checksum field read as spaces.
fn checksum(header: &[u8; BLOCK]) -> u32 {
    header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum()
}

/// Strict octal: one or more digits, then only NUL or space to the end of the field.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let digits = field
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let (number, rest) = field.split_at(digits);
    if digits == 0 || rest.is_empty() || !rest.iter().all(|&b| b == 0 || b == b' ') {
        return None;
    }
    number.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(8)?.checked_add(u64::from(b - b'0'))
    })
}

/// A NUL-terminated text field; the bytes after the first NUL must be NUL too.
fn text_field(field: &[u8]) -> Option<&[u8]> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let (text, rest) = field.split_at(end);
    rest.iter().all(|&b| b == 0).then_some(text)
}

/// Where one file's data lies in an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberSpan {
    /// Offset of its first byte.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

/// A bundle archive as streamed: the folder and where each file's data lies (in [`FILE_NAMES`]
/// order), so a second pass can seek straight to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarLayout {
    /// The single top-level folder.
    pub folder: String,
    /// Each file's data; only `custody.jsonl` ([`CUSTODY`]) may be absent.
    pub members: [Option<MemberSpan>; 6],
    /// Each attachment's name and data, in the archive's (sorted) order.
    pub attachments: Vec<(String, MemberSpan)>,
}

impl TarLayout {
    /// Where file `index` (of [`FILE_NAMES`]) lies; an absent file is an empty span.
    pub fn span(&self, index: usize) -> MemberSpan {
        self.members
            .get(index)
            .copied()
            .flatten()
            .unwrap_or_default()
    }
}

/// Reads a bundle tar from memory, checking every byte the writer would have written. The files
/// returned borrow from `bytes`.
pub fn read_tar(bytes: &[u8], limits: TarLimits) -> Result<TarBundle<'_>, TarError> {
    let total = len64(bytes);
    if total > limits.max_total_bytes {
        return Err(TarError::ArchiveTooLarge {
            size: total,
            cap: limits.max_total_bytes,
        });
    }
    let layout = read_tar_stream(bytes, limits, |_, _| Ok::<(), SliceError>(()))
        .map_err(|SliceError(e)| e)?;
    let slice = |span: MemberSpan| {
        let start = usize::try_from(span.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(span.len).unwrap_or(usize::MAX));
        // The reader consumed exactly these bytes from `bytes`.
        bytes.get(start..end).unwrap_or(&[])
    };
    let file = |i: usize| slice(layout.span(i));
    Ok(TarBundle {
        attachments: layout
            .attachments
            .iter()
            .map(|(name, span)| (name.clone(), slice(*span)))
            .collect(),
        files: BundleFiles {
            manifest: file(0),
            readings: file(1),
            events: file(2),
            custody: layout.members[CUSTODY].map(|_| file(CUSTODY)),
            sums: file(4),
            sig: file(5),
        },
        folder: layout.folder,
    })
}

/// The error of reading a slice, which only the format can cause.
struct SliceError(TarError);

impl From<TarError> for SliceError {
    fn from(e: TarError) -> Self {
        Self(e)
    }
}

impl From<io::Error> for SliceError {
    fn from(_: io::Error) -> Self {
        // Reading a slice never fails; a short one is `Truncated`, reported by the reader itself.
        Self(TarError::Truncated { offset: 0 })
    }
}

/// Counts what is read, so offsets and the total cap need no seeking.
struct Counting<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += len64(&buf[..n]);
        Ok(n)
    }
}

/// An input the reader can pass over bytes of: by reading them, or by seeking.
trait Source: Read {
    /// Passes over up to `n` bytes; how many there were before the input's end.
    fn skip(&mut self, n: u64) -> io::Result<u64>;
}

/// An input that is only read: bytes are passed over by reading them.
struct Streamed<R>(R);

impl<R: Read> Read for Streamed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Source for Streamed<R> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        io::copy(&mut (&mut self.0).take(n), &mut io::sink())
    }
}

/// A seekable input of `len` bytes from where the reader started: bytes are passed over by
/// seeking, up to its end, as reading them would.
struct Seeking<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Read for Seeking<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += len64(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read + Seek> Source for Seeking<R> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        let to = self.pos.saturating_add(n).min(self.len).max(self.pos);
        let by = to - self.pos;
        if by > 0 {
            let step =
                i64::try_from(by).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            self.inner.seek(SeekFrom::Current(step))?;
        }
        self.pos = to;
        Ok(by)
    }
}

impl<R: Source> Counting<R> {
    /// Passes over up to `n` bytes, counting those that were there.
    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.offset += self.inner.skip(n)?;
        Ok(())
    }
}

impl<R: Read> Counting<R> {
    /// Fills `buf` completely; `Ok(false)` if the input ends first.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut done = 0;
        while done < buf.len() {
            match self.read(&mut buf[done..]) {
                Ok(0) => return Ok(false),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

fn offset_usize(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

/// Reads a bundle tar strictly and in one pass from `input`, handing each file's data to `visit`
/// (which [`Member`] it is and a reader of exactly its bytes) as it passes; whatever the
/// visitor leaves unread is skipped. Memory does not depend on the input: a file's size is checked
/// against its cap by name ([`MEMBER_CAPS`], [`MAX_ATTACHMENT_BYTES`]) and `limits` before its
/// first byte is read, attachments are counted against [`MAX_ATTACHMENTS`] as their headers
/// pass, and only the bundle's own files in the bundle's own folder are ever handed on.
///
/// Every check of [`read_tar`] is made, in the same order of precedence: structure and paths as
/// each header passes, then the end of the archive, completeness, and last whether the headers
/// are byte for byte the canonical ones.
pub fn read_tar_stream<R, E, V>(input: R, limits: TarLimits, visit: V) -> Result<TarLayout, E>
where
    R: Read,
    E: From<TarError> + From<io::Error>,
    V: FnMut(Member<'_>, &mut dyn Read) -> Result<(), E>,
{
    read_tar_from(Streamed(input), limits, visit)
}

/// [`read_tar_stream`] on a seekable input (a file), from its current position: what the visitor
/// leaves unread is seeked past rather than read, with the same checks and the same errors. The
/// verifier's first pass keeps only the small files, so a big bundle's `readings.csv` is read
/// once, in the second pass, not twice (P7 in BENCHMARKS.md).
pub fn read_tar_seekable<R, E, V>(mut input: R, limits: TarLimits, visit: V) -> Result<TarLayout, E>
where
    R: Read + Seek,
    E: From<TarError> + From<io::Error>,
    V: FnMut(Member<'_>, &mut dyn Read) -> Result<(), E>,
{
    let start = input.stream_position()?;
    let end = match input.seek(SeekFrom::End(0)) {
        Ok(end) => end,
        // A stream made seekable backwards only (`bundle verify /dev/stdin`) cannot tell its end:
        // it is read through, which is also how it keeps what the second pass reads again.
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            return read_tar_from(Streamed(input), limits, visit);
        }
        Err(e) => return Err(e.into()),
    };
    input.seek(SeekFrom::Start(start))?;
    let seeking = Seeking {
        inner: input,
        pos: 0,
        len: end.saturating_sub(start),
    };
    read_tar_from(seeking, limits, visit)
}

fn read_tar_from<R, E, V>(input: R, limits: TarLimits, mut visit: V) -> Result<TarLayout, E>
where
    R: Source,
    E: From<TarError> + From<io::Error>,
    V: FnMut(Member<'_>, &mut dyn Read) -> Result<(), E>,
{
    let mut input = Counting {
        inner: input,
        offset: 0,
    };
    let mut folder: Option<String> = None;
    let mut folder_seen = false;
    let mut members: [Option<MemberSpan>; 6] = [None; 6];
    let mut attachments: Vec<(String, MemberSpan)> = Vec::new();
    let mut report_dir_seen = false;
    // The rank of the last entry seen, for the order check: each must come after the one before.
    let mut last_rank: Option<(u8, Option<String>)> = None;
    let mut mtime: Option<u64> = None;
    let mut canonical = true;
    let mut entries = 0usize;
    let mut h = [0u8; BLOCK];
    loop {
        let offset = input.offset;
        if offset > limits.max_total_bytes {
            return Err(TarError::StreamTooLarge {
                cap: limits.max_total_bytes,
            }
            .into());
        }
        if !input.fill(&mut h)? {
            return Err(TarError::Truncated {
                offset: offset_usize(offset),
            }
            .into());
        }
        if h.iter().all(|&b| b == 0) {
            finish_stream::<R, E>(&mut input, offset, limits)?;
            let (Some(folder), true) = (folder, folder_seen) else {
                return Err(TarError::MissingFolder.into());
            };
            for (i, (member, name)) in members.iter().zip(FILE_NAMES).enumerate() {
                if member.is_none() && i != CUSTODY {
                    return Err(TarError::MissingFile { name }.into());
                }
            }
            let present = members.iter().filter(|m| m.is_some()).count()
                + attachments.len()
                + usize::from(report_dir_seen);
            // Headers are not covered by the signature, so accept only the exact bytes our writer
            // makes for these files: any other mode, owner, time, order or spare field is a change
            // we refuse; `report/` is there exactly when attachments are.
            if !canonical || entries != 1 + present || report_dir_seen == attachments.is_empty() {
                return Err(TarError::NotCanonical.into());
            }
            return Ok(TarLayout {
                folder,
                members,
                attachments,
            });
        }
        let at = offset_usize(offset);
        let entry = parse_header(&h, at, limits)?;
        let data_start = offset + BLOCK as u64;
        let (entry_folder, file) = split_path(&entry.path, entry.is_dir)?;
        match &folder {
            None => folder = Some(entry_folder.to_owned()),
            Some(f) if f != entry_folder => {
                return Err(TarError::MixedFolders {
                    path: entry.path,
                    folder: f.clone(),
                }
                .into());
            }
            Some(_) => {}
        }
        let entry_mtime = *mtime.get_or_insert_with(|| parse_octal(&h[136..148]).unwrap_or(0));
        // In order: the folder first, then the files in FILE_NAMES order with `report/` and its
        // attachments (sorted by name) between custody.jsonl and SHA256SUMS. A file skipped is
        // reported as missing at the end, so only the order of those present is checked here.
        let rank: (u8, Option<String>) = match &file {
            Place::Folder => (0, None),
            // Ranks 1 to 4 are the files before the attachments, 7 and 8 those after.
            Place::File(i) if *i <= CUSTODY => (1 + u8::try_from(*i).unwrap_or(0), None),
            Place::ReportDir => (5, None),
            Place::Attachment(name) => (6, Some((*name).to_owned())),
            Place::File(i) => (3 + u8::try_from(*i).unwrap_or(0), None),
        };
        let in_order = (entries == 0) == (rank.0 == 0) && last_rank.as_ref() < Some(&rank);
        let expected = match &file {
            Place::Folder => header(entry_folder, "", b'5', 0o755, 0, entry_mtime).ok(),
            Place::ReportDir => header(
                entry_folder,
                &format!("{ATTACHMENT_DIR}/"),
                b'5',
                0o755,
                0,
                entry_mtime,
            )
            .ok(),
            Place::File(i) => header(
                entry_folder,
                FILE_NAMES[*i],
                b'0',
                0o644,
                entry.size,
                entry_mtime,
            )
            .ok(),
            Place::Attachment(name) => header(
                entry_folder,
                &format!("{ATTACHMENT_DIR}/{name}"),
                b'0',
                0o644,
                entry.size,
                entry_mtime,
            )
            .ok(),
        };
        canonical &= in_order && expected == Some(h);
        entries += 1;
        let (index, cap) = match file {
            Place::Folder if folder_seen => {
                return Err(TarError::Duplicate { path: entry.path }.into());
            }
            Place::Folder => {
                folder_seen = true;
                (None, 0)
            }
            Place::ReportDir if report_dir_seen => {
                return Err(TarError::Duplicate { path: entry.path }.into());
            }
            Place::ReportDir => {
                report_dir_seen = true;
                (None, 0)
            }
            Place::File(index) => {
                if members[index].is_some() {
                    return Err(TarError::Duplicate { path: entry.path }.into());
                }
                (Some(Member::File(index)), MEMBER_CAPS[index])
            }
            Place::Attachment(name) => {
                if attachments.iter().any(|(n, _)| n == name) {
                    return Err(TarError::Duplicate { path: entry.path }.into());
                }
                if attachments.len() >= MAX_ATTACHMENTS {
                    return Err(TarError::TooManyAttachments {
                        path: entry.path,
                        cap: MAX_ATTACHMENTS,
                    }
                    .into());
                }
                (Some(Member::Attachment(name)), MAX_ATTACHMENT_BYTES)
            }
        };
        last_rank = Some(rank);
        if let Some(member) = index {
            let cap = cap.min(limits.max_file_bytes);
            if entry.size > cap {
                return Err(TarError::FileTooLarge {
                    path: entry.path,
                    size: entry.size,
                    cap,
                }
                .into());
            }
            let mut data = (&mut input).take(entry.size);
            visit(member, &mut data)?;
            let left = data.limit();
            input.skip(left)?;
            if input.offset != data_start + entry.size {
                return Err(TarError::Truncated {
                    offset: offset_usize(data_start),
                }
                .into());
            }
            let span = MemberSpan {
                offset: data_start,
                len: entry.size,
            };
            match member {
                Member::File(index) => members[index] = Some(span),
                Member::Attachment(name) => attachments.push((name.to_owned(), span)),
            }
        }
        let pad = usize::try_from(padded(entry.size) - entry.size).unwrap_or(0);
        let mut padding = [0u8; BLOCK];
        if !input.fill(&mut padding[..pad])? {
            return Err(TarError::Truncated {
                offset: offset_usize(data_start),
            }
            .into());
        }
        if padding.iter().any(|&b| b != 0) {
            return Err(TarError::NonZeroPadding { path: entry.path }.into());
        }
    }
}

/// After the first end-of-archive block at `offset`: the second one, then nothing but a bounded
/// run of zeros to the end of the input.
fn finish_stream<R: Source, E: From<TarError> + From<io::Error>>(
    input: &mut Counting<R>,
    offset: u64,
    limits: TarLimits,
) -> Result<(), E> {
    let second = offset + BLOCK as u64;
    let mut block = [0u8; BLOCK];
    if !input.fill(&mut block)? {
        return Err(TarError::Truncated {
            offset: offset_usize(second),
        }
        .into());
    }
    let tail_cap = MAX_TAIL_BYTES.min(limits.max_total_bytes);
    let mut buf = [0u8; 8 * BLOCK];
    let mut at = second;
    loop {
        // The second end block is the first chunk checked.
        let (chunk, n) = if at == second {
            (&block[..], BLOCK)
        } else {
            let n = loop {
                match input.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            (&buf[..n], n)
        };
        if n == 0 {
            return Ok(());
        }
        if let Some(pos) = chunk.iter().position(|&b| b != 0) {
            return Err(TarError::TrailingData {
                offset: offset_usize(at + len64(&chunk[..pos])),
            }
            .into());
        }
        at += len64(chunk);
        if at - second - BLOCK as u64 > tail_cap {
            return Err(TarError::LongTail {
                offset: offset_usize(offset),
            }
            .into());
        }
    }
}

struct Entry {
    path: String,
    is_dir: bool,
    size: u64,
}

fn parse_header(h: &[u8; BLOCK], offset: usize, limits: TarLimits) -> Result<Entry, TarError> {
    let stored = &h[148..156];
    let digits_ok = stored[..6].iter().all(|b| (b'0'..=b'7').contains(b)) && stored[6..] == *b"\0 ";
    if !digits_ok || parse_octal(stored).and_then(|v| u32::try_from(v).ok()) != Some(checksum(h)) {
        return Err(TarError::BadChecksum { offset });
    }
    if h[257..263] != *b"ustar\0" || h[263..265] != *b"00" {
        return Err(TarError::NotUstar { offset });
    }
    let typeflag = h[156];
    if matches!(typeflag, b'x' | b'g' | b'L' | b'K') {
        return Err(TarError::ExtensionHeader {
            typeflag: char::from(typeflag),
            offset,
        });
    }
    let bad = |field| TarError::BadField { field, offset };
    let name = text_field(&h[0..100]).ok_or(bad("name"))?;
    let prefix = text_field(&h[345..500]).ok_or(bad("prefix"))?;
    let raw_path = if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    };
    let lossy = String::from_utf8_lossy(&raw_path).into_owned();
    match typeflag {
        b'0' | b'\0' | b'5' => {}
        b'1' | b'2' => return Err(TarError::Link { path: lossy }),
        _ => {
            return Err(TarError::UnsupportedType {
                path: lossy,
                typeflag: char::from(typeflag),
            });
        }
    }
    for (field, range) in [
        ("mode", 100..108),
        ("uid", 108..116),
        ("gid", 116..124),
        ("mtime", 136..148),
    ] {
        parse_octal(&h[range]).ok_or(bad(field))?;
    }
    let size = parse_octal(&h[124..136]).ok_or(bad("size"))?;
    if !h[157..257].iter().all(|&b| b == 0) || (typeflag == b'5' && size != 0) {
        return Err(TarError::MalformedEntry { path: lossy });
    }
    if lossy.starts_with('/') {
        return Err(TarError::AbsolutePath { path: lossy });
    }
    if lossy.split('/').any(|c| c == "..") {
        return Err(TarError::ParentComponent { path: lossy });
    }
    if size > limits.max_file_bytes {
        return Err(TarError::FileTooLarge {
            path: lossy,
            size,
            cap: limits.max_file_bytes,
        });
    }
    // Header paths are at most 256 bytes, so owning them costs nothing an attacker can inflate.
    let path = String::from_utf8(raw_path).map_err(|_| TarError::UnexpectedPath { path: lossy })?;
    Ok(Entry {
        path,
        is_dir: typeflag == b'5',
        size,
    })
}

/// What a path in the archive names.
enum Place<'p> {
    /// The bundle folder itself.
    Folder,
    /// A bundle file, by its index in [`FILE_NAMES`].
    File(usize),
    /// The `report/` folder.
    ReportDir,
    /// An attachment in `report/`.
    Attachment(&'p str),
}

/// Splits a path into the folder and what it names inside it.
fn split_path(path: &str, is_dir: bool) -> Result<(&str, Place<'_>), TarError> {
    let unexpected = || TarError::UnexpectedPath {
        path: path.to_owned(),
    };
    let (folder, rest) = path.split_once('/').ok_or_else(unexpected)?;
    if !is_safe_name(folder) || folder.len() > MAX_FOLDER_LEN {
        return Err(unexpected());
    }
    let attachment = rest
        .strip_prefix(ATTACHMENT_DIR)
        .and_then(|r| r.strip_prefix('/'));
    match (is_dir, rest, attachment) {
        (true, "", _) => Ok((folder, Place::Folder)),
        (true, _, Some("")) => Ok((folder, Place::ReportDir)),
        (false, _, Some(name)) if is_attachment_name(name) => Ok((folder, Place::Attachment(name))),
        (false, name, None) => FILE_NAMES
            .iter()
            .position(|&n| n == name)
            .map(|i| (folder, Place::File(i)))
            .ok_or_else(unexpected),
        _ => Err(unexpected()),
    }
}

/// A header with a valid checksum and whatever path, type and size a test wants.
#[cfg(test)]
pub(crate) fn raw_header(name: &[u8], prefix: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    put_octal(&mut h[100..108], 0o644, "mode").unwrap();
    put_octal(&mut h[108..116], 0, "uid").unwrap();
    put_octal(&mut h[116..124], 0, "gid").unwrap();
    put_octal(&mut h[124..136], size, "size").unwrap();
    put_octal(&mut h[136..148], 0, "mtime").unwrap();
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    let sum = checksum(&h);
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: BundleFiles<'static> = BundleFiles {
        manifest: b"{}\n",
        readings: b"seq\n",
        events: b"",
        custody: Some(b"custody\n"),
        sums: b"sums\n",
        sig: b"sig\n",
    };

    /// A bundle of format v1, without `custody.jsonl`.
    const SAMPLE_V1: BundleFiles<'static> = BundleFiles {
        custody: None,
        ..SAMPLE
    };

    #[test]
    fn a_v1_archive_without_custody_reads_and_no_other_file_may_be_missing() {
        let tar = write_tar("B", &SAMPLE_V1, 0).unwrap();
        assert_eq!(read(&tar).unwrap().files, SAMPLE_V1);
        let (layout, visited) = stream(&tar[..]);
        assert_eq!(layout.unwrap().members[CUSTODY], None);
        assert_eq!(visited, [0, 1, 2, 4, 5]);
        // Without the sums instead, the archive is refused by name.
        let no_sums = write_tar(
            "B",
            &BundleFiles {
                sums: b"",
                ..SAMPLE
            },
            0,
        )
        .unwrap();
        assert!(read(&no_sums).is_ok(), "an empty file is still a file");
        let good = write_tar("B", &SAMPLE, 0).unwrap();
        let (layout, visited) = stream(&good[..]);
        assert!(layout.unwrap().members.iter().all(Option::is_some));
        assert_eq!(visited, [0, 1, 2, 3, 4, 5]);
    }

    /// A valid sample archive with `extra` inserted right after the folder entry.
    fn with_extra(extra: &[u8]) -> Vec<u8> {
        let good = write_tar("B", &SAMPLE, 0).unwrap();
        [&good[..BLOCK], extra, &good[BLOCK..]].concat()
    }

    fn read(bytes: &[u8]) -> Result<TarBundle<'_>, TarError> {
        read_tar(bytes, TarLimits::DEFAULT)
    }

    #[test]
    fn round_trip_and_layout() {
        let tar = write_tar("LAB-ART-000001", &SAMPLE, 1_700_000_000).unwrap();
        assert_eq!(tar.len() % BLOCK, 0);
        assert!(tar[tar.len() - 2 * BLOCK..].iter().all(|&b| b == 0));
        let got = read(&tar).unwrap();
        assert_eq!(got.folder, "LAB-ART-000001");
        assert_eq!(got.files, SAMPLE);
        // Same input, same bytes.
        assert_eq!(
            tar,
            write_tar("LAB-ART-000001", &SAMPLE, 1_700_000_000).unwrap()
        );
    }

    #[test]
    fn header_changes_with_a_fixed_checksum_are_refused() {
        // Headers are unsigned: a relay could make a file setuid, change owners or times and fix
        // the checksum. Only the exact canonical headers pass.
        let good = write_tar("B", &SAMPLE, 0).unwrap();
        let edits: [(&str, std::ops::Range<usize>, &[u8]); 4] = [
            ("mode", 100..108, b"0004755\0"),
            ("uid", 108..116, b"0001750\0"),
            ("mtime", 136..148, b"00000000001\0"),
            ("uname", 265..269, b"root"),
        ];
        for (field, range, value) in edits {
            let mut bytes = good.clone();
            // The second header: the first file.
            let h = &mut bytes[BLOCK..2 * BLOCK];
            h[range].copy_from_slice(value);
            let header: &mut [u8; BLOCK] = h.try_into().unwrap();
            let sum = checksum(header);
            header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            assert!(
                matches!(read(&bytes), Err(TarError::NotCanonical)),
                "{field}: {:?}",
                read(&bytes)
            );
        }
    }

    #[test]
    fn writer_refuses_bad_folders() {
        for folder in ["", ".", "..", "a/b", "a b", &"x".repeat(MAX_FOLDER_LEN + 1)] {
            assert_eq!(
                write_tar(folder, &SAMPLE, 0),
                Err(TarWriteError::BadFolder(folder.into()))
            );
        }
        assert!(write_tar(&"x".repeat(MAX_FOLDER_LEN), &SAMPLE, 0).is_ok());
        assert!(matches!(
            write_tar("B", &SAMPLE, 1 << 40),
            Err(TarWriteError::FieldOverflow { field: "mtime", .. })
        ));
    }

    #[test]
    fn gnu_tar_extracts_long_folder_names() {
        // 99 bytes: every file path needs the ustar prefix field.
        let folder = format!("{}-{}-000001", "L".repeat(40), "A".repeat(51));
        assert_eq!(folder.len(), MAX_FOLDER_LEN);
        let tar = write_tar(&folder, &SAMPLE, 1_700_000_000).unwrap();
        assert_eq!(read(&tar).unwrap().folder, folder);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.tar"), &tar).unwrap();
        let status = std::process::Command::new("tar")
            .args(["-xf", "b.tar"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let root = dir.path().join(&folder);
        for (name, data) in FILE_NAMES.iter().zip(SAMPLE.in_order()) {
            assert_eq!(
                std::fs::read(root.join(name)).ok().as_deref(),
                data,
                "{name}"
            );
        }
        let listing = std::process::Command::new("tar")
            .args(["-tvf", "b.tar"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        assert!(listing.starts_with("drwxr-xr-x 0/0"), "{listing}");
        assert_eq!(listing.matches("-rw-r--r-- 0/0").count(), 6, "{listing}");
    }

    #[test]
    fn rejects_hostile_entries() {
        let file = |name: &[u8], typeflag| raw_header(name, b"", typeflag, 0);
        let cases: Vec<(Vec<u8>, TarError)> = vec![
            (
                file(b"../x", b'0').to_vec(),
                TarError::ParentComponent {
                    path: "../x".into(),
                },
            ),
            (
                file(b"B/../x", b'0').to_vec(),
                TarError::ParentComponent {
                    path: "B/../x".into(),
                },
            ),
            (
                file(b"/etc/passwd", b'0').to_vec(),
                TarError::AbsolutePath {
                    path: "/etc/passwd".into(),
                },
            ),
            (
                file(b"B/link", b'2').to_vec(),
                TarError::Link {
                    path: "B/link".into(),
                },
            ),
            (
                file(b"B/hard", b'1').to_vec(),
                TarError::Link {
                    path: "B/hard".into(),
                },
            ),
            (
                file(b"B/dev", b'3').to_vec(),
                TarError::UnsupportedType {
                    path: "B/dev".into(),
                    typeflag: '3',
                },
            ),
            (
                file(b"B/fifo", b'6').to_vec(),
                TarError::UnsupportedType {
                    path: "B/fifo".into(),
                    typeflag: '6',
                },
            ),
            (
                file(b"pax", b'x').to_vec(),
                TarError::ExtensionHeader {
                    typeflag: 'x',
                    offset: BLOCK,
                },
            ),
            (
                file(b"pax", b'g').to_vec(),
                TarError::ExtensionHeader {
                    typeflag: 'g',
                    offset: BLOCK,
                },
            ),
            (
                file(b"long", b'L').to_vec(),
                TarError::ExtensionHeader {
                    typeflag: 'L',
                    offset: BLOCK,
                },
            ),
            (
                file(b"long", b'K').to_vec(),
                TarError::ExtensionHeader {
                    typeflag: 'K',
                    offset: BLOCK,
                },
            ),
            (
                file(b"B/other.txt", b'0').to_vec(),
                TarError::UnexpectedPath {
                    path: "B/other.txt".into(),
                },
            ),
            (
                file(b"B/sub/manifest.json", b'0').to_vec(),
                TarError::UnexpectedPath {
                    path: "B/sub/manifest.json".into(),
                },
            ),
            (
                file(b"B/./manifest.json", b'0').to_vec(),
                TarError::UnexpectedPath {
                    path: "B/./manifest.json".into(),
                },
            ),
            (
                file(b"C/manifest.json", b'0').to_vec(),
                TarError::MixedFolders {
                    path: "C/manifest.json".into(),
                    folder: "B".into(),
                },
            ),
            (
                file(b"B/manifest.json", b'0').to_vec(),
                TarError::Duplicate {
                    path: "B/manifest.json".into(),
                },
            ),
            (
                file(b"B/", b'5').to_vec(),
                TarError::Duplicate { path: "B/".into() },
            ),
            (
                file(b"B/manifest.json/", b'5').to_vec(),
                TarError::UnexpectedPath {
                    path: "B/manifest.json/".into(),
                },
            ),
            (
                raw_header(b"B/x", b"", b'5', 1).to_vec(),
                TarError::MalformedEntry { path: "B/x".into() },
            ),
            (
                raw_header(b"manifest.json", b"B", b'0', 0).to_vec(),
                TarError::Duplicate {
                    path: "B/manifest.json".into(),
                },
            ),
        ];
        for (extra, expected) in cases {
            assert_eq!(read(&with_extra(&extra)), Err(expected));
        }
    }

    #[test]
    fn rejects_bad_headers() {
        let good = write_tar("B", &SAMPLE, 0).unwrap();
        let mut bad_sum = good.clone();
        bad_sum[148] = b'7';
        assert_eq!(read(&bad_sum), Err(TarError::BadChecksum { offset: 0 }));
        let mut bad_sum_format = good.clone();
        bad_sum_format[154] = b' ';
        assert_eq!(
            read(&bad_sum_format),
            Err(TarError::BadChecksum { offset: 0 })
        );
        let mut gnu = raw_header(b"B/manifest.json", b"", b'0', 0);
        gnu[257..265].copy_from_slice(b"ustar  \0");
        let sum = checksum(&gnu);
        gnu[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(
            read(&with_extra(&gnu)),
            Err(TarError::NotUstar { offset: BLOCK })
        );
        let mut base256 = raw_header(b"B/manifest.json", b"", b'0', 0);
        base256[124] = 0x80;
        let sum = checksum(&base256);
        base256[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(
            read(&with_extra(&base256)),
            Err(TarError::BadField {
                field: "size",
                offset: BLOCK
            })
        );
    }

    #[test]
    fn rejects_bad_ends() {
        let good = write_tar("B", &SAMPLE, 0).unwrap();
        assert!(read(&good).is_ok());
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 3 * BLOCK + 7]);
        assert!(
            read(&padded).is_ok(),
            "zeros after the end are allowed, as GNU tar pads records"
        );
        let mut appended = good.clone();
        appended.push(1);
        assert_eq!(
            read(&appended),
            Err(TarError::TrailingData { offset: good.len() })
        );
        for cut in [
            0,
            1,
            BLOCK,
            good.len() - BLOCK - 1,
            good.len() - BLOCK,
            good.len() - 1,
        ] {
            assert!(
                matches!(read(&good[..cut]), Err(TarError::Truncated { .. })),
                "{cut}"
            );
        }
        // Padding after `manifest.json` (3 bytes of data in the second block).
        let mut dirty = good.clone();
        dirty[2 * BLOCK + 3] = 1;
        assert_eq!(
            read(&dirty),
            Err(TarError::NonZeroPadding {
                path: "B/manifest.json".into()
            })
        );
        // A folder with no files, or files with no folder.
        let only_folder = [&good[..BLOCK], &[0u8; 2 * BLOCK][..]].concat();
        assert_eq!(
            read(&only_folder),
            Err(TarError::MissingFile {
                name: "manifest.json"
            })
        );
        let no_folder = good[BLOCK..].to_vec();
        assert_eq!(read(&no_folder), Err(TarError::MissingFolder));
    }

    #[test]
    fn caps_apply_before_data_is_touched() {
        let claim = raw_header(b"B/manifest.json", b"", b'0', 0o77_777_777_777);
        let tar = [&claim[..], &[0u8; 2 * BLOCK][..]].concat();
        assert_eq!(
            read(&tar),
            Err(TarError::FileTooLarge {
                path: "B/manifest.json".into(),
                size: 0o77_777_777_777,
                cap: TarLimits::DEFAULT.max_file_bytes
            })
        );
        let unlimited = TarLimits {
            max_file_bytes: u64::MAX,
            max_total_bytes: u64::MAX,
        };
        // Without overall limits the cap by name still holds.
        assert_eq!(
            read_tar(&tar, unlimited),
            Err(TarError::FileTooLarge {
                path: "B/manifest.json".into(),
                size: 0o77_777_777_777,
                cap: MEMBER_CAPS[0]
            })
        );
        let within = raw_header(b"B/readings.csv", b"", b'0', 1 << 20);
        let tar = [&within[..], &[0u8; 2 * BLOCK][..]].concat();
        assert_eq!(
            read_tar(&tar, unlimited),
            Err(TarError::Truncated { offset: BLOCK })
        );
        let small = TarLimits {
            max_file_bytes: 10,
            max_total_bytes: 1 << 20,
        };
        let good = write_tar("B", &SAMPLE, 0).unwrap();
        assert!(read_tar(&good, small).is_ok());
        let tight = TarLimits {
            max_file_bytes: 10,
            max_total_bytes: good.len() as u64 - 1,
        };
        assert!(matches!(
            read_tar(&good, tight),
            Err(TarError::ArchiveTooLarge { .. })
        ));
    }

    /// An input of `head`, then endless bytes whose reads are counted.
    struct Endless<'a> {
        head: &'a [u8],
        byte: u8,
        read_past: u64,
    }

    impl Read for Endless<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.head.is_empty() {
                return self.head.read(buf);
            }
            buf.fill(self.byte);
            self.read_past += len64(buf);
            Ok(buf.len())
        }
    }

    fn stream(input: impl Read) -> (Result<TarLayout, TarError>, Vec<usize>) {
        let mut visited = Vec::new();
        let result = read_tar_stream(input, TarLimits::DEFAULT, |m, data: &mut dyn Read| {
            if let Member::File(i) = m {
                visited.push(i);
            }
            io::copy(data, &mut io::sink())?;
            Ok::<(), Io>(())
        })
        .map_err(|Io(e)| e);
        (result, visited)
    }

    /// The stream error of these tests: only the format's, as the inputs cannot fail.
    #[derive(Debug)]
    struct Io(TarError);

    impl From<TarError> for Io {
        fn from(e: TarError) -> Self {
            Self(e)
        }
    }

    impl From<io::Error> for Io {
        fn from(e: io::Error) -> Self {
            panic!("{e}")
        }
    }

    /// A seekable input whose reads are counted; with `no_end`, one that cannot seek to its end
    /// (as the CLI's stream input).
    struct CountedReads<'a> {
        inner: io::Cursor<&'a [u8]>,
        read: u64,
        no_end: bool,
    }

    impl Read for CountedReads<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += len64(&buf[..n]);
            Ok(n)
        }
    }

    impl Seek for CountedReads<'_> {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            if self.no_end && matches!(to, SeekFrom::End(_)) {
                return Err(io::ErrorKind::Unsupported.into());
            }
            self.inner.seek(to)
        }
    }

    /// The seekable reader on `bytes` from offset `start`, keeping only the small files as the
    /// verifier's first pass does; its result, what it visited, and the bytes it read.
    fn seekable(bytes: &[u8], start: u64) -> (Result<TarLayout, TarError>, Vec<usize>, u64) {
        seekable_with(bytes, start, false)
    }

    fn seekable_with(
        bytes: &[u8],
        start: u64,
        no_end: bool,
    ) -> (Result<TarLayout, TarError>, Vec<usize>, u64) {
        let mut input = CountedReads {
            inner: io::Cursor::new(bytes),
            read: 0,
            no_end,
        };
        input.inner.set_position(start);
        let mut visited = Vec::new();
        let result = read_tar_seekable(&mut input, TarLimits::DEFAULT, |m, data: &mut dyn Read| {
            if let Member::File(i) = m {
                visited.push(i);
                if i != 1 {
                    io::copy(data, &mut io::sink())?;
                }
            }
            Ok::<(), Io>(())
        })
        .map_err(|Io(e)| e);
        (result, visited, input.read)
    }

    #[test]
    fn the_seekable_reader_passes_over_what_it_skips_and_judges_as_the_streaming_one() {
        let files = BundleFiles {
            readings: &[b'r'; 10 * BLOCK],
            ..SAMPLE
        };
        let good = write_tar("B", &files, 0).unwrap();
        let (layout, visited, read) = seekable(&good, 0);
        assert_eq!(layout, stream(&good[..]).0);
        assert_eq!(visited, [0, 1, 2, 3, 4, 5]);
        assert_eq!(
            read,
            len64(&good) - 10 * BLOCK as u64,
            "readings.csv was seeked past, everything else read"
        );
        // An input that cannot tell its end is read through, with the same outcome.
        let (through, _, all) = seekable_with(&good, 0, true);
        assert_eq!((through, all), (stream(&good[..]).0, len64(&good)));
        // From a position other than the start, the offsets are the archive's own.
        let shifted = [&[7u8; 3][..], &good].concat();
        assert_eq!(seekable(&shifted, 3).0, stream(&good[..]).0);
        // Cut anywhere, or with a byte changed anywhere in the headers and the padding, the two
        // readers refuse alike.
        for cut in (0..good.len()).step_by(97) {
            assert_eq!(
                seekable(&good[..cut], 0).0,
                stream(&good[..cut]).0,
                "cut at {cut}"
            );
        }
        for at in (0..good.len()).step_by(61) {
            let mut bad = good.clone();
            bad[at] ^= 0x41;
            assert_eq!(seekable(&bad, 0).0, stream(&bad[..]).0, "byte {at} changed");
        }
    }

    #[test]
    fn each_file_has_its_own_cap_checked_before_its_data_is_read() {
        // Each file's cap is its own: a signature or sums file of a few MiB is refused, although
        // far smaller than what readings.csv may be, and not one byte of its claimed data is read.
        let folder = raw_header(b"B/", b"", b'5', 0);
        for (i, name) in FILE_NAMES.iter().enumerate() {
            let claim = raw_header(
                format!("B/{name}").as_bytes(),
                b"",
                b'0',
                MEMBER_CAPS[i] + 1,
            );
            let head = [&folder[..], &claim[..]].concat();
            let mut input = Endless {
                head: &head,
                byte: b'x',
                read_past: 0,
            };
            let (result, visited) = stream(&mut input);
            assert_eq!(
                result,
                Err(TarError::FileTooLarge {
                    path: format!("B/{name}"),
                    size: MEMBER_CAPS[i] + 1,
                    cap: MEMBER_CAPS[i]
                }),
                "{name}"
            );
            assert_eq!(input.read_past, 0, "{name}: data was read");
            assert!(visited.is_empty());
        }
    }

    #[test]
    fn an_endless_input_is_refused_within_a_bounded_read() {
        // /dev/zero as a bundle: an empty archive followed by zeros without end.
        let mut zeros = Endless {
            head: &[],
            byte: 0,
            read_past: 0,
        };
        let (result, _) = stream(&mut zeros);
        assert_eq!(result, Err(TarError::LongTail { offset: 0 }));
        assert!(zeros.read_past <= MAX_TAIL_BYTES + 16 * BLOCK as u64);
        // A good archive followed by endless zeros, and one followed by garbage.
        let good = write_tar("B", &SAMPLE, 0).unwrap();
        let mut padded = Endless {
            head: &good,
            byte: 0,
            read_past: 0,
        };
        let (result, visited) = stream(&mut padded);
        assert_eq!(
            result,
            Err(TarError::LongTail {
                offset: good.len() - 2 * BLOCK
            })
        );
        assert_eq!(visited, [0, 1, 2, 3, 4, 5]);
        let mut garbage = Endless {
            head: &good,
            byte: 7,
            read_past: 0,
        };
        let (result, _) = stream(&mut garbage);
        assert_eq!(result, Err(TarError::TrailingData { offset: good.len() }));
    }

    #[test]
    fn the_stream_reports_where_each_file_lies() {
        let good = write_tar("B", &SAMPLE, 0).unwrap();
        let (layout, visited) = stream(&good[..]);
        let layout = layout.unwrap();
        assert_eq!(layout.folder, "B");
        assert_eq!(visited, [0, 1, 2, 3, 4, 5]);
        for ((span, data), name) in layout.members.iter().zip(SAMPLE.in_order()).zip(FILE_NAMES) {
            let (span, data) = (span.unwrap(), data.unwrap());
            let start = span.offset as usize;
            assert_eq!(&good[start..start + span.len as usize], data, "{name}");
        }
        let plan = TarPlan::new("B", SAMPLE.in_order().map(|d| d.map(len64)), 0).unwrap();
        assert_eq!(plan.len(), len64(&good));
    }

    fn folder_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._-]{1,99}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    proptest! {
        #[test]
        fn write_read_round_trip(
            folder in folder_name(),
            contents in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1100), 6),
            with_custody in any::<bool>(),
            mtime in 0u64..0o77_777_777_777,
        ) {
            let files = BundleFiles {
                manifest: &contents[0],
                readings: &contents[1],
                events: &contents[2],
                custody: with_custody.then_some(&contents[5][..]),
                sums: &contents[3],
                sig: &contents[4],
            };
            let tar = write_tar(&folder, &files, mtime).unwrap();
            let got = read(&tar).unwrap();
            prop_assert_eq!(got.folder, folder);
            prop_assert_eq!(got.files, files);
        }

        #[test]
        fn attachments_round_trip(
            folder in folder_name(),
            attached in proptest::collection::btree_map(
                "[A-Za-z0-9_][A-Za-z0-9._-]{0,63}",
                proptest::collection::vec(any::<u8>(), 0..700),
                0..6,
            ),
            mtime in 0u64..0o77_777_777_777,
        ) {
            let list: Vec<(&str, &[u8])> =
                attached.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
            let tar = write_tar_with(&folder, &SAMPLE, &list, mtime).unwrap();
            let got = read(&tar).unwrap();
            prop_assert_eq!(got.files, SAMPLE);
            prop_assert_eq!(
                got.attachments,
                list.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect::<Vec<_>>()
            );
        }

        #[test]
        fn never_panics_on_mutated_archives_with_attachments(
            edits in proptest::collection::vec((0usize..8192, any::<u8>()), 1..8),
        ) {
            let list: [(&str, &[u8]); 2] = [("a.svg", b"<svg/>"), ("report.html", b"<p>")];
            let mut tar = write_tar_with("B", &SAMPLE, &list, 0).unwrap();
            for (at, value) in edits {
                let len = tar.len();
                tar[at % len] = value;
            }
            let _ = read(&tar);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = read(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_archives(
            edits in proptest::collection::vec((0usize..8192, any::<u8>()), 1..8),
            cut in 0usize..8192,
        ) {
            let mut tar = write_tar("B", &SAMPLE, 0).unwrap();
            for (at, value) in edits {
                let len = tar.len();
                tar[at % len] = value;
            }
            tar.truncate(cut);
            let _ = read(&tar);
        }

        #[test]
        fn claimed_sizes_are_capped(size in any::<u64>().prop_map(|s| s % 0o100_000_000_000)) {
            // A header may claim any size; the reader must refuse before slicing or allocating.
            let claim = raw_header(b"B/readings.csv", b"", b'0', size);
            let tar = [&claim[..], &[0u8; 2 * BLOCK][..]].concat();
            let limits = TarLimits { max_file_bytes: 1024, max_total_bytes: 1 << 20 };
            match read_tar(&tar, limits) {
                Err(TarError::FileTooLarge { size: s, .. }) => prop_assert!(s > 1024 && s == size),
                Err(TarError::Truncated { .. } | TarError::NonZeroPadding { .. }) => prop_assert!(size <= 1024),
                Err(TarError::MissingFolder) => prop_assert!(size <= 1024),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
