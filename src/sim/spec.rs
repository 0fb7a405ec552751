//! What a simulator server runs: one instrument or a Prologix bus of them, the standard, serial
//! pacing and faults. Every part parses from the text a command line gives (`FromStr`), so the
//! CLI is a thin layer.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::fault::Fault;
use super::personality::PersonalityId;
use super::wire::Frame;
use super::{SimError, SimParams};

/// Why a simulator spec given as text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// No personality has this id.
    #[error("unknown instrument personality `{name}` (known: {known})", known = known_ids())]
    UnknownPersonality {
        /// The id as given.
        name: String,
    },
    /// A bus entry is not `ADDRESS=PERSONALITY`.
    #[error("bus entry `{entry}` is not ADDRESS=PERSONALITY")]
    BusEntry {
        /// The entry as given.
        entry: String,
    },
    /// A GPIB primary address outside 0–30.
    #[error("GPIB address `{text}` is not a number from 0 to 30")]
    Address {
        /// The address as given.
        text: String,
    },
    /// Two bus entries at one address.
    #[error("GPIB address {address} is given twice")]
    DuplicateAddress {
        /// The address.
        address: u8,
    },
    /// A bus without instruments.
    #[error("the bus has no instruments")]
    EmptyBus,
    /// A serial frame that is not like `8N1`.
    #[error("serial frame `{text}` is not DATA PARITY STOP like 8N1 or 7E1")]
    Frame {
        /// The frame as given.
        text: String,
    },
    /// A fault spec that does not parse.
    #[error("fault `{text}`: {reason}")]
    Fault {
        /// The fault as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn known_ids() -> String {
    PersonalityId::ALL
        .iter()
        .map(PersonalityId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Instruments on a simulated Prologix GPIB bus, by primary address:
/// `22=keysight-3458a,5=fluke-5720a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSpec {
    devices: BTreeMap<u8, PersonalityId>,
}

/// Highest GPIB primary address.
pub const MAX_GPIB_ADDRESS: u8 = 30;

impl BusSpec {
    /// A bus of `devices`; refuses an empty bus and addresses above 30.
    pub fn new(devices: impl IntoIterator<Item = (u8, PersonalityId)>) -> Result<Self, SpecError> {
        let mut map = BTreeMap::new();
        for (address, id) in devices {
            if address > MAX_GPIB_ADDRESS {
                return Err(SpecError::Address {
                    text: address.to_string(),
                });
            }
            if map.insert(address, id).is_some() {
                return Err(SpecError::DuplicateAddress { address });
            }
        }
        if map.is_empty() {
            return Err(SpecError::EmptyBus);
        }
        Ok(Self { devices: map })
    }

    /// The instruments, by address, in address order.
    pub fn devices(&self) -> impl Iterator<Item = (u8, PersonalityId)> + '_ {
        self.devices.iter().map(|(a, id)| (*a, *id))
    }
}

impl FromStr for BusSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut devices = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (address, id) = entry.split_once('=').ok_or_else(|| SpecError::BusEntry {
                entry: entry.to_owned(),
            })?;
            let address = address.trim();
            let address = address
                .parse::<u8>()
                .ok()
                .filter(|a| *a <= MAX_GPIB_ADDRESS)
                .ok_or_else(|| SpecError::Address {
                    text: address.to_owned(),
                })?;
            devices.push((address, id.parse()?));
        }
        Self::new(devices)
    }
}

impl fmt::Display for BusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (address, id) in &self.devices {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{address}={id}")?;
        }
        Ok(())
    }
}

/// What is on the simulated line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimTarget {
    /// One instrument, talking directly on the stream.
    Instrument(PersonalityId),
    /// A Prologix GPIB adapter with instruments behind it.
    Prologix(BusSpec),
}

/// Everything a simulator server needs.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// One instrument or a bus.
    pub target: SimTarget,
    /// The standard every instrument measures, and timing.
    pub params: SimParams,
    /// Pace output to this serial baud rate (`--baud`); `None` sends as fast as the stream goes.
    pub baud: Option<u32>,
    /// The serial frame for pacing; `None` takes the instrument's default (8N1; 7E1 for the
    /// Vaisala).
    pub frame: Option<Frame>,
    /// Faults armed from the start (more can be armed through the server's handle).
    pub faults: Vec<Fault>,
}

impl SimSpec {
    /// One instrument of model `id`.
    pub fn instrument(id: PersonalityId, params: SimParams) -> Self {
        Self {
            target: SimTarget::Instrument(id),
            params,
            baud: None,
            frame: None,
            faults: Vec::new(),
        }
    }

    /// A Prologix adapter with `bus` behind it.
    pub fn prologix(bus: BusSpec, params: SimParams) -> Self {
        Self {
            target: SimTarget::Prologix(bus),
            params,
            baud: None,
            frame: None,
            faults: Vec::new(),
        }
    }

    /// The spec the original servers run: the generic SCPI DMM.
    pub fn generic(params: SimParams) -> Self {
        Self::instrument(PersonalityId::GenericScpiDmm, params)
    }

    /// Checks what the parameters and the baud rate must satisfy.
    pub fn validate(&self) -> Result<(), SimError> {
        self.params.validate()?;
        if self.baud == Some(0) {
            return Err(SimError::InvalidParam {
                field: "baud",
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bus_spec_parses_and_prints() {
        let bus: BusSpec = "22=keysight-3458a, 5=fluke-5720a".parse().unwrap();
        assert_eq!(
            bus.devices().collect::<Vec<_>>(),
            [
                (5, PersonalityId::Fluke5720a),
                (22, PersonalityId::Keysight3458a)
            ]
        );
        assert_eq!(bus.to_string(), "5=fluke-5720a,22=keysight-3458a");
    }

    #[test]
    fn bus_spec_errors_name_the_problem() {
        let cases: [(&str, SpecError); 6] = [
            ("", SpecError::EmptyBus),
            ("22", SpecError::BusEntry { entry: "22".into() }),
            ("31=fluke-5720a", SpecError::Address { text: "31".into() }),
            ("x=fluke-5720a", SpecError::Address { text: "x".into() }),
            (
                "1=fluke-5720a,1=fluke-8508a",
                SpecError::DuplicateAddress { address: 1 },
            ),
            (
                "1=hp-3457a",
                SpecError::UnknownPersonality {
                    name: "hp-3457a".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<BusSpec>().unwrap_err(), expected, "{text}");
        }
        let e = "1=x".parse::<BusSpec>().unwrap_err().to_string();
        assert!(e.starts_with("unknown instrument personality `x` (known: generic-scpi-dmm, "));
    }

    #[test]
    fn spec_validation() {
        let mut spec = SimSpec::generic(SimParams::default());
        spec.validate().unwrap();
        spec.baud = Some(0);
        assert!(matches!(
            spec.validate(),
            Err(SimError::InvalidParam { field: "baud", .. })
        ));
    }

    proptest! {
        #[test]
        fn bus_spec_round_trips(
            entries in proptest::collection::btree_map(0u8..=30, 0usize..10, 1..6)
        ) {
            let bus = BusSpec::new(
                entries.iter().map(|(a, i)| (*a, PersonalityId::ALL[*i])),
            ).unwrap();
            prop_assert_eq!(bus.to_string().parse::<BusSpec>().unwrap(), bus);
        }

        #[test]
        fn bus_spec_parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<BusSpec>();
        }
    }
}
