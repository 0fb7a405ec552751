//! Building a personality from its id: the one place that knows every model.

use super::scpi_dmm::ScpiDmm;
use super::{Personality, Setup, fluke1594a, fluke5720a, fluke8508a, hp3458a, keithley2002};
use super::{keithley6500, vaisala};
use crate::id::PersonalityId;

impl PersonalityId {
    /// Builds the instrument.
    pub fn build(&self, setup: Setup) -> Box<dyn Personality> {
        match self {
            PersonalityId::GenericScpiDmm
            | PersonalityId::Keysight34470a
            | PersonalityId::Keysight34465a => Box::new(ScpiDmm::new(setup, *self)),
            PersonalityId::Keysight3458a => Box::new(hp3458a::Hp3458a::new(setup)),
            PersonalityId::Fluke8508a => Box::new(fluke8508a::Fluke8508a::new(setup)),
            PersonalityId::Keithley2002 => Box::new(keithley2002::Keithley2002::new(setup)),
            PersonalityId::KeithleyDmm6500 => Box::new(keithley6500::Dmm6500::new(setup)),
            PersonalityId::Fluke5720a => Box::new(fluke5720a::Fluke5720a::new(setup)),
            PersonalityId::Fluke1594a => Box::new(fluke1594a::Fluke1594a::new(setup)),
            PersonalityId::VaisalaPtu300 => Box::new(vaisala::Ptu300::new(setup)),
        }
    }
}
