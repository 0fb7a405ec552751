//! The rules the readings and events of a bundle obey, checked by the sealer and the verifier alike,
//! so a lab can never sign a bundle the pilot lab's verifier would refuse.

use std::collections::HashMap;

use thiserror::Error;

use super::manifest::{EventLine, EventsSummary, Hash32, InstrumentInfo, ReadingsSummary};
use super::records::{ReadingExport, format_utc_us, value_fits_status};
use crate::chain::GENESIS;

/// A reading or event that breaks the bundle's rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContentError {
    /// A bundle carries at least one reading.
    #[error("a bundle needs at least one reading")]
    NoReadings,
    /// Sequence numbers start at 1.
    #[error("reading seq 0 is not allowed; sequence numbers start at 1")]
    SeqZero,
    /// Readings are contiguous.
    #[error("reading {found} follows reading {previous}; readings must be contiguous")]
    SeqGap {
        /// The reading before.
        previous: u64,
        /// The reading that does not follow it.
        found: u64,
    },
    /// The chain starts from [`GENESIS`] at reading 1.
    #[error("reading 1 must follow the genesis chain value")]
    ChainStart,
    /// A reading's chain value does not follow from the one before.
    #[error("reading {seq}: chain value does not follow from the previous reading")]
    ChainMismatch {
        /// The reading.
        seq: u64,
    },
    /// `value` must be a finite number exactly when `status` is `valid`.
    #[error("reading {seq}: value does not fit status `{status}`")]
    ValueStatus {
        /// The reading.
        seq: u64,
        /// Its status.
        status: &'static str,
    },
    /// A time outside what RFC 3339 with four-digit years can say.
    #[error("reading {seq}: time {utc_us} µs is outside years 1970 to 9999")]
    ReadingTime {
        /// The reading.
        seq: u64,
        /// The time.
        utc_us: i64,
    },
    /// Instrument ids in the list are unique.
    #[error("instrument {id} is listed twice")]
    DuplicateInstrument {
        /// The id.
        id: u64,
    },
    /// Every reading names a listed instrument, under that instrument's name.
    #[error("reading {seq}: instrument {id} `{name}` is not in the instrument list")]
    UnknownInstrument {
        /// The reading.
        seq: u64,
        /// Its `instrument_id`.
        id: u64,
        /// Its instrument name.
        name: String,
    },
    /// Event ids strictly increase.
    #[error("event {found} follows event {previous}; event ids must increase")]
    EventOrder {
        /// The event before.
        previous: u64,
        /// The event out of order.
        found: u64,
    },
    /// An event time outside years 1970 to 9999.
    #[error("event {id}: time {utc_us} µs is outside years 1970 to 9999")]
    EventTime {
        /// The event.
        id: u64,
        /// The time.
        utc_us: i64,
    },
}

/// Checks the readings against the rules and summarises them for the manifest.
pub fn check_readings(
    readings: &[ReadingExport],
    chain_prev: &[u8; 32],
    instruments: &[InstrumentInfo],
) -> Result<ReadingsSummary, ContentError> {
    let mut names = HashMap::with_capacity(instruments.len());
    for instrument in instruments {
        if names
            .insert(instrument.id, instrument.name.as_str())
            .is_some()
        {
            return Err(ContentError::DuplicateInstrument { id: instrument.id });
        }
    }
    let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
        return Err(ContentError::NoReadings);
    };
    if first.record.seq == 0 {
        return Err(ContentError::SeqZero);
    }
    if first.record.seq == 1 && *chain_prev != GENESIS {
        return Err(ContentError::ChainStart);
    }
    let mut chain = *chain_prev;
    let mut previous: Option<u64> = None;
    for reading in readings {
        let r = &reading.record;
        if let Some(previous) = previous
            && previous.checked_add(1) != Some(r.seq)
        {
            return Err(ContentError::SeqGap {
                previous,
                found: r.seq,
            });
        }
        previous = Some(r.seq);
        if !value_fits_status(r) {
            return Err(ContentError::ValueStatus {
                seq: r.seq,
                status: r.status.as_str(),
            });
        }
        if format_utc_us(r.utc_us).is_none() {
            return Err(ContentError::ReadingTime {
                seq: r.seq,
                utc_us: r.utc_us,
            });
        }
        if names.get(&r.instrument_id) != Some(&reading.instrument.as_str()) {
            return Err(ContentError::UnknownInstrument {
                seq: r.seq,
                id: r.instrument_id,
                name: reading.instrument.clone(),
            });
        }
        chain = r.chain_after(&chain);
        if chain != reading.chain {
            return Err(ContentError::ChainMismatch { seq: r.seq });
        }
    }
    Ok(ReadingsSummary {
        count: u64::try_from(readings.len()).unwrap_or(u64::MAX),
        first_seq: first.record.seq,
        last_seq: last.record.seq,
        chain_prev: Hash32(*chain_prev),
        chain_last: Hash32(chain),
    })
}

/// Checks the events against the rules and summarises them for the manifest.
pub fn check_events(events: &[EventLine]) -> Result<EventsSummary, ContentError> {
    let mut previous: Option<u64> = None;
    for event in events {
        if let Some(previous) = previous
            && event.id <= previous
        {
            return Err(ContentError::EventOrder {
                previous,
                found: event.id,
            });
        }
        previous = Some(event.id);
        if format_utc_us(event.utc_us).is_none() {
            return Err(ContentError::EventTime {
                id: event.id,
                utc_us: event.utc_us,
            });
        }
    }
    Ok(EventsSummary {
        count: u64::try_from(events.len()).unwrap_or(u64::MAX),
        first_id: events.first().map(|e| e.id),
        last_id: events.last().map(|e| e.id),
    })
}
