//! Instruments on a simulated Prologix GPIB bus, by primary address, as the command line gives
//! them (`22=keysight-3458a,5=fluke-5720a`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::id::{PersonalityId, SpecError};

/// Highest GPIB primary address.
pub const MAX_GPIB_ADDRESS: u8 = 30;

/// Instruments on a simulated Prologix GPIB bus, by primary address:
/// `22=keysight-3458a,5=fluke-5720a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSpec {
    devices: BTreeMap<u8, PersonalityId>,
}

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
