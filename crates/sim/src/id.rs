//! Naming a simulated instrument in text: the personality ids the driver profiles use, and the
//! error every spec text (ids, buses, frames, faults) is refused with. They live together because
//! each needs the other: an id parses into a `SpecError`, whose message lists the ids.

use std::fmt;
use std::str::FromStr;

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

/// The simulated models, by the ids the driver profiles use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PersonalityId {
    /// `generic-scpi-dmm`: the SCPI DMM with the simulator's own identity.
    GenericScpiDmm,
    /// `keysight-34470a`.
    Keysight34470a,
    /// `keysight-34465a`.
    Keysight34465a,
    /// `keysight-3458a` (HP-IB language).
    Keysight3458a,
    /// `fluke-8508a`.
    Fluke8508a,
    /// `keithley-2002`.
    Keithley2002,
    /// `keithley-dmm6500` (SCPI mode).
    KeithleyDmm6500,
    /// `fluke-5720a` calibrator.
    Fluke5720a,
    /// `fluke-1594a` super-thermometer.
    Fluke1594a,
    /// `vaisala-ptu300` pressure/temperature/humidity transmitter.
    VaisalaPtu300,
}

impl PersonalityId {
    /// Every model, in a stable order.
    pub const ALL: [PersonalityId; 10] = [
        PersonalityId::GenericScpiDmm,
        PersonalityId::Keysight34470a,
        PersonalityId::Keysight34465a,
        PersonalityId::Keysight3458a,
        PersonalityId::Fluke8508a,
        PersonalityId::Keithley2002,
        PersonalityId::KeithleyDmm6500,
        PersonalityId::Fluke5720a,
        PersonalityId::Fluke1594a,
        PersonalityId::VaisalaPtu300,
    ];

    /// The id as the profiles spell it, e.g. `keysight-3458a`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PersonalityId::GenericScpiDmm => "generic-scpi-dmm",
            PersonalityId::Keysight34470a => "keysight-34470a",
            PersonalityId::Keysight34465a => "keysight-34465a",
            PersonalityId::Keysight3458a => "keysight-3458a",
            PersonalityId::Fluke8508a => "fluke-8508a",
            PersonalityId::Keithley2002 => "keithley-2002",
            PersonalityId::KeithleyDmm6500 => "keithley-dmm6500",
            PersonalityId::Fluke5720a => "fluke-5720a",
            PersonalityId::Fluke1594a => "fluke-1594a",
            PersonalityId::VaisalaPtu300 => "vaisala-ptu300",
        }
    }

    /// Short model code used in simulated serial numbers.
    fn serial_code(&self) -> &'static str {
        match self {
            PersonalityId::GenericScpiDmm => "DMM",
            PersonalityId::Keysight34470a => "34470A",
            PersonalityId::Keysight34465a => "34465A",
            PersonalityId::Keysight3458a => "3458A",
            PersonalityId::Fluke8508a => "8508A",
            PersonalityId::Keithley2002 => "2002",
            PersonalityId::KeithleyDmm6500 => "6500",
            PersonalityId::Fluke5720a => "5720A",
            PersonalityId::Fluke1594a => "1594A",
            PersonalityId::VaisalaPtu300 => "PTU300",
        }
    }

    /// The serial number the simulator gives this model in `slot` (the GPIB address on a bus,
    /// 1 for a lone instrument): `SIM34470A01`, `SIM5720A05`.
    pub fn default_serial(&self, slot: u8) -> String {
        format!("SIM{}{:02}", self.serial_code(), slot)
    }
}

impl fmt::Display for PersonalityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PersonalityId {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PersonalityId::ALL
            .into_iter()
            .find(|id| id.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SpecError::UnknownPersonality { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_are_refused() {
        for id in PersonalityId::ALL {
            assert_eq!(id.as_str().parse::<PersonalityId>().unwrap(), id);
            assert_eq!(id.to_string(), id.as_str());
        }
        assert_eq!(
            "KEYSIGHT-3458A".parse::<PersonalityId>().unwrap(),
            PersonalityId::Keysight3458a
        );
        match "hp-3457a".parse::<PersonalityId>() {
            Err(SpecError::UnknownPersonality { name }) => assert_eq!(name, "hp-3457a"),
            other => panic!("{other:?}"),
        }
        assert_eq!(PersonalityId::Fluke5720a.default_serial(5), "SIM5720A05");
    }
}
