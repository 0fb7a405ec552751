//! The bundle's format types: what `manifest.json` and `events.jsonl` hold.
//!
//! These types are the contract with the coordinator, so they depend on nothing but serde: no store,
//! no CLI, no I/O. Every type rejects unknown fields when read, so a verifier never silently ignores
//! something a newer or tampered writer put there.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hex;

/// The value of the manifest's `format` field; changes whenever the layout does. Version 2 adds
/// `custody.jsonl` and the manifest's `custody` and `traceability`; version 3 the manifest's
/// `previous_receipt`.
pub const FORMAT: &str = "tsagent-bundle-v3";

/// The format of a bundle that carries attachments (the lab's report) in `report/`: version 3
/// with the manifest's `attachments`. A bundle without attachments is sealed as [`FORMAT`],
/// byte for byte as before; a new version, rather than an optional field of v3, makes a verifier
/// that predates attachments refuse such a bundle by its format, naming it, instead of by an
/// unexpected tar member, and lets the verifier demand of each version exactly its files.
pub const FORMAT_V4: &str = "tsagent-bundle-v4";

/// The format of bundles sealed before receipts were carried (no `previous_receipt`); verifiers
/// still accept it.
pub const FORMAT_V2: &str = "tsagent-bundle-v2";

/// The format of bundles sealed before custody was recorded (no `custody.jsonl`, no `custody` or
/// `traceability` in the manifest); verifiers still accept it.
pub const FORMAT_V1: &str = "tsagent-bundle-v1";

/// The value of the manifest's `agent.name` field.
pub const AGENT_NAME: &str = "tsagent";

/// A SHA-256 value (or chain value), written as 64 lower-case hex digits.
///
/// Reading accepts only the lower-case form the writer produces, so a hash has exactly one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// Parses the lower-case hex form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        // Lower case only: one spelling per value keeps the format canonical.
        hex::decode32_lower(text.as_bytes()).map(Self)
    }
}

impl std::fmt::Display for Hash32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 lower-case hex digits"))
    }
}

/// The travelling standard the readings were taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtefactInfo {
    /// Short identifier, `[A-Za-z0-9._-]{1,64}`; part of the bundle name.
    pub id: String,
    /// What kind of standard it is, e.g. `zener`.
    pub kind: String,
    /// The manufacturer's serial number.
    pub serial: String,
    /// Nominal value in `unit`; must be finite.
    pub nominal: f64,
    /// Unit of `nominal`, e.g. `V`.
    pub unit: String,
}

/// One instrument identity the readings refer to by `instrument_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentInfo {
    /// The identity row's id, as in `readings.csv`'s `instrument_id`.
    pub id: u64,
    /// The configured instrument name.
    pub name: String,
    /// Where it was reached, e.g. `serial:///dev/ttyUSB0` or `tcp://10.0.0.5:5025`.
    pub resource: String,
    /// `*IDN?` manufacturer field.
    pub manufacturer: String,
    /// `*IDN?` model field.
    pub model: String,
    /// `*IDN?` serial field.
    pub serial: String,
    /// `*IDN?` firmware field.
    pub firmware: String,
}

/// The custody of the travelling standard when the bundle was sealed (format v2 on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyInfo {
    /// `expected`, `received`, `stabilising`, `official_window` or `dispatched`.
    pub state: String,
    /// Whether official runs are blocked by damage awaiting the pilot's decision.
    pub damage_blocks: bool,
    /// When the standard was received, RFC 3339; `None` before receipt.
    pub received_utc: Option<String>,
    /// When the stabilisation gate opened, RFC 3339; `None` while it is closed.
    pub gate_opened_utc: Option<String>,
    /// Number of lines in `custody.jsonl`.
    pub count: u64,
}

/// The traceability of one of the lab's own instruments (format v2 on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traceability {
    /// The configured instrument name.
    pub instrument: String,
    /// The calibration certificate's reference.
    pub certificate: String,
    /// Date of calibration, `YYYY-MM-DD`.
    pub calibrated: String,
    /// Date the next calibration is due, `YYYY-MM-DD`.
    pub due: String,
}

/// The coordinator's receipt for the lab's latest delivered bundle when this one was sealed
/// (format v3 on): the lab's own record that the pilot's log held it, at that size and root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRef {
    /// The bundle the receipt is for.
    pub bundle_seq: u64,
    /// Its entry in the coordinator's log.
    pub log_index: u64,
    /// The size of the log's checkpoint in the receipt.
    pub tree_size: u64,
    /// That checkpoint's root.
    pub root: Hash32,
}

/// The lab that sealed the bundle; `id` is also the signing principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabInfo {
    /// Short identifier, `[A-Za-z0-9._-]{1,64}`; the principal in `allowed_signers`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
}

/// What range of the reading chain the bundle carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingsSummary {
    /// Number of rows in `readings.csv`; at least 1.
    pub count: u64,
    /// `seq` of the first row.
    pub first_seq: u64,
    /// `seq` of the last row.
    pub last_seq: u64,
    /// Chain value before the first row (the previous bundle's `chain_last`).
    pub chain_prev: Hash32,
    /// Chain value after the last row.
    pub chain_last: Hash32,
}

/// Which events the bundle carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSummary {
    /// Number of lines in `events.jsonl`.
    pub count: u64,
    /// Id of the first event; `None` when there are none.
    pub first_id: Option<u64>,
    /// Id of the last event; `None` when there are none.
    pub last_id: Option<u64>,
}

/// The program that sealed the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// Always [`AGENT_NAME`].
    pub name: String,
    /// The agent's version string.
    pub version: String,
}

/// `manifest.json`: what the bundle is, whose it is and where it sits in the lab's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`] (or [`FORMAT_V1`] in older bundles).
    pub format: String,
    /// The sealing lab.
    pub lab: LabInfo,
    /// The travelling standard.
    pub artefact: ArtefactInfo,
    /// 1 for the lab's first bundle on this artefact, then +1 each time.
    pub bundle_seq: u64,
    /// SHA-256 of the previous bundle's `SHA256SUMS`; `None` exactly when `bundle_seq` is 1.
    pub prev_sha256sums: Option<Hash32>,
    /// The readings carried.
    pub readings: ReadingsSummary,
    /// The events carried.
    pub events: EventsSummary,
    /// Sealing time, RFC 3339 with microseconds; the same instant as `created_utc_us`.
    pub created_utc: String,
    /// Sealing time, microseconds since the Unix epoch.
    pub created_utc_us: i64,
    /// The sealing program.
    pub agent: AgentInfo,
    /// The instruments the readings refer to.
    pub instruments: Vec<InstrumentInfo>,
    /// SHA-256 of the sequence definitions in force.
    pub sequences_sha256: Hash32,
    /// The standard's custody at sealing; present from format v2 on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody: Option<CustodyInfo>,
    /// The traceability of the lab's instruments that have a calibration configured; format v2
    /// on (written even when empty, so a v2 manifest always says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceability: Option<Vec<Traceability>>,
    /// The latest receipt the lab held at sealing; format v3 on, `null` before the first.
    #[serde(default)]
    pub previous_receipt: Option<ReceiptRef>,
    /// The files in `report/`, by name in sorted order; format v4 only (at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
}

/// One file a bundle carries in `report/` (format v4): the lab's report, summary, plots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// `report/<name>`, as `SHA256SUMS` lists it.
    pub file: String,
    /// Its SHA-256.
    pub sha256: Hash32,
    /// Its length in bytes.
    pub size: u64,
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    /// The event's id; strictly increasing through the file.
    pub id: u64,
    /// RFC 3339 with microseconds; the same instant as `utc_us`.
    pub utc: String,
    /// Microseconds since the Unix epoch.
    pub utc_us: i64,
    /// The run it belongs to, if any.
    pub run_id: Option<u64>,
    /// The instrument name it concerns, if any.
    pub instrument: Option<String>,
    /// What happened, e.g. `clock_step`.
    pub kind: String,
    /// Kind-specific details.
    pub detail: serde_json::Value,
}

impl EventLine {
    /// The event typed, when its kind is one this version knows.
    pub fn event(&self) -> Result<crate::event::Event, serde_json::Error> {
        crate::event::Event::from_parts(&self.kind, &self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_has_one_spelling() {
        let lower = "ab".repeat(32);
        assert_eq!(Hash32::parse(&lower), Some(Hash32([0xab; 32])));
        assert_eq!(Hash32::parse(&lower.to_uppercase()), None);
        let json = serde_json::to_string(&Hash32([0xab; 32])).unwrap();
        assert_eq!(json, format!("\"{lower}\""));
        assert!(serde_json::from_str::<Hash32>(&json.to_uppercase()).is_err());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let ok = r#"{"id":"L","name":"Lab"}"#;
        assert!(serde_json::from_str::<LabInfo>(ok).is_ok());
        let extra = r#"{"id":"L","name":"Lab","x":1}"#;
        assert!(serde_json::from_str::<LabInfo>(extra).is_err());
        let dup = r#"{"id":"L","id":"M","name":"Lab"}"#;
        assert!(serde_json::from_str::<LabInfo>(dup).is_err());
    }
}
