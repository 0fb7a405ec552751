//! Sealing: readings, events and metadata in, one signed, deterministic tar out.
//!
//! [`Sealer`] streams: readings and events are checked and written one at a time into the
//! caller's sinks (files, for a backlog of any length) while their hashes are taken, and
//! [`SealedParts`] then writes the archive from those sinks. [`seal`] is the same in memory.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey};
use thiserror::Error;

use super::chain::ReadingRef;
use super::content::{ContentError, EventsCheck, ReadingsCheck};
use super::csv::MAX_RECORD_BYTES;
use super::manifest::{
    AGENT_NAME, AgentInfo, ArtefactInfo, Attachment, CustodyInfo, FORMAT, FORMAT_V4, Hash32,
    InstrumentInfo, LabInfo, Manifest, ReceiptRef, Traceability,
};
use super::records::{self, EventExport, ReadingExport, RowWriter, format_utc_us};
use super::ssh::SshError;
use super::tar::{
    ATTACHMENT_DIR, CUSTODY, FILE_NAMES, MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MAX_FOLDER_LEN,
    MEMBER_CAPS, TarLimits, TarPlan, TarWriteError, is_attachment_name,
};
use super::{NAMESPACE, bundle_name, is_valid_id, sums};

/// Everything a bundle is made of; the store reads it as one consistent snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SealInput {
    /// The lab's id, `[A-Za-z0-9._-]{1,64}`; also the signing principal.
    pub lab_id: String,
    /// The lab's name.
    pub lab_name: String,
    /// The travelling standard; its id is `[A-Za-z0-9._-]{1,64}`.
    pub artefact: ArtefactInfo,
    /// 1 for the first bundle, then +1.
    pub bundle_seq: u64,
    /// SHA-256 of the previous bundle's `SHA256SUMS`; `None` exactly for bundle 1.
    pub prev_sums_sha256: Option<[u8; 32]>,
    /// The chain value before the first reading ([`crate::chain::GENESIS`] before reading 1).
    pub chain_prev: [u8; 32],
    /// The readings, contiguous by `seq`; at least one.
    pub readings: Vec<ReadingExport>,
    /// The events, ids increasing; may be empty.
    pub events: Vec<EventExport>,
    /// Every instrument the readings refer to.
    pub instruments: Vec<InstrumentInfo>,
    /// SHA-256 of the sequence definitions in force.
    pub sequences_sha256: [u8; 32],
    /// Sealing time, microseconds since the Unix epoch; also the tar's mtime (whole seconds).
    pub created_utc_us: i64,
    /// The agent's version string.
    pub agent_version: String,
    /// The standard's custody at sealing (its `count` is the sealer's to fill).
    pub custody: CustodyInfo,
    /// The lab's instruments' traceability.
    pub traceability: Vec<Traceability>,
    /// The coordinator's latest receipt the lab holds, if any.
    pub previous_receipt: Option<ReceiptRef>,
}

/// Whether a file of `size` bytes may ride in a bundle as `report/<name>`: what [`Sealer::attach`]
/// checks, for a lab to check when it stages a file rather than when it seals.
pub fn check_attachment(name: &str, size: u64) -> Result<(), SealError> {
    if !is_attachment_name(name) {
        return Err(SealError::AttachmentName(name.to_owned()));
    }
    if size > MAX_ATTACHMENT_BYTES {
        return Err(SealError::AttachmentTooLarge {
            name: name.to_owned(),
            size,
            cap: MAX_ATTACHMENT_BYTES,
        });
    }
    Ok(())
}

/// A sealed bundle, in memory; the caller records it durably, then writes `tar` to `file_name`.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedBundle {
    /// `<lab>-<artefact>-<bundle_seq, 6 digits>`, also the folder inside the tar.
    pub name: String,
    /// `name` + `.tar`.
    pub file_name: String,
    /// The archive bytes.
    pub tar: Vec<u8>,
    /// SHA-256 of `SHA256SUMS`: the next bundle's `prev_sums_sha256`.
    pub sums_sha256: [u8; 32],
    /// The manifest inside.
    pub manifest: Manifest,
}

/// Why a bundle could not be sealed.
#[derive(Debug, Error)]
pub enum SealError {
    /// An id would not make a safe bundle name or principal.
    #[error("invalid {what} id `{id}` (expected [A-Za-z0-9._-]{{1,64}})")]
    InvalidId {
        /// `lab` or `artefact`.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// The name must fit the tar header.
    #[error("bundle name `{0}` is longer than {MAX_FOLDER_LEN} bytes")]
    NameTooLong(String),
    /// Bundle numbers start at 1.
    #[error("bundle_seq must be at least 1")]
    ZeroBundleSeq,
    /// Bundle 1 has no predecessor; every later bundle names one.
    #[error(
        "bundle {bundle_seq}: the previous SHA256SUMS hash must be given exactly when bundle_seq > 1"
    )]
    PrevMismatch {
        /// The bundle number.
        bundle_seq: u64,
    },
    /// JSON cannot carry a non-finite number.
    #[error("artefact nominal value is not finite")]
    NonFiniteNominal,
    /// The sealing time cannot be written as RFC 3339.
    #[error("creation time {0} µs is outside years 1970 to 9999")]
    CreatedTime(i64),
    /// A reading or event breaks the bundle's rules.
    #[error("bundle content is invalid")]
    Content(#[from] ContentError),
    /// A file would exceed what verifiers accept.
    #[error("{file} would be {size} bytes, over the {cap}-byte cap verifiers apply")]
    TooLarge {
        /// Which file (or `tar`).
        file: &'static str,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Serialising a JSON file failed.
    #[error("cannot encode {file}")]
    Json {
        /// Which file.
        file: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// One reading's row or one event's line would be longer than verifiers read.
    #[error("{file} record {record} would be longer than the {cap} bytes verifiers read")]
    RecordTooLong {
        /// Which file.
        file: &'static str,
        /// The reading's sequence number or the event's id.
        record: u64,
        /// The cap.
        cap: usize,
    },
    /// Writing a file's bytes to the caller's sink failed.
    #[error("cannot write {file}")]
    Io {
        /// Which file.
        file: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Signing `SHA256SUMS` failed.
    #[error("cannot sign SHA256SUMS")]
    Sign(#[source] SshError),
    /// Building the archive failed.
    #[error("cannot build the bundle archive")]
    Tar(#[from] TarWriteError),
    /// An attachment's name is not 1 to 64 bytes of `[A-Za-z0-9._-]` not starting with `.` or `-`.
    #[error(
        "invalid attachment name `{0}` (expected [A-Za-z0-9._-]{{1,64}}, not starting with . or -)"
    )]
    AttachmentName(String),
    /// The same attachment name twice.
    #[error("attachment `{0}` is given twice")]
    DuplicateAttachment(String),
    /// More attachments than verifiers accept.
    #[error("more than {cap} attachments")]
    TooManyAttachments {
        /// The cap.
        cap: usize,
    },
    /// An attachment larger than verifiers accept.
    #[error("attachment `{name}` is {size} bytes, over the {cap}-byte cap verifiers apply")]
    AttachmentTooLarge {
        /// Its name.
        name: String,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Everything a bundle carries besides its readings, events and instruments.
#[derive(Debug, Clone, PartialEq)]
pub struct SealHeader {
    /// The lab's id, `[A-Za-z0-9._-]{1,64}`; also the signing principal.
    pub lab_id: String,
    /// The lab's name.
    pub lab_name: String,
    /// The travelling standard; its id is `[A-Za-z0-9._-]{1,64}`.
    pub artefact: ArtefactInfo,
    /// 1 for the first bundle, then +1.
    pub bundle_seq: u64,
    /// SHA-256 of the previous bundle's `SHA256SUMS`; `None` exactly for bundle 1.
    pub prev_sums_sha256: Option<[u8; 32]>,
    /// The chain value before the first reading ([`crate::chain::GENESIS`] before reading 1).
    pub chain_prev: [u8; 32],
    /// SHA-256 of the sequence definitions in force.
    pub sequences_sha256: [u8; 32],
    /// Sealing time, microseconds since the Unix epoch; also the tar's mtime (whole seconds).
    pub created_utc_us: i64,
    /// The agent's version string.
    pub agent_version: String,
    /// The standard's custody at sealing (its `count` is the sealer's to fill).
    pub custody: CustodyInfo,
    /// The lab's instruments' traceability.
    pub traceability: Vec<Traceability>,
    /// The coordinator's latest receipt the lab holds, if any.
    pub previous_receipt: Option<ReceiptRef>,
}

/// Bytes flushed to a sink at a time.
const FLUSH_BYTES: usize = 256 << 10;

/// One streamed file: its pending bytes, hash and length so far.
struct Section<W> {
    file: &'static str,
    out: W,
    buf: Vec<u8>,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Section<W> {
    fn new(file: &'static str, out: W) -> Self {
        Self {
            file,
            out,
            buf: Vec::with_capacity(FLUSH_BYTES + 4096),
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Accounts for the record appended to `buf` since `mark`; flushes when enough is pending.
    fn record(&mut self, mark: usize, id: u64) -> Result<(), SealError> {
        let size = self.buf.len() - mark;
        if size > MAX_RECORD_BYTES {
            return Err(SealError::RecordTooLong {
                file: self.file,
                record: id,
                cap: MAX_RECORD_BYTES,
            });
        }
        self.len += u64::try_from(size).unwrap_or(u64::MAX);
        let index = FILE_NAMES.iter().position(|&n| n == self.file).unwrap_or(0);
        if self.len > MEMBER_CAPS[index] {
            return Err(SealError::TooLarge {
                file: self.file,
                size: self.len,
                cap: MEMBER_CAPS[index],
            });
        }
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SealError> {
        self.hasher.update(&self.buf);
        self.out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush())
            .map_err(|source| SealError::Io {
                file: self.file,
                source,
            })?;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<([u8; 32], u64, W), SealError> {
        self.flush()?;
        Ok((self.hasher.finalize().into(), self.len, self.out))
    }
}

/// A bundle being sealed: readings and events go in one at a time, checked by the rules a verifier
/// applies and written to the caller's sinks as `readings.csv` and `events.jsonl`; [`finish`]
/// signs. Memory does not depend on how many there are.
///
/// [`finish`]: Sealer::finish
pub struct Sealer<R, E> {
    header: SealHeader,
    name: String,
    created_utc: String,
    mtime: u64,
    instruments: Vec<InstrumentInfo>,
    readings: Section<R>,
    events: Section<E>,
    /// `custody.jsonl`: the custody lines of `events.jsonl`, byte for byte; a few per
    /// circulation, so held in memory (under its cap).
    custody: Vec<u8>,
    custody_count: u64,
    readings_check: ReadingsCheck,
    events_check: EventsCheck,
    rows: RowWriter,
    /// The attachments, by name: held in memory, as a report is a few small files (each under
    /// its cap, and no more than [`MAX_ATTACHMENTS`] of them).
    attachments: std::collections::BTreeMap<String, Vec<u8>>,
}

impl<R: Write, E: Write> Sealer<R, E> {
    /// Starts a bundle whose readings may name `instruments` (the manifest lists those they do);
    /// `readings.csv` goes to `readings_out`, `events.jsonl` to `events_out`.
    pub fn new(
        header: SealHeader,
        instruments: Vec<InstrumentInfo>,
        readings_out: R,
        events_out: E,
    ) -> Result<Self, SealError> {
        for (what, id) in [("lab", &header.lab_id), ("artefact", &header.artefact.id)] {
            if !is_valid_id(id) {
                return Err(SealError::InvalidId {
                    what,
                    id: id.clone(),
                });
            }
        }
        let name = bundle_name(&header.lab_id, &header.artefact.id, header.bundle_seq);
        if name.len() > MAX_FOLDER_LEN {
            return Err(SealError::NameTooLong(name));
        }
        if header.bundle_seq == 0 {
            return Err(SealError::ZeroBundleSeq);
        }
        if (header.bundle_seq == 1) != header.prev_sums_sha256.is_none() {
            return Err(SealError::PrevMismatch {
                bundle_seq: header.bundle_seq,
            });
        }
        if !header.artefact.nominal.is_finite() {
            return Err(SealError::NonFiniteNominal);
        }
        let created_utc = format_utc_us(header.created_utc_us)
            .ok_or(SealError::CreatedTime(header.created_utc_us))?;
        let mtime = u64::try_from(header.created_utc_us.div_euclid(1_000_000)).unwrap_or(0);
        let readings_check = ReadingsCheck::new(header.chain_prev, &instruments)?;
        let mut rows = RowWriter::default();
        let mut readings = Section::new("readings.csv", readings_out);
        rows.write_header(&mut readings.buf);
        readings.len = u64::try_from(readings.buf.len()).unwrap_or(0);
        Ok(Self {
            header,
            name,
            created_utc,
            mtime,
            instruments,
            readings,
            events: Section::new("events.jsonl", events_out),
            custody: Vec::new(),
            custody_count: 0,
            readings_check,
            events_check: EventsCheck::default(),
            rows,
            attachments: std::collections::BTreeMap::new(),
        })
    }

    /// Attaches a file to carry in `report/<name>`, listed in `SHA256SUMS` and the manifest; a
    /// bundle with attachments is of format v4. Checked here against what verifiers accept, so a
    /// lab never signs a bundle a verifier refuses.
    pub fn attach(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), SealError> {
        check_attachment(name, u64::try_from(bytes.len()).unwrap_or(u64::MAX))?;
        if self.attachments.contains_key(name) {
            return Err(SealError::DuplicateAttachment(name.to_owned()));
        }
        if self.attachments.len() >= MAX_ATTACHMENTS {
            return Err(SealError::TooManyAttachments {
                cap: MAX_ATTACHMENTS,
            });
        }
        self.attachments.insert(name.to_owned(), bytes);
        Ok(())
    }

    /// The bundle's name, `<lab>-<artefact>-<seq:06>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds the next reading; readings come in sequence order, each with its chain value.
    pub fn push_reading(
        &mut self,
        reading: &ReadingRef<'_>,
        sequence: &str,
        instrument: &str,
        chain: &[u8; 32],
    ) -> Result<(), SealError> {
        self.readings_check.push(reading, instrument, chain)?;
        let mark = self.readings.buf.len();
        self.rows
            .write(&mut self.readings.buf, reading, sequence, instrument, chain);
        self.readings.record(mark, reading.seq)
    }

    /// Adds the next event; ids increase.
    pub fn push_event(&mut self, event: &EventExport) -> Result<(), SealError> {
        self.events_check.push(event.id, event.utc_us)?;
        let mark = self.events.buf.len();
        records::write_event_line(&mut self.events.buf, event).map_err(|source| {
            SealError::Json {
                file: "events.jsonl",
                source,
            }
        })?;
        if crate::event::is_custody_kind(&event.kind) {
            let line = self.events.buf.get(mark..).unwrap_or_default();
            let size = u64::try_from(self.custody.len() + line.len()).unwrap_or(u64::MAX);
            if size > MEMBER_CAPS[CUSTODY] {
                return Err(SealError::TooLarge {
                    file: "custody.jsonl",
                    size,
                    cap: MEMBER_CAPS[CUSTODY],
                });
            }
            self.custody.extend_from_slice(line);
            self.custody_count += 1;
        }
        self.events.record(mark, event.id)
    }

    /// Signs what was added. Returns the small files and the plan of the archive, and gives the
    /// sinks back (all bytes written to them).
    pub fn finish(self, key: &PrivateKey) -> Result<(SealedParts, R, E), SealError> {
        let readings = self.readings_check.finish()?;
        let events = self.events_check.finish();
        let used: Vec<u64> = self.readings_check.instruments_used().collect();
        let instruments = self
            .instruments
            .into_iter()
            .filter(|i| used.binary_search(&i.id).is_ok())
            .collect();
        let (readings_sha256, readings_len, readings_out) = self.readings.finish()?;
        let (events_sha256, events_len, events_out) = self.events.finish()?;
        let h = self.header;
        let attachments: Vec<(String, Vec<u8>)> = self.attachments.into_iter().collect();
        let listed: Vec<(String, [u8; 32])> = attachments
            .iter()
            .map(|(name, bytes)| (name.clone(), sha256(bytes)))
            .collect();
        let manifest = Manifest {
            format: if attachments.is_empty() {
                FORMAT
            } else {
                FORMAT_V4
            }
            .to_owned(),
            lab: LabInfo {
                id: h.lab_id,
                name: h.lab_name,
            },
            artefact: h.artefact,
            bundle_seq: h.bundle_seq,
            prev_sha256sums: h.prev_sums_sha256.map(Hash32),
            readings,
            events,
            created_utc: self.created_utc,
            created_utc_us: h.created_utc_us,
            agent: AgentInfo {
                name: AGENT_NAME.to_owned(),
                version: h.agent_version,
            },
            instruments,
            sequences_sha256: Hash32(h.sequences_sha256),
            custody: Some(CustodyInfo {
                count: self.custody_count,
                ..h.custody
            }),
            traceability: Some(h.traceability),
            previous_receipt: h.previous_receipt,
            attachments: (!attachments.is_empty()).then(|| {
                attachments
                    .iter()
                    .zip(&listed)
                    .map(|((name, bytes), (_, hash))| Attachment {
                        file: format!("{ATTACHMENT_DIR}/{name}"),
                        sha256: Hash32(*hash),
                        size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                    })
                    .collect()
            }),
        };
        let mut manifest_json =
            serde_json::to_vec_pretty(&manifest).map_err(|source| SealError::Json {
                file: "manifest.json",
                source,
            })?;
        manifest_json.push(b'\n');
        let manifest_len = u64::try_from(manifest_json.len()).unwrap_or(u64::MAX);
        if manifest_len > MEMBER_CAPS[0] {
            return Err(SealError::TooLarge {
                file: "manifest.json",
                size: manifest_len,
                cap: MEMBER_CAPS[0],
            });
        }
        let sums_text = sums::render(&sums::Sums {
            custody: Some(sha256(&self.custody)),
            events: events_sha256,
            manifest: sha256(&manifest_json),
            readings: readings_sha256,
            attachments: listed,
        });
        let signature = key
            .sign(NAMESPACE, HashAlg::Sha512, sums_text.as_bytes())
            .map_err(|e| SealError::Sign(e.into()))?;
        let sig = signature
            .to_pem(LineEnding::LF)
            .map_err(|e| SealError::Sign(e.into()))?
            .into_bytes();
        let sums = sums_text.into_bytes();
        let len = |b: &[u8]| u64::try_from(b.len()).unwrap_or(u64::MAX);
        let sizes: Vec<(&str, u64)> = attachments
            .iter()
            .map(|(name, bytes)| (name.as_str(), len(bytes)))
            .collect();
        let plan = TarPlan::with_attachments(
            &self.name,
            [
                Some(manifest_len),
                Some(readings_len),
                Some(events_len),
                Some(len(&self.custody)),
                Some(len(&sums)),
                Some(len(&sig)),
            ],
            &sizes,
            self.mtime,
        )?;
        let cap = TarLimits::DEFAULT.max_total_bytes;
        if plan.len() > cap {
            return Err(SealError::TooLarge {
                file: "tar",
                size: plan.len(),
                cap,
            });
        }
        Ok((
            SealedParts {
                file_name: format!("{}.tar", self.name),
                name: self.name,
                sums_sha256: sha256(&sums),
                manifest,
                manifest_json,
                custody: self.custody,
                sums,
                sig,
                attachments,
                plan,
            },
            readings_out,
            events_out,
        ))
    }
}

/// A signed bundle whose `readings.csv` and `events.jsonl` are in the caller's sinks: what is needed
/// to write its archive, and to record it.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedParts {
    /// `<lab>-<artefact>-<bundle_seq, 6 digits>`, also the folder inside the tar.
    pub name: String,
    /// `name` + `.tar`.
    pub file_name: String,
    /// SHA-256 of `SHA256SUMS`: the next bundle's `prev_sums_sha256`.
    pub sums_sha256: [u8; 32],
    /// The manifest.
    pub manifest: Manifest,
    /// `manifest.json`.
    pub manifest_json: Vec<u8>,
    /// `custody.jsonl`.
    pub custody: Vec<u8>,
    /// `SHA256SUMS`.
    pub sums: Vec<u8>,
    /// `SHA256SUMS.sig`.
    pub sig: Vec<u8>,
    /// The attachments, name and bytes, sorted by name.
    pub attachments: Vec<(String, Vec<u8>)>,
    plan: TarPlan,
}

impl SealedParts {
    /// The archive's length in bytes.
    pub fn archive_len(&self) -> u64 {
        self.plan.len()
    }

    /// Writes the archive to `out`, taking `readings.csv` and `events.jsonl` from the readers
    /// (exactly the bytes the sealer wrote to its sinks).
    pub fn write_archive<W: Write + ?Sized>(
        &self,
        out: &mut W,
        readings: &mut dyn Read,
        events: &mut dyn Read,
    ) -> io::Result<()> {
        let mut slices: Vec<&[u8]> = self.attachments.iter().map(|(_, b)| &b[..]).collect();
        let mut attached: Vec<&mut dyn Read> =
            slices.iter_mut().map(|s| s as &mut dyn Read).collect();
        self.plan.write_with(
            out,
            [
                &mut &self.manifest_json[..],
                readings,
                events,
                &mut &self.custody[..],
                &mut &self.sums[..],
                &mut &self.sig[..],
            ],
            &mut attached,
        )
    }
}

/// Builds and signs a bundle in memory. Pure: the same input and key give the same bytes.
pub fn seal(input: &SealInput, key: &PrivateKey) -> Result<SealedBundle, SealError> {
    seal_with_attachments(input, &[], key)
}

/// [`seal`], carrying `attachments` (name and bytes) in `report/`: format v4 when there are any.
pub fn seal_with_attachments(
    input: &SealInput,
    attachments: &[(&str, &[u8])],
    key: &PrivateKey,
) -> Result<SealedBundle, SealError> {
    let header = SealHeader {
        lab_id: input.lab_id.clone(),
        lab_name: input.lab_name.clone(),
        artefact: input.artefact.clone(),
        bundle_seq: input.bundle_seq,
        prev_sums_sha256: input.prev_sums_sha256,
        chain_prev: input.chain_prev,
        sequences_sha256: input.sequences_sha256,
        created_utc_us: input.created_utc_us,
        agent_version: input.agent_version.clone(),
        custody: input.custody.clone(),
        traceability: input.traceability.clone(),
        previous_receipt: input.previous_receipt.clone(),
    };
    let mut sealer = Sealer::new(header, input.instruments.clone(), Vec::new(), Vec::new())?;
    for r in &input.readings {
        sealer.push_reading(&r.record.as_ref(), &r.sequence, &r.instrument, &r.chain)?;
    }
    for e in &input.events {
        sealer.push_event(e)?;
    }
    for (name, bytes) in attachments {
        sealer.attach(name, bytes.to_vec())?;
    }
    let (parts, readings, events) = sealer.finish(key)?;
    let mut tar = Vec::with_capacity(usize::try_from(parts.archive_len()).unwrap_or(0));
    parts
        .write_archive(&mut tar, &mut &readings[..], &mut &events[..])
        .map_err(|source| SealError::Io {
            file: "tar",
            source,
        })?;
    Ok(SealedBundle {
        name: parts.name,
        file_name: parts.file_name,
        tar,
        sums_sha256: parts.sums_sha256,
        manifest: parts.manifest,
    })
}
