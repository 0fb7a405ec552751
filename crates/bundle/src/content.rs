//! The rules the readings and events of a bundle obey, checked by the sealer and the verifier alike,
//! so a lab can never sign a bundle the pilot lab's verifier would refuse.

use std::collections::{BTreeSet, HashMap};

use thiserror::Error;

use super::manifest::{EventsSummary, Hash32, InstrumentInfo, ReadingsSummary};
use super::records::value_fits_status;
use crate::chain::{GENESIS, ReadingRef};
use crate::time::utc_us_in_range;

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

/// The reading rules, checked one reading at a time as readings stream past (a sealer writing
/// them, a verifier reading them back), in constant memory.
#[derive(Debug)]
pub struct ReadingsCheck {
    names: HashMap<u64, String>,
    chain_prev: [u8; 32],
    chain: [u8; 32],
    first: Option<u64>,
    previous: Option<u64>,
    count: u64,
    used: BTreeSet<u64>,
    /// The instrument of the reading before, already found in `names` and put in `used`: readings
    /// come in runs of one instrument, so most need neither the map nor the set.
    last_instrument: Option<(u64, String)>,
    canonical: Vec<u8>,
}

impl ReadingsCheck {
    /// Starts a check of readings that follow `chain_prev` and name `instruments`.
    pub fn new(chain_prev: [u8; 32], instruments: &[InstrumentInfo]) -> Result<Self, ContentError> {
        let mut names = HashMap::with_capacity(instruments.len());
        for instrument in instruments {
            if names
                .insert(instrument.id, instrument.name.clone())
                .is_some()
            {
                return Err(ContentError::DuplicateInstrument { id: instrument.id });
            }
        }
        Ok(Self {
            names,
            chain_prev,
            chain: chain_prev,
            first: None,
            previous: None,
            count: 0,
            used: BTreeSet::new(),
            last_instrument: None,
            canonical: Vec::new(),
        })
    }

    /// Checks the next reading, whose chain value is `chain`.
    pub fn push(
        &mut self,
        r: &ReadingRef<'_>,
        instrument: &str,
        chain: &[u8; 32],
    ) -> Result<(), ContentError> {
        match self.previous {
            None => {
                if r.seq == 0 {
                    return Err(ContentError::SeqZero);
                }
                if r.seq == 1 && self.chain_prev != GENESIS {
                    return Err(ContentError::ChainStart);
                }
                self.first = Some(r.seq);
            }
            Some(previous) if previous.checked_add(1) != Some(r.seq) => {
                return Err(ContentError::SeqGap {
                    previous,
                    found: r.seq,
                });
            }
            Some(_) => {}
        }
        self.previous = Some(r.seq);
        if !value_fits_status(r) {
            return Err(ContentError::ValueStatus {
                seq: r.seq,
                status: r.status.as_str(),
            });
        }
        if !utc_us_in_range(r.utc_us) {
            return Err(ContentError::ReadingTime {
                seq: r.seq,
                utc_us: r.utc_us,
            });
        }
        let same_as_last = self
            .last_instrument
            .as_ref()
            .is_some_and(|(id, name)| *id == r.instrument_id && name == instrument);
        if !same_as_last {
            if self.names.get(&r.instrument_id).map(String::as_str) != Some(instrument) {
                return Err(ContentError::UnknownInstrument {
                    seq: r.seq,
                    id: r.instrument_id,
                    name: instrument.to_owned(),
                });
            }
            self.used.insert(r.instrument_id);
            self.last_instrument = Some((r.instrument_id, instrument.to_owned()));
        }
        self.chain = r.chain_after_in(&self.chain, &mut self.canonical);
        if self.chain != *chain {
            return Err(ContentError::ChainMismatch { seq: r.seq });
        }
        self.count += 1;
        Ok(())
    }

    /// The ids of the instruments the readings so far refer to, in order.
    pub fn instruments_used(&self) -> impl Iterator<Item = u64> + '_ {
        self.used.iter().copied()
    }

    /// The summary of the readings checked; at least one is needed.
    pub fn finish(&self) -> Result<ReadingsSummary, ContentError> {
        let (Some(first_seq), Some(last_seq)) = (self.first, self.previous) else {
            return Err(ContentError::NoReadings);
        };
        Ok(ReadingsSummary {
            count: self.count,
            first_seq,
            last_seq,
            chain_prev: Hash32(self.chain_prev),
            chain_last: Hash32(self.chain),
        })
    }
}

/// The event rules, one event at a time.
#[derive(Debug, Default)]
pub struct EventsCheck {
    first: Option<u64>,
    previous: Option<u64>,
    count: u64,
}

impl EventsCheck {
    /// Checks the next event.
    pub fn push(&mut self, id: u64, utc_us: i64) -> Result<(), ContentError> {
        if let Some(previous) = self.previous
            && id <= previous
        {
            return Err(ContentError::EventOrder {
                previous,
                found: id,
            });
        }
        self.first.get_or_insert(id);
        self.previous = Some(id);
        if !utc_us_in_range(utc_us) {
            return Err(ContentError::EventTime { id, utc_us });
        }
        self.count += 1;
        Ok(())
    }

    /// The summary of the events checked (there may be none).
    pub fn finish(&self) -> EventsSummary {
        EventsSummary {
            count: self.count,
            first_id: self.first,
            last_id: self.previous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ReadingStatus;
    use proptest::prelude::*;

    fn instruments() -> Vec<InstrumentInfo> {
        [(1, "a"), (2, "b")]
            .into_iter()
            .map(|(id, name)| InstrumentInfo {
                id,
                name: name.into(),
                ..InstrumentInfo::default()
            })
            .collect()
    }

    fn reading(seq: u64, instrument_id: u64) -> ReadingRef<'static> {
        ReadingRef {
            seq,
            run_id: 1,
            instrument_id,
            quantity: "voltage",
            value: Some(1.5),
            status: ReadingStatus::Valid,
            unit: "V",
            raw: "1.5",
            utc_us: 0,
            mono_ns: 0,
            boot_id: "b",
        }
    }

    /// Pushes readings naming `(id, name)` in turn; the index and error of the first refused.
    fn first_refused(names: &[(u64, &str)]) -> Option<(usize, ContentError)> {
        let mut check = ReadingsCheck::new(GENESIS, &instruments()).unwrap();
        let mut chain = GENESIS;
        for (i, &(id, name)) in names.iter().enumerate() {
            let r = reading(i as u64 + 1, id);
            chain = r.chain_after(&chain);
            if let Err(e) = check.push(&r, name, &chain) {
                return Some((i, e));
            }
        }
        None
    }

    #[test]
    fn each_reading_names_a_listed_instrument_even_after_one_that_did() {
        assert!(first_refused(&[(1, "a"), (1, "a"), (2, "b"), (1, "a")]).is_none());
        for names in [
            [(1, "a"), (1, "b")],
            [(1, "a"), (2, "a")],
            [(1, "a"), (3, "a")],
            [(2, "b"), (1, "ab")],
        ] {
            assert!(matches!(
                first_refused(&names),
                Some((1, ContentError::UnknownInstrument { seq: 2, .. }))
            ));
        }
        let mut check = ReadingsCheck::new(GENESIS, &instruments()).unwrap();
        let mut chain = GENESIS;
        for (seq, id) in [(1, 2), (2, 2), (3, 1)] {
            let r = reading(seq, id);
            chain = r.chain_after(&chain);
            check.push(&r, ["", "a", "b"][id as usize], &chain).unwrap();
        }
        assert_eq!(check.instruments_used().collect::<Vec<_>>(), [1, 2]);
    }

    proptest! {
        #[test]
        fn the_instrument_check_is_the_lists_answer_for_every_reading(
            names in proptest::collection::vec((0u64..4, prop::sample::select(vec!["a", "b", "c", ""])), 1..12),
        ) {
            let listed = |id: u64, name: &str| matches!((id, name), (1, "a") | (2, "b"));
            let expected = names.iter().position(|&(id, name)| !listed(id, name));
            let found = first_refused(&names);
            prop_assert_eq!(found.as_ref().map(|(i, _)| *i), expected);
            if let Some((_, e)) = found {
                let is_unknown = matches!(e, ContentError::UnknownInstrument { .. });
                prop_assert!(is_unknown);
            }
        }
    }
}
