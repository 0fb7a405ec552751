//! The reading hash chain: the one definition of a reading's canonical bytes.
//!
//! `chain[n] = SHA-256(chain[n-1] ‖ canonical(reading n))`, starting from [`GENESIS`]. The store
//! computes it when it appends a reading, `db check` recomputes it over the table, and the bundle
//! verifier recomputes it from `readings.csv`, so any edit, insertion or deletion shows. The encoding
//! is length-prefixed and fixed-width so that no two different readings share bytes.

use sha2::{Digest, Sha256};

/// Chain value before the first reading.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Domain tag at the start of every canonical encoding; the version changes if the encoding does.
const TAG: &[u8] = b"tsagent.reading.v1\0";

/// What a reading's value turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadingStatus {
    /// A finite number in `value`.
    Valid,
    /// The instrument reported an overload (`+9.9E37` in SCPI); `value` is empty.
    Overload,
    /// The instrument reported "not a number" (`9.91E37` in SCPI); `value` is empty.
    NotANumber,
}

impl ReadingStatus {
    /// The name used in the database and in `readings.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Overload => "overload",
            Self::NotANumber => "nan",
        }
    }

    /// Inverse of [`ReadingStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "valid" => Some(Self::Valid),
            "overload" => Some(Self::Overload),
            "nan" => Some(Self::NotANumber),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Valid => 0,
            Self::Overload => 1,
            Self::NotANumber => 2,
        }
    }
}

/// The chained fields of one reading, exactly as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingRecord {
    /// Global sequence number, 1, 2, 3, … with no holes.
    pub seq: u64,
    /// The run that took it.
    pub run_id: u64,
    /// The instrument identity row it was read from.
    pub instrument_id: u64,
    /// What was measured, e.g. `voltage`.
    pub quantity: String,
    /// The parsed value when `status` is [`ReadingStatus::Valid`].
    pub value: Option<f64>,
    /// Whether the reply was a number, an overload or not-a-number.
    pub status: ReadingStatus,
    /// Unit of `value`, e.g. `V`.
    pub unit: String,
    /// The instrument's reply, verbatim without its terminator.
    pub raw: String,
    /// Wall-clock time, microseconds since the Unix epoch (UTC).
    pub utc_us: i64,
    /// `CLOCK_MONOTONIC` in nanoseconds; comparable only within one `boot_id`.
    pub mono_ns: u64,
    /// The kernel's boot id when the reading was taken.
    pub boot_id: String,
}

impl ReadingRecord {
    /// The same reading as borrowed fields.
    pub fn as_ref(&self) -> ReadingRef<'_> {
        ReadingRef {
            seq: self.seq,
            run_id: self.run_id,
            instrument_id: self.instrument_id,
            quantity: &self.quantity,
            value: self.value,
            status: self.status,
            unit: &self.unit,
            raw: &self.raw,
            utc_us: self.utc_us,
            mono_ns: self.mono_ns,
            boot_id: &self.boot_id,
        }
    }

    /// The canonical byte encoding that the chain hashes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.as_ref().canonical_into(&mut out);
        out
    }

    /// The chain value after this reading, given the chain value before it.
    pub fn chain_after(&self, previous: &[u8; 32]) -> [u8; 32] {
        self.as_ref().chain_after(previous)
    }
}

/// A reading's chained fields, borrowed: what the store hashes when it appends, without copying
/// every text of a large block of readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingRef<'a> {
    /// See [`ReadingRecord::seq`].
    pub seq: u64,
    /// See [`ReadingRecord::run_id`].
    pub run_id: u64,
    /// See [`ReadingRecord::instrument_id`].
    pub instrument_id: u64,
    /// See [`ReadingRecord::quantity`].
    pub quantity: &'a str,
    /// See [`ReadingRecord::value`].
    pub value: Option<f64>,
    /// See [`ReadingRecord::status`].
    pub status: ReadingStatus,
    /// See [`ReadingRecord::unit`].
    pub unit: &'a str,
    /// See [`ReadingRecord::raw`].
    pub raw: &'a str,
    /// See [`ReadingRecord::utc_us`].
    pub utc_us: i64,
    /// See [`ReadingRecord::mono_ns`].
    pub mono_ns: u64,
    /// See [`ReadingRecord::boot_id`].
    pub boot_id: &'a str,
}

impl ReadingRef<'_> {
    /// Appends the canonical byte encoding to `out` (cleared first), reusing its allocation.
    pub fn canonical_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(TAG);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.run_id.to_be_bytes());
        out.extend_from_slice(&self.instrument_id.to_be_bytes());
        put_text(out, self.quantity);
        out.push(self.status.code());
        out.extend_from_slice(&self.value.map_or(0, f64::to_bits).to_be_bytes());
        put_text(out, self.unit);
        put_text(out, self.raw);
        out.extend_from_slice(&self.utc_us.to_be_bytes());
        out.extend_from_slice(&self.mono_ns.to_be_bytes());
        put_text(out, self.boot_id);
    }

    /// The chain value after this reading, given the chain value before it.
    pub fn chain_after(&self, previous: &[u8; 32]) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(TAG.len() + 64 + self.raw.len() + 64);
        self.chain_after_in(previous, &mut bytes)
    }

    /// [`chain_after`](Self::chain_after) with a caller's buffer for the canonical bytes, so a
    /// block of thousands of readings is chained without an allocation each.
    pub fn chain_after_in(&self, previous: &[u8; 32], buffer: &mut Vec<u8>) -> [u8; 32] {
        self.canonical_into(buffer);
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update(&*buffer);
        hasher.finalize().into()
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    // Texts are bounded by the transport's reply cap (1 MiB default), far below u32::MAX; saturating
    // keeps the encoding total even if a caller bypasses that cap.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReadingRecord {
        ReadingRecord {
            seq: 1,
            run_id: 1,
            instrument_id: 1,
            quantity: "voltage".into(),
            value: Some(10.000_002_3),
            status: ReadingStatus::Valid,
            unit: "V".into(),
            raw: "+1.00000023E+01".into(),
            utc_us: 1_700_000_000_000_000,
            mono_ns: 42,
            boot_id: "b".into(),
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = sample();
        let h = base.chain_after(&GENESIS);
        let mut variants = Vec::new();
        let mut r = base.clone();
        r.seq = 2;
        variants.push(r);
        let mut r = base.clone();
        r.run_id = 2;
        variants.push(r);
        let mut r = base.clone();
        r.instrument_id = 2;
        variants.push(r);
        let mut r = base.clone();
        r.quantity = "voltagE".into();
        variants.push(r);
        let mut r = base.clone();
        r.value = Some(10.000_002_4);
        variants.push(r);
        let mut r = base.clone();
        r.status = ReadingStatus::Overload;
        variants.push(r);
        let mut r = base.clone();
        r.unit = "mV".into();
        variants.push(r);
        let mut r = base.clone();
        r.raw.push(' ');
        variants.push(r);
        let mut r = base.clone();
        r.utc_us += 1;
        variants.push(r);
        let mut r = base.clone();
        r.mono_ns += 1;
        variants.push(r);
        let mut r = base.clone();
        r.boot_id = "c".into();
        variants.push(r);
        for v in variants {
            assert_ne!(v.chain_after(&GENESIS), h, "{v:?}");
        }
        assert_ne!(base.chain_after(&h), h, "the previous link matters");
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        // Moving a character between two adjacent texts must change the encoding.
        let mut a = sample();
        a.quantity = "ab".into();
        a.unit = "c".into();
        let mut b = sample();
        b.quantity = "a".into();
        b.unit = "bc".into();
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }
}
